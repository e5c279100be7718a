//! Reductions over a dim on the GPU (`kernels/cuda/reduce.cu`); the CPU twin is
//! `kernels/src/reduce.rs`. x is viewed as `[outer, n, inner]`; `inner = 1` takes one
//! block per row (a tree over the row), `inner > 1` one thread per output column.
//! Arg-max indices are `i64` on the device (`usize` on the CPU).

use super::{count, launch, pick, GpuBuffer, GpuError, Kernel, KernelArg};
use crate::Float;

pub const ENTRIES: &[&str] = &[
    "sum_rows_f32",
    "sum_rows_f64",
    "sum_cols_f32",
    "sum_cols_f64",
    "max_rows_f32",
    "max_rows_f64",
    "max_cols_f32",
    "max_cols_f64",
    "max_bwd_f32",
    "max_bwd_f64",
];

fn kernel<T: Float>(f32_entry: &'static str, f64_entry: &'static str) -> Kernel {
    Kernel { module: "reduce", entry: pick::<T>(f32_entry, f64_entry) }
}

fn sum_or_mean<T: Float>(
    x: &GpuBuffer<T>,
    (outer, n, inner): (usize, usize, usize),
    out: &mut GpuBuffer<T>,
    mean: bool,
) -> Result<(), GpuError> {
    assert!(x.len() == outer * n * inner && out.len() == outer * inner, "sum_dim/mean_dim: bad buffer sizes");
    if out.is_empty() {
        return Ok(());
    }
    let mean = KernelArg::U32(mean as u32);
    if inner == 1 {
        let args = [x.arg(), out.arg(), count(outer), count(n), mean];
        out.context().launch(
            kernel::<T>("sum_rows_f32", "sum_rows_f64"),
            launch::rows(outer, launch::row_threads(n)),
            &args,
        )
    } else {
        let args = [x.arg(), out.arg(), count(outer), count(n), count(inner), mean];
        out.context().launch(
            kernel::<T>("sum_cols_f32", "sum_cols_f64"),
            launch::linear(outer * inner),
            &args,
        )
    }
}

/// out[o, i] = Σⱼ x[o, j, i].                    x [outer, n, inner], out [outer, inner]
pub fn sum_dim<T: Float>(
    x: &GpuBuffer<T>,
    outer: usize,
    n: usize,
    inner: usize,
    out: &mut GpuBuffer<T>,
) -> Result<(), GpuError> {
    sum_or_mean(x, (outer, n, inner), out, false)
}

/// out[o, i] = (1/n) Σⱼ x[o, j, i].
pub fn mean_dim<T: Float>(
    x: &GpuBuffer<T>,
    outer: usize,
    n: usize,
    inner: usize,
    out: &mut GpuBuffer<T>,
) -> Result<(), GpuError> {
    sum_or_mean(x, (outer, n, inner), out, true)
}

/// out[o, i] = maxⱼ x[o, j, i] and argmax[o, i] = the first j reaching it (a NaN is
/// the max).                       x [outer, n, inner], out, argmax [outer, inner], n > 0
pub fn max_dim<T: Float>(
    x: &GpuBuffer<T>,
    outer: usize,
    n: usize,
    inner: usize,
    out: &mut GpuBuffer<T>,
    argmax: &mut GpuBuffer<i64>,
) -> Result<(), GpuError> {
    assert!(n > 0, "max_dim: the dim is empty");
    assert!(
        x.len() == outer * n * inner && out.len() == outer * inner && argmax.len() == out.len(),
        "max_dim: bad buffer sizes"
    );
    if out.is_empty() {
        return Ok(());
    }
    if inner == 1 {
        let args = [x.arg(), out.arg(), argmax.arg(), count(outer), count(n)];
        out.context().launch(
            kernel::<T>("max_rows_f32", "max_rows_f64"),
            launch::rows(outer, launch::row_threads(n)),
            &args,
        )
    } else {
        let args = [x.arg(), out.arg(), argmax.arg(), count(outer), count(n), count(inner)];
        out.context().launch(
            kernel::<T>("max_cols_f32", "max_cols_f64"),
            launch::linear(outer * inner),
            &args,
        )
    }
}

/// dx[o, argmax[o, i], i] += g[o, i]: one thread per element of dx (no atomics).
///                                               g [outer, inner], dx [outer, n, inner]
pub fn max_dim_backward<T: Float>(
    g: &GpuBuffer<T>,
    outer: usize,
    n: usize,
    inner: usize,
    argmax: &GpuBuffer<i64>,
    dx: &mut GpuBuffer<T>,
) -> Result<(), GpuError> {
    assert!(
        g.len() == outer * inner && argmax.len() == g.len() && dx.len() == outer * n * inner,
        "max_dim_backward: bad buffer sizes"
    );
    if dx.is_empty() {
        return Ok(());
    }
    let args = [g.arg(), argmax.arg(), dx.arg(), count(outer), count(n), count(inner)];
    dx.context().launch(kernel::<T>("max_bwd_f32", "max_bwd_f64"), launch::linear(dx.len()), &args)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::gpu::testing::{on, out, tol, up};
    use crate::gpu::{test_contexts, GpuContext};
    use crate::reduce as cpu;
    use std::sync::Arc;

    /// Sum, mean, max (values, first arg-max) and max's backward over the middle dim of
    /// `[outer, n, inner]` in T against the CPU in T, with repeated values (ties) and a
    /// NaN: sums within reassociation (1e-12·n in f64, 1e-6·n in f32), the rest exact.
    pub(crate) fn check<T: Float>(ctx: &Arc<GpuContext>, (outer, n, inner): (usize, usize, usize)) {
        let what = format!("({outer},{n},{inner}), {}", on::<T>(ctx));
        let mut x: Vec<T> =
            (0..outer * n * inner).map(|i| T::from_f64(((i * 7919) % 23) as f64 * 0.37 - 3.0)).collect();
        if x.len() > 5 {
            x[5] = T::from_f64(f64::NAN);
        }
        let m = outer * inner;
        let gx = up(ctx, &x);
        let mut got = out::<T>(ctx, m);
        for mean in [false, true] {
            let mut want = vec![T::ZERO; m];
            if mean {
                cpu::mean_dim(&x, outer, n, inner, &mut want);
                mean_dim(&gx, outer, n, inner, &mut got).unwrap();
            } else {
                cpu::sum_dim(&x, outer, n, inner, &mut want);
                sum_dim(&gx, outer, n, inner, &mut got).unwrap();
            }
            for (i, (g, w)) in got.to_host().unwrap().iter().zip(&want).enumerate() {
                let (g, w) = (g.to_f64(), w.to_f64());
                let ok = (g.is_nan() && w.is_nan())
                    || (g - w).abs() <= tol::<T>(1e-6, 1e-12) * n as f64 * (1.0 + w.abs());
                assert!(ok, "{} {what} at {i}: {g} vs {w}", ["sum", "mean"][mean as usize]);
            }
        }
        let (mut want, mut want_arg) = (vec![T::ZERO; m], vec![0usize; m]);
        cpu::max_dim(&x, outer, n, inner, &mut want, &mut want_arg);
        let mut arg = out::<i64>(ctx, m);
        max_dim(&gx, outer, n, inner, &mut got, &mut arg).unwrap();
        let got_arg: Vec<usize> = arg.to_host().unwrap().iter().map(|&j| j as usize).collect();
        assert_eq!(got_arg, want_arg, "argmax {what}");
        let vals = got.to_host().unwrap();
        assert!(
            vals.iter().zip(&want).all(|(g, w)| g == w || (g.is_nan() && w.is_nan())),
            "max values {what}"
        );
        // backward: accumulates into a non-zero dx
        let g: Vec<T> = (0..m).map(|i| T::from_f64(i as f64 + 0.5)).collect();
        let mut dx: Vec<T> = (0..x.len()).map(|i| T::from_f64((i % 3) as f64)).collect();
        let mut gdx = up(ctx, &dx);
        cpu::max_dim_backward(&g, outer, n, inner, &want_arg, &mut dx);
        max_dim_backward(&up(ctx, &g), outer, n, inner, &arg, &mut gdx).unwrap();
        assert_eq!(gdx.to_host().unwrap(), dx, "max backward {what}");
    }

    /// (outer, n, inner): rows (inner 1) short and long, columns, odd sizes.
    const SHAPES: &[(usize, usize, usize)] =
        &[(1, 1, 1), (3, 7, 1), (5, 3000, 1), (2, 300, 1), (4, 5, 3), (3, 33, 17), (1, 9, 1000)];

    #[test]
    fn sum_mean_max_match_cpu() {
        for ctx in test_contexts() {
            for &shape in SHAPES {
                check::<f64>(&ctx, shape);
                check::<f32>(&ctx, shape);
            }
        }
    }
}
