//! Gathers and scatter-adds on the GPU (`kernels/cuda/index.cu`); the CPU twin is
//! `kernels/src/index.rs`. Indices are `&GpuBuffer<i64>` (`&[usize]` on the CPU),
//! checked by the caller (an index out of range reads 0 and adds nothing).
//!
//! The backwards are deterministic without atomics: in `index_add` one thread block
//! owns each destination row and finds its indices in order (one warp scans 32 at a
//! time into a shared list); in `scatter_add` one thread owns each destination element. Both add in the CPU's order, so their
//! results are the CPU's bits.

use super::{count, launch, pick, GpuBuffer, GpuError, Kernel};
use crate::Float;

pub use super::reduce::max_dim;

pub const ENTRIES: &[&str] = &[
    "index_select_f32",
    "index_select_f64",
    "index_add_f32",
    "index_add_f64",
    "gather_f32",
    "gather_f64",
    "scatter_add_f32",
    "scatter_add_f64",
];

fn kernel<T: Float>(f32_entry: &'static str, f64_entry: &'static str) -> Kernel {
    Kernel { module: "index", entry: pick::<T>(f32_entry, f64_entry) }
}

/// `out[o, j, :] = x[o, idx[j], :]`.         x [outer, len, inner], idx (m), out [outer, m, inner]
pub fn index_select<T: Float>(
    x: &GpuBuffer<T>,
    outer: usize,
    len: usize,
    inner: usize,
    idx: &GpuBuffer<i64>,
    out: &mut GpuBuffer<T>,
) -> Result<(), GpuError> {
    let m = idx.len();
    assert!(
        x.len() == outer * len * inner && out.len() == outer * m * inner,
        "index_select: bad buffer sizes"
    );
    if out.is_empty() {
        return Ok(());
    }
    let args = [x.arg(), idx.arg(), out.arg(), count(outer), count(len), count(inner), count(m)];
    out.context().launch(
        kernel::<T>("index_select_f32", "index_select_f64"),
        launch::linear(out.len()),
        &args,
    )
}

/// `dx[o, idx[j], :] += g[o, j, :]` (repeated indices accumulate, in j order).
///                                         g [outer, m, inner], idx (m), dx [outer, len, inner]
pub fn index_add<T: Float>(
    g: &GpuBuffer<T>,
    outer: usize,
    len: usize,
    inner: usize,
    idx: &GpuBuffer<i64>,
    dx: &mut GpuBuffer<T>,
) -> Result<(), GpuError> {
    let m = idx.len();
    assert!(g.len() == outer * m * inner && dx.len() == outer * len * inner, "index_add: bad buffer sizes");
    if dx.is_empty() || m == 0 {
        return Ok(());
    }
    let threads = (inner.next_multiple_of(32)).min(256) as u32;
    let args = [g.arg(), idx.arg(), dx.arg(), count(outer), count(len), count(inner), count(m)];
    dx.context().launch(
        kernel::<T>("index_add_f32", "index_add_f64"),
        launch::rows(outer * len, threads),
        &args,
    )
}

/// out[o, j, i] = x[o, idx[o, j, i], i] (`torch.gather` along the middle dim).
///                                   x [outer, len, inner], idx, out [outer, m, inner]
#[allow(clippy::too_many_arguments)]
pub fn gather<T: Float>(
    x: &GpuBuffer<T>,
    outer: usize,
    len: usize,
    inner: usize,
    idx: &GpuBuffer<i64>,
    m: usize,
    out: &mut GpuBuffer<T>,
) -> Result<(), GpuError> {
    assert!(
        x.len() == outer * len * inner && idx.len() == outer * m * inner && out.len() == idx.len(),
        "gather: bad buffer sizes"
    );
    if out.is_empty() {
        return Ok(());
    }
    let args = [x.arg(), idx.arg(), out.arg(), count(outer), count(len), count(inner), count(m)];
    out.context().launch(kernel::<T>("gather_f32", "gather_f64"), launch::linear(out.len()), &args)
}

/// dx[o, idx[o, j, i], i] += g[o, j, i] (the adjoint of [`gather`]).
#[allow(clippy::too_many_arguments)]
pub fn scatter_add<T: Float>(
    g: &GpuBuffer<T>,
    outer: usize,
    len: usize,
    inner: usize,
    idx: &GpuBuffer<i64>,
    m: usize,
    dx: &mut GpuBuffer<T>,
) -> Result<(), GpuError> {
    assert!(
        dx.len() == outer * len * inner && idx.len() == outer * m * inner && g.len() == idx.len(),
        "scatter_add: bad buffer sizes"
    );
    if dx.is_empty() || m == 0 {
        return Ok(());
    }
    let args = [g.arg(), idx.arg(), dx.arg(), count(outer), count(len), count(inner), count(m)];
    dx.context().launch(kernel::<T>("scatter_add_f32", "scatter_add_f64"), launch::linear(dx.len()), &args)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gpu::test_contexts;
    use crate::index as cpu;

    fn values(n: usize) -> Vec<f64> {
        (0..n).map(|i| (i as f64 * 0.37).sin() + 0.01 * i as f64).collect()
    }

    /// Repeated indices (accumulation in order), odd sizes, an embedding-like shape.
    #[test]
    fn select_add_gather_scatter_match_cpu_bit_for_bit() {
        for ctx in test_contexts() {
            for (outer, len, inner) in [(1usize, 11usize, 7usize), (3, 5, 1), (2, 9, 33)] {
                let x = values(outer * len * inner);
                let gx = GpuBuffer::from_host(&ctx, &x).unwrap();
                // every other index is row 1: more matches than one round of index_add's list
                let idx: Vec<usize> =
                    (0..601).map(|j| if j % 2 == 0 { 1 % len } else { (j * 7 + 3) % len }).collect();
                let gidx =
                    GpuBuffer::from_host(&ctx, &idx.iter().map(|&i| i as i64).collect::<Vec<_>>()).unwrap();
                let m = idx.len();
                let mut want = vec![0.0; outer * m * inner];
                cpu::index_select(&x, outer, len, inner, &idx, &mut want);
                let mut out = GpuBuffer::<f64>::uninit(&ctx, want.len()).unwrap();
                index_select(&gx, outer, len, inner, &gidx, &mut out).unwrap();
                assert_eq!(out.to_host().unwrap(), want, "index_select on {}", ctx.name());
                let g = values(want.len());
                let mut dx: Vec<f64> = x.iter().map(|v| v * 0.5).collect();
                let mut gdx = GpuBuffer::from_host(&ctx, &dx).unwrap();
                cpu::index_add(&g, outer, len, inner, &idx, &mut dx);
                index_add(&GpuBuffer::from_host(&ctx, &g).unwrap(), outer, len, inner, &gidx, &mut gdx)
                    .unwrap();
                assert_eq!(gdx.to_host().unwrap(), dx, "index_add ({outer},{len},{inner})");

                let m = 4;
                let idx: Vec<usize> = (0..outer * m * inner).map(|e| (e * 5 + e / 3) % len).collect();
                let gidx =
                    GpuBuffer::from_host(&ctx, &idx.iter().map(|&i| i as i64).collect::<Vec<_>>()).unwrap();
                let mut want = vec![0.0; idx.len()];
                cpu::gather(&x, outer, len, inner, &idx, m, &mut want);
                let mut out = GpuBuffer::<f64>::uninit(&ctx, want.len()).unwrap();
                gather(&gx, outer, len, inner, &gidx, m, &mut out).unwrap();
                assert_eq!(out.to_host().unwrap(), want, "gather");
                let g = values(idx.len());
                let mut dx = x.clone();
                let mut gdx = GpuBuffer::from_host(&ctx, &dx).unwrap();
                cpu::scatter_add(&g, outer, len, inner, &idx, m, &mut dx);
                scatter_add(&GpuBuffer::from_host(&ctx, &g).unwrap(), outer, len, inner, &gidx, m, &mut gdx)
                    .unwrap();
                assert_eq!(gdx.to_host().unwrap(), dx, "scatter_add");
            }
        }
    }

    /// Every launch's arguments fit its entry's `.param` list (f32 and f64, each kernel).
    #[test]
    fn launches_fit_the_ptx() {
        fn all<T: Float>() {
            let ctx = crate::gpu::param_check::context();
            let x = GpuBuffer::<T>::zeros(&ctx, 2 * 9 * 5).unwrap();
            let mut dx = GpuBuffer::<T>::zeros(&ctx, 2 * 9 * 5).unwrap();
            let idx = GpuBuffer::<i64>::zeros(&ctx, 3).unwrap();
            let mut out = GpuBuffer::<T>::zeros(&ctx, 2 * 3 * 5).unwrap();
            index_select(&x, 2, 9, 5, &idx, &mut out).unwrap();
            index_add(&out, 2, 9, 5, &idx, &mut dx).unwrap();
            let idx = GpuBuffer::<i64>::zeros(&ctx, 2 * 3 * 5).unwrap();
            gather(&x, 2, 9, 5, &idx, 3, &mut out).unwrap();
            scatter_add(&out, 2, 9, 5, &idx, 3, &mut dx).unwrap();
        }
        all::<f32>();
        all::<f64>();
    }
}
