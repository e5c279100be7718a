//! Selection by a mask on the GPU (`kernels/cuda/select.cu`); the CPU twin is
//! `kernels/src/select.rs`. Masks are `T` buffers of the output's length.

use super::{count, launch, pick, scalar, GpuBuffer, GpuError, Kernel};
use crate::Float;

pub const ENTRIES: &[&str] = &[
    "masked_fill_f32",
    "masked_fill_f64",
    "masked_fill_bwd_f32",
    "masked_fill_bwd_f64",
    "where_f32",
    "where_f64",
    "where_bwd_f32",
    "where_bwd_f64",
];

fn kernel<T: Float>(f32_entry: &'static str, f64_entry: &'static str) -> Kernel {
    Kernel { module: "select", entry: pick::<T>(f32_entry, f64_entry) }
}

/// out = value where mask ≠ 0, else x.                       x, mask, out (n)
pub fn masked_fill<T: Float>(
    x: &GpuBuffer<T>,
    mask: &GpuBuffer<T>,
    value: T,
    out: &mut GpuBuffer<T>,
) -> Result<(), GpuError> {
    let n = x.len();
    assert!(mask.len() == n && out.len() == n, "masked_fill: buffers differ in length");
    let args = [x.arg(), mask.arg(), scalar::<T>(value.to_f64()), out.arg(), count(n)];
    out.context().launch(kernel::<T>("masked_fill_f32", "masked_fill_f64"), launch::linear(n), &args)
}

/// dx = g where mask = 0, else 0 (written).                   g, mask, dx (n)
pub fn masked_fill_backward<T: Float>(
    g: &GpuBuffer<T>,
    mask: &GpuBuffer<T>,
    dx: &mut GpuBuffer<T>,
) -> Result<(), GpuError> {
    let n = g.len();
    assert!(mask.len() == n && dx.len() == n, "masked_fill_backward: buffers differ in length");
    let args = [g.arg(), mask.arg(), dx.arg(), count(n)];
    dx.context().launch(kernel::<T>("masked_fill_bwd_f32", "masked_fill_bwd_f64"), launch::linear(n), &args)
}

/// out = a where cond ≠ 0, else b.                           cond, a, b, out (n)
pub fn where_<T: Float>(
    cond: &GpuBuffer<T>,
    a: &GpuBuffer<T>,
    b: &GpuBuffer<T>,
    out: &mut GpuBuffer<T>,
) -> Result<(), GpuError> {
    let n = cond.len();
    assert!(a.len() == n && b.len() == n && out.len() == n, "where: buffers differ in length");
    let args = [cond.arg(), a.arg(), b.arg(), out.arg(), count(n)];
    out.context().launch(kernel::<T>("where_f32", "where_f64"), launch::linear(n), &args)
}

/// `da = g·[cond]`, `db = g·[¬cond]` (written).                  g, cond, da, db (n)
pub fn where_backward<T: Float>(
    g: &GpuBuffer<T>,
    cond: &GpuBuffer<T>,
    da: &mut GpuBuffer<T>,
    db: &mut GpuBuffer<T>,
) -> Result<(), GpuError> {
    let n = g.len();
    assert!(cond.len() == n && da.len() == n && db.len() == n, "where_backward: buffers differ in length");
    let args = [g.arg(), cond.arg(), da.arg(), db.arg(), count(n)];
    da.context().launch(kernel::<T>("where_bwd_f32", "where_bwd_f64"), launch::linear(n), &args)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::gpu::testing::{on, out, up};
    use crate::gpu::{test_contexts, GpuContext};
    use crate::select as cpu;
    use std::sync::Arc;

    /// masked_fill, where and their backwards on `n` elements: the CPU's bits.
    pub(crate) fn check<T: Float>(ctx: &Arc<GpuContext>, n: usize) {
        let f = |k: usize| -> Vec<T> { (0..n).map(|i| T::from_f64(((i * k) % 17) as f64 - 8.0)).collect() };
        let (x, mask, b, g) = (f(3), f(5), f(7), f(11)); // mask: some zeros, some negatives
        let (gx, gm, gb, gg) = (up(ctx, &x), up(ctx, &mask), up(ctx, &b), up(ctx, &g));
        let (mut want, mut want2) = (vec![T::ZERO; n], vec![T::ZERO; n]);
        let (mut got, mut got2) = (out::<T>(ctx, n), out::<T>(ctx, n));
        let check = |got: &GpuBuffer<T>, want: &[T], what: &str| {
            assert!(got.to_host().unwrap() == want, "{what}, n {n}, {}", on::<T>(ctx))
        };
        let value = T::from_f64(-1e9);
        cpu::masked_fill(&x, &mask, value, &mut want);
        masked_fill(&gx, &gm, value, &mut got).unwrap();
        check(&got, &want, "masked_fill");
        cpu::masked_fill_backward(&g, &mask, &mut want);
        masked_fill_backward(&gg, &gm, &mut got).unwrap();
        check(&got, &want, "masked_fill_backward");
        cpu::where_(&mask, &x, &b, &mut want);
        where_(&gm, &gx, &gb, &mut got).unwrap();
        check(&got, &want, "where");
        cpu::where_backward(&g, &mask, &mut want, &mut want2);
        where_backward(&gg, &gm, &mut got, &mut got2).unwrap();
        check(&got, &want, "where_backward da");
        check(&got2, &want2, "where_backward db");
    }

    #[test]
    fn matches_cpu_exactly() {
        for ctx in test_contexts() {
            check::<f32>(&ctx, 1037);
            check::<f64>(&ctx, 1037);
        }
    }
}
