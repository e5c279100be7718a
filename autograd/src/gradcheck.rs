//! Gradient checking by central finite differences, in f64.
//!
//! For a function f of tensors and a fixed random weighting w of its output, the
//! scalar L = Σ w ⊙ f(x) is differentiated two ways: by the tape (backward) and by
//!   ∂L/∂xᵢ ≈ (L(x + εeᵢ) − L(x − εeᵢ)) / 2ε
//! for every element of every input that requires grad. The random w makes every
//! output element matter with a different weight, so a backward that mixes up
//! elements is caught.

use crate::{no_grad, Device, Storage, Tensor};
use rand::{RngExt, SeedableRng};
use std::fmt;

/// Step and tolerances: an element passes when |analytic − numeric| ≤ atol + rtol·|numeric|.
#[derive(Clone, Copy, Debug)]
pub struct GradcheckOptions {
    pub eps: f64,
    pub atol: f64,
    pub rtol: f64,
    /// Seed of the output weighting w.
    pub seed: u64,
    /// Where the inputs are put and `f` runs (the finite differences are read back).
    pub device: Device,
}

impl Default for GradcheckOptions {
    fn default() -> Self {
        GradcheckOptions { eps: 1e-6, atol: 1e-5, rtol: 1e-4, seed: 0, device: Device::Cpu }
    }
}

/// The first element whose analytic gradient disagrees with the numeric one.
#[derive(Clone, Debug)]
pub struct GradcheckError {
    pub input: usize,
    pub element: usize,
    pub analytic: f64,
    pub numeric: f64,
}

impl fmt::Display for GradcheckError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "gradient mismatch at input {} element {}: backward gives {:.8e}, finite differences {:.8e}",
            self.input, self.element, self.analytic, self.numeric
        )
    }
}

impl std::error::Error for GradcheckError {}

/// Checks the backward of `f` at `inputs`. Inputs that require grad are checked;
/// the others are held constant. `f` must be deterministic (seed any dropout).
///
/// The inputs are copied to `opts.device` and `f` runs there (constants that `f`
/// captures must be moved with `.to(t[0].device())`); gradients and values are read
/// back to the host to compare.
pub fn gradcheck(
    f: impl Fn(&[Tensor<f64>]) -> Tensor<f64>,
    inputs: &[Tensor<f64>],
    opts: GradcheckOptions,
) -> Result<(), GradcheckError> {
    // Fresh leaves, so the caller's tensors keep their gradients untouched.
    let leaves: Vec<Tensor<f64>> = inputs
        .iter()
        .map(|t| {
            let st = Storage::from_host(t.to_vec(), opts.device);
            Tensor::from_storage(st, t.shape()).requires_grad(t.tracks_grad())
        })
        .collect();
    let out = f(&leaves);
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(opts.seed);
    let w_host: Vec<f64> = (0..out.numel()).map(|_| rng.random_range(-1.0..1.0)).collect();
    let w = Tensor::from_storage(Storage::from_host(w_host.clone(), opts.device), out.shape());
    let weighted = |out: &Tensor<f64>| -> f64 { out.to_vec().iter().zip(&w_host).map(|(a, b)| a * b).sum() };
    out.mul(&w).sum().backward();

    for (i, leaf) in leaves.iter().enumerate() {
        if !leaf.tracks_grad() {
            continue;
        }
        let analytic = leaf.grad().map(|g| g.to_vec()).unwrap_or_else(|| vec![0.0; leaf.numel()]);
        for (e, &a) in analytic.iter().enumerate() {
            let set = |v: f64| match opts.device {
                Device::Cpu => leaf.data_mut()[e] = v,
                _ => {
                    let mut host = leaf.to_vec();
                    host[e] = v;
                    leaf.write_values(host);
                }
            };
            let at = |delta: f64| -> f64 {
                let orig = if opts.device == Device::Cpu { leaf.data()[e] } else { leaf.to_vec()[e] };
                set(orig + delta);
                let v = no_grad(|| weighted(&f(&leaves)));
                set(orig);
                v
            };
            let numeric = (at(opts.eps) - at(-opts.eps)) / (2.0 * opts.eps);
            let within = (a - numeric).abs() <= opts.atol + opts.rtol * numeric.abs();
            if !within {
                return Err(GradcheckError { input: i, element: e, analytic: a, numeric });
            }
        }
    }
    Ok(())
}
