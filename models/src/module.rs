//! The module convention: a layer owns named parameters (PyTorch-style dotted
//! names), has a train/eval switch, and can freeze parameters.

use crate::layers::Dropout;
use tapegrad_autograd::{Device, Float, Tensor};

/// A layer or a model made of layers.
pub trait Module<T: Float = f32> {
    /// Calls `f(name, parameter)` for every parameter, the name dotted below
    /// `prefix` as PyTorch's `named_parameters` spells it (`rnn.weight_ih_l0`).
    fn visit_params(&self, prefix: &str, f: &mut dyn FnMut(&str, &Tensor<T>));

    /// Switches between training (dropout active) and evaluation.
    fn set_training(&mut self, _training: bool) {}

    /// Calls `f` for every dropout layer, always in the same order (a training
    /// program reseeds them each step so that a resumed run draws the same masks).
    fn visit_dropout(&self, _f: &mut dyn FnMut(&Dropout)) {}

    /// Every parameter with its name, frozen ones included.
    fn named_parameters(&self) -> Vec<(String, Tensor<T>)> {
        let mut out = Vec::new();
        self.visit_params("", &mut |name, p| out.push((name.to_string(), p.clone())));
        out
    }

    /// The parameters an optimizer should update (those that require grad).
    fn trainable_parameters(&self) -> Vec<(String, Tensor<T>)> {
        self.named_parameters().into_iter().filter(|(_, p)| p.tracks_grad()).collect()
    }

    /// Freezes (or unfreezes) every parameter whose name starts with `prefix`;
    /// returns how many were changed.
    fn freeze(&self, prefix: &str, frozen: bool) -> usize {
        let mut n = 0;
        self.visit_params("", &mut |name, p| {
            if name.starts_with(prefix) {
                p.set_requires_grad(!frozen);
                n += 1;
            }
        });
        n
    }

    /// Moves every parameter (frozen ones included) to `device`, in place.
    fn to(&self, device: Device) {
        self.visit_params("", &mut |_, p| p.move_to(device));
    }

    /// The device of the parameters (the first one's; the CPU for a module without any).
    fn device(&self) -> Device {
        let mut d = None;
        self.visit_params("", &mut |_, p| {
            d.get_or_insert(p.device());
        });
        d.unwrap_or_default()
    }

    /// Clears every parameter's gradient.
    fn zero_grad(&self) {
        self.visit_params("", &mut |_, p| p.zero_grad());
    }
}

/// `prefix.name`, or `name` when the prefix is empty.
pub fn join(prefix: &str, name: &str) -> String {
    if prefix.is_empty() {
        name.to_string()
    } else {
        format!("{prefix}.{name}")
    }
}
