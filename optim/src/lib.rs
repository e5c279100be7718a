//! Optimizers, learning-rate schedules and gradient clipping that match PyTorch.
//!
//! Every optimizer implements the tutorial's update θ_{t+1} = θ_t − η·d_t, where
//! d_t is the gradient ∇L(θ_t) itself (plain SGD) or a direction built from it
//! (momentum, Adam's normalised first moment). η is the learning rate of the
//! parameter's group times the schedule's multiplier.
//!
//! - [`Optimizer`]: the interface (`step`, `zero_grad`, lr multiplier, state).
//! - [`ParamGroup`]: named parameters sharing a learning rate and weight decay.
//! - [`Sgd`] (plain, momentum, Nesterov), [`Adam`] (coupled L2) and AdamW
//!   ([`Adam::adamw`], decoupled weight decay).
//! - [`schedule`]: learning-rate multipliers (constant, linear and cosine warmup).
//! - [`clip`]: gradient clipping by global norm and by value.
//! - [`state`]: optimizer state in safetensors checkpoints, for exact resumption.
//!
//! ```
//! use tapegrad_autograd::Tensor;
//! use tapegrad_optim::{Optimizer, Sgd, SgdConfig};
//! let w = Tensor::<f64>::param(vec![1.0, 2.0], &[2]);
//! let mut opt = Sgd::new(vec![("w".into(), w.clone())], SgdConfig::new(0.1));
//! w.mul(&w).sum().backward(); // L = Σ w², ∇L = 2w
//! opt.step(); // θ ← θ − η∇L(θ)
//! assert_eq!(w.to_vec(), vec![0.8, 1.6]);
//! ```

pub mod adam;
pub mod clip;
pub mod optimizer;
pub mod schedule;
pub mod sgd;
pub mod state;

pub use adam::{Adam, AdamConfig};
pub use clip::{clip_grad_norm, clip_grad_value};
pub use optimizer::{Optimizer, ParamGroup};
pub use schedule::{ConstantSchedule, CosineWarmup, LinearWarmup, LrSchedule};
pub use sgd::{Sgd, SgdConfig};
pub use state::{load_checkpoint, read_optim_state, save_checkpoint, OptimState, StateError, StateTensor};
