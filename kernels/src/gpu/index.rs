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
pub(crate) mod tests {
    use super::*;
    use crate::gpu::testing::{on, out, up};
    use crate::gpu::{test_contexts, GpuContext};
    use crate::index as cpu;
    use std::sync::Arc;

    fn values<T: Float>(n: usize) -> Vec<T> {
        (0..n).map(|i| T::from_f64((i as f64 * 0.37).sin() + 0.01 * i as f64)).collect()
    }

    fn indices(ctx: &Arc<GpuContext>, idx: &[usize]) -> GpuBuffer<i64> {
        up(ctx, &idx.iter().map(|&i| i as i64).collect::<Vec<_>>())
    }

    /// index_select and index_add with `m` indices into `[outer, len, inner]`, every
    /// other one row 1 (repeats accumulate in order): the CPU's bits.
    pub(crate) fn check_select_add<T: Float>(
        ctx: &Arc<GpuContext>,
        (outer, len, inner): (usize, usize, usize),
        m: usize,
    ) {
        let what = format!("({outer},{len},{inner}) m {m}, {}", on::<T>(ctx));
        let x: Vec<T> = values(outer * len * inner);
        let idx: Vec<usize> = (0..m).map(|j| if j % 2 == 0 { 1 % len } else { (j * 7 + 3) % len }).collect();
        let gidx = indices(ctx, &idx);
        let mut want = vec![T::ZERO; outer * m * inner];
        cpu::index_select(&x, outer, len, inner, &idx, &mut want);
        let mut got = out::<T>(ctx, want.len());
        index_select(&up(ctx, &x), outer, len, inner, &gidx, &mut got).unwrap();
        assert_eq!(got.to_host().unwrap(), want, "index_select {what}");
        let g: Vec<T> = values(want.len());
        let mut dx: Vec<T> = x.iter().map(|&v| v * T::from_f64(0.5)).collect();
        let mut gdx = up(ctx, &dx);
        cpu::index_add(&g, outer, len, inner, &idx, &mut dx);
        index_add(&up(ctx, &g), outer, len, inner, &gidx, &mut gdx).unwrap();
        assert_eq!(gdx.to_host().unwrap(), dx, "index_add {what}");
    }

    /// gather and scatter_add with `m` indices per (outer, inner) column: the CPU's bits.
    pub(crate) fn check_gather_scatter<T: Float>(
        ctx: &Arc<GpuContext>,
        (outer, len, inner): (usize, usize, usize),
        m: usize,
    ) {
        let what = format!("({outer},{len},{inner}) m {m}, {}", on::<T>(ctx));
        let x: Vec<T> = values(outer * len * inner);
        let idx: Vec<usize> = (0..outer * m * inner).map(|e| (e * 5 + e / 3) % len).collect();
        let gidx = indices(ctx, &idx);
        let mut want = vec![T::ZERO; idx.len()];
        cpu::gather(&x, outer, len, inner, &idx, m, &mut want);
        let mut got = out::<T>(ctx, want.len());
        gather(&up(ctx, &x), outer, len, inner, &gidx, m, &mut got).unwrap();
        assert_eq!(got.to_host().unwrap(), want, "gather {what}");
        let g: Vec<T> = values(idx.len());
        let mut dx = x.clone();
        let mut gdx = up(ctx, &dx);
        cpu::scatter_add(&g, outer, len, inner, &idx, m, &mut dx);
        scatter_add(&up(ctx, &g), outer, len, inner, &gidx, m, &mut gdx).unwrap();
        assert_eq!(gdx.to_host().unwrap(), dx, "scatter_add {what}");
    }

    /// Repeated indices (accumulation in order), odd sizes, an embedding-like shape;
    /// 601 indices, half of them row 1: more matches than one round of index_add's list.
    #[test]
    fn select_add_gather_scatter_match_cpu_bit_for_bit() {
        for ctx in test_contexts() {
            for shape in [(1usize, 11usize, 7usize), (3, 5, 1), (2, 9, 33)] {
                check_select_add::<f64>(&ctx, shape, 601);
                check_select_add::<f32>(&ctx, shape, 601);
                check_gather_scatter::<f64>(&ctx, shape, 4);
                check_gather_scatter::<f32>(&ctx, shape, 4);
            }
        }
    }
}
