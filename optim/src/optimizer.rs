//! The optimizer interface and parameter groups.
//!
//! An optimizer owns handles to named parameters, split into groups. Each group may
//! override the optimizer's learning rate and weight decay (for example: no weight
//! decay for biases and LayerNorm weights, a smaller learning rate for embeddings).
//! The learning rate a group actually uses at a step is
//!
//!   η_group = (group lr, or the optimizer's lr) · lr_factor
//!
//! where `lr_factor` is the multiplier a schedule sets ([`Optimizer::set_lr_factor`]).
//!
//! A parameter is skipped by `step` when it is frozen (`!tracks_grad()`) or when
//! backward did not reach it (no gradient), exactly as PyTorch skips `p.grad is None`;
//! its optimizer state is left untouched.

use crate::state::{meta_f64, meta_field, OptimState, StateError};
use serde_json::{json, Value};
use std::collections::HashSet;
use tapegrad_autograd::{Float, Tensor};

/// Named parameters sharing hyperparameters. `None` means "use the optimizer's value".
pub struct ParamGroup<T: Float = f32> {
    /// (name, parameter). Names key the optimizer state and must be unique.
    pub params: Vec<(String, Tensor<T>)>,
    /// Base learning rate of this group (`None`: the optimizer's).
    pub lr: Option<f64>,
    /// Weight decay of this group (`None`: the optimizer's).
    pub weight_decay: Option<f64>,
    /// Multiplier of the base learning rate, set by a schedule (starts at 1).
    pub lr_factor: f64,
}

impl<T: Float> ParamGroup<T> {
    /// A group using the optimizer's learning rate and weight decay.
    pub fn new(params: Vec<(String, Tensor<T>)>) -> Self {
        ParamGroup { params, lr: None, weight_decay: None, lr_factor: 1.0 }
    }
    /// Overrides the learning rate for this group, builder style.
    pub fn with_lr(mut self, lr: f64) -> Self {
        self.lr = Some(lr);
        self
    }
    /// Overrides the weight decay for this group, builder style (0 turns it off).
    pub fn with_weight_decay(mut self, weight_decay: f64) -> Self {
        self.weight_decay = Some(weight_decay);
        self
    }
}

/// What every optimizer offers. Object safe: a trainer can hold `Box<dyn Optimizer<T>>`.
pub trait Optimizer<T: Float = f32> {
    /// `"sgd"`, `"adam"` or `"adamw"` (recorded in checkpoints).
    fn kind(&self) -> &'static str;
    fn groups(&self) -> &[ParamGroup<T>];
    fn groups_mut(&mut self) -> &mut [ParamGroup<T>];
    /// The optimizer-wide base learning rate (groups without their own lr use it).
    fn lr(&self) -> f64;
    fn set_lr(&mut self, lr: f64);
    /// The optimizer-wide weight decay (groups without their own use it).
    fn weight_decay(&self) -> f64;
    /// One update of every parameter that has a gradient.
    fn step(&mut self);
    /// How many times `step` has been called (restored from checkpoints).
    fn step_count(&self) -> u64;
    /// Everything needed to continue exactly: step counts, buffers, hyperparameters.
    fn state(&self) -> OptimState;
    /// Restores [`Optimizer::state`]. Validates everything first: on error nothing changed.
    /// Hyperparameters (lr, weight decay, lr factors, betas...) are restored too, as
    /// PyTorch's `load_state_dict` does.
    fn load_state(&mut self, state: &OptimState) -> Result<(), StateError>;

    /// Clears every parameter's gradient (PyTorch's `zero_grad(set_to_none=True)`).
    fn zero_grad(&self) {
        for g in self.groups() {
            g.params.iter().for_each(|(_, p)| p.zero_grad());
        }
    }
    /// Sets every group's learning-rate multiplier (a schedule's `lr_factor(step)`).
    fn set_lr_factor(&mut self, factor: f64) {
        self.groups_mut().iter_mut().for_each(|g| g.lr_factor = factor);
    }
    /// The learning rate group `i` uses now: base lr · lr_factor.
    fn group_lr(&self, i: usize) -> f64 {
        let g = &self.groups()[i];
        g.lr.unwrap_or(self.lr()) * g.lr_factor
    }
    /// The weight decay group `i` uses.
    fn group_weight_decay(&self, i: usize) -> f64 {
        self.groups()[i].weight_decay.unwrap_or(self.weight_decay())
    }
    /// Handles to the trainable parameters (for clipping), frozen ones left out.
    fn trainable_params(&self) -> Vec<Tensor<T>> {
        let all = self.groups().iter().flat_map(|g| g.params.iter());
        all.filter(|(_, p)| p.tracks_grad()).map(|(_, p)| p.clone()).collect()
    }
}

/// The [`Optimizer`] methods every optimizer answers from its [`Core`] (a field `core`):
/// written once here, expanded inside each `impl Optimizer<T> for …`, so that an
/// optimizer's file shows its own math (`kind`, `step`, its state) and nothing else.
macro_rules! core_accessors {
    () => {
        fn groups(&self) -> &[$crate::ParamGroup<T>] {
            &self.core.groups
        }
        fn groups_mut(&mut self) -> &mut [$crate::ParamGroup<T>] {
            &mut self.core.groups
        }
        fn lr(&self) -> f64 {
            self.core.lr
        }
        fn set_lr(&mut self, lr: f64) {
            self.core.lr = lr;
        }
        fn weight_decay(&self) -> f64 {
            self.core.weight_decay
        }
        fn step_count(&self) -> u64 {
            self.core.step
        }
    };
}
pub(crate) use core_accessors;

/// The part every optimizer shares: groups, defaults, step count, and their
/// (de)serialisation. Crate-private.
pub(crate) struct Core<T: Float> {
    pub groups: Vec<ParamGroup<T>>,
    pub lr: f64,
    pub weight_decay: f64,
    pub step: u64,
}

/// One parameter to update at this step, with its group's hyperparameters.
pub(crate) struct Active<'a, T: Float> {
    pub name: &'a str,
    pub param: &'a Tensor<T>,
    /// η: the group's learning rate times its lr factor.
    pub lr: f64,
    pub weight_decay: f64,
}

impl<T: Float> Core<T> {
    /// Panics when two parameters share a name (their state would collide).
    pub fn new(groups: Vec<ParamGroup<T>>, lr: f64, weight_decay: f64) -> Self {
        let mut seen = HashSet::new();
        for (name, _) in groups.iter().flat_map(|g| g.params.iter()) {
            assert!(seen.insert(name.clone()), "optimizer: parameter name `{name}` appears twice");
        }
        Core { groups, lr, weight_decay, step: 0 }
    }

    /// The device of parameter `name` (its optimizer state lives there too).
    pub fn device_of(&self, name: &str) -> tapegrad_autograd::Device {
        self.groups
            .iter()
            .flat_map(|g| &g.params)
            .find(|(n, _)| n == name)
            .map(|(_, p)| p.device())
            .unwrap_or_default()
    }

    /// The parameters to update now: trainable and with a gradient.
    pub fn active(&self) -> Vec<Active<'_, T>> {
        let mut out = Vec::new();
        for g in &self.groups {
            let lr = g.lr.unwrap_or(self.lr) * g.lr_factor;
            let weight_decay = g.weight_decay.unwrap_or(self.weight_decay);
            for (name, p) in &g.params {
                if p.tracks_grad() && p.has_grad() {
                    out.push(Active { name, param: p, lr, weight_decay });
                }
            }
        }
        out
    }

    /// The shape of the parameter called `name`, if the optimizer has it.
    pub fn shape_of(&self, name: &str) -> Option<Vec<usize>> {
        let all = self.groups.iter().flat_map(|g| g.params.iter());
        all.into_iter().find(|(n, _)| n == name).map(|(_, p)| p.shape().to_vec())
    }

    /// Metadata shared by every optimizer; `hyper` and `state` are the optimizer's own.
    pub fn meta(&self, kind: &str, hyper: Value, state: Value) -> Value {
        let groups: Vec<Value> = self
            .groups
            .iter()
            .map(|g| {
                let names: Vec<&str> = g.params.iter().map(|(n, _)| n.as_str()).collect();
                json!({"params": names, "lr": g.lr, "weight_decay": g.weight_decay, "lr_factor": g.lr_factor})
            })
            .collect();
        json!({
            "format": "tapegrad-optim/1", "kind": kind, "dtype": T::DTYPE, "step": self.step,
            "lr": self.lr, "weight_decay": self.weight_decay,
            "hyper": hyper, "groups": groups, "state": state,
        })
    }

    /// Checks that `state` was saved by a `kind` optimizer over the same groups of the
    /// same parameter names, and returns the restored core hyperparameters (not applied).
    pub fn check(&self, kind: &str, state: &OptimState) -> Result<Restored, StateError> {
        let src = &state.source;
        let meta = &state.meta;
        let found = meta_field(meta, "kind", src)?.as_str().unwrap_or("?");
        if found != kind {
            return Err(StateError::mismatch(
                src,
                format!("state is for a `{found}` optimizer, not `{kind}`"),
            ));
        }
        let groups = meta_field(meta, "groups", src)?.as_array().ok_or_else(|| bad(src, "groups"))?;
        if groups.len() != self.groups.len() {
            let msg =
                format!("state has {} parameter groups, the optimizer {}", groups.len(), self.groups.len());
            return Err(StateError::mismatch(src, msg));
        }
        let mut out =
            Restored { groups: Vec::new(), lr: meta_f64(meta, "lr", src)?, weight_decay: 0.0, step: 0 };
        out.weight_decay = meta_f64(meta, "weight_decay", src)?;
        out.step = meta_field(meta, "step", src)?.as_u64().ok_or_else(|| bad(src, "step"))?;
        for (i, (saved, g)) in groups.iter().zip(&self.groups).enumerate() {
            let names =
                saved.get("params").and_then(Value::as_array).ok_or_else(|| bad(src, "groups.params"))?;
            let names: Vec<&str> = names.iter().filter_map(Value::as_str).collect();
            let ours: Vec<&str> = g.params.iter().map(|(n, _)| n.as_str()).collect();
            if names != ours {
                let msg =
                    format!("group {i} holds parameters {names:?} in the state, {ours:?} in the optimizer");
                return Err(StateError::mismatch(src, msg));
            }
            let opt = |k: &str| saved.get(k).and_then(Value::as_f64);
            let factor = opt("lr_factor").ok_or_else(|| bad(src, "groups.lr_factor"))?;
            out.groups.push((opt("lr"), opt("weight_decay"), factor));
        }
        Ok(out)
    }

    /// The per-parameter `state` object of the metadata, each name checked to be ours.
    pub fn param_states<'m>(&self, state: &'m OptimState) -> Result<Vec<(&'m str, &'m Value)>, StateError> {
        let src = &state.source;
        let map = meta_field(&state.meta, "state", src)?.as_object().ok_or_else(|| bad(src, "state"))?;
        let mut out = Vec::new();
        for (name, v) in map {
            if self.shape_of(name).is_none() {
                return Err(StateError::mismatch(src, format!("state for unknown parameter `{name}`")));
            }
            out.push((name.as_str(), v));
        }
        Ok(out)
    }

    /// Applies what [`Core::check`] returned.
    pub fn apply(&mut self, r: Restored) {
        self.lr = r.lr;
        self.weight_decay = r.weight_decay;
        self.step = r.step;
        for (g, (lr, wd, factor)) in self.groups.iter_mut().zip(r.groups) {
            g.lr = lr;
            g.weight_decay = wd;
            g.lr_factor = factor;
        }
    }
}

/// Core hyperparameters read back from a state, validated but not yet applied.
pub(crate) struct Restored {
    groups: Vec<(Option<f64>, Option<f64>, f64)>,
    lr: f64,
    weight_decay: f64,
    step: u64,
}

fn bad(src: &str, key: &str) -> StateError {
    StateError::mismatch(src, format!("metadata field `{key}` is missing or malformed"))
}
