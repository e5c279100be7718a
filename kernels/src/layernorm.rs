//! Layer normalisation over the last dimension of `[rows, n]`.
//!
//! ```text
//! x (rows, n)   w, b (n), optional (w = 1, b = 0 when absent)
//! μ = mean(x_r)   rstd = 1/√(σ²(x_r) + eps)   (per row r, biased variance)
//! y = (x − μ)·rstd·w + b
//! ```
//!
//! The forward saves μ and rstd per row ([`LayerNormStats`]); the backward's math is on
//! [`layer_norm_backward`]. Both devices take the same three argument structs, over host
//! slices here and device buffers in `gpu::layernorm`.

use crate::elementwise::{for_row_parts, row_parts, simd_path, PAR_MIN};
use crate::isa::Family;
use crate::threads::{par_ranges, SharedMut};
use crate::{as_f32, as_f32_mut, Float};

mod residual;
pub use residual::{residual_layer_norm_forward, ResidualIn, ResidualOut};

/// The layer norm's operands: `x (rows, n)`, normalised per row, and the optional affine
/// weight `w` and bias `b` `(n)`. `B` is `[T]` on the CPU and `GpuBuffer<T>` on the GPU.
pub struct LayerNormIn<'a, B: ?Sized> {
    pub x: &'a B,
    pub rows: usize,
    pub n: usize,
    pub w: Option<&'a B>,
    pub b: Option<&'a B>,
}

impl<B: ?Sized> Clone for LayerNormIn<'_, B> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<B: ?Sized> Copy for LayerNormIn<'_, B> {}

/// The per-row statistics `mean` and `rstd` `(rows)`: written by the forward (`M = &mut B`),
/// read by the backward (`M = &B`).
pub struct LayerNormStats<M> {
    pub mean: M,
    pub rstd: M,
}

/// The gradients the backward writes, each only when given: `dx (rows, n)`, overwritten, and
/// `dw`, `db (n)`, added into.
pub struct LayerNormGrads<'a, B: ?Sized> {
    pub dx: Option<&'a mut B>,
    pub dw: Option<&'a mut B>,
    pub db: Option<&'a mut B>,
}

impl<B: ?Sized + Len> LayerNormGrads<'_, B> {
    /// The lengths of the gradients given (for [`check`]).
    pub(crate) fn lens(&self) -> [Option<usize>; 3] {
        [&self.dx, &self.dw, &self.db].map(|d| d.as_ref().map(|d| d.len()))
    }
}

/// Checks every buffer's length against `rows` and `n`: `y` is y's or g's length, `stats`
/// mean's and rstd's, `grads` those of the gradients given (one message for both devices).
pub(crate) fn check<B: ?Sized + Len>(
    ln: LayerNormIn<'_, B>,
    y: usize,
    stats: (usize, usize),
    grads: [Option<usize>; 3],
) {
    let (rows, n) = (ln.rows, ln.n);
    let want = |what: &str, len: usize, need: usize| {
        assert!(len == need, "layer_norm [{rows}, {n}]: {what} has {len} elements, needs {need}")
    };
    want("x", ln.x.len(), rows * n);
    want("y or g", y, rows * n);
    want("mean", stats.0, rows);
    want("rstd", stats.1, rows);
    for (what, len) in [("w", ln.w.map(|w| w.len())), ("b", ln.b.map(|b| b.len()))] {
        if let Some(len) = len {
            want(what, len, n);
        }
    }
    for (what, len, need) in [("dx", grads[0], rows * n), ("dw", grads[1], n), ("db", grads[2], n)] {
        if let Some(len) = len {
            want(what, len, need);
        }
    }
}

/// A buffer's element count: host slices here, device buffers in `gpu` (for the checks).
pub trait Len {
    fn len(&self) -> usize;
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
impl<T> Len for [T] {
    fn len(&self) -> usize {
        <[T]>::len(self)
    }
}

/// y = (x − μ)·rstd·w + b per row (module doc), saving μ and rstd per row for the backward.
/// f32 rows take the vector kernel, rows split between threads.
pub fn layer_norm_forward<T: Float>(
    ln: LayerNormIn<'_, [T]>,
    eps: T,
    y: &mut [T],
    stats: LayerNormStats<&mut [T]>,
) {
    crate::threads::ensure_ftz(); // denormals flush to zero (see `threads`)
    check(ln, y.len(), (stats.mean.len(), stats.rstd.len()), [None; 3]);
    let LayerNormIn { x, rows, n, w, b } = ln;
    let LayerNormStats { mean, rstd } = stats;
    if let (true, Some(xf), Some(yf), Some(wf), Some(bf)) = (
        simd_path::<T>(Family::LayerNorm, n > 0 && w.is_some() && b.is_some()),
        as_f32(x),
        as_f32_mut(y),
        w.and_then(as_f32),
        b.and_then(as_f32),
    ) {
        let (mf, rf) = (as_f32_mut(mean).expect("T is f32"), as_f32_mut(rstd).expect("T is f32"));
        let (yf, mf, rf) = (SharedMut::new(yf), SharedMut::new(mf), SharedMut::new(rf));
        let eps = eps.to_f64() as f32;
        // rows split between threads
        par_ranges(rows, PAR_MIN.div_ceil(n), 1, |rs| {
            for r in rs {
                // SAFETY: AVX2 and FMA are present (checked above); rows are disjoint.
                unsafe {
                    let stats =
                        fast::forward_row(&xf[r * n..(r + 1) * n], wf, bf, eps, yf.range(r * n..(r + 1) * n));
                    (mf.range(r..r + 1)[0], rf.range(r..r + 1)[0]) = stats;
                }
            }
        });
        return;
    }
    layer_norm_forward_reference(ln, eps, y, LayerNormStats { mean, rstd });
}

/// The scalar reference of [`layer_norm_forward`].
pub fn layer_norm_forward_reference<T: Float>(
    ln: LayerNormIn<'_, [T]>,
    eps: T,
    y: &mut [T],
    stats: LayerNormStats<&mut [T]>,
) {
    check(ln, y.len(), (stats.mean.len(), stats.rstd.len()), [None; 3]);
    let (LayerNormIn { x, rows, n, w, b }, LayerNormStats { mean, rstd }) = (ln, stats);
    let nf = T::from_f64(n as f64);
    for r in 0..rows {
        let xr = &x[r * n..(r + 1) * n];
        let mu = xr.iter().copied().sum::<T>() / nf;
        let var = xr.iter().map(|&v| (v - mu) * (v - mu)).sum::<T>() / nf;
        let rs = T::ONE / (var + eps).sqrt();
        mean[r] = mu;
        rstd[r] = rs;
        for (j, (yo, &xv)) in y[r * n..(r + 1) * n].iter_mut().zip(xr).enumerate() {
            let xhat = (xv - mu) * rs;
            let wj = w.map_or(T::ONE, |w| w[j]);
            let bj = b.map_or(T::ZERO, |b| b[j]);
            *yo = xhat * wj + bj;
        }
    }
}

/// The layer-norm gradients. Per row of n, with x̂ = (x − μ)·rstd and
/// ĝ = g·w (w = 1 when absent), since ∂x̂ᵢ/∂xⱼ = rstd·(δᵢⱼ − 1/n − x̂ᵢx̂ⱼ/n):
///   dx = rstd · (ĝ − mean(ĝ) − x̂ · mean(ĝ·x̂)),  dw += Σ_rows g·x̂,  db += Σ_rows g
/// (dx overwritten: no zero fill needed; dw and db accumulated over the rows).
///
/// `g (rows, n)` is dL/dy; `ln.b` is not read. f32 takes the vector kernel, rows split
/// between threads; each thread sums its rows' dw and db into its own buffer and the
/// buffers are added in order after.
pub fn layer_norm_backward<T: Float>(
    ln: LayerNormIn<'_, [T]>,
    stats: LayerNormStats<&[T]>,
    g: &[T],
    grads: LayerNormGrads<'_, [T]>,
) {
    crate::threads::ensure_ftz(); // denormals flush to zero (see `threads`)
    check(ln, g.len(), (stats.mean.len(), stats.rstd.len()), grads.lens());
    let LayerNormIn { x, rows, n, w, .. } = ln;
    let (LayerNormStats { mean, rstd }, LayerNormGrads { dx, dw, db }) = (stats, grads);
    if let (true, Some(xf), Some(gf), Some(mf), Some(rf)) = (
        simd_path::<T>(Family::LayerNorm, n > 0 && rows > 0),
        as_f32(x),
        as_f32(g),
        as_f32(mean),
        as_f32(rstd),
    ) {
        let ones;
        let wf = match w {
            Some(w) => as_f32(w).expect("T is f32"),
            None => {
                ones = vec![1f32; n];
                &ones
            }
        };
        let dxf = dx.map(|d| SharedMut::new(as_f32_mut(d).expect("T is f32")));
        let parts = row_parts(rows, n);
        // per part: its Σ g·x̂ (n) then its Σ g (n)
        let mut sums = vec![0f32; parts * 2 * n];
        let slots = SharedMut::new(&mut sums);
        for_row_parts(rows, parts, |part, rs| {
            // SAFETY: each part takes its own slot of `sums`.
            let slot = unsafe { slots.range(part * 2 * n..(part + 1) * 2 * n) };
            let (pdw, pdb) = slot.split_at_mut(n);
            for r in rs {
                let row = r * n..(r + 1) * n;
                // SAFETY: rows are disjoint between parts.
                let dxr = dxf.as_ref().map(|d| unsafe { d.range(row.clone()) });
                // SAFETY: AVX2 and FMA are present (checked above).
                unsafe { fast::backward_row(&xf[row.clone()], &gf[row], wf, (mf[r], rf[r]), pdw, pdb, dxr) };
            }
        });
        for (k, out) in [dw, db].into_iter().enumerate() {
            if let Some(out) = out.and_then(as_f32_mut) {
                for part in sums.chunks_exact(2 * n) {
                    out.iter_mut().zip(&part[k * n..(k + 1) * n]).for_each(|(o, &v)| *o += v);
                }
            }
        }
        return;
    }
    layer_norm_backward_reference(ln, LayerNormStats { mean, rstd }, g, LayerNormGrads { dx, dw, db });
}

/// The scalar reference of [`layer_norm_backward`].
pub fn layer_norm_backward_reference<T: Float>(
    ln: LayerNormIn<'_, [T]>,
    stats: LayerNormStats<&[T]>,
    g: &[T],
    grads: LayerNormGrads<'_, [T]>,
) {
    check(ln, g.len(), (stats.mean.len(), stats.rstd.len()), grads.lens());
    let (LayerNormIn { x, rows, n, w, .. }, LayerNormStats { mean, rstd }) = (ln, stats);
    let LayerNormGrads { mut dx, mut dw, mut db } = grads;
    let nf = T::from_f64(n as f64);
    for r in 0..rows {
        let (xr, gr) = (&x[r * n..(r + 1) * n], &g[r * n..(r + 1) * n]);
        let (mu, rs) = (mean[r], rstd[r]);
        let mut mean_gh = T::ZERO;
        let mut mean_ghx = T::ZERO;
        for j in 0..n {
            let xhat = (xr[j] - mu) * rs;
            let gh = gr[j] * w.map_or(T::ONE, |w| w[j]);
            mean_gh += gh;
            mean_ghx += gh * xhat;
            if let Some(dw) = dw.as_deref_mut() {
                dw[j] += gr[j] * xhat;
            }
            if let Some(db) = db.as_deref_mut() {
                db[j] += gr[j];
            }
        }
        mean_gh /= nf;
        mean_ghx /= nf;
        if let Some(dx) = dx.as_deref_mut() {
            for j in 0..n {
                let xhat = (xr[j] - mu) * rs;
                let gh = gr[j] * w.map_or(T::ONE, |w| w[j]);
                dx[r * n + j] = rs * (gh - mean_gh - xhat * mean_ghx);
            }
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod fast {
    /// Σ x in 8 independent lanes (so it vectorizes).
    #[inline(always)]
    fn sum8(x: &[f32], f: impl Fn(f32) -> f32) -> f32 {
        let mut s = [0f32; 8];
        let chunks = x.chunks_exact(8);
        let tail: f32 = chunks.remainder().iter().map(|&v| f(v)).sum();
        for c in chunks {
            for l in 0..8 {
                s[l] += f(c[l]);
            }
        }
        s.iter().sum::<f32>() + tail
    }

    /// Σ (x − μ)² in AVX2 intrinsics. The first pass (μ) read the row from memory;
    /// this one reads it from cache and asks for the next row's lines (rows are
    /// contiguous; past the end a prefetch is a hint that never faults), so the
    /// next row's loads overlap this row's arithmetic.
    #[target_feature(enable = "avx2,fma")]
    unsafe fn sq_dev_sum(x: &[f32], mu: f32) -> f32 {
        use std::arch::x86_64::*;
        let n = x.len();
        let n8 = n / 8 * 8;
        let (p, m) = (x.as_ptr(), _mm256_set1_ps(mu));
        let mut s = _mm256_setzero_ps();
        for i in (0..n8).step_by(8) {
            if i.is_multiple_of(16) {
                _mm_prefetch::<_MM_HINT_T0>(p.wrapping_add(n + i) as *const i8);
            }
            // SAFETY: i + 8 ≤ n8 ≤ n: in bounds.
            let d = _mm256_sub_ps(_mm256_loadu_ps(p.add(i)), m);
            s = _mm256_fmadd_ps(d, d, s);
        }
        crate::vecmath::x86::hsum(s) + x[n8..].iter().map(|&v| (v - mu) * (v - mu)).sum::<f32>()
    }

    /// One row: returns (μ, rstd).
    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn forward_row(x: &[f32], w: &[f32], b: &[f32], eps: f32, y: &mut [f32]) -> (f32, f32) {
        let n = x.len();
        let (w, b) = (&w[..n], &b[..n]);
        let mu = sum8(x, |v| v) / n as f32;
        let var = sq_dev_sum(x, mu) / n as f32;
        let rstd = 1.0 / (var + eps).sqrt();
        for j in 0..n {
            y[j] = (x[j] - mu) * rstd * w[j] + b[j];
        }
        (mu, rstd)
    }

    /// One row of the backward: pdw += g·x̂, pdb += g, and (when asked)
    /// dx = rstd·(ĝ − mean(ĝ) − x̂·mean(ĝ·x̂)). Two passes; the second reads the
    /// row again from L1.
    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn backward_row(
        x: &[f32],
        g: &[f32],
        w: &[f32],
        (mu, rs): (f32, f32),
        pdw: &mut [f32],
        pdb: &mut [f32],
        dx: Option<&mut [f32]>,
    ) {
        let n = x.len();
        let (g, w, pdw, pdb) = (&g[..n], &w[..n], &mut pdw[..n], &mut pdb[..n]);
        // Σĝ and Σĝx̂ in 8 independent lanes (so they vectorize), the tail apart
        let (mut s1, mut s2) = ([0f32; 8], [0f32; 8]);
        let n8 = n / 8 * 8;
        let chunks = x[..n8].chunks_exact(8).zip(g[..n8].chunks_exact(8)).zip(w[..n8].chunks_exact(8));
        for (((xc, gc), wc), (dwc, dbc)) in
            chunks.zip(pdw[..n8].chunks_exact_mut(8).zip(pdb[..n8].chunks_exact_mut(8)))
        {
            for l in 0..8 {
                let xh = (xc[l] - mu) * rs;
                let gh = gc[l] * wc[l];
                s1[l] += gh;
                s2[l] = gh.mul_add(xh, s2[l]);
                dwc[l] = gc[l].mul_add(xh, dwc[l]);
                dbc[l] += gc[l];
            }
        }
        let (mut t1, mut t2) = (0f32, 0f32);
        for j in n8..n {
            let xh = (x[j] - mu) * rs;
            let gh = g[j] * w[j];
            t1 += gh;
            t2 = gh.mul_add(xh, t2);
            pdw[j] = g[j].mul_add(xh, pdw[j]);
            pdb[j] += g[j];
        }
        let Some(dx) = dx else { return };
        let inv_n = 1.0 / n as f32;
        let m1 = (s1.iter().sum::<f32>() + t1) * inv_n;
        let m2 = (s2.iter().sum::<f32>() + t2) * inv_n;
        let dx = &mut dx[..n];
        for j in 0..n {
            let xh = (x[j] - mu) * rs;
            dx[j] = rs * (g[j] * w[j] - m1 - xh * m2);
        }
    }
}

#[cfg(not(target_arch = "x86_64"))]
mod fast {
    pub(super) unsafe fn forward_row(_: &[f32], _: &[f32], _: &[f32], _: f32, _: &mut [f32]) -> (f32, f32) {
        unreachable!("simd_available() is false off x86_64")
    }
    pub(super) unsafe fn backward_row(
        _: &[f32],
        _: &[f32],
        _: &[f32],
        _: (f32, f32),
        _: &mut [f32],
        _: &mut [f32],
        _: Option<&mut [f32]>,
    ) {
        unreachable!("simd_available() is false off x86_64")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{RngExt, SeedableRng};

    /// The backward on f32 (vector kernel, threaded at the larger sizes) and on f64
    /// agrees with the reference in f64, with and without the affine weight and for
    /// every subset of the requested gradients.
    #[test]
    fn fast_backward_matches_reference() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(6);
        let up = |v: &[f32]| v.iter().map(|&a| a as f64).collect::<Vec<f64>>();
        for n in [1usize, 7, 8, 15, 17, 33, 255, 257, 385] {
            // rows·n above PAR_MIN at the two largest widths: the threaded split and its reduction
            let rows = if n >= 257 { 150 } else { 5 };
            let x: Vec<f32> = (0..rows * n).map(|_| rng.random_range(-3.0..5.0)).collect();
            let g: Vec<f32> = (0..rows * n).map(|_| rng.random_range(-1.0..1.0)).collect();
            let w: Vec<f32> = (0..n).map(|_| rng.random_range(0.5..1.5)).collect();
            let (mut y, mut m, mut r) = (vec![0f32; rows * n], vec![0f32; rows], vec![0f32; rows]);
            let ln = LayerNormIn { x: &x[..], rows, n, w: Some(&w[..]), b: None };
            layer_norm_forward(ln, 1e-5, &mut y, LayerNormStats { mean: &mut m, rstd: &mut r });
            let (x64, g64, m64, r64) = (up(&x), up(&g), up(&m), up(&r));
            for (affine, mask) in [(true, 7u8), (false, 7), (true, 1), (true, 6), (false, 2)] {
                let wopt = affine.then_some(&w[..]);
                let start: Vec<f32> = (0..rows * n).map(|_| rng.random_range(-1.0..1.0)).collect();
                // the gradients `mask` asks for (bit 0 dx, 1 dw, 2 db)
                fn grads<'a, T>(
                    mask: u8,
                    dx: &'a mut [T],
                    dw: &'a mut [T],
                    db: &'a mut [T],
                ) -> LayerNormGrads<'a, [T]> {
                    LayerNormGrads {
                        dx: (mask & 1 != 0).then_some(dx),
                        dw: (mask & 2 != 0).then_some(dw),
                        db: (mask & 4 != 0).then_some(db),
                    }
                }
                let (mut dx, mut dw, mut db) = (start.clone(), vec![0.5f32; n], vec![-0.25f32; n]);
                let ln = LayerNormIn { x: &x[..], rows, n, w: wopt, b: None };
                let stats = LayerNormStats { mean: &m[..], rstd: &r[..] };
                layer_norm_backward(ln, stats, &g, grads(mask, &mut dx, &mut dw, &mut db));
                let (mut dx64, mut dw64, mut db64) = (up(&start), vec![0.5f64; n], vec![-0.25f64; n]);
                let w64 = up(&w);
                let ln64 = LayerNormIn { x: &x64[..], rows, n, w: affine.then_some(&w64[..]), b: None };
                let stats64 = LayerNormStats { mean: &m64[..], rstd: &r64[..] };
                layer_norm_backward_reference(
                    ln64,
                    stats64,
                    &g64,
                    grads(mask, &mut dx64, &mut dw64, &mut db64),
                );
                // the f64 entry point takes the reference path: identical results
                let (mut dx2, mut dw2, mut db2) = (up(&start), vec![0.5f64; n], vec![-0.25f64; n]);
                let stats64 = LayerNormStats { mean: &m64[..], rstd: &r64[..] };
                layer_norm_backward(ln64, stats64, &g64, grads(mask, &mut dx2, &mut dw2, &mut db2));
                assert!(dx2 == dx64 && dw2 == dw64 && db2 == db64, "f64 path n={n}");
                let close = |a: f32, b: f64, scale: f64| (a as f64 - b).abs() <= 2e-5 * (scale + b.abs());
                for i in 0..rows * n {
                    assert!(close(dx[i], dx64[i], 1.0), "dx n={n} {mask} i={i}: {} vs {}", dx[i], dx64[i]);
                }
                for j in 0..n {
                    // sums over `rows` rows: scale the tolerance with them
                    assert!(close(dw[j], dw64[j], rows as f64), "dw n={n} j={j}: {} vs {}", dw[j], dw64[j]);
                    assert!(close(db[j], db64[j], rows as f64), "db n={n} j={j}: {} vs {}", db[j], db64[j]);
                }
            }
        }
    }

    #[test]
    fn fast_forward_matches_reference() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(5);
        for n in [1usize, 7, 8, 17, 384, 385] {
            // enough rows at n = 385 to take the threaded split
            let rows = if n == 385 { 100 } else { 4 };
            let x: Vec<f32> = (0..rows * n).map(|_| rng.random_range(-3.0..5.0)).collect();
            let w: Vec<f32> = (0..n).map(|_| rng.random_range(0.5..1.5)).collect();
            let b: Vec<f32> = (0..n).map(|_| rng.random_range(-1.0..1.0)).collect();
            let up = |v: &[f32]| v.iter().map(|&a| a as f64).collect::<Vec<f64>>();
            let (mut y, mut m, mut r) = (vec![0f32; rows * n], vec![0f32; rows], vec![0f32; rows]);
            let ln = LayerNormIn { x: &x[..], rows, n, w: Some(&w[..]), b: Some(&b[..]) };
            layer_norm_forward(ln, 1e-5, &mut y, LayerNormStats { mean: &mut m, rstd: &mut r });
            let (mut y64, mut m64, mut r64) = (vec![0f64; rows * n], vec![0f64; rows], vec![0f64; rows]);
            let (x64, w64, b64) = (up(&x), up(&w), up(&b));
            let ln64 = LayerNormIn { x: &x64[..], rows, n, w: Some(&w64[..]), b: Some(&b64[..]) };
            layer_norm_forward_reference(
                ln64,
                1e-5,
                &mut y64,
                LayerNormStats { mean: &mut m64, rstd: &mut r64 },
            );
            for i in 0..rows * n {
                assert!((y[i] as f64 - y64[i]).abs() <= 1e-5 * (1.0 + y64[i].abs()), "n={n} i={i}");
            }
        }
    }
}
