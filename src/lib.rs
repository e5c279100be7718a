//! tapegrad: a tape-based reverse-mode autodiff engine with its own kernels.
//!
//! This facade re-exports the workspace crates; see `ARCHITECTURE.md` for the map.
pub use tapegrad_autograd as autograd;
pub use tapegrad_kernels as kernels;
pub use tapegrad_models as models;
pub use tapegrad_optim as optim;
