//! Evaluation: mean loss and accuracy over a data set, without recording a graph.

use super::task::Task;
use crate::data::batch::{BatchConfig, Batcher};
use crate::data::imdb::Review;
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

/// Rebuilds the model saved in a checkpoint folder (eval mode), on `device`.
pub fn load_checkpoint_task(
    dir: &std::path::Path,
    device: tapegrad_autograd::Device,
) -> anyhow::Result<(Task, super::checkpoint::RunState)> {
    let dir = super::checkpoint::resolve(dir)?;
    let run = super::checkpoint::read_run(&dir)?;
    let mut rng = crate::data::seed::rng(0, crate::data::seed::Purpose::ModelInit, 0);
    let mut task = super::task::load_task(&run.spec, &dir, &mut rng)?;
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
    use tapegrad_autograd::precision::{check_device, set_linear_precision, Precision};
    let trained: Precision = trained.into();
    let precision = match check_device(trained, device) {
        Ok(()) => trained,
        Err(why) => {
            eprintln!("note: this checkpoint trained in {}; computing in f32 ({why})", trained.name());
            Precision::F32
        }
    };
    set_linear_precision(precision)
}

/// `finetune-imdb eval`: accuracy of a checkpoint on a data set's test split (or
/// on a folder with pos/ and neg/).
pub fn eval_checkpoint(args: &crate::cli::EvalArgs) -> anyhow::Result<EvalResult> {
    let device = super::open_device(&args.device)?;
    if let Some(t) = args.threads {
        tapegrad_kernels::threads::set_num_threads(t);
    }
    let (task, run) = load_checkpoint_task(&args.checkpoint, device)?;
    let _precision = run_precision(run.args.precision, device);
    let (reviews, stats) = crate::data::imdb::read_split(&args.data, crate::data::imdb::Split::Test)?;
    if stats.lossy_utf8 > 0 {
        eprintln!(
            "warning: {} reviews in {} were decoded lossily (invalid UTF-8)",
            stats.lossy_utf8,
            args.data.display()
        );
    }
    let reviews = match args.limit_test {
        Some(n) => crate::data::split::take_limit(reviews, n, run.args.seed ^ 1),
        None => reviews,
    };
    let data = Encoded::new(&task, &reviews)?;
    let batch = args.batch_size.or(run.args.batch_size).unwrap_or(64);
    // Older BiLSTM checkpoints stored no cap; the default protects memory all the same.
    let max_len = run.args.max_len.or(Some(super::validate::BILSTM_MAX_LEN));
    evaluate(&task, &data, batch, task.batch_max_len(max_len))
}

/// `finetune-imdb predict`: P(positive) of each text.
pub fn predict_checkpoint(args: &crate::cli::PredictArgs) -> anyhow::Result<Vec<f32>> {
    let device = super::open_device(&args.device)?;
    let (task, run) = load_checkpoint_task(&args.checkpoint, device)?;
    let _precision = run_precision(run.args.precision, device);
    predict(&task, &args.texts, run.args.max_len.or(Some(super::validate::BILSTM_MAX_LEN)))
}

#[cfg(test)]
mod tests {
    use super::run_precision;
    use crate::cli::PrecisionKind;
    use tapegrad_autograd::precision::{linear_precision, Precision};
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
            assert_eq!(linear_precision(), want, "{trained:?} on {device}");
            drop(guard);
            assert_eq!(linear_precision(), Precision::F32);
        }
    }
}
