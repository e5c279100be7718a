//! `curves.svg`: the learning curves of a run. Two panels, loss and accuracy,
//! against the optimizer step: every step's training value (faint), their
//! moving average (the line), and each epoch's validation value (points at the
//! step where the epoch ended), with dashed lines at epoch ends, ticks at round
//! numbers and the legend above the plot.

use super::{EpochMetrics, StepMetrics};
use std::fmt::Write as _;

const TRAIN: &str = "#1f77b4";
const VALID: &str = "#d62728";

/// Reads one number of a step or an epoch.
type StepValue = fn(&StepMetrics) -> f64;
type EpochValue = fn(&EpochMetrics) -> Option<f64>;

/// The picture of a run so far (`steps` may be empty for runs logged per epoch only).
pub fn curves_svg(epochs: &[EpochMetrics], steps: &[StepMetrics]) -> String {
    let (w, h) = (1000.0, 420.0);
    let mut svg = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{h}\" \
         font-family=\"sans-serif\" font-size=\"12\">\n<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n"
    );
    let panels: [(&str, StepValue, EpochValue, EpochValue); 2] = [
        ("loss", |s| s.loss, |e| Some(e.train_loss), |e| e.valid_loss),
        ("accuracy", |s| s.accuracy, |e| Some(e.train_accuracy), |e| e.valid_accuracy),
    ];
    for (p, (title, step_value, epoch_train, epoch_valid)) in panels.into_iter().enumerate() {
        let frame = Frame { x0: 70.0 + p as f64 * (w / 2.0), y0: 70.0, w: w / 2.0 - 100.0, h: h - 130.0 };
        // Train: per step when logged, else the epochs' means.
        let train: Vec<(f64, f64)> = if steps.is_empty() {
            epochs.iter().filter_map(|e| Some((e.step as f64, epoch_train(e)?))).collect()
        } else {
            steps.iter().map(|s| (s.step as f64, step_value(s))).collect()
        };
        let valid: Vec<(f64, f64)> =
            epochs.iter().filter_map(|e| Some((e.step as f64, epoch_valid(e)?))).collect();
        let smooth = moving_average(&train);
        let (xs, ys): (Vec<f64>, Vec<f64>) =
            train.iter().chain(&valid).copied().filter(|(x, y)| x.is_finite() && y.is_finite()).unzip();
        let x_axis = Axis::fit(0.0, xs.iter().fold(1.0, |a: f64, &b| a.max(b)));
        let (lo, hi) = ys.iter().fold((f64::MAX, f64::MIN), |(a, b), &v| (a.min(v), b.max(v)));
        let y_axis = if ys.is_empty() { Axis::fit(0.0, 1.0) } else { Axis::fit(lo, hi) };
        frame.draw_axes(&mut svg, title, &x_axis, &y_axis);
        for e in epochs {
            let x = frame.x(&x_axis, e.step as f64);
            let _ = writeln!(
                svg,
                "<line x1=\"{x:.1}\" y1=\"{:.1}\" x2=\"{x:.1}\" y2=\"{:.1}\" stroke=\"#bbb\" stroke-dasharray=\"4 3\"/>\n\
                 <text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\" fill=\"#888\" font-size=\"10\">epoch {}</text>",
                frame.y0,
                frame.y0 + frame.h,
                x - 3.0,
                frame.y0 + frame.h - 5.0,
                e.epoch
            );
        }
        let line = |pts: &[(f64, f64)], style: &str| {
            let pts: Vec<String> = pts
                .iter()
                .filter(|(x, y)| x.is_finite() && y.is_finite())
                .map(|&(x, y)| format!("{:.1},{:.1}", frame.x(&x_axis, x), frame.y(&y_axis, y)))
                .collect();
            format!("<polyline fill=\"none\" {style} points=\"{}\"/>", pts.join(" "))
        };
        if !steps.is_empty() {
            let _ = writeln!(svg, "{}", line(&train, &format!("stroke=\"{TRAIN}\" stroke-opacity=\"0.25\"")));
        }
        let _ = writeln!(svg, "{}", line(&smooth, &format!("stroke=\"{TRAIN}\" stroke-width=\"2\"")));
        for &(x, y) in valid.iter().filter(|(_, y)| y.is_finite()) {
            let (cx, cy) = (frame.x(&x_axis, x), frame.y(&y_axis, y));
            let _ = writeln!(
                svg,
                "<circle cx=\"{cx:.1}\" cy=\"{cy:.1}\" r=\"4.5\" fill=\"{VALID}\"/>\n\
                 <text x=\"{:.1}\" y=\"{:.1}\" fill=\"{VALID}\" font-size=\"10\">{}</text>",
                cx + 6.0,
                if cy < frame.y0 + 16.0 { cy + 15.0 } else { cy - 6.0 },
                y_axis.label(y, 1)
            );
        }
        // Legend, above the plot.
        let (lx, ly) = (frame.x0, frame.y0 - 14.0);
        let _ = writeln!(
            svg,
            "<line x1=\"{lx}\" y1=\"{ly}\" x2=\"{}\" y2=\"{ly}\" stroke=\"{TRAIN}\" stroke-width=\"2\"/>\n\
             <text x=\"{}\" y=\"{}\">train ({})</text>\n\
             <circle cx=\"{}\" cy=\"{ly}\" r=\"4.5\" fill=\"{VALID}\"/>\n\
             <text x=\"{}\" y=\"{}\">validation (per epoch)</text>",
            lx + 20.0,
            lx + 25.0,
            ly + 4.0,
            if steps.is_empty() { "epoch mean" } else { "per step, moving average" },
            lx + 260.0,
            lx + 268.0,
            ly + 4.0
        );
    }
    svg.push_str("</svg>\n");
    svg
}

/// A trailing moving average over a window of about a twentieth of the points
/// (at least 1, at most 50): smooth enough to read the trend of a noisy
/// per-batch loss, short enough to follow it.
fn moving_average(points: &[(f64, f64)]) -> Vec<(f64, f64)> {
    let window = (points.len() / 20).clamp(1, 50);
    let mut sum = 0.0;
    let mut out = Vec::with_capacity(points.len());
    for (i, &(x, y)) in points.iter().enumerate() {
        sum += y;
        if i >= window {
            sum -= points[i - window].1;
        }
        out.push((x, sum / (i + 1).min(window) as f64));
    }
    out
}

/// An axis from `lo` to `hi` with ticks every `step` (1, 2 or 5 × 10ᵏ).
pub(super) struct Axis {
    pub(super) lo: f64,
    pub(super) hi: f64,
    pub(super) step: f64,
}

impl Axis {
    /// Round ends and about five ticks covering [lo, hi].
    pub(super) fn fit(lo: f64, hi: f64) -> Axis {
        let (lo, hi) = if hi - lo < 1e-9 { (lo - 0.5, hi + 0.5) } else { (lo, hi) };
        let raw = (hi - lo) / 5.0;
        let mag = 10f64.powf(raw.log10().floor());
        let step =
            [1.0, 2.0, 5.0, 10.0].into_iter().map(|m| m * mag).find(|&s| s >= raw).unwrap_or(10.0 * mag);
        Axis { lo: (lo / step).floor() * step, hi: (hi / step).ceil() * step, step }
    }

    pub(super) fn ticks(&self) -> Vec<f64> {
        let n = ((self.hi - self.lo) / self.step).round() as usize;
        (0..=n).map(|i| self.lo + i as f64 * self.step).collect()
    }

    /// `v` with as many decimals as the tick step needs (plus `extra`).
    pub(super) fn label(&self, v: f64, extra: usize) -> String {
        let decimals = (-self.step.log10().floor()).max(0.0) as usize + extra;
        format!("{v:.decimals$}")
    }
}

/// Where a panel's plot area lies on the page.
struct Frame {
    x0: f64,
    y0: f64,
    w: f64,
    h: f64,
}

impl Frame {
    fn x(&self, a: &Axis, v: f64) -> f64 {
        self.x0 + self.w * (v - a.lo) / (a.hi - a.lo)
    }

    fn y(&self, a: &Axis, v: f64) -> f64 {
        self.y0 + self.h * (1.0 - (v - a.lo) / (a.hi - a.lo))
    }

    /// Frame, grid, tick labels, the panel's title and the axis names.
    fn draw_axes(&self, svg: &mut String, title: &str, x: &Axis, y: &Axis) {
        let (x0, y0, w, h) = (self.x0, self.y0, self.w, self.h);
        let _ = writeln!(
            svg,
            "<text x=\"{}\" y=\"{}\" text-anchor=\"middle\" font-size=\"15\" font-weight=\"bold\">{title}</text>",
            x0 + w / 2.0,
            y0 - 40.0
        );
        for v in y.ticks() {
            let py = self.y(y, v);
            let _ = writeln!(
                svg,
                "<line x1=\"{x0}\" y1=\"{py:.1}\" x2=\"{}\" y2=\"{py:.1}\" stroke=\"#eee\"/>\n\
                 <text x=\"{}\" y=\"{:.1}\" text-anchor=\"end\">{}</text>",
                x0 + w,
                x0 - 6.0,
                py + 4.0,
                y.label(v, 0)
            );
        }
        for v in x.ticks() {
            let px = self.x(x, v);
            let _ = writeln!(
                svg,
                "<line x1=\"{px:.1}\" y1=\"{}\" x2=\"{px:.1}\" y2=\"{}\" stroke=\"#999\"/>\n\
                 <text x=\"{px:.1}\" y=\"{}\" text-anchor=\"middle\">{}</text>",
                y0 + h,
                y0 + h + 5.0,
                y0 + h + 18.0,
                x.label(v, 0)
            );
        }
        let _ = writeln!(
            svg,
            "<rect x=\"{x0}\" y=\"{y0}\" width=\"{w}\" height=\"{h}\" fill=\"none\" stroke=\"#999\"/>\n\
             <text x=\"{}\" y=\"{}\" text-anchor=\"middle\">optimizer step</text>\n\
             <text transform=\"translate({},{}) rotate(-90)\" text-anchor=\"middle\">{title}</text>",
            x0 + w / 2.0,
            y0 + h + 38.0,
            x0 - 50.0,
            y0 + h / 2.0
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn axes_have_round_ticks() {
        let a = Axis::fit(0.0, 187.0);
        assert_eq!(a.step, 50.0);
        assert_eq!(a.ticks(), [0.0, 50.0, 100.0, 150.0, 200.0]);
        let a = Axis::fit(0.31, 0.69);
        assert_eq!(a.step, 0.1);
        assert_eq!(a.label(0.3, 0), "0.3");
        assert!(a.ticks().len() >= 4);
    }

    #[test]
    fn moving_average_follows_a_trend_and_smooths_noise() {
        let pts: Vec<(f64, f64)> = (0..200).map(|i| (i as f64, if i % 2 == 0 { 1.0 } else { 0.0 })).collect();
        let m = moving_average(&pts);
        assert_eq!(m.len(), 200);
        assert!(m[100..].iter().all(|&(_, y)| (y - 0.5).abs() <= 0.05), "window 10 averages 0/1 noise");
    }
}
