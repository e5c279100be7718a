//! Fused losses on logits.
//!
//! Cross-entropy of a row x of C logits against class t:
//!   `l = −log softmax(x)[t] = lse(x) − x[t]`,   lse(x) = m + ln Σⱼ e^{xⱼ − m},  m = maxⱼ xⱼ
//! (subtracting the max keeps every e^{…} ≤ 1), and
//!   ∂l/∂xⱼ = e^{xⱼ − lse(x)} − [j = t] = softmax(x)ⱼ − onehot(t)ⱼ.
//! f32 rows take vector kernels (max, Σ e^{…} in 8 lanes on `vecmath::exp`) and are
//! split between threads; the scalar references stay beside them.

use crate::activation::sigmoid;
use crate::elementwise::{for_row_parts, row_parts, simd_path};
use crate::isa::Family;
use crate::softmax::fast as rows;
use crate::threads::SharedMut;
use crate::{as_f32, as_f32_mut, Float};

/// Cross-entropy of `logits [n, c]` against class `targets`, rows whose target equals
/// `ignore_index` skipped: returns (`Σ_i −log softmax(logits_i)[t_i]`, count of rows used).
/// The caller divides by the count: that is the mean loss L = (1/N) Σ_i l_i.
///
/// The f32 kernel sums each thread's rows in f64, then the threads' sums in order.
pub fn cross_entropy_forward<T: Float>(
    logits: &[T],
    n: usize,
    c: usize,
    targets: &[usize],
    ignore_index: Option<usize>,
) -> (T, usize) {
    crate::threads::ensure_ftz(); // denormals flush to zero (see `threads`)
    assert!(logits.len() == n * c && targets.len() == n, "cross_entropy_forward: bad buffer sizes");
    if let (true, Some(x)) = (simd_path::<T>(Family::Loss, c > 0), as_f32(logits)) {
        let parts = row_parts(n, c);
        let mut sums = vec![(0f64, 0usize); parts];
        let slots = SharedMut::new(&mut sums);
        for_row_parts(n, parts, |part, rs| {
            let (mut total, mut count) = (0f64, 0usize);
            for i in rs {
                let t = targets[i];
                if Some(t) == ignore_index {
                    continue;
                }
                let row = &x[i * c..(i + 1) * c];
                // SAFETY: AVX2 and FMA are present (checked above).
                let lse = unsafe {
                    let max = rows::max(row);
                    max + rows::sum_exp(row, max).ln()
                };
                total += (lse - row[t]) as f64;
                count += 1;
            }
            // SAFETY: each part writes its own slot.
            unsafe { slots.range(part..part + 1)[0] = (total, count) };
        });
        let (total, count) = sums.iter().fold((0f64, 0), |(t, c), &(pt, pc)| (t + pt, c + pc));
        return (T::from_f64(total), count);
    }
    cross_entropy_forward_reference(logits, n, c, targets, ignore_index)
}

/// The scalar reference of [`cross_entropy_forward`].
pub fn cross_entropy_forward_reference<T: Float>(
    logits: &[T],
    n: usize,
    c: usize,
    targets: &[usize],
    ignore_index: Option<usize>,
) -> (T, usize) {
    let mut total = T::ZERO;
    let mut count = 0;
    for i in 0..n {
        let t = targets[i];
        if Some(t) == ignore_index {
            continue;
        }
        let row = &logits[i * c..(i + 1) * c];
        let max = row.iter().fold(T::NEG_INFINITY, |m, &v| m.max(v));
        let lse = row.iter().map(|&v| (v - max).exp()).sum::<T>().ln() + max;
        total += lse - row[t];
        count += 1;
    }
    (total, count)
}

/// dlogits += scale · (softmax(logits_i) − onehot(t_i)) for every row not ignored.
/// `scale` carries the upstream gradient and the 1/N of the mean.
///
/// The f32 kernel makes two passes over a row: max, then e^{x − max} into a
/// per-thread scratch row (one exp per element) while summing; then
/// dlogits += (scale/Σ)·e^{x − max}, and −scale at the target.
pub fn cross_entropy_backward<T: Float>(
    logits: &[T],
    n: usize,
    c: usize,
    targets: &[usize],
    ignore_index: Option<usize>,
    scale: T,
    dlogits: &mut [T],
) {
    crate::threads::ensure_ftz(); // denormals flush to zero (see `threads`)
    assert!(
        logits.len() == n * c && targets.len() == n && dlogits.len() == logits.len(),
        "cross_entropy_backward: bad buffer sizes"
    );
    if let (true, Some(x), Some(d)) =
        (simd_path::<T>(Family::Loss, c > 0), as_f32(logits), as_f32_mut(dlogits))
    {
        let scale = scale.to_f64() as f32;
        let d = SharedMut::new(d);
        for_row_parts(n, row_parts(n, c), |_, rs| {
            let mut scratch = vec![0f32; c];
            for i in rs {
                let t = targets[i];
                if Some(t) == ignore_index {
                    continue;
                }
                // SAFETY: rows are disjoint between parts; AVX2 and FMA are present (checked above).
                unsafe {
                    fast::backward_row(
                        &x[i * c..(i + 1) * c],
                        t,
                        scale,
                        &mut scratch,
                        d.range(i * c..(i + 1) * c),
                    )
                };
            }
        });
        return;
    }
    cross_entropy_backward_reference(logits, n, c, targets, ignore_index, scale, dlogits);
}

/// The scalar reference of [`cross_entropy_backward`].
pub fn cross_entropy_backward_reference<T: Float>(
    logits: &[T],
    n: usize,
    c: usize,
    targets: &[usize],
    ignore_index: Option<usize>,
    scale: T,
    dlogits: &mut [T],
) {
    for i in 0..n {
        let t = targets[i];
        if Some(t) == ignore_index {
            continue;
        }
        let row = &logits[i * c..(i + 1) * c];
        let max = row.iter().fold(T::NEG_INFINITY, |m, &v| m.max(v));
        let sum = row.iter().map(|&v| (v - max).exp()).sum::<T>();
        let d = &mut dlogits[i * c..(i + 1) * c];
        for j in 0..c {
            let p = (row[j] - max).exp() / sum;
            let onehot = if j == t { T::ONE } else { T::ZERO };
            d[j] += scale * (p - onehot);
        }
    }
}

/// Binary cross-entropy on logits x against targets t ∈ [0, 1], in the stable form
///   lᵢ = max(xᵢ, 0) − xᵢtᵢ + ln(1 + e^{−|xᵢ|}),   returns L = (1/N) Σᵢ lᵢ.      x, t (N)
pub fn bce_with_logits_forward<T: Float>(x: &[T], t: &[T]) -> T {
    assert_eq!(x.len(), t.len(), "bce_with_logits_forward: x and t differ in length");
    let sum: T =
        x.iter().zip(t).map(|(&x, &t)| x.max(T::ZERO) - x * t + (T::ONE + (-x.abs()).exp()).ln()).sum();
    sum / T::from_f64(x.len() as f64)
}

/// The backward of [`bce_with_logits_forward`] given g = dLoss/dL (written, not added):
///   s = g/N,   dxᵢ = s·(σ(xᵢ) − tᵢ),   dtᵢ = (−s)·xᵢ.                    x, t, dx, dt (N)
pub fn bce_with_logits_backward<T: Float>(x: &[T], t: &[T], g: T, dx: &mut [T], dt: &mut [T]) {
    let n = x.len();
    assert!(t.len() == n && dx.len() == n && dt.len() == n, "bce_with_logits_backward: bad buffer sizes");
    let s = g / T::from_f64(n as f64);
    for i in 0..n {
        dx[i] = s * (sigmoid(x[i]) - t[i]);
        dt[i] = -s * x[i];
    }
}

/// Mean squared error: lᵢ = (yᵢ − tᵢ)², returns L = (1/N) Σᵢ lᵢ.                y, t (N)
pub fn mse_forward<T: Float>(y: &[T], t: &[T]) -> T {
    assert_eq!(y.len(), t.len(), "mse_forward: y and t differ in length");
    let sum: T = y.iter().zip(t).map(|(&y, &t)| (y - t) * (y - t)).sum();
    sum / T::from_f64(y.len() as f64)
}

/// The backward of [`mse_forward`] given g = dLoss/dL (written, not added):
///   dyᵢ = (2g/N)(yᵢ − tᵢ),   dtᵢ = −dyᵢ.                               y, t, dy, dt (N)
pub fn mse_backward<T: Float>(y: &[T], t: &[T], g: T, dy: &mut [T], dt: &mut [T]) {
    let n = y.len();
    assert!(t.len() == n && dy.len() == n && dt.len() == n, "mse_backward: bad buffer sizes");
    let s = T::from_f64(2.0) * g / T::from_f64(n as f64);
    for i in 0..n {
        dy[i] = s * (y[i] - t[i]);
        dt[i] = -dy[i];
    }
}

#[cfg(target_arch = "x86_64")]
mod fast {
    use super::rows;

    /// One row of the backward: d += scale·(softmax(x) − onehot(t)).
    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn backward_row(x: &[f32], t: usize, scale: f32, e: &mut [f32], d: &mut [f32]) {
        let c = x.len();
        let (e, d) = (&mut e[..c], &mut d[..c]);
        let max = rows::max(x);
        // the exp pass also prefetches this row of d, which the last pass updates
        let k = scale / rows::exp_sum_into(x, max, e, d.as_ptr());
        (0..c).for_each(|j| d[j] = e[j].mul_add(k, d[j])); // vectorized by the compiler
        d[t] -= scale;
    }
}

#[cfg(not(target_arch = "x86_64"))]
mod fast {
    pub(super) unsafe fn backward_row(_: &[f32], _: usize, _: f32, _: &mut [f32], _: &mut [f32]) {
        unreachable!("simd_available() is false off x86_64")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{RngExt, SeedableRng};

    /// Forward and backward on f32 (vector kernels, threaded for the widest rows)
    /// and on f64 agree with the references in f64, with and without ignored rows.
    #[test]
    fn bce_and_mse_match_their_formulas() {
        // x = 0: l = ln 2 whatever t; σ(0) = ½
        let (x, t) = ([0.0, 2.0], [1.0, 0.0]);
        let l = bce_with_logits_forward(&x, &t);
        let want = (2f64.ln() + 2.0 + (1.0 + (-2f64).exp()).ln()) / 2.0;
        assert!((l - want).abs() < 1e-15, "{l} vs {want}");
        let (mut dx, mut dt) = ([0.0; 2], [0.0; 2]);
        bce_with_logits_backward(&x, &t, 4.0, &mut dx, &mut dt);
        assert_eq!(dx[0], 2.0 * (0.5 - 1.0));
        assert_eq!(dt, [-0.0, -4.0]);
        assert_eq!(mse_forward(&[1.0, 3.0], &[0.0, 0.0]), 5.0);
        mse_backward(&[1.0, 3.0], &[0.0, 1.0], 0.5, &mut dx, &mut dt);
        assert_eq!((dx, dt), ([0.5, 1.0], [-0.5, -1.0]));
    }

    #[test]
    fn fast_matches_reference() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(8);
        let up = |v: &[f32]| v.iter().map(|&a| a as f64).collect::<Vec<f64>>();
        for c in [1usize, 7, 8, 15, 17, 33, 255, 257, 1000] {
            // rows·c above PAR_MIN at the widest rows: the threaded split
            let n = if c >= 257 { 150 } else { 6 };
            let x: Vec<f32> = (0..n * c).map(|_| rng.random_range(-12.0..12.0)).collect();
            let start: Vec<f32> = (0..n * c).map(|_| rng.random_range(-1.0..1.0)).collect();
            for ignore in [None, Some(c - 1), Some(c + 5)] {
                // every third row's target is the ignored class (if any)
                let t: Vec<usize> = (0..n)
                    .map(|i| if i % 3 == 1 { ignore.unwrap_or(0) } else { rng.random_range(0..c) })
                    .collect();
                let (sum, count) = cross_entropy_forward(&x, n, c, &t, ignore);
                let (sum64, count64) = cross_entropy_forward_reference(&up(&x), n, c, &t, ignore);
                assert_eq!(count, count64);
                assert_eq!(cross_entropy_forward(&up(&x), n, c, &t, ignore), (sum64, count64), "f64 path");
                assert!(
                    (sum as f64 - sum64).abs() <= 1e-6 * (count as f64 + sum64.abs()),
                    "c={c}: {sum} vs {sum64}"
                );
                let scale = 0.37f32;
                let mut d = start.clone();
                cross_entropy_backward(&x, n, c, &t, ignore, scale, &mut d);
                let (mut d64, mut d2) = (up(&start), up(&start));
                cross_entropy_backward_reference(&up(&x), n, c, &t, ignore, scale as f64, &mut d64);
                cross_entropy_backward(&up(&x), n, c, &t, ignore, scale as f64, &mut d2);
                assert_eq!(d2, d64, "f64 path c={c}");
                for i in 0..n * c {
                    let err = (d[i] as f64 - d64[i]).abs();
                    assert!(
                        err <= 2e-6 * (1.0 + d64[i].abs()),
                        "c={c} {ignore:?} i={i}: {} vs {}",
                        d[i],
                        d64[i]
                    );
                }
            }
        }
    }
}
