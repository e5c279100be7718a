//! End to end: `finetune-imdb train`, `eval`, `predict`, resume and its errors,
//! on a small learnable aclImdb-format set generated here, plus a short run on a
//! slice of the real archive.

mod data_common;
mod run_common;

use run_common::{last_line_accuracy, stderr, stdout, strings, synthetic_imdb, tiny_glove};
use std::fs;
use std::path::Path;
use std::process::Output;

/// Runs `finetune-imdb` with these arguments (one thread), to the end.
fn run(args: &[&str]) -> Output {
    run_common::run(&strings(args))
}

fn train_args<'a>(data: &'a str, glove: &'a str, out: &'a str, cache: &'a str) -> Vec<&'a str> {
    vec![
        "train",
        "--data",
        data,
        "--embeddings",
        glove,
        "--out",
        out,
        "--cache",
        cache,
        "--hidden",
        "8",
        "--layers",
        "1",
        "--batch-size",
        "16",
        "--epochs",
        "3",
        "--lr",
        "0.02",
        "--dropout",
        "0.1",
        "--seed",
        "7",
        "--quiet",
    ]
}

#[test]
fn trains_evaluates_predicts_and_resumes_exactly() {
    let tmp = tempfile::tempdir().unwrap();
    let data = synthetic_imdb(tmp.path(), 60);
    let glove = tiny_glove(tmp.path());
    let (data, glove) = (data.to_str().unwrap(), glove.to_str().unwrap());
    let cache = tmp.path().join("cache");
    let cache = cache.to_str().unwrap();

    // An uninterrupted run learns the task.
    let full = tmp.path().join("full");
    let o = run(&train_args(data, glove, full.to_str().unwrap(), cache));
    assert!(o.status.success(), "train failed: {}", stderr(&o));
    let (acc, n) = last_line_accuracy(&o);
    assert_eq!(n, 120);
    assert!(acc > 0.75, "the synthetic task is learnable (chance is 0.5), got accuracy {acc}");
    let metrics = fs::read_to_string(full.join("metrics.jsonl")).unwrap();
    assert_eq!(metrics.lines().count(), 3, "one metrics line per epoch");
    assert!(fs::read_to_string(full.join("curves.svg")).unwrap().contains("<polyline"));
    for f in ["model.safetensors", "optimizer.safetensors", "run.json", "vocab.json"] {
        assert!(full.join("best").join(f).exists(), "best/{f}");
    }

    // eval and predict read the checkpoint.
    let best = full.join("best");
    let o = run(&["eval", "--checkpoint", best.to_str().unwrap(), "--data", data]);
    assert!(o.status.success(), "{}", stderr(&o));
    let (eval_acc, eval_n) = last_line_accuracy(&o);
    assert_eq!(eval_n, 120);
    // the best checkpoint, reloaded, scores the test set exactly as the run reported
    assert_eq!(eval_acc, acc, "eval of best/ disagrees with the training run's test accuracy");
    let o = run(&[
        "predict",
        "--checkpoint",
        best.to_str().unwrap(),
        "the movie was great and the story was wonderful, loved it",
        "the movie was awful and the plot was boring, hated it",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let probs: Vec<f64> =
        stdout(&o).lines().map(|l| l.split('\t').next().unwrap().parse().unwrap()).collect();
    assert!(probs[0] > 0.5 && probs[1] < 0.5, "{probs:?}");

    // Interrupted mid-epoch (what Ctrl-C does: finish the step, save), then
    // resumed: the same weights and optimizer state as the uninterrupted run.
    let part = tmp.path().join("part");
    let mut args = train_args(data, glove, part.to_str().unwrap(), cache);
    args.extend(["--max-steps", "9"]);
    let o = run(&args);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).contains("interrupted=true"));
    let last = part.join("last");
    let o = run(&[
        "train",
        "--data",
        data,
        "--resume",
        last.to_str().unwrap(),
        "--out",
        part.to_str().unwrap(),
        "--quiet",
    ]);
    assert!(o.status.success(), "resume failed: {}", stderr(&o));
    assert_eq!(last_line_accuracy(&o).0, acc);
    for f in ["model.safetensors", "optimizer.safetensors"] {
        let (a, b) =
            (fs::read(full.join("last").join(f)).unwrap(), fs::read(part.join("last").join(f)).unwrap());
        assert!(a == b, "{f} differs between the resumed and the uninterrupted run");
    }
}

#[test]
fn errors_name_the_path() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let out = out.to_str().unwrap();
    // missing data
    let o = run(&["train", "--data", "/nonexistent/aclImdb", "--out", out, "--quiet"]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("/nonexistent/aclImdb"), "{}", stderr(&o));
    // a folder without pos/neg
    let empty = tmp.path().join("empty");
    fs::create_dir_all(empty.join("train")).unwrap();
    let o = run(&["train", "--data", empty.to_str().unwrap(), "--out", out, "--quiet"]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("empty"), "{}", stderr(&o));
    // GloVe lines of different dimensions
    let data = synthetic_imdb(tmp.path(), 4);
    let bad = tmp.path().join("bad.txt");
    fs::write(&bad, "the 0.1 0.2 0.3\nmovie 0.1 0.2\n").unwrap();
    let cache = tmp.path().join("cache");
    let o = run(&[
        "train",
        "--data",
        data.to_str().unwrap(),
        "--embeddings",
        bad.to_str().unwrap(),
        "--out",
        out,
        "--cache",
        cache.to_str().unwrap(),
        "--quiet",
    ]);
    assert!(!o.status.success());
    let e = stderr(&o);
    assert!(e.contains("bad.txt:2") && e.contains("dimensions"), "{e}");
    // --device cuda is refused clearly
    let o = run(&["train", "--data", data.to_str().unwrap(), "--device", "cuda", "--out", out, "--quiet"]);
    assert!(!o.status.success() && stderr(&o).contains("cuda"));
    // bf16 is the transformer's precision: refused for the BiLSTM before any work
    let o = run(&["train", "--data", data.to_str().unwrap(), "--precision", "bf16", "--out", out, "--quiet"]);
    assert!(
        !o.status.success() && stderr(&o).contains("--precision bf16 is for --model bert"),
        "{}",
        stderr(&o)
    );
    // bf16 on the simulated GPU: refused in the same list as every other argument's problem
    // (here a --pretrained that does not exist), not after them
    let missing = tmp.path().join("no-such-model");
    let never = tmp.path().join("never");
    let o = run(&[
        "train",
        "--model",
        "bert",
        "--pretrained",
        missing.to_str().unwrap(),
        "--data",
        data.to_str().unwrap(),
        "--precision",
        "bf16",
        "--device",
        "sim",
        "--out",
        never.to_str().unwrap(),
        "--quiet",
    ]);
    let e = stderr(&o);
    assert!(!o.status.success(), "{e}");
    assert!(
        e.contains("--precision bf16 runs on the CPU only") && e.contains("no-such-model: no such file"),
        "{e}"
    );
    assert!(!never.exists(), "the output folder was made before the arguments were refused");
    // a batch size of 0 is an error, not a panic
    let o = run(&["train", "--data", data.to_str().unwrap(), "--batch-size", "0", "--out", out, "--quiet"]);
    assert!(!o.status.success() && stderr(&o).contains("batch_size"), "{}", stderr(&o));
    // not a checkpoint
    let o = run(&["eval", "--checkpoint", tmp.path().to_str().unwrap(), "--data", data.to_str().unwrap()]);
    assert!(!o.status.success() && stderr(&o).contains("not a checkpoint"), "{}", stderr(&o));
}

#[test]
fn invalid_utf8_is_decoded_and_reported() {
    let tmp = tempfile::tempdir().unwrap();
    let data = synthetic_imdb(tmp.path(), 6);
    fs::write(data.join("train/pos/99_9.txt"), b"great \xff\xfe movie").unwrap();
    let out = tmp.path().join("out");
    let o = run(&[
        "train",
        "--data",
        data.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--hidden",
        "4",
        "--layers",
        "1",
        "--epochs",
        "1",
        "--quiet",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stderr(&o).contains("1 of") && stderr(&o).contains("lossily"), "{}", stderr(&o));
}

#[test]
fn a_diverging_loss_stops_and_names_the_step() {
    let tmp = tempfile::tempdir().unwrap();
    let data = synthetic_imdb(tmp.path(), 20);
    let out = tmp.path().join("out");
    let o = run(&[
        "train",
        "--data",
        data.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--hidden",
        "4",
        "--layers",
        "1",
        "--epochs",
        "3",
        "--lr",
        "1e38",
        "--quiet",
    ]);
    assert!(!o.status.success(), "a loss of inf/NaN must stop the run");
    let e = stderr(&o);
    assert!(e.contains("the loss became") && e.contains("at step"), "{e}");
}

#[test]
fn short_run_on_the_real_archive() {
    let Some(archive) =
        data_common::shared_data("imdb/aclImdb_labeled.tar.gz", "short_run_on_the_real_archive")
    else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let o = run(&[
        "train",
        "--data",
        archive.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--hidden",
        "8",
        "--layers",
        "1",
        "--max-vocab",
        "2000",
        "--limit-train",
        "200",
        "--limit-test",
        "100",
        "--epochs",
        "1",
        "--max-len",
        "64",
        "--quiet",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let (acc, n) = last_line_accuracy(&o);
    assert_eq!(n, 100);
    // a count of correct reviews out of 100, printed to 4 decimals
    let correct = acc * n as f64;
    assert!((0.0..=1.0).contains(&acc) && (correct - correct.round()).abs() < 1e-6, "accuracy {acc} of {n}");
    // the epoch trained: one metrics line with a finite loss below chance's ln 2 · 1.5
    let metrics = fs::read_to_string(out.join("metrics.jsonl")).unwrap();
    assert_eq!(metrics.lines().count(), 1, "{metrics}");
    let line: serde_json::Value = serde_json::from_str(metrics.lines().next().unwrap()).unwrap();
    let loss = line["train_loss"].as_f64().unwrap_or(f64::NAN);
    assert!(loss.is_finite() && loss > 0.0 && loss < 1.5 * std::f64::consts::LN_2, "train loss {loss}");
}

/// MiniLM from `../shared/models`: a few steps of fine-tuning on the real archive,
/// then `eval` and `predict` from the checkpoint, which is a transformers folder.
#[test]
fn bert_fine_tunes_from_the_pretrained_folder() {
    let Some(archive) = data_common::shared_data("imdb/aclImdb_labeled.tar.gz", "bert_fine_tunes") else {
        return;
    };
    let model = Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared/models/all-MiniLM-L6-v2"));
    if !model.exists() {
        assert!(std::env::var("CI").as_deref() != Ok("true"), "CI=true but {} is missing", model.display());
        // straight to stderr, past libtest's capture, so the skip shows in the run
        let _ = std::io::Write::write_fmt(
            &mut std::io::stderr(),
            format_args!(
                "SKIPPED: bert_fine_tunes_from_the_pretrained_folder: {} not found\n",
                model.display()
            ),
        );
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let o = run(&[
        "train",
        "--model",
        "bert",
        "--pretrained",
        model.to_str().unwrap(),
        "--data",
        archive.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--limit-train",
        "12",
        "--limit-test",
        "4",
        "--max-len",
        "24",
        "--batch-size",
        "8",
        "--epochs",
        "1",
        "--quiet",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(last_line_accuracy(&o).1, 4);
    let best = out.join("best");
    for f in ["model.safetensors", "config.json", "tokenizer.json", "optimizer.safetensors", "run.json"] {
        assert!(best.join(f).exists(), "best/{f}");
    }
    let o = run(&["predict", "--checkpoint", best.to_str().unwrap(), "A fine film."]);
    assert!(o.status.success(), "{}", stderr(&o));
    let p: f64 = stdout(&o).split('\t').next().unwrap().trim().parse().unwrap();
    assert!(p > 0.0 && p < 1.0, "probability {p}");
    // the probability depends on the text: another review scores differently, the same one alike
    let o2 = run(&[
        "predict",
        "--checkpoint",
        best.to_str().unwrap(),
        "Dull, witless and far too long.",
        "A fine film.",
    ]);
    assert!(o2.status.success(), "{}", stderr(&o2));
    let ps: Vec<f64> =
        stdout(&o2).lines().map(|l| l.split('\t').next().unwrap().trim().parse().unwrap()).collect();
    assert_eq!(ps.len(), 2, "one line per text: {}", stdout(&o2));
    assert_ne!(ps[0], ps[1], "two different texts got the same probability");
    assert!((ps[1] - p).abs() < 1e-6, "the same text scored {p}, then {}", ps[1]);
    // bf16: `eval` and `predict` compute in the precision the checkpoint trained in, so
    // eval scores best/ exactly as the run's own test did (the choice of precision itself:
    // the unit test in `bin/src/train/evaluate.rs`)
    let bf16 = tmp.path().join("bf16");
    let mut args: Vec<&str> = vec!["train", "--model", "bert", "--pretrained", model.to_str().unwrap()];
    args.extend(["--data", archive.to_str().unwrap(), "--out", bf16.to_str().unwrap()]);
    args.extend(["--limit-train", "12", "--limit-test", "16", "--max-len", "24", "--batch-size", "8"]);
    args.extend(["--epochs", "1", "--precision", "bf16"]);
    let o = run(&args);
    assert!(o.status.success(), "{}", stderr(&o));
    let test_line = |o: &Output| stderr(o).lines().find(|l| l.starts_with("test: loss")).map(String::from);
    let trained = test_line(&o).expect("train prints its test line");
    // where the CPU has no bf16 arithmetic, train says bf16 buys no speed there (and not elsewhere)
    use tapegrad_kernels::bf16gemm as bf;
    let hardware = matches!(bf::path(), bf::Path::Amx | bf::Path::Avx512Bf16);
    let noted = stderr(&o).contains("no faster than f32");
    assert_eq!(noted, !hardware, "bf16 path {:?}; stderr:\n{}", bf::path(), stderr(&o));
    let best = bf16.join("best");
    let o = run(&[
        "eval",
        "--checkpoint",
        best.to_str().unwrap(),
        "--data",
        archive.to_str().unwrap(),
        "--limit-test",
        "16",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(test_line(&o).as_deref(), Some(trained.as_str()), "eval of a bf16 run's best/");
    assert_eq!(stderr(&o).contains("no faster than f32"), !hardware, "eval's note");
    // a bf16 run resumes on the CPU only: --device may change on --resume, bf16 may not leave it
    let last = bf16.join("last");
    let o = run(&["train", "--resume", last.to_str().unwrap(), "--device", "sim", "--quiet"]);
    assert!(
        !o.status.success() && stderr(&o).contains("--precision bf16 runs on the CPU only"),
        "{}",
        stderr(&o)
    );
    // a pretrained folder without its weights is named in the error
    let broken = tmp.path().join("broken");
    fs::create_dir_all(&broken).unwrap();
    fs::copy(model.join("config.json"), broken.join("config.json")).unwrap();
    let o = run(&[
        "train",
        "--model",
        "bert",
        "--pretrained",
        broken.to_str().unwrap(),
        "--data",
        archive.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--limit-train",
        "4",
        "--quiet",
    ]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("model.safetensors"), "{}", stderr(&o));
}
