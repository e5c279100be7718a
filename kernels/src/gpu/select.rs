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
mod tests {
    use super::*;
    use crate::gpu::test_contexts;
    use crate::select as cpu;

    /// Runs every launcher on `ctx`; compares with the CPU when `compare` (the
    /// parameter-check context runs nothing).
    fn run<T: Float>(ctx: &std::sync::Arc<crate::gpu::GpuContext>, compare: bool) {
        let n = 1037;
        let f = |k: usize| -> Vec<T> { (0..n).map(|i| T::from_f64(((i * k) % 17) as f64 - 8.0)).collect() };
        let (x, mask, b, g) = (f(3), f(5), f(7), f(11)); // mask: some zeros, some negatives
        let up = |v: &[T]| GpuBuffer::from_host(ctx, v).unwrap();
        let (gx, gm, gb, gg) = (up(&x), up(&mask), up(&b), up(&g));
        let (mut want, mut want2) = (vec![T::ZERO; n], vec![T::ZERO; n]);
        let (mut out, mut out2) =
            (GpuBuffer::<T>::uninit(ctx, n).unwrap(), GpuBuffer::<T>::uninit(ctx, n).unwrap());
        let value = T::from_f64(-1e9);
        cpu::masked_fill(&x, &mask, value, &mut want);
        masked_fill(&gx, &gm, value, &mut out).unwrap();
        let check = |got: Vec<T>, want: &[T], what: &str| {
            assert!(!compare || got == want, "{what} on {}", ctx.name())
        };
        check(out.to_host().unwrap(), &want, "masked_fill");
        cpu::masked_fill_backward(&g, &mask, &mut want);
        masked_fill_backward(&gg, &gm, &mut out).unwrap();
        check(out.to_host().unwrap(), &want, "masked_fill_backward");
        cpu::where_(&mask, &x, &b, &mut want);
        where_(&gm, &gx, &gb, &mut out).unwrap();
        check(out.to_host().unwrap(), &want, "where");
        cpu::where_backward(&g, &mask, &mut want, &mut want2);
        where_backward(&gg, &gm, &mut out, &mut out2).unwrap();
        check(out.to_host().unwrap(), &want, "where_backward da");
        check(out2.to_host().unwrap(), &want2, "where_backward db");
    }

    #[test]
    fn matches_cpu_exactly() {
        for ctx in test_contexts() {
            run::<f32>(&ctx, true);
            run::<f64>(&ctx, true);
        }
    }

    /// Every launch's arguments fit its entry's `.param` list (f32 and f64, each kernel).
    #[test]
    fn launches_fit_the_ptx() {
        let ctx = crate::gpu::param_check::context();
        run::<f32>(&ctx, false);
        run::<f64>(&ctx, false);
    }
}
