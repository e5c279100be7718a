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
#[allow(clippy::too_many_arguments)]
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
mod tests {
    use super::*;
    use crate::gpu::test_contexts;
    use crate::softmax::{softmax_backward_reference, softmax_forward_reference};

    /// Row and column launches fit their PTX `.param` lists, f32 and f64 (no GPU needed).
    #[test]
    fn launches_fit_their_entries() {
        fn run<T: Float>() {
            let ctx = crate::gpu::param_check::context();
            let (x, g) = (GpuBuffer::<T>::zeros(&ctx, 12).unwrap(), GpuBuffer::<T>::zeros(&ctx, 12).unwrap());
            let (mut y, mut dx) =
                (GpuBuffer::<T>::zeros(&ctx, 12).unwrap(), GpuBuffer::<T>::zeros(&ctx, 12).unwrap());
            for (outer, n, inner) in [(3, 4, 1), (2, 3, 2)] {
                softmax_forward(&x, outer, n, inner, &mut y, true).unwrap();
                softmax_backward(&y, &g, outer, n, inner, &mut dx, false).unwrap();
            }
        }
        run::<f32>();
        run::<f64>();
    }

    fn close(got: &[f64], want: &[f64], tol: f64, what: &str) {
        for (i, (g, w)) in got.iter().zip(want).enumerate() {
            assert!((g - w).abs() <= tol * (1.0 + w.abs()), "{what} at {i}: {g} vs {w}");
        }
    }

    /// Rows (inner 1, short and longer than a block) and strided columns, softmax and
    /// log-softmax, forward and backward (which adds into dx), f64 and f32.
    #[test]
    fn matches_cpu_reference() {
        for ctx in test_contexts() {
            for &(outer, n, inner) in &[(3, 1, 1), (5, 7, 1), (2, 1500, 1), (3, 9, 5), (1, 33, 2)] {
                let len = outer * n * inner;
                let x: Vec<f64> = (0..len).map(|i| (i as f64 * 0.913).sin() * 4.0).collect();
                let g: Vec<f64> = (0..len).map(|i| (i as f64 * 0.377).cos()).collect();
                let dx0: Vec<f64> = (0..len).map(|i| (i % 3) as f64 * 0.5).collect();
                for log in [false, true] {
                    let what = format!("[{outer}, {n}, {inner}] log {log} on {}", ctx.name());
                    let mut y = vec![0.0; len];
                    softmax_forward_reference(&x, outer, n, inner, &mut y, log);
                    let mut dx = dx0.clone();
                    softmax_backward_reference(&y, &g, outer, n, inner, &mut dx, log);
                    let xb = GpuBuffer::from_host(&ctx, &x).unwrap();
                    let mut yb = GpuBuffer::<f64>::uninit(&ctx, len).unwrap();
                    softmax_forward(&xb, outer, n, inner, &mut yb, log).unwrap();
                    close(&yb.to_host().unwrap(), &y, 1e-12, &format!("forward {what}"));
                    let gb = GpuBuffer::from_host(&ctx, &g).unwrap();
                    let mut dxb = GpuBuffer::from_host(&ctx, &dx0).unwrap();
                    softmax_backward(&yb, &gb, outer, n, inner, &mut dxb, log).unwrap();
                    close(&dxb.to_host().unwrap(), &dx, 1e-12, &format!("backward {what}"));
                    // f32 within a few ulps of the f64 result (exp/log to ~2 ulp, sums of n)
                    let f = |v: &[f64]| v.iter().map(|&a| a as f32).collect::<Vec<f32>>();
                    let xb = GpuBuffer::from_host(&ctx, &f(&x)).unwrap();
                    let mut yb = GpuBuffer::<f32>::uninit(&ctx, len).unwrap();
                    softmax_forward(&xb, outer, n, inner, &mut yb, log).unwrap();
                    let y32: Vec<f64> = yb.to_host().unwrap().iter().map(|&v| v as f64).collect();
                    close(&y32, &y, 1e-5, &format!("f32 forward {what}"));
                    let gb = GpuBuffer::from_host(&ctx, &f(&g)).unwrap();
                    let mut dxb = GpuBuffer::from_host(&ctx, &f(&dx0)).unwrap();
                    softmax_backward(&yb, &gb, outer, n, inner, &mut dxb, log).unwrap();
                    let dx32: Vec<f64> = dxb.to_host().unwrap().iter().map(|&v| v as f64).collect();
                    close(&dx32, &dx, 1e-5, &format!("f32 backward {what}"));
                }
            }
        }
    }
}
