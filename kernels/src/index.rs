//! Gathering and scattering slices along one dim of a `[outer, len, inner]` view:
//! the embedding lookup and its gradient.

use crate::threads::{par_ranges, SharedMut};
use crate::Float;

/// `out[o, j, :] = x[o, idx[j], :]` for x `[outer, len, inner]`, out `[outer, idx.len(), inner]`.
/// The output rows are split over the threads (a memory-bound copy; from 64 Ki elements a
/// thread).
pub fn index_select<T: Float>(x: &[T], outer: usize, len: usize, inner: usize, idx: &[usize], out: &mut [T]) {
    let m = idx.len();
    assert!(
        x.len() == outer * len * inner && out.len() == outer * m * inner,
        "index_select: bad buffer sizes"
    );
    assert!(idx.iter().all(|&i| i < len), "index_select: an index is out of range 0..{len}");
    let rows = SharedMut::new(out);
    par_ranges(outer * m, (1 << 16) / inner.max(1), 1, |r| {
        // SAFETY: each part writes only its own output rows.
        let out = unsafe { rows.range(r.start * inner..r.end * inner) };
        for (row, out) in r.zip(out.chunks_exact_mut(inner.max(1))) {
            let (o, i) = (row / m, idx[row % m]);
            out.copy_from_slice(&x[(o * len + i) * inner..(o * len + i + 1) * inner]);
        }
    });
}

/// The adjoint of [`index_select`]: `dx[o, idx[j], :] += g[o, j, :]`. Repeated
/// indices accumulate.
pub fn index_add<T: Float>(g: &[T], outer: usize, len: usize, inner: usize, idx: &[usize], dx: &mut [T]) {
    let m = idx.len();
    for o in 0..outer {
        for (j, &i) in idx.iter().enumerate() {
            let src = &g[(o * m + j) * inner..(o * m + j + 1) * inner];
            for (d, &v) in dx[(o * len + i) * inner..(o * len + i + 1) * inner].iter_mut().zip(src) {
                *d += v;
            }
        }
    }
}

/// out[o, j, i] = x[o, idx[o, j, i], i] for x `[outer, len, inner]`, idx/out `[outer, m, inner]`
/// (`torch.gather` along the middle dim).
pub fn gather<T: Float>(
    x: &[T],
    outer: usize,
    len: usize,
    inner: usize,
    idx: &[usize],
    m: usize,
    out: &mut [T],
) {
    for o in 0..outer {
        for j in 0..m {
            for i in 0..inner {
                let at = (o * m + j) * inner + i;
                out[at] = x[(o * len + idx[at]) * inner + i];
            }
        }
    }
}

/// The adjoint of [`gather`]: dx[o, idx[o, j, i], i] += g[o, j, i].
pub fn scatter_add<T: Float>(
    g: &[T],
    outer: usize,
    len: usize,
    inner: usize,
    idx: &[usize],
    m: usize,
    dx: &mut [T],
) {
    for o in 0..outer {
        for j in 0..m {
            for i in 0..inner {
                let at = (o * m + j) * inner + i;
                dx[(o * len + idx[at]) * inner + i] += g[at];
            }
        }
    }
}

/// Max along a dim lives with the other reductions.
pub use crate::reduce::max_dim;

#[cfg(test)]
mod tests {
    use super::*;

    /// Enough rows to split over the threads, with repeated indices: against a plain loop.
    #[test]
    fn index_select_split_over_threads_matches_loop() {
        let (outer, len, inner) = (3usize, 500usize, 7usize);
        let x: Vec<f64> = (0..outer * len * inner).map(|i| i as f64).collect();
        let idx: Vec<usize> = (0..20_000).map(|j| (j * 7919) % len).collect();
        let mut out = vec![f64::NAN; outer * idx.len() * inner];
        index_select(&x, outer, len, inner, &idx, &mut out);
        for o in 0..outer {
            for (j, &i) in idx.iter().enumerate() {
                for c in 0..inner {
                    assert_eq!(out[(o * idx.len() + j) * inner + c], x[(o * len + i) * inner + c]);
                }
            }
        }
    }
}
