//! `eval` and `predict` beyond the run's own settings: `--split valid` scores the
//! validation reviews the run held out (so a choice made for evaluation, such as
//! `--max-len`, is made on validation, not on test), and `--max-len` another cap on
//! review length than the run's.

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
