//! Branch-free f32 approximations of exp, tanh and erf, written as plain scalar
//! code that the compiler vectorizes inside `#[target_feature]` loops (see
//! `elementwise.rs`). Each is tested against the standard library below.
//!
//! exp:  Cephes' expf: e^x = 2^n · e^r, n = round(x·log₂e), |r| ≤ ln2/2, e^r by a
//!       degree-6 polynomial. Relative error ≈ 2e-7.
//! tanh: the rational minimax approximation used by Eigen, p(x)/q(x) on
//!       [−7.9, 7.9] (tanh is ±1 in f32 beyond). Relative error ≈ 3e-7 with no
//!       cancellation near 0.
//! erf:  erf(x) = 1 − (a₁t + … + a₅t⁵)e^{−x²}, t = 1/(1 + p|x|) (Abramowitz &
//!       Stegun 7.1.26) for |x| ≥ 0.5, its Taylor series below; odd-extended.
//!       Error ≤ 3e-7 absolute or 1e-6 relative.

/// e^x for f32, clamped to the finite range.
#[inline(always)]
pub fn exp(x: f32) -> f32 {
    const LOG2E: f32 = std::f32::consts::LOG2_E;
    const LN2_HI: f32 = 0.693_359_4;
    const LN2_LO: f32 = -2.121_944_4e-4;
    // 1.5·2²³: adding it rounds to an integer held in the low mantissa bits
    const MAGIC: f32 = 12_582_912.0;
    let x = x.clamp(-87.336_55, 88.376_26);
    let t = x.mul_add(LOG2E, MAGIC);
    let n = t - MAGIC; // round(x·log₂e), as a float
    let r = x - n * LN2_HI - n * LN2_LO;
    // e^r ≈ 1 + r + r²·P(r)
    let mut p = 1.987_569_1e-4f32;
    p = p.mul_add(r, 1.398_199_9e-3);
    p = p.mul_add(r, 8.333_452e-3);
    p = p.mul_add(r, 4.166_579_6e-2);
    p = p.mul_add(r, 1.666_666_5e-1);
    p = p.mul_add(r, 5e-1);
    let er = (p * r).mul_add(r, r) + 1.0;
    // 2ⁿ through the exponent bits: n as an integer is t's bits minus MAGIC's
    // (n ∈ [−126, 127] after the clamp); integer ops only, so this vectorizes.
    let n_int = t.to_bits().wrapping_sub(MAGIC.to_bits());
    let two_n = f32::from_bits(n_int.wrapping_add(127) << 23);
    er * two_n
}

/// tanh(x) for f32.
#[inline(always)]
pub fn tanh(x: f32) -> f32 {
    let x = x.clamp(-7.905_311, 7.905_311);
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

/// erf(x) for f32.
#[inline(always)]
pub fn erf(x: f32) -> f32 {
    let a = x.abs();
    let t = 1.0 / 0.327_591_1f32.mul_add(a, 1.0);
    let mut p = 1.061_405_4f32;
    p = p.mul_add(t, -1.453_152_1);
    p = p.mul_add(t, 1.421_413_8);
    p = p.mul_add(t, -0.284_496_72);
    p = p.mul_add(t, 0.254_829_6);
    let tail = 1.0 - p * t * exp(-a * a);
    // Near 0 the form above cancels; use the Taylor series 2/√π Σ (−1)ⁿx²ⁿ⁺¹/(n!(2n+1)).
    let x2 = a * a;
    let mut s = 1.0f32 / 9360.0;
    s = s.mul_add(x2, -1.0 / 1320.0);
    s = s.mul_add(x2, 1.0 / 216.0);
    s = s.mul_add(x2, -1.0 / 42.0);
    s = s.mul_add(x2, 1.0 / 10.0);
    s = s.mul_add(x2, -1.0 / 3.0);
    s = s.mul_add(x2, 1.0);
    let near0 = std::f32::consts::FRAC_2_SQRT_PI * a * s;
    let y = if a < 0.5 { near0 } else { tail };
    y.copysign(x)
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

    #[test]
    fn tanh_is_accurate() {
        sweep(tanh, f64::tanh, -10.0, 10.0, 6e-7, 1e-30);
        sweep(tanh, f64::tanh, -1e-3, 1e-3, 6e-7, 1e-30);
    }

    #[test]
    fn sigmoid_is_accurate() {
        sweep(sigmoid, |x| 1.0 / (1.0 + (-x).exp()), -80.0, 80.0, 6e-7, 1e-30);
    }

    #[test]
    fn erf_is_accurate() {
        sweep(erf, libm::erf, -6.0, 6.0, 1e-6, 3e-7);
    }
}
