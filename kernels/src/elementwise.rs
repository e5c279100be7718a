//! Elementwise activations, forward and backward, on contiguous buffers.
//!
//! The reference path is scalar code on any `Float` (std's exp/tanh/erf). For f32
//! on a CPU with AVX2 and FMA, the same loops run inside a `#[target_feature]`
//! function over the branch-free approximations of `vecmath`, which the compiler
//! turns into 8-wide vector code.

use crate::activation as act;
use crate::isa::{self, Family, Isa};
use crate::threads::{par_ranges, SharedMut};
use crate::{as_f32, as_f32_mut, vecmath, Float};

/// Below this many elements a kernel stays on the calling thread.
pub const PAR_MIN: usize = 1 << 15;

/// How many parts a kernel over `rows` rows of `n` elements splits into: one per
/// thread, each at least [`PAR_MIN`] elements (so small inputs stay on the caller).
pub(crate) fn row_parts(rows: usize, n: usize) -> usize {
    crate::threads::num_threads().min(rows.saturating_mul(n) / PAR_MIN).clamp(1, rows.max(1))
}

/// Runs `f(part, rows)` for `parts` contiguous ranges of `0..rows` (as from
/// [`row_parts`]), part 0 on the calling thread. Parts that need to reduce (sum
/// into a shared output) write their partial result to slot `part` of a buffer and
/// the caller adds the slots in part order, so results do not depend on timing.
pub(crate) fn for_row_parts(rows: usize, parts: usize, f: impl Fn(usize, std::ops::Range<usize>) + Sync) {
    let chunk = rows.div_ceil(parts.max(1));
    crate::threads::run_parts(parts, |i| {
        let (start, end) = ((i * chunk).min(rows), ((i + 1) * chunk).min(rows));
        f(i, start..end)
    });
}

/// Every elementwise function of one tensor: y = f(x), dx = g · f'(x).
///
/// The activations have a vectorized f32 kernel; the rest (and every f64 call) run
/// the scalar reference, which the compiler vectorizes for the simple ones. The GPU
/// runs the same list (`kernels/cuda/elementwise.cu`, op codes from [`Unary::code`]).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Unary {
    Exp,
    Tanh,
    Sigmoid,
    Relu,
    /// GELU, erf form.
    Gelu,
    /// GELU, tanh approximation.
    GeluTanh,
    Neg,
    Log,
    Sqrt,
    /// x + c
    AddScalar(f64),
    /// c · x
    MulScalar(f64),
    /// xᶜ
    PowScalar(f64),
}

impl Unary {
    /// True for the activations with a vectorized f32 kernel.
    pub fn vectorized(self) -> bool {
        matches!(
            self,
            Unary::Exp | Unary::Tanh | Unary::Sigmoid | Unary::Relu | Unary::Gelu | Unary::GeluTanh
        )
    }

    /// (op code, scalar) as the GPU kernels take them; the codes are the `UNARY_*`
    /// constants of `kernels/cuda/elementwise.cu`.
    pub fn code(self) -> (u32, f64) {
        match self {
            Unary::Exp => (0, 0.0),
            Unary::Tanh => (1, 0.0),
            Unary::Sigmoid => (2, 0.0),
            Unary::Relu => (3, 0.0),
            Unary::Gelu => (4, 0.0),
            Unary::GeluTanh => (5, 0.0),
            Unary::Neg => (6, 0.0),
            Unary::Log => (7, 0.0),
            Unary::Sqrt => (8, 0.0),
            Unary::AddScalar(c) => (9, c),
            Unary::MulScalar(c) => (10, c),
            Unary::PowScalar(p) => (11, p),
        }
    }

    /// Every variant (scalars filled with the given value), for tests.
    pub fn all(c: f64) -> [Unary; 12] {
        use Unary::*;
        [Exp, Tanh, Sigmoid, Relu, Gelu, GeluTanh, Neg, Log, Sqrt, AddScalar(c), MulScalar(c), PowScalar(c)]
    }
}

/// y = f(x).
pub fn unary_forward<T: Float>(op: Unary, x: &[T], y: &mut [T]) {
    crate::threads::ensure_ftz(); // denormals flush to zero (see `threads`)
    assert_eq!(x.len(), y.len(), "unary_forward: x and y differ in length");
    if simd_path::<T>(Family::Elementwise, op.vectorized()) {
        if let (Some(x), Some(y)) = (as_f32(x), as_f32_mut(y)) {
            let y = SharedMut::new(y);
            par_ranges(x.len(), PAR_MIN, 8, |r| {
                // SAFETY: AVX2 and FMA are present (checked above); ranges are disjoint.
                unsafe { avx2::forward(op, &x[r.clone()], y.range(r)) }
            });
            return;
        }
    }
    unary_forward_reference(op, x, y);
}

/// dx = g · f'(x) (overwrites dx); `y` = f(x) is given for derivatives that use it.
pub fn unary_backward<T: Float>(op: Unary, x: &[T], y: &[T], g: &[T], dx: &mut [T]) {
    crate::threads::ensure_ftz(); // denormals flush to zero (see `threads`)
    let n = x.len();
    assert!(y.len() == n && g.len() == n && dx.len() == n, "unary_backward: buffers differ in length");
    if simd_path::<T>(Family::Elementwise, op.vectorized()) {
        if let (Some(x), Some(y), Some(g), Some(dx)) = (as_f32(x), as_f32(y), as_f32(g), as_f32_mut(dx)) {
            let dx = SharedMut::new(dx);
            par_ranges(n, PAR_MIN, 8, |r| {
                // SAFETY: AVX2 and FMA are present (checked above); ranges are disjoint.
                unsafe { avx2::backward(op, &x[r.clone()], &y[r.clone()], &g[r.clone()], dx.range(r)) }
            });
            return;
        }
    }
    unary_backward_reference(op, x, y, g, dx);
}

/// True when the f32 vector kernels run now: AVX2 and FMA are present and the active path
/// ([`isa::active`], which [`isa::force`] sets) is AVX2 or wider.
pub fn simd_available() -> bool {
    cfg!(target_arch = "x86_64") && isa::active() >= Isa::Avx2
}

/// Whether a call on `T` to `family` takes its AVX2 kernel (`T` is f32, the call is
/// `eligible` for the vector kernel, and [`simd_available`]); records the path of f32 calls
/// ([`isa::note`]).
pub(crate) fn simd_path<T: Float>(family: Family, eligible: bool) -> bool {
    let is_f32 = as_f32::<T>(&[]).is_some();
    let simd = is_f32 && eligible && simd_available();
    if is_f32 {
        isa::note(family, if simd { Isa::Avx2 } else { Isa::Portable });
    }
    simd
}

/// The scalar reference every vector kernel is tested against.
pub fn unary_forward_reference<T: Float>(op: Unary, x: &[T], y: &mut [T]) {
    let it = y.iter_mut().zip(x);
    match op {
        Unary::Exp => it.for_each(|(y, &x)| *y = x.exp()),
        Unary::Tanh => it.for_each(|(y, &x)| *y = x.tanh()),
        Unary::Sigmoid => it.for_each(|(y, &x)| *y = act::sigmoid(x)),
        Unary::Relu => it.for_each(|(y, &x)| *y = x.max(T::ZERO)),
        Unary::Gelu => it.for_each(|(y, &x)| *y = act::gelu_erf(x)),
        Unary::GeluTanh => it.for_each(|(y, &x)| *y = act::gelu_tanh(x)),
        Unary::Neg => it.for_each(|(y, &x)| *y = -x),
        Unary::Log => it.for_each(|(y, &x)| *y = x.ln()),
        Unary::Sqrt => it.for_each(|(y, &x)| *y = x.sqrt()),
        Unary::AddScalar(c) => it.for_each(|(y, &x)| *y = x + T::from_f64(c)),
        Unary::MulScalar(c) => it.for_each(|(y, &x)| *y = T::from_f64(c) * x),
        Unary::PowScalar(p) => it.for_each(|(y, &x)| *y = x.powf(T::from_f64(p))),
    }
}

/// Scalar reference of [`unary_backward`].
pub fn unary_backward_reference<T: Float>(op: Unary, x: &[T], y: &[T], g: &[T], dx: &mut [T]) {
    let two = T::from_f64(2.0);
    let d = |x: T, y: T| match op {
        Unary::Exp => y,                    // d eˣ = eˣ
        Unary::Tanh => T::ONE - y * y,      // d tanh = 1 − tanh²
        Unary::Sigmoid => y * (T::ONE - y), // d σ = σ(1 − σ)
        Unary::Relu => {
            if x > T::ZERO {
                T::ONE
            } else {
                T::ZERO
            }
        }
        Unary::Gelu => act::gelu_erf_grad(x), // Φ(x) + xφ(x)
        Unary::GeluTanh => act::gelu_tanh_grad(x),
        Unary::Neg => -T::ONE,
        Unary::Log => T::ONE / x,          // d ln x = 1/x
        Unary::Sqrt => T::ONE / (two * y), // d √x = 1/(2√x)
        Unary::AddScalar(_) => T::ONE,
        Unary::MulScalar(c) => T::from_f64(c),
        Unary::PowScalar(p) => T::from_f64(p) * x.powf(T::from_f64(p - 1.0)), // d xᵖ = p·xᵖ⁻¹
    };
    for i in 0..x.len() {
        dx[i] = g[i] * d(x[i], y[i]);
    }
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    use super::{vecmath as vm, Unary};

    const SQRT_2_OVER_PI: f32 = 0.797_884_6;
    const INV_SQRT_2: f32 = std::f32::consts::FRAC_1_SQRT_2;
    const INV_SQRT_2PI: f32 = 0.398_942_3;

    #[inline(always)]
    fn gelu(x: f32) -> f32 {
        0.5 * x * (1.0 + vm::erf(x * INV_SQRT_2))
    }
    #[inline(always)]
    fn gelu_grad(x: f32) -> f32 {
        0.5 * (1.0 + vm::erf(x * INV_SQRT_2)) + x * vm::exp(-0.5 * x * x) * INV_SQRT_2PI
    }
    #[inline(always)]
    fn gelu_tanh(x: f32) -> f32 {
        0.5 * x * (1.0 + vm::tanh(SQRT_2_OVER_PI * (x + 0.044_715 * x * x * x)))
    }
    #[inline(always)]
    fn gelu_tanh_grad(x: f32) -> f32 {
        let u = SQRT_2_OVER_PI * (x + 0.044_715 * x * x * x);
        let du = SQRT_2_OVER_PI * (1.0 + 3.0 * 0.044_715 * x * x);
        // 1 − tanh²u as 4/(eᵘ + e⁻ᵘ)², which does not cancel where tanh u ≈ ±1
        let cosh2 = vm::exp(u) + vm::exp(-u);
        let sech2 = 4.0 / (cosh2 * cosh2);
        0.5 * (1.0 + vm::tanh(u)) + 0.5 * x * sech2 * du
    }

    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn forward(op: Unary, x: &[f32], y: &mut [f32]) {
        let it = y.iter_mut().zip(x);
        match op {
            Unary::Exp => it.for_each(|(y, &x)| *y = vm::exp(x)),
            Unary::Tanh => it.for_each(|(y, &x)| *y = vm::tanh(x)),
            Unary::Sigmoid => it.for_each(|(y, &x)| *y = vm::sigmoid(x)),
            Unary::Relu => it.for_each(|(y, &x)| *y = x.max(0.0)),
            Unary::Gelu => it.for_each(|(y, &x)| *y = gelu(x)),
            Unary::GeluTanh => it.for_each(|(y, &x)| *y = gelu_tanh(x)),
            _ => unreachable!("{op:?} has no vector kernel (Unary::vectorized)"),
        }
    }

    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn backward(op: Unary, x: &[f32], y: &[f32], g: &[f32], dx: &mut [f32]) {
        let n = dx.len();
        let (x, y, g) = (&x[..n], &y[..n], &g[..n]);
        match op {
            Unary::Exp => (0..n).for_each(|i| dx[i] = g[i] * y[i]),
            Unary::Tanh => (0..n).for_each(|i| dx[i] = g[i] * (1.0 - y[i] * y[i])),
            Unary::Sigmoid => (0..n).for_each(|i| dx[i] = g[i] * y[i] * (1.0 - y[i])),
            Unary::Relu => (0..n).for_each(|i| dx[i] = if x[i] > 0.0 { g[i] } else { 0.0 }),
            Unary::Gelu => (0..n).for_each(|i| dx[i] = g[i] * gelu_grad(x[i])),
            Unary::GeluTanh => (0..n).for_each(|i| dx[i] = g[i] * gelu_tanh_grad(x[i])),
            _ => unreachable!("{op:?} has no vector kernel (Unary::vectorized)"),
        }
    }
}

#[cfg(not(target_arch = "x86_64"))]
mod avx2 {
    use super::Unary;
    pub(super) unsafe fn forward(_: Unary, _: &[f32], _: &mut [f32]) {
        unreachable!("simd_available() is false off x86_64")
    }
    pub(super) unsafe fn backward(_: Unary, _: &[f32], _: &[f32], _: &[f32], _: &mut [f32]) {
        unreachable!("simd_available() is false off x86_64")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{RngExt, SeedableRng};

    const OPS: [Unary; 6] =
        [Unary::Exp, Unary::Tanh, Unary::Sigmoid, Unary::Relu, Unary::Gelu, Unary::GeluTanh];

    /// The fast f32 kernels agree with the f64 reference, on lengths that are not
    /// multiples of the vector width.
    #[test]
    fn fast_matches_reference() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(1);
        // 100_003: above PAR_MIN, so the threaded split is checked too
        for n in [1usize, 7, 8, 15, 17, 33, 255, 257, 1000, 100_003] {
            let x: Vec<f32> = (0..n).map(|_| rng.random_range(-9.0..9.0)).collect();
            let g: Vec<f32> = (0..n).map(|_| rng.random_range(-1.0..1.0)).collect();
            let x64: Vec<f64> = x.iter().map(|&v| v as f64).collect();
            let g64: Vec<f64> = g.iter().map(|&v| v as f64).collect();
            for op in OPS {
                let (mut y, mut y64) = (vec![0f32; n], vec![0f64; n]);
                unary_forward(op, &x, &mut y);
                unary_forward_reference(op, &x64, &mut y64);
                let (mut dx, mut dx64) = (vec![0f32; n], vec![0f64; n]);
                unary_backward(op, &x, &y, &g, &mut dx);
                unary_backward_reference(op, &x64, &y64, &g64, &mut dx64);
                for i in 0..n {
                    let tol = |r: f64| 2e-6 * r.abs() + 1e-6;
                    assert!((y[i] as f64 - y64[i]).abs() <= tol(y64[i]), "{op:?} forward at x={}", x[i]);
                    assert!((dx[i] as f64 - dx64[i]).abs() <= tol(dx64[i]), "{op:?} backward at x={}", x[i]);
                }
            }
        }
    }
}
