//! Softmax and log-softmax along one dimension of a `[outer, n, inner]` view.

use crate::elementwise::{simd_path, PAR_MIN};
use crate::isa::Family;
use crate::threads::{par_ranges, SharedMut};
use crate::{as_f32, as_f32_mut, Float};

/// y = softmax(x) (or log_softmax when `log`) along the middle dim of `[outer, n, inner]`.
///
/// Stable form: subtract the max before exponentiating. Rows along the last dim
/// (`inner == 1`) of f32 take the vector kernel.
pub fn softmax_forward<T: Float>(x: &[T], outer: usize, n: usize, inner: usize, y: &mut [T], log: bool) {
    crate::threads::ensure_ftz(); // denormals flush to zero (see `threads`)
    assert!(x.len() == outer * n * inner && y.len() == x.len(), "softmax_forward: bad buffer sizes");
    if simd_path::<T>(Family::Softmax, inner == 1 && n > 0) {
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

/// dx += backward of softmax (or log_softmax) given its output `y` and output grad `g`,
/// along the middle dim of `[outer, n, inner]`. With ∂yⱼ/∂xₖ = yⱼ(δⱼₖ − yₖ) for softmax
/// and ∂yⱼ/∂xₖ = δⱼₖ − softmax(x)ₖ for log_softmax (softmax(x) = e^{y} there):
///
/// softmax:     dx_j = y_j (g_j − Σ_k g_k y_k)
/// log_softmax: dx_j = g_j − e^{y_j} Σ_k g_k
///
/// Rows along the last dim (`inner == 1`) of f32 take the vector kernel, split
/// between threads.
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
    let len = outer * n * inner;
    assert!(y.len() == len && g.len() == len && dx.len() == len, "softmax_backward: bad buffer sizes");
    if simd_path::<T>(Family::Softmax, inner == 1 && n > 0) {
        if let (Some(y), Some(g), Some(dx)) = (as_f32(y), as_f32(g), as_f32_mut(dx)) {
            let dx = SharedMut::new(dx);
            par_ranges(outer, PAR_MIN.div_ceil(n), 1, |rows| {
                for r in rows {
                    let row = r * n..(r + 1) * n;
                    // SAFETY: AVX2 and FMA are present (checked above); rows are disjoint.
                    unsafe { fast::backward_row(&y[row.clone()], &g[row.clone()], dx.range(row), log) };
                }
            });
            return;
        }
    }
    softmax_backward_reference(y, g, outer, n, inner, dx, log);
}

/// The scalar reference of [`softmax_backward`].
#[allow(clippy::too_many_arguments)]
pub fn softmax_backward_reference<T: Float>(
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

/// Row kernels in AVX2 intrinsics: 8 lanes at a time, the tail (n mod 8) in scalar
/// code. Reductions keep 8 partial sums, added in lane order at the end.
///
/// SAFETY (for every function here): the callers check `simd_path()` (AVX2 and FMA present) first, so
/// AVX2 and FMA are present; the vector loops load and store 8 floats at offsets
/// i < n8 = n − n mod 8 of slices at least n long, so every access is in bounds.
#[cfg(target_arch = "x86_64")]
pub(crate) mod fast {
    use crate::vecmath::{
        self,
        x86::{exp8, hsum},
    };
    use std::arch::x86_64::*;

    /// max of a row (−∞ for an empty row).
    #[target_feature(enable = "avx2,fma")]
    pub(crate) unsafe fn max(x: &[f32]) -> f32 {
        let n8 = x.len() / 8 * 8;
        let p = x.as_ptr();
        let mut m = _mm256_set1_ps(f32::NEG_INFINITY);
        for i in (0..n8).step_by(8) {
            m = _mm256_max_ps(m, _mm256_loadu_ps(p.add(i)));
        }
        let mut a = [0f32; 8];
        _mm256_storeu_ps(a.as_mut_ptr(), m);
        a.iter().chain(&x[n8..]).fold(f32::NEG_INFINITY, |a, &b| a.max(b))
    }

    /// Row kernels read a row twice: its max from memory, then the exp pass from
    /// cache, which is compute-bound. While at element i of the exp pass, this asks
    /// for the line at i of the next row (rows are contiguous: n floats further), so
    /// the next max pass finds its row in cache and memory runs beside the exps.
    /// One prefetch per 64-byte line; past the buffer's end (last row) prefetches
    /// are hints that never fault, and the pointer is only formed, not read.
    #[inline(always)]
    unsafe fn prefetch_next_row(p: *const f32, n: usize, i: usize) {
        prefetch(p.wrapping_add(n), i)
    }

    /// Prefetches the line holding `p[i]` when i is a multiple of 16 floats (64
    /// bytes); nothing for a null `p`.
    #[inline(always)]
    unsafe fn prefetch(p: *const f32, i: usize) {
        if i.is_multiple_of(16) && !p.is_null() {
            _mm_prefetch::<_MM_HINT_T0>(p.wrapping_add(i) as *const i8);
        }
    }

    /// Σ e^{x − m} over a row; with `e`, also stores each e^{x − m} there.
    #[inline(always)]
    unsafe fn sum_exp_impl(x: &[f32], m: f32, e: Option<&mut [f32]>, also: *const f32) -> f32 {
        let n = x.len();
        let n8 = n / 8 * 8;
        let (p, mv) = (x.as_ptr(), _mm256_set1_ps(m));
        let mut s = _mm256_setzero_ps();
        let mut tail = 0f32;
        match e {
            Some(e) => {
                let e = &mut e[..n];
                let q = e.as_mut_ptr();
                for i in (0..n8).step_by(8) {
                    prefetch_next_row(p, n, i);
                    prefetch(also, i);
                    let v = exp8(_mm256_sub_ps(_mm256_loadu_ps(p.add(i)), mv));
                    _mm256_storeu_ps(q.add(i), v);
                    s = _mm256_add_ps(s, v);
                }
                for i in n8..n {
                    e[i] = vecmath::exp(x[i] - m);
                    tail += e[i];
                }
            }
            None => {
                for i in (0..n8).step_by(8) {
                    prefetch_next_row(p, n, i);
                    s = _mm256_add_ps(s, exp8(_mm256_sub_ps(_mm256_loadu_ps(p.add(i)), mv)));
                }
                tail = x[n8..].iter().map(|&v| vecmath::exp(v - m)).sum();
            }
        }
        hsum(s) + tail
    }

    /// Σ e^{x − m} over a row.
    #[target_feature(enable = "avx2,fma")]
    pub(crate) unsafe fn sum_exp(x: &[f32], m: f32) -> f32 {
        sum_exp_impl(x, m, None, std::ptr::null())
    }

    /// e = e^{x − m} (e at least as long as x); returns Σ e. Prefetches the row
    /// at `also` (null: none) along the way, for a pass that follows.
    #[target_feature(enable = "avx2,fma")]
    pub(crate) unsafe fn exp_sum_into(x: &[f32], m: f32, e: &mut [f32], also: *const f32) -> f32 {
        sum_exp_impl(x, m, Some(e), also)
    }

    /// Σ a·b over a row (b at least as long as a).
    #[target_feature(enable = "avx2,fma")]
    unsafe fn dot(a: &[f32], b: &[f32]) -> f32 {
        let n = a.len();
        let (b, n8) = (&b[..n], n / 8 * 8);
        let (pa, pb) = (a.as_ptr(), b.as_ptr());
        let mut s = _mm256_setzero_ps();
        for i in (0..n8).step_by(8) {
            s = _mm256_fmadd_ps(_mm256_loadu_ps(pa.add(i)), _mm256_loadu_ps(pb.add(i)), s);
        }
        hsum(s) + (n8..n).map(|i| a[i] * b[i]).sum::<f32>()
    }

    /// Σ a over a row.
    #[target_feature(enable = "avx2,fma")]
    unsafe fn sum(a: &[f32]) -> f32 {
        let n8 = a.len() / 8 * 8;
        let p = a.as_ptr();
        let mut s = _mm256_setzero_ps();
        for i in (0..n8).step_by(8) {
            s = _mm256_add_ps(s, _mm256_loadu_ps(p.add(i)));
        }
        hsum(s) + a[n8..].iter().sum::<f32>()
    }

    /// One row of [`super::softmax_backward`].
    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn backward_row(y: &[f32], g: &[f32], dx: &mut [f32], log: bool) {
        let n = dx.len();
        let (y, g) = (&y[..n], &g[..n]);
        // plain loops: the compiler vectorizes these itself
        if log {
            // pass 1 reads g from memory; pass 2 (exp-bound) prefetches the next row's g
            let gsum = sum(g);
            let n8 = n / 8 * 8;
            let (py, pg, pd, gs) = (y.as_ptr(), g.as_ptr(), dx.as_mut_ptr(), _mm256_set1_ps(gsum));
            for i in (0..n8).step_by(8) {
                prefetch_next_row(pg, n, i);
                let d = _mm256_add_ps(_mm256_loadu_ps(pd.add(i)), _mm256_loadu_ps(pg.add(i)));
                let v = _mm256_fnmadd_ps(exp8(_mm256_loadu_ps(py.add(i))), gs, d);
                _mm256_storeu_ps(pd.add(i), v);
            }
            (n8..n).for_each(|j| dx[j] += g[j] - vecmath::exp(y[j]) * gsum);
        } else {
            let dot = dot(g, y);
            (0..n).for_each(|j| dx[j] += y[j] * (g[j] - dot));
        }
    }

    /// One row of [`super::softmax_forward`].
    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn softmax_row(x: &[f32], y: &mut [f32], log: bool) {
        let max = max(x);
        let sum = exp_sum_into(x, max, y, std::ptr::null());
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
pub(crate) mod fast {
    pub(super) unsafe fn softmax_row(_: &[f32], _: &mut [f32], _: bool) {
        unreachable!("simd_available() is false off x86_64")
    }
    pub(super) unsafe fn backward_row(_: &[f32], _: &[f32], _: &mut [f32], _: bool) {
        unreachable!("simd_available() is false off x86_64")
    }
    pub(crate) unsafe fn max(_: &[f32]) -> f32 {
        unreachable!("simd_available() is false off x86_64")
    }
    pub(crate) unsafe fn sum_exp(_: &[f32], _: f32) -> f32 {
        unreachable!("simd_available() is false off x86_64")
    }
    pub(crate) unsafe fn exp_sum_into(_: &[f32], _: f32, _: &mut [f32], _: *const f32) -> f32 {
        unreachable!("simd_available() is false off x86_64")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{RngExt, SeedableRng};

    #[test]
    fn fast_rows_match_reference() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(3);
        for n in [1usize, 7, 8, 17, 33, 255, 257] {
            // enough rows at n = 257 to take the threaded split
            let rows = if n == 257 { 200 } else { 3 };
            let x: Vec<f32> = (0..rows * n).map(|_| rng.random_range(-20.0..20.0)).collect();
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

    /// The backward on f32 (vector kernel, threaded for the widest rows) and on f64
    /// agrees with the reference in f64; a strided dim (`inner > 1`) too.
    #[test]
    fn fast_backward_matches_reference() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(4);
        for (n, inner) in
            [(1usize, 1usize), (7, 1), (8, 1), (15, 1), (17, 1), (33, 1), (255, 1), (257, 1), (17, 3)]
        {
            let rows = if n == 257 { 200 } else { 3 };
            let len = rows * n * inner;
            let x: Vec<f32> = (0..len).map(|_| rng.random_range(-10.0..10.0)).collect();
            let g: Vec<f32> = (0..len).map(|_| rng.random_range(-1.0..1.0)).collect();
            let start: Vec<f32> = (0..len).map(|_| rng.random_range(-1.0..1.0)).collect();
            let up = |v: &[f32]| v.iter().map(|&a| a as f64).collect::<Vec<f64>>();
            for log in [false, true] {
                let mut y = vec![0f32; len];
                softmax_forward(&x, rows, n, inner, &mut y, log);
                let mut dx = start.clone();
                softmax_backward(&y, &g, rows, n, inner, &mut dx, log);
                let (mut dx64, mut dx2) = (up(&start), up(&start));
                softmax_backward_reference(&up(&y), &up(&g), rows, n, inner, &mut dx64, log);
                softmax_backward(&up(&y), &up(&g), rows, n, inner, &mut dx2, log);
                assert_eq!(dx2, dx64, "f64 path n={n} log={log}");
                for i in 0..len {
                    let err = (dx[i] as f64 - dx64[i]).abs();
                    assert!(
                        err <= 1e-5 * (1.0 + dx64[i].abs()),
                        "n={n} log={log} i={i}: {} vs {}",
                        dx[i],
                        dx64[i]
                    );
                }
            }
        }
    }
}
