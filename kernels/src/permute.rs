//! Copying a row-major array into a permuted dimension order.
//!
//! `out[i_0, …, i_{r−1}] = src[j]` where output dim `d` is input dim `perm[d]`. The
//! reference walks the output with an index odometer, one element at a time. The fast
//! path first simplifies the problem — drops size-1 dims, merges input dims that stay
//! adjacent and in order — and then either copies whole contiguous runs (when the last
//! dim stays last, e.g. attention's `[B, T, H, D] → [B, H, T, D]`: runs of D) or, for a
//! batched 2-D transpose (`[.., M, N] → [.., N, M]`), transposes cache-sized tiles.

/// Reference: the odometer walk.
pub fn permute_reference<T: Copy>(src: &[T], shape: &[usize], perm: &[usize]) -> Vec<T> {
    let r = shape.len();
    let numel: usize = shape.iter().product();
    assert_eq!(src.len(), numel, "permute: {} elements for shape {shape:?}", src.len());
    let strides = row_major_strides(shape);
    let out_shape: Vec<usize> = perm.iter().map(|&p| shape[p]).collect();
    let step: Vec<usize> = perm.iter().map(|&p| strides[p]).collect();
    let mut out = Vec::with_capacity(numel);
    let (mut idx, mut off) = (vec![0usize; r], 0usize);
    for _ in 0..numel {
        out.push(src[off]);
        for d in (0..r).rev() {
            idx[d] += 1;
            off += step[d];
            if idx[d] < out_shape[d] {
                break;
            }
            off -= step[d] * out_shape[d];
            idx[d] = 0;
        }
    }
    out
}

fn row_major_strides(shape: &[usize]) -> Vec<usize> {
    let mut s = vec![1usize; shape.len()];
    for i in (0..shape.len().saturating_sub(1)).rev() {
        s[i] = s[i + 1] * shape[i + 1];
    }
    s
}

/// The same problem with size-1 dims dropped and input dims that stay adjacent and in
/// order merged: returns (input shape, permutation) of the reduced problem.
fn simplify(shape: &[usize], perm: &[usize]) -> (Vec<usize>, Vec<usize>) {
    // Output-order list of input dims, without size-1 dims.
    let dims: Vec<usize> = perm.iter().copied().filter(|&p| shape[p] != 1).collect();
    // Group runs of consecutive input dims (p, p+1, …) in output order.
    let mut groups: Vec<(usize, usize)> = Vec::new(); // (first input dim, merged size)
    let mut last: Option<usize> = None;
    for &p in &dims {
        let next_in_input = (last.map_or(usize::MAX, |l| l + 1)..p).all(|q| shape[q] == 1);
        match (last, groups.last_mut()) {
            (Some(l), Some(g)) if p > l && next_in_input => g.1 *= shape[p],
            _ => groups.push((p, shape[p])),
        }
        last = Some(p);
    }
    // Renumber the groups in input order.
    let mut order: Vec<usize> = (0..groups.len()).collect();
    order.sort_by_key(|&g| groups[g].0);
    let new_shape: Vec<usize> = order.iter().map(|&g| groups[g].1).collect();
    let mut new_perm = vec![0; groups.len()];
    for (rank, &g) in order.iter().enumerate() {
        new_perm[g] = rank;
    }
    (new_shape, new_perm)
}

/// `src` (row-major, `shape`) with its dims permuted: output dim `d` is input dim `perm[d]`.
pub fn permute<T: Copy + Default>(src: &[T], shape: &[usize], perm: &[usize]) -> Vec<T> {
    let numel: usize = shape.iter().product();
    assert_eq!(src.len(), numel, "permute: {} elements for shape {shape:?}", src.len());
    let (sh, pm) = simplify(shape, perm);
    let r = sh.len();
    if r <= 1 {
        return src.to_vec();
    }
    if pm[r - 1] == r - 1 {
        return copy_runs(src, &sh, &pm);
    }
    if r <= 3 && pm[r - 1] == r - 2 && pm[r - 2] == r - 1 && (r == 2 || pm[0] == 0) {
        let batch = if r == 3 { sh[0] } else { 1 };
        let (m, n) = (sh[r - 2], sh[r - 1]);
        let mut out = vec![T::default(); numel];
        for (s, o) in src.chunks_exact(m * n).zip(out.chunks_exact_mut(m * n)).take(batch) {
            transpose_tiled(s, m, n, o);
        }
        return out;
    }
    permute_reference(src, &sh, &pm)
}

/// A slice `start..start + len` of the middle dim of `x` `[outer, n, inner]` →
/// `out` `[outer, len, inner]`: `outer` runs of `len·inner` contiguous elements.
pub fn narrow<T: Copy>(
    x: &[T],
    outer: usize,
    n: usize,
    inner: usize,
    start: usize,
    len: usize,
    out: &mut [T],
) {
    assert!(start + len <= n && x.len() == outer * n * inner && out.len() == outer * len * inner);
    let run = len * inner;
    for (o, dst) in out.chunks_exact_mut(run.max(1)).take(outer).enumerate() {
        dst.copy_from_slice(&x[(o * n + start) * inner..(o * n + start) * inner + run]);
    }
}

/// The adjoint of [`narrow`], in place: `dx[:, start..start + len, :] += g`
/// (dx `[outer, n, inner]`, g `[outer, len, inner]`); the rest of dx is untouched.
pub fn narrow_add<T: crate::Float>(
    g: &[T],
    outer: usize,
    n: usize,
    inner: usize,
    start: usize,
    len: usize,
    dx: &mut [T],
) {
    assert!(start + len <= n && dx.len() == outer * n * inner && g.len() == outer * len * inner);
    let run = len * inner;
    for (o, gs) in g.chunks_exact(run.max(1)).take(outer).enumerate() {
        let dst = &mut dx[(o * n + start) * inner..(o * n + start) * inner + run];
        dst.iter_mut().zip(gs).for_each(|(d, &g)| *d += g);
    }
}

/// Joins `parts[i]` `[outer, sizes[i], inner]` along the middle dim into
/// `out` `[outer, Σ sizes, inner]`.
pub fn concat<T: Copy>(parts: &[&[T]], sizes: &[usize], outer: usize, inner: usize, out: &mut [T]) {
    let total: usize = sizes.iter().sum();
    assert!(parts.len() == sizes.len() && out.len() == outer * total * inner, "concat: bad sizes");
    let mut at = 0;
    for o in 0..outer {
        for (src, &n) in parts.iter().zip(sizes) {
            out[at..at + n * inner].copy_from_slice(&src[o * n * inner..(o + 1) * n * inner]);
            at += n * inner;
        }
    }
}

/// The reference of [`narrow`] and [`concat`]: element by element.
pub fn concat_reference<T: Copy>(parts: &[&[T]], sizes: &[usize], outer: usize, inner: usize) -> Vec<T> {
    let total: usize = sizes.iter().sum();
    let mut out = Vec::with_capacity(outer * total * inner);
    for o in 0..outer {
        for j in 0..total {
            let (mut p, mut jj) = (0, j);
            while jj >= sizes[p] {
                jj -= sizes[p];
                p += 1;
            }
            for i in 0..inner {
                out.push(parts[p][(o * sizes[p] + jj) * inner + i]);
            }
        }
    }
    out
}

/// The last dim stays last: copy runs of `shape[r−1]` contiguous elements.
fn copy_runs<T: Copy>(src: &[T], shape: &[usize], perm: &[usize]) -> Vec<T> {
    let r = shape.len();
    let run = shape[r - 1];
    let strides = row_major_strides(shape);
    let out_shape: Vec<usize> = perm[..r - 1].iter().map(|&p| shape[p]).collect();
    let step: Vec<usize> = perm[..r - 1].iter().map(|&p| strides[p]).collect();
    let mut out = Vec::with_capacity(src.len());
    let (mut idx, mut off) = (vec![0usize; r - 1], 0usize);
    for _ in 0..src.len() / run {
        out.extend_from_slice(&src[off..off + run]);
        for d in (0..r - 1).rev() {
            idx[d] += 1;
            off += step[d];
            if idx[d] < out_shape[d] {
                break;
            }
            off -= step[d] * out_shape[d];
            idx[d] = 0;
        }
    }
    out
}

/// `out [n, m] = srcᵀ`, `src [m, n]`, in 32 x 32 tiles (a tile's rows and columns both stay
/// in L1, so neither side is walked with a page-sized stride element by element).
fn transpose_tiled<T: Copy>(src: &[T], m: usize, n: usize, out: &mut [T]) {
    const TILE: usize = 32;
    for i0 in (0..m).step_by(TILE) {
        let i1 = (i0 + TILE).min(m);
        for j0 in (0..n).step_by(TILE) {
            let j1 = (j0 + TILE).min(n);
            for i in i0..i1 {
                let row = &src[i * n..i * n + n];
                for j in j0..j1 {
                    out[j * m + i] = row[j];
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fast_paths_match_reference() {
        let cases: &[(&[usize], &[usize])] = &[
            (&[7], &[0]),
            (&[3, 5], &[1, 0]),
            (&[33, 257], &[1, 0]),
            (&[1, 17, 1], &[2, 0, 1]),
            (&[2, 15, 3, 32], &[0, 2, 1, 3]),
            (&[4, 33, 65], &[0, 2, 1]),
            (&[2, 3, 4, 5], &[3, 2, 1, 0]),
            (&[2, 3, 4, 5], &[1, 2, 0, 3]),
            (&[2, 3, 4, 5], &[0, 1, 3, 2]),
            (&[2, 1, 4, 1, 5], &[4, 3, 2, 1, 0]),
            (&[6, 7, 8], &[1, 2, 0]),
            (&[3, 4, 5, 6], &[0, 3, 1, 2]),
        ];
        for &(shape, perm) in cases {
            let n: usize = shape.iter().product();
            let src: Vec<f64> = (0..n).map(|i| i as f64).collect();
            assert_eq!(
                permute(&src, shape, perm),
                permute_reference(&src, shape, perm),
                "{shape:?} {perm:?}"
            );
        }
    }

    #[test]
    fn narrow_and_concat_match_reference() {
        let (outer, inner, sizes) = (3, 2, [2usize, 0, 3]);
        let parts: Vec<Vec<f64>> = sizes
            .iter()
            .enumerate()
            .map(|(p, &n)| (0..outer * n * inner).map(|i| (p * 100 + i) as f64).collect())
            .collect();
        let refs: Vec<&[f64]> = parts.iter().map(|p| &p[..]).collect();
        let mut out = vec![0.0; outer * 5 * inner];
        concat(&refs, &sizes, outer, inner, &mut out);
        assert_eq!(out, concat_reference(&refs, &sizes, outer, inner));
        // narrowing the joined tensor gives each part back, and narrow_add is its adjoint
        let mut back = vec![0.0; outer * 3 * inner];
        narrow(&out, outer, 5, inner, 2, 3, &mut back);
        assert_eq!(back, parts[2]);
        let mut dx = vec![1.0; out.len()];
        narrow_add(&back, outer, 5, inner, 2, 3, &mut dx);
        for (i, (d, o)) in dx.iter().zip(&out).enumerate() {
            let in_slice = (i / inner) % 5 >= 2;
            assert_eq!(*d, if in_slice { 1.0 + o } else { 1.0 });
        }
    }

    #[test]
    fn simplify_merges_and_drops() {
        assert_eq!(simplify(&[2, 3, 4, 5], &[0, 2, 1, 3]), (vec![2, 3, 4, 5], vec![0, 2, 1, 3]));
        assert_eq!(simplify(&[2, 3, 4, 5], &[0, 1, 3, 2]), (vec![6, 4, 5], vec![0, 2, 1]));
        assert_eq!(simplify(&[2, 1, 4], &[1, 0, 2]), (vec![8], vec![0]));
        assert_eq!(simplify(&[3, 4, 5, 6], &[2, 3, 0, 1]), (vec![12, 30], vec![1, 0]));
    }
}
