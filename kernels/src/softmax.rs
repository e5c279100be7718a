//! Softmax and log-softmax along one dimension of a `[outer, n, inner]` view.

use crate::Float;

/// y = softmax(x) (or log_softmax when `log`) along the middle dim of `[outer, n, inner]`.
///
/// Stable form: subtract the max before exponentiating.
pub fn softmax_forward<T: Float>(x: &[T], outer: usize, n: usize, inner: usize, y: &mut [T], log: bool) {
    for o in 0..outer {
        for i in 0..inner {
            let at = |j: usize| o * n * inner + j * inner + i;
            let mut max = T::NEG_INFINITY;
            for j in 0..n {
                max = max.max(x[at(j)]);
            }
            let mut sum = T::ZERO;
            for j in 0..n {
                let e = (x[at(j)] - max).exp();
                y[at(j)] = e;
                sum += e;
            }
            if log {
                let lse = sum.ln();
                for j in 0..n {
                    y[at(j)] = x[at(j)] - max - lse;
                }
            } else {
                let inv = T::ONE / sum;
                for j in 0..n {
                    y[at(j)] *= inv;
                }
            }
        }
    }
}

/// dx += backward of softmax (or log_softmax) given its output `y` and output grad `g`.
///
/// softmax:     dx_j = y_j (g_j − Σ_k g_k y_k)
/// log_softmax: dx_j = g_j − e^{y_j} Σ_k g_k
#[allow(clippy::too_many_arguments)]
pub fn softmax_backward<T: Float>(
    y: &[T],
    g: &[T],
    outer: usize,
    n: usize,
    inner: usize,
    dx: &mut [T],
    log: bool,
) {
    for o in 0..outer {
        for i in 0..inner {
            let at = |j: usize| o * n * inner + j * inner + i;
            if log {
                let gsum: T = (0..n).map(|j| g[at(j)]).sum();
                for j in 0..n {
                    dx[at(j)] += g[at(j)] - y[at(j)].exp() * gsum;
                }
            } else {
                let dot: T = (0..n).map(|j| g[at(j)] * y[at(j)]).sum();
                for j in 0..n {
                    dx[at(j)] += y[at(j)] * (g[at(j)] - dot);
                }
            }
        }
    }
}
