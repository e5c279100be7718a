//! What the GPU tests share (test builds only): inputs in either element type, results
//! back as f64, and comparisons that name what differs.
//!
//! Each family's tests hold generic checkers (`check…::<T>(ctx, shape…)`): one launcher
//! run on one shape in T against the CPU, at T's tolerance. The family's own tests run
//! them over their shapes; `coverage.rs` runs them once per entry point on small shapes.

use super::{DeviceRepr, GpuBuffer, GpuContext};
use crate::Float;
use std::sync::Arc;

/// `v` rounded to T.
pub fn to<T: Float>(v: &[f64]) -> Vec<T> {
    v.iter().map(|&x| T::from_f64(x)).collect()
}

/// `v` as f64 (exact).
pub fn wide<T: Float>(v: &[T]) -> Vec<f64> {
    v.iter().map(|x| x.to_f64()).collect()
}

/// The tolerance for T: `f32_tol` or `f64_tol` (the order of [`super::pick`]).
pub fn tol<T: Float>(f32_tol: f64, f64_tol: f64) -> f64 {
    if T::DTYPE == "F32" {
        f32_tol
    } else {
        f64_tol
    }
}

/// A copy of `v` on `ctx`.
pub fn up<T: DeviceRepr>(ctx: &Arc<GpuContext>, v: &[T]) -> GpuBuffer<T> {
    GpuBuffer::from_host(ctx, v).unwrap()
}

/// `len` elements on `ctx`, uninitialised (the kernel under test writes them).
pub fn out<T: DeviceRepr>(ctx: &Arc<GpuContext>, len: usize) -> GpuBuffer<T> {
    GpuBuffer::uninit(ctx, len).unwrap()
}

/// A buffer's elements as f64.
pub fn down<T: Float>(b: &GpuBuffer<T>) -> Vec<f64> {
    wide(&b.to_host().unwrap())
}

/// Asserts `|got − want| ≤ tol·(1 + |want|)` element by element (NaN never passes).
pub fn close(got: &[f64], want: &[f64], tol: f64, what: &str) {
    assert_eq!(got.len(), want.len(), "{what}: lengths");
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert!((g - w).abs() <= tol * (1.0 + w.abs()), "{what} at {i}: {g} vs {w}");
    }
}

/// "`T` on device", for messages.
pub fn on<T: Float>(ctx: &GpuContext) -> String {
    format!("{} on {}", T::DTYPE, ctx.name())
}
