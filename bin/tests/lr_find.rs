//! `finetune-imdb lr-find` end to end on a tiny learnable data set: the suggestion,
//! the picture and the recorded steps; and its argument checks, made before any
//! data is read. (The suggestion's logic on a known curve is tested in
//! `src/train/lr_find.rs`.)

mod run_common;

use run_common::{run, stderr, stdout, strings, Fixture};
use std::fs;
use std::path::Path;

fn lr_find(fx: &Fixture, out: &Path, extra: &[&str]) -> Vec<String> {
    let mut v = strings(&["lr-find", "--out", out.to_str().unwrap()]);
    v.extend(strings(&[
        "--data",
        fx.data.to_str().unwrap(),
        "--embeddings",
        fx.glove.to_str().unwrap(),
        "--cache",
        fx.cache.to_str().unwrap(),
        "--hidden",
        "8",
        "--layers",
        "1",
        "--batch-size",
        "16",
        "--dropout",
        "0.1",
        "--seed",
        "7",
        "--quiet",
    ]));
    v.extend(strings(extra));
    v
}

#[test]
fn suggests_a_rate_and_draws_the_curve() {
    let fx = Fixture::new(40);
    let out = fx.path("lr");
    let o = run(&lr_find(&fx, &out, &["--start-lr", "1e-4", "--end-lr", "30", "--steps", "60"]));
    assert!(o.status.success(), "lr-find failed: {}", stderr(&o));
    let last = stdout(&o).lines().last().unwrap_or_default().to_string();
    let (lr, steps) = last
        .strip_prefix("suggested_lr=")
        .and_then(|r| r.split_once(" steps="))
        .unwrap_or_else(|| panic!("last line {last:?}"));
    let lr: f64 = lr.parse().unwrap_or_else(|_| panic!("no suggestion on tiny learnable data: {last}"));
    let steps: usize = steps.parse().unwrap();
    assert!((1e-4..=30.0).contains(&lr), "suggestion {lr} outside the range tested");
    assert!((10..=60).contains(&steps), "{steps} steps");

    // One JSON line per step, the rate rising exponentially from --start-lr.
    let lines: Vec<serde_json::Value> = fs::read_to_string(out.join("lr-find.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), steps);
    let lrs: Vec<f64> = lines.iter().map(|l| l["lr"].as_f64().unwrap()).collect();
    assert!((lrs[0] / 1e-4 - 1.0).abs() < 1e-9, "first rate {}", lrs[0]);
    let ratio = (30.0f64 / 1e-4).powf(1.0 / 59.0);
    assert!(lrs.windows(2).all(|w| (w[1] / w[0] / ratio - 1.0).abs() < 1e-9), "not exponential: {lrs:?}");
    assert!(lrs.iter().any(|&r| (r / lr - 1.0).abs() < 1e-3), "the suggestion is one of the rates tried");
    // The loss fell somewhere before the suggestion's step: the smoothed curve's minimum is below its start.
    let smoothed: Vec<f64> = lines.iter().map(|l| l["smoothed"].as_f64().unwrap()).collect();
    assert!(smoothed.iter().cloned().fold(f64::MAX, f64::min) < smoothed[0]);

    let svg = fs::read_to_string(out.join("lr-find.svg")).unwrap();
    assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"));
    assert!(svg.contains("learning rate (log scale)") && svg.contains("suggested"), "{svg}");
    assert_eq!(svg.matches("<polyline").count(), 2, "batch loss and smoothed loss");
}

#[test]
fn arguments_are_checked_before_the_data_is_read() {
    let fx = Fixture::new(2);
    let out = fx.path("never");
    for (extra, expect) in [
        (vec!["--lr", "0.1"], "--lr does not apply to lr-find"),
        (vec!["--epochs", "2"], "--epochs does not apply to lr-find"),
        (vec!["--start-lr", "1", "--end-lr", "0.1"], "start < end"),
        (vec!["--steps", "3"], "--steps must be in 10..="),
        (vec!["--smooth", "1"], "--smooth"),
        (vec!["--diverge", "0.5"], "--diverge"),
        (vec!["--max-vocab", "0"], "--max-vocab must be at least 1"),
        // bf16 is a CPU precision: refused on the simulated GPU, as train refuses it
        (vec!["--precision", "bf16", "--device", "sim"], "--precision bf16 runs on the CPU only"),
    ] {
        let o = run(&lr_find(&fx, &out, &extra));
        assert_eq!(o.status.code(), Some(1), "{extra:?}: {}", stderr(&o));
        assert!(stderr(&o).contains(expect), "{extra:?}: {}", stderr(&o));
        assert!(!out.exists(), "{extra:?} created the output folder before failing");
    }
    let missing = fx.path("no-such-archive.tar.gz");
    let mut args = lr_find(&fx, &out, &[]);
    let i = args.iter().position(|a| a == "--data").unwrap();
    args[i + 1] = missing.display().to_string();
    let o = run(&args);
    assert!(stderr(&o).contains("no-such-archive.tar.gz: no such file or folder"), "{}", stderr(&o));
}
