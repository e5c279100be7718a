//! Gathering and scattering slices along one dim of a `[outer, len, inner]` view:
//! the embedding lookup and its gradient.

use crate::Float;

/// `out[o, j, :] = x[o, idx[j], :]` for x `[outer, len, inner]`, out `[outer, idx.len(), inner]`.
pub fn index_select<T: Float>(x: &[T], outer: usize, len: usize, inner: usize, idx: &[usize], out: &mut [T]) {
    let m = idx.len();
    for o in 0..outer {
        for (j, &i) in idx.iter().enumerate() {
            let src = &x[(o * len + i) * inner..(o * len + i + 1) * inner];
            out[(o * m + j) * inner..(o * m + j + 1) * inner].copy_from_slice(src);
        }
    }
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
