//! Length-bucketed, resumable batching.
//!
//! The order of epoch `k` is a pure function of `(seed, k)` and the data:
//!
//! 1. shuffle the example indices with the generator of `(seed, k)`;
//! 2. cut the shuffled list into chunks of `chunk_batches * batch_size`
//!    examples and sort each chunk by length, longest first (stable), so that a
//!    batch holds examples of similar length and padding stays small;
//! 3. cut each chunk into batches of `batch_size` (the last batch of the epoch
//!    may be smaller unless `drop_last`);
//! 4. shuffle the batch order with the same generator.
//!
//! Within a batch the rows are longest first, as PyTorch's
//! `pack_padded_sequence(enforce_sorted=True)` wants. With `shuffle = false`
//! (evaluation) steps 1 and 4 are skipped: chunks of the input order are
//! sorted by length, and batches come in order.
//!
//! [`Batcher::plan`] only computes indices, so resuming at batch `b` of epoch
//! `k` ([`Batcher::batches_from`]) costs no more than building that one plan.

use super::seed::{self, Purpose};
use super::tokenize::{PAD_ID, UNK_ID};

/// Batching options.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchConfig {
    pub batch_size: usize,
    /// Truncate sequences to this many tokens (keep the first ones).
    pub max_len: Option<usize>,
    /// Sort-by-length window, in batches.
    pub chunk_batches: usize,
    /// The padding id ([`PAD_ID`] = 1 by default).
    pub pad_id: u32,
    pub seed: u64,
    /// Shuffle examples and batch order (training); `false` for evaluation.
    pub shuffle: bool,
    /// Drop the last, smaller batch of an epoch.
    pub drop_last: bool,
}

impl Default for BatchConfig {
    fn default() -> Self {
        BatchConfig {
            batch_size: 64,
            max_len: None,
            chunk_batches: 100,
            pad_id: PAD_ID,
            seed: 0,
            shuffle: true,
            drop_last: false,
        }
    }
}

/// Invalid batching input.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BatchError {
    #[error("batch_size, chunk_batches and max_len must be at least 1")]
    ZeroSize,
    #[error("{sequences} sequences but {labels} labels")]
    LengthMismatch { sequences: usize, labels: usize },
}

/// One padded batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Batch {
    /// `[batch_size, max_len]` row-major token ids, padded with the pad id.
    pub ids: Vec<u32>,
    /// Real (unpadded, after truncation) length of each row, descending; at
    /// least 1 (an empty sequence becomes a single `<unk>`).
    pub lengths: Vec<usize>,
    /// Label of each row.
    pub labels: Vec<u8>,
    /// Index of each row's example in the batcher's input.
    pub indices: Vec<usize>,
    pub batch_size: usize,
    pub max_len: usize,
}

impl Batch {
    /// Tokens that are not padding.
    pub fn real_tokens(&self) -> usize {
        self.lengths.iter().sum()
    }

    /// All `batch_size * max_len` slots.
    pub fn padded_tokens(&self) -> usize {
        self.batch_size * self.max_len
    }

    /// Labels as `f32` (for a BCE-with-logits loss).
    pub fn labels_f32(&self) -> Vec<f32> {
        self.labels.iter().map(|&l| f32::from(l)).collect()
    }

    /// Row `r`, padded.
    pub fn row(&self, r: usize) -> &[u32] {
        &self.ids[r * self.max_len..(r + 1) * self.max_len]
    }
}

/// `sum(real) / sum(padded)` over `batches` (1.0 means no padding).
pub fn padding_efficiency<'a>(batches: impl IntoIterator<Item = &'a Batch>) -> f64 {
    let (mut real, mut padded) = (0usize, 0usize);
    for b in batches {
        real += b.real_tokens();
        padded += b.padded_tokens();
    }
    if padded == 0 {
        1.0
    } else {
        real as f64 / padded as f64
    }
}

/// Makes the batches of each epoch over borrowed token sequences and labels.
#[derive(Debug, Clone)]
pub struct Batcher<'a> {
    seqs: &'a [Vec<u32>],
    labels: &'a [u8],
    cfg: BatchConfig,
}

impl<'a> Batcher<'a> {
    pub fn new(seqs: &'a [Vec<u32>], labels: &'a [u8], cfg: BatchConfig) -> Result<Self, BatchError> {
        if cfg.batch_size == 0 || cfg.chunk_batches == 0 || cfg.max_len == Some(0) {
            return Err(BatchError::ZeroSize);
        }
        if seqs.len() != labels.len() {
            return Err(BatchError::LengthMismatch { sequences: seqs.len(), labels: labels.len() });
        }
        Ok(Batcher { seqs, labels, cfg })
    }

    pub fn config(&self) -> &BatchConfig {
        &self.cfg
    }

    /// Batches per epoch.
    pub fn num_batches(&self) -> usize {
        let (n, b) = (self.seqs.len(), self.cfg.batch_size);
        if self.cfg.drop_last {
            n / b
        } else {
            n.div_ceil(b)
        }
    }

    /// Length of example `i` after truncation, at least 1.
    fn len_of(&self, i: usize) -> usize {
        let n = self.seqs[i].len();
        self.cfg.max_len.map_or(n, |m| n.min(m)).max(1)
    }

    /// The example indices of every batch of `epoch`, in order.
    pub fn plan(&self, epoch: u64) -> Vec<Vec<usize>> {
        let bs = self.cfg.batch_size;
        let mut order: Vec<usize> = (0..self.seqs.len()).collect();
        let mut rng = seed::rng(self.cfg.seed, Purpose::EpochShuffle, epoch);
        if self.cfg.shuffle {
            seed::shuffle(&mut order, &mut rng);
        }
        let chunk = self.cfg.chunk_batches.saturating_mul(bs);
        for c in order.chunks_mut(chunk) {
            c.sort_by_key(|&i| std::cmp::Reverse(self.len_of(i)));
        }
        // Batches never straddle chunks except at the end of a partial chunk,
        // and chunk is a multiple of bs, so plain chunks of `order` work.
        let mut batches: Vec<Vec<usize>> = order.chunks(bs).map(<[usize]>::to_vec).collect();
        if self.cfg.drop_last && batches.last().is_some_and(|b| b.len() < bs) {
            batches.pop();
        }
        if self.cfg.shuffle {
            seed::shuffle(&mut batches, &mut rng);
        }
        batches
    }

    /// Pad the examples `indices` into a [`Batch`] (rows longest first).
    pub fn make_batch(&self, indices: &[usize]) -> Batch {
        let mut indices = indices.to_vec();
        indices.sort_by_key(|&i| std::cmp::Reverse(self.len_of(i)));
        let lengths: Vec<usize> = indices.iter().map(|&i| self.len_of(i)).collect();
        let max_len = lengths.iter().copied().max().unwrap_or(0);
        let mut ids = vec![self.cfg.pad_id; indices.len() * max_len];
        for (r, &i) in indices.iter().enumerate() {
            let row = &mut ids[r * max_len..(r + 1) * max_len];
            let seq = &self.seqs[i];
            if seq.is_empty() {
                row[0] = UNK_ID;
            } else {
                row[..lengths[r]].copy_from_slice(&seq[..lengths[r]]);
            }
        }
        Batch {
            labels: indices.iter().map(|&i| self.labels[i]).collect(),
            batch_size: indices.len(),
            indices,
            lengths,
            ids,
            max_len,
        }
    }

    /// The batches of `epoch`.
    pub fn batches(&self, epoch: u64) -> impl Iterator<Item = Batch> + '_ {
        self.batches_from(epoch, 0)
    }

    /// The batches of `epoch` from batch index `start` on (for resuming).
    pub fn batches_from(&self, epoch: u64, start: usize) -> impl Iterator<Item = Batch> + '_ {
        self.plan(epoch).into_iter().skip(start).map(move |ix| self.make_batch(&ix))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data(n: usize) -> (Vec<Vec<u32>>, Vec<u8>) {
        let seqs = (0..n).map(|i| (0..(1 + (i * 37) % 50) as u32).map(|t| t + 2).collect()).collect();
        let labels = (0..n).map(|i| (i % 2) as u8).collect();
        (seqs, labels)
    }

    #[test]
    fn every_example_once_per_epoch_and_epochs_differ() {
        let (s, l) = data(1000);
        let cfg = BatchConfig { batch_size: 32, chunk_batches: 4, seed: 3, ..Default::default() };
        let b = Batcher::new(&s, &l, cfg).unwrap();
        let p0 = b.plan(0);
        assert_eq!(p0.len(), b.num_batches());
        let mut all: Vec<usize> = p0.concat();
        all.sort_unstable();
        assert_eq!(all, (0..1000).collect::<Vec<_>>());
        assert_eq!(p0, b.plan(0));
        assert_ne!(p0, b.plan(1));
    }

    #[test]
    fn batch_contents_padding_and_truncation() {
        let seqs = vec![vec![5, 6, 7], vec![], vec![8, 9, 10, 11, 12]];
        let labels = vec![1, 0, 1];
        let cfg = BatchConfig { batch_size: 3, max_len: Some(4), shuffle: false, ..Default::default() };
        let b = Batcher::new(&seqs, &labels, cfg).unwrap();
        let batch = b.batches(0).next().unwrap();
        assert_eq!(batch.indices, [2, 0, 1]);
        assert_eq!(batch.lengths, [4, 3, 1]);
        assert_eq!(batch.max_len, 4);
        assert_eq!(batch.ids, [8, 9, 10, 11, 5, 6, 7, 1, 0, 1, 1, 1]);
        assert_eq!(batch.labels, [1, 1, 0]);
        assert_eq!(batch.labels_f32(), [1.0, 1.0, 0.0]);
        assert_eq!(batch.row(1), [5, 6, 7, 1]);
        assert_eq!(padding_efficiency([&batch]), 8.0 / 12.0);
    }

    #[test]
    fn drop_last_and_resume() {
        let (s, l) = data(100);
        let cfg = BatchConfig { batch_size: 8, drop_last: true, ..Default::default() };
        let b = Batcher::new(&s, &l, cfg).unwrap();
        let all: Vec<Batch> = b.batches(5).collect();
        assert_eq!(all.len(), 12);
        assert!(all.iter().all(|x| x.batch_size == 8));
        let resumed: Vec<Batch> = b.batches_from(5, 7).collect();
        assert_eq!(&all[7..], &resumed[..]);
    }

    #[test]
    fn bad_config() {
        let (s, l) = data(4);
        let zero = BatchConfig { batch_size: 0, ..Default::default() };
        assert_eq!(Batcher::new(&s, &l, zero).unwrap_err(), BatchError::ZeroSize);
        assert!(Batcher::new(&s, &l[..3], BatchConfig::default()).is_err());
    }
}
