//! Softmax and log-softmax on the GPU (`kernels/cuda/softmax.cu`); the CPU twin is
//! `kernels/src/softmax.rs`, with the same arguments (device buffers for slices).
//!
//! Rows along the last dim (`inner == 1`) run one block per row with shuffle
//! reductions; other layouts one thread per (outer, inner) column.

use super::{count, launch, pick, GpuBuffer, GpuError, Kernel, KernelArg};
use crate::Float;

pub const ENTRIES: &[&str] = &[
    "softmax_fwd_rows_f32",
    "softmax_fwd_rows_f64",
    "softmax_bwd_rows_f32",
    "softmax_bwd_rows_f64",
    "softmax_fwd_cols_f32",
    "softmax_fwd_cols_f64",
    "softmax_bwd_cols_f32",
    "softmax_bwd_cols_f64",
];

fn kernel<T: Float>(f32_entry: &'static str, f64_entry: &'static str) -> Kernel {
    Kernel { module: "softmax", entry: pick::<T>(f32_entry, f64_entry) }
}

/// y = softmax(x) (or log_softmax when `log`) along the middle dim of `[outer, n, inner]`.
pub fn softmax_forward<T: Float>(
    x: &GpuBuffer<T>,
    outer: usize,
    n: usize,
    inner: usize,
    y: &mut GpuBuffer<T>,
    log: bool,
) -> Result<(), GpuError> {
    assert!(x.len() == outer * n * inner && y.len() == x.len(), "softmax_forward: bad buffer sizes");
    if x.is_empty() {
        return Ok(());
    }
    let log = KernelArg::U32(log as u32);
    if inner == 1 {
        let k = kernel::<T>("softmax_fwd_rows_f32", "softmax_fwd_rows_f64");
        let args = [x.arg(), y.arg(), count(outer), count(n), log];
        x.context().launch(k, launch::rows(outer, launch::row_threads(n)), &args)
    } else {
        let k = kernel::<T>("softmax_fwd_cols_f32", "softmax_fwd_cols_f64");
        let args = [x.arg(), y.arg(), count(outer), count(n), count(inner), log];
        x.context().launch(k, launch::linear(outer * inner), &args)
    }
}

/// dx += the backward of softmax (or log_softmax) given its output `y` and output
/// gradient `g` (math in the CPU twin's doc).
pub fn softmax_backward<T: Float>(
    y: &GpuBuffer<T>,
    g: &GpuBuffer<T>,
    outer: usize,
    n: usize,
    inner: usize,
    dx: &mut GpuBuffer<T>,
    log: bool,
) -> Result<(), GpuError> {
    let len = outer * n * inner;
    assert!(y.len() == len && g.len() == len && dx.len() == len, "softmax_backward: bad buffer sizes");
    if len == 0 {
        return Ok(());
    }
    let log = KernelArg::U32(log as u32);
    if inner == 1 {
        let k = kernel::<T>("softmax_bwd_rows_f32", "softmax_bwd_rows_f64");
        let args = [y.arg(), g.arg(), dx.arg(), count(outer), count(n), log];
        y.context().launch(k, launch::rows(outer, launch::row_threads(n)), &args)
    } else {
        let k = kernel::<T>("softmax_bwd_cols_f32", "softmax_bwd_cols_f64");
        let args = [y.arg(), g.arg(), dx.arg(), count(outer), count(n), count(inner), log];
        y.context().launch(k, launch::linear(outer * inner), &args)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::gpu::testing::{close, down, on, out, to, tol, up, wide};
    use crate::gpu::{test_contexts, GpuContext};
    use crate::softmax::{softmax_backward_reference, softmax_forward_reference};
    use std::sync::Arc;

    /// Softmax and log-softmax of `[outer, n, inner]` in T, forward and backward (which
    /// adds into dx), against the CPU reference in f64 on the same inputs: f64 to 1e-12,
    /// f32 within a few ulps (exp/log to ~2 ulp, sums of n).
    pub(crate) fn check<T: Float>(ctx: &Arc<GpuContext>, (outer, n, inner): (usize, usize, usize)) {
        let len = outer * n * inner;
        let x: Vec<T> = to(&(0..len).map(|i| (i as f64 * 0.913).sin() * 4.0).collect::<Vec<_>>());
        let g: Vec<T> = to(&(0..len).map(|i| (i as f64 * 0.377).cos()).collect::<Vec<_>>());
        let dx0: Vec<T> = to(&(0..len).map(|i| (i % 3) as f64 * 0.5).collect::<Vec<_>>());
        let t = tol::<T>(1e-5, 1e-12);
        for log in [false, true] {
            let what = format!("[{outer}, {n}, {inner}] log {log}, {}", on::<T>(ctx));
            let mut y = vec![0.0; len];
            softmax_forward_reference(&wide(&x), outer, n, inner, &mut y, log);
            let mut dx = wide(&dx0);
            softmax_backward_reference(&y, &wide(&g), outer, n, inner, &mut dx, log);
            let mut yb = out::<T>(ctx, len);
            softmax_forward(&up(ctx, &x), outer, n, inner, &mut yb, log).unwrap();
            close(&down(&yb), &y, t, &format!("forward {what}"));
            let mut dxb = up(ctx, &dx0);
            softmax_backward(&yb, &up(ctx, &g), outer, n, inner, &mut dxb, log).unwrap();
            close(&down(&dxb), &dx, t, &format!("backward {what}"));
        }
    }

    /// Rows (inner 1, short and longer than a block) and strided columns, f64 and f32.
    #[test]
    fn matches_cpu_reference() {
        for ctx in test_contexts() {
            for shape in [(3, 1, 1), (5, 7, 1), (2, 1500, 1), (3, 9, 5), (1, 33, 2)] {
                check::<f64>(&ctx, shape);
                check::<f32>(&ctx, shape);
            }
        }
    }
}
