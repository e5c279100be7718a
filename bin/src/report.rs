//! What a run leaves behind besides checkpoints: metrics as JSON lines, a
//! training-curves picture (SVG) and a summary table.

use serde::Serialize;
use std::fmt::Write as _;
use std::io::Write as _;
use std::path::{Path, PathBuf};

/// One epoch's numbers.
#[derive(Clone, Debug, Serialize, serde::Deserialize, PartialEq)]
pub struct EpochMetrics {
    pub epoch: usize,
    pub train_loss: f64,
    pub train_accuracy: f64,
    pub valid_loss: f64,
    pub valid_accuracy: f64,
    pub seconds: f64,
    pub reviews_per_second: f64,
}

/// Appends one JSON object per line to `path` (created if missing).
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

/// Reads one number of an epoch (a series of the plot).
type Series = fn(&EpochMetrics) -> f64;

/// Train and validation loss (left) and accuracy (right) per epoch, as an SVG.
pub fn curves_svg(epochs: &[EpochMetrics]) -> String {
    let (w, h, pad) = (900.0, 360.0, 50.0);
    let panel_w = (w - 3.0 * pad) / 2.0;
    let mut svg = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{h}\" font-family=\"sans-serif\" font-size=\"12\">\n\
         <rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n"
    );
    let panels: [(&str, Series, Series); 2] = [
        ("loss", |e| e.train_loss, |e| e.valid_loss),
        ("accuracy", |e| e.train_accuracy, |e| e.valid_accuracy),
    ];
    for (p, (title, train, valid)) in panels.iter().enumerate() {
        let x0 = pad + p as f64 * (panel_w + pad);
        let (y0, ph) = (pad, h - 2.0 * pad);
        let values: Vec<f64> =
            epochs.iter().flat_map(|e| [train(e), valid(e)]).filter(|v| v.is_finite()).collect();
        let (mut lo, mut hi) = values.iter().fold((f64::MAX, f64::MIN), |(a, b), &v| (a.min(v), b.max(v)));
        if values.is_empty() {
            (lo, hi) = (0.0, 1.0);
        }
        if hi - lo < 1e-9 {
            (lo, hi) = (lo - 0.5, hi + 0.5);
        }
        let n = epochs.len().max(2) as f64 - 1.0;
        let px = |i: usize| x0 + panel_w * i as f64 / n;
        let py = |v: f64| y0 + ph * (1.0 - (v - lo) / (hi - lo));
        let _ = writeln!(
            svg,
            "<rect x=\"{x0}\" y=\"{y0}\" width=\"{panel_w}\" height=\"{ph}\" fill=\"none\" stroke=\"#999\"/>\n\
             <text x=\"{}\" y=\"{}\" text-anchor=\"middle\" font-size=\"14\">{title}</text>\n\
             <text x=\"{}\" y=\"{}\" text-anchor=\"end\">{hi:.3}</text>\n\
             <text x=\"{}\" y=\"{}\" text-anchor=\"end\">{lo:.3}</text>\n\
             <text x=\"{}\" y=\"{}\" text-anchor=\"middle\">epoch</text>",
            x0 + panel_w / 2.0,
            y0 - 10.0,
            x0 - 4.0,
            y0 + 4.0,
            x0 - 4.0,
            y0 + ph,
            x0 + panel_w / 2.0,
            y0 + ph + 30.0
        );
        for (series, color, f) in [("train", "#1f77b4", train), ("valid", "#d62728", valid)] {
            let pts: Vec<String> =
                epochs.iter().enumerate().map(|(i, e)| format!("{:.1},{:.1}", px(i), py(f(e)))).collect();
            let _ = writeln!(
                svg,
                "<polyline fill=\"none\" stroke=\"{color}\" stroke-width=\"2\" points=\"{}\"/>",
                pts.join(" ")
            );
            for (i, e) in epochs.iter().enumerate() {
                let _ = writeln!(
                    svg,
                    "<circle cx=\"{:.1}\" cy=\"{:.1}\" r=\"3\" fill=\"{color}\"/>",
                    px(i),
                    py(f(e))
                );
            }
            let ly = y0 + 16.0 + if series == "train" { 0.0 } else { 16.0 };
            let _ = writeln!(
                svg,
                "<text x=\"{}\" y=\"{ly}\" fill=\"{color}\">{series}</text>",
                x0 + panel_w - 50.0
            );
        }
        for (i, e) in epochs.iter().enumerate() {
            let _ = writeln!(
                svg,
                "<text x=\"{:.1}\" y=\"{}\" text-anchor=\"middle\">{}</text>",
                px(i),
                y0 + ph + 15.0,
                e.epoch
            );
        }
    }
    svg.push_str("</svg>\n");
    svg
}

/// A plain-text table of the epochs.
pub fn summary_table(epochs: &[EpochMetrics]) -> String {
    let mut s = String::from("epoch  train_loss  train_acc  valid_loss  valid_acc  seconds  reviews/s\n");
    for e in epochs {
        let _ = writeln!(
            s,
            "{:>5}  {:>10.4}  {:>9.4}  {:>10.4}  {:>9.4}  {:>7.1}  {:>9.1}",
            e.epoch,
            e.train_loss,
            e.train_accuracy,
            e.valid_loss,
            e.valid_accuracy,
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
                train_loss: 0.7 / i as f64,
                train_accuracy: 0.5 + 0.1 * i as f64,
                valid_loss: 0.75 / i as f64,
                valid_accuracy: 0.5 + 0.09 * i as f64,
                seconds: 10.0,
                reviews_per_second: 100.0,
            })
            .collect()
    }

    #[test]
    fn svg_has_both_panels_and_all_points() {
        let svg = curves_svg(&epochs());
        assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"));
        assert_eq!(svg.matches("<polyline").count(), 4);
        assert_eq!(svg.matches("<circle").count(), 12);
        assert!(svg.contains(">loss<") && svg.contains(">accuracy<"));
        // a single epoch and a NaN loss still draw
        let mut one = epochs()[..1].to_vec();
        one[0].valid_loss = f64::NAN;
        assert!(curves_svg(&one).contains("<polyline"));
    }

    #[test]
    fn metrics_append_as_json_lines() {
        let dir = tempfile::tempdir().unwrap();
        let log = MetricsLog::new(&dir.path().join("metrics.jsonl"));
        for e in epochs() {
            log.append(&e).unwrap();
        }
        let text = std::fs::read_to_string(log.path()).unwrap();
        let back: Vec<EpochMetrics> = text.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
        assert_eq!(back, epochs());
        assert_eq!(summary_table(&back).lines().count(), 4);
    }
}
