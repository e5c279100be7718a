//! Gradient clipping, as `torch.nn.utils.clip_grad_norm_` / `clip_grad_value_`.
//! Tensors without a gradient are skipped. Both run on the gradients' device: the
//! norm is a one-element tensor there, so clipping never waits for the device.

use tapegrad_autograd::backend::Backend;
use tapegrad_autograd::{Float, Storage, Tensor};

/// Rescales the gradients so that their global L2 norm is at most `max_norm`:
///
///   total = sqrt(Σ_p ‖g_p‖²)          (over all gradients together)
///   coef  = max_norm / (total + 1e-6)
///   g_p ← coef · g_p                   only if coef < 1
///
/// Returns `total`, the norm before clipping (accumulated in f64), as a one-element
/// tensor on the gradients' device: reading it (`item()`) is the only wait. With no
/// gradient at all it is 0, on the CPU.
pub fn clip_grad_norm<'a, T: Float>(
    params: impl IntoIterator<Item = &'a Tensor<T>>,
    max_norm: f64,
) -> Tensor<f64> {
    let params: Vec<&Tensor<T>> = params.into_iter().filter(|p| p.has_grad()).collect();
    let device = params.first().map(|p| p.device()).unwrap_or_default();
    if params.is_empty() {
        return Tensor::from_storage(Storage::from_host(vec![0.0f64], device), &[]);
    }
    let total = {
        let grads: Vec<_> = params.iter().map(|p| p.grad_storage().expect("filtered on has_grad")).collect();
        let refs: Vec<&Storage<T>> = grads.iter().map(|g| &**g).collect();
        Storage::grad_norm(&refs) // total = sqrt(Σ_p ‖g_p‖²), in f64
    };
    for p in &params {
        let mut g = p.grad_storage_mut().expect("filtered on has_grad");
        g.clip_scale(&total, max_norm); // g ← coef·g when coef = max_norm/(total + 1e-6) < 1
    }
    Tensor::from_storage(total, &[])
}

/// Clamps every gradient element into [−clip, clip].
pub fn clip_grad_value<'a, T: Float>(params: impl IntoIterator<Item = &'a Tensor<T>>, clip: f64) {
    for p in params {
        if let Some(mut g) = p.grad_storage_mut() {
            g.clip_by_value(clip); // g ← clamp(g, −clip, clip)
        }
    }
}
