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
    pub fn new(task: &Task, reviews: &[Review]) -> Encoded {
        Encoded { ids: reviews.iter().map(|r| task.encode(&r.text)).collect(), labels: reviews.iter().map(|r| r.label).collect() }
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
pub fn evaluate(task: &Task, data: &Encoded, batch_size: usize, max_len: Option<usize>) -> EvalResult {
    if data.is_empty() {
        return EvalResult { loss: f64::NAN, accuracy: f64::NAN, count: 0 };
    }
    let cfg = BatchConfig { batch_size, max_len, pad_id: task.pad_id(), shuffle: false, ..BatchConfig::default() };
    let batcher = Batcher::new(&data.ids, &data.labels, cfg).expect("batch size is at least 1");
    let (mut loss_sum, mut correct) = (0.0, 0usize);
    no_grad(|| {
        for batch in batcher.batches(0) {
            let logits = task.logits(&batch);
            loss_sum += task.loss(&logits, &batch.labels).item() as f64 * batch.batch_size as f64;
            let probs = task.positive_probability(&logits);
            correct += probs.iter().zip(&batch.labels).filter(|(p, &y)| (**p > 0.5) == (y == 1)).count();
        }
    });
    let n = data.len();
    EvalResult { loss: loss_sum / n as f64, accuracy: correct as f64 / n as f64, count: n }
}

/// P(positive) for each text.
pub fn predict(task: &Task, texts: &[String]) -> Vec<f32> {
    let ids: Vec<Vec<u32>> = texts.iter().map(|t| task.encode(t)).collect();
    let labels = vec![0u8; ids.len()];
    let cfg = BatchConfig { batch_size: 32, pad_id: task.pad_id(), shuffle: false, ..BatchConfig::default() };
    let batcher = Batcher::new(&ids, &labels, cfg).expect("batch size is at least 1");
    let mut out = vec![0f32; texts.len()];
    no_grad(|| {
        for batch in batcher.batches(0) {
            let probs = task.positive_probability(&task.logits(&batch));
            for (p, &i) in probs.iter().zip(&batch.indices) {
                out[i] = *p;
            }
        }
    });
    out
}
