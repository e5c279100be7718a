//! Seeded train/validation split and `limit` subsets.
//!
//! Both are pure functions of the input order and a seed. [`read_imdb`]
//! returns reviews sorted by id, so `(data path contents, seed)` determines the
//! result, whether the data came from a directory or an archive.
//!
//! [`read_imdb`]: super::imdb::read_imdb

use super::imdb::Review;
use super::seed::{self, Purpose};

/// The default share of the training split held out for validation.
pub const DEFAULT_VALID_FRACTION: f64 = 0.1;

/// Errors for invalid split options.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SplitError {
    #[error("validation fraction must be in [0, 1), got {0}")]
    BadFraction(f64),
}

/// Options for [`train_valid_split`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SplitOptions {
    /// Share of the examples held out for validation, in `[0, 1)`.
    pub valid_fraction: f64,
    /// Seed of the split (independent of every other seed use).
    pub seed: u64,
    /// Stratified by label (default): each class contributes
    /// `round(valid_fraction * class size)` examples, so both halves keep the
    /// class balance. Otherwise a plain random `round(valid_fraction * n)`.
    pub stratified: bool,
}

impl Default for SplitOptions {
    fn default() -> Self {
        SplitOptions { valid_fraction: DEFAULT_VALID_FRACTION, seed: 0, stratified: true }
    }
}

/// Split `items` into `(train, valid)` by a seeded shuffle (per class when
/// `opts.stratified`). `label` gives an item's class. Each half keeps the
/// relative input order of its items, so the split is independent of how the
/// caller orders batches later.
pub fn train_valid_split_by<T>(
    items: Vec<T>,
    label: impl Fn(&T) -> u8,
    opts: &SplitOptions,
) -> Result<(Vec<T>, Vec<T>), SplitError> {
    let f = opts.valid_fraction;
    if !(0.0..1.0).contains(&f) {
        return Err(SplitError::BadFraction(f));
    }
    let n = items.len();
    let mut rng = seed::rng(opts.seed, Purpose::ValidSplit, 0);
    let mut is_valid = vec![false; n];
    let groups: Vec<Vec<usize>> = if opts.stratified {
        let mut labels: Vec<u8> = items.iter().map(&label).collect();
        labels.sort_unstable();
        labels.dedup();
        labels.iter().map(|&l| (0..n).filter(|&i| label(&items[i]) == l).collect()).collect()
    } else {
        vec![(0..n).collect()]
    };
    for mut group in groups {
        let take = (f * group.len() as f64).round() as usize;
        seed::shuffle(&mut group, &mut rng);
        for &i in &group[..take.min(group.len())] {
            is_valid[i] = true;
        }
    }
    let (mut train, mut valid) = (Vec::new(), Vec::new());
    for (item, v) in items.into_iter().zip(is_valid) {
        if v {
            valid.push(item);
        } else {
            train.push(item);
        }
    }
    Ok((train, valid))
}

/// [`train_valid_split_by`] for reviews, by [`Review::label`].
pub fn train_valid_split(
    reviews: Vec<Review>,
    opts: &SplitOptions,
) -> Result<(Vec<Review>, Vec<Review>), SplitError> {
    train_valid_split_by(reviews, |r| r.label, opts)
}

/// The first `limit` items of a seeded shuffle of `items` (all of them, in
/// shuffled order, if `limit >= len`); for quick runs. Reproducible from
/// `(items, limit, seed)`, and a smaller limit gives a prefix of a larger one.
pub fn take_limit<T>(mut items: Vec<T>, limit: usize, seed: u64) -> Vec<T> {
    seed::shuffle(&mut items, &mut seed::rng(seed, Purpose::Limit, 0));
    items.truncate(limit);
    items
}

#[cfg(test)]
mod tests {
    use super::*;

    fn items(n_pos: usize, n_neg: usize) -> Vec<(usize, u8)> {
        (0..n_pos).map(|i| (i, 1)).chain((0..n_neg).map(|i| (n_pos + i, 0))).collect()
    }

    #[test]
    fn stratified_split_keeps_balance_and_is_reproducible() {
        let opts = SplitOptions { valid_fraction: 0.1, seed: 42, stratified: true };
        let (tr, va) = train_valid_split_by(items(300, 100), |x| x.1, &opts).unwrap();
        assert_eq!(va.len(), 40);
        assert_eq!(va.iter().filter(|x| x.1 == 1).count(), 30);
        assert_eq!(tr.len(), 360);
        let (tr2, va2) = train_valid_split_by(items(300, 100), |x| x.1, &opts).unwrap();
        assert_eq!((tr, va.clone()), (tr2, va2));
        let other = SplitOptions { seed: 43, ..opts };
        let (_, va3) = train_valid_split_by(items(300, 100), |x| x.1, &other).unwrap();
        assert_ne!(va, va3);
    }

    #[test]
    fn plain_split_sizes_and_bad_fraction() {
        let opts = SplitOptions { valid_fraction: 0.25, seed: 1, stratified: false };
        let (tr, va) = train_valid_split_by(items(7, 5), |x| x.1, &opts).unwrap();
        assert_eq!((tr.len(), va.len()), (9, 3));
        let zero = SplitOptions { valid_fraction: 0.0, ..opts };
        let (tr, va) = train_valid_split_by(items(7, 5), |x| x.1, &zero).unwrap();
        assert_eq!((tr.len(), va.len()), (12, 0));
        for bad in [1.0, -0.1, f64::NAN] {
            let o = SplitOptions { valid_fraction: bad, ..opts };
            assert!(train_valid_split_by(items(2, 2), |x| x.1, &o).is_err());
        }
    }

    #[test]
    fn limit_is_reproducible_and_prefix_stable() {
        let all: Vec<u32> = (0..1000).collect();
        let a = take_limit(all.clone(), 10, 5);
        assert_eq!(a, take_limit(all.clone(), 10, 5));
        let b = take_limit(all.clone(), 20, 5);
        assert_eq!(&b[..10], &a[..]);
        assert_eq!(take_limit(all.clone(), 5000, 5).len(), 1000);
        assert_ne!(a, take_limit(all, 10, 6));
    }
}
