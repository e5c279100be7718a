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

/// One encoder layer: x ↦ out(ffn(a), a) with a = attention(x).
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
    pub fn forward(&self, x: &Tensor<T>, mask: &Tensor<T>) -> Tensor<T> {
        let a = self.attention.forward(x, mask);
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
    /// Each layer runs on its parameters' device: in a model split over devices (layers
    /// moved one by one with `Module::to`), the hidden state and the mask follow with
    /// `Tensor::to` (differentiable, and no op at all when the device is the same).
    pub fn forward(&self, x: &Tensor<T>, mask: &Tensor<T>) -> Tensor<T> {
        self.layers.iter().fold(x.clone(), |h, layer| {
            let d = layer.device();
            layer.forward(&h.to(d), &mask.to(d))
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
