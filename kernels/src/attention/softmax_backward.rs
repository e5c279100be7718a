//! The attention backward's element-wise step on one (b, h) pair: the dropout's backward and
//! the softmax's, from the P the forward saved (its signs carry the dropout mask), turning
//! dP' = dO Vᵀ into scale·dS in place, a row at a time. A portable loop and an AVX2 one
//! (chosen at run time); the tests hold both to `attention_backward_reference`.

#[cfg(target_arch = "x86_64")]
use std::arch::x86_64::*;

use crate::Float;

/// One pair's saved softmax: `saved` `(Tq,T)`, P as the forward saved it (−P where dropout
/// dropped the entry, so M = the entries whose sign bit is clear), `t` = T keys a row,
/// `keep` = 1/(1−p) (None: no dropout, M = 1, P = saved) and the scores' `scale`.
#[derive(Clone, Copy)]
pub(super) struct SoftmaxBackward<'a, T> {
    pub saved: &'a [T],
    pub t: usize,
    pub keep: Option<T>,
    pub scale: T,
}

/// From `dp` = dP' = dO Vᵀ `(Tq,T)`, in place, `dp` = scale·dS, where
///
/// ```text
/// dP = dP' ⊙ M/(1−p)    dS = P ⊙ (dP − rowsum(dP ⊙ P))
/// ```
///
/// and, with dropout, `pd` `(Tq,T)` = P' = P ⊙ M/(1−p) for dV = P'ᵀ dO. Each row in two
/// passes that find it in L1: the first unmasks and sums dP ⊙ P, the second writes scale·dS.
pub(super) fn softmax_dropout_backward<T: Float>(b: SoftmaxBackward<T>, dp: &mut [T], pd: &mut [T]) {
    assert!(
        b.t > 0 && dp.len() == b.saved.len() && dp.len().is_multiple_of(b.t),
        "attention backward: bad sizes"
    );
    assert!(b.keep.is_none() || pd.len() == dp.len(), "attention backward: P' needs Tq·T values");
    #[cfg(target_arch = "x86_64")]
    if crate::elementwise::simd_path::<T>(crate::isa::Family::Softmax, true) {
        if let (Some(saved), Some(dp), Some(pd)) =
            (crate::as_f32(b.saved), crate::as_f32_mut(&mut *dp), crate::as_f32_mut(&mut *pd))
        {
            let keep = b.keep.map(|k| k.to_f64() as f32);
            let b = SoftmaxBackward { saved, t: b.t, keep, scale: b.scale.to_f64() as f32 };
            // SAFETY: AVX2 and FMA are present (checked above); the sizes are checked.
            return unsafe { rows_avx2(b, dp, pd) };
        }
    }
    rows(b, dp, pd)
}

/// P' = |s|·f into `pd` and dP = dP'·f in place, f = M/(1−p) from the sign of `s`; returns
/// dP·P. One entry of the portable loop, and of each AVX2 row's tail.
#[inline(always)]
fn unmask<T: Float>(s: T, keep: T, dp: &mut T, pd: &mut T) -> T {
    let (f, p) = (if s.is_sign_negative() { T::ZERO } else { keep }, s.abs());
    *pd = p * f;
    *dp *= f;
    *dp * p
}

/// The portable loops.
fn rows<T: Float>(b: SoftmaxBackward<T>, dp: &mut [T], pd: &mut [T]) {
    let SoftmaxBackward { saved, t, keep, scale } = b;
    for (i, (sv, dp)) in saved.chunks_exact(t).zip(dp.chunks_exact_mut(t)).enumerate() {
        let dot: T = match keep {
            Some(keep) => {
                let pd = &mut pd[i * t..(i + 1) * t];
                (0..t).map(|j| unmask(sv[j], keep, &mut dp[j], &mut pd[j])).sum()
            }
            None => sv.iter().zip(dp.iter()).map(|(&p, &g)| g * p).sum(),
        };
        dp.iter_mut().zip(sv).for_each(|(g, &s)| *g = scale * s.abs() * (*g - dot));
    }
}

/// [`rows`] eight entries at a time (the sums in eight lanes, then added).
///
/// # Safety
/// The CPU must support AVX2 and FMA; the sizes are as [`softmax_dropout_backward`] checks.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn rows_avx2(b: SoftmaxBackward<f32>, dp: &mut [f32], pd: &mut [f32]) {
    let SoftmaxBackward { saved, t, keep, scale } = b;
    let whole = t / 8 * 8;
    let abs = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fff_ffff));
    for (i, (sv, dp)) in saved.chunks_exact(t).zip(dp.chunks_exact_mut(t)).enumerate() {
        let (ps, pg) = (sv.as_ptr(), dp.as_mut_ptr());
        let mut acc = _mm256_setzero_ps();
        let tail: f32 = match keep {
            Some(keep) => {
                let pd = &mut pd[i * t..(i + 1) * t];
                let (pp, k) = (pd.as_mut_ptr(), _mm256_set1_ps(keep));
                for j in (0..whole).step_by(8) {
                    let s = _mm256_loadu_ps(ps.add(j));
                    // f = 0 where the sign bit is set (dropped), else 1/(1−p)
                    let f = _mm256_blendv_ps(k, _mm256_setzero_ps(), s);
                    let p = _mm256_and_ps(s, abs);
                    _mm256_storeu_ps(pp.add(j), _mm256_mul_ps(p, f));
                    let g = _mm256_mul_ps(_mm256_loadu_ps(pg.add(j)), f);
                    _mm256_storeu_ps(pg.add(j), g);
                    acc = _mm256_fmadd_ps(g, p, acc);
                }
                (whole..t).map(|j| unmask(sv[j], keep, &mut dp[j], &mut pd[j])).sum()
            }
            None => {
                for j in (0..whole).step_by(8) {
                    acc = _mm256_fmadd_ps(_mm256_loadu_ps(pg.add(j)), _mm256_loadu_ps(ps.add(j)), acc);
                }
                (whole..t).map(|j| dp[j] * sv[j]).sum()
            }
        };
        let dot = crate::vecmath::x86::hsum(acc) + tail;
        let (vd, vs) = (_mm256_set1_ps(dot), _mm256_set1_ps(scale));
        for j in (0..whole).step_by(8) {
            let sp = _mm256_mul_ps(vs, _mm256_and_ps(_mm256_loadu_ps(ps.add(j)), abs));
            _mm256_storeu_ps(pg.add(j), _mm256_mul_ps(sp, _mm256_sub_ps(_mm256_loadu_ps(pg.add(j)), vd)));
        }
        (whole..t).for_each(|j| dp[j] = scale * sv[j].abs() * (dp[j] - dot));
    }
}
