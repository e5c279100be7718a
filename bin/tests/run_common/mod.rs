//! Helpers for the tests that run `finetune-imdb` as a program: a small learnable
//! aclImdb-format set, tiny GloVe vectors, and running, signalling and reading runs.
#![allow(dead_code)]

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

pub const BIN: &str = env!("CARGO_BIN_EXE_finetune-imdb");

/// A learnable set: positive reviews use positive words, negative ones negative
/// words, both padded with neutral filler of varying length; `per_class` reviews
/// per label and split.
pub fn synthetic_imdb(root: &Path, per_class: usize) -> PathBuf {
    let pos = ["great", "wonderful", "loved", "excellent", "moving"];
    let neg = ["awful", "boring", "hated", "terrible", "dull"];
    let filler = ["the", "movie", "film", "plot", "actor", "scene", "story", "and", "was", "it"];
    let dir = root.join("aclImdb");
    for (split, offset) in [("train", 0), ("test", 3)] {
        for (label, words) in [("pos", &pos), ("neg", &neg)] {
            let d = dir.join(split).join(label);
            fs::create_dir_all(&d).unwrap();
            for i in 0..per_class {
                let mut text = Vec::new();
                for j in 0..(5 + (i * 7 + offset) % 20) {
                    text.push(filler[(i * 3 + j) % filler.len()]);
                    if j % 4 == 0 {
                        text.push(words[(i + j) % words.len()]);
                    }
                }
                let rating = if label == "pos" { 9 } else { 2 };
                fs::write(d.join(format!("{i}_{rating}.txt")), text.join(" ") + ".<br />").unwrap();
            }
        }
    }
    dir
}

/// GloVe-format vectors for some of the synthetic words (dimension 4).
pub fn tiny_glove(root: &Path) -> PathBuf {
    let words = ["the", "movie", "great", "awful", "film", "boring", "loved", "."];
    let text: String = words
        .iter()
        .enumerate()
        .map(|(i, w)| format!("{w} {} {} {} {}\n", i as f32 * 0.1, 0.5 - i as f32 * 0.05, 0.2, -0.3))
        .collect();
    let p = root.join("glove.tiny.4d.txt");
    fs::write(&p, text).unwrap();
    p
}

/// A tiny BiLSTM run's flags (without `train`, `--out`).
pub fn tiny_flags(data: &Path, glove: &Path, cache: &Path) -> Vec<String> {
    let mut v: Vec<String> = vec![
        "--data".into(),
        data.display().to_string(),
        "--embeddings".into(),
        glove.display().to_string(),
        "--cache".into(),
        cache.display().to_string(),
    ];
    for f in [
        "--hidden",
        "8",
        "--layers",
        "1",
        "--batch-size",
        "16",
        "--lr",
        "0.02",
        "--dropout",
        "0.1",
        "--seed",
        "7",
        "--quiet",
    ] {
        v.push(f.into());
    }
    v
}

pub fn command(args: &[String]) -> Command {
    let mut c = Command::new(BIN);
    c.args(args).env("TAPEGRAD_NUM_THREADS", "1");
    c
}

pub fn run(args: &[String]) -> Output {
    command(args).output().expect("run finetune-imdb")
}

pub fn run_env(args: &[String], env: &[(&str, &str)]) -> Output {
    let mut c = command(args);
    for (k, v) in env {
        c.env(k, v);
    }
    c.output().expect("run finetune-imdb")
}

pub fn spawn(args: &[String], env: &[(&str, &str)]) -> Child {
    let mut c = command(args);
    for (k, v) in env {
        c.env(k, v);
    }
    c.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("spawn finetune-imdb")
}

pub fn strings(args: &[&str]) -> Vec<String> {
    args.iter().map(|s| s.to_string()).collect()
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).to_string()
}
pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).to_string()
}

/// Sends `signal` (`INT`, `KILL`) to a child process.
pub fn signal(child: &Child, signal: &str) {
    let ok = Command::new("kill").args([format!("-{signal}"), child.id().to_string()]).status().unwrap();
    assert!(ok.success(), "kill -{signal} failed");
}

/// Waits until `cond` holds (polling), failing after `secs`.
pub fn wait_for(what: &str, secs: u64, mut cond: impl FnMut() -> bool) {
    let t = Instant::now();
    while !cond() {
        assert!(t.elapsed() < Duration::from_secs(secs), "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Number of lines of a file (0 if missing).
pub fn lines(path: &Path) -> usize {
    fs::read_to_string(path).map(|t| t.lines().count()).unwrap_or(0)
}

/// The machine-readable last line: `test_accuracy=<f> reviews=<n>`.
pub fn last_line_accuracy(o: &Output) -> (f64, usize) {
    let out = stdout(o);
    let last = out.lines().last().unwrap_or_else(|| panic!("no output; stderr: {}", stderr(o)));
    let mut acc = None;
    let mut n = None;
    for kv in last.split_whitespace() {
        match kv.split_once('=') {
            Some(("test_accuracy", v)) => acc = v.parse().ok(),
            Some(("reviews", v)) => n = v.parse().ok(),
            _ => {}
        }
    }
    (acc.expect("test_accuracy=…"), n.expect("reviews=…"))
}

/// `run.json` of a checkpoint folder as JSON.
pub fn run_json(dir: &Path) -> serde_json::Value {
    serde_json::from_str(&fs::read_to_string(dir.join("run.json")).unwrap()).unwrap()
}

/// A fixture set: synthetic data, GloVe and a cache folder in a temporary folder.
pub struct Fixture {
    pub tmp: tempfile::TempDir,
    pub data: PathBuf,
    pub glove: PathBuf,
    pub cache: PathBuf,
}

impl Fixture {
    pub fn new(per_class: usize) -> Fixture {
        let tmp = tempfile::tempdir().unwrap();
        let data = synthetic_imdb(tmp.path(), per_class);
        let glove = tiny_glove(tmp.path());
        let cache = tmp.path().join("cache");
        Fixture { tmp, data, glove, cache }
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.tmp.path().join(name)
    }

    /// `train --out <out>` with the tiny flags and `extra`.
    pub fn train(&self, out: &Path, extra: &[&str]) -> Vec<String> {
        let mut v = strings(&["train", "--out", out.to_str().unwrap()]);
        v.extend(tiny_flags(&self.data, &self.glove, &self.cache));
        v.extend(strings(extra));
        v
    }

    /// `train --resume <out>/last --out <out>` and `extra`.
    pub fn resume(&self, out: &Path, extra: &[&str]) -> Vec<String> {
        let last = out.join("last");
        let mut v = strings(&[
            "train",
            "--resume",
            last.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
            "--quiet",
        ]);
        v.extend(strings(extra));
        v
    }
}
