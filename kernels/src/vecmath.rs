//! Branch-free f32 approximations of exp, tanh and erf, written as plain scalar
//! code that the compiler vectorizes inside `#[target_feature]` loops (see
//! `elementwise.rs`). Each is tested against the standard library below.
//!
//! exp:  Cephes' expf: e^x = 2^n · e^r, n = round(x·log₂e), |r| ≤ ln2/2, e^r by a
//!       degree-6 polynomial. Relative error ≈ 2e-7.
//! tanh: the rational minimax approximation used by Eigen, p(x)/q(x) on
//!       [−7.9, 7.9] (tanh is ±1 in f32 beyond). Relative error ≈ 3e-7 with no
//!       cancellation near 0.
//! erf:  a rational minimax fit x·P(x²)/Q(x²) on [−4, 4] (one division, no
//!       exp). Error ≤ 3.7e-7 relative and absolute (≤ 6.1 ulp, near ±1).

/// x limited to [lo, hi], written as the two selects that x86's maxps and minps
/// compute (`f32::clamp` compiles to compares and blends instead). NaN stays NaN.
#[inline(always)]
fn clamp(x: f32, lo: f32, hi: f32) -> f32 {
    let x = if lo > x { lo } else { x };
    if hi < x {
        hi
    } else {
        x
    }
}

// exp's constants, shared by the scalar and the 8-lane version
const LOG2E: f32 = std::f32::consts::LOG2_E;
const LN2_HI: f32 = 0.693_359_4;
const LN2_LO: f32 = -2.121_944_4e-4;
// 1.5·2²³ + 127: adding it to x·log₂e rounds that to an integer n, held in the low mantissa
// bits as n + 127, 2ⁿ's biased exponent
const MAGIC: f32 = 12_583_039.0;
const EXP_LO: f32 = -87.336_55;
const EXP_HI: f32 = 88.376_26;
const EXP_P: [f32; 6] = [1.987_569_1e-4, 1.398_199_9e-3, 8.333_452e-3, 4.166_579_6e-2, 1.666_666_5e-1, 5e-1];

/// e^x for f32, clamped to the finite range.
#[inline(always)]
pub fn exp(x: f32) -> f32 {
    let x = clamp(x, EXP_LO, EXP_HI);
    let t = x.mul_add(LOG2E, MAGIC);
    // n = round(x·log₂e), as a float; r = x − n·ln2 in two steps (n·LN2_HI is exact:
    // LN2_HI has 9 significant bits)
    let n = t - MAGIC;
    let r = (-n).mul_add(LN2_LO, (-n).mul_add(LN2_HI, x));
    // e^r ≈ 1 + r + r²·P(r)
    let mut p = EXP_P[0];
    for &c in &EXP_P[1..] {
        p = p.mul_add(r, c);
    }
    let er = (p * r).mul_add(r, r) + 1.0;
    // 2ⁿ through the exponent bits: t's low 8 mantissa bits hold n + 127 ∈ [1, 254] (n ∈
    // [−126, 127] after the clamp); shifted into the exponent field, the bits above them
    // fall off. One integer op, so this vectorizes.
    let two_n = f32::from_bits(t.to_bits() << 23);
    er * two_n
}

/// 8-lane AVX2 versions, for kernels whose loops the compiler does not vectorize
/// well by itself (reductions: it reorders lanes around the exp).
#[cfg(target_arch = "x86_64")]
pub mod x86 {
    use super::*;
    use std::arch::x86_64::*;

    /// [`exp`] of 8 lanes: the same operations in the same order, so
    /// the same results, lane by lane.
    ///
    /// # Safety
    /// The CPU must support AVX2 and FMA.
    #[inline]
    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn exp8(x: __m256) -> __m256 {
        let c = _mm256_set1_ps;
        // max(lo, x), min(hi, x): NaN stays NaN, as in the scalar clamp
        let x = _mm256_min_ps(c(EXP_HI), _mm256_max_ps(c(EXP_LO), x));
        let t = _mm256_fmadd_ps(x, c(LOG2E), c(MAGIC));
        let n = _mm256_sub_ps(t, c(MAGIC));
        let r = _mm256_fnmadd_ps(n, c(LN2_LO), _mm256_fnmadd_ps(n, c(LN2_HI), x));
        let mut p = c(EXP_P[0]);
        for &k in &EXP_P[1..] {
            p = _mm256_fmadd_ps(p, r, c(k));
        }
        let er = _mm256_add_ps(_mm256_fmadd_ps(_mm256_mul_ps(p, r), r, r), c(1.0));
        let two_n = _mm256_slli_epi32::<23>(_mm256_castps_si256(t));
        _mm256_mul_ps(er, _mm256_castsi256_ps(two_n))
    }

    /// The 8 lanes' sum, added in lane order.
    ///
    /// # Safety
    /// The CPU must support AVX2 and FMA.
    #[inline]
    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn hsum(v: __m256) -> f32 {
        let mut a = [0f32; 8];
        _mm256_storeu_ps(a.as_mut_ptr(), v);
        a.iter().sum()
    }
}

/// tanh(x) for f32.
#[inline(always)]
pub fn tanh(x: f32) -> f32 {
    let x = clamp(x, -7.905_311, 7.905_311);
    let x2 = x * x;
    let mut p = -2.760_768_5e-16f32;
    p = p.mul_add(x2, 2.000_188e-13);
    p = p.mul_add(x2, -8.604_672e-11);
    p = p.mul_add(x2, 5.122_297e-8);
    p = p.mul_add(x2, 1.485_722_4e-5);
    p = p.mul_add(x2, 6.372_619_3e-4);
    p = p.mul_add(x2, 4.893_524_6e-3);
    let mut q = 1.198_258_4e-6f32;
    q = q.mul_add(x2, 1.185_347e-4);
    q = q.mul_add(x2, 2.268_434_7e-3);
    q = q.mul_add(x2, 4.893_525e-3);
    x * p / q
}

/// σ(x) = 1/(1 + e^{−x}) for f32.
#[inline(always)]
pub fn sigmoid(x: f32) -> f32 {
    1.0 / (1.0 + exp(-x))
}

/// erf(x) for f32: the odd rational x·P(x²)/Q(x²) on x clamped to [−4, 4]
/// (erf(4) = 1 − 1.5e-8 rounds to 1 in f32, so the clamp loses nothing).
/// P has degree 4 and Q degree 6 in s = x²; their coefficients are a relative
/// minimax fit of erf on [0, 4] (max relative error 3.7e-8 in exact arithmetic).
/// Eleven FMAs, one division and a clamp, no exp and no branch: it is odd by construction
/// and exact at 0. In f32 the rounding of the two Horner sums dominates: error
/// ≤ 3.7e-7 relative and absolute, ≤ 6.1 ulp, the worst just below 1 near |x| ≈ 3.8.
// P's constant term is the fit's, a little below 2/√π (1.1283791 vs 1.1283792 in f32)
#[allow(clippy::approx_constant)]
#[inline(always)]
pub fn erf(x: f32) -> f32 {
    let x = clamp(x, -4.0, 4.0);
    let s = x * x;
    let mut p = 2.322_725_8e-4f32;
    p = p.mul_add(s, 3.751_552_7e-3);
    p = p.mul_add(s, 5.203_989e-2);
    p = p.mul_add(s, 1.940_821_4e-1);
    p = p.mul_add(s, 1.128_379_1);
    let mut q = -1.074_449e-7f32;
    q = q.mul_add(s, 2.287_033_2e-5);
    q = q.mul_add(s, 1.090_254_6e-3);
    q = q.mul_add(s, 1.477_862_3e-2);
    q = q.mul_add(s, 1.145_694_4e-1);
    q = q.mul_add(s, 5.053_33e-1);
    q = q.mul_add(s, 1.0);
    // rounding can lift |x·p/q| a hair above 1 near the clamp: keep erf in [−1, 1]
    clamp(x * p / q, -1.0, 1.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sweep(f: fn(f32) -> f32, reference: fn(f64) -> f64, lo: f32, hi: f32, rel: f64, abs: f64) {
        let n = 200_001;
        for i in 0..n {
            let x = lo + (hi - lo) * i as f32 / (n - 1) as f32;
            let (got, want) = (f(x) as f64, reference(x as f64));
            assert!(
                (got - want).abs() <= abs + rel * want.abs(),
                "x = {x}: got {got}, want {want} (err {:e})",
                (got - want).abs()
            );
        }
    }

    #[test]
    fn exp_is_accurate() {
        sweep(exp, f64::exp, -87.0, 88.0, 3e-7, 0.0);
        assert_eq!(exp(-1000.0), exp(-87.336_55));
        assert!(exp(1000.0).is_finite());
    }

    #[cfg(target_arch = "x86_64")]
    #[test]
    fn exp8_matches_exp() {
        if !crate::elementwise::simd_available() {
            eprintln!("exp8: SKIPPED (this CPU lacks AVX2+FMA)");
            return;
        }
        let xs: Vec<f32> =
            (0..79_997).map(|i| -100.0 + i as f32 * 0.0025).chain([f32::NAN, 1e9, -1e9]).collect();
        for c in xs.chunks_exact(8) {
            let mut out = [0f32; 8];
            // SAFETY: AVX2 and FMA are present (checked above); `c` and `out` hold 8 floats.
            unsafe {
                use std::arch::x86_64::*;
                _mm256_storeu_ps(out.as_mut_ptr(), x86::exp8(_mm256_loadu_ps(c.as_ptr())));
            }
            for l in 0..8 {
                assert!(
                    out[l].to_bits() == exp(c[l]).to_bits() || (out[l].is_nan() && c[l].is_nan()),
                    "x = {}",
                    c[l]
                );
            }
        }
    }

    #[test]
    fn tanh_is_accurate() {
        sweep(tanh, f64::tanh, -10.0, 10.0, 6e-7, 1e-30);
        sweep(tanh, f64::tanh, -1e-3, 1e-3, 6e-7, 1e-30);
    }

    #[test]
    fn sigmoid_is_accurate() {
        sweep(sigmoid, |x| 1.0 / (1.0 + (-x).exp()), -80.0, 80.0, 6e-7, 1e-30);
    }

    /// Every f32 in [lo, hi) (stepping `step` bit patterns): (max relative error,
    /// max error in ulps of the f64 value, max absolute error).
    fn worst(f: fn(f32) -> f32, reference: fn(f64) -> f64, lo: f32, hi: f32, step: u32) -> (f64, f64, f64) {
        let (mut rel, mut ulps, mut abs) = (0f64, 0f64, 0f64);
        let mut x = lo;
        while x < hi {
            let (got, want) = (f(x) as f64, reference(x as f64));
            let err = (got - want).abs();
            let ulp = ((want as f32).abs().to_bits() as f64 + 1.0).max(1.0);
            let ulp = f32::from_bits(ulp as u32) as f64 - (want as f32).abs() as f64;
            rel = rel.max(err / want.abs().max(1e-38));
            ulps = ulps.max(err / ulp.max(f64::MIN_POSITIVE));
            abs = abs.max(err);
            x = if x < 0.0 {
                f32::from_bits(x.to_bits().saturating_sub(step).max(0x8000_0000))
            } else {
                f32::from_bits(x.to_bits() + step)
            };
            if x == -0.0 {
                x = 0.0;
            }
        }
        (rel, ulps, abs)
    }

    #[test]
    fn erf_is_accurate() {
        // every 97th f32 in [−6, 6] (the old A&S 7.1.26 form measured 5.8e-7 rel, 5.2 ulp,
        // 3.1e-7 abs here), then tiny inputs, where erf(x) ≈ 1.128x
        let (rel, ulps, abs) = worst(erf, libm::erf, -6.0, 6.0, 97);
        eprintln!("erf on [-6, 6]: max rel {rel:.3e}, {ulps:.2} ulp, abs {abs:.3e}");
        assert!(rel <= 4e-7 && ulps <= 6.5 && abs <= 4e-7, "erf: rel {rel:e}, {ulps} ulp, abs {abs:e}");
        sweep(erf, libm::erf, -1e-3, 1e-3, 4e-7, 1e-30);
        assert_eq!(erf(0.0), 0.0);
        assert_eq!(erf(100.0), erf(4.0));
        assert!(erf(4.0) <= 1.0 && erf(-4.0) >= -1.0);
        assert!(erf(f32::INFINITY) <= 1.0 && erf(f32::INFINITY) > 0.999_999);
    }
}
