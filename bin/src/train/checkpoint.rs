//! A run's checkpoint: a folder holding the weights (`model.safetensors`), the
//! optimizer state (`optimizer.safetensors`), the run's position and history
//! (`run.json`) and the model's assets (vocabulary or tokenizer).
//!
//! A folder is written whole under a temporary name and then renamed into place
//! ([`tapegrad_fsio::write_dir`]), so a crash or Ctrl-C never leaves a half-written
//! checkpoint: readers see the old folder or the new one.

use super::task::ModelSpec;
use crate::cli::TrainArgs;
use crate::report::{EpochMetrics, StepMetrics};
use anyhow::{Context, Result};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use std::fs;
use std::path::{Path, PathBuf};

/// Where a run stands: enough to continue exactly. Every state a run can be in
/// serialises to JSON and reads back (no `null` stands for a number).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RunState {
    /// Identifies the run across its checkpoints and its folder.
    #[serde(default)]
    pub run_id: String,
    /// The arguments the run started with, defaults filled in.
    pub args: TrainArgs,
    pub spec: ModelSpec,
    /// SHA-256 of the data set the run started on (see `validate::fingerprint`).
    #[serde(default)]
    pub data_fingerprint: String,
    /// The epoch in progress (0-based) and the next batch of it.
    pub epoch: usize,
    pub next_batch: usize,
    /// Optimizer steps taken.
    pub step: u64,
    pub total_steps: u64,
    /// The epoch whose weights are in `best/`.
    #[serde(default)]
    pub best: Best,
    pub epochs_without_improvement: usize,
    /// Running sums of the epoch in progress.
    pub epoch_loss_sum: f64,
    pub epoch_correct: usize,
    pub epoch_seen: usize,
    pub epoch_seconds: f64,
    pub history: Vec<EpochMetrics>,
    /// Every optimizer step's loss and accuracy, for `steps.jsonl` and the curves.
    #[serde(default)]
    pub steps: Vec<StepMetrics>,
    /// Stopped early (patience) or went through every epoch.
    pub finished: bool,
    /// Checkpoints written before `best` existed: a number, or `null` for "none yet".
    #[serde(default, skip_serializing, rename = "best_valid_loss")]
    legacy_best_valid_loss: Option<f64>,
}

/// Which epoch's weights `best/` holds.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum Best {
    /// No epoch has been validated yet (a run stopped in its first epoch).
    #[default]
    NoValidationYet,
    /// The epoch with the lowest validation loss so far.
    Epoch { epoch: usize, valid_loss: f64 },
    /// There is no validation set (`--valid-fraction 0`): the latest epoch is kept.
    Unvalidated { epoch: usize },
}

impl RunState {
    /// A run at its start.
    pub fn new(
        run_id: String,
        args: TrainArgs,
        spec: ModelSpec,
        data_fingerprint: String,
        total: u64,
    ) -> Self {
        RunState {
            run_id,
            args,
            spec,
            data_fingerprint,
            epoch: 0,
            next_batch: 0,
            step: 0,
            total_steps: total,
            best: Best::NoValidationYet,
            epochs_without_improvement: 0,
            epoch_loss_sum: 0.0,
            epoch_correct: 0,
            epoch_seen: 0,
            epoch_seconds: 0.0,
            history: Vec::new(),
            steps: Vec::new(),
            finished: false,
            legacy_best_valid_loss: None,
        }
    }
}

pub const MODEL_FILE: &str = "model.safetensors";
pub const OPTIMIZER_FILE: &str = "optimizer.safetensors";
pub const RUN_FILE: &str = "run.json";

/// Writes a checkpoint folder at `dir` atomically: `write` fills a temporary
/// folder beside it, which then replaces `dir`.
pub fn write_atomically(dir: &Path, write: impl FnOnce(&Path) -> Result<()>) -> Result<()> {
    tapegrad_fsio::write_dir(dir, write).with_context(|| format!("writing the checkpoint {}", dir.display()))
}

/// The checkpoint folder to read: `dir`, or the copy moved aside by an
/// interrupted [`write_atomically`].
pub fn resolve(dir: &Path) -> Result<PathBuf> {
    if dir.join(RUN_FILE).exists() {
        return Ok(dir.to_path_buf());
    }
    // `.last.old` that a start-up recovery has renamed back to `last`.
    let name = dir.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    if let Some(back) = name.strip_prefix('.').and_then(|n| n.strip_suffix(".old")) {
        let back = dir.with_file_name(back);
        if back.join(RUN_FILE).exists() {
            return Ok(back);
        }
    }
    let old = tapegrad_fsio::sibling(dir, "old");
    if old.join(RUN_FILE).exists() {
        eprintln!("note: {} is missing; reading {}, its last complete copy", dir.display(), old.display());
        return Ok(old);
    }
    anyhow::bail!("{}: not a checkpoint folder (no {RUN_FILE})", dir.display())
}

/// Writes `value` as JSON, atomically, after checking that the text reads back as
/// the same type (JSON has no NaN or infinity: serde would write them as `null`).
pub fn write_json<T: Serialize + DeserializeOwned>(path: &Path, value: &T) -> Result<()> {
    let text = serde_json::to_string_pretty(value)?;
    serde_json::from_str::<T>(&text).with_context(|| {
        format!("{}: the state would not read back (a non-finite number?)", path.display())
    })?;
    tapegrad_fsio::write_bytes(path, text.as_bytes()).with_context(|| format!("writing {}", path.display()))
}

pub fn read_run(dir: &Path) -> Result<RunState> {
    let path = dir.join(RUN_FILE);
    let text = fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    let mut run: RunState =
        serde_json::from_str(&text).with_context(|| format!("{}: not a valid run state", path.display()))?;
    if let (Best::NoValidationYet, Some(loss), Some(last)) =
        (&run.best, run.legacy_best_valid_loss.take(), run.history.last())
    {
        // An older checkpoint: the best loss without its epoch; find the epoch.
        let epoch = run.history.iter().find(|e| e.valid_loss == Some(loss)).map_or(last.epoch, |e| e.epoch);
        run.best = Best::Epoch { epoch, valid_loss: loss };
    }
    Ok(run)
}
