//! Row kernels in AVX2 intrinsics: 8 lanes at a time, the tail (n mod 8) in scalar
//! code. Reductions keep 8 partial sums, added in lane order at the end.
//!
//! SAFETY (for every function here): the callers check `simd_path()` (AVX2 and FMA present) first, so
//! AVX2 and FMA are present; the vector loops load and store 8 floats at offsets
//! i < n8 = n − n mod 8 of slices at least n long, so every access is in bounds.

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

/// x = scale·x + mask (each product rounded, then the sum, as the scalar code does),
/// in place; returns the max of the new row (−∞ for an empty row).
#[target_feature(enable = "avx2,fma")]
pub(crate) unsafe fn scale_add_max(x: &mut [f32], scale: f32, mask: Option<&[f32]>) -> f32 {
    let n = x.len();
    let n8 = n / 8 * 8;
    let (p, sv) = (x.as_mut_ptr(), _mm256_set1_ps(scale));
    let mut m = _mm256_set1_ps(f32::NEG_INFINITY);
    match mask {
        Some(mk) => {
            let mk = &mk[..n];
            let q = mk.as_ptr();
            for i in (0..n8).step_by(8) {
                let v =
                    _mm256_add_ps(_mm256_mul_ps(_mm256_loadu_ps(p.add(i)), sv), _mm256_loadu_ps(q.add(i)));
                _mm256_storeu_ps(p.add(i), v);
                m = _mm256_max_ps(m, v);
            }
            (n8..n).for_each(|i| x[i] = x[i] * scale + mk[i]);
        }
        None => {
            for i in (0..n8).step_by(8) {
                let v = _mm256_mul_ps(_mm256_loadu_ps(p.add(i)), sv);
                _mm256_storeu_ps(p.add(i), v);
                m = _mm256_max_ps(m, v);
            }
            (n8..n).for_each(|i| x[i] *= scale);
        }
    }
    let mut a = [0f32; 8];
    _mm256_storeu_ps(a.as_mut_ptr(), m);
    a.iter().chain(&x[n8..]).fold(f32::NEG_INFINITY, |a, &b| a.max(b))
}

/// One row of [`super::scaled_softmax_rows`].
#[target_feature(enable = "avx2,fma")]
pub(crate) unsafe fn scaled_softmax_row(s: &mut [f32], scale: f32, mask: Option<&[f32]>, p: &mut [f32]) {
    let max = scale_add_max(s, scale, mask);
    let inv = 1.0 / exp_sum_into(s, max, p, std::ptr::null());
    p.iter_mut().for_each(|y| *y *= inv);
}

/// [`super::scaled_exp_cols`] for `cols` a multiple of 8: each group of 8 columns in
/// registers, its maxima in one pass and its exponentials and sums in a second, which
/// recomputes `scale·x + mask[j]` rather than storing it (the same operations as the
/// reference, so the same values before the exp).
#[target_feature(enable = "avx2,fma")]
pub(crate) unsafe fn scaled_exp_cols(
    st: &mut [f32],
    cols: usize,
    scale: f32,
    mask: Option<&[f32]>,
    sums: &mut [f32],
) {
    debug_assert!(cols.is_multiple_of(8) && sums.len() >= cols);
    let rows = st.len() / cols;
    let p = st.as_mut_ptr();
    let vscale = _mm256_set1_ps(scale);
    // scale·x + mask[j] of the 8 values at `at` in row j
    let x = |j: usize, at: *const f32| {
        let mk = _mm256_set1_ps(mask.map_or(0.0, |m| m[j]));
        _mm256_add_ps(_mm256_mul_ps(_mm256_loadu_ps(at), vscale), mk)
    };
    for g in (0..cols).step_by(8) {
        let at = |j: usize| p.add(j * cols + g);
        let mut max = _mm256_set1_ps(f32::NEG_INFINITY);
        for j in 0..rows {
            max = _mm256_max_ps(max, x(j, at(j)));
        }
        let mut sum = _mm256_setzero_ps();
        for j in 0..rows {
            let e = exp8(_mm256_sub_ps(x(j, at(j)), max));
            _mm256_storeu_ps(at(j), e);
            sum = _mm256_add_ps(sum, e);
        }
        _mm256_storeu_ps(sums.as_mut_ptr().add(g), sum);
    }
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
