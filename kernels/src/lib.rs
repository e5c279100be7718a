//! kernels
//!
//! `sgemm`: BLIS-style single-precision matrix multiply; `threads`: the shared worker pool and FTZ/DAZ control.
pub mod sgemm;
pub mod threads;
