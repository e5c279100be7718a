//! Fused optimizer updates on the GPU (`kernels/cuda/update.cu`); the CPU twin is
//! `kernels/src/update.rs`. Adam/AdamW and SGD take the CPU's per-step scalars, rounded
//! to T on the host the same way, and do the CPU's operations one rounding at a time:
//! the results are the CPU's bits (subnormals aside: the CPU flushes them).
//!
//! Gradient clipping stays on the device: [`grad_norm`] writes √(Σ g²) over many
//! buffers to a one-element f64 buffer (f64 partials per block, then one block adds
//! them in a fixed tree), and [`clip_scale`] rescales a buffer by it.

use super::{count, launch, pick, scalar, GpuBuffer, GpuError, Kernel, KernelArg, LaunchDims};
use crate::update::{AdamCoefs, AdamStep, SgdStep};
use crate::Float;

pub const ENTRIES: &[&str] = &[
    "adam_f32",
    "adam_f64",
    "sgd_f32",
    "sgd_f64",
    "sumsq_partial_f32",
    "sumsq_partial_f64",
    "norm_finish",
    "clip_scale_f32",
    "clip_scale_f64",
    "clip_value_f32",
    "clip_value_f64",
    "add_assign_f32",
    "add_assign_f64",
];

fn kernel<T: Float>(f32_entry: &'static str, f64_entry: &'static str) -> Kernel {
    Kernel { module: "update", entry: pick::<T>(f32_entry, f64_entry) }
}

/// A scalar already rounded to T (so the kernel gets the CPU's value exactly).
fn t_arg<T: Float>(v: T) -> KernelArg {
    scalar::<T>(v.to_f64())
}

/// One Adam/AdamW step on θ with gradient g and moments m, v (see `update::adam_update`).
///                                                           theta, g, m, v (n)
pub fn adam_update<T: Float>(
    theta: &mut GpuBuffer<T>,
    g: &GpuBuffer<T>,
    m: &mut GpuBuffer<T>,
    v: &mut GpuBuffer<T>,
    s: AdamStep,
) -> Result<(), GpuError> {
    let n = theta.len();
    assert!(g.len() == n && m.len() == n && v.len() == n, "adam_update: buffers differ in length");
    if n == 0 {
        return Ok(());
    }
    let c: AdamCoefs<T> = AdamCoefs::new(s).to::<T>();
    let args = [
        theta.arg(),
        g.arg(),
        m.arg(),
        v.arg(),
        t_arg(c.beta1),
        t_arg(c.beta2),
        t_arg(T::ONE - c.beta1),
        t_arg(T::ONE - c.beta2),
        t_arg(c.eps),
        t_arg(c.l2),
        t_arg(c.decay),
        t_arg(c.step_size),
        t_arg(c.bc2_sqrt),
        count(n),
    ];
    theta.context().launch(kernel::<T>("adam_f32", "adam_f64"), launch::linear(n), &args)
}

/// One SGD step (see `update::sgd_update`), with velocity `buf` when momentum > 0.
///                                                           theta, g, buf (n)
pub fn sgd_update<T: Float>(
    theta: &mut GpuBuffer<T>,
    g: &GpuBuffer<T>,
    buf: Option<&mut GpuBuffer<T>>,
    s: SgdStep,
) -> Result<(), GpuError> {
    let SgdStep { lr, momentum, dampening, weight_decay, nesterov, first_step } = s;
    let n = theta.len();
    assert!(
        g.len() == n && buf.as_ref().is_none_or(|b| b.len() == n),
        "sgd_update: buffers differ in length"
    );
    if n == 0 {
        return Ok(());
    }
    let (lr, mu, damp, wd) =
        (T::from_f64(lr), T::from_f64(momentum), T::from_f64(dampening), T::from_f64(weight_decay));
    let flag = |b: bool| KernelArg::U32(b as u32);
    let args = [
        theta.arg(),
        g.arg(),
        buf.as_ref().map_or(KernelArg::Ptr(0), |b| b.arg()),
        t_arg(lr),
        t_arg(mu),
        t_arg(T::ONE - damp),
        t_arg(wd),
        flag(buf.is_some()),
        flag(nesterov),
        flag(first_step),
        count(n),
    ];
    theta.context().launch(kernel::<T>("sgd_f32", "sgd_f64"), launch::linear(n), &args)
}

/// `total[0] = √(Σ_buffers Σᵢ gᵢ²)`, in f64 (see `update::grad_norm`).   total (1)
pub fn grad_norm<T: Float>(grads: &[&GpuBuffer<T>], total: &mut GpuBuffer<f64>) -> Result<(), GpuError> {
    assert_eq!(total.len(), 1, "grad_norm: total holds one element");
    let ctx = total.context().clone();
    let grids: Vec<LaunchDims> = grads.iter().map(|g| launch::linear(g.len())).collect();
    let parts = GpuBuffer::<f64>::uninit(&ctx, grids.iter().map(|d| d.grid[0] as usize).sum())?;
    let mut at = 0;
    for (g, dims) in grads.iter().zip(grids) {
        let args = [g.arg(), count(g.len()), parts.arg(), count(at)];
        ctx.launch(kernel::<T>("sumsq_partial_f32", "sumsq_partial_f64"), dims, &args)?;
        at += dims.grid[0] as usize;
    }
    let one_block = LaunchDims::linear(1, 256);
    ctx.launch(
        Kernel { module: "update", entry: "norm_finish" },
        one_block,
        &[parts.arg(), count(at), total.arg()],
    )
}

/// g ← coef·g with `coef = max_norm / (total[0] + 1e−6)`, only if coef < 1 (see
/// `update::clip_scale`).                                     g (n), total (1)
pub fn clip_scale<T: Float>(
    g: &mut GpuBuffer<T>,
    total: &GpuBuffer<f64>,
    max_norm: f64,
) -> Result<(), GpuError> {
    assert_eq!(total.len(), 1, "clip_scale: total holds one element");
    if g.is_empty() {
        return Ok(());
    }
    let args = [g.arg(), total.arg(), KernelArg::F64(max_norm), count(g.len())];
    g.context().launch(kernel::<T>("clip_scale_f32", "clip_scale_f64"), launch::linear(g.len()), &args)
}

/// g ← clamp(g, −clip, clip) (see `update::clip_by_value`).                  g (n)
pub fn clip_by_value<T: Float>(g: &mut GpuBuffer<T>, clip: f64) -> Result<(), GpuError> {
    if g.is_empty() {
        return Ok(());
    }
    let args = [g.arg(), scalar::<T>(clip), count(g.len())];
    g.context().launch(kernel::<T>("clip_value_f32", "clip_value_f64"), launch::linear(g.len()), &args)
}

/// y ← y + x (see `update::add_assign`).                                    x, y (n)
pub fn add_assign<T: Float>(y: &mut GpuBuffer<T>, x: &GpuBuffer<T>) -> Result<(), GpuError> {
    assert_eq!(x.len(), y.len(), "add_assign: buffers differ in length");
    if y.is_empty() {
        return Ok(());
    }
    let args = [y.arg(), x.arg(), count(y.len())];
    y.context().launch(kernel::<T>("add_assign_f32", "add_assign_f64"), launch::linear(y.len()), &args)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::gpu::testing::{on, up};
    use crate::gpu::{test_contexts, GpuContext};
    use crate::update as cpu;
    use std::sync::Arc;

    fn values<T: Float>(n: usize, k: f64) -> Vec<T> {
        (0..n).map(|i| T::from_f64(((i as f64 + k) * 0.37).sin() * (1.0 + k))).collect()
    }

    fn same<T: Float>(ctx: &GpuContext, got: &GpuBuffer<T>, want: &[T], what: &str) {
        assert!(got.to_host().unwrap() == want, "{what} differs from the CPU ({})", on::<T>(ctx));
    }

    /// Adam and AdamW steps on `n` elements: the CPU's bits.
    pub(crate) fn check_adam<T: Float>(ctx: &Arc<GpuContext>, n: usize) {
        for decoupled in [false, true] {
            let s = AdamStep {
                lr: 1e-2,
                beta1: 0.9,
                beta2: 0.999,
                eps: 1e-8,
                weight_decay: 0.1,
                decoupled,
                step: 3,
            };
            let (mut t, g, mut m) = (values::<T>(n, 0.1), values::<T>(n, 0.7), values::<T>(n, 0.3));
            let mut v: Vec<T> = values::<T>(n, 0.9).iter().map(|&x| x * x).collect();
            let (mut gt, gg, mut gm, mut gv) = (up(ctx, &t), up(ctx, &g), up(ctx, &m), up(ctx, &v));
            cpu::adam_update(&mut t, &g, &mut m, &mut v, s);
            adam_update(&mut gt, &gg, &mut gm, &mut gv, s).unwrap();
            same(ctx, &gt, &t, "adam θ");
            same(ctx, &gm, &m, "adam m");
            same(ctx, &gv, &v, "adam v");
        }
    }

    /// SGD without and with momentum (first step, later steps, Nesterov) on `n`
    /// elements: the CPU's bits.
    pub(crate) fn check_sgd<T: Float>(ctx: &Arc<GpuContext>, n: usize) {
        for (momentum, nesterov, first) in
            [(0.0, false, false), (0.9, false, true), (0.9, false, false), (0.9, true, false)]
        {
            let (mut t, g, mut b) = (values::<T>(n, 0.2), values::<T>(n, 0.5), values::<T>(n, 0.4));
            let (mut gt, gg, mut gb) = (up(ctx, &t), up(ctx, &g), up(ctx, &b));
            let has_buf = momentum > 0.0;
            let buf = has_buf.then_some(&mut b[..]);
            let s = SgdStep {
                lr: 0.05,
                momentum,
                dampening: 0.1,
                weight_decay: 0.01,
                nesterov,
                first_step: first,
            };
            cpu::sgd_update(&mut t, &g, buf, s);
            sgd_update(&mut gt, &gg, has_buf.then_some(&mut gb), s).unwrap();
            same(ctx, &gt, &t, "sgd θ");
            same(ctx, &gb, &b, "sgd buffer");
        }
    }

    /// The norm of buffers of lengths `lens` (to 1e-12), then the last one rescaled by
    /// it, with and without clipping (the CPU's bits).
    pub(crate) fn check_norm_and_clip<T: Float>(ctx: &Arc<GpuContext>, lens: &[usize]) {
        let bufs: Vec<Vec<T>> = lens.iter().enumerate().map(|(k, &n)| values(n, 1.0 + k as f64)).collect();
        let want = cpu::grad_norm(&bufs.iter().map(|b| b.as_slice()).collect::<Vec<_>>());
        let gbufs: Vec<GpuBuffer<T>> = bufs.iter().map(|b| up(ctx, b)).collect();
        let mut total = GpuBuffer::<f64>::zeros(ctx, 1).unwrap();
        grad_norm(&gbufs.iter().collect::<Vec<_>>(), &mut total).unwrap();
        let got = total.to_host().unwrap()[0];
        assert!((got - want).abs() <= 1e-12 * want, "grad_norm {got} vs {want} ({})", on::<T>(ctx));
        for max_norm in [1e9, 1.0] {
            let mut g = bufs.last().unwrap().clone();
            let mut gg = up(ctx, &g);
            cpu::clip_scale(&mut g, got, max_norm);
            clip_scale(&mut gg, &total, max_norm).unwrap();
            same(ctx, &gg, &g, "clip_scale");
        }
    }

    /// Clamping by value on `n` ≥ 8 elements (a NaN, both bounds hit), then
    /// accumulation: the CPU's bits.
    pub(crate) fn check_clip_value_and_add<T: Float>(ctx: &Arc<GpuContext>, n: usize) {
        let mut g = values::<T>(n, 3.0);
        g[7] = T::from_f64(f64::NAN);
        let mut gg = up(ctx, &g);
        cpu::clip_by_value(&mut g, 0.5);
        clip_by_value(&mut gg, 0.5).unwrap();
        let got = gg.to_host().unwrap();
        let bits = |v: &[T]| v.iter().map(|x| x.to_f64().to_bits()).collect::<Vec<_>>();
        assert!(bits(&got) == bits(&g), "clip_by_value differs from the CPU ({})", on::<T>(ctx));
        let (mut y, x) = (values::<T>(n, 0.6), values::<T>(n, 0.8));
        let (mut gy, gx) = (up(ctx, &y), up(ctx, &x));
        cpu::add_assign(&mut y, &x);
        add_assign(&mut gy, &gx).unwrap();
        same(ctx, &gy, &y, "add_assign");
    }

    #[test]
    fn updates_are_the_cpus_bits() {
        for ctx in test_contexts() {
            check_adam::<f32>(&ctx, 1031);
            check_adam::<f64>(&ctx, 1031);
            check_sgd::<f32>(&ctx, 1031);
            check_sgd::<f64>(&ctx, 1031);
            // three buffers, one empty, one long
            check_norm_and_clip::<f32>(&ctx, &[5, 0, 9001]);
            check_norm_and_clip::<f64>(&ctx, &[5, 0, 9001]);
            check_clip_value_and_add::<f32>(&ctx, 1031);
            check_clip_value_and_add::<f64>(&ctx, 1031);
        }
    }
}
