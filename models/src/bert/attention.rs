//! Multi-head self-attention and its output block.

use super::{encoder::Positions, BertConfig, Init};
use crate::layers::{Dropout, LayerNorm, Linear};
use crate::module::{join, Module};
use rand::Rng;
use tapegrad_autograd::{Float, Tensor};

/// The additive attention mask `[B, 1, 1, T]`: 0 where `attention_mask` is 1 and
/// the dtype's lowest value where it is 0, as transformers builds it
/// (`torch.finfo(dtype).min`), so masked keys get probability 0 (exactly, after
/// exp) while a fully masked row stays finite.
pub fn additive_mask<T: Float>(attention_mask: &[usize], shape: [usize; 2]) -> Tensor<T> {
    let [b, t] = shape;
    assert_eq!(attention_mask.len(), b * t, "attention mask: {} values for [{b}, {t}]", attention_mask.len());
    let lowest = T::from_f64(if T::DTYPE == "F32" { f32::MIN as f64 } else { f64::MIN });
    let v = attention_mask.iter().map(|&m| if m == 0 { lowest } else { T::ZERO }).collect();
    Tensor::from_vec(v, &[b, 1, 1, t])
}

/// `attention.self`: query, key, value projections and scaled dot-product attention.
pub struct BertSelfAttention<T: Float = f32> {
    pub query: Linear<T>,
    pub key: Linear<T>,
    pub value: Linear<T>,
    pub num_heads: usize,
    pub head_dim: usize,
    pub dropout: Dropout,
}

impl<T: Float> BertSelfAttention<T> {
    pub fn new(c: &BertConfig, init: &mut Init<impl Rng>, seed: u64) -> Self {
        let h = c.hidden_size;
        BertSelfAttention {
            query: init.linear(h, h),
            key: init.linear(h, h),
            value: init.linear(h, h),
            num_heads: c.num_attention_heads,
            head_dim: c.head_dim(),
            dropout: Dropout::new(c.attention_probs_dropout_prob, seed),
        }
    }

    /// x `[B, T, H]`, mask `[B, 1, 1, T]` (additive) → context `[B, T, H]`, or `[B, 1, H]`
    /// at [`Positions::First`]:
    ///   S = Q·Kᵀ/√d + mask,  P = dropout(softmax(S)),  C = P·V  (per head),
    /// with the heads side by side in H = nh·d. One fused op
    /// ([`Tensor::attention`]) computes it from Q, K, V in their `[B, T, H]` layout; the
    /// queries are projected only at the positions kept (keys and values at every one).
    pub fn forward(&self, x: &Tensor<T>, mask: &Tensor<T>, at: Positions) -> Tensor<T> {
        let q = self.query.forward(&at.keep(x));
        let (k, v) = (self.key.forward(x), self.value.forward(x));
        q.attention(&k, &v, self.num_heads, Some(mask), self.dropout.mask_seed())
    }
}

impl<T: Float> Module<T> for BertSelfAttention<T> {
    fn visit_params(&self, prefix: &str, f: &mut dyn FnMut(&str, &Tensor<T>)) {
        self.query.visit_params(&join(prefix, "query"), f);
        self.key.visit_params(&join(prefix, "key"), f);
        self.value.visit_params(&join(prefix, "value"), f);
    }
    fn set_training(&mut self, training: bool) {
        self.dropout.training = training;
    }

    fn visit_dropout(&self, f: &mut dyn FnMut(&Dropout)) {
        f(&self.dropout);
    }
}

/// The block after attention or the feed-forward: LayerNorm(residual + dropout(dense(x))).
/// transformers calls it `attention.output` (`BertSelfOutput`) and `output` (`BertOutput`).
pub struct BertResidualOutput<T: Float = f32> {
    pub dense: Linear<T>,
    pub layer_norm: LayerNorm<T>,
    pub dropout: Dropout,
}

impl<T: Float> BertResidualOutput<T> {
    pub fn new(c: &BertConfig, in_features: usize, init: &mut Init<impl Rng>, seed: u64) -> Self {
        BertResidualOutput {
            dense: init.linear(in_features, c.hidden_size),
            layer_norm: LayerNorm::new(c.hidden_size, c.layer_norm_eps),
            dropout: Dropout::new(c.hidden_dropout_prob, seed),
        }
    }

    /// `layer_norm(dropout(dense(x)) + residual)`, the last three as one op
    /// (`Tensor::residual_layer_norm`; its mask is the one `Dropout::forward` would draw).
    pub fn forward(&self, x: &Tensor<T>, residual: &Tensor<T>) -> Tensor<T> {
        let h = self.dense.forward(x);
        h.residual_layer_norm(residual, self.dropout.mask_seed(), self.layer_norm.norm())
    }
}

impl<T: Float> Module<T> for BertResidualOutput<T> {
    fn visit_params(&self, prefix: &str, f: &mut dyn FnMut(&str, &Tensor<T>)) {
        self.dense.visit_params(&join(prefix, "dense"), f);
        self.layer_norm.visit_params(&join(prefix, "LayerNorm"), f);
    }
    fn set_training(&mut self, training: bool) {
        self.dropout.training = training;
    }

    fn visit_dropout(&self, f: &mut dyn FnMut(&Dropout)) {
        f(&self.dropout);
    }
}

/// `attention`: self-attention, then its residual output block.
pub struct BertAttention<T: Float = f32> {
    pub self_attention: BertSelfAttention<T>,
    pub output: BertResidualOutput<T>,
}

impl<T: Float> BertAttention<T> {
    pub fn new(c: &BertConfig, init: &mut Init<impl Rng>, seed: u64) -> Self {
        BertAttention {
            self_attention: BertSelfAttention::new(c, init, seed),
            output: BertResidualOutput::new(c, c.hidden_size, init, seed.wrapping_add(1)),
        }
    }
    /// x `[B, T, H]` → `output(context, x)` at the positions `at` (see [`Positions`]).
    pub fn forward(&self, x: &Tensor<T>, mask: &Tensor<T>, at: Positions) -> Tensor<T> {
        let context = self.self_attention.forward(x, mask, at);
        self.output.forward(&context, &at.keep(x))
    }
}

impl<T: Float> Module<T> for BertAttention<T> {
    fn visit_params(&self, prefix: &str, f: &mut dyn FnMut(&str, &Tensor<T>)) {
        self.self_attention.visit_params(&join(prefix, "self"), f);
        self.output.visit_params(&join(prefix, "output"), f);
    }
    fn set_training(&mut self, training: bool) {
        self.self_attention.set_training(training);
        self.output.set_training(training);
    }

    fn visit_dropout(&self, f: &mut dyn FnMut(&Dropout)) {
        self.self_attention.visit_dropout(f);
        self.output.visit_dropout(f);
    }
}
