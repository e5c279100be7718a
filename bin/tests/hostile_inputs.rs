//! What a hostile-input audit of `finetune-imdb` found (stop 38: 274 cases, the non-OK ones
//! fixed here): a replaced run lost before the new one could start, sizes that aborted the
//! process at their first allocation, zeros and stored arguments checked late or not at
//! all, non-finite numbers accepted from files, log temporaries left forever.

mod run_common;

use run_common::*;
use std::fs;

/// `args` with the value of `flag` (a tiny run's flag) replaced: a flag given twice is a
/// usage error.
fn replaced(mut args: Vec<String>, flag: &str, value: &str) -> Vec<String> {
    let at = args.iter().position(|a| a == flag).expect("the flag is there") + 1;
    args[at] = value.into();
    args
}

/// Sets `key` (a JSON pointer, `/args/lr`) of the checkpoint folder's run.json to `value`,
/// as a person editing the file would.
fn edit_run_json(checkpoint: &std::path::Path, key: &str, value: serde_json::Value) {
    let path = checkpoint.join("run.json");
    let mut stored: serde_json::Value = serde_json::from_str(&fs::read_to_string(&path).unwrap()).unwrap();
    *stored.pointer_mut(key).expect("a key run.json has") = value;
    fs::write(&path, serde_json::to_string(&stored).unwrap()).unwrap();
}

/// `--overwrite` removes the previous run only once the new run has its data and model: a
/// new run that fails before (here on a GloVe line holding `nan`, named with its line)
/// leaves the old run whole.
#[test]
fn overwrite_keeps_the_old_run_when_the_new_one_fails_early() {
    let f = Fixture::new(8);
    let out = f.path("out");
    let o = run(&f.train(&out, &["--epochs", "1"]));
    assert!(o.status.success(), "{}", stderr(&o));
    let first_id = run_json(&out.join("last"))["run_id"].clone();
    let bad_glove = f.path("glove.nan.4d.txt");
    let mut text = fs::read_to_string(&f.glove).unwrap();
    text.push_str("odd nan 0.1 0.2 0.3\n");
    fs::write(&bad_glove, &text).unwrap();
    let line = text.lines().count();
    let args = replaced(
        f.train(&out, &["--epochs", "1", "--overwrite"]),
        "--embeddings",
        bad_glove.to_str().unwrap(),
    );
    let o = run(&args);
    let e = stderr(&o);
    assert_eq!(o.status.code(), Some(1), "{e}");
    assert!(e.contains(&format!("glove.nan.4d.txt:{line}")) && e.contains("\"nan\""), "{e}");
    assert!(!e.contains("removed the previous run"), "{e}");
    assert_eq!(run_json(&out.join("last"))["run_id"], first_id, "the old run is intact");
    assert_eq!(lines(&out.join("metrics.jsonl")), 1);
    // and with good inputs --overwrite still replaces it
    let o = run(&f.train(&out, &["--epochs", "1", "--overwrite"]));
    assert!(o.status.success() && stderr(&o).contains("removed the previous run"), "{}", stderr(&o));
    assert_ne!(run_json(&out.join("last"))["run_id"], first_id);
}

/// Sizes whose weights could not be allocated are refused before any work, naming the
/// flags (they aborted the process, or ran on for ever); so are range tests too long to
/// keep in memory.
#[test]
fn sizes_past_the_machine_are_refused_up_front() {
    let f = Fixture::new(4);
    let out = f.path("out");
    for (flag, value) in [("--hidden", "100000000"), ("--layers", "1000000000")] {
        let o = run(&replaced(f.train(&out, &[]), flag, value));
        let e = stderr(&o);
        assert_eq!(o.status.code(), Some(1), "{flag} {value}: {e}");
        assert!(e.contains(&format!("{flag} {value}")) && e.contains("GiB"), "{flag} {value}: {e}");
        assert!(!out.exists(), "{flag} {value}: nothing written");
    }
    // a vocabulary of <unk> and <pad> alone is refused, naming the flag that emptied it
    let o = run(&f.train(&out, &["--min-freq", "1000000"]));
    let e = stderr(&o);
    assert_eq!(o.status.code(), Some(1), "{e}");
    assert!(e.contains("--min-freq 1000000") && e.contains("only <unk> and <pad>"), "{e}");
    fs::remove_dir_all(&out).ok();
    for steps in ["18446744073709551615", "1000000000"] {
        let mut args = f.train(&out, &["--steps", steps]);
        args[0] = "lr-find".into();
        let o = run(&args);
        let e = stderr(&o);
        assert_eq!(o.status.code(), Some(1), "--steps {steps}: {e}");
        assert!(e.contains("--steps must be in 10..=100000"), "{e}");
    }
}

/// `eval`'s zero counts are refused before the checkpoint or the data is read, naming the
/// flag (`--batch-size 0` failed after tokenizing with an unnamed message; `--limit-test 0`
/// printed an accuracy of NaN and exited 0).
#[test]
fn eval_refuses_zero_counts_up_front() {
    for flag in ["--batch-size", "--limit-test", "--threads"] {
        let o = run(&strings(&[
            "eval",
            "--checkpoint",
            "/nonexistent/ckpt",
            "--data",
            "/nonexistent/data",
            flag,
            "0",
        ]));
        let e = stderr(&o);
        assert_eq!(o.status.code(), Some(1), "{flag}: {e}");
        assert!(e.contains(&format!("{flag} must be at least 1")), "{flag}: {e}");
    }
}

/// A resumed run checks the arguments stored in its run.json (a file a person can edit):
/// a negative learning rate there is refused, naming the file and the flag, where it used
/// to train at that rate.
#[test]
fn a_resumed_run_checks_its_stored_arguments() {
    let f = Fixture::new(8);
    let out = f.path("out");
    let o = run(&f.train(&out, &["--epochs", "2", "--max-steps", "1"]));
    assert!(o.status.success(), "{}", stderr(&o));
    edit_run_json(&out.join("last"), "/args/lr", serde_json::json!(-1.0));
    let o = run(&f.resume(&out, &[]));
    let e = stderr(&o);
    assert_eq!(o.status.code(), Some(1), "{e}");
    assert!(e.contains("run.json") && e.contains("--lr must be a positive number"), "{e}");
}

/// Log temporaries of a process killed mid-write (`.metrics.jsonl.tmp-<pid>`) are removed,
/// and said so, when the folder is next used.
#[test]
fn stale_log_temporaries_are_removed() {
    let f = Fixture::new(4);
    let out = f.path("out");
    fs::create_dir_all(&out).unwrap();
    let stale = out.join(".metrics.jsonl.tmp-4242");
    fs::write(&stale, "{\"epoch\": 1").unwrap();
    let kept = out.join("notes.txt"); // not ours: left alone
    fs::write(&kept, "mine").unwrap();
    let o = run(&f.train(&out, &["--epochs", "1"]));
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stderr(&o).contains(".metrics.jsonl.tmp-4242"), "{}", stderr(&o));
    assert!(!stale.exists() && kept.exists());
}

/// Paths of the wrong kind are refused with the arguments, before any data is read.
#[test]
fn paths_of_the_wrong_kind_are_refused_up_front() {
    let f = Fixture::new(4);
    let out = f.path("out");
    let file = f.path("a_file");
    fs::write(&file, "x").unwrap();
    let folder = f.path("a_folder");
    fs::create_dir_all(&folder).unwrap();
    let with =
        |flag: &str, value: &std::path::Path| replaced(f.train(&out, &[]), flag, value.to_str().unwrap());
    let bert = strings(&[
        "train",
        "--out",
        out.to_str().unwrap(),
        "--data",
        f.data.to_str().unwrap(),
        "--model",
        "bert",
        "--pretrained",
        file.to_str().unwrap(),
    ]);
    let under_file = file.join("cache");
    let cases = [
        (with("--embeddings", &folder), "a folder; expected a GloVe text file"),
        (with("--cache", &file), "not a folder"),
        (with("--cache", &under_file), "cannot be made: "),
        (bert, "not a folder; expected one with config.json"),
    ];
    for (args, named) in cases {
        let o = run(&args);
        let e = stderr(&o);
        assert_eq!(o.status.code(), Some(1), "{args:?}: {e}");
        assert!(e.contains(named), "{args:?}: {e}");
        assert!(!out.exists(), "{args:?}: nothing written");
    }
}

/// `--out` under a file is refused with the arguments too (it failed when the run first
/// wrote into it).
#[test]
fn an_out_folder_under_a_file_is_refused_up_front() {
    let f = Fixture::new(4);
    let file = f.path("a_file");
    fs::write(&file, "x").unwrap();
    let o = run(&f.train(&file.join("runs/a"), &[]));
    let e = stderr(&o);
    assert_eq!(o.status.code(), Some(1), "{e}");
    assert!(e.contains("--out ") && e.contains("a_file is not a folder"), "{e}");
    assert!(!e.contains("data:"), "refused before the data is read: {e}");
}

/// Empty reviews: counted and said when some are, refused when every training review is
/// (a run that learns from nothing); a text given to `predict` with no tokens is refused
/// (it was scored as the empty sequence), before any text is scored.
#[test]
fn empty_reviews_and_texts_are_said_or_refused() {
    let f = Fixture::new(4);
    let empty = f.data.join("train/pos/0_9.txt");
    fs::write(&empty, " \n").unwrap();
    let out = f.path("out");
    let o = run(&f.train(&out, &["--epochs", "1"]));
    let e = stderr(&o);
    assert!(o.status.success(), "{e}");
    assert!(e.contains("1 of 16 reviews in") && e.contains("are empty"), "{e}");
    let checkpoint = out.join("last");
    for (texts, named) in
        [(vec!["a fine film", ""], "text 2 of 2 (\"\")"), (vec![" ;: \"\" "], "text 1 of 1")]
    {
        let mut args = strings(&["predict", "--checkpoint", checkpoint.to_str().unwrap()]);
        args.extend(strings(&texts));
        let o = run(&args);
        let e = stderr(&o);
        assert_eq!(o.status.code(), Some(1), "{texts:?}: {e}");
        assert!(e.contains(named) && e.contains("has no tokens"), "{texts:?}: {e}");
        assert!(stdout(&o).is_empty(), "{texts:?}: nothing scored");
    }

    for split in ["pos", "neg"] {
        for entry in fs::read_dir(f.data.join("train").join(split)).unwrap() {
            fs::write(entry.unwrap().path(), "").unwrap();
        }
    }
    let o = run(&f.train(&f.path("out2"), &["--epochs", "1"]));
    let e = stderr(&o);
    assert_eq!(o.status.code(), Some(1), "{e}");
    assert!(e.contains("every training review is empty"), "{e}");
}

/// MiniLM from `../shared/models` with one file of the folder changed: a config that
/// describes more weights than model.safetensors holds is refused before anything is
/// allocated (a huge one aborted the process), and a tokenizer giving ids past the
/// embedding table is refused before the data is tokenized (it failed at the first
/// forward, naming no file), and so is one that puts no `[CLS]` first (the head would read
/// the first word).
#[test]
fn a_pretrained_folder_must_agree_with_itself() {
    let model =
        std::path::Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared/models/all-MiniLM-L6-v2"));
    if !model.exists() {
        assert!(std::env::var("CI").as_deref() != Ok("true"), "CI=true but {} is missing", model.display());
        eprintln!("SKIPPED: a_pretrained_folder_must_agree_with_itself: {} not found", model.display());
        return;
    }
    let f = Fixture::new(4);
    let json = |name: &str| -> serde_json::Value {
        serde_json::from_str(&fs::read_to_string(model.join(name)).unwrap()).unwrap()
    };
    let mut config = json("config.json");
    config["num_hidden_layers"] = serde_json::json!(100_000);
    let mut tokenizer = json("tokenizer.json");
    tokenizer["model"]["vocab"]["zzodd"] = serde_json::json!(999_999);
    let mut unframed = json("tokenizer.json");
    unframed["post_processor"] = serde_json::Value::Null;
    for (case, (changed, value, named)) in [
        ("config.json", config, "describes an encoder of"),
        ("tokenizer.json", tokenizer, "gives token ids up to 999999"),
        ("tokenizer.json", unframed, "does not frame a text with special tokens"),
    ]
    .into_iter()
    .enumerate()
    {
        let dir = f.path(&format!("minilm-{case}"));
        fs::create_dir_all(&dir).unwrap();
        for entry in fs::read_dir(model).unwrap() {
            let from = entry.unwrap().path();
            let to = dir.join(from.file_name().unwrap());
            if from.file_name().unwrap() == changed {
                fs::write(&to, serde_json::to_string(&value).unwrap()).unwrap();
            } else if from.is_file() {
                std::os::unix::fs::symlink(&from, &to).unwrap();
            }
        }
        let out = f.path(&format!("out-{case}"));
        let o = run(&strings(&[
            "train",
            "--model",
            "bert",
            "--pretrained",
            dir.to_str().unwrap(),
            "--data",
            f.data.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
            "--max-len",
            "16",
        ]));
        let e = stderr(&o);
        assert_eq!(o.status.code(), Some(1), "{changed}: {e}");
        assert!(e.contains(named) && e.contains(changed), "{changed}: {e}");
        assert!(!e.contains("tokenized"), "{changed}: refused before the data is tokenized: {e}");
    }
}

/// A BiLSTM checkpoint whose weights file is damaged is blamed on that file, not on its
/// run.json; a run.json describing more weights than the file holds names both
/// descriptions and the file.
#[test]
fn a_damaged_checkpoint_is_blamed_on_the_damaged_file() {
    let f = Fixture::new(8);
    let out = f.path("out");
    let o = run(&f.train(&out, &["--epochs", "1"]));
    assert!(o.status.success(), "{}", stderr(&o));
    let eval = |ckpt: &std::path::Path| {
        run(&strings(&["eval", "--checkpoint", ckpt.to_str().unwrap(), "--data", f.data.to_str().unwrap()]))
    };
    let copy = |name: &str| {
        let to = f.path(name);
        fs::create_dir_all(&to).unwrap();
        for e in fs::read_dir(out.join("last")).unwrap() {
            let from = e.unwrap().path();
            fs::copy(&from, to.join(from.file_name().unwrap())).unwrap();
        }
        to
    };
    let garbage = copy("garbage");
    fs::write(garbage.join("model.safetensors"), b"not a safetensors file at all").unwrap();
    let o = eval(&garbage);
    let e = stderr(&o);
    assert_eq!(o.status.code(), Some(1), "{e}");
    assert!(e.contains("model.safetensors") && !e.contains("run.json"), "{e}");

    let oversized = copy("oversized");
    edit_run_json(&oversized, "/spec/hidden", serde_json::json!(100_000));
    let o = eval(&oversized);
    let e = stderr(&o);
    assert_eq!(o.status.code(), Some(1), "{e}");
    for named in ["run.json", "vocab.json", "model.safetensors", "hidden 100000", "do not belong together"] {
        assert!(e.contains(named), "{named}: {e}");
    }

    // run.json naming the other kind: the mismatch is the error, not a missing file
    let other_kind = copy("other_kind");
    edit_run_json(&other_kind, "/spec/kind", serde_json::json!("bert"));
    fs::remove_file(other_kind.join("config.json")).ok();
    let o = eval(&other_kind);
    let e = stderr(&o);
    assert_eq!(o.status.code(), Some(1), "{e}");
    assert!(e.contains("says the model is `bert`") && e.contains("a BiLSTM checkpoint"), "{e}");
}
