//! Gradient clipping, as `torch.nn.utils.clip_grad_norm_` / `clip_grad_value_`.
//! Tensors without a gradient are skipped.

use tapegrad_autograd::{Float, Tensor};

/// Rescales the gradients so that their global L2 norm is at most `max_norm`:
///
///   total = sqrt(Σ_p ‖g_p‖²)          (over all gradients together)
///   coef  = max_norm / (total + 1e-6)
///   g_p ← coef · g_p                   only if coef < 1
///
/// Returns `total`, the norm before clipping (accumulated in f64).
pub fn clip_grad_norm<'a, T: Float>(params: impl IntoIterator<Item = &'a Tensor<T>>, max_norm: f64) -> f64 {
    let params: Vec<&Tensor<T>> = params.into_iter().collect();
    let mut sum_sq = 0.0f64;
    for p in &params {
        if let Some(g) = p.grad_mut() {
            sum_sq += g.iter().map(|&v| v.to_f64() * v.to_f64()).sum::<f64>(); // Σ ‖g_p‖²
        }
    }
    let total = sum_sq.sqrt(); // total = sqrt(Σ ‖g_p‖²)
    let coef = max_norm / (total + 1e-6); // coef = max_norm / (total + 1e-6)
    if coef < 1.0 {
        let c = T::from_f64(coef);
        for p in &params {
            if let Some(mut g) = p.grad_mut() {
                g.iter_mut().for_each(|v| *v *= c); // g ← coef·g
            }
        }
    }
    total
}

/// Clamps every gradient element into [−clip, clip].
pub fn clip_grad_value<'a, T: Float>(params: impl IntoIterator<Item = &'a Tensor<T>>, clip: f64) {
    let (lo, hi) = (T::from_f64(-clip), T::from_f64(clip));
    for p in params {
        if let Some(mut g) = p.grad_mut() {
            for v in g.iter_mut() {
                *v = if *v < lo {
                    lo
                } else if *v > hi {
                    hi
                } else {
                    *v
                }; // g ← clamp(g, −clip, clip)
            }
        }
    }
}
