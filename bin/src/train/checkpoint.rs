//! A run's checkpoint: a folder holding the weights (`model.safetensors`), the
//! optimizer state (`optimizer.safetensors`), the run's position and history
//! (`run.json`) and the model's assets (vocabulary or tokenizer).
//!
//! A folder is written whole under a temporary name and then renamed into place
//! (every file fsynced first), so a crash or Ctrl-C never leaves a half-written
//! checkpoint: readers see the old folder or the new one.

use super::task::ModelSpec;
use crate::cli::TrainArgs;
use crate::report::EpochMetrics;
use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};
use std::fs;
use std::path::{Path, PathBuf};

/// Where a run stands: enough to continue exactly.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RunState {
    pub args: TrainArgs,
    pub spec: ModelSpec,
    /// The epoch in progress (0-based) and the next batch of it.
    pub epoch: usize,
    pub next_batch: usize,
    /// Optimizer steps taken.
    pub step: u64,
    pub total_steps: u64,
    pub best_valid_loss: f64,
    pub epochs_without_improvement: usize,
    /// Running sums of the epoch in progress.
    pub epoch_loss_sum: f64,
    pub epoch_correct: usize,
    pub epoch_seen: usize,
    pub epoch_seconds: f64,
    pub history: Vec<EpochMetrics>,
    /// Last step whose loss was finite.
    pub finished: bool,
}

pub const MODEL_FILE: &str = "model.safetensors";
pub const OPTIMIZER_FILE: &str = "optimizer.safetensors";
pub const RUN_FILE: &str = "run.json";

/// Writes a checkpoint folder at `dir` atomically: `write` fills a temporary
/// folder beside it, which then replaces `dir`.
pub fn write_atomically(dir: &Path, write: impl FnOnce(&Path) -> Result<()>) -> Result<()> {
    let parent = dir.parent().unwrap_or(Path::new("."));
    fs::create_dir_all(parent).with_context(|| format!("creating {}", parent.display()))?;
    let name = dir.file_name().context("checkpoint path has no folder name")?.to_string_lossy().to_string();
    let tmp = parent.join(format!(".{name}.tmp"));
    let old = parent.join(format!(".{name}.old"));
    let _ = fs::remove_dir_all(&tmp);
    fs::create_dir_all(&tmp).with_context(|| format!("creating {}", tmp.display()))?;
    write(&tmp)?;
    for entry in fs::read_dir(&tmp)? {
        let path = entry?.path();
        fs::File::open(&path)
            .and_then(|f| f.sync_all())
            .with_context(|| format!("syncing {}", path.display()))?;
    }
    let _ = fs::remove_dir_all(&old);
    if dir.exists() {
        fs::rename(dir, &old).with_context(|| format!("moving {} aside", dir.display()))?;
    }
    fs::rename(&tmp, dir).with_context(|| format!("renaming {} to {}", tmp.display(), dir.display()))?;
    if let Ok(d) = fs::File::open(parent) {
        let _ = d.sync_all();
    }
    let _ = fs::remove_dir_all(&old);
    Ok(())
}

/// The checkpoint folder to read: `dir`, or the copy moved aside by an
/// interrupted [`write_atomically`].
pub fn resolve(dir: &Path) -> Result<PathBuf> {
    if dir.join(RUN_FILE).exists() {
        return Ok(dir.to_path_buf());
    }
    let name = dir.file_name().map(|n| n.to_string_lossy().to_string()).unwrap_or_default();
    let old = dir.parent().unwrap_or(Path::new(".")).join(format!(".{name}.old"));
    if old.join(RUN_FILE).exists() {
        return Ok(old);
    }
    anyhow::bail!("{}: not a checkpoint folder (no {RUN_FILE})", dir.display())
}

pub fn write_json(path: &Path, value: &impl Serialize) -> Result<()> {
    let text = serde_json::to_string_pretty(value)?;
    fs::write(path, text).with_context(|| format!("writing {}", path.display()))
}

pub fn read_run(dir: &Path) -> Result<RunState> {
    let path = dir.join(RUN_FILE);
    let text = fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    serde_json::from_str(&text).with_context(|| format!("{}: not a valid run state", path.display()))
}
