//! Softmax and log-softmax along one dimension of a `[outer, n, inner]` view.

use crate::elementwise::{simd_available, PAR_MIN};
use crate::threads::{par_ranges, SharedMut};
use crate::{as_f32, as_f32_mut, Float};

/// y = softmax(x) (or log_softmax when `log`) along the middle dim of `[outer, n, inner]`.
///
/// Stable form: subtract the max before exponentiating. Rows along the last dim
/// (`inner == 1`) of f32 take the vector kernel.
pub fn softmax_forward<T: Float>(x: &[T], outer: usize, n: usize, inner: usize, y: &mut [T], log: bool) {
    crate::threads::ensure_ftz(); // denormals flush to zero (see `threads`)
    assert!(x.len() == outer * n * inner && y.len() == x.len(), "softmax_forward: bad buffer sizes");
    if inner == 1 && n > 0 && simd_available() {
        if let (Some(x), Some(y)) = (as_f32(x), as_f32_mut(y)) {
            let y = SharedMut::new(y);
            // rows split between threads
            par_ranges(outer, PAR_MIN.div_ceil(n), 1, |rows| {
                for r in rows {
                    // SAFETY: AVX2 and FMA are present (checked above); rows are disjoint.
                    unsafe { fast::softmax_row(&x[r * n..(r + 1) * n], y.range(r * n..(r + 1) * n), log) };
                }
            });
            return;
        }
    }
    softmax_forward_reference(x, outer, n, inner, y, log);
}

/// The scalar reference of [`softmax_forward`].
pub fn softmax_forward_reference<T: Float>(
    x: &[T],
    outer: usize,
    n: usize,
    inner: usize,
    y: &mut [T],
    log: bool,
) {
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
    crate::threads::ensure_ftz(); // denormals flush to zero (see `threads`)
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

#[cfg(target_arch = "x86_64")]
mod fast {
    use crate::vecmath;

    /// Max of a row with 8 independent lanes (so it vectorizes).
    #[inline(always)]
    fn max8(x: &[f32]) -> f32 {
        let mut m = [f32::NEG_INFINITY; 8];
        let chunks = x.chunks_exact(8);
        let tail = chunks.remainder();
        for c in chunks {
            for l in 0..8 {
                m[l] = m[l].max(c[l]);
            }
        }
        tail.iter().chain(&m).fold(f32::NEG_INFINITY, |a, &b| a.max(b))
    }

    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn softmax_row(x: &[f32], y: &mut [f32], log: bool) {
        let max = max8(x);
        // y = e^{x − max}, summed in 8 lanes
        let mut s = [0f32; 8];
        let n8 = x.len() / 8 * 8;
        for (yc, xc) in y[..n8].chunks_exact_mut(8).zip(x[..n8].chunks_exact(8)) {
            for l in 0..8 {
                yc[l] = vecmath::exp(xc[l] - max);
                s[l] += yc[l];
            }
        }
        let mut sum: f32 = s.iter().sum();
        for i in n8..x.len() {
            y[i] = vecmath::exp(x[i] - max);
            sum += y[i];
        }
        if log {
            let shift = max + sum.ln();
            y.iter_mut().zip(x).for_each(|(y, &x)| *y = x - shift);
        } else {
            let inv = 1.0 / sum;
            y.iter_mut().for_each(|y| *y *= inv);
        }
    }
}

#[cfg(not(target_arch = "x86_64"))]
mod fast {
    pub(super) unsafe fn softmax_row(_: &[f32], _: &mut [f32], _: bool) {
        unreachable!("simd_available() is false off x86_64")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

    #[test]
    fn fast_rows_match_reference() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(3);
        for n in [1usize, 7, 8, 17, 33, 255, 257] {
            // enough rows at n = 257 to take the threaded split
            let rows = if n == 257 { 200 } else { 3 };
            let x: Vec<f32> = (0..rows * n).map(|_| rng.gen_range(-20.0..20.0)).collect();
            let x64: Vec<f64> = x.iter().map(|&v| v as f64).collect();
            for log in [false, true] {
                let (mut y, mut y64) = (vec![0f32; rows * n], vec![0f64; rows * n]);
                softmax_forward(&x, rows, n, 1, &mut y, log);
                softmax_forward_reference(&x64, rows, n, 1, &mut y64, log);
                for i in 0..rows * n {
                    let err = (y[i] as f64 - y64[i]).abs();
                    assert!(
                        err <= 1e-6 * y64[i].abs() + 1e-6,
                        "n={n} log={log} i={i}: {} vs {}",
                        y[i],
                        y64[i]
                    );
                }
            }
        }
    }
}
