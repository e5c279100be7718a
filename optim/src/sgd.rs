//! Stochastic gradient descent, exactly `torch.optim.SGD`.
//!
//! With gradient g_t = ∇L(θ_t), learning rate η, weight decay λ, momentum μ,
//! dampening τ, at step t (t = 1, 2, ...):
//!
//!   g   = g_t + λ·θ_t                      (L2 weight decay, if λ ≠ 0)
//!   b_1 = g                                (first step: the buffer is the gradient,
//!                                           not (1−τ)·g)
//!   b_t = μ·b_{t−1} + (1−τ)·g              (momentum buffer, if μ ≠ 0)
//!   d   = g + μ·b_t   (Nesterov)   or   d = b_t   (classical momentum)   or   d = g  (μ = 0)
//!   θ_{t+1} = θ_t − η·d
//!
//! With μ = 0 and λ = 0 this is the tutorial's θ_{t+1} = θ_t − η∇L(θ_t).

use crate::optimizer::{core_accessors, Core, Optimizer, ParamGroup};
use crate::state::{OptimState, StateError, StateTensor};
use serde_json::{json, Value};
use std::collections::HashMap;
use tapegrad_autograd::backend::{Backend, SgdStep};
use tapegrad_autograd::{Float, Storage, Tensor};

/// Hyperparameters of [`Sgd`] (PyTorch's defaults: all zero but the lr).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SgdConfig {
    /// η
    pub lr: f64,
    /// μ
    pub momentum: f64,
    /// τ
    pub dampening: f64,
    /// λ (groups may override)
    pub weight_decay: f64,
    pub nesterov: bool,
}

impl SgdConfig {
    /// Plain gradient descent with learning rate `lr`.
    pub fn new(lr: f64) -> Self {
        SgdConfig { lr, momentum: 0.0, dampening: 0.0, weight_decay: 0.0, nesterov: false }
    }
    pub fn momentum(mut self, momentum: f64) -> Self {
        self.momentum = momentum;
        self
    }
    pub fn dampening(mut self, dampening: f64) -> Self {
        self.dampening = dampening;
        self
    }
    pub fn weight_decay(mut self, weight_decay: f64) -> Self {
        self.weight_decay = weight_decay;
        self
    }
    pub fn nesterov(mut self, nesterov: bool) -> Self {
        self.nesterov = nesterov;
        self
    }
}

/// SGD with optional momentum, dampening, Nesterov momentum and weight decay.
pub struct Sgd<T: Float = f32> {
    core: Core<T>,
    config: SgdConfig,
    /// Momentum buffers b, by parameter name (created at a parameter's first step).
    momentum: HashMap<String, Storage<T>>,
}

impl<T: Float> Sgd<T> {
    /// One group of named parameters. Panics on duplicate names, or Nesterov without
    /// momentum / with dampening (as PyTorch refuses them).
    pub fn new(params: Vec<(String, Tensor<T>)>, config: SgdConfig) -> Self {
        Self::with_groups(vec![ParamGroup::new(params)], config)
    }

    /// Several groups, each possibly overriding lr and weight decay.
    pub fn with_groups(groups: Vec<ParamGroup<T>>, config: SgdConfig) -> Self {
        assert!(
            !config.nesterov || (config.momentum > 0.0 && config.dampening == 0.0),
            "SGD: Nesterov momentum requires a momentum and zero dampening"
        );
        Sgd { core: Core::new(groups, config.lr, config.weight_decay), config, momentum: HashMap::new() }
    }

    pub fn config(&self) -> SgdConfig {
        SgdConfig { lr: self.core.lr, weight_decay: self.core.weight_decay, ..self.config }
    }
}

impl<T: Float> Optimizer<T> for Sgd<T> {
    fn kind(&self) -> &'static str {
        "sgd"
    }
    core_accessors!();

    fn step(&mut self) {
        self.core.step += 1;
        for a in self.core.active() {
            let grad = a.param.grad_storage().expect("active parameters have a gradient");
            let mut theta = a.param.storage_mut();
            let c = &self.config;
            // One fused pass on the parameter's device (kernels::update::sgd_update spells
            // out each line: g = ∇L + λθ;  b_t = μ·b_{t−1} + (1−τ)·g, b_1 = g;  θ ← θ − η·d).
            let (buf, first_step) = if c.momentum != 0.0 {
                let first = !self.momentum.contains_key(a.name);
                let b = self
                    .momentum
                    .entry(a.name.to_string())
                    .or_insert_with(|| grad.full_like(grad.len(), T::ZERO));
                (Some(b), first)
            } else {
                (None, false)
            };
            let step = SgdStep {
                lr: a.lr,
                momentum: c.momentum,
                dampening: c.dampening,
                weight_decay: a.weight_decay,
                nesterov: c.nesterov,
                first_step,
            };
            theta.sgd_update(&grad, buf, step);
        }
    }

    fn state(&self) -> OptimState {
        let hyper = json!({
            "momentum": self.config.momentum, "dampening": self.config.dampening, "nesterov": self.config.nesterov,
        });
        let mut names: Vec<&String> = self.momentum.keys().collect();
        names.sort();
        let per_param: serde_json::Map<String, Value> =
            names.iter().map(|n| (n.to_string(), json!({}))).collect();
        let mut s = OptimState::new(self.core.meta("sgd", hyper, Value::Object(per_param)));
        for n in names {
            let shape = self.core.shape_of(n).expect("state only for our parameters");
            s.tensors.push(StateTensor::from_values(
                format!("{n}.momentum_buffer"),
                &shape,
                &crate::state::host(&self.momentum[n]),
            ));
        }
        s
    }

    fn load_state(&mut self, state: &OptimState) -> Result<(), StateError> {
        let src = &state.source;
        let restored = self.core.check("sgd", state)?;
        let hyper = crate::state::meta_field(&state.meta, "hyper", src)?;
        let momentum = crate::state::meta_f64(hyper, "momentum", src)?;
        let dampening = crate::state::meta_f64(hyper, "dampening", src)?;
        let nesterov = hyper.get("nesterov").and_then(Value::as_bool).unwrap_or(false);
        let mut buffers = HashMap::new();
        for (name, _) in self.core.param_states(state)? {
            let shape = self.core.shape_of(name).expect("checked by param_states");
            let values = state.values::<T>(&format!("{name}.momentum_buffer"), &shape)?;
            buffers.insert(name.to_string(), Storage::from_host(values, self.core.device_of(name)));
        }
        self.core.apply(restored);
        self.config = SgdConfig { momentum, dampening, nesterov, ..self.config };
        self.momentum = buffers;
        Ok(())
    }
}
