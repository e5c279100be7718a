//! Reductions over the middle dim of x viewed as `[outer, n, inner]`: sum, mean and
//! max (with the index of the max, for its backward). Plain loops: autograd's
//! `sum_dims`, `mean_dims` and `max_dim` on the CPU, and the references of the GPU
//! kernels (`kernels/cuda/reduce.cu`).

use crate::Float;

/// out[o, i] = Σⱼ x[o, j, i].                    x [outer, n, inner], out [outer, inner]
pub fn sum_dim<T: Float>(x: &[T], outer: usize, n: usize, inner: usize, out: &mut [T]) {
    assert!(x.len() == outer * n * inner && out.len() == outer * inner, "sum_dim: bad buffer sizes");
    for o in 0..outer {
        let dst = &mut out[o * inner..(o + 1) * inner];
        dst.fill(T::ZERO);
        for j in 0..n {
            let src = &x[(o * n + j) * inner..(o * n + j + 1) * inner];
            dst.iter_mut().zip(src).for_each(|(d, &v)| *d += v);
        }
    }
}

/// out[o, i] = (1/n) Σⱼ x[o, j, i] (the sum divided by n).
pub fn mean_dim<T: Float>(x: &[T], outer: usize, n: usize, inner: usize, out: &mut [T]) {
    sum_dim(x, outer, n, inner, out);
    let count = T::from_f64(n as f64);
    out.iter_mut().for_each(|v| *v /= count);
}

/// Max along the middle dim of `[outer, n, inner]`: values and the first index of the max.
pub fn max_dim<T: Float>(x: &[T], outer: usize, n: usize, inner: usize, out: &mut [T], argmax: &mut [usize]) {
    for o in 0..outer {
        for i in 0..inner {
            let mut best = 0;
            for j in 1..n {
                // NaN propagates as the max, like PyTorch
                let (v, b) = (x[(o * n + j) * inner + i], x[(o * n + best) * inner + i]);
                if v > b || (v.is_nan() && !b.is_nan()) {
                    best = j;
                }
            }
            out[o * inner + i] = x[(o * n + best) * inner + i];
            argmax[o * inner + i] = best;
        }
    }
}

/// The backward of [`max_dim`]: dx[o, argmax[o, i], i] += g[o, i] (∂max/∂xⱼ = 1 for
/// the arg-max j, 0 elsewhere).                  g [outer, inner], dx [outer, n, inner]
pub fn max_dim_backward<T: Float>(
    g: &[T],
    outer: usize,
    n: usize,
    inner: usize,
    argmax: &[usize],
    dx: &mut [T],
) {
    assert!(g.len() == outer * inner && argmax.len() == g.len() && dx.len() == outer * n * inner);
    for (k, &gk) in g.iter().enumerate() {
        let (o, i) = (k / inner, k % inner);
        dx[(o * n + argmax[k]) * inner + i] += gk;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sum_mean_max_on_a_small_case() {
        // x [2, 3, 2]
        let x = [1.0, 6.0, 3.0, 2.0, 3.0, f64::NAN, 0.0, -1.0, 5.0, -2.0, 5.0, -3.0];
        let mut out = [0.0; 4];
        sum_dim(&x, 2, 3, 2, &mut out);
        assert!(out[0] == 7.0 && out[1].is_nan());
        assert_eq!(out[2..], [10.0, -6.0]);
        mean_dim(&x, 2, 3, 2, &mut out);
        assert_eq!(out[2..], [10.0 / 3.0, -2.0]);
        let mut arg = [0; 4];
        max_dim(&x, 2, 3, 2, &mut out, &mut arg);
        assert_eq!(arg, [1, 2, 1, 0]);
        assert!(out[1].is_nan() && out[0] == 3.0 && out[2..] == [5.0, -1.0]);
        let mut dx = [0.0; 12];
        max_dim_backward(&[1.0, 2.0, 3.0, 4.0], 2, 3, 2, &arg, &mut dx);
        assert_eq!(dx, [0.0, 0.0, 1.0, 0.0, 0.0, 2.0, 0.0, 4.0, 3.0, 0.0, 0.0, 0.0]);
    }
}
