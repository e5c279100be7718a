//! Evaluation: mean loss and accuracy over a data set, without recording a graph.

use super::task::Task;
use crate::cli::{EvalArgs, EvalSplit, TrainArgs};
use crate::data::batch::{BatchConfig, Batcher};
use crate::data::imdb::{read_imdb, read_split, Review, Split};
use crate::data::split::{take_limit, train_valid_split, SplitOptions};
use anyhow::{bail, Context};
use std::path::Path;
use tapegrad_autograd::no_grad;

/// Reviews as token ids, with their labels.
pub struct Encoded {
    pub ids: Vec<Vec<u32>>,
    pub labels: Vec<u8>,
}

impl Encoded {
    pub fn new(task: &Task, reviews: &[Review]) -> anyhow::Result<Encoded> {
        let texts: Vec<&str> = reviews.iter().map(|r| r.text.as_str()).collect();
        Ok(Encoded { ids: task.encode_all(&texts)?, labels: reviews.iter().map(|r| r.label).collect() })
    }
    pub fn len(&self) -> usize {
        self.labels.len()
    }
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }
}

#[derive(Clone, Copy, Debug)]
pub struct EvalResult {
    /// (1/N) Σᵢ lᵢ over all N reviews.
    pub loss: f64,
    pub accuracy: f64,
    pub count: usize,
}

/// Loss and accuracy of `task` (in eval mode) over `data`, in length-sorted batches.
pub fn evaluate(
    task: &Task,
    data: &Encoded,
    batch_size: usize,
    max_len: Option<usize>,
) -> anyhow::Result<EvalResult> {
    let never = || false;
    Ok(evaluate_until(task, data, batch_size, max_len, &never)?.expect("never stopped"))
}

/// [`evaluate`], asking `stop` before each batch: `None` when it said stop.
pub fn evaluate_until(
    task: &Task,
    data: &Encoded,
    batch_size: usize,
    max_len: Option<usize>,
    stop: &dyn Fn() -> bool,
) -> anyhow::Result<Option<EvalResult>> {
    if data.is_empty() {
        return Ok(Some(EvalResult { loss: f64::NAN, accuracy: f64::NAN, count: 0 }));
    }
    let cfg =
        BatchConfig { batch_size, max_len, pad_id: task.pad_id(), shuffle: false, ..BatchConfig::default() };
    let batcher = Batcher::new(&data.ids, &data.labels, cfg)?;
    let (mut loss_sum, mut correct) = (0.0, 0usize);
    // A phase boundary: give the training steps' cached tensor memory back before, and
    // the evaluation's after (see `tapegrad_autograd::alloc`).
    tapegrad_autograd::alloc::empty_cache();
    let _after = EmptyCacheOnDrop;
    let finished = no_grad(|| -> anyhow::Result<bool> {
        for batch in batcher.batches(0) {
            if stop() {
                return Ok(false);
            }
            let logits = task.logits(&batch)?;
            loss_sum += task.loss(&logits, &batch.labels)?.item() as f64 * batch.batch_size as f64;
            let probs = task.positive_probability(&logits);
            correct += probs.iter().zip(&batch.labels).filter(|(p, &y)| (**p > 0.5) == (y == 1)).count();
        }
        Ok(true)
    })?;
    let n = data.len();
    Ok(finished.then(|| EvalResult {
        loss: loss_sum / n as f64,
        accuracy: correct as f64 / n as f64,
        count: n,
    }))
}

/// Empties the CPU tensor cache when dropped (also on an early return).
struct EmptyCacheOnDrop;

impl Drop for EmptyCacheOnDrop {
    fn drop(&mut self) {
        tapegrad_autograd::alloc::empty_cache();
    }
}

/// P(positive) for each text.
pub fn predict(task: &Task, texts: &[String], max_len: Option<usize>) -> anyhow::Result<Vec<f32>> {
    let refs: Vec<&str> = texts.iter().map(|t| t.as_str()).collect();
    let ids = task.encode_all(&refs)?;
    // A text without a token would be scored as the empty sequence (a lone `<unk>`, or
    // `[CLS] [SEP]`): a number that says nothing about the text.
    if let Some(i) = ids.iter().position(|seq| seq.len() <= task.special_tokens_per_text()) {
        bail!("text {} of {} ({:?}) has no tokens: there is nothing to score", i + 1, texts.len(), texts[i]);
    }
    let labels = vec![0u8; ids.len()];
    let cfg = BatchConfig {
        batch_size: 32,
        max_len: task.batch_max_len(max_len),
        pad_id: task.pad_id(),
        shuffle: false,
        ..BatchConfig::default()
    };
    let batcher = Batcher::new(&ids, &labels, cfg)?;
    let mut out = vec![0f32; texts.len()];
    no_grad(|| -> anyhow::Result<()> {
        for batch in batcher.batches(0) {
            let probs = task.positive_probability(&task.logits(&batch)?);
            for (p, &i) in probs.iter().zip(&batch.indices) {
                out[i] = *p;
            }
        }
        Ok(())
    })?;
    Ok(out)
}

/// A run's three splits of the data set: `--limit-train`'s seeded subset of the
/// training reviews less the `--valid-fraction` held out for validation, and
/// `--limit-test`'s subset of the test reviews. A pure function of the reviews (in id
/// order, as `read_imdb` gives them) and the run's arguments, so that `eval --split
/// valid` scores the very reviews the run validated on.
pub struct RunSplits {
    pub train: Vec<Review>,
    pub valid: Vec<Review>,
    pub test: Vec<Review>,
}

pub fn run_splits(train: Vec<Review>, test: Vec<Review>, args: &TrainArgs) -> anyhow::Result<RunSplits> {
    let train = match args.limit_train {
        Some(n) => take_limit(train, n, args.seed),
        None => train,
    };
    let split = SplitOptions { valid_fraction: args.valid_fraction, seed: args.seed, stratified: true };
    let (train, valid) = train_valid_split(train, &split)?;
    let test = match args.limit_test {
        Some(n) => take_limit(test, n, args.seed ^ 1),
        None => test,
    };
    Ok(RunSplits { train, valid, test })
}

/// Rebuilds the model saved in a checkpoint folder (eval mode), on `device`. A BERT
/// model's tokenizer truncates at `max_len` where given, else at the run's cap.
pub fn load_checkpoint_task(
    dir: &Path,
    device: tapegrad_autograd::Device,
    max_len: Option<usize>,
) -> anyhow::Result<(Task, super::checkpoint::RunState)> {
    let dir = super::checkpoint::resolve(dir)?;
    let run = super::checkpoint::read_run(&dir)?;
    let mut spec = run.spec.clone();
    if let (Some(m), "bert") = (max_len, spec.kind.as_str()) {
        let config = dir.join("config.json");
        let cap = tapegrad_models::bert::BertConfig::from_file(&config)
            .with_context(|| format!("reading {}", config.display()))?
            .max_position_embeddings;
        if !(3..=cap).contains(&m) {
            bail!(
                "--max-len {m}: this BERT model needs room for [CLS], a token and [SEP] and has {cap} \
                 positions ({}): 3..={cap}",
                config.display()
            );
        }
        spec.max_len = Some(m);
    }
    let mut rng = crate::data::seed::rng(0, crate::data::seed::Purpose::ModelInit, 0);
    let mut task = super::task::load_task(&spec, &dir, &mut rng)?;
    task.module().to(device);
    task.set_training(false);
    Ok((task, run))
}

/// The precision a checkpoint trained in, set for its evaluation, so that `eval`
/// scores `best/` exactly as the training run's test did: bf16 where the device
/// computes it (the CPU); elsewhere f32, said so (the weights are f32 either way).
fn run_precision(
    trained: crate::cli::PrecisionKind,
    device: tapegrad_autograd::Device,
) -> tapegrad_autograd::precision::PrecisionGuard {
    use tapegrad_autograd::precision::{check_device, cpu_speed_note, set_product_precision, Precision};
    let trained: Precision = trained.into();
    let precision = match check_device(trained, device) {
        Ok(()) => trained,
        Err(why) => {
            eprintln!("note: this checkpoint trained in {}; computing in f32 ({why})", trained.name());
            Precision::F32
        }
    };
    if let Some(note) = cpu_speed_note(precision) {
        eprintln!("note: this checkpoint trained in {}; {note}", precision.name());
    }
    set_product_precision(precision)
}

/// `finetune-imdb eval`: accuracy of a checkpoint on a data set's test split (or
/// on a folder with pos/ and neg/).
pub fn eval_checkpoint(args: &EvalArgs) -> anyhow::Result<EvalResult> {
    // as `train` checks its own: before the checkpoint or the data is read
    for (flag, value) in
        [("--batch-size", args.batch_size), ("--limit-test", args.limit_test), ("--threads", args.threads)]
    {
        if value == Some(0) {
            anyhow::bail!("{flag} must be at least 1");
        }
    }
    let device = super::open_device(&args.device)?;
    if let Some(t) = args.threads {
        tapegrad_kernels::threads::set_num_threads(t);
    }
    check_max_len(args.max_len)?;
    let (task, run) = load_checkpoint_task(&args.checkpoint, device, args.max_len)?;
    let _precision = run_precision(run.args.precision, device);
    let reviews = eval_reviews(args, &run)?;
    let reviews = match args.limit_test {
        Some(n) => take_limit(reviews, n, run.args.seed ^ 1),
        None => reviews,
    };
    let data = Encoded::new(&task, &reviews)?;
    let batch = args.batch_size.or(run.args.batch_size).unwrap_or(64);
    evaluate(&task, &data, batch, task.batch_max_len(cap(args.max_len, &run)))
}

/// The reviews `eval` scores: the data set's test split, or the validation reviews
/// the run held out (from the same data set, or the split would be another one).
fn eval_reviews(args: &EvalArgs, run: &super::checkpoint::RunState) -> anyhow::Result<Vec<Review>> {
    let warn = |stats: &crate::data::imdb::ReadStats| {
        for warning in stats.warnings(&args.data) {
            eprintln!("{warning}");
        }
    };
    match args.split {
        EvalSplit::Test => {
            let (reviews, stats) = read_split(&args.data, Split::Test)?;
            warn(&stats);
            Ok(reviews)
        }
        EvalSplit::Valid => {
            if run.args.valid_fraction == 0.0 {
                bail!(
                    "{}: the run held out no validation reviews (--valid-fraction 0)",
                    args.checkpoint.display()
                );
            }
            let data = read_imdb(&args.data, &[Split::Train, Split::Test])?;
            warn(&data.stats);
            let here = super::validate::fingerprint(&data);
            if !run.data_fingerprint.is_empty() && run.data_fingerprint != here {
                bail!(
                    "{}: not the data set the run of {} trained on (fingerprint {} there, {} here), so \
                     its validation split cannot be recreated",
                    args.data.display(),
                    args.checkpoint.display(),
                    &run.data_fingerprint[..12.min(run.data_fingerprint.len())],
                    &here[..12]
                );
            }
            Ok(run_splits(data.train, Vec::new(), &run.args)?.valid)
        }
    }
}

/// `--max-len` must be at least 1 (BERT's bound is checked against its config).
fn check_max_len(max_len: Option<usize>) -> anyhow::Result<()> {
    if max_len == Some(0) {
        bail!("--max-len must be at least 1");
    }
    Ok(())
}

/// The cap on review length: the one asked for, else the run's. Older BiLSTM
/// checkpoints stored no cap; the default protects memory all the same.
fn cap(max_len: Option<usize>, run: &super::checkpoint::RunState) -> Option<usize> {
    max_len.or(run.args.max_len).or(Some(super::validate::BILSTM_MAX_LEN))
}

/// `finetune-imdb predict`: P(positive) of each text.
pub fn predict_checkpoint(args: &crate::cli::PredictArgs) -> anyhow::Result<Vec<f32>> {
    let device = super::open_device(&args.device)?;
    check_max_len(args.max_len)?;
    let (task, run) = load_checkpoint_task(&args.checkpoint, device, args.max_len)?;
    let _precision = run_precision(run.args.precision, device);
    predict(&task, &args.texts, cap(args.max_len, &run))
}

#[cfg(test)]
mod tests {
    use super::run_precision;
    use crate::cli::PrecisionKind;
    use tapegrad_autograd::precision::{product_precision, Precision};
    use tapegrad_autograd::Device;

    /// A bf16 checkpoint is evaluated in bf16 on the CPU and in f32 elsewhere; the
    /// precision goes back when the evaluation ends.
    #[test]
    fn evaluation_uses_the_precision_the_run_trained_in() {
        for (trained, device, want) in [
            (PrecisionKind::Bf16, Device::Cpu, Precision::Bf16),
            (PrecisionKind::Bf16, Device::Sim, Precision::F32),
            (PrecisionKind::F32, Device::Cpu, Precision::F32),
        ] {
            let guard = run_precision(trained, device);
            assert_eq!(product_precision(), want, "{trained:?} on {device}");
            drop(guard);
            assert_eq!(product_precision(), Precision::F32);
        }
    }
}
