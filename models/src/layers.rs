//! The basic layers: Linear, Embedding, LayerNorm, Dropout.

use crate::module::{join, Module};
use rand::{Rng, RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::cell::RefCell;
use tapegrad_autograd::{Float, Tensor};

/// Uniform(−bound, bound) values from `rng` (PyTorch's default init for Linear/LSTM
/// uses bound = 1/√fan_in).
pub fn uniform<T: Float>(n: usize, bound: f64, rng: &mut impl Rng) -> Vec<T> {
    (0..n).map(|_| T::from_f64(rng.random_range(-bound..bound))).collect()
}

/// y = x·Wᵀ + b, W `[out, in]` (PyTorch's layout), b `[out]`.
pub struct Linear<T: Float = f32> {
    pub weight: Tensor<T>,
    pub bias: Option<Tensor<T>>,
}

impl<T: Float> Linear<T> {
    /// PyTorch's default init: W, b ~ U(−1/√in, 1/√in).
    pub fn new(in_features: usize, out_features: usize, bias: bool, rng: &mut impl Rng) -> Self {
        let bound = 1.0 / (in_features as f64).sqrt();
        let weight =
            Tensor::param(uniform(out_features * in_features, bound, rng), &[out_features, in_features]);
        let bias = bias.then(|| Tensor::param(uniform(out_features, bound, rng), &[out_features]));
        Linear { weight, bias }
    }

    pub fn from_weights(weight: Tensor<T>, bias: Option<Tensor<T>>) -> Self {
        Linear { weight, bias }
    }

    /// x `[..., in]` → `[..., out]`.
    pub fn forward(&self, x: &Tensor<T>) -> Tensor<T> {
        x.linear(&self.weight, self.bias.as_ref())
    }
}

impl<T: Float> Module<T> for Linear<T> {
    fn visit_params(&self, prefix: &str, f: &mut dyn FnMut(&str, &Tensor<T>)) {
        f(&join(prefix, "weight"), &self.weight);
        if let Some(b) = &self.bias {
            f(&join(prefix, "bias"), b);
        }
    }
}

/// A table of `[num_embeddings, dim]` vectors looked up by id. The `padding_idx`
/// row never receives a gradient (PyTorch's `padding_idx`).
pub struct Embedding<T: Float = f32> {
    pub weight: Tensor<T>,
    pub padding_idx: Option<usize>,
}

impl<T: Float> Embedding<T> {
    /// N(0, 1) init as PyTorch, with the padding row zeroed.
    pub fn new(num: usize, dim: usize, padding_idx: Option<usize>, rng: &mut impl Rng) -> Self {
        let mut w: Vec<T> = (0..num * dim).map(|_| T::from_f64(standard_normal(rng))).collect();
        if let Some(p) = padding_idx.filter(|&p| p < num) {
            w[p * dim..(p + 1) * dim].fill(T::ZERO);
        }
        Embedding { weight: Tensor::param(w, &[num, dim]), padding_idx }
    }

    /// From pretrained vectors (e.g. GloVe); `freeze` makes the table constant.
    pub fn from_pretrained(weight: Tensor<T>, padding_idx: Option<usize>, freeze: bool) -> Self {
        weight.set_requires_grad(!freeze);
        Embedding { weight, padding_idx }
    }

    /// ids `[...]` → `[..., dim]`.
    pub fn forward(&self, ids: &[usize], ids_shape: &[usize]) -> Tensor<T> {
        self.weight.embedding(ids, ids_shape, self.padding_idx)
    }
}

impl<T: Float> Module<T> for Embedding<T> {
    fn visit_params(&self, prefix: &str, f: &mut dyn FnMut(&str, &Tensor<T>)) {
        f(&join(prefix, "weight"), &self.weight);
    }
}

/// A standard normal sample (Box–Muller), so init needs no extra crate.
pub fn standard_normal(rng: &mut impl Rng) -> f64 {
    let u1: f64 = rng.random_range(f64::MIN_POSITIVE..1.0);
    let u2: f64 = rng.random();
    (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
}

/// Layer normalisation over the last dim with affine weight and bias.
pub struct LayerNorm<T: Float = f32> {
    pub weight: Tensor<T>,
    pub bias: Tensor<T>,
    pub eps: f64,
}

impl<T: Float> LayerNorm<T> {
    pub fn new(dim: usize, eps: f64) -> Self {
        LayerNorm {
            weight: Tensor::param(vec![T::ONE; dim], &[dim]),
            bias: Tensor::param(vec![T::ZERO; dim], &[dim]),
            eps,
        }
    }
    pub fn forward(&self, x: &Tensor<T>) -> Tensor<T> {
        x.layer_norm(self.norm())
    }
    /// Its weight, bias and eps, for ops that normalise inside (`Tensor::residual_layer_norm`).
    pub fn norm(&self) -> tapegrad_autograd::Norm<'_, T> {
        tapegrad_autograd::Norm { weight: Some(&self.weight), bias: Some(&self.bias), eps: self.eps }
    }
}

impl<T: Float> Module<T> for LayerNorm<T> {
    fn visit_params(&self, prefix: &str, f: &mut dyn FnMut(&str, &Tensor<T>)) {
        f(&join(prefix, "weight"), &self.weight);
        f(&join(prefix, "bias"), &self.bias);
    }
}

/// Inverted dropout with its own seeded RNG; the identity in evaluation.
pub struct Dropout {
    pub p: f64,
    pub training: bool,
    rng: RefCell<ChaCha8Rng>,
}

impl Dropout {
    pub fn new(p: f64, seed: u64) -> Self {
        Dropout { p, training: true, rng: RefCell::new(ChaCha8Rng::seed_from_u64(seed)) }
    }
    pub fn forward<T: Float>(&self, x: &Tensor<T>) -> Tensor<T> {
        x.dropout(self.p, self.training, &mut *self.rng.borrow_mut())
    }
    /// For ops that draw their own mask (fused attention): in training with p > 0,
    /// p and a fresh seed from this layer's stream; otherwise None (no dropout).
    pub fn mask_seed(&self) -> Option<tapegrad_autograd::DropoutMask> {
        (self.training && self.p > 0.0)
            .then(|| tapegrad_autograd::DropoutMask { p: self.p, seed: self.rng.borrow_mut().random() })
    }
    /// Restarts the mask stream from `seed`.
    pub fn reseed(&self, seed: u64) {
        *self.rng.borrow_mut() = ChaCha8Rng::seed_from_u64(seed);
    }
    /// Position of the RNG stream (for checkpoints that resume exactly).
    pub fn rng_position(&self) -> u128 {
        self.rng.borrow().get_word_pos()
    }
    pub fn set_rng_position(&self, pos: u128) {
        self.rng.borrow_mut().set_word_pos(pos)
    }
}
