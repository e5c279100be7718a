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
mod tests {
    use super::*;
    use crate::elementwise::{unary_backward_reference, unary_forward_reference};
    use crate::gpu::test_contexts;

    /// Every op, f32 and f64, on an odd length, against the CPU reference.
    #[test]
    fn matches_cpu_reference() {
        for ctx in test_contexts() {
            let n = 1003;
            let x: Vec<f64> = (0..n).map(|i| 0.05 + (i as f64 * 0.37).sin().abs() * 3.0).collect();
            let g: Vec<f64> = (0..n).map(|i| (i as f64 * 0.11).cos()).collect();
            for op in Unary::all(1.7) {
                let (mut y, mut dx) = (vec![0.0; n], vec![0.0; n]);
                unary_forward_reference(op, &x, &mut y);
                unary_backward_reference(op, &x, &y, &g, &mut dx);
                let xb = GpuBuffer::from_host(&ctx, &x).unwrap();
                let gb = GpuBuffer::from_host(&ctx, &g).unwrap();
                let mut yb = GpuBuffer::<f64>::uninit(&ctx, n).unwrap();
                let mut dxb = GpuBuffer::<f64>::uninit(&ctx, n).unwrap();
                unary_forward(op, &xb, &mut yb).unwrap();
                unary_backward(op, &xb, &yb, &gb, &mut dxb).unwrap();
                let (yg, dxg) = (yb.to_host().unwrap(), dxb.to_host().unwrap());
                for i in 0..n {
                    assert!(
                        (yg[i] - y[i]).abs() <= 1e-12 * (1.0 + y[i].abs()),
                        "{op:?} forward at {i} on {}",
                        ctx.name()
                    );
                    assert!((dxg[i] - dx[i]).abs() <= 1e-12 * (1.0 + dx[i].abs()), "{op:?} backward at {i}");
                }
                // f32: the same within f32 rounding of the math functions
                let x32: Vec<f32> = x.iter().map(|&v| v as f32).collect();
                let xb = GpuBuffer::from_host(&ctx, &x32).unwrap();
                let mut yb = GpuBuffer::<f32>::uninit(&ctx, n).unwrap();
                unary_forward(op, &xb, &mut yb).unwrap();
                for (i, v) in yb.to_host().unwrap().into_iter().enumerate() {
                    assert!(
                        (v as f64 - y[i]).abs() <= 2e-6 * (1.0 + y[i].abs()),
                        "{op:?} f32 forward at {i}"
                    );
                }
            }
        }
    }
}
