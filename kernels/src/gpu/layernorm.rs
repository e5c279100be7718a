//! Layer normalisation on the GPU (`kernels/cuda/layernorm.cu`); the CPU twin is
//! `kernels/src/layernorm.rs`, with the same argument structs (device buffers for slices,
//! `None` passed to the kernels as a null pointer).
//!
//! The row kernels run one block per row. dw and db are reduced over rows without
//! atomics: per chunk of rows a partial sum per column, then the partials added in
//! chunk order, so every run gives the same bits.

use super::{count, launch, pick, scalar, GpuBuffer, GpuError, Kernel, KernelArg};
use crate::layernorm::{check, Len};
pub use crate::layernorm::{LayerNormGrads, LayerNormIn, LayerNormStats};
use crate::Float;

pub const ENTRIES: &[&str] = &[
    "layernorm_fwd_f32",
    "layernorm_fwd_f64",
    "layernorm_bwd_dx_f32",
    "layernorm_bwd_dx_f64",
    "layernorm_bwd_params_f32",
    "layernorm_bwd_params_f64",
    "layernorm_sum_parts_f32",
    "layernorm_sum_parts_f64",
];

/// Rows per chunk of the dw/db reduction: enough chunks to fill the GPU when n is
/// small, at most 256 of them.
fn row_chunks(rows: usize, n: usize) -> (usize, usize) {
    let wanted = (1usize << 16).div_ceil(n.max(1)).clamp(1, 256);
    let per = rows.div_ceil(wanted.min(rows).max(1)).max(1);
    (rows.div_ceil(per), per)
}

fn kernel<T: Float>(f32_entry: &'static str, f64_entry: &'static str) -> Kernel {
    Kernel { module: "layernorm", entry: pick::<T>(f32_entry, f64_entry) }
}

fn opt<T: Float>(b: Option<&GpuBuffer<T>>) -> KernelArg {
    KernelArg::Ptr(b.map_or(0, |b| b.ptr()))
}

impl<T: Float> Len for GpuBuffer<T> {
    fn len(&self) -> usize {
        GpuBuffer::len(self)
    }
}

/// y = (x − μ)·rstd·w + b per row of `[rows, n]`; writes μ and rstd per row.
pub fn layer_norm_forward<T: Float>(
    ln: LayerNormIn<'_, GpuBuffer<T>>,
    eps: T,
    y: &mut GpuBuffer<T>,
    stats: LayerNormStats<&mut GpuBuffer<T>>,
) -> Result<(), GpuError> {
    check(ln, y.len(), (stats.mean.len(), stats.rstd.len()), [None; 3]);
    let (LayerNormIn { x, rows, n, w, b }, LayerNormStats { mean, rstd }) = (ln, stats);
    if rows == 0 {
        return Ok(());
    }
    let k = kernel::<T>("layernorm_fwd_f32", "layernorm_fwd_f64");
    let args = [
        x.arg(),
        opt(w),
        opt(b),
        scalar::<T>(eps.to_f64()),
        y.arg(),
        mean.arg(),
        rstd.arg(),
        count(rows),
        count(n),
    ];
    x.context().launch(k, launch::rows(rows, launch::row_threads(n)), &args)
}

/// The layer-norm gradients into `grads` (each when given: dx overwritten, dw and db
/// added into), `g` being dL/dy; math in the CPU twin's doc.
pub fn layer_norm_backward<T: Float>(
    ln: LayerNormIn<'_, GpuBuffer<T>>,
    stats: LayerNormStats<&GpuBuffer<T>>,
    g: &GpuBuffer<T>,
    grads: LayerNormGrads<'_, GpuBuffer<T>>,
) -> Result<(), GpuError> {
    check(ln, g.len(), (stats.mean.len(), stats.rstd.len()), grads.lens());
    let (LayerNormIn { x, rows, n, w, .. }, LayerNormStats { mean, rstd }) = (ln, stats);
    let LayerNormGrads { dx, dw, db } = grads;
    if rows == 0 || n == 0 {
        return Ok(());
    }
    let ctx = x.context();
    if let Some(dx) = dx {
        let k = kernel::<T>("layernorm_bwd_dx_f32", "layernorm_bwd_dx_f64");
        let args = [x.arg(), g.arg(), opt(w), mean.arg(), rstd.arg(), dx.arg(), count(rows), count(n)];
        ctx.launch(k, launch::rows(rows, launch::row_threads(n)), &args)?;
    }
    if dw.is_none() && db.is_none() {
        return Ok(());
    }
    let (chunks, per) = row_chunks(rows, n);
    let partial = GpuBuffer::<T>::uninit(ctx, chunks * 2 * n)?;
    let k = kernel::<T>("layernorm_bwd_params_f32", "layernorm_bwd_params_f64");
    let args = [
        x.arg(),
        g.arg(),
        mean.arg(),
        rstd.arg(),
        partial.arg(),
        count(rows),
        count(n),
        count(chunks),
        count(per),
    ];
    ctx.launch(k, launch::linear(chunks * n), &args)?;
    let k = kernel::<T>("layernorm_sum_parts_f32", "layernorm_sum_parts_f64");
    let out = |d: &Option<&mut GpuBuffer<T>>| KernelArg::Ptr(d.as_ref().map_or(0, |d| d.ptr()));
    let args = [partial.arg(), out(&dw), out(&db), count(n), count(chunks)];
    ctx.launch(k, launch::linear(n), &args)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::gpu::testing::{close, down, on, out, to, tol, up, wide};
    use crate::gpu::{test_contexts, GpuContext};
    use crate::layernorm::{layer_norm_backward_reference, layer_norm_forward_reference};
    use std::sync::Arc;

    /// Forward and backward (adding into dx, dw, db) of `[rows, n]` in T, with and
    /// without w and b, against the CPU reference in f64 on the same inputs: f64 to
    /// 1e-12; f32 within rounding (2e-5 forward; 1e-4 backward, whose sums over rows
    /// and columns round each term). A second backward for dw alone gives the same bits.
    pub(crate) fn check<T: Float>(ctx: &Arc<GpuContext>, rows: usize, n: usize) {
        let x: Vec<T> = to(&(0..rows * n).map(|i| (i as f64 * 0.61).sin() * 3.0 + 0.5).collect::<Vec<_>>());
        let g: Vec<T> = to(&(0..rows * n).map(|i| (i as f64 * 0.29).cos()).collect::<Vec<_>>());
        let w: Vec<T> = to(&(0..n).map(|j| 1.0 + 0.1 * j as f64).collect::<Vec<_>>());
        let b: Vec<T> = to(&(0..n).map(|j| 0.05 * j as f64).collect::<Vec<_>>());
        let (t_fwd, t_bwd) = (tol::<T>(2e-5, 1e-12), tol::<T>(1e-4, 1e-12));
        let (xb, gb, wb, bb) = (up(ctx, &x), up(ctx, &g), up(ctx, &w), up(ctx, &b));
        for affine in [false, true] {
            let what = format!("[{rows}, {n}] affine {affine}, {}", on::<T>(ctx));
            let (ww, bw) = (wide(&w), wide(&b));
            let (wr, br) = if affine { (Some(&ww[..]), Some(&bw[..])) } else { (None, None) };
            let (mut y, mut mu, mut rs) = (vec![0.0; rows * n], vec![0.0; rows], vec![0.0; rows]);
            let (xw, gw) = (wide(&x), wide(&g));
            let ln = LayerNormIn { x: &xw[..], rows, n, w: wr, b: br };
            layer_norm_forward_reference(ln, 1e-5, &mut y, LayerNormStats { mean: &mut mu, rstd: &mut rs });
            let (mut dx, mut dw, mut db) = (vec![0.25; rows * n], vec![0.5; n], vec![-0.5; n]);
            let grads =
                LayerNormGrads { dx: Some(&mut dx[..]), dw: Some(&mut dw[..]), db: Some(&mut db[..]) };
            layer_norm_backward_reference(ln, LayerNormStats { mean: &mu[..], rstd: &rs[..] }, &gw, grads);
            let (wo, bo) = if affine { (Some(&wb), Some(&bb)) } else { (None, None) };
            let (mut yb, mut mb, mut rb) =
                (out::<T>(ctx, rows * n), out::<T>(ctx, rows), out::<T>(ctx, rows));
            let eps = T::from_f64(1e-5);
            let lnb = LayerNormIn { x: &xb, rows, n, w: wo, b: bo };
            layer_norm_forward(lnb, eps, &mut yb, LayerNormStats { mean: &mut mb, rstd: &mut rb }).unwrap();
            close(&down(&yb), &y, t_fwd, &format!("y {what}"));
            close(&down(&mb), &mu, t_fwd, &format!("mean {what}"));
            close(&down(&rb), &rs, t_fwd, &format!("rstd {what}"));
            let fill = |len: usize, v: f64| up(ctx, &vec![T::from_f64(v); len]);
            let (mut dxb, mut dwb, mut dbb) = (fill(rows * n, 0.25), fill(n, 0.5), fill(n, -0.5));
            let grads = LayerNormGrads { dx: Some(&mut dxb), dw: Some(&mut dwb), db: Some(&mut dbb) };
            let stats = LayerNormStats { mean: &mb, rstd: &rb };
            layer_norm_backward(lnb, stats, &gb, grads).unwrap();
            close(&down(&dxb), &dx, t_bwd, &format!("dx {what}"));
            close(&down(&dwb), &dw, t_bwd, &format!("dw {what}"));
            close(&down(&dbb), &db, t_bwd, &format!("db {what}"));
            // only dw: the same bits as the run above
            let mut dw2 = fill(n, 0.5);
            let only_dw = LayerNormGrads { dx: None, dw: Some(&mut dw2), db: None };
            layer_norm_backward(lnb, LayerNormStats { mean: &mb, rstd: &rb }, &gb, only_dw).unwrap();
            assert_eq!(dw2.to_host().unwrap(), dwb.to_host().unwrap(), "dw not deterministic: {what}");
        }
    }

    /// Odd sizes including rows longer than a block and more rows than one chunk.
    #[test]
    fn matches_cpu_reference() {
        for ctx in test_contexts() {
            for (rows, n) in [(1, 1), (3, 7), (300, 5), (4, 1100)] {
                check::<f64>(&ctx, rows, n);
                check::<f32>(&ctx, rows, n);
            }
        }
    }
}
