//! Gradient checking by central finite differences, in f64.
//!
//! For a function f of tensors and a fixed random weighting w of its output, the
//! scalar L = Σ w ⊙ f(x) is differentiated two ways: by the tape (backward) and by
//!   ∂L/∂xᵢ ≈ (L(x + εeᵢ) − L(x − εeᵢ)) / 2ε
//! for every element of every input that requires grad. The random w makes every
//! output element matter with a different weight, so a backward that mixes up
//! elements is caught.

use crate::{no_grad, Tensor};
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
}

impl Default for GradcheckOptions {
    fn default() -> Self {
        GradcheckOptions { eps: 1e-6, atol: 1e-5, rtol: 1e-4, seed: 0 }
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
pub fn gradcheck(
    f: impl Fn(&[Tensor<f64>]) -> Tensor<f64>,
    inputs: &[Tensor<f64>],
    opts: GradcheckOptions,
) -> Result<(), GradcheckError> {
    // Fresh leaves, so the caller's tensors keep their gradients untouched.
    let leaves: Vec<Tensor<f64>> = inputs
        .iter()
        .map(|t| Tensor::from_vec(t.to_vec(), t.shape()).requires_grad(t.tracks_grad()))
        .collect();
    let out = f(&leaves);
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(opts.seed);
    let w = Tensor::from_vec((0..out.numel()).map(|_| rng.random_range(-1.0..1.0)).collect(), out.shape());
    let weighted =
        |out: &Tensor<f64>| -> f64 { out.data().iter().zip(w.data().iter()).map(|(a, b)| a * b).sum() };
    out.mul(&w).sum().backward();

    for (i, leaf) in leaves.iter().enumerate() {
        if !leaf.tracks_grad() {
            continue;
        }
        let analytic = leaf.grad().map(|g| g.to_vec()).unwrap_or_else(|| vec![0.0; leaf.numel()]);
        for (e, &a) in analytic.iter().enumerate() {
            let at = |delta: f64| -> f64 {
                let orig = leaf.data()[e];
                leaf.data_mut()[e] = orig + delta;
                let v = no_grad(|| weighted(&f(&leaves)));
                leaf.data_mut()[e] = orig;
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
