//! Losses on the GPU (`kernels/cuda/loss.cu`); the CPU twin is `kernels/src/loss.rs`.
//! Every loss lands in a one-element device buffer (the mean), so a training step
//! never waits for the host; gradients that depend on it take device scalars too.
//! Sums are deterministic: f64 partials per block over a grid fixed by the size,
//! added by one block in a fixed tree.

use super::{count, launch, pick, scalar, GpuBuffer, GpuError, Kernel, KernelArg, LaunchDims};
use crate::Float;

pub const ENTRIES: &[&str] = &[
    "ce_rows_f32",
    "ce_rows_f64",
    "ce_mean_f32",
    "ce_mean_f64",
    "ce_bwd_f32",
    "ce_bwd_f64",
    "bce_partial_f32",
    "bce_partial_f64",
    "mse_partial_f32",
    "mse_partial_f64",
    "mean_finish_f32",
    "mean_finish_f64",
    "bce_bwd_f32",
    "bce_bwd_f64",
    "mse_bwd_f32",
    "mse_bwd_f64",
];

fn kernel<T: Float>(f32_entry: &'static str, f64_entry: &'static str) -> Kernel {
    Kernel { module: "loss", entry: pick::<T>(f32_entry, f64_entry) }
}

/// One block of 256 threads: the final sums.
const ONE_BLOCK: LaunchDims = LaunchDims { grid: [1, 1, 1], block: [256, 1, 1], shared_bytes: 0 };

fn ignore_arg(ignore_index: Option<usize>) -> KernelArg {
    KernelArg::I64(ignore_index.map_or(-1, |i| i as i64))
}

/// Cross-entropy of `logits [n, c]` against class `targets` (i64), rows whose target is
/// `ignore_index` skipped: `loss[0] = L = (1/N) Σᵢ (lse(xᵢ) − xᵢ[tᵢ])` and `count[0] = N`,
/// the rows used (the CPU returns (Σᵢ lᵢ, N); L is NaN when N = 0, as there).
pub fn cross_entropy_forward<T: Float>(
    logits: &GpuBuffer<T>,
    n: usize,
    c: usize,
    targets: &GpuBuffer<i64>,
    ignore_index: Option<usize>,
    loss: &mut GpuBuffer<T>,
    count_out: &mut GpuBuffer<T>,
) -> Result<(), GpuError> {
    assert!(logits.len() == n * c && targets.len() == n, "cross_entropy_forward: bad buffer sizes");
    assert!(
        loss.len() == 1 && count_out.len() == 1,
        "cross_entropy_forward: loss and count hold one element"
    );
    let ctx = logits.context();
    let rowloss = GpuBuffer::<T>::uninit(ctx, n)?;
    let ignore = ignore_arg(ignore_index);
    let args = [logits.arg(), targets.arg(), ignore, rowloss.arg(), count(n), count(c)];
    ctx.launch(kernel::<T>("ce_rows_f32", "ce_rows_f64"), launch::rows(n, launch::row_threads(c)), &args)?;
    let args = [rowloss.arg(), targets.arg(), ignore, loss.arg(), count_out.arg(), count(n)];
    ctx.launch(kernel::<T>("ce_mean_f32", "ce_mean_f64"), ONE_BLOCK, &args)
}

/// `dlogits += scale[0]·(softmax(logits_i) − onehot(t_i))` for every row not ignored;
/// `scale` is a device scalar (the upstream gradient times 1/N: `binary(Div, g, count)`).
pub fn cross_entropy_backward<T: Float>(
    logits: &GpuBuffer<T>,
    n: usize,
    c: usize,
    targets: &GpuBuffer<i64>,
    ignore_index: Option<usize>,
    scale: &GpuBuffer<T>,
    dlogits: &mut GpuBuffer<T>,
) -> Result<(), GpuError> {
    assert!(
        logits.len() == n * c && targets.len() == n && dlogits.len() == logits.len() && scale.len() == 1,
        "cross_entropy_backward: bad buffer sizes"
    );
    let args = [
        logits.arg(),
        targets.arg(),
        ignore_arg(ignore_index),
        scale.arg(),
        dlogits.arg(),
        count(n),
        count(c),
    ];
    let dims = launch::rows(n, launch::row_threads(c));
    dlogits.context().launch(kernel::<T>("ce_bwd_f32", "ce_bwd_f64"), dims, &args)
}

/// `loss[0] = (1/N) Σᵢ f(aᵢ, bᵢ)` by the partial-sum kernel `partial`.
fn mean_of<T: Float>(
    partial: Kernel,
    a: &GpuBuffer<T>,
    b: &GpuBuffer<T>,
    loss: &mut GpuBuffer<T>,
) -> Result<(), GpuError> {
    let n = a.len();
    assert!(b.len() == n && loss.len() == 1, "{}: bad buffer sizes", partial.entry);
    let ctx = a.context();
    let dims = launch::linear(n);
    let parts = GpuBuffer::<f64>::uninit(ctx, dims.grid[0] as usize)?;
    ctx.launch(partial, dims, &[a.arg(), b.arg(), parts.arg(), count(n)])?;
    let args = [parts.arg(), count(parts.len()), scalar::<T>(n as f64), loss.arg()];
    ctx.launch(kernel::<T>("mean_finish_f32", "mean_finish_f64"), ONE_BLOCK, &args)
}

/// `loss[0] = (1/N) Σᵢ max(xᵢ, 0) − xᵢtᵢ + ln(1 + e^{−|xᵢ|})`.       x, t (N)
pub fn bce_with_logits_forward<T: Float>(
    x: &GpuBuffer<T>,
    t: &GpuBuffer<T>,
    loss: &mut GpuBuffer<T>,
) -> Result<(), GpuError> {
    mean_of(kernel::<T>("bce_partial_f32", "bce_partial_f64"), x, t, loss)
}

/// `s = g[0]/N`; dx = s·(σ(x) − t), dt = (−s)·x (written).   x, t, dx, dt (N), g (1)
pub fn bce_with_logits_backward<T: Float>(
    x: &GpuBuffer<T>,
    t: &GpuBuffer<T>,
    g: &GpuBuffer<T>,
    dx: &mut GpuBuffer<T>,
    dt: &mut GpuBuffer<T>,
) -> Result<(), GpuError> {
    elementwise_backward(kernel::<T>("bce_bwd_f32", "bce_bwd_f64"), x, t, g, dx, dt)
}

/// `loss[0] = (1/N) Σᵢ (yᵢ − tᵢ)²`.                            y, t (N)
pub fn mse_forward<T: Float>(
    y: &GpuBuffer<T>,
    t: &GpuBuffer<T>,
    loss: &mut GpuBuffer<T>,
) -> Result<(), GpuError> {
    mean_of(kernel::<T>("mse_partial_f32", "mse_partial_f64"), y, t, loss)
}

/// `dy = (2g[0]/N)(y − t)`, `dt = −dy` (written).               y, t, dy, dt (N), g (1)
pub fn mse_backward<T: Float>(
    y: &GpuBuffer<T>,
    t: &GpuBuffer<T>,
    g: &GpuBuffer<T>,
    dy: &mut GpuBuffer<T>,
    dt: &mut GpuBuffer<T>,
) -> Result<(), GpuError> {
    elementwise_backward(kernel::<T>("mse_bwd_f32", "mse_bwd_f64"), y, t, g, dy, dt)
}

fn elementwise_backward<T: Float>(
    k: Kernel,
    x: &GpuBuffer<T>,
    t: &GpuBuffer<T>,
    g: &GpuBuffer<T>,
    dx: &mut GpuBuffer<T>,
    dt: &mut GpuBuffer<T>,
) -> Result<(), GpuError> {
    let n = x.len();
    assert!(t.len() == n && dx.len() == n && dt.len() == n && g.len() == 1, "{}: bad buffer sizes", k.entry);
    let args = [x.arg(), t.arg(), g.arg(), scalar::<T>(n as f64), dx.arg(), dt.arg(), count(n)];
    dx.context().launch(k, launch::linear(n), &args)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::gpu::testing::{close, down, on, out, tol, up, wide};
    use crate::gpu::{test_contexts, GpuContext};
    use crate::loss as cpu;
    use std::sync::Arc;

    /// Relative tolerance against the CPU in T: f32's CPU references sum thousands of
    /// terms sequentially in f32.
    fn rel<T: Float>() -> f64 {
        tol::<T>(1e-4, 1e-12)
    }

    fn one<T: Float>(ctx: &Arc<GpuContext>, v: f64) -> GpuBuffer<T> {
        up(ctx, &[T::from_f64(v)])
    }

    /// Cross-entropy of `[n, c]` logits, forward (loss and count) and backward, without
    /// and with an ignored class, against the CPU in T.
    pub(crate) fn check_cross_entropy<T: Float>(ctx: &Arc<GpuContext>, n: usize, c: usize) {
        let x: Vec<T> = (0..n * c).map(|i| T::from_f64(((i * 37) % 101) as f64 * 0.23 - 11.0)).collect();
        let gx = up(ctx, &x);
        for ignore in [None, Some(1)] {
            let what = format!("ce [{n}, {c}] ignore {ignore:?}, {}", on::<T>(ctx));
            let t: Vec<usize> = (0..n).map(|i| if i % 3 == 1 { 1 } else { (i * 7) % c }).collect();
            let gt = up(ctx, &t.iter().map(|&v| v as i64).collect::<Vec<_>>());
            let (sum, used) = cpu::cross_entropy_forward_reference(&x, n, c, &t, ignore);
            let (mut loss, mut cnt) = (one::<T>(ctx, 0.0), one::<T>(ctx, 0.0));
            cross_entropy_forward(&gx, n, c, &gt, ignore, &mut loss, &mut cnt).unwrap();
            close(
                &down(&loss),
                &[(sum / T::from_f64(used as f64)).to_f64()],
                rel::<T>(),
                &format!("loss {what}"),
            );
            close(&down(&cnt), &[used as f64], rel::<T>(), &format!("count {what}"));
            let start: Vec<T> = (0..n * c).map(|i| T::from_f64((i % 5) as f64 * 0.1)).collect();
            let mut want = start.clone();
            cpu::cross_entropy_backward_reference(&x, n, c, &t, ignore, T::from_f64(0.37), &mut want);
            let mut d = up(ctx, &start);
            cross_entropy_backward(&gx, n, c, &gt, ignore, &one(ctx, 0.37), &mut d).unwrap();
            close(&down(&d), &wide(&want), rel::<T>(), &format!("backward {what}"));
        }
    }

    /// BCE-with-logits and MSE on `n` elements, forward (the mean) and backward, against
    /// the CPU in T.
    pub(crate) fn check_pointwise<T: Float>(ctx: &Arc<GpuContext>, n: usize) {
        let x: Vec<T> = (0..n).map(|i| T::from_f64(((i * 13) % 41) as f64 * 0.5 - 10.0)).collect();
        let t: Vec<T> = (0..n).map(|i| T::from_f64((i % 7) as f64 / 6.0)).collect();
        let (gx, gt, g) = (up(ctx, &x), up(ctx, &t), one::<T>(ctx, 0.8));
        let mut loss = one::<T>(ctx, 0.0);
        let (mut dx, mut dt) = (out::<T>(ctx, n), out::<T>(ctx, n));
        let (mut wdx, mut wdt) = (vec![T::ZERO; n], vec![T::ZERO; n]);
        type Fwd<T> = fn(&GpuBuffer<T>, &GpuBuffer<T>, &mut GpuBuffer<T>) -> Result<(), GpuError>;
        type Bwd<T> = fn(
            &GpuBuffer<T>,
            &GpuBuffer<T>,
            &GpuBuffer<T>,
            &mut GpuBuffer<T>,
            &mut GpuBuffer<T>,
        ) -> Result<(), GpuError>;
        type CpuFwd<T> = fn(&[T], &[T]) -> T;
        type CpuBwd<T> = fn(&[T], &[T], T, &mut [T], &mut [T]);
        type Case<T> = (&'static str, Fwd<T>, Bwd<T>, CpuFwd<T>, CpuBwd<T>);
        let losses: [Case<T>; 2] = [
            (
                "bce",
                bce_with_logits_forward,
                bce_with_logits_backward,
                cpu::bce_with_logits_forward,
                cpu::bce_with_logits_backward,
            ),
            ("mse", mse_forward, mse_backward, cpu::mse_forward, cpu::mse_backward),
        ];
        for (name, fwd, bwd, cpu_fwd, cpu_bwd) in losses {
            let what = format!("{name} n {n}, {}", on::<T>(ctx));
            fwd(&gx, &gt, &mut loss).unwrap();
            close(&down(&loss), &[cpu_fwd(&x, &t).to_f64()], rel::<T>(), &what);
            bwd(&gx, &gt, &g, &mut dx, &mut dt).unwrap();
            cpu_bwd(&x, &t, T::from_f64(0.8), &mut wdx, &mut wdt);
            close(&down(&dx), &wide(&wdx), rel::<T>(), &format!("dx {what}"));
            close(&down(&dt), &wide(&wdt), rel::<T>(), &format!("dt {what}"));
        }
    }

    #[test]
    fn losses_match_cpu() {
        for ctx in test_contexts() {
            for (n, c) in [(5usize, 3usize), (7, 1000), (3, 4097)] {
                check_cross_entropy::<f64>(&ctx, n, c);
                check_cross_entropy::<f32>(&ctx, n, c);
            }
            check_pointwise::<f64>(&ctx, 3001);
            check_pointwise::<f32>(&ctx, 3001);
        }
    }
}
