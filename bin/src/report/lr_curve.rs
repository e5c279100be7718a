//! `lr-find.svg`: the learning-rate range test's loss against the learning rate on
//! a log axis (ticks at decades): each batch's loss (faint), the smoothed loss (the
//! line), the suggested rate (a dashed line) and the minimum of the smoothed loss.

use super::curves::Axis;
use crate::train::lr_find::LrPoint;
use std::fmt::Write as _;

const LOSS: &str = "#1f77b4";
const MARK: &str = "#d62728";

/// The picture of a range test; `suggestion` indexes `points`.
pub fn lr_find_svg(points: &[LrPoint], suggestion: Option<usize>, model: &str) -> String {
    let (w, h) = (760.0, 460.0);
    let (x0, y0, pw, ph) = (80.0, 60.0, w - 120.0, h - 130.0);
    let mut svg = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{h}\" \
         font-family=\"sans-serif\" font-size=\"12\">\n<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n"
    );
    let _ = writeln!(
        svg,
        "<text x=\"{}\" y=\"28\" text-anchor=\"middle\" font-size=\"15\" font-weight=\"bold\">\
         learning-rate range test ({model}, {} steps)</text>",
        x0 + pw / 2.0,
        points.len()
    );
    // x: log10 of the rate, whole decades; y: the smoothed loss's range (raw losses clamped).
    let logs: Vec<f64> = points.iter().map(|p| p.lr.log10()).collect();
    let (lx_lo, lx_hi) = logs.iter().fold((f64::MAX, f64::MIN), |(a, b), &v| (a.min(v), b.max(v)));
    let (lx_lo, lx_hi) =
        if points.is_empty() { (-7.0, 1.0) } else { (lx_lo.floor(), lx_hi.ceil().max(lx_lo.floor() + 1.0)) };
    let finite = points.iter().flat_map(|p| [p.smoothed]).filter(|v| v.is_finite());
    let (lo, hi) = finite.fold((f64::MAX, f64::MIN), |(a, b), v| (a.min(v), b.max(v)));
    let y = if lo > hi { Axis::fit(0.0, 1.0) } else { Axis::fit(lo, hi) };
    let px = |lr: f64| x0 + pw * (lr.log10() - lx_lo) / (lx_hi - lx_lo);
    let py = |v: f64| y0 + ph * (1.0 - (v.clamp(y.lo, y.hi) - y.lo) / (y.hi - y.lo));
    for v in y.ticks() {
        let _ = writeln!(
            svg,
            "<line x1=\"{x0}\" y1=\"{0:.1}\" x2=\"{1}\" y2=\"{0:.1}\" stroke=\"#eee\"/>\n\
             <text x=\"{2}\" y=\"{3:.1}\" text-anchor=\"end\">{4}</text>",
            py(v),
            x0 + pw,
            x0 - 6.0,
            py(v) + 4.0,
            y.label(v, 0)
        );
    }
    for d in (lx_lo as i32)..=(lx_hi as i32) {
        let x = px(10f64.powi(d));
        let _ = writeln!(
            svg,
            "<line x1=\"{x:.1}\" y1=\"{y0}\" x2=\"{x:.1}\" y2=\"{0}\" stroke=\"#eee\"/>\n\
             <text x=\"{x:.1}\" y=\"{1}\" text-anchor=\"middle\">1e{d}</text>",
            y0 + ph,
            y0 + ph + 18.0
        );
    }
    let _ = writeln!(
        svg,
        "<rect x=\"{x0}\" y=\"{y0}\" width=\"{pw}\" height=\"{ph}\" fill=\"none\" stroke=\"#999\"/>\n\
         <text x=\"{}\" y=\"{}\" text-anchor=\"middle\">learning rate (log scale)</text>\n\
         <text transform=\"translate({},{}) rotate(-90)\" text-anchor=\"middle\">loss</text>",
        x0 + pw / 2.0,
        y0 + ph + 40.0,
        x0 - 50.0,
        y0 + ph / 2.0
    );
    let line = |value: fn(&LrPoint) -> f64, style: &str| {
        let pts: Vec<String> = points
            .iter()
            .filter(|p| value(p).is_finite())
            .map(|p| format!("{:.1},{:.1}", px(p.lr), py(value(p))))
            .collect();
        format!("<polyline fill=\"none\" {style} points=\"{}\"/>", pts.join(" "))
    };
    let _ = writeln!(svg, "{}", line(|p| p.loss, &format!("stroke=\"{LOSS}\" stroke-opacity=\"0.25\"")));
    let _ = writeln!(svg, "{}", line(|p| p.smoothed, &format!("stroke=\"{LOSS}\" stroke-width=\"2\"")));
    if let Some(m) =
        points.iter().filter(|p| p.smoothed.is_finite()).min_by(|a, b| a.smoothed.total_cmp(&b.smoothed))
    {
        let _ = writeln!(
            svg,
            "<circle cx=\"{:.1}\" cy=\"{:.1}\" r=\"4\" fill=\"none\" stroke=\"{LOSS}\" stroke-width=\"2\"/>",
            px(m.lr),
            py(m.smoothed)
        );
    }
    if let Some(p) = suggestion.and_then(|i| points.get(i)) {
        let x = px(p.lr);
        let _ = writeln!(
            svg,
            "<line x1=\"{x:.1}\" y1=\"{y0}\" x2=\"{x:.1}\" y2=\"{0}\" stroke=\"{MARK}\" stroke-dasharray=\"5 4\"/>\n\
             <circle cx=\"{x:.1}\" cy=\"{1:.1}\" r=\"4.5\" fill=\"{MARK}\"/>\n\
             <text x=\"{2:.1}\" y=\"{3}\" fill=\"{MARK}\">suggested {4:.1e}</text>",
            y0 + ph,
            py(p.smoothed),
            x + 6.0,
            y0 + 16.0,
            p.lr
        );
    }
    // Legend, above the plot.
    let _ = writeln!(
        svg,
        "<line x1=\"{x0}\" y1=\"46\" x2=\"{0}\" y2=\"46\" stroke=\"{LOSS}\" stroke-opacity=\"0.35\"/>\n\
         <text x=\"{1}\" y=\"50\">batch loss</text>\n\
         <line x1=\"{2}\" y1=\"46\" x2=\"{3}\" y2=\"46\" stroke=\"{LOSS}\" stroke-width=\"2\"/>\n\
         <text x=\"{4}\" y=\"50\">smoothed (○ its minimum)</text>\n\
         <line x1=\"{5}\" y1=\"46\" x2=\"{6}\" y2=\"46\" stroke=\"{MARK}\" stroke-dasharray=\"5 4\"/>\n\
         <text x=\"{7}\" y=\"50\">suggestion: steepest descent before the minimum</text>",
        x0 + 20.0,
        x0 + 25.0,
        x0 + 110.0,
        x0 + 130.0,
        x0 + 135.0,
        x0 + 300.0,
        x0 + 320.0,
        x0 + 325.0
    );
    svg.push_str("</svg>\n");
    svg
}
