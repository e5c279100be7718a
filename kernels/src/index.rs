//! Gathering and scattering slices along one dim of a `[outer, len, inner]` view:
//! the embedding lookup and its gradient.

use crate::Float;

/// out[o, j, :] = x[o, idx[j], :] for x `[outer, len, inner]`, out `[outer, idx.len(), inner]`.
pub fn index_select<T: Float>(x: &[T], outer: usize, len: usize, inner: usize, idx: &[usize], out: &mut [T]) {
    let m = idx.len();
    for o in 0..outer {
        for (j, &i) in idx.iter().enumerate() {
            let src = &x[(o * len + i) * inner..(o * len + i + 1) * inner];
            out[(o * m + j) * inner..(o * m + j + 1) * inner].copy_from_slice(src);
        }
    }
}

/// The adjoint of [`index_select`]: dx[o, idx[j], :] += g[o, j, :]. Repeated
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
#[allow(clippy::too_many_arguments)]
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

/// The adjoint of [`max_dim`]: dx[o, argmax[o, i], i] = g[o, i], every other element 0
/// (dx `[outer, n, inner]` is overwritten).
pub fn max_dim_backward<T: Float>(
    g: &[T],
    outer: usize,
    n: usize,
    inner: usize,
    argmax: &[usize],
    dx: &mut [T],
) {
    assert!(g.len() == outer * inner && argmax.len() == g.len() && dx.len() == outer * n * inner);
    dx.fill(T::ZERO);
    for (k, &gk) in g.iter().enumerate() {
        let (o, i) = (k / inner, k % inner);
        dx[(o * n + argmax[k]) * inner + i] += gk;
    }
}

/// Max along the middle dim of `[outer, n, inner]`: values and the first index of the max.
pub fn max_dim<T: Float>(x: &[T], outer: usize, n: usize, inner: usize, out: &mut [T], argmax: &mut [usize]) {
    for o in 0..outer {
        for i in 0..inner {
            let mut best = 0;
            for j in 1..n {
                // NaN propagates as the max, like PyTorch
                let (v, b) = (x[(o * n + j) * inner + i], x[(o * n + best) * inner + i]);
                if v > b || (v.is_nan() && !b.is_nan()) {
                    best = j;
                }
            }
            out[o * inner + i] = x[(o * n + best) * inner + i];
            argmax[o * inner + i] = best;
        }
    }
}
