//! `layer_norm(dropout(x) + r)` in one pass over each row: the forward of
//! `Tensor::residual_layer_norm`, the residual block after a transformer's dense layers
//! (its backward is the layer norm's and dropout's own kernels).
//!
//! ```text
//! x, r, s, y (rows, n)   keep (rows, n), one byte each   w, b (n)   mean, rstd (rows)
//! s = x ⊙ M/(1−p) + r     M as `dropout::dropout_forward` draws it from the seed
//! y = layer_norm(s)       as `layer_norm_forward`
//! ```
//!
//! One pass instead of three: x and r are read once and each row of s is normalised
//! while it is in L1; the three kernels in turn would write s and read it back twice.

use super::{check, fast, layer_norm_forward_reference, LayerNormIn, LayerNormStats};
use crate::elementwise::{simd_path, PAR_MIN};
use crate::isa::Family;
use crate::threads::{par_ranges, SharedMut};
use crate::{as_f32, as_f32_mut, Float};

/// The operands of [`residual_layer_norm_forward`]: `ln.x` is x, `residual` r (as x),
/// and `dropout` the (p, seed) of the mask, None for none.
pub struct ResidualIn<'a, T> {
    pub ln: LayerNormIn<'a, [T]>,
    pub residual: &'a [T],
    pub dropout: Option<(f64, u64)>,
}

/// What [`residual_layer_norm_forward`] writes: s and y (as x), the mask `keep` (as x, one
/// byte each, given exactly when there is dropout) and the stats of each row of s.
pub struct ResidualOut<'a, T> {
    pub s: &'a mut [T],
    pub y: &'a mut [T],
    pub keep: Option<&'a mut [u8]>,
    pub stats: LayerNormStats<&'a mut [T]>,
}

/// `s = x·m/(1−p) + r` and `y = layer_norm(s)` in one pass over each row, the forward of
/// `Tensor::residual_layer_norm` (the residual block after a transformer's dense layers).
/// The mask m is [`crate::dropout::dropout_forward`]'s for the seed and the normalisation
/// [`super::layer_norm_forward`]'s, so the results are those of the three kernels in
/// turn (tested), while x and r are read once and each row of s is normalised from L1.
pub fn residual_layer_norm_forward<T: Float>(inp: ResidualIn<'_, T>, eps: T, out: ResidualOut<'_, T>) {
    crate::threads::ensure_ftz(); // denormals flush to zero (see `threads`)
    let ResidualIn { ln, residual, dropout } = inp;
    let ResidualOut { s, y, keep, stats } = out;
    check(ln, y.len(), (stats.mean.len(), stats.rstd.len()), [None; 3]);
    let (LayerNormIn { x, rows, n, w, b }, len) = (ln, ln.x.len());
    for (what, got) in
        [("residual", residual.len()), ("s", s.len()), ("keep", keep.as_ref().map_or(len, |k| k.len()))]
    {
        assert!(got == len, "residual_layer_norm [{rows}, {n}]: {what} has {got} elements, needs {len}");
    }
    assert!(dropout.is_some() == keep.is_some(), "residual_layer_norm: a keep buffer exactly with dropout");
    let mask = dropout.map(|(p, seed)| crate::dropout::Mask::new(p, seed));
    let simd = simd_path::<T>(Family::LayerNorm, n > 0 && w.is_some() && b.is_some());
    let (s, y, keep) = (SharedMut::new(s), SharedMut::new(y), keep.map(SharedMut::new));
    let (mean, rstd) = (SharedMut::new(stats.mean), SharedMut::new(stats.rstd));
    par_ranges(rows, PAR_MIN.div_ceil(n.max(1)), 1, |rs| {
        let mut rng = mask.map(|m| m.stream_at(rs.start * n));
        let mut bits = vec![0u32; n];
        for r in rs {
            let row = r * n..(r + 1) * n;
            // SAFETY: the parts' rows are disjoint.
            let (sr, yr) = unsafe { (s.range(row.clone()), y.range(row.clone())) };
            let (mr, rr) = unsafe { (&mut mean.range(r..r + 1)[0], &mut rstd.range(r..r + 1)[0]) };
            // s = x·m/(1−p) + r (the mask's product first, as dropout then add compute it)
            match (&mask, &mut rng, &keep) {
                (Some(m), Some(rng), Some(keep)) => {
                    m.apply(rng, &mut bits, &x[row.clone()], sr, unsafe { keep.range(row.clone()) });
                    sr.iter_mut().zip(&residual[row]).for_each(|(s, &r)| *s += r);
                }
                _ => sr
                    .iter_mut()
                    .zip(x[row.clone()].iter().zip(&residual[row]))
                    .for_each(|(s, (&x, &r))| *s = x + r),
            }
            // y = layer_norm(s), this row
            match (simd, as_f32(sr), as_f32_mut(yr), w.and_then(as_f32), b.and_then(as_f32)) {
                (true, Some(sf), Some(yf), Some(wf), Some(bf)) => {
                    // SAFETY: AVX2 and FMA are present (checked above).
                    let (mu, rs) = unsafe { fast::forward_row(sf, wf, bf, eps.to_f64() as f32, yf) };
                    (*mr, *rr) = (T::from_f64(mu as f64), T::from_f64(rs as f64));
                }
                _ => {
                    let row_ln = LayerNormIn { x: &*sr, rows: 1, n, w, b };
                    let stats =
                        LayerNormStats { mean: std::slice::from_mut(mr), rstd: std::slice::from_mut(rr) };
                    layer_norm_forward_reference(row_ln, eps, yr, stats);
                }
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layernorm::layer_norm_forward;
    use rand::{RngExt, SeedableRng};

    /// The fused residual forward gives the bits of dropout, add and layer norm run one after
    /// the other (f32 on this CPU's path and f64), threaded at the larger sizes.
    fn residual_matches_three_kernels<T: Float>() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(9);
        for (rows, n) in [(1usize, 1usize), (5, 7), (3, 33), (400, 385)] {
            let len = rows * n;
            let mut v = |lo: f64, hi: f64| -> Vec<T> {
                (0..len).map(|_| T::from_f64(rng.random_range(lo..hi))).collect()
            };
            let (x, r) = (v(-3.0, 3.0), v(-1.0, 1.0));
            let (w, b) = (v(0.5, 1.5)[..n].to_vec(), v(-0.5, 0.5)[..n].to_vec());
            for (affine, dropout) in
                [(true, None), (true, Some((0.1, 5u64))), (false, Some((0.5, 6))), (true, Some((1.0, 7)))]
            {
                let ln = LayerNormIn {
                    x: &x[..],
                    rows,
                    n,
                    w: affine.then_some(&w[..]),
                    b: affine.then_some(&b[..]),
                };
                let eps = T::from_f64(1e-5);
                // the three kernels
                let (mut d, mut keep) = (x.clone(), vec![0u8; len]);
                if let Some((p, seed)) = dropout {
                    crate::dropout::dropout_forward(&x, p, seed, &mut d, &mut keep);
                }
                let s: Vec<T> = d.iter().zip(&r).map(|(&d, &r)| d + r).collect();
                let (mut y, mut mean, mut rstd) =
                    (vec![T::ZERO; len], vec![T::ZERO; rows], vec![T::ZERO; rows]);
                layer_norm_forward(
                    LayerNormIn { x: &s[..], ..ln },
                    eps,
                    &mut y,
                    LayerNormStats { mean: &mut mean, rstd: &mut rstd },
                );
                // fused
                let (mut s2, mut y2, mut keep2) = (vec![T::ZERO; len], vec![T::ZERO; len], vec![9u8; len]);
                let (mut mean2, mut rstd2) = (vec![T::ZERO; rows], vec![T::ZERO; rows]);
                let out = ResidualOut {
                    s: &mut s2,
                    y: &mut y2,
                    keep: dropout.map(|_| &mut keep2[..]),
                    stats: LayerNormStats { mean: &mut mean2, rstd: &mut rstd2 },
                };
                residual_layer_norm_forward(ResidualIn { ln, residual: &r, dropout }, eps, out);
                let what = format!("{} rows {rows} n {n} affine {affine} dropout {dropout:?}", T::DTYPE);
                let bits = |v: &[T]| v.iter().map(|x| x.to_f64().to_bits()).collect::<Vec<_>>();
                assert_eq!(bits(&s2), bits(&s), "s: {what}");
                assert_eq!(bits(&y2), bits(&y), "y: {what}");
                assert!(bits(&mean2) == bits(&mean) && bits(&rstd2) == bits(&rstd), "stats: {what}");
                if dropout.is_some() {
                    assert_eq!(keep2, keep, "keep: {what}");
                }
            }
        }
    }

    #[test]
    fn residual_forward_is_dropout_add_layer_norm_f32() {
        residual_matches_three_kernels::<f32>();
    }

    #[test]
    fn residual_forward_is_dropout_add_layer_norm_f64() {
        residual_matches_three_kernels::<f64>();
    }
}
