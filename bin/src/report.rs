//! What a run leaves behind besides checkpoints: metrics as JSON lines, a
//! training-curves picture (SVG) and a summary table.

use serde::Serialize;
use std::fmt::Write as _;
use std::io::Write as _;
use std::path::{Path, PathBuf};

mod curves;
mod lr_curve;
pub use curves::curves_svg;
pub use lr_curve::lr_find_svg;

/// One epoch's numbers. Without a validation set the `valid_*` fields are absent.
#[derive(Clone, Debug, Serialize, serde::Deserialize, PartialEq)]
pub struct EpochMetrics {
    pub epoch: usize,
    /// Optimizer steps taken when the epoch ended.
    #[serde(default)]
    pub step: u64,
    pub train_loss: f64,
    pub train_accuracy: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub valid_loss: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub valid_accuracy: Option<f64>,
    pub seconds: f64,
    pub reviews_per_second: f64,
}

/// One optimizer step's numbers (a line of `steps.jsonl`).
#[derive(Clone, Debug, Serialize, serde::Deserialize, PartialEq)]
pub struct StepMetrics {
    /// 1-based: the step's number after it was taken.
    pub step: u64,
    pub epoch: usize,
    /// The batch's mean loss and accuracy.
    pub loss: f64,
    pub accuracy: f64,
    /// The learning rate the step used.
    pub lr: f64,
}

/// `metrics.jsonl`, one line per epoch, and `steps.jsonl`, one line per step.
pub const METRICS_FILE: &str = "metrics.jsonl";
pub const STEPS_FILE: &str = "steps.jsonl";
pub const CURVES_FILE: &str = "curves.svg";

/// Writes `records` as JSON lines to `path`, replacing it atomically, so that the
/// file always holds exactly the run's records (a resumed run: no repeated lines).
pub fn write_json_lines<T: Serialize>(path: &Path, records: &[T]) -> std::io::Result<()> {
    tapegrad_fsio::write_file(path, |w| {
        for r in records {
            serde_json::to_writer(&mut *w, r).map_err(std::io::Error::other)?;
            writeln!(w)?;
        }
        Ok(())
    })
}

/// Appends one JSON object per line to `path` (created if missing); for the live
/// `steps.jsonl`, which [`write_json_lines`] rewrites from the checkpoint on resume.
pub struct MetricsLog {
    path: PathBuf,
}

impl MetricsLog {
    pub fn new(path: &Path) -> Self {
        MetricsLog { path: path.to_path_buf() }
    }

    pub fn append(&self, record: &impl Serialize) -> std::io::Result<()> {
        let mut f = std::fs::OpenOptions::new().create(true).append(true).open(&self.path)?;
        let line = serde_json::to_string(record).map_err(std::io::Error::other)?;
        writeln!(f, "{line}")
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// A plain-text table of the epochs.
pub fn summary_table(epochs: &[EpochMetrics]) -> String {
    let mut s = String::from("epoch  train_loss  train_acc  valid_loss  valid_acc  seconds  reviews/s\n");
    for e in epochs {
        let _ = writeln!(
            s,
            "{:>5}  {:>10.4}  {:>9.4}  {:>10}  {:>9}  {:>7.1}  {:>9.1}",
            e.epoch,
            e.train_loss,
            e.train_accuracy,
            e.valid_loss.map_or("-".into(), |v| format!("{v:.4}")),
            e.valid_accuracy.map_or("-".into(), |v| format!("{v:.4}")),
            e.seconds,
            e.reviews_per_second
        );
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn epochs() -> Vec<EpochMetrics> {
        (1..=3)
            .map(|i| EpochMetrics {
                epoch: i,
                step: 10 * i as u64,
                train_loss: 0.7 / i as f64,
                train_accuracy: 0.5 + 0.1 * i as f64,
                valid_loss: Some(0.75 / i as f64),
                valid_accuracy: Some(0.5 + 0.09 * i as f64),
                seconds: 10.0,
                reviews_per_second: 100.0,
            })
            .collect()
    }

    fn steps() -> Vec<StepMetrics> {
        (1..=30)
            .map(|s| StepMetrics {
                step: s,
                epoch: 1 + (s as usize - 1) / 10,
                loss: 0.7 / (1.0 + s as f64 / 10.0),
                accuracy: 0.5,
                lr: 1e-3,
            })
            .collect()
    }

    #[test]
    fn svg_draws_steps_smoothed_and_validation_points() {
        let svg = curves_svg(&epochs(), &steps());
        assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"));
        // per panel: raw steps (faint) and their moving average
        assert_eq!(svg.matches("<polyline").count(), 4);
        // per panel: 3 validation points and one legend marker
        assert_eq!(svg.matches("<circle").count(), 8);
        assert!(svg.contains(">loss<") && svg.contains(">accuracy<") && svg.contains(">optimizer step<"));
        // round x ticks over 30 steps
        for tick in [">0<", ">10<", ">20<", ">30<"] {
            assert!(svg.contains(tick), "x tick {tick}");
        }
        // a single epoch without validation and without step records still draws
        let mut one = epochs()[..1].to_vec();
        one[0].valid_loss = None;
        one[0].valid_accuracy = None;
        let svg = curves_svg(&one, &[]);
        assert!(svg.contains("<polyline") && svg.contains("epoch mean"));
    }

    #[test]
    fn json_lines_are_rewritten_whole() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("metrics.jsonl");
        write_json_lines(&path, &epochs()).unwrap();
        write_json_lines(&path, &epochs()[..2]).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        let back: Vec<EpochMetrics> = text.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
        assert_eq!(back, epochs()[..2]);
        assert!(!text.contains("null"));
        assert_eq!(summary_table(&back).lines().count(), 3);
        let log = MetricsLog::new(&path);
        log.append(&epochs()[2]).unwrap();
        assert_eq!(std::fs::read_to_string(log.path()).unwrap().lines().count(), 3);
    }
}
