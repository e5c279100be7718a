//! Tensors, the tape, and differentiable ops with their backward.
//!
//! ```
//! use tapegrad_autograd::Tensor;
//! let w = Tensor::<f64>::param(vec![2.0, -1.0], &[2]);
//! let x = Tensor::from_vec(vec![3.0, 4.0], &[2]);
//! let loss = w.mul(&x).sum(); // L = Σ wᵢxᵢ
//! loss.backward();
//! assert_eq!(w.grad().unwrap().to_vec(), vec![3.0, 4.0]); // dL/dw = x
//! ```

pub mod alloc;
pub mod backend;
pub mod gradcheck;
mod ops;
pub mod precision;
pub mod profile;
pub mod safetensors;
pub mod storage;
pub mod tape;
mod tensor;

pub use gradcheck::{gradcheck, GradcheckError, GradcheckOptions};
pub use ops::attention::DropoutMask;
pub use ops::lstm_cell::LstmLayerOut;
pub use ops::norm::Norm;
pub use precision::Precision;
pub use storage::{Device, Storage};
pub use tape::{is_grad_enabled, no_grad, NoGradGuard};
pub use tapegrad_kernels::Float;
pub use tensor::{numel, Tensor};
