//! `lr-find`: the learning-rate range test (L. Smith, "Cyclical Learning Rates for
//! Training Neural Networks", 2017, §3.3; fastai's `lr_find`).
//!
//! From the pretrained weights, train `n` batches with the rate rising
//! exponentially, ηᵢ = η₀ · (η_end/η₀)^(i/(n−1)); record each batch's loss ℓᵢ;
//! smooth it as it comes with a bias-corrected exponential moving average
//! aᵢ = β·aᵢ₋₁ + (1−β)·ℓᵢ, sᵢ = aᵢ / (1 − β^(i+1)), and stop when sᵢ exceeds
//! `diverge` × min s (or the loss is not finite). Afterwards the curve is smoothed
//! again without the average's lag (a centred mean over the same ~1/(1−β) steps:
//! the moving average trails the loss by about 1/(1−β) steps, which would move the
//! suggestion to higher rates). The suggestion is the rate where that curve falls
//! fastest against ln η (most negative ds/d ln η) before its minimum: fast enough
//! to learn, still well below the rate that blows up.

use super::interrupt::pause_point;
use super::{build_task, progress_bar, recipe, validate, with_defaults, Interrupt};
use crate::cli::{LrFindArgs, ModelKind};
use crate::data::batch::{BatchConfig, Batcher};
use crate::data::imdb::{read_imdb, Split};
use crate::data::seed::{self, Purpose};
use crate::data::split::{take_limit, train_valid_split, SplitOptions};
use crate::report::lr_find_svg;
use anyhow::{bail, Context, Result};
use serde::Serialize;
use std::io::IsTerminal;
use std::sync::Arc;
use std::time::Instant;
use tapegrad_optim::{clip_grad_norm, Adam, AdamConfig, Optimizer, ParamGroup};

/// The picture and the recorded points, in `--out`.
pub const LR_FIND_SVG: &str = "lr-find.svg";
pub const LR_FIND_JSONL: &str = "lr-find.jsonl";

/// `train` flags that do not apply to a range test (it has its own length and rate).
const NOT_FOR_LR_FIND: [&str; 10] = [
    "epochs",
    "lr",
    "warmup",
    "schedule",
    "resume",
    "patience",
    "max_steps",
    "limit_test",
    "overwrite",
    "keep_epochs",
];

/// One step of the test.
#[derive(Clone, Copy, Debug, Serialize, PartialEq)]
pub struct LrPoint {
    /// 1-based step.
    pub step: usize,
    pub lr: f64,
    /// The batch's mean loss.
    pub loss: f64,
    /// The loss smoothed without lag: the centred mean of [`centred`].
    pub smoothed: f64,
}

/// What a range test found.
#[derive(Debug)]
pub struct Found {
    pub suggestion: Option<f64>,
    /// Steps taken (fewer than asked when the loss diverged or Ctrl-C stopped it).
    pub steps: usize,
    pub points: Vec<LrPoint>,
    pub ctrl_c: bool,
}

/// ηᵢ = η₀ · (η_end/η₀)^(i/(n−1)), i = 0..n.
pub fn lr_at(start: f64, end: f64, n: usize, i: usize) -> f64 {
    start * (end / start).powf(i as f64 / (n.max(2) - 1) as f64)
}

/// The bias-corrected exponential moving average: aᵢ = β·aᵢ₋₁ + (1−β)·ℓᵢ (a₋₁ = 0),
/// sᵢ = aᵢ / (1 − β^(i+1)).
pub fn smooth(losses: &[f64], beta: f64) -> Vec<f64> {
    let mut avg = 0.0;
    let mut correction = 1.0;
    losses
        .iter()
        .map(|&l| {
            avg = beta * avg + (1.0 - beta) * l;
            correction *= beta;
            avg / (1.0 - correction)
        })
        .collect()
}

/// A centred mean over 2h+1 steps (fewer at the ends), h = ½·1/(1−β) rounded (at
/// least 1): the window the moving average of weight β spans, without its lag.
pub fn centred(losses: &[f64], beta: f64) -> Vec<f64> {
    let h = ((0.5 / (1.0 - beta)).round() as usize).max(1);
    (0..losses.len())
        .map(|i| {
            let w = &losses[i.saturating_sub(h)..(i + h + 1).min(losses.len())];
            w.iter().sum::<f64>() / w.len() as f64
        })
        .collect()
}

/// The index of the suggested rate: the most negative slope ds/d ln η of the smoothed
/// loss, a central difference over ±k points (k = n/40, at least 1), among the points
/// before the minimum, skipping the first n/20 (where the average has seen few
/// batches). `None` when the loss never falls.
pub fn suggest(lrs: &[f64], smoothed: &[f64]) -> Option<usize> {
    let n = smoothed.len().min(lrs.len());
    if n < 5 {
        return None;
    }
    let min = (0..n).min_by(|&a, &b| smoothed[a].total_cmp(&smoothed[b]))?;
    let k = (n / 40).max(1);
    let skip = (n / 20).max(k);
    let slope = |i: usize| {
        let (a, b) = (i - k, (i + k).min(n - 1));
        (smoothed[b] - smoothed[a]) / (lrs[b].ln() - lrs[a].ln())
    };
    (skip..min)
        .map(|i| (i, slope(i)))
        .filter(|&(_, d)| d < 0.0)
        .min_by(|a, b| a.1.total_cmp(&b.1))
        .map(|(i, _)| i)
}

/// The most steps a range test takes (its points are kept in memory and drawn).
const MAX_STEPS: usize = 100_000;

/// Checks `lr-find`'s own flags, then `train`'s checks on the model and data flags.
fn check_args(a: &LrFindArgs) -> Result<()> {
    let mut bad: Vec<String> = NOT_FOR_LR_FIND
        .iter()
        .filter(|f| a.train.was_given(f))
        .map(|f| {
            format!("--{} does not apply to lr-find (see --start-lr, --end-lr, --steps)", f.replace('_', "-"))
        })
        .collect();
    let rate = |v: f64| v.is_finite() && v > 0.0;
    if !rate(a.start_lr) || !rate(a.end_lr) || a.start_lr >= a.end_lr {
        bad.push(format!(
            "--start-lr and --end-lr must be positive with start < end, got {} and {}",
            a.start_lr, a.end_lr
        ));
    }
    if !(10..=MAX_STEPS).contains(&a.steps) {
        bad.push(format!(
            "--steps must be in 10..={MAX_STEPS} (at least 10 to draw a curve; a range test is a few \
             hundred steps), got {}",
            a.steps
        ));
    }
    if !(0.0..1.0).contains(&a.smooth) {
        bad.push(format!("--smooth is an average's weight β in [0, 1), got {}", a.smooth));
    }
    if !(a.diverge.is_finite() && a.diverge > 1.0) {
        bad.push(format!("--diverge must be a factor above 1, got {}", a.diverge));
    }
    if let Err(e) = validate::check_args(&with_defaults(a.train.clone()), super::bert_positions(&a.train)?) {
        bad.extend(e.to_string().lines().skip(1).map(|l| l.trim().to_string()));
    }
    if bad.is_empty() {
        return Ok(());
    }
    bail!("invalid arguments:\n  {}", bad.join("\n  "))
}

/// Runs the range test as the command line asked; `interrupt` is raised by Ctrl-C
/// (the points so far are drawn and a suggestion made from them).
pub fn lr_find(a: LrFindArgs, interrupt: Arc<Interrupt>) -> Result<Found> {
    interrupt.exit_at_once(true);
    let device = super::open_device(&a.train.device)?;
    // every argument, bf16 on a GPU among them (the training's own checks)
    check_args(&a)?;
    // in the precision the training would use
    let precision = a.train.precision.into();
    let args = with_defaults(a.train.clone());
    let _precision = tapegrad_autograd::precision::set_product_precision(precision);
    if let Some(note) = tapegrad_autograd::precision::cpu_speed_note(precision).filter(|_| !args.quiet) {
        eprintln!("note: {note}");
    }
    let data_path = args.data.clone().context("--data is required")?;
    if let Some(t) = args.threads {
        tapegrad_kernels::threads::set_num_threads(t);
    }
    let r = recipe(&args);
    let say = |msg: String| {
        if !args.quiet {
            eprintln!("{msg}");
        }
    };
    std::fs::create_dir_all(&args.out).with_context(|| format!("creating {}", args.out.display()))?;

    // The data the training would see: train minus the validation split.
    let t0 = Instant::now();
    pause_point("loading");
    let data = read_imdb(&data_path, &[Split::Train])?;
    let train_all = match args.limit_train {
        Some(n) => take_limit(data.train, n, args.seed),
        None => data.train,
    };
    let split = SplitOptions { valid_fraction: args.valid_fraction, seed: args.seed, stratified: true };
    let (reviews, _) = train_valid_split(train_all, &split)?;
    if reviews.is_empty() {
        bail!("{}: no training reviews (expected train/pos and train/neg)", data_path.display());
    }
    say(format!("data: {} train reviews ({:.1}s)", reviews.len(), t0.elapsed().as_secs_f64()));

    let mut rng = seed::rng(args.seed, Purpose::ModelInit, 0);
    let (mut task, _) = build_task(&args, &reviews, &mut rng, &say)?;
    if args.freeze_embeddings {
        task.module().freeze("embedding", true);
    }
    task.module().to(device); // the optimizer below is built on the moved parameters
    task.set_training(true);
    let train = super::evaluate::Encoded::new(&task, &reviews)?;
    let cfg = BatchConfig {
        batch_size: r.batch_size,
        max_len: task.batch_max_len(Some(r.max_len)),
        pad_id: task.pad_id(),
        seed: args.seed,
        shuffle: true,
        ..BatchConfig::default()
    };
    let batcher = Batcher::new(&train.ids, &train.labels, cfg)?;

    // The optimizer `train` would use, its rate set per step through the factor.
    let (decay, no_decay): (Vec<_>, Vec<_>) =
        task.module().trainable_parameters().into_iter().partition(|(n, _)| !super::task::Task::no_decay(n));
    let groups = vec![ParamGroup::new(decay), ParamGroup::new(no_decay).with_weight_decay(0.0)];
    let config = if args.model == ModelKind::Bert {
        AdamConfig::adamw(a.start_lr)
    } else {
        AdamConfig::new(a.start_lr)
    };
    let mut opt = Adam::with_groups(groups, config.weight_decay(r.weight_decay));

    let n = a.steps;
    let bar = progress_bar(n as u64, 0, 1, 1, args.quiet);
    let plain_progress = !args.quiet && !std::io::stderr().is_terminal();
    let mut points: Vec<LrPoint> = Vec::with_capacity(n);
    let mut losses = Vec::with_capacity(n);
    let mut best = f64::INFINITY;
    let mut batches = (0u64..).flat_map(|epoch| batcher.batches(epoch));
    let t0 = Instant::now();
    interrupt.exit_at_once(false);
    let mut stop_reason = None;
    for i in 0..n {
        pause_point("step");
        let Some(batch) = batches.next() else { break };
        let lr = lr_at(a.start_lr, a.end_lr, n, i);
        task.reseed_dropout(rand::Rng::next_u64(&mut seed::rng(args.seed, Purpose::Dropout, i as u64)));
        let logits = task.logits(&batch)?;
        let loss = task.loss(&logits, &batch.labels)?;
        let l = loss.item() as f64;
        if !l.is_finite() {
            stop_reason = Some(format!("the loss became {l} at lr {lr:.2e}"));
            break;
        }
        loss.backward();
        if let Some(c) = r.clip {
            clip_grad_norm(opt.trainable_params().iter(), c);
        }
        opt.set_lr_factor(lr / a.start_lr);
        opt.step();
        opt.zero_grad();
        losses.push(l);
        let s = *smooth(&losses, a.smooth).last().expect("one loss");
        points.push(LrPoint { step: i + 1, lr, loss: l, smoothed: f64::NAN });
        best = best.min(s);
        bar.set_message(format!("lr {lr:.2e} loss {l:.4} smoothed {s:.4}"));
        bar.inc(1);
        if plain_progress && ((i + 1) % (n / 20).max(1) == 0 || i + 1 == n) {
            eprintln!("lr-find: step {}/{n}, {}, {:.0}s", i + 1, bar.message(), t0.elapsed().as_secs_f64());
        }
        if s > a.diverge * best {
            stop_reason =
                Some(format!("the smoothed loss {s:.4} passed {} × its minimum {best:.4}", a.diverge));
            break;
        }
        if interrupt.requested() {
            stop_reason = Some("Ctrl-C".into());
            break;
        }
    }
    bar.finish_and_clear();
    let seconds = t0.elapsed().as_secs_f64();
    for (p, s) in points.iter_mut().zip(centred(&losses, a.smooth)) {
        p.smoothed = s;
    }
    let lrs: Vec<f64> = points.iter().map(|p| p.lr).collect();
    let smoothed: Vec<f64> = points.iter().map(|p| p.smoothed).collect();
    let at = suggest(&lrs, &smoothed);

    let jsonl: String =
        points.iter().map(|p| serde_json::to_string(p).map(|s| s + "\n")).collect::<Result<_, _>>()?;
    tapegrad_fsio::write_bytes(&args.out.join(LR_FIND_JSONL), jsonl.as_bytes())
        .context("writing lr-find.jsonl")?;
    let svg_path = args.out.join(LR_FIND_SVG);
    tapegrad_fsio::write_bytes(&svg_path, lr_find_svg(&points, at, task.kind()).as_bytes())
        .context("writing lr-find.svg")?;
    say(format!(
        "{} steps in {seconds:.0}s ({:.2}s a step){}; picture: {}",
        points.len(),
        seconds / points.len().max(1) as f64,
        stop_reason.map(|s| format!("; stopped: {s}")).unwrap_or_default(),
        svg_path.display()
    ));
    match at {
        Some(i) => say(format!(
            "suggested learning rate {:.2e}: the smoothed loss falls fastest there (step {}), before its minimum",
            lrs[i],
            i + 1
        )),
        None => say("no suggestion: the smoothed loss never fell; try a lower --start-lr or more --steps".into()),
    }
    Ok(Found { suggestion: at.map(|i| lrs[i]), steps: points.len(), points, ctrl_c: interrupt.requested() })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_rise_exponentially_from_start_to_end() {
        let lrs: Vec<f64> = (0..5).map(|i| lr_at(1e-6, 1e-2, 5, i)).collect();
        for (got, want) in lrs.iter().zip([1e-6, 1e-5, 1e-4, 1e-3, 1e-2]) {
            assert!((got / want - 1.0).abs() < 1e-12, "{got} vs {want}");
        }
    }

    #[test]
    fn smoothing_is_bias_corrected() {
        // A constant loss is its own average from the first step on.
        assert!(smooth(&[0.7; 10], 0.9).iter().all(|s| (s - 0.7).abs() < 1e-12));
        // s₁ = (β(1−β)·1 + (1−β)·3) / (1 − β²) = (0.09 + 0.3) / 0.19 with β = 0.9.
        let s = smooth(&[1.0, 3.0], 0.9);
        assert!((s[1] - 0.39 / 0.19).abs() < 1e-12, "{}", s[1]);
    }

    /// A known curve: flat at 0.7, a tanh-shaped fall centred at η = 1e-3 (the
    /// steepest point), a floor, then a blow-up past 1e-1.
    #[test]
    fn suggestion_is_the_steepest_point_before_the_minimum() {
        let n = 300;
        let lrs: Vec<f64> = (0..n).map(|i| lr_at(1e-7, 10.0, n, i)).collect();
        let loss = |lr: f64| {
            let x = lr.log10();
            0.45 - 0.25 * (1.2 * (x + 3.0)).tanh() + 2.0 * (lr / 0.3).powi(2)
        };
        let smoothed: Vec<f64> = lrs.iter().map(|&lr| loss(lr)).collect();
        let i = suggest(&lrs, &smoothed).expect("a suggestion");
        assert!((lrs[i] / 1e-3).log10().abs() < 0.1, "suggested {} for a curve steepest at 1e-3", lrs[i]);
        // The same curve, noisy and smoothed as the command does it, still lands near 1e-3.
        let noisy: Vec<f64> = lrs
            .iter()
            .enumerate()
            .map(|(i, &lr)| loss(lr) + 0.02 * ((i * 7919) % 13) as f64 / 13.0)
            .collect();
        let i = suggest(&lrs, &centred(&noisy, 0.9)).expect("a suggestion");
        assert!((lrs[i] / 1e-3).log10().abs() < 0.15, "suggested {} from the noisy curve", lrs[i]);
        // The moving average alone lags: its steepest point sits at a higher rate.
        let lagged = suggest(&lrs, &smooth(&noisy, 0.9)).expect("a suggestion");
        assert!(lagged > i, "the average's lag moves the suggestion right ({lagged} vs {i})");
    }

    #[test]
    fn centred_mean_has_no_lag() {
        // A straight line is its own centred mean away from the ends.
        let line: Vec<f64> = (0..30).map(|i| i as f64).collect();
        let c = centred(&line, 0.9); // h = 5
        assert!(c[5..25].iter().zip(&line[5..25]).all(|(a, b)| (a - b).abs() < 1e-12));
        assert_eq!(c[0], 2.5); // mean of 0..=5
    }

    #[test]
    fn no_suggestion_when_the_loss_never_falls() {
        let lrs: Vec<f64> = (0..50).map(|i| lr_at(1e-3, 1.0, 50, i)).collect();
        let rising: Vec<f64> = (0..50).map(|i| 0.7 + i as f64 * 0.01).collect();
        assert_eq!(suggest(&lrs, &rising), None);
        assert_eq!(suggest(&lrs[..3], &rising[..3]), None);
    }
}
