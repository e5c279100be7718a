//! Adam (`torch.optim.Adam`, L2 weight decay coupled into the gradient) and AdamW
//! (`torch.optim.AdamW`, weight decay decoupled from the gradient).
//!
//! With gradient g_t = ∇L(θ_t), learning rate η, betas β1, β2, epsilon ε, weight
//! decay λ, and t the parameter's own step count (t = 1, 2, ...):
//!
//!   Adam:   g = g_t + λ·θ_t                    (L2: the decay goes through the moments)
//!   AdamW:  θ_t ← θ_t·(1 − η·λ)                (decoupled decay, before the update),  g = g_t
//!   m_t = β1·m_{t−1} + (1−β1)·g                (first moment, m_0 = 0)
//!   v_t = β2·v_{t−1} + (1−β2)·g²               (second moment, v_0 = 0)
//!   denom = sqrt(v_t) / sqrt(1 − β2^t) + ε     (ε added after the bias correction of v)
//!   θ_{t+1} = θ_t − (η / (1 − β1^t)) · m_t / denom
//!
//! which is θ_{t+1} = θ_t − η·m̂_t/(sqrt(v̂_t) + ε) with the bias-corrected moments
//! m̂_t = m_t/(1 − β1^t), v̂_t = v_t/(1 − β2^t): the tutorial's θ − η·d with the
//! normalised direction d = m̂/(sqrt(v̂) + ε).

use crate::optimizer::{core_accessors, Core, Optimizer, ParamGroup};
use crate::state::{host, meta_f64, meta_field, OptimState, StateError, StateTensor};
use serde_json::{json, Value};
use std::collections::HashMap;
use tapegrad_autograd::backend::Backend;
use tapegrad_autograd::Storage;
use tapegrad_autograd::{Float, Tensor};
use tapegrad_kernels::update::AdamStep;

/// Hyperparameters of [`Adam`] (PyTorch's defaults via [`AdamConfig::new`]).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AdamConfig {
    /// η
    pub lr: f64,
    /// β1
    pub beta1: f64,
    /// β2
    pub beta2: f64,
    /// ε
    pub eps: f64,
    /// λ (groups may override)
    pub weight_decay: f64,
    /// false: Adam (λ·θ added to the gradient); true: AdamW (θ scaled by 1 − η·λ).
    pub decoupled: bool,
}

impl AdamConfig {
    /// Adam with `lr`, betas (0.9, 0.999), ε = 1e-8, no weight decay.
    pub fn new(lr: f64) -> Self {
        AdamConfig { lr, beta1: 0.9, beta2: 0.999, eps: 1e-8, weight_decay: 0.0, decoupled: false }
    }
    /// AdamW with `lr` and PyTorch's AdamW default weight decay 0.01.
    pub fn adamw(lr: f64) -> Self {
        AdamConfig { weight_decay: 0.01, decoupled: true, ..Self::new(lr) }
    }
    pub fn betas(mut self, beta1: f64, beta2: f64) -> Self {
        (self.beta1, self.beta2) = (beta1, beta2);
        self
    }
    pub fn eps(mut self, eps: f64) -> Self {
        self.eps = eps;
        self
    }
    pub fn weight_decay(mut self, weight_decay: f64) -> Self {
        self.weight_decay = weight_decay;
        self
    }
}

/// Per-parameter state: its step count t and the moments m, v.
struct Moments<T: Float> {
    step: u64,
    m: Storage<T>,
    v: Storage<T>,
}

/// Adam or AdamW (see [`AdamConfig::decoupled`]).
pub struct Adam<T: Float = f32> {
    core: Core<T>,
    config: AdamConfig,
    state: HashMap<String, Moments<T>>,
}

impl<T: Float> Adam<T> {
    /// One group of named parameters. Panics on duplicate names.
    pub fn new(params: Vec<(String, Tensor<T>)>, config: AdamConfig) -> Self {
        Self::with_groups(vec![ParamGroup::new(params)], config)
    }
    /// Several groups, each possibly overriding lr and weight decay.
    pub fn with_groups(groups: Vec<ParamGroup<T>>, config: AdamConfig) -> Self {
        Adam { core: Core::new(groups, config.lr, config.weight_decay), config, state: HashMap::new() }
    }
    /// AdamW over one group: `config` with decoupled weight decay.
    pub fn adamw(params: Vec<(String, Tensor<T>)>, config: AdamConfig) -> Self {
        Self::new(params, AdamConfig { decoupled: true, ..config })
    }
    pub fn config(&self) -> AdamConfig {
        AdamConfig { lr: self.core.lr, weight_decay: self.core.weight_decay, ..self.config }
    }
}

impl<T: Float> Optimizer<T> for Adam<T> {
    fn kind(&self) -> &'static str {
        if self.config.decoupled {
            "adamw"
        } else {
            "adam"
        }
    }
    core_accessors!();

    fn step(&mut self) {
        self.core.step += 1;
        let AdamConfig { beta1, beta2, eps, decoupled, .. } = self.config;
        for a in self.core.active() {
            let n = a.param.numel();
            let grad = a.param.grad_storage().expect("active parameters have a gradient");
            // the moments live on the parameter's device
            let s = self.state.entry(a.name.to_string()).or_insert_with(|| Moments {
                step: 0,
                m: grad.full_like(n, T::ZERO),
                v: grad.full_like(n, T::ZERO),
            });
            s.step += 1;
            let mut theta = a.param.storage_mut();
            // One fused pass over θ, g, m, v (kernels::update::adam_update, whose
            // reference loop spells out each line of the update above).
            let hyper = AdamStep {
                lr: a.lr,
                beta1,
                beta2,
                eps,
                weight_decay: a.weight_decay,
                decoupled,
                step: s.step,
            };
            theta.adam_update(&grad, &mut s.m, &mut s.v, hyper);
        }
    }

    fn state(&self) -> OptimState {
        let c = &self.config;
        let hyper = json!({"beta1": c.beta1, "beta2": c.beta2, "eps": c.eps, "decoupled": c.decoupled});
        let mut names: Vec<&String> = self.state.keys().collect();
        names.sort();
        let per_param: serde_json::Map<String, Value> =
            names.iter().map(|n| (n.to_string(), json!({"step": self.state[*n].step}))).collect();
        let mut out = OptimState::new(self.core.meta(self.kind(), hyper, Value::Object(per_param)));
        for n in names {
            let shape = self.core.shape_of(n).expect("state only for our parameters");
            let s = &self.state[n];
            out.tensors.push(StateTensor::from_values(format!("{n}.exp_avg"), &shape, &host(&s.m)));
            out.tensors.push(StateTensor::from_values(format!("{n}.exp_avg_sq"), &shape, &host(&s.v)));
        }
        out
    }

    fn load_state(&mut self, state: &OptimState) -> Result<(), StateError> {
        let src = &state.source;
        let restored = self.core.check(self.kind(), state)?;
        let hyper = meta_field(&state.meta, "hyper", src)?;
        let (beta1, beta2) = (meta_f64(hyper, "beta1", src)?, meta_f64(hyper, "beta2", src)?);
        let eps = meta_f64(hyper, "eps", src)?;
        let mut moments = HashMap::new();
        for (name, v) in self.core.param_states(state)? {
            let shape = self.core.shape_of(name).expect("checked by param_states");
            let step = v.get("step").and_then(Value::as_u64).ok_or_else(|| {
                StateError::mismatch(src, format!("metadata: no step count for parameter `{name}`"))
            })?;
            let device = self.core.device_of(name);
            let m = Storage::from_host(state.values::<T>(&format!("{name}.exp_avg"), &shape)?, device);
            let v = Storage::from_host(state.values::<T>(&format!("{name}.exp_avg_sq"), &shape)?, device);
            moments.insert(name.to_string(), Moments { step, m, v });
        }
        self.core.apply(restored);
        self.config = AdamConfig { beta1, beta2, eps, ..self.config };
        self.state = moments;
        Ok(())
    }
}
