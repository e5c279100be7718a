//! Raw kernels on buffers: no autograd, no allocation policy, no shapes beyond
//! what each kernel needs. Every kernel is generic over [`Float`] (`f32` fast path,
//! `f64` reference path for gradient checks).
//!
//! Each fast kernel keeps its naive reference beside it and is tested against it.
//! `sgemm` is the BLIS-style single-precision matrix multiply; `threads` holds the
//! shared worker pool and the flush-to-zero (FTZ/DAZ) control.

pub mod activation;
pub mod attention;
pub mod bf16gemm;
pub mod broadcast;
pub mod dropout;
pub mod elementwise;
pub mod float;
pub mod gemm;
pub mod gpu;
pub mod index;
pub mod isa;
pub mod layernorm;
pub mod loss;
pub mod lstm;
pub mod permute;
pub mod pool;
pub mod reduce;
pub mod select;
pub mod sgemm;
pub mod softmax;
pub mod threads;
pub mod update;
pub mod vecmath;

pub use float::{as_f32, as_f32_mut, Float};
