//! Fused losses on logits.

use crate::Float;

/// Cross-entropy of `logits [n, c]` against class `targets`, rows whose target equals
/// `ignore_index` skipped: returns (Σ_i −log softmax(logits_i)[t_i], count of rows used).
/// The caller divides by the count: that is the mean loss L = (1/N) Σ_i l_i.
pub fn cross_entropy_forward<T: Float>(
    logits: &[T],
    n: usize,
    c: usize,
    targets: &[usize],
    ignore_index: Option<usize>,
) -> (T, usize) {
    crate::threads::ensure_ftz(); // denormals flush to zero (see `threads`)
    let mut total = T::ZERO;
    let mut count = 0;
    for i in 0..n {
        let t = targets[i];
        if Some(t) == ignore_index {
            continue;
        }
        let row = &logits[i * c..(i + 1) * c];
        let max = row.iter().fold(T::NEG_INFINITY, |m, &v| m.max(v));
        let lse = row.iter().map(|&v| (v - max).exp()).sum::<T>().ln() + max;
        total += lse - row[t];
        count += 1;
    }
    (total, count)
}

/// dlogits += scale · (softmax(logits_i) − onehot(t_i)) for every row not ignored.
/// `scale` carries the upstream gradient and the 1/N of the mean.
pub fn cross_entropy_backward<T: Float>(
    logits: &[T],
    n: usize,
    c: usize,
    targets: &[usize],
    ignore_index: Option<usize>,
    scale: T,
    dlogits: &mut [T],
) {
    crate::threads::ensure_ftz(); // denormals flush to zero (see `threads`)
    for i in 0..n {
        let t = targets[i];
        if Some(t) == ignore_index {
            continue;
        }
        let row = &logits[i * c..(i + 1) * c];
        let max = row.iter().fold(T::NEG_INFINITY, |m, &v| m.max(v));
        let sum = row.iter().map(|&v| (v - max).exp()).sum::<T>();
        let d = &mut dlogits[i * c..(i + 1) * c];
        for j in 0..c {
            let p = (row[j] - max).exp() / sum;
            let onehot = if j == t { T::ONE } else { T::ZERO };
            d[j] += scale * (p - onehot);
        }
    }
}
