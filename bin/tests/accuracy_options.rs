//! The options the accuracy runs (issue 18) measure: `eval --split valid` scores the
//! validation reviews the run held out (so a choice made for evaluation, such as
//! `--max-len`, is made on validation, not on test), `eval`/`predict --max-len` another
//! cap on review length than the run's, and `train --forget-bias` for the BiLSTM's init.

mod run_common;

use run_common::*;
use std::fs;

/// `eval --split valid` of `last/` recreates the run's validation split: its loss and
/// accuracy are those the run logged for its last epoch. Another data set is refused
/// by its fingerprint, and a run without validation is refused by name.
#[test]
fn eval_scores_the_runs_validation_split() {
    let f = Fixture::new(20);
    let out = f.path("out");
    let o = run(&f.train(&out, &["--epochs", "2", "--valid-fraction", "0.25"]));
    assert!(o.status.success(), "{}", stderr(&o));
    let metrics = fs::read_to_string(out.join("metrics.jsonl")).unwrap();
    let last: serde_json::Value = serde_json::from_str(metrics.lines().last().unwrap()).unwrap();
    let eval = |checkpoint: &std::path::Path, data: &std::path::Path| {
        run(&strings(&[
            "eval",
            "--checkpoint",
            checkpoint.to_str().unwrap(),
            "--data",
            data.to_str().unwrap(),
            "--split",
            "valid",
        ]))
    };
    let o = eval(&out.join("last"), &f.data);
    assert!(o.status.success(), "{}", stderr(&o));
    // 25 % of 20 reviews per class, held out as the run held them out.
    let want = format!(
        "valid_accuracy={:.4} reviews=10",
        last["valid_accuracy"].as_f64().expect("the run validated")
    );
    assert_eq!(stdout(&o).lines().last(), Some(want.as_str()), "{}", stderr(&o));
    let loss = format!("valid: loss {:.4},", last["valid_loss"].as_f64().unwrap());
    assert!(stderr(&o).contains(&loss), "want `{loss}` in: {}", stderr(&o));

    let other = Fixture::new(21);
    let o = eval(&out.join("last"), &other.data);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(stderr(&o).contains("fingerprint") && stderr(&o).contains("not the data set"), "{}", stderr(&o));

    let none = f.path("none");
    let o = run(&f.train(&none, &["--epochs", "1", "--valid-fraction", "0"]));
    assert!(o.status.success(), "{}", stderr(&o));
    let o = eval(&none.join("last"), &f.data);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(stderr(&o).contains("held out no validation reviews"), "{}", stderr(&o));
}

/// `--max-len` replaces the run's cap: cut to one token, two reviews that begin with
/// the same word are the same review; uncut they are not. Zero is refused.
#[test]
fn max_len_overrides_the_runs_cap() {
    let f = Fixture::new(20);
    let out = f.path("out");
    let o = run(&f.train(&out, &["--epochs", "3"]));
    assert!(o.status.success(), "{}", stderr(&o));
    let best = out.join("best");
    let predict = |extra: &[&str]| {
        let mut args = strings(&["predict", "--checkpoint", best.to_str().unwrap()]);
        args.extend(strings(extra));
        args.extend(strings(&["great awful awful terrible", "great loved loved excellent"]));
        let o = run(&args);
        assert!(o.status.success(), "{}", stderr(&o));
        let p: Vec<String> = stdout(&o).lines().map(|l| l.split('\t').next().unwrap().to_string()).collect();
        assert_eq!(p.len(), 2, "{}", stdout(&o));
        p
    };
    let cut = predict(&["--max-len", "1"]);
    assert_eq!(cut[0], cut[1], "one token: both reviews are `great`");
    let whole = predict(&[]);
    assert_ne!(whole[0], whole[1], "whole reviews differ");

    for cmd in
        [&["predict", "--max-len", "0", "--checkpoint"][..], &["eval", "--max-len", "0", "--checkpoint"]]
    {
        let mut args = strings(cmd);
        args.push(best.to_str().unwrap().into());
        if cmd[0] == "eval" {
            args.extend(strings(&["--data", f.data.to_str().unwrap()]));
        } else {
            args.push("a film".into());
        }
        let o = run(&args);
        assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
        assert!(stderr(&o).contains("--max-len must be at least 1"), "{}", stderr(&o));
    }
}

/// `--forget-bias B` starts every forget gate's input bias B higher than PyTorch's
/// uniform init (bound 1/√hidden), and is stored with the run.
#[test]
fn forget_bias_sets_the_lstms_forget_gates() {
    let f = Fixture::new(8);
    let out = f.path("out");
    // One epoch of 14 reviews is one Adam step of tiny_flags' rate 0.02: each weight
    // moves by about 0.02 from its initial value.
    let o = run(&f.train(&out, &["--epochs", "1", "--forget-bias", "5"]));
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(run_json(&out.join("last"))["args"]["forget_bias"], 5.0);
    // no --clip given: the BiLSTM's default global-norm clip of 1 (README, "Accuracy")
    assert_eq!(run_json(&out.join("last"))["args"]["clip"], 1.0);
    let bytes = fs::read(out.join("last").join("model.safetensors")).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let hidden = 8; // tiny_flags' --hidden
    let bound = 1.0 / (hidden as f32).sqrt();
    for name in ["rnn.bias_ih_l0", "rnn.bias_ih_l0_reverse"] {
        let v: Vec<f32> = st
            .tensor(name)
            .unwrap_or_else(|e| panic!("{name}: {e}"))
            .data()
            .chunks(4)
            .map(|b| f32::from_le_bytes(b.try_into().unwrap()))
            .collect();
        assert_eq!(v.len(), 4 * hidden);
        for (i, x) in v.iter().enumerate() {
            let shift = if (hidden..2 * hidden).contains(&i) { 5.0 } else { 0.0 };
            let reach = bound + 0.05;
            assert!((x - shift).abs() <= reach, "{name}[{i}] = {x}: want {shift} ± {reach}");
        }
    }
}
