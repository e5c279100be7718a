//! Issue 14, "nothing lost, nothing silent": `finetune-imdb train` under bad
//! arguments, checkpoints of every state, a reused run folder, resumes with other
//! flags or data, and Ctrl-C. Each test names the issue's case it covers.

mod run_common;

use run_common::*;
use std::fs;
use std::time::{Duration, Instant};

/// Bad arguments are refused with a message naming the flag, before any data is
/// read or any folder is made (items 2 and 3: panics and silent wrong results).
#[test]
fn bad_arguments_are_refused_up_front() {
    let f = Fixture::new(4);
    let out = f.path("out");
    let pretrained = f.path("pretrained");
    fs::create_dir_all(&pretrained).unwrap();
    // Only config.json: the checks read max_position_embeddings before loading anything.
    let config = r#"{"vocab_size": 30, "hidden_size": 8, "num_hidden_layers": 1, "num_attention_heads": 2,
        "intermediate_size": 16, "max_position_embeddings": 16, "type_vocab_size": 2,
        "hidden_act": "gelu", "layer_norm_eps": 1e-12, "hidden_dropout_prob": 0.1,
        "attention_probs_dropout_prob": 0.1, "initializer_range": 0.02, "pad_token_id": 0}"#;
    fs::write(pretrained.join("config.json"), config).unwrap();
    let bert = ["--model", "bert", "--pretrained", pretrained.to_str().unwrap()];
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (vec!["--dropout", "2"], "--dropout"),
        (vec!["--hidden", "0"], "--hidden"),
        (vec!["--layers", "0"], "--layers"),
        (vec!["--limit-train", "0"], "--limit-train"),
        (vec!["--limit-test", "0"], "--limit-test"),
        (vec!["--valid-fraction", "0.99"], "--valid-fraction"),
        (vec!["--epochs", "0"], "--epochs"),
        (vec!["--lr=-1"], "--lr"),
        (vec!["--warmup", "5"], "--warmup"),
        (vec!["--max-vocab", "0"], "--max-vocab"),
        (vec!["--threads", "0"], "--threads"),
        (vec!["--max-len", "0"], "--max-len"),
        (vec!["--patience", "2", "--valid-fraction", "0"], "--patience"),
        (vec!["--embeddings", "/nonexistent/glove.txt"], "/nonexistent/glove.txt"),
        ([&bert[..], &["--max-len", "0"]].concat(), "--max-len 0"),
        ([&bert[..], &["--max-len", "1"]].concat(), "--max-len 1"),
        ([&bert[..], &["--max-len", "17"]].concat(), "16 positions"),
        ([&bert[..], &["--hidden", "64"]].concat(), "--hidden"),
        ([&bert[..], &["--forget-bias", "1"]].concat(), "--forget-bias"),
        (vec!["--forget-bias", "inf"], "--forget-bias"),
        ([&bert[..], &["--embeddings", f.glove.to_str().unwrap()]].concat(), "--embeddings"),
    ];
    for (flags, named) in cases {
        let mut args =
            strings(&["train", "--data", f.data.to_str().unwrap(), "--out", out.to_str().unwrap()]);
        args.extend(strings(&flags));
        let o = run(&args);
        let e = stderr(&o);
        assert_eq!(
            o.status.code(),
            Some(1),
            "{flags:?} must fail cleanly (no panic), got {:?}: {e}",
            o.status
        );
        assert!(e.contains(named), "{flags:?}: the error should name {named}: {e}");
        assert!(!out.exists(), "{flags:?}: nothing may be written before the arguments are checked");
    }
    // --data is required for a new run.
    let o = run(&strings(&["train", "--out", out.to_str().unwrap()]));
    assert!(!o.status.success() && stderr(&o).contains("--data"), "{}", stderr(&o));
}

/// Without --embeddings the BiLSTM's random vectors are announced (item 3), and the
/// default length cap is stored with the run (item 2: a 5 MB review is cut to 256).
#[test]
fn random_embeddings_are_announced_and_the_length_is_capped() {
    let f = Fixture::new(6);
    // One enormous review: 200,000 tokens.
    fs::write(f.data.join("train/pos/999_9.txt"), "great ".repeat(200_000)).unwrap();
    let out = f.path("out");
    let o = run(&strings(&[
        "train",
        "--data",
        f.data.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--hidden",
        "4",
        "--layers",
        "1",
        "--epochs",
        "1",
        "--valid-fraction",
        "0",
        "--quiet",
    ]));
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stderr(&o).contains("random 100-d"), "{}", stderr(&o));
    assert_eq!(run_json(&out.join("last"))["args"]["max_len"], 256);
}

/// A checkpoint saved before the first validation, and every checkpoint of a run
/// without validation, is accepted by --resume, predict and eval (item 1).
#[test]
fn checkpoints_before_any_validation_load_everywhere() {
    let f = Fixture::new(30);
    let out = f.path("out");
    let o = run(&f.train(&out, &["--epochs", "2", "--max-steps", "2"]));
    assert!(o.status.success(), "{}", stderr(&o));
    let last = out.join("last");
    let text = fs::read_to_string(last.join("run.json")).unwrap();
    assert!(text.contains("\"no_validation_yet\""), "the state says so explicitly: {text}");
    let o = run(&strings(&["predict", "--checkpoint", last.to_str().unwrap(), "great film"]));
    assert!(o.status.success(), "predict: {}", stderr(&o));
    let o =
        run(&strings(&["eval", "--checkpoint", last.to_str().unwrap(), "--data", f.data.to_str().unwrap()]));
    assert!(o.status.success(), "eval: {}", stderr(&o));
    let o = run(&f.resume(&out, &[]));
    assert!(o.status.success(), "resume: {}", stderr(&o));
    assert_eq!(last_line_accuracy(&o).1, 60);

    // No validation set: best/ is the latest epoch, and it all reads back.
    let out = f.path("noval");
    let o = run(&f.train(&out, &["--epochs", "2", "--valid-fraction", "0"]));
    assert!(o.status.success(), "{}", stderr(&o));
    let best = out.join("best");
    assert_eq!(run_json(&best)["best"], serde_json::json!({"state": "unvalidated", "epoch": 2}));
    let o =
        run(&strings(&["eval", "--checkpoint", best.to_str().unwrap(), "--data", f.data.to_str().unwrap()]));
    assert!(o.status.success(), "eval: {}", stderr(&o));
    let metrics = fs::read_to_string(out.join("metrics.jsonl")).unwrap();
    assert_eq!(metrics.lines().count(), 2);
    assert!(!metrics.contains("null"), "{metrics}");
}

/// A run folder holds one run: a second run is refused unless --overwrite (item
/// 3: `--epochs 0` reported the old run's best; item 6: interleaved metrics).
#[test]
fn a_run_folder_holds_one_run() {
    let f = Fixture::new(20);
    let out = f.path("out");
    let o = run(&f.train(&out, &["--epochs", "2"]));
    assert!(o.status.success(), "{}", stderr(&o));
    let first_id = run_json(&out.join("last"))["run_id"].clone();
    let o = run(&f.train(&out, &["--epochs", "1"]));
    assert_eq!(o.status.code(), Some(1));
    let e = stderr(&o);
    assert!(e.contains("holds another run") && e.contains("--overwrite") && e.contains("--resume"), "{e}");
    assert_eq!(lines(&out.join("metrics.jsonl")), 2, "the refused run wrote nothing");
    let o = run(&f.train(&out, &["--epochs", "1", "--overwrite"]));
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(lines(&out.join("metrics.jsonl")), 1, "only the new run's epoch");
    assert_ne!(run_json(&out.join("last"))["run_id"], first_id);
    assert_ne!(run_json(&out.join("best"))["run_id"], first_id, "no best/ of the old run is left");
}

/// A resumed run has exactly one metrics line per epoch and one step line per step,
/// even after a save that failed (item 6).
#[test]
fn a_resumed_run_logs_each_epoch_and_step_once() {
    let f = Fixture::new(30);
    let out = f.path("out");
    // 4 batches an epoch; the end-of-epoch saves of epoch 1 fail (a full disk).
    let o = run_env(&f.train(&out, &["--epochs", "3", "--max-steps", "2"]), &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    // Writes so far counted per process: steps.jsonl and metrics.jsonl rewrites, then
    // the checkpoint files. Allow the two log rewrites, fail at the first save.
    let o = run_env(&f.resume(&out, &[]), &[("TAPEGRAD_FAIL_WRITES_AFTER", "2")]);
    assert!(!o.status.success(), "the injected full disk must fail the run");
    assert!(stderr(&o).contains("No space left on device"), "{}", stderr(&o));
    let o = run(&f.resume(&out, &[]));
    assert!(o.status.success(), "{}", stderr(&o));
    let metrics = fs::read_to_string(out.join("metrics.jsonl")).unwrap();
    let epochs: Vec<u64> = metrics
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["epoch"].as_u64().unwrap())
        .collect();
    assert_eq!(epochs, [1, 2, 3], "{metrics}");
    let steps: Vec<u64> = fs::read_to_string(out.join("steps.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["step"].as_u64().unwrap())
        .collect();
    assert_eq!(steps, (1..=12).collect::<Vec<u64>>());
    let svg = fs::read_to_string(out.join("curves.svg")).unwrap();
    assert!(svg.contains("per step, moving average") && svg.contains("epoch 3"));
}

/// --resume: --data may be left out, flags that shape the run may not change, and
/// the data must be the run's (item 5).
#[test]
fn resume_checks_its_flags_and_data() {
    let f = Fixture::new(20);
    let out = f.path("out");
    let o = run(&f.train(&out, &["--epochs", "2", "--max-steps", "2"]));
    assert!(o.status.success(), "{}", stderr(&o));
    for (flags, named) in [(vec!["--lr", "0.5"], "--lr 0.5"), (vec!["--epochs", "5"], "--epochs 5")] {
        let o = run(&f.resume(&out, &flags));
        assert_eq!(o.status.code(), Some(1), "{flags:?}: {}", stderr(&o));
        assert!(stderr(&o).contains(named) && stderr(&o).contains("cannot change"), "{}", stderr(&o));
    }
    // Another data set (one review more) is refused; a missing path is named.
    let other = tempfile::tempdir().unwrap();
    let other_data = synthetic_imdb(other.path(), 20);
    fs::write(other_data.join("train/pos/500_9.txt"), "great").unwrap();
    let o = run(&f.resume(&out, &["--data", other_data.to_str().unwrap()]));
    assert!(stderr(&o).contains("not the data set this run started on"), "{}", stderr(&o));
    let o = run(&f.resume(&out, &["--data", "/nonexistent/imdb"]));
    assert!(!o.status.success() && stderr(&o).contains("/nonexistent/imdb"), "{}", stderr(&o));
    // The same values are accepted, and --data is optional.
    let o = run(&f.resume(&out, &["--epochs", "2", "--lr", "0.02"]));
    assert!(o.status.success(), "{}", stderr(&o));
}

/// Stale temporaries of an interrupted checkpoint write are cleaned up and said so,
/// and a checkpoint left only as `.last.old` is put back (item 6).
#[test]
fn stale_temporaries_are_cleaned_and_reported() {
    let f = Fixture::new(20);
    let out = f.path("out");
    let o = run(&f.train(&out, &["--epochs", "2", "--max-steps", "1"]));
    assert!(o.status.success(), "{}", stderr(&o));
    // A crash between the two renames of a save, with a half-written temporary.
    fs::rename(out.join("last"), out.join(".last.old")).unwrap();
    fs::create_dir_all(out.join(".last.tmp")).unwrap();
    fs::write(out.join(".last.tmp/model.safetensors"), b"half").unwrap();
    fs::create_dir_all(out.join(".best.tmp")).unwrap();
    let o = run(&f.resume(&out, &["--max-steps", "2"]));
    assert!(o.status.success(), "{}", stderr(&o));
    let e = stderr(&o);
    assert!(e.contains(".last.tmp") && e.contains(".best.tmp") && e.contains("restored"), "{e}");
    for stale in [".last.tmp", ".last.old", ".best.tmp", ".best.old"] {
        assert!(!out.join(stale).exists(), "{stale} is left");
    }
    assert_eq!(run_json(&out.join("last"))["step"], 2);
}

/// `--keep-epochs` keeps each epoch's checkpoint beside `last/` and `best/`; they
/// belong to the run: `eval` reads them, `--overwrite` removes them, and a stale
/// temporary of one is cleaned up like those of `last/`.
#[test]
fn kept_epochs_are_checkpoints_of_the_run() {
    let f = Fixture::new(20);
    let out = f.path("out");
    let o = run(&f.train(&out, &["--epochs", "2", "--keep-epochs"]));
    assert!(o.status.success(), "{}", stderr(&o));
    for epoch in [1, 2] {
        assert_eq!(run_json(&out.join(format!("epoch-{epoch}")))["epoch"], epoch);
    }
    let eval = |dir: &str| {
        let o = run(&strings(&[
            "eval",
            "--checkpoint",
            out.join(dir).to_str().unwrap(),
            "--data",
            f.data.to_str().unwrap(),
        ]));
        assert!(o.status.success(), "eval {dir}: {}", stderr(&o));
        last_line_accuracy(&o)
    };
    assert_eq!(eval("epoch-2"), eval("last"), "epoch-2/ is the last epoch's weights");
    fs::create_dir_all(out.join(".epoch-7.tmp")).unwrap();
    let o = run(&f.train(&out, &["--epochs", "1", "--overwrite"]));
    assert!(o.status.success(), "{}", stderr(&o));
    let e = stderr(&o);
    assert!(e.contains(".epoch-7.tmp") && e.contains("epoch-1, epoch-2"), "{e}");
    for gone in ["epoch-1", "epoch-2", ".epoch-7.tmp"] {
        assert!(!out.join(gone).exists(), "{gone} of the old run is left");
    }
}

/// A weights file with a tensor that is not the model's is an error that names it
/// (item 3 for the BiLSTM); `vocab.json` is JSON (item 5).
#[test]
fn checkpoint_weights_must_match_the_model() {
    let f = Fixture::new(20);
    let out = f.path("out");
    let o = run(&f.train(&out, &["--epochs", "1"]));
    assert!(o.status.success(), "{}", stderr(&o));
    let best = out.join("best");
    let vocab: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(best.join("vocab.json")).unwrap()).unwrap();
    assert!(vocab["itos"].as_array().is_some_and(|w| w.len() > 2));
    // A missing file: the OS error is quoted once (item 5: it was printed twice).
    let copy = out.join("copy");
    fs::create_dir_all(&copy).unwrap();
    for e in fs::read_dir(&best).unwrap() {
        let e = e.unwrap();
        fs::copy(e.path(), copy.join(e.file_name())).unwrap();
    }
    fs::remove_file(copy.join("model.safetensors")).unwrap();
    let o = run(&strings(&["predict", "--checkpoint", copy.to_str().unwrap(), "great"]));
    let e = stderr(&o);
    assert_eq!(o.status.code(), Some(1));
    assert!(e.contains("model.safetensors"), "{e}");
    assert_eq!(e.matches("os error 2").count(), 1, "{e}");
    // A folder in place of the weights says so (item 5: it said "No such device").
    fs::create_dir(copy.join("model.safetensors")).unwrap();
    let o = run(&strings(&["predict", "--checkpoint", copy.to_str().unwrap(), "great"]));
    assert!(stderr(&o).contains("a folder, not a weights file"), "{}", stderr(&o));
    // A data folder with only pos/ names the missing neg/ (item 5: it named pos).
    let only_pos = f.path("only_pos");
    fs::create_dir_all(only_pos.join("pos")).unwrap();
    fs::write(only_pos.join("pos/1_9.txt"), "great").unwrap();
    let o = run(&strings(&[
        "eval",
        "--checkpoint",
        best.to_str().unwrap(),
        "--data",
        only_pos.to_str().unwrap(),
    ]));
    assert!(stderr(&o).contains("no `neg` folder"), "{}", stderr(&o));
    add_tensor(&best.join("model.safetensors"), "extra.weight");
    let o = run(&strings(&["predict", "--checkpoint", best.to_str().unwrap(), "great"]));
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("extra.weight") && stderr(&o).contains("model.safetensors"),
        "{}",
        stderr(&o)
    );
}

/// Rewrites a safetensors file with one more (1-element) tensor.
fn add_tensor(path: &std::path::Path, name: &str) {
    let bytes = fs::read(path).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let one = 1f32.to_le_bytes();
    let mut views: Vec<(String, safetensors::tensor::TensorView)> =
        st.tensors().into_iter().map(|(n, v)| (n.to_string(), v)).collect();
    views.push((
        name.into(),
        safetensors::tensor::TensorView::new(safetensors::Dtype::F32, vec![1], &one).unwrap(),
    ));
    let out = safetensors::serialize(views, None).unwrap();
    fs::write(path, out).unwrap();
}

/// Ctrl-C in a training step: the step finishes, `last/` is saved, exit code 130;
/// a second Ctrl-C exits at once (item 5 and the interrupts of "what to build").
#[test]
fn ctrl_c_saves_and_exits_130_and_a_second_exits_at_once() {
    let f = Fixture::new(20);
    let out = f.path("out");
    let child = spawn(&f.train(&out, &["--epochs", "3"]), &[("FINETUNE_IMDB_PAUSE", "step:300")]);
    let steps = out.join("steps.jsonl");
    wait_for("the first step", 120, || lines(&steps) >= 1);
    signal(&child, "INT");
    let o = child.wait_with_output().unwrap();
    assert_eq!(o.status.code(), Some(130), "{}", stderr(&o));
    assert!(stdout(&o).contains("interrupted=true"));
    let step = run_json(&out.join("last"))["step"].as_u64().unwrap();
    assert!(step >= 1, "the step in progress was finished and saved");
    let o = run(&f.resume(&out, &[]));
    assert!(o.status.success(), "{}", stderr(&o));

    // A second Ctrl-C does not wait for the (slow) step.
    let out = f.path("twice");
    let child = spawn(&f.train(&out, &["--epochs", "3"]), &[("FINETUNE_IMDB_PAUSE", "step:20000")]);
    wait_for("the folder", 120, || out.join("steps.jsonl").exists());
    std::thread::sleep(Duration::from_millis(300));
    signal(&child, "INT");
    std::thread::sleep(Duration::from_millis(200));
    let t = Instant::now();
    signal(&child, "INT");
    let o = child.wait_with_output().unwrap();
    assert_eq!(o.status.code(), Some(130), "{}", stderr(&o));
    assert!(t.elapsed() < Duration::from_secs(10), "took {:?}", t.elapsed());
    assert!(!out.join("last").exists(), "nothing half-saved");
}

/// Ctrl-C while the data loads, during validation and during the test stops
/// promptly with exit code 130 (each phase slowed by the pause hook).
#[test]
fn ctrl_c_is_prompt_in_loading_validation_and_test() {
    let f = Fixture::new(30);
    // Loading: nothing to save, exits at once.
    let out = f.path("loading");
    let child = spawn(&f.train(&out, &[]), &[("FINETUNE_IMDB_PAUSE", "loading:20000")]);
    std::thread::sleep(Duration::from_millis(800));
    let t = Instant::now();
    signal(&child, "INT");
    let o = child.wait_with_output().unwrap();
    assert_eq!(o.status.code(), Some(130), "{}", stderr(&o));
    assert!(t.elapsed() < Duration::from_secs(10));

    // Validation: one slow batch at a time; last/ holds the finished epoch's steps.
    let out = f.path("valid");
    let child = spawn(
        &f.train(&out, &["--epochs", "2", "--valid-fraction", "0.3"]),
        &[("FINETUNE_IMDB_PAUSE", "valid-batch:3000")],
    );
    // 42 training reviews in batches of 16: 3 steps, then validation.
    wait_for("the end of the epoch's steps", 120, || lines(&out.join("steps.jsonl")) >= 3);
    std::thread::sleep(Duration::from_millis(300));
    signal(&child, "INT");
    let o = child.wait_with_output().unwrap();
    assert_eq!(o.status.code(), Some(130), "{}", stderr(&o));
    assert!(stderr(&o).contains("during validation") || o.status.code() == Some(130));
    let state = run_json(&out.join("last"));
    assert_eq!((state["epoch"].as_u64(), state["next_batch"].as_u64()), (Some(0), Some(3)));
    let o = run(&f.resume(&out, &[]));
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(lines(&out.join("metrics.jsonl")), 2);

    // The test: training is done and saved.
    let out = f.path("test");
    let child = spawn(&f.train(&out, &["--epochs", "1"]), &[("FINETUNE_IMDB_PAUSE", "test-batch:3000")]);
    wait_for("the end of training", 120, || lines(&out.join("metrics.jsonl")) >= 1);
    std::thread::sleep(Duration::from_millis(300));
    signal(&child, "INT");
    let o = child.wait_with_output().unwrap();
    assert_eq!(o.status.code(), Some(130), "{}", stderr(&o));
    let o = run(&strings(&[
        "eval",
        "--checkpoint",
        out.join("best").to_str().unwrap(),
        "--data",
        f.data.to_str().unwrap(),
    ]));
    assert!(o.status.success(), "{}", stderr(&o));
}

/// MiniLM from `../shared/models`: a run resumed from `.last.old` keeps writing the
/// tokenizer files into every checkpoint (item 1), and a checkpoint whose weights
/// lack the `classifier.*` head is refused instead of loading a random head (item 3).
#[test]
fn bert_checkpoints_carry_the_tokenizer_and_need_their_head() {
    let model =
        std::path::Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared/models/all-MiniLM-L6-v2"));
    if !model.exists() {
        assert!(std::env::var("CI").as_deref() != Ok("true"), "CI=true but {} is missing", model.display());
        eprintln!(
            "SKIPPED: bert_checkpoints_carry_the_tokenizer_and_need_their_head: {} not found",
            model.display()
        );
        return;
    }
    let f = Fixture::new(8);
    let out = f.path("out");
    let mut args = strings(&["train", "--model", "bert", "--pretrained", model.to_str().unwrap()]);
    args.extend(strings(&["--data", f.data.to_str().unwrap(), "--out", out.to_str().unwrap()]));
    args.extend(strings(&[
        "--max-len",
        "16",
        "--batch-size",
        "8",
        "--epochs",
        "2",
        "--valid-fraction",
        "0.25",
        "--quiet",
    ]));
    let mut first = args.clone();
    first.extend(strings(&["--max-steps", "1"]));
    let o = run(&first);
    assert!(o.status.success(), "{}", stderr(&o));
    // The crash between the two renames of a save: only `.last.old` is left.
    fs::rename(out.join("last"), out.join(".last.old")).unwrap();
    let resume = strings(&[
        "train",
        "--resume",
        out.join(".last.old").to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--quiet",
    ]);
    let o = run(&resume);
    assert!(o.status.success(), "{}", stderr(&o));
    for dir in ["last", "best"] {
        for file in ["tokenizer.json", "config.json", "model.safetensors", "run.json"] {
            assert!(out.join(dir).join(file).exists(), "{dir}/{file}");
        }
    }
    let best = out.join("best");
    // `--max-len` for another length than the run's: within the model's positions.
    let predict = |max_len: &str| {
        run(&strings(&[
            "predict",
            "--checkpoint",
            best.to_str().unwrap(),
            "--max-len",
            max_len,
            "A fine film.",
        ]))
    };
    let o = predict("513");
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(stderr(&o).contains("--max-len 513") && stderr(&o).contains("512 positions"), "{}", stderr(&o));
    let o = predict("32");
    assert!(o.status.success(), "{}", stderr(&o));
    // Without its head, the checkpoint is refused.
    let path = best.join("model.safetensors");
    let bytes = fs::read(&path).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let views: Vec<(String, safetensors::tensor::TensorView)> = st
        .tensors()
        .into_iter()
        .filter(|(n, _)| !n.starts_with("classifier."))
        .map(|(n, v)| (n.to_string(), v))
        .collect();
    let headless = safetensors::serialize(views, None).unwrap();
    fs::write(&path, headless).unwrap();
    let o = run(&strings(&["predict", "--checkpoint", best.to_str().unwrap(), "A fine film."]));
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(stderr(&o).contains("classifier"), "{}", stderr(&o));
}

/// The BiLSTM trains at the tutorial's constant rate by default; `--schedule`
/// offers linear and cosine decay ("faithful to the tutorial").
#[test]
fn the_schedule_is_constant_by_default_and_selectable() {
    let f = Fixture::new(20);
    let lrs = |schedule: &[&str]| -> Vec<f64> {
        let out = f.path(&format!("out{}", schedule.concat()));
        let mut extra = vec!["--epochs", "2"];
        extra.extend(schedule);
        let o = run(&f.train(&out, &extra));
        assert!(o.status.success(), "{}", stderr(&o));
        fs::read_to_string(out.join("steps.jsonl"))
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["lr"].as_f64().unwrap())
            .collect()
    };
    let constant = lrs(&[]);
    assert_eq!(constant.len(), 6);
    assert!(constant.iter().all(|&lr| lr == 0.02), "{constant:?}");
    let linear = lrs(&["--schedule", "linear"]);
    assert!(linear.windows(2).all(|w| w[1] < w[0]) && linear[0] == 0.02, "{linear:?}");
    let cosine = lrs(&["--schedule", "cosine"]);
    assert!(cosine.windows(2).all(|w| w[1] < w[0]) && cosine[1] > linear[1], "{cosine:?}");
}
