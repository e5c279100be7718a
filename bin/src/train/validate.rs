//! Every check on `train`'s arguments that can be made before any data is read,
//! the ones that need the data's size, and the rules of `--resume`.

use super::checkpoint::RunState;
use crate::cli::{ModelKind, PrecisionKind, TrainArgs};
use crate::data::imdb::ImdbData;
use anyhow::{bail, Result};
use sha2::{Digest, Sha256};
use std::path::Path;

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
    let mut bad = number_problems(a);
    let mut need = |ok: bool, msg: String| {
        if !ok {
            bad.push(msg);
        }
    };
    need(a.data.is_some(), "--data is required (an aclImdb folder or .tar.gz archive)".into());
    match a.model {
        ModelKind::Bilstm => {
            need(a.max_len != Some(0), "--max-len must be at least 1".into());
            need(!a.was_given("pretrained"), "--pretrained is for --model bert".into());
            need(
                a.precision == PrecisionKind::F32,
                "--precision bf16 is for --model bert (the transformer's linear layers and attention); the BiLSTM \
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
    // bf16 is a CPU precision (a `--device` that does not parse was refused before this)
    if let Ok(device) = a.device.parse() {
        if let Err(e) = tapegrad_autograd::precision::check_device(a.precision.into(), device) {
            bad.push(e);
        }
    }
    for (flag, path) in [("data", &a.data), ("embeddings", &a.embeddings), ("pretrained", &a.pretrained)] {
        if let Some(p) = path.as_ref().filter(|p| !p.exists()) {
            bad.push(format!("--{flag} {}: no such file or folder", p.display()));
        }
    }
    // the kind of each path, where it is known before reading it
    if let Some(p) = a.embeddings.as_ref().filter(|p| p.is_dir()) {
        bad.push(format!("--embeddings {}: a folder; expected a GloVe text file", p.display()));
    }
    if let Some(p) = a.pretrained.as_ref().filter(|p| p.exists() && !p.is_dir()) {
        bad.push(format!(
            "--pretrained {}: not a folder; expected one with config.json, model.safetensors and tokenizer.json",
            p.display()
        ));
    }
    for (flag, path) in [("out", &a.out), ("cache", &a.cache)] {
        bad.extend(folder_problem(flag, path));
    }
    if bad.is_empty() {
        return Ok(());
    }
    bail!("invalid arguments:\n  {}", bad.join("\n  "))
}

/// What is wrong with `path` as a folder the run writes into, if anything: it must be a
/// folder, or not be there yet with the nearest thing above it that is there a folder
/// (a path under a file fails only when the run first writes, after minutes of work).
fn folder_problem(flag: &str, path: &Path) -> Option<String> {
    let mut at = Some(path);
    while let Some(p) = at {
        if p.exists() {
            return match p.is_dir() {
                true => None,
                false if p == path => Some(format!("--{flag} {}: not a folder", path.display())),
                false => Some(format!(
                    "--{flag} {}: cannot be made: {} is not a folder",
                    path.display(),
                    p.display()
                )),
            };
        }
        at = p.parent().filter(|p| !p.as_os_str().is_empty());
    }
    None
}

/// The BiLSTM's recurrent layers' weights (the embeddings, whose size needs the data, left
/// out): per layer and direction W_ih (4H, in), W_hh (4H, H) and two biases of 4H, with
/// in = the embedding size (counted as 0 here) in layer 0 and 2H above it. Training holds
/// each weight 4 times (itself, its gradient, Adam's two moments), in f32.
fn bilstm_training_bytes(hidden: usize, layers: usize) -> f64 {
    let h = hidden as f64;
    let first = 2.0 * 4.0 * h * (h + 2.0);
    let above = 2.0 * 4.0 * h * (2.0 * h + h + 2.0);
    (first + (layers as f64 - 1.0) * above) * 4.0 * 4.0
}

/// An error for `--hidden`/`--layers` whose weights alone, trained, would not fit in
/// `memory` bytes (this machine's, where known; 1 TiB otherwise): refused before any
/// work, where the allocation would otherwise abort the process.
fn bilstm_too_large(hidden: usize, layers: usize, memory: Option<u64>) -> Option<String> {
    let need = bilstm_training_bytes(hidden, layers);
    let gib = |b: f64| b / f64::from(1u32 << 30);
    let (have, whose) = match memory {
        Some(m) => (m as f64, format!("this machine's {:.1} GiB", gib(m as f64))),
        None => ((1u64 << 40) as f64, "1 TiB".to_string()),
    };
    (need > have).then(|| {
        format!(
            "--hidden {hidden} --layers {layers}: the BiLSTM's weights, their gradients and Adam's \
             moments alone would take {:.1} GiB, more than {whose}",
            gib(need)
        )
    })
}

/// This machine's memory in bytes (`MemTotal` of /proc/meminfo), where the OS says.
fn machine_memory() -> Option<u64> {
    let info = std::fs::read_to_string("/proc/meminfo").ok()?;
    let kb = info.lines().find_map(|l| l.strip_prefix("MemTotal:"))?.trim().strip_suffix("kB")?;
    kb.trim().parse::<u64>().ok().map(|kb| kb * 1024)
}

/// The problems of the flags that are numbers (each message names its flag): what a new
/// run checks first, and what a resumed run checks again in its stored arguments.
pub fn number_problems(a: &TrainArgs) -> Vec<String> {
    let mut bad: Vec<String> = Vec::new();
    let mut need = |ok: bool, msg: String| {
        if !ok {
            bad.push(msg);
        }
    };
    let positive = |v: Option<f64>| v.is_none_or(|v| v.is_finite() && v > 0.0);
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
    let sized = a.model == ModelKind::Bilstm && a.hidden >= 1 && a.layers >= 1;
    let too_large = sized.then(|| bilstm_too_large(a.hidden, a.layers, machine_memory())).flatten();
    need(too_large.is_none(), too_large.clone().unwrap_or_default());
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
    bad
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

#[cfg(test)]
mod tests {
    use super::*;

    /// A folder the run writes into may be there or be made, not sit under a file.
    #[test]
    fn folders_to_write_into_are_checked_before_the_run() {
        let tmp = tempfile::tempdir().unwrap();
        let file = tmp.path().join("notes.txt");
        std::fs::write(&file, "x").unwrap();
        assert_eq!(folder_problem("out", tmp.path()), None);
        assert_eq!(folder_problem("out", &tmp.path().join("new/runs/a")), None);
        assert_eq!(folder_problem("cache", Path::new("relative-not-there")), None);
        let said = folder_problem("cache", &file).unwrap();
        assert!(said.starts_with("--cache ") && said.ends_with("notes.txt: not a folder"), "{said}");
        let said = folder_problem("out", &file.join("runs/a")).unwrap();
        assert!(
            said.contains("runs/a: cannot be made:") && said.ends_with("notes.txt is not a folder"),
            "{said}"
        );
    }

    /// The tutorial's BiLSTM (256 hidden, 2 layers) fits anywhere; sizes that would abort
    /// the process at their first allocation are refused with the flags named.
    #[test]
    fn bilstm_sizes_are_checked_against_the_machine() {
        // 2·4·256·258 + 2·4·256·770 floats, 16 bytes each (weights, gradients, moments)
        assert_eq!(
            bilstm_training_bytes(256, 2),
            (2.0 * 4.0 * 256.0 * 258.0 + 2.0 * 4.0 * 256.0 * 770.0) * 16.0
        );
        assert_eq!(bilstm_too_large(256, 2, Some(1 << 30)), None);
        let msg = bilstm_too_large(100_000_000, 1, Some(64 << 30)).expect("refused");
        assert!(msg.contains("--hidden 100000000") && msg.contains("64.0 GiB"), "{msg}");
        let msg = bilstm_too_large(256, 1_000_000_000, None).expect("1e9 layers refused without /proc");
        assert!(msg.ends_with("more than 1 TiB"), "{msg}");
        assert!(machine_memory().is_none_or(|m| m > 1 << 20));
    }
}
