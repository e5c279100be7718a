//! Copies on the GPU (`kernels/cuda/permute.cu`): permute, narrow and its backward,
//! concat. The CPU twin is `kernels/src/permute.rs`.
//!
//! `permute` simplifies the problem first as the CPU does (size-1 dims dropped, dims
//! that stay adjacent merged): a plain copy stays a device copy, a (batched) 2-D
//! transpose takes the shared-memory tile kernel, the rest the strided gather.

use super::launch::{self, row_major, Strided};
use super::{count, pick, GpuBuffer, GpuError, Kernel, KernelArg};
use crate::Float;

pub const ENTRIES: &[&str] =
    &["permute_f32", "permute_f64", "transpose_f32", "transpose_f64", "slab_f32", "slab_f64"];

fn kernel<T: Float>(f32_entry: &'static str, f64_entry: &'static str) -> Kernel {
    Kernel { module: "permute", entry: pick::<T>(f32_entry, f64_entry) }
}

/// out = src with its dims permuted: output dim d is input dim `perm[d]`.
///                                    src (shape), out `(shape[perm[0]], …, shape[perm[r−1]])`
pub fn permute<T: Float>(
    src: &GpuBuffer<T>,
    shape: &[usize],
    perm: &[usize],
    out: &mut GpuBuffer<T>,
) -> Result<(), GpuError> {
    let n: usize = shape.iter().product();
    assert!(
        src.len() == n && out.len() == n,
        "permute: {} and {} elements for {shape:?}",
        src.len(),
        out.len()
    );
    let (sh, pm) = crate::permute::simplify(shape, perm);
    let r = sh.len();
    if n == 0 {
        return Ok(());
    }
    if r <= 1 {
        return out.copy_from(0, src, 0, n);
    }
    let batched_transpose = (r == 2 && pm == [1, 0]) || (r == 3 && pm == [0, 2, 1]);
    if batched_transpose {
        let (batch, m, k) = if r == 2 { (1, sh[0], sh[1]) } else { (sh[0], sh[1], sh[2]) };
        let tiles = batch * m.div_ceil(32) * k.div_ceil(32);
        let dims = launch::transpose_tiles(tiles);
        let args = [src.arg(), out.arg(), count(batch), count(m), count(k)];
        return out.context().launch(kernel::<T>("transpose_f32", "transpose_f64"), dims, &args);
    }
    let strides = row_major(&sh);
    let out_shape: Vec<usize> = pm.iter().map(|&p| sh[p]).collect();
    let step: Vec<usize> = pm.iter().map(|&p| strides[p]).collect();
    let k = kernel::<T>("permute_f32", "permute_f64");
    let mut args = Strided::simplify(&out_shape, [&step]).params().ok_or_else(|| GpuError::Launch {
        kernel: k.entry.into(),
        message: format!("permute {shape:?} by {perm:?} needs more than 6 dims"),
    })?;
    args.extend([src.arg(), out.arg(), count(n)]);
    out.context().launch(k, launch::linear(n), &args)
}

/// One `[outer, len, inner]` slab from `src` (middle dim `src_n`, from `src_start`) into
/// `dst` (middle dim `dst_n`, from `dst_start`), written or added.
struct Slab {
    outer: usize,
    len: usize,
    inner: usize,
    src: (usize, usize),
    dst: (usize, usize),
    add: bool,
}

fn slab<T: Float>(src: &GpuBuffer<T>, dst: &mut GpuBuffer<T>, s: Slab) -> Result<(), GpuError> {
    assert!(
        s.src.1 + s.len <= s.src.0 && s.dst.1 + s.len <= s.dst.0,
        "slab copy: {}..{} of {} into {}..{} of {}",
        s.src.1,
        s.src.1 + s.len,
        s.src.0,
        s.dst.1,
        s.dst.1 + s.len,
        s.dst.0
    );
    assert!(src.len() == s.outer * s.src.0 * s.inner && dst.len() == s.outer * s.dst.0 * s.inner);
    let n = s.outer * s.len * s.inner;
    if n == 0 {
        return Ok(());
    }
    let args = [
        src.arg(),
        dst.arg(),
        count(s.outer),
        count(s.len),
        count(s.inner),
        count(s.src.0),
        count(s.src.1),
        count(s.dst.0),
        count(s.dst.1),
        KernelArg::U32(s.add as u32),
    ];
    dst.context().launch(kernel::<T>("slab_f32", "slab_f64"), launch::linear(n), &args)
}

/// out[o, j, i] = x[o, start + j, i], j < len.     x [outer, n, inner], out [outer, len, inner]
pub fn narrow<T: Float>(
    x: &GpuBuffer<T>,
    outer: usize,
    n: usize,
    inner: usize,
    start: usize,
    len: usize,
    out: &mut GpuBuffer<T>,
) -> Result<(), GpuError> {
    slab(x, out, Slab { outer, len, inner, src: (n, start), dst: (len, 0), add: false })
}

/// dx[o, start + j, i] += g[o, j, i]; the rest of dx untouched.
///                                               g [outer, len, inner], dx [outer, n, inner]
pub fn narrow_backward<T: Float>(
    g: &GpuBuffer<T>,
    outer: usize,
    n: usize,
    inner: usize,
    start: usize,
    len: usize,
    dx: &mut GpuBuffer<T>,
) -> Result<(), GpuError> {
    slab(g, dx, Slab { outer, len, inner, src: (len, 0), dst: (n, start), add: true })
}

/// Joins `xs` (x_k `[outer, sizes[k], inner]`) along the middle dim into out
/// `[outer, Σ sizes, inner]`: one slab copy per part.
pub fn concat<T: Float>(
    xs: &[&GpuBuffer<T>],
    sizes: &[usize],
    outer: usize,
    inner: usize,
    out: &mut GpuBuffer<T>,
) -> Result<(), GpuError> {
    assert_eq!(xs.len(), sizes.len(), "concat: {} parts, {} sizes", xs.len(), sizes.len());
    let total: usize = sizes.iter().sum();
    let mut start = 0;
    for (x, &n) in xs.iter().zip(sizes) {
        slab(x, out, Slab { outer, len: n, inner, src: (n, 0), dst: (total, start), add: false })?;
        start += n;
    }
    Ok(())
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::gpu::testing::{on, out, up};
    use crate::gpu::{test_contexts, GpuContext};
    use crate::permute as cpu;
    use std::sync::Arc;

    /// `shape` permuted by `perm` (a copy, the tiled transpose or the strided gather, as
    /// the launcher picks): the CPU reference's bits.
    pub(crate) fn check_permute<T: Float>(ctx: &Arc<GpuContext>, shape: &[usize], perm: &[usize]) {
        let n: usize = shape.iter().product();
        let src: Vec<T> = (0..n).map(|i| T::from_f64(i as f64 * 0.5 - 7.0)).collect();
        let mut got = out::<T>(ctx, n);
        permute(&up(ctx, &src), shape, perm, &mut got).unwrap();
        let want = cpu::permute_reference(&src, shape, perm);
        assert_eq!(got.to_host().unwrap(), want, "{shape:?} {perm:?}, {}", on::<T>(ctx));
    }

    /// Parts `[outer, sizes[k], inner]` concatenated, then each `(start, len)` of
    /// `windows` narrowed out of the result and added back (narrow's backward): the
    /// CPU's bits.
    pub(crate) fn check_slabs<T: Float>(
        ctx: &Arc<GpuContext>,
        (outer, inner): (usize, usize),
        sizes: &[usize],
        windows: &[(usize, usize)],
    ) {
        let what = format!("outer {outer} inner {inner} sizes {sizes:?}, {}", on::<T>(ctx));
        let total: usize = sizes.iter().sum();
        let parts: Vec<Vec<T>> = sizes
            .iter()
            .enumerate()
            .map(|(k, &n)| (0..outer * n * inner).map(|i| T::from_f64((i + 100 * k) as f64)).collect())
            .collect();
        let mut want = vec![T::ZERO; outer * total * inner];
        cpu::concat(&parts.iter().map(|p| p.as_slice()).collect::<Vec<_>>(), sizes, outer, inner, &mut want);
        let gparts: Vec<GpuBuffer<T>> = parts.iter().map(|p| up(ctx, p)).collect();
        let mut cat = out::<T>(ctx, want.len());
        concat(&gparts.iter().collect::<Vec<_>>(), sizes, outer, inner, &mut cat).unwrap();
        assert_eq!(cat.to_host().unwrap(), want, "concat {what}");
        for &(start, len) in windows {
            let mut w = vec![T::ZERO; outer * len * inner];
            cpu::narrow(&want, outer, total, inner, start, len, &mut w);
            let mut got = out::<T>(ctx, w.len());
            narrow(&cat, outer, total, inner, start, len, &mut got).unwrap();
            assert_eq!(got.to_host().unwrap(), w, "narrow {start}..{} {what}", start + len);
            let mut dx: Vec<T> = (0..want.len()).map(|i| T::from_f64(i as f64 * 0.25)).collect();
            let mut gdx = up(ctx, &dx);
            cpu::narrow_backward(&w, outer, total, inner, start, len, &mut dx);
            narrow_backward(&got, outer, total, inner, start, len, &mut gdx).unwrap();
            assert_eq!(gdx.to_host().unwrap(), dx, "narrow backward {start}..{} {what}", start + len);
        }
    }

    const PERMS: &[(&[usize], &[usize])] = &[
        (&[7], &[0]),
        (&[3, 5], &[1, 0]),
        (&[33, 257], &[1, 0]),
        (&[1, 17, 1], &[2, 0, 1]),
        (&[2, 15, 3, 32], &[0, 2, 1, 3]),
        (&[4, 33, 65], &[0, 2, 1]),
        (&[2, 3, 4, 5], &[3, 2, 1, 0]),
        (&[2, 3, 4, 5], &[1, 2, 0, 3]),
        (&[6, 7, 8], &[1, 2, 0]),
        (&[2, 3, 2, 3, 2, 3], &[5, 3, 1, 4, 2, 0]),
    ];

    #[test]
    fn permute_matches_cpu() {
        for ctx in test_contexts() {
            for &(shape, perm) in PERMS {
                check_permute::<f64>(&ctx, shape, perm);
                check_permute::<f32>(&ctx, shape, perm);
            }
        }
    }

    #[test]
    fn narrow_concat_match_cpu() {
        for ctx in test_contexts() {
            let windows = [(0, 1), (2, 7), (3, 7), (0, 10)];
            check_slabs::<f64>(&ctx, (3, 5), &[2, 7, 1], &windows);
            check_slabs::<f32>(&ctx, (3, 5), &[2, 7, 1], &windows);
        }
    }
}
