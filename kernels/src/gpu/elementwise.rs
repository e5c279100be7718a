//! Elementwise functions on the GPU (`kernels/cuda/elementwise.cu`); the CPU twin and
//! the op list are `kernels/src/elementwise.rs`.

use super::{count, launch, pick, scalar, GpuBuffer, GpuError, Kernel};
use crate::elementwise::Unary;
use crate::Float;

pub const ENTRIES: &[&str] = &["unary_fwd_f32", "unary_fwd_f64", "unary_bwd_f32", "unary_bwd_f64"];

/// y = f(x).                                        x, y (n)
pub fn unary_forward<T: Float>(op: Unary, x: &GpuBuffer<T>, y: &mut GpuBuffer<T>) -> Result<(), GpuError> {
    assert_eq!(x.len(), y.len(), "unary_forward: x and y differ in length");
    let (code, c) = op.code();
    let kernel = Kernel { module: "elementwise", entry: pick::<T>("unary_fwd_f32", "unary_fwd_f64") };
    let args = [super::KernelArg::U32(code), scalar::<T>(c), x.arg(), y.arg(), count(x.len())];
    x.context().launch(kernel, launch::linear(x.len()), &args)
}

/// dx = g · f'(x), given y = f(x).                  x, y, g, dx (n)
pub fn unary_backward<T: Float>(
    op: Unary,
    x: &GpuBuffer<T>,
    y: &GpuBuffer<T>,
    g: &GpuBuffer<T>,
    dx: &mut GpuBuffer<T>,
) -> Result<(), GpuError> {
    let n = x.len();
    assert!(y.len() == n && g.len() == n && dx.len() == n, "unary_backward: buffers differ in length");
    let (code, c) = op.code();
    let kernel = Kernel { module: "elementwise", entry: pick::<T>("unary_bwd_f32", "unary_bwd_f64") };
    let args = [super::KernelArg::U32(code), scalar::<T>(c), x.arg(), y.arg(), g.arg(), dx.arg(), count(n)];
    x.context().launch(kernel, launch::linear(n), &args)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::elementwise::{unary_backward_reference, unary_forward_reference};
    use crate::gpu::testing::{close, down, on, out, to, tol, up, wide};
    use crate::gpu::{test_contexts, GpuContext};
    use std::sync::Arc;

    /// Every op forward and backward on `n` elements of T, against the CPU reference
    /// in f64 on the same inputs: f64 to 1e-12; f32 within rounding of the math
    /// functions (2e-6; the backward also inherits the f32 forward's y).
    pub(crate) fn check<T: Float>(ctx: &Arc<GpuContext>, n: usize) {
        let x: Vec<T> = to(&(0..n).map(|i| 0.05 + (i as f64 * 0.37).sin().abs() * 3.0).collect::<Vec<_>>());
        let g: Vec<T> = to(&(0..n).map(|i| (i as f64 * 0.11).cos()).collect::<Vec<_>>());
        let (xb, gb) = (up(ctx, &x), up(ctx, &g));
        for op in Unary::all(1.7) {
            let (mut y, mut dx) = (vec![0.0; n], vec![0.0; n]);
            unary_forward_reference(op, &wide(&x), &mut y);
            unary_backward_reference(op, &wide(&x), &y, &wide(&g), &mut dx);
            let (mut yb, mut dxb) = (out::<T>(ctx, n), out::<T>(ctx, n));
            unary_forward(op, &xb, &mut yb).unwrap();
            close(&down(&yb), &y, tol::<T>(2e-6, 1e-12), &format!("{op:?} forward {}", on::<T>(ctx)));
            unary_backward(op, &xb, &yb, &gb, &mut dxb).unwrap();
            close(&down(&dxb), &dx, tol::<T>(2e-6, 1e-12), &format!("{op:?} backward {}", on::<T>(ctx)));
        }
    }

    /// Every op, f32 and f64, on an odd length, against the CPU reference.
    #[test]
    fn matches_cpu_reference() {
        for ctx in test_contexts() {
            check::<f64>(&ctx, 1003);
            check::<f32>(&ctx, 1003);
        }
    }
}
