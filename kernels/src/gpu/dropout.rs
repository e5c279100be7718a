//! Inverted dropout on the GPU (`kernels/cuda/dropout.cu`); the CPU twin is
//! `kernels/src/dropout.rs`, whose module doc defines the ChaCha8 stream both draw
//! from: the masks are the CPU's, bit for bit, for any seed and size.

use super::{count, launch, pick, scalar, GpuBuffer, GpuError, Kernel, KernelArg};
use crate::Float;

pub const ENTRIES: &[&str] = &["dropout_fwd_f32", "dropout_fwd_f64", "dropout_bwd_f32", "dropout_bwd_f64"];

fn kernel<T: Float>(f32_entry: &'static str, f64_entry: &'static str) -> Kernel {
    Kernel { module: "dropout", entry: pick::<T>(f32_entry, f64_entry) }
}

/// 1/(1−p), 0 for p = 1 (as the CPU).
fn scale(p: f64) -> f64 {
    if p < 1.0 {
        1.0 / (1.0 - p)
    } else {
        0.0
    }
}

/// y = x·m/(1−p) and keep = m, m the mask of `seed`.           x, y, keep (n)
pub fn dropout_forward<T: Float>(
    x: &GpuBuffer<T>,
    p: f64,
    seed: u64,
    y: &mut GpuBuffer<T>,
    keep: &mut GpuBuffer<u8>,
) -> Result<(), GpuError> {
    let n = x.len();
    assert!(y.len() == n && keep.len() == n, "dropout_forward: bad buffer sizes");
    assert!((0.0..=1.0).contains(&p), "dropout: p = {p} is not a probability");
    if n == 0 {
        return Ok(());
    }
    let threshold = (p * 4_294_967_296.0) as u64;
    // the f64 scale rounded to T once, as T::from_f64 on the CPU
    let args = [
        KernelArg::U64(seed),
        KernelArg::U64(threshold),
        scalar::<T>(T::from_f64(scale(p)).to_f64()),
        x.arg(),
        y.arg(),
        keep.arg(),
        count(n),
    ];
    y.context().launch(
        kernel::<T>("dropout_fwd_f32", "dropout_fwd_f64"),
        launch::linear(n.div_ceil(16)),
        &args,
    )
}

/// dx = g·m/(1−p) (overwritten) with m the `keep` bytes of the forward.     g, keep, dx (n)
pub fn dropout_backward<T: Float>(
    g: &GpuBuffer<T>,
    keep: &GpuBuffer<u8>,
    p: f64,
    dx: &mut GpuBuffer<T>,
) -> Result<(), GpuError> {
    let n = g.len();
    assert!(keep.len() == n && dx.len() == n, "dropout_backward: bad buffer sizes");
    if n == 0 {
        return Ok(());
    }
    let args = [g.arg(), keep.arg(), scalar::<T>(T::from_f64(scale(p)).to_f64()), dx.arg(), count(n)];
    dx.context().launch(kernel::<T>("dropout_bwd_f32", "dropout_bwd_f64"), launch::linear(n), &args)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::dropout as cpu;
    use crate::gpu::testing::{on, out, up};
    use crate::gpu::{test_contexts, GpuContext};
    use std::sync::Arc;

    /// Forward and backward on `n` elements for p 0, 0.1, 0.5 and 1: masks and values
    /// are the CPU's bits.
    pub(crate) fn check<T: Float>(ctx: &Arc<GpuContext>, n: usize) {
        let x: Vec<T> = (0..n).map(|i| T::from_f64(1.0 + (i % 13) as f64 * 0.1)).collect();
        for (p, seed) in [(0.0, 3u64), (0.1, 42), (0.5, 7), (1.0, 9)] {
            let what = format!("n {n} p {p}, {}", on::<T>(ctx));
            let (mut y, mut keep) = (vec![T::ZERO; n], vec![0u8; n]);
            cpu::dropout_forward(&x, p, seed, &mut y, &mut keep);
            let gx = up(ctx, &x);
            let (mut gy, mut gkeep) = (out::<T>(ctx, n), out::<u8>(ctx, n));
            dropout_forward(&gx, p, seed, &mut gy, &mut gkeep).unwrap();
            assert_eq!(gkeep.to_host().unwrap(), keep, "mask {what}");
            assert_eq!(gy.to_host().unwrap(), y, "y {what}");
            let mut dx: Vec<T> = x.iter().map(|&v| v * T::from_f64(0.5)).collect();
            let mut gdx = up(ctx, &dx);
            cpu::dropout_backward(&x, &keep, p, &mut dx);
            dropout_backward(&gx, &gkeep, p, &mut gdx).unwrap();
            assert_eq!(gdx.to_host().unwrap(), dx, "dx {what}");
        }
    }

    #[test]
    fn masks_and_values_are_the_cpus_bits() {
        for ctx in test_contexts() {
            for n in [1usize, 15, 17, 1000, 5003] {
                check::<f32>(&ctx, n);
                check::<f64>(&ctx, n);
            }
        }
    }
}
