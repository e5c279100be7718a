//! Layer normalisation on the GPU (`kernels/cuda/layernorm.cu`); the CPU twin is
//! `kernels/src/layernorm.rs`, with the same arguments (device buffers for slices,
//! `None` passed to the kernels as a null pointer).
//!
//! The row kernels run one block per row. dw and db are reduced over rows without
//! atomics: per chunk of rows a partial sum per column, then the partials added in
//! chunk order, so every run gives the same bits.

use super::{count, launch, pick, scalar, GpuBuffer, GpuError, Kernel, KernelArg};
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

/// y = (x − μ)·rstd·w + b per row of `[rows, n]`; writes μ and rstd per row.
#[allow(clippy::too_many_arguments)]
pub fn layer_norm_forward<T: Float>(
    x: &GpuBuffer<T>,
    rows: usize,
    n: usize,
    w: Option<&GpuBuffer<T>>,
    b: Option<&GpuBuffer<T>>,
    eps: T,
    y: &mut GpuBuffer<T>,
    mean: &mut GpuBuffer<T>,
    rstd: &mut GpuBuffer<T>,
) -> Result<(), GpuError> {
    assert!(x.len() == rows * n && y.len() == x.len() && mean.len() == rows && rstd.len() == rows);
    assert!(w.is_none_or(|w| w.len() == n) && b.is_none_or(|b| b.len() == n), "layer_norm: w, b must be [n]");
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

/// Adds the layer-norm gradients into `dx`, `dw`, `db` (each when given); math in
/// the CPU twin's doc.
#[allow(clippy::too_many_arguments)]
pub fn layer_norm_backward<T: Float>(
    x: &GpuBuffer<T>,
    g: &GpuBuffer<T>,
    rows: usize,
    n: usize,
    w: Option<&GpuBuffer<T>>,
    mean: &GpuBuffer<T>,
    rstd: &GpuBuffer<T>,
    dx: Option<&mut GpuBuffer<T>>,
    dw: Option<&mut GpuBuffer<T>>,
    db: Option<&mut GpuBuffer<T>>,
) -> Result<(), GpuError> {
    assert!(x.len() == rows * n && g.len() == x.len() && mean.len() == rows && rstd.len() == rows);
    assert!(w.is_none_or(|w| w.len() == n) && dx.as_ref().is_none_or(|d| d.len() == x.len()));
    assert!(dw.as_ref().is_none_or(|d| d.len() == n) && db.as_ref().is_none_or(|d| d.len() == n));
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
mod tests {
    use super::*;
    use crate::gpu::test_contexts;
    use crate::layernorm::{layer_norm_backward_reference, layer_norm_forward_reference};

    /// Every entry's launch fits its PTX `.param` list, f32 and f64 (no GPU needed).
    #[test]
    fn launches_fit_their_entries() {
        fn run<T: Float>() {
            let ctx = crate::gpu::param_check::context();
            let z = |n| GpuBuffer::<T>::zeros(&ctx, n).unwrap();
            let (x, g, w, b) = (z(12), z(12), z(4), z(4));
            let (mut y, mut mean, mut rstd) = (z(12), z(3), z(3));
            layer_norm_forward(&x, 3, 4, Some(&w), Some(&b), T::ONE, &mut y, &mut mean, &mut rstd).unwrap();
            let (mut dx, mut dw, mut db) = (z(12), z(4), z(4));
            layer_norm_backward(
                &x,
                &g,
                3,
                4,
                Some(&w),
                &mean,
                &rstd,
                Some(&mut dx),
                Some(&mut dw),
                Some(&mut db),
            )
            .unwrap();
        }
        run::<f32>();
        run::<f64>();
    }

    fn close(got: &[f64], want: &[f64], tol: f64, what: &str) {
        assert_eq!(got.len(), want.len());
        for (i, (g, w)) in got.iter().zip(want).enumerate() {
            assert!((g - w).abs() <= tol * (1.0 + w.abs()), "{what} at {i}: {g} vs {w}");
        }
    }

    /// Forward and backward (adding into dx, dw, db), with and without w and b, on odd
    /// sizes including rows longer than a block and more rows than one chunk; f64 to
    /// 1e-12, f32 within rounding; two runs give identical dw bits.
    #[test]
    fn matches_cpu_reference() {
        for ctx in test_contexts() {
            for &(rows, n) in &[(1, 1), (3, 7), (300, 5), (4, 1100)] {
                let x: Vec<f64> = (0..rows * n).map(|i| (i as f64 * 0.61).sin() * 3.0 + 0.5).collect();
                let g: Vec<f64> = (0..rows * n).map(|i| (i as f64 * 0.29).cos()).collect();
                let w: Vec<f64> = (0..n).map(|j| 1.0 + 0.1 * j as f64).collect();
                let b: Vec<f64> = (0..n).map(|j| 0.05 * j as f64).collect();
                for affine in [false, true] {
                    let what = format!("[{rows}, {n}] affine {affine} on {}", ctx.name());
                    let (wr, br) = if affine { (Some(&w[..]), Some(&b[..])) } else { (None, None) };
                    let (mut y, mut mu, mut rs) = (vec![0.0; rows * n], vec![0.0; rows], vec![0.0; rows]);
                    layer_norm_forward_reference(&x, rows, n, wr, br, 1e-5, &mut y, &mut mu, &mut rs);
                    let (mut dx, mut dw, mut db) = (vec![0.25; rows * n], vec![0.5; n], vec![-0.5; n]);
                    layer_norm_backward_reference(
                        &x,
                        &g,
                        rows,
                        n,
                        wr,
                        &mu,
                        &rs,
                        Some(&mut dx),
                        Some(&mut dw),
                        Some(&mut db),
                    );
                    let up = |v: &[f64]| GpuBuffer::from_host(&ctx, v).unwrap();
                    let (xb, gb, wb, bb) = (up(&x), up(&g), up(&w), up(&b));
                    let (wo, bo) = if affine { (Some(&wb), Some(&bb)) } else { (None, None) };
                    let mut yb = GpuBuffer::<f64>::uninit(&ctx, rows * n).unwrap();
                    let mut mb = GpuBuffer::<f64>::uninit(&ctx, rows).unwrap();
                    let mut rb = GpuBuffer::<f64>::uninit(&ctx, rows).unwrap();
                    layer_norm_forward(&xb, rows, n, wo, bo, 1e-5, &mut yb, &mut mb, &mut rb).unwrap();
                    close(&yb.to_host().unwrap(), &y, 1e-12, &format!("y {what}"));
                    close(&mb.to_host().unwrap(), &mu, 1e-12, &format!("mean {what}"));
                    close(&rb.to_host().unwrap(), &rs, 1e-12, &format!("rstd {what}"));
                    let (mut dxb, mut dwb, mut dbb) =
                        (up(&vec![0.25; rows * n]), up(&vec![0.5; n]), up(&vec![-0.5; n]));
                    layer_norm_backward(
                        &xb,
                        &gb,
                        rows,
                        n,
                        wo,
                        &mb,
                        &rb,
                        Some(&mut dxb),
                        Some(&mut dwb),
                        Some(&mut dbb),
                    )
                    .unwrap();
                    close(&dxb.to_host().unwrap(), &dx, 1e-12, &format!("dx {what}"));
                    close(&dwb.to_host().unwrap(), &dw, 1e-12, &format!("dw {what}"));
                    close(&dbb.to_host().unwrap(), &db, 1e-12, &format!("db {what}"));
                    // only dw: the same bits as the run above
                    let mut dw2 = up(&vec![0.5; n]);
                    layer_norm_backward(&xb, &gb, rows, n, wo, &mb, &rb, None, Some(&mut dw2), None).unwrap();
                    assert_eq!(
                        dw2.to_host().unwrap(),
                        dwb.to_host().unwrap(),
                        "dw not deterministic: {what}"
                    );
                    // f32 forward within rounding of the f64 result
                    let f = |v: &[f64]| v.iter().map(|&a| a as f32).collect::<Vec<f32>>();
                    let (xb, wb, bb) = (
                        GpuBuffer::from_host(&ctx, &f(&x)).unwrap(),
                        GpuBuffer::from_host(&ctx, &f(&w)).unwrap(),
                        GpuBuffer::from_host(&ctx, &f(&b)).unwrap(),
                    );
                    let (wo, bo) = if affine { (Some(&wb), Some(&bb)) } else { (None, None) };
                    let mut yb = GpuBuffer::<f32>::uninit(&ctx, rows * n).unwrap();
                    let mut mb = GpuBuffer::<f32>::uninit(&ctx, rows).unwrap();
                    let mut rb = GpuBuffer::<f32>::uninit(&ctx, rows).unwrap();
                    layer_norm_forward(&xb, rows, n, wo, bo, 1e-5, &mut yb, &mut mb, &mut rb).unwrap();
                    let y32: Vec<f64> = yb.to_host().unwrap().iter().map(|&v| v as f64).collect();
                    close(&y32, &y, 2e-5, &format!("f32 y {what}"));
                    // f32 backward: sums over rows and columns, each term rounded
                    let gb = GpuBuffer::from_host(&ctx, &f(&g)).unwrap();
                    let up32 = |v: Vec<f64>| GpuBuffer::from_host(&ctx, &f(&v)).unwrap();
                    let (mut dxb, mut dwb, mut dbb) =
                        (up32(vec![0.25; rows * n]), up32(vec![0.5; n]), up32(vec![-0.5; n]));
                    layer_norm_backward(
                        &xb,
                        &gb,
                        rows,
                        n,
                        wo,
                        &mb,
                        &rb,
                        Some(&mut dxb),
                        Some(&mut dwb),
                        Some(&mut dbb),
                    )
                    .unwrap();
                    let back = |b: &GpuBuffer<f32>| {
                        b.to_host().unwrap().iter().map(|&v| v as f64).collect::<Vec<f64>>()
                    };
                    close(&back(&dxb), &dx, 1e-4, &format!("f32 dx {what}"));
                    close(&back(&dwb), &dw, 1e-4, &format!("f32 dw {what}"));
                    close(&back(&dbb), &db, 1e-4, &format!("f32 db {what}"));
                }
            }
        }
    }
}
