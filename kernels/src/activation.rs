//! Scalar activation functions and their derivatives, shared by the
//! elementwise kernels and autograd's ops.

use crate::Float;

/// σ(x) = 1 / (1 + e^{-x}), computed without overflow for large |x|.
#[inline]
pub fn sigmoid<T: Float>(x: T) -> T {
    if x >= T::ZERO {
        T::ONE / (T::ONE + (-x).exp())
    } else {
        let e = x.exp();
        e / (T::ONE + e)
    }
}

const SQRT_2_OVER_PI: f64 = 0.797_884_560_802_865_4;
const INV_SQRT_2: f64 = std::f64::consts::FRAC_1_SQRT_2;
const INV_SQRT_2PI: f64 = 0.398_942_280_401_432_7;
const GELU_C: f64 = 0.044_715;

/// GELU, erf form: gelu(x) = x·Φ(x), Φ(x) = ½(1 + erf(x/√2)).
#[inline]
pub fn gelu_erf<T: Float>(x: T) -> T {
    let half = T::from_f64(0.5);
    half * x * (T::ONE + (x * T::from_f64(INV_SQRT_2)).erf())
}

/// d/dx gelu(x) = Φ(x) + x·φ(x), φ(x) = e^{-x²/2}/√(2π).
#[inline]
pub fn gelu_erf_grad<T: Float>(x: T) -> T {
    let half = T::from_f64(0.5);
    let cdf = half * (T::ONE + (x * T::from_f64(INV_SQRT_2)).erf());
    let pdf = (-half * x * x).exp() * T::from_f64(INV_SQRT_2PI);
    cdf + x * pdf
}

/// GELU, tanh form: ½x(1 + tanh u), u = √(2/π)(x + 0.044715x³).
#[inline]
pub fn gelu_tanh<T: Float>(x: T) -> T {
    let u = T::from_f64(SQRT_2_OVER_PI) * (x + T::from_f64(GELU_C) * x * x * x);
    T::from_f64(0.5) * x * (T::ONE + u.tanh())
}

/// d/dx: ½(1 + tanh u) + ½x(1 − tanh²u)·√(2/π)(1 + 3·0.044715x²).
#[inline]
pub fn gelu_tanh_grad<T: Float>(x: T) -> T {
    let u = T::from_f64(SQRT_2_OVER_PI) * (x + T::from_f64(GELU_C) * x * x * x);
    let t = u.tanh();
    let du = T::from_f64(SQRT_2_OVER_PI) * (T::ONE + T::from_f64(3.0 * GELU_C) * x * x);
    let half = T::from_f64(0.5);
    half * (T::ONE + t) + half * x * (T::ONE - t * t) * du
}
