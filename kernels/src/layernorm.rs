//! Layer normalisation over the last dimension of `[rows, n]`.

use crate::elementwise::{simd_available, PAR_MIN};
use crate::threads::{par_ranges, SharedMut};
use crate::{as_f32, as_f32_mut, Float};

/// y = (x − μ)·rstd·w + b per row, rstd = 1/√(σ² + eps) (biased variance).
/// Saves μ and rstd per row for the backward. f32 rows take the vector kernel.
#[allow(clippy::too_many_arguments)]
pub fn layer_norm_forward<T: Float>(
    x: &[T],
    rows: usize,
    n: usize,
    w: Option<&[T]>,
    b: Option<&[T]>,
    eps: T,
    y: &mut [T],
    mean: &mut [T],
    rstd: &mut [T],
) {
    crate::threads::ensure_ftz(); // denormals flush to zero (see `threads`)
    assert!(x.len() == rows * n && y.len() == x.len() && mean.len() == rows && rstd.len() == rows);
    if let (true, Some(xf), Some(yf), Some(wf), Some(bf)) =
        (simd_available() && n > 0, as_f32(x), as_f32_mut(y), w.and_then(as_f32), b.and_then(as_f32))
    {
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
    layer_norm_forward_reference(x, rows, n, w, b, eps, y, mean, rstd);
}

/// The scalar reference of [`layer_norm_forward`].
#[allow(clippy::too_many_arguments)]
pub fn layer_norm_forward_reference<T: Float>(
    x: &[T],
    rows: usize,
    n: usize,
    w: Option<&[T]>,
    b: Option<&[T]>,
    eps: T,
    y: &mut [T],
    mean: &mut [T],
    rstd: &mut [T],
) {
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

/// Accumulates the layer-norm gradients. With x̂ = (x − μ)·rstd and ĝ = g·w:
///   dx = rstd · (ĝ − mean(ĝ) − x̂ · mean(ĝ·x̂)),  dw += Σ_rows g·x̂,  db += Σ_rows g.
#[allow(clippy::too_many_arguments)]
pub fn layer_norm_backward<T: Float>(
    x: &[T],
    g: &[T],
    rows: usize,
    n: usize,
    w: Option<&[T]>,
    mean: &[T],
    rstd: &[T],
    mut dx: Option<&mut [T]>,
    mut dw: Option<&mut [T]>,
    mut db: Option<&mut [T]>,
) {
    crate::threads::ensure_ftz(); // denormals flush to zero (see `threads`)
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
                dx[r * n + j] += rs * (gh - mean_gh - xhat * mean_ghx);
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

    /// One row: returns (μ, rstd).
    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn forward_row(x: &[f32], w: &[f32], b: &[f32], eps: f32, y: &mut [f32]) -> (f32, f32) {
        let n = x.len();
        let (w, b) = (&w[..n], &b[..n]);
        let mu = sum8(x, |v| v) / n as f32;
        let var = sum8(x, |v| (v - mu) * (v - mu)) / n as f32;
        let rstd = 1.0 / (var + eps).sqrt();
        for j in 0..n {
            y[j] = (x[j] - mu) * rstd * w[j] + b[j];
        }
        (mu, rstd)
    }
}

#[cfg(not(target_arch = "x86_64"))]
mod fast {
    pub(super) unsafe fn forward_row(_: &[f32], _: &[f32], _: &[f32], _: f32, _: &mut [f32]) -> (f32, f32) {
        unreachable!("simd_available() is false off x86_64")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

    #[test]
    fn fast_forward_matches_reference() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(5);
        for n in [1usize, 7, 8, 17, 384, 385] {
            // enough rows at n = 385 to take the threaded split
            let rows = if n == 385 { 100 } else { 4 };
            let x: Vec<f32> = (0..rows * n).map(|_| rng.gen_range(-3.0..5.0)).collect();
            let w: Vec<f32> = (0..n).map(|_| rng.gen_range(0.5..1.5)).collect();
            let b: Vec<f32> = (0..n).map(|_| rng.gen_range(-1.0..1.0)).collect();
            let up = |v: &[f32]| v.iter().map(|&a| a as f64).collect::<Vec<f64>>();
            let (mut y, mut m, mut r) = (vec![0f32; rows * n], vec![0f32; rows], vec![0f32; rows]);
            layer_norm_forward(&x, rows, n, Some(&w), Some(&b), 1e-5, &mut y, &mut m, &mut r);
            let (mut y64, mut m64, mut r64) = (vec![0f64; rows * n], vec![0f64; rows], vec![0f64; rows]);
            layer_norm_forward_reference(
                &up(&x),
                rows,
                n,
                Some(&up(&w)),
                Some(&up(&b)),
                1e-5,
                &mut y64,
                &mut m64,
                &mut r64,
            );
            for i in 0..rows * n {
                assert!((y[i] as f64 - y64[i]).abs() <= 1e-5 * (1.0 + y64[i].abs()), "n={n} i={i}");
            }
        }
    }
}
