//! Every check on `train`'s arguments that can be made before any data is read,
//! the ones that need the data's size, and the rules of `--resume`.

use super::checkpoint::RunState;
use crate::cli::{ModelKind, PrecisionKind, TrainArgs};
use crate::data::imdb::ImdbData;
use anyhow::{bail, Result};
use sha2::{Digest, Sha256};

/// The BiLSTM's default cap on a review's length in tokens: the newer tutorial's
/// `max_length = 256`, which keeps a pathological review (megabytes of text) from
/// needing gigabytes for one batch.
pub const BILSTM_MAX_LEN: usize = 256;

/// Flags that only shape a BiLSTM (BERT's shape comes from `--pretrained`'s config).
const BILSTM_ONLY: [&str; 8] = [
    "embeddings",
    "hidden",
    "layers",
    "dropout",
    "forget_bias",
    "max_vocab",
    "min_freq",
    "freeze_embeddings",
];

/// Flags that may differ from the checkpoint's when resuming: where things go and
/// how the run is watched, not what it computes. `--data` may name another copy
/// of the same data set (its fingerprint is checked).
const FREE_ON_RESUME: [&str; 10] =
    ["out", "cache", "quiet", "threads", "max_steps", "resume", "data", "device", "overwrite", "keep_epochs"];

/// Checks a new run's arguments (defaults filled in by `recipe`) before any data
/// is read; `max_positions` is BERT's `max_position_embeddings`.
pub fn check_args(a: &TrainArgs, max_positions: Option<usize>) -> Result<()> {
    let mut bad: Vec<String> = Vec::new();
    let mut need = |ok: bool, msg: String| {
        if !ok {
            bad.push(msg);
        }
    };
    let positive = |v: Option<f64>| v.is_none_or(|v| v.is_finite() && v > 0.0);
    need(a.data.is_some(), "--data is required (an aclImdb folder or .tar.gz archive)".into());
    need(a.epochs != Some(0), "--epochs must be at least 1".into());
    need(
        a.batch_size != Some(0),
        "--batch-size must be at least 1 (a batch_size of 0 makes no batches)".into(),
    );
    need(positive(a.lr), format!("--lr must be a positive number, got {}", a.lr.unwrap_or_default()));
    need(
        a.weight_decay.is_none_or(|v| v.is_finite() && v >= 0.0),
        format!("--weight-decay must be 0 or more, got {}", a.weight_decay.unwrap_or_default()),
    );
    need(
        a.warmup.is_none_or(|v| (0.0..1.0).contains(&v)),
        format!("--warmup is a fraction of all steps, in [0, 1), got {}", a.warmup.unwrap_or_default()),
    );
    need(positive(a.clip), format!("--clip must be a positive norm, got {}", a.clip.unwrap_or_default()));
    need(a.hidden >= 1, "--hidden must be at least 1".into());
    need(a.layers >= 1, "--layers must be at least 1".into());
    need((0.0..1.0).contains(&a.dropout), format!("--dropout must be in [0, 1), got {}", a.dropout));
    need(a.forget_bias.is_finite(), format!("--forget-bias must be a finite number, got {}", a.forget_bias));
    need(a.max_vocab >= 1, "--max-vocab must be at least 1".into());
    need(a.min_freq >= 1, "--min-freq must be at least 1".into());
    need(
        (0.0..0.5).contains(&a.valid_fraction),
        format!(
            "--valid-fraction must be in [0, 0.5) (more would hold out more reviews than it trains on), got {}",
            a.valid_fraction
        ),
    );
    need(a.limit_train != Some(0), "--limit-train 0 would train on nothing".into());
    need(a.limit_test != Some(0), "--limit-test 0 would test on nothing".into());
    need(a.threads != Some(0), "--threads must be at least 1".into());
    need(a.max_steps != Some(0), "--max-steps must be at least 1".into());
    need(a.patience != Some(0), "--patience must be at least 1".into());
    need(
        a.patience.is_none() || a.valid_fraction > 0.0,
        "--patience needs a validation set (--valid-fraction above 0)".into(),
    );
    match a.model {
        ModelKind::Bilstm => {
            need(a.max_len != Some(0), "--max-len must be at least 1".into());
            need(!a.was_given("pretrained"), "--pretrained is for --model bert".into());
            need(
                a.precision == PrecisionKind::F32,
                "--precision bf16 is for --model bert (the transformer's linear layers); the BiLSTM \
                 trains in f32"
                    .into(),
            );
        }
        ModelKind::Bert => {
            need(
                a.pretrained.is_some(),
                "--model bert needs --pretrained DIR (config.json, model.safetensors, tokenizer.json)".into(),
            );
            if let Some(dir) = a.pretrained.as_ref().filter(|d| d.is_dir()) {
                for f in ["config.json", "model.safetensors", "tokenizer.json"] {
                    let p = dir.join(f);
                    if !p.is_file() {
                        let what = if p.exists() { "is not a file" } else { "is missing" };
                        bad.push(format!("--pretrained {}: {f} {what}", dir.display()));
                    }
                }
            }
            for flag in BILSTM_ONLY.iter().filter(|f| a.was_given(f)) {
                bad.push(format!(
                    "--{} shapes the BiLSTM only; BERT's comes from --pretrained's config.json",
                    flag.replace('_', "-")
                ));
            }
            if let Some(m) = a.max_len {
                let cap = max_positions.unwrap_or(usize::MAX);
                if !(3..=cap).contains(&m) {
                    bad.push(format!(
                        "--max-len {m} for BERT must hold [CLS], a token and [SEP] and fit the model's \
                         {cap} positions: 3..={cap}"
                    ));
                }
            }
        }
    }
    for (flag, path) in [("data", &a.data), ("embeddings", &a.embeddings), ("pretrained", &a.pretrained)] {
        if let Some(p) = path.as_ref().filter(|p| !p.exists()) {
            bad.push(format!("--{flag} {}: no such file or folder", p.display()));
        }
    }
    if bad.is_empty() {
        return Ok(());
    }
    bail!("invalid arguments:\n  {}", bad.join("\n  "))
}

/// With `--resume`, the flags given again must keep their checkpointed values
/// (they shape the weights, the data order or the schedule).
pub fn check_resume_flags(given: &TrainArgs, run: &RunState) -> Result<()> {
    let (new, old) = (serde_json::to_value(given)?, serde_json::to_value(&run.args)?);
    let mut bad = Vec::new();
    for id in given.given.iter().filter(|id| !FREE_ON_RESUME.contains(&id.as_str())) {
        let (n, o) = (&new[id.as_str()], &old[id.as_str()]);
        // `--lr 0.001` against a stored `Some(0.001)`: both serialise to 0.001.
        if n != o {
            bad.push(format!("--{} {n} (the run was started with {o})", id.replace('_', "-")));
        }
    }
    if bad.is_empty() {
        return Ok(());
    }
    bail!(
        "these flags cannot change when resuming a run: {}; leave them out to continue as started",
        bad.join(", ")
    )
}

/// After the split: refuse to train or test on nothing, and say so when the
/// validation split came out empty.
pub fn check_sizes(a: &TrainArgs, train: usize, valid: usize, test: usize) -> Result<()> {
    let data = a.data.as_ref().map(|p| p.display().to_string()).unwrap_or_default();
    if train == 0 {
        bail!(
            "{data}: no reviews left to train on ({valid} held out by --valid-fraction {}{})",
            a.valid_fraction,
            a.limit_train.map(|n| format!(", --limit-train {n}")).unwrap_or_default()
        );
    }
    if valid == 0 && a.valid_fraction > 0.0 {
        eprintln!(
            "warning: --valid-fraction {} of {train} reviews selects none for validation: training \
             without validation (best/ is the last epoch)",
            a.valid_fraction
        );
    }
    if test == 0 {
        bail!("{data}: no test reviews (expected test/pos and test/neg)");
    }
    Ok(())
}

/// SHA-256 over every review read (split, id, label and text, in id order): the
/// same data set gives the same fingerprint from a folder or from the archive.
pub fn fingerprint(data: &ImdbData) -> String {
    let mut h = Sha256::new();
    for (split, reviews) in [("train", &data.train), ("test", &data.test)] {
        h.update((split.len() as u64).to_le_bytes());
        h.update(split);
        h.update((reviews.len() as u64).to_le_bytes());
        for r in reviews {
            for field in [r.id.as_bytes(), r.text.as_bytes()] {
                h.update((field.len() as u64).to_le_bytes());
                h.update(field);
            }
            h.update([r.label]);
        }
    }
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}
