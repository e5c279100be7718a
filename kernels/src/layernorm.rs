//! Layer normalisation over the last dimension of `[rows, n]`.

use crate::Float;

/// y = (x − μ)·rstd·w + b per row, rstd = 1/√(σ² + eps) (biased variance).
/// Saves μ and rstd per row for the backward.
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
