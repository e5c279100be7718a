//! The encoder: layers of attention then a position-wise feed-forward block.

use super::attention::{BertAttention, BertResidualOutput};
use super::{Activation, BertConfig, Init};
use crate::layers::Dropout;
use crate::layers::Linear;
use crate::module::{join, Module};
use rand::Rng;
use tapegrad_autograd::{Float, Tensor};

/// `intermediate`: act(dense(x)), H → intermediate_size.
pub struct BertIntermediate<T: Float = f32> {
    pub dense: Linear<T>,
    pub act: Activation,
}

impl<T: Float> BertIntermediate<T> {
    pub fn forward(&self, x: &Tensor<T>) -> Tensor<T> {
        let y = self.dense.forward(x);
        match self.act {
            Activation::Gelu => y.gelu(),
            Activation::GeluTanh => y.gelu_tanh(),
            Activation::Relu => y.relu(),
        }
    }
}

/// Which positions a layer computes its output at.
///
/// A classifier reads the last layer at the first position only (`[CLS]`, through the
/// pooler). There every other position's output is dead work: its query, its scores and
/// its context, the output projection, the residual layer norms and the feed-forward
/// block. With [`Positions::First`] the layer projects keys and values at every position
/// (the first query reads them all) and the query at the first alone, attends with that
/// one query (the fused op's Tq = 1: row 0 of the full scores, with the same dropout row),
/// and computes the rest for that position alone. For MiniLM (H 384, feed-forward 1536,
/// 256 tokens) that skips 85.0 % of the layer's multiply-adds (the feed-forward block
/// 60 %, the query and output projections 15 %, attention's products 10 %). Its output at
/// that position is the full layer's (the same rows of the same ops), and so is every
/// gradient (the dropped positions get zero gradient either way), up to rounding: a
/// product summed over fewer rows may fuse its adds differently. In training the two
/// hidden dropouts draw their masks for `[B, 1, H]` instead of `[B, T, H]`: other draws
/// from the same distribution.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Positions {
    /// Every position: `[B, T, H]` in, `[B, T, H]` out.
    All,
    /// The first position of each sequence: `[B, T, H]` in, `[B, 1, H]` out.
    First,
}

impl Positions {
    /// x `[B, T, H]` → the positions kept: x itself, or x `[B, 1, H]` at position 0.
    pub fn keep<T: Float>(self, x: &Tensor<T>) -> Tensor<T> {
        match self {
            Positions::All => x.clone(),
            Positions::First => x.narrow(1, 0, 1),
        }
    }
}

/// One encoder layer: x ↦ out(ffn(a), a) with a = attention(x), at the positions kept.
pub struct BertLayer<T: Float = f32> {
    pub attention: BertAttention<T>,
    pub intermediate: BertIntermediate<T>,
    pub output: BertResidualOutput<T>,
}

impl<T: Float> BertLayer<T> {
    pub fn new(c: &BertConfig, init: &mut Init<impl Rng>, seed: u64) -> Self {
        BertLayer {
            attention: BertAttention::new(c, init, seed),
            intermediate: BertIntermediate {
                dense: init.linear(c.hidden_size, c.intermediate_size),
                act: c.hidden_act,
            },
            output: BertResidualOutput::new(c, c.intermediate_size, init, seed.wrapping_add(2)),
        }
    }
    /// x `[B, T, H]`, mask `[B, 1, 1, T]` → `[B, T, H]`, or `[B, 1, H]` at [`Positions::First`].
    pub fn forward(&self, x: &Tensor<T>, mask: &Tensor<T>, at: Positions) -> Tensor<T> {
        let a = self.attention.forward(x, mask, at);
        self.output.forward(&self.intermediate.forward(&a), &a)
    }
}

impl<T: Float> Module<T> for BertLayer<T> {
    fn visit_params(&self, prefix: &str, f: &mut dyn FnMut(&str, &Tensor<T>)) {
        self.attention.visit_params(&join(prefix, "attention"), f);
        self.intermediate.dense.visit_params(&join(prefix, "intermediate.dense"), f);
        self.output.visit_params(&join(prefix, "output"), f);
    }
    fn set_training(&mut self, training: bool) {
        self.attention.set_training(training);
        self.output.set_training(training);
    }

    fn visit_dropout(&self, f: &mut dyn FnMut(&Dropout)) {
        self.attention.visit_dropout(f);
        self.output.visit_dropout(f);
    }
}

/// The stack of layers (`encoder.layer.{i}`).
pub struct BertEncoder<T: Float = f32> {
    pub layers: Vec<BertLayer<T>>,
}

impl<T: Float> BertEncoder<T> {
    pub fn new(c: &BertConfig, init: &mut Init<impl Rng>, seed: u64) -> Self {
        let layers =
            (0..c.num_hidden_layers).map(|i| BertLayer::new(c, init, seed.wrapping_add(10 * i as u64)));
        BertEncoder { layers: layers.collect() }
    }
    /// x `[B, T, H]` through every layer; the last one computes its output at the positions
    /// `last` (every other layer at all of them, since the next layer attends over them).
    ///
    /// Each layer runs on its parameters' device: in a model split over devices (layers
    /// moved one by one with `Module::to`), the hidden state and the mask follow with
    /// `Tensor::to` (differentiable, and no op at all when the device is the same).
    pub fn forward(&self, x: &Tensor<T>, mask: &Tensor<T>, last: Positions) -> Tensor<T> {
        let n = self.layers.len();
        self.layers.iter().enumerate().fold(x.clone(), |h, (i, layer)| {
            let d = layer.device();
            let at = if i + 1 == n { last } else { Positions::All };
            layer.forward(&h.to(d), &mask.to(d), at)
        })
    }
}

impl<T: Float> Module<T> for BertEncoder<T> {
    fn visit_params(&self, prefix: &str, f: &mut dyn FnMut(&str, &Tensor<T>)) {
        for (i, layer) in self.layers.iter().enumerate() {
            layer.visit_params(&join(prefix, &format!("layer.{i}")), f);
        }
    }
    fn set_training(&mut self, training: bool) {
        self.layers.iter_mut().for_each(|l| l.set_training(training));
    }

    fn visit_dropout(&self, f: &mut dyn FnMut(&Dropout)) {
        self.layers.iter().for_each(|l| l.visit_dropout(f));
    }
}
