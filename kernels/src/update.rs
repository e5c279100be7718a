//! Fused in-place optimizer updates: one pass over parameter, gradient and state.
//!
//! The formulas are PyTorch's (`torch.optim.SGD`, `Adam`, `AdamW`, single-tensor
//! path); the per-step scalars (bias corrections, step size) are computed once by
//! the caller-facing functions, in f64, and the loops only do the elementwise part.

use crate::elementwise::simd_path;
use crate::isa::Family;
use crate::{as_f32, as_f32_mut, Float};

/// Adam's hyperparameters for one step.
#[derive(Clone, Copy, Debug)]
pub struct AdamStep {
    pub lr: f64,
    pub beta1: f64,
    pub beta2: f64,
    pub eps: f64,
    pub weight_decay: f64,
    /// AdamW (decoupled decay θ ← θ(1 − η·λ)) instead of Adam's L2 term g + λθ.
    pub decoupled: bool,
    /// The step number t, starting at 1.
    pub step: u64,
}

/// One Adam/AdamW step on θ with gradient g and moments m, v (PyTorch's order of
/// operations, so results match `torch.optim.Adam`/`AdamW` to rounding):
///   θ ← θ(1 − ηλ)                     (AdamW's decoupled decay)
///   g ← ∇L + λθ                        (Adam's coupled L2 term)
///   m ← β₁m + (1 − β₁)g                (first moment)
///   v ← β₂v + (1 − β₂)g²               (second moment)
///   θ ← θ − η/(1 − β₁ᵗ) · m / (√v/√(1 − β₂ᵗ) + ε)
pub fn adam_update<T: Float>(theta: &mut [T], g: &[T], m: &mut [T], v: &mut [T], s: AdamStep) {
    crate::threads::ensure_ftz(); // denormals flush to zero (see `threads`)
    let n = theta.len();
    assert!(g.len() == n && m.len() == n && v.len() == n, "adam_update: buffers differ in length");
    let c = AdamCoefs::new(s);
    if simd_path::<T>(Family::Update, true) {
        if let (Some(t), Some(g), Some(m), Some(v)) =
            (as_f32_mut(theta), as_f32(g), as_f32_mut(m), as_f32_mut(v))
        {
            // SAFETY: AVX2 and FMA are present (checked above).
            unsafe { fast::adam(t, g, m, v, c.to_f32()) };
            return;
        }
    }
    adam_reference(theta, g, m, v, c);
}

/// The step's scalars, computed once.
#[derive(Clone, Copy, Debug)]
pub struct AdamCoefs<T> {
    pub(crate) beta1: T,
    pub(crate) beta2: T,
    pub(crate) eps: T,
    /// λ of Adam's L2 term (0 for AdamW)
    pub(crate) l2: T,
    /// 1 − ηλ of AdamW's decay (1 for Adam)
    pub(crate) decay: T,
    /// η / (1 − β₁ᵗ)
    pub(crate) step_size: T,
    /// √(1 − β₂ᵗ)
    pub(crate) bc2_sqrt: T,
}

impl AdamCoefs<f64> {
    /// The step's scalars for [`adam_reference`].
    pub fn new(s: AdamStep) -> Self {
        let t = s.step as i32;
        let (bc1, bc2) = (1.0 - s.beta1.powi(t), 1.0 - s.beta2.powi(t));
        AdamCoefs {
            beta1: s.beta1,
            beta2: s.beta2,
            eps: s.eps,
            l2: if s.decoupled { 0.0 } else { s.weight_decay },
            decay: if s.decoupled { 1.0 - s.lr * s.weight_decay } else { 1.0 },
            step_size: s.lr / bc1,
            bc2_sqrt: bc2.sqrt(),
        }
    }
    pub(crate) fn to<T: Float>(self) -> AdamCoefs<T> {
        let f = T::from_f64;
        AdamCoefs {
            beta1: f(self.beta1),
            beta2: f(self.beta2),
            eps: f(self.eps),
            l2: f(self.l2),
            decay: f(self.decay),
            step_size: f(self.step_size),
            bc2_sqrt: f(self.bc2_sqrt),
        }
    }
    fn to_f32(self) -> AdamCoefs<f32> {
        self.to()
    }
}

/// The scalar reference of [`adam_update`].
pub fn adam_reference<T: Float>(theta: &mut [T], g: &[T], m: &mut [T], v: &mut [T], c: AdamCoefs<f64>) {
    let c = c.to::<T>();
    let (one_minus_b1, one_minus_b2) = (T::ONE - c.beta1, T::ONE - c.beta2);
    for i in 0..theta.len() {
        theta[i] *= c.decay; // θ ← θ·(1 − η·λ)   (AdamW; 1 for Adam)
        let gi = g[i] + c.l2 * theta[i]; // g = ∇L + λ·θ   (Adam's L2; λ = 0 for AdamW)
        m[i] = c.beta1 * m[i] + one_minus_b1 * gi; // m = β1·m + (1−β1)·g   (first moment)
        v[i] = c.beta2 * v[i] + one_minus_b2 * gi * gi; // v = β2·v + (1−β2)·g²   (second moment)
        let denom = v[i].sqrt() / c.bc2_sqrt + c.eps; // √v/√(1−β2^t) + ε
        theta[i] -= c.step_size * (m[i] / denom); // θ ← θ − η/(1−β1^t) · m/denom
    }
}

/// SGD's hyperparameters for one step (PyTorch's `torch.optim.SGD`).
#[derive(Clone, Copy, Debug)]
pub struct SgdStep {
    pub lr: f64,
    pub momentum: f64,
    pub dampening: f64,
    pub weight_decay: f64,
    pub nesterov: bool,
    /// The first step with momentum: the velocity starts as the gradient.
    pub first_step: bool,
}

/// One SGD step (PyTorch's definition), with velocity buffer `buf` when momentum > 0:
///   g ← g + λθ;  b ← μb + (1 − dampening)g (b ← g on the first step);
///   d = g + μb (Nesterov) or b;  θ ← θ − η·d.
pub fn sgd_update<T: Float>(theta: &mut [T], g: &[T], buf: Option<&mut [T]>, s: SgdStep) {
    crate::threads::ensure_ftz(); // denormals flush to zero (see `threads`)
    let SgdStep { lr, momentum, dampening, weight_decay, nesterov, first_step } = s;
    let (lr, mu, damp, wd) =
        (T::from_f64(lr), T::from_f64(momentum), T::from_f64(dampening), T::from_f64(weight_decay));
    match buf {
        None => {
            for i in 0..theta.len() {
                let gi = g[i] + wd * theta[i]; // g = ∇L(θ) + λ·θ   (L2 weight decay)
                theta[i] -= lr * gi; // θ_{t+1} = θ_t − η·g
            }
        }
        Some(b) => {
            for i in 0..theta.len() {
                let gi = g[i] + wd * theta[i]; // g = ∇L(θ) + λ·θ   (L2 weight decay)
                                               // b_1 = g;  b_t = μ·b_{t−1} + (1−τ)·g
                b[i] = if first_step { gi } else { mu * b[i] + (T::ONE - damp) * gi };
                let d = if nesterov { gi + mu * b[i] } else { b[i] }; // Nesterov look-ahead, or d = b_t
                theta[i] -= lr * d; // θ_{t+1} = θ_t − η·d
            }
        }
    }
}

/// The global L2 norm of several buffers, as `clip_grad_norm_` measures it:
/// √(Σ_buffers Σᵢ gᵢ²), accumulated in f64.
pub fn grad_norm<T: Float>(grads: &[&[T]]) -> f64 {
    let sum_sq: f64 = grads.iter().map(|g| g.iter().map(|&v| v.to_f64() * v.to_f64()).sum::<f64>()).sum();
    sum_sq.sqrt()
}

/// `clip_grad_norm_`'s rescale of one buffer, given the global norm `total`:
///   coef = max_norm / (total + 1e−6);   g ← coef·g   only if coef < 1.
pub fn clip_scale<T: Float>(g: &mut [T], total: f64, max_norm: f64) {
    let coef = max_norm / (total + 1e-6);
    if coef < 1.0 {
        let c = T::from_f64(coef);
        g.iter_mut().for_each(|v| *v *= c);
    }
}

/// `clip_grad_value_`: every element clamped into [−clip, clip] (a NaN stays NaN).
pub fn clip_by_value<T: Float>(g: &mut [T], clip: f64) {
    let (lo, hi) = (T::from_f64(-clip), T::from_f64(clip));
    for v in g.iter_mut() {
        *v = if *v < lo {
            lo
        } else if *v > hi {
            hi
        } else {
            *v
        };
    }
}

/// y ← y + x: a gradient accumulated into the one already held.            x, y (n)
pub fn add_assign<T: Float>(y: &mut [T], x: &[T]) {
    assert_eq!(x.len(), y.len(), "add_assign: buffers differ in length");
    y.iter_mut().zip(x).for_each(|(a, &b)| *a += b);
}

#[cfg(target_arch = "x86_64")]
mod fast {
    use super::AdamCoefs;

    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn adam(theta: &mut [f32], g: &[f32], m: &mut [f32], v: &mut [f32], c: AdamCoefs<f32>) {
        let n = theta.len();
        let (g, m, v) = (&g[..n], &mut m[..n], &mut v[..n]);
        let (one_minus_b1, one_minus_b2) = (1.0 - c.beta1, 1.0 - c.beta2);
        // the same operations as `adam_reference`, vectorized (no FMA contraction,
        // so the results are bit-identical)
        for i in 0..n {
            theta[i] *= c.decay;
            let gi = g[i] + c.l2 * theta[i];
            m[i] = c.beta1 * m[i] + one_minus_b1 * gi;
            v[i] = c.beta2 * v[i] + one_minus_b2 * gi * gi;
            let denom = v[i].sqrt() / c.bc2_sqrt + c.eps;
            theta[i] -= c.step_size * (m[i] / denom);
        }
    }
}

#[cfg(not(target_arch = "x86_64"))]
mod fast {
    use super::AdamCoefs;
    pub(super) unsafe fn adam(_: &mut [f32], _: &[f32], _: &mut [f32], _: &mut [f32], _: AdamCoefs<f32>) {
        unreachable!("simd_available() is false off x86_64")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fast_adam_is_bit_identical_to_reference() {
        for decoupled in [false, true] {
            let n = 37;
            let mk = |k: f32| (0..n).map(|i| (i as f32 * 0.37 + k).sin()).collect::<Vec<f32>>();
            let (mut t1, g, mut m1, mut v1) =
                (mk(0.1), mk(0.7), mk(0.3), mk(0.9).iter().map(|x| x * x).collect::<Vec<f32>>());
            let (mut t2, mut m2, mut v2) = (t1.clone(), m1.clone(), v1.clone());
            let s = AdamStep {
                lr: 1e-2,
                beta1: 0.9,
                beta2: 0.999,
                eps: 1e-8,
                weight_decay: 0.1,
                decoupled,
                step: 3,
            };
            adam_update(&mut t1, &g, &mut m1, &mut v1, s);
            adam_reference(&mut t2, &g, &mut m2, &mut v2, AdamCoefs::new(s));
            for i in 0..n {
                assert_eq!((t1[i], m1[i], v1[i]), (t2[i], m2[i], v2[i]), "decoupled={decoupled} i={i}");
            }
        }
    }

    #[test]
    fn clip_scales_only_above_the_max() {
        let (a, b) = ([3.0f64], [0.0, 4.0]);
        let total = grad_norm(&[&a, &b]);
        assert_eq!(total, 5.0);
        let mut g = [3.0, 4.0];
        clip_scale(&mut g, total, 10.0);
        assert_eq!(g, [3.0, 4.0]);
        clip_scale(&mut g, total, 1.0);
        assert!((g[0] - 0.6).abs() < 1e-6 && (g[1] - 0.8).abs() < 1e-6);
    }

    #[test]
    fn first_adam_step_moves_by_lr() {
        // at t = 1, m̂ = g and v̂ = g², so the step is η·g/(|g| + ε) ≈ η·sign(g)
        let (mut t, mut m, mut v) = (vec![1.0f64], vec![0.0], vec![0.0]);
        let s = AdamStep {
            lr: 0.1,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay: 0.0,
            decoupled: false,
            step: 1,
        };
        adam_update(&mut t, &[-3.0], &mut m, &mut v, s);
        assert!((t[0] - 1.1).abs() < 1e-8);
    }
}
