//! Softmax and log-softmax along one dimension of a `[outer, n, inner]` view.

use crate::elementwise::{simd_path, PAR_MIN};
use crate::isa::Family;
use crate::threads::{par_ranges, SharedMut};
use crate::{as_f32, as_f32_mut, Float};

/// y = softmax(x) (or log_softmax when `log`) along the middle dim of `[outer, n, inner]`.
///
/// Stable form: subtract the max before exponentiating. Rows along the last dim
/// (`inner == 1`) of f32 take the vector kernel.
pub fn softmax_forward<T: Float>(x: &[T], outer: usize, n: usize, inner: usize, y: &mut [T], log: bool) {
    crate::threads::ensure_ftz(); // denormals flush to zero (see `threads`)
    assert!(x.len() == outer * n * inner && y.len() == x.len(), "softmax_forward: bad buffer sizes");
    if simd_path::<T>(Family::Softmax, inner == 1 && n > 0) {
        if let (Some(x), Some(y)) = (as_f32(x), as_f32_mut(y)) {
            let y = SharedMut::new(y);
            // rows split between threads
            par_ranges(outer, PAR_MIN.div_ceil(n), 1, |rows| {
                for r in rows {
                    // SAFETY: AVX2 and FMA are present (checked above); rows are disjoint.
                    unsafe { fast::softmax_row(&x[r * n..(r + 1) * n], y.range(r * n..(r + 1) * n), log) };
                }
            });
            return;
        }
    }
    softmax_forward_reference(x, outer, n, inner, y, log);
}

/// Attention's row softmax, on the calling thread (attention already runs one (b, h)
/// pair per thread): each row of `s` `(rows, n)` becomes `scale·s + mask` (`mask` `(n)`
/// added to every row, when given) and the same row of `p` gets its softmax. One pass
/// scales, masks and finds the max, so S is read once before the exp pass.
pub fn scaled_softmax_rows<T: Float>(s: &mut [T], n: usize, scale: T, mask: Option<&[T]>, p: &mut [T]) {
    crate::threads::ensure_ftz(); // denormals flush to zero (see `threads`)
    assert!(
        s.len() == p.len() && n > 0 && s.len().is_multiple_of(n),
        "scaled_softmax_rows: bad buffer sizes"
    );
    assert!(mask.is_none_or(|m| m.len() == n), "scaled_softmax_rows: the mask must hold n values");
    if simd_path::<T>(Family::Softmax, true) {
        if let (Some(sf), Some(pf)) = (as_f32_mut(s), as_f32_mut(p)) {
            let mf = mask.map(|m| as_f32(m).expect("T is f32"));
            let scale = scale.to_f64() as f32;
            for (srow, prow) in sf.chunks_exact_mut(n).zip(pf.chunks_exact_mut(n)) {
                // SAFETY: AVX2 and FMA are present (checked above); rows are n long.
                unsafe { fast::scaled_softmax_row(srow, scale, mf, prow) };
            }
            return;
        }
    }
    scaled_softmax_rows_reference(s, n, scale, mask, p);
}

/// The scalar reference of [`scaled_softmax_rows`].
pub fn scaled_softmax_rows_reference<T: Float>(
    s: &mut [T],
    n: usize,
    scale: T,
    mask: Option<&[T]>,
    p: &mut [T],
) {
    for (srow, prow) in s.chunks_exact_mut(n).zip(p.chunks_exact_mut(n)) {
        match mask {
            Some(m) => srow.iter_mut().zip(m).for_each(|(x, &mk)| *x = *x * scale + mk),
            None => srow.iter_mut().for_each(|x| *x *= scale),
        }
        softmax_forward_reference(srow, 1, n, 1, prow, false);
    }
}

/// Attention's softmax down the columns of a transposed score block, in place, without
/// its division: `st` `(n, cols)` holds Sᵀ (row j for key j, column i for query i); each
/// entry becomes `e^{scale·st[j, i] + mask[j] − max_i}` with `max_i` the column's largest
/// `scale·st[j, i] + mask[j]`, and `sums[i]` the column's sum of them, so that
/// `Pᵀ[j, i] = st[j, i] / sums[i]`. The caller divides (attention divides O's rows, d
/// values each, rather than P's T). Every pass walks down the rows with the vector lanes
/// on neighbouring columns, so no pass reduces across lanes.
pub fn scaled_exp_cols<T: Float>(st: &mut [T], cols: usize, scale: T, mask: Option<&[T]>, sums: &mut [T]) {
    crate::threads::ensure_ftz(); // denormals flush to zero (see `threads`)
    assert!(cols > 0 && st.len().is_multiple_of(cols), "scaled_exp_cols: bad buffer sizes");
    assert!(sums.len() >= cols, "scaled_exp_cols: sums needs cols values");
    assert!(
        mask.is_none_or(|m| m.len() == st.len() / cols),
        "scaled_exp_cols: the mask needs one value a row"
    );
    if cols.is_multiple_of(8) && simd_path::<T>(Family::Softmax, true) {
        if let (Some(sf), Some(sums)) = (as_f32_mut(st), as_f32_mut(sums)) {
            let mf = mask.map(|m| as_f32(m).expect("T is f32"));
            // SAFETY: AVX2 and FMA are present (checked above); cols is a multiple of 8.
            unsafe { fast::scaled_exp_cols(sf, cols, scale.to_f64() as f32, mf, sums) };
            return;
        }
    }
    scaled_exp_cols_reference(st, cols, scale, mask, sums);
}

/// The scalar reference of [`scaled_exp_cols`] (the same two passes).
pub fn scaled_exp_cols_reference<T: Float>(
    st: &mut [T],
    cols: usize,
    scale: T,
    mask: Option<&[T]>,
    sums: &mut [T],
) {
    let sums = &mut sums[..cols];
    let mut colmax = vec![T::NEG_INFINITY; cols];
    for (j, row) in st.chunks_exact_mut(cols).enumerate() {
        let mk = mask.map_or(T::ZERO, |m| m[j]);
        for (x, m) in row.iter_mut().zip(colmax.iter_mut()) {
            *x = *x * scale + mk;
            *m = m.max(*x);
        }
    }
    sums.fill(T::ZERO);
    for row in st.chunks_exact_mut(cols) {
        for ((x, &m), s) in row.iter_mut().zip(colmax.iter()).zip(sums.iter_mut()) {
            *x = (*x - m).exp();
            *s += *x;
        }
    }
}

/// The scalar reference of [`softmax_forward`].
pub fn softmax_forward_reference<T: Float>(
    x: &[T],
    outer: usize,
    n: usize,
    inner: usize,
    y: &mut [T],
    log: bool,
) {
    for o in 0..outer {
        for i in 0..inner {
            let at = |j: usize| o * n * inner + j * inner + i;
            let mut max = T::NEG_INFINITY;
            for j in 0..n {
                max = max.max(x[at(j)]);
            }
            let mut sum = T::ZERO;
            for j in 0..n {
                let e = (x[at(j)] - max).exp();
                y[at(j)] = e;
                sum += e;
            }
            if log {
                let lse = sum.ln();
                for j in 0..n {
                    y[at(j)] = x[at(j)] - max - lse;
                }
            } else {
                let inv = T::ONE / sum;
                for j in 0..n {
                    y[at(j)] *= inv;
                }
            }
        }
    }
}

/// dx += backward of softmax (or log_softmax) given its output `y` and output grad `g`,
/// along the middle dim of `[outer, n, inner]`. With ∂yⱼ/∂xₖ = yⱼ(δⱼₖ − yₖ) for softmax
/// and ∂yⱼ/∂xₖ = δⱼₖ − softmax(x)ₖ for log_softmax (softmax(x) = e^{y} there):
///
/// softmax:     dx_j = y_j (g_j − Σ_k g_k y_k)
/// log_softmax: dx_j = g_j − e^{y_j} Σ_k g_k
///
/// Rows along the last dim (`inner == 1`) of f32 take the vector kernel, split
/// between threads.
pub fn softmax_backward<T: Float>(
    y: &[T],
    g: &[T],
    outer: usize,
    n: usize,
    inner: usize,
    dx: &mut [T],
    log: bool,
) {
    crate::threads::ensure_ftz(); // denormals flush to zero (see `threads`)
    let len = outer * n * inner;
    assert!(y.len() == len && g.len() == len && dx.len() == len, "softmax_backward: bad buffer sizes");
    if simd_path::<T>(Family::Softmax, inner == 1 && n > 0) {
        if let (Some(y), Some(g), Some(dx)) = (as_f32(y), as_f32(g), as_f32_mut(dx)) {
            let dx = SharedMut::new(dx);
            par_ranges(outer, PAR_MIN.div_ceil(n), 1, |rows| {
                for r in rows {
                    let row = r * n..(r + 1) * n;
                    // SAFETY: AVX2 and FMA are present (checked above); rows are disjoint.
                    unsafe { fast::backward_row(&y[row.clone()], &g[row.clone()], dx.range(row), log) };
                }
            });
            return;
        }
    }
    softmax_backward_reference(y, g, outer, n, inner, dx, log);
}

/// The scalar reference of [`softmax_backward`].
pub fn softmax_backward_reference<T: Float>(
    y: &[T],
    g: &[T],
    outer: usize,
    n: usize,
    inner: usize,
    dx: &mut [T],
    log: bool,
) {
    for o in 0..outer {
        for i in 0..inner {
            let at = |j: usize| o * n * inner + j * inner + i;
            if log {
                let gsum: T = (0..n).map(|j| g[at(j)]).sum();
                for j in 0..n {
                    dx[at(j)] += g[at(j)] - y[at(j)].exp() * gsum;
                }
            } else {
                let dot: T = (0..n).map(|j| g[at(j)] * y[at(j)]).sum();
                for j in 0..n {
                    dx[at(j)] += y[at(j)] * (g[at(j)] - dot);
                }
            }
        }
    }
}

/// Row kernels in AVX2 intrinsics (`softmax/fast.rs`); off x86_64 the stubs below, never
/// called (`simd_path` is false there).
#[cfg(target_arch = "x86_64")]
pub(crate) mod fast;

#[cfg(not(target_arch = "x86_64"))]
pub(crate) mod fast {
    pub(super) unsafe fn softmax_row(_: &[f32], _: &mut [f32], _: bool) {
        unreachable!("simd_available() is false off x86_64")
    }
    pub(super) unsafe fn backward_row(_: &[f32], _: &[f32], _: &mut [f32], _: bool) {
        unreachable!("simd_available() is false off x86_64")
    }
    pub(crate) unsafe fn max(_: &[f32]) -> f32 {
        unreachable!("simd_available() is false off x86_64")
    }
    pub(crate) unsafe fn scale_add_max(_: &mut [f32], _: f32, _: Option<&[f32]>) -> f32 {
        unreachable!("simd_available() is false off x86_64")
    }
    pub(crate) unsafe fn scaled_softmax_row(_: &mut [f32], _: f32, _: Option<&[f32]>, _: &mut [f32]) {
        unreachable!("simd_available() is false off x86_64")
    }
    pub(crate) unsafe fn scaled_exp_cols(_: &mut [f32], _: usize, _: f32, _: Option<&[f32]>, _: &mut [f32]) {
        unreachable!("simd_available() is false off x86_64")
    }
    pub(crate) unsafe fn sum_exp(_: &[f32], _: f32) -> f32 {
        unreachable!("simd_available() is false off x86_64")
    }
    pub(crate) unsafe fn exp_sum_into(_: &[f32], _: f32, _: &mut [f32], _: *const f32) -> f32 {
        unreachable!("simd_available() is false off x86_64")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{RngExt, SeedableRng};

    /// Attention's one-thread row kernel (scale, mask, softmax) against its scalar
    /// reference, with the last keys masked by f32::MIN.
    #[test]
    fn scaled_rows_match_reference() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(4);
        for n in [1usize, 7, 8, 17, 33, 256] {
            let rows = 5;
            let s: Vec<f32> = (0..rows * n).map(|_| rng.random_range(-20.0..20.0)).collect();
            let mask: Vec<f32> =
                (0..n).map(|j| if j > 0 && j >= n - n / 4 { f32::MIN } else { 0.0 }).collect();
            for m in [None, Some(&mask[..])] {
                let (mut s1, mut s2) = (s.clone(), s.clone());
                let (mut p1, mut p2) = (vec![0f32; rows * n], vec![0f32; rows * n]);
                scaled_softmax_rows(&mut s1, n, 0.3, m, &mut p1);
                scaled_softmax_rows_reference(&mut s2, n, 0.3, m, &mut p2);
                assert_eq!(s1, s2, "n={n}: scale·s + mask differs");
                assert!(p1.iter().zip(&p2).all(|(a, b)| (a - b).abs() <= 1e-6), "n={n}: P differs");
            }
        }
    }

    /// The column exponentials (fast and reference), divided by their sums, against the row
    /// softmax of the transpose.
    #[test]
    fn scaled_exp_cols_over_their_sums_are_rows_of_the_transpose() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(5);
        for (n, cols) in [(1usize, 1usize), (7, 9), (17, 8), (33, 40), (5, 16), (256, 32), (256, 256)] {
            let st: Vec<f32> = (0..n * cols).map(|_| rng.random_range(-20.0..20.0)).collect();
            let mask: Vec<f32> =
                (0..n).map(|j| if j > 0 && j >= n - n / 4 { f32::MIN } else { 0.0 }).collect();
            for m in [None, Some(&mask[..])] {
                // the rows of S = (Sᵀ)ᵀ through the row kernel's reference, in f64
                let mut s64: Vec<f64> = (0..cols * n).map(|x| st[(x % n) * cols + x / n] as f64).collect();
                let m64: Option<Vec<f64>> = m.map(|m| m.iter().map(|&v| v as f64).collect());
                let mut p64 = vec![0f64; cols * n];
                scaled_softmax_rows_reference(&mut s64, n, 0.3, m64.as_deref(), &mut p64);
                let (mut fast, mut slow) = (st.clone(), st.clone());
                let (mut fast_sums, mut slow_sums) = (vec![f32::NAN; cols], vec![f32::NAN; cols]);
                scaled_exp_cols(&mut fast, cols, 0.3, m, &mut fast_sums);
                scaled_exp_cols_reference(&mut slow, cols, 0.3, m, &mut slow_sums);
                for (j, i) in (0..n).flat_map(|j| (0..cols).map(move |i| (j, i))) {
                    let want = p64[i * n + j];
                    for (what, e, sums) in [("fast", &fast, &fast_sums), ("reference", &slow, &slow_sums)] {
                        let got = e[j * cols + i] / sums[i];
                        assert!(
                            (got as f64 - want).abs() <= 1e-6,
                            "{what} n={n} cols={cols} ({j}, {i}): {got} vs {want}"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn fast_rows_match_reference() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(3);
        for n in [1usize, 7, 8, 17, 33, 255, 257] {
            // enough rows at n = 257 to take the threaded split
            let rows = if n == 257 { 200 } else { 3 };
            let x: Vec<f32> = (0..rows * n).map(|_| rng.random_range(-20.0..20.0)).collect();
            let x64: Vec<f64> = x.iter().map(|&v| v as f64).collect();
            for log in [false, true] {
                let (mut y, mut y64) = (vec![0f32; rows * n], vec![0f64; rows * n]);
                softmax_forward(&x, rows, n, 1, &mut y, log);
                softmax_forward_reference(&x64, rows, n, 1, &mut y64, log);
                for i in 0..rows * n {
                    let err = (y[i] as f64 - y64[i]).abs();
                    assert!(
                        err <= 1e-6 * y64[i].abs() + 1e-6,
                        "n={n} log={log} i={i}: {} vs {}",
                        y[i],
                        y64[i]
                    );
                }
            }
        }
    }

    /// The backward on f32 (vector kernel, threaded for the widest rows) and on f64
    /// agrees with the reference in f64; a strided dim (`inner > 1`) too.
    #[test]
    fn fast_backward_matches_reference() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(4);
        for (n, inner) in
            [(1usize, 1usize), (7, 1), (8, 1), (15, 1), (17, 1), (33, 1), (255, 1), (257, 1), (17, 3)]
        {
            let rows = if n == 257 { 200 } else { 3 };
            let len = rows * n * inner;
            let x: Vec<f32> = (0..len).map(|_| rng.random_range(-10.0..10.0)).collect();
            let g: Vec<f32> = (0..len).map(|_| rng.random_range(-1.0..1.0)).collect();
            let start: Vec<f32> = (0..len).map(|_| rng.random_range(-1.0..1.0)).collect();
            let up = |v: &[f32]| v.iter().map(|&a| a as f64).collect::<Vec<f64>>();
            for log in [false, true] {
                let mut y = vec![0f32; len];
                softmax_forward(&x, rows, n, inner, &mut y, log);
                let mut dx = start.clone();
                softmax_backward(&y, &g, rows, n, inner, &mut dx, log);
                let (mut dx64, mut dx2) = (up(&start), up(&start));
                softmax_backward_reference(&up(&y), &up(&g), rows, n, inner, &mut dx64, log);
                softmax_backward(&up(&y), &up(&g), rows, n, inner, &mut dx2, log);
                assert_eq!(dx2, dx64, "f64 path n={n} log={log}");
                for i in 0..len {
                    let err = (dx[i] as f64 - dx64[i]).abs();
                    assert!(
                        err <= 1e-5 * (1.0 + dx64[i].abs()),
                        "n={n} log={log} i={i}: {} vs {}",
                        dx[i],
                        dx64[i]
                    );
                }
            }
        }
    }
}
