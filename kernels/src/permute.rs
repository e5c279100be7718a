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
    let mut out = src.to_vec();
    reference_into(src, shape, perm, &mut out);
    out
}

fn reference_into<T: Copy>(src: &[T], shape: &[usize], perm: &[usize], out: &mut [T]) {
    let r = shape.len();
    let numel: usize = shape.iter().product();
    assert_eq!(src.len(), numel, "permute: {} elements for shape {shape:?}", src.len());
    let strides = row_major_strides(shape);
    let out_shape: Vec<usize> = perm.iter().map(|&p| shape[p]).collect();
    let step: Vec<usize> = perm.iter().map(|&p| strides[p]).collect();
    let (mut idx, mut off) = (vec![0usize; r], 0usize);
    for o in out.iter_mut().take(numel) {
        *o = src[off];
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
pub(crate) fn simplify(shape: &[usize], perm: &[usize]) -> (Vec<usize>, Vec<usize>) {
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
    let mut out = vec![T::default(); src.len()];
    permute_into(src, shape, perm, &mut out);
    out
}

/// [`permute`] into `out` (as long as `src`), every element of which it writes.
pub fn permute_into<T: Copy>(src: &[T], shape: &[usize], perm: &[usize], out: &mut [T]) {
    let numel: usize = shape.iter().product();
    assert_eq!(src.len(), numel, "permute: {} elements for shape {shape:?}", src.len());
    assert_eq!(out.len(), numel, "permute: {} output elements for {numel}", out.len());
    if numel == 0 {
        return; // a zero dim: the fast paths below would chunk or divide by it
    }
    let (sh, pm) = simplify(shape, perm);
    let r = sh.len();
    if r <= 1 {
        out.copy_from_slice(src);
        return;
    }
    if pm[r - 1] == r - 1 {
        return copy_runs(src, &sh, &pm, out);
    }
    if r <= 3 && pm[r - 1] == r - 2 && pm[r - 2] == r - 1 && (r == 2 || pm[0] == 0) {
        let batch = if r == 3 { sh[0] } else { 1 };
        let (m, n) = (sh[r - 2], sh[r - 1]);
        for (s, o) in src.chunks_exact(m * n).zip(out.chunks_exact_mut(m * n)).take(batch) {
            transpose_tiled(s, m, n, o);
        }
        return;
    }
    reference_into(src, &sh, &pm, out);
}

/// The last dim stays last: copy runs of `shape[r−1]` contiguous elements.
fn copy_runs<T: Copy>(src: &[T], shape: &[usize], perm: &[usize], out: &mut [T]) {
    let r = shape.len();
    let run = shape[r - 1];
    let strides = row_major_strides(shape);
    let out_shape: Vec<usize> = perm[..r - 1].iter().map(|&p| shape[p]).collect();
    let step: Vec<usize> = perm[..r - 1].iter().map(|&p| strides[p]).collect();
    let (mut idx, mut off) = (vec![0usize; r - 1], 0usize);
    for o in out.chunks_exact_mut(run) {
        o.copy_from_slice(&src[off..off + run]);
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

/// Elements per thread at least for the row copies below (smaller inputs stay on the
/// calling thread): they are memory-bound, and a second core still adds bandwidth.
const PAR_MIN: usize = 1 << 16;

/// `f(dst row r [..width], src row r [..width])` for r < rows, rows `src_stride` and
/// `dst_stride` apart, the rows·width elements split over the threads (a part may start or
/// end mid-row; `f` then gets the piece).
fn rows_apply<T: Copy + Send + Sync>(
    src: &[T],
    src_stride: usize,
    dst: &mut [T],
    dst_stride: usize,
    (rows, width): (usize, usize),
    f: impl Fn(&mut [T], &[T]) + Sync,
) {
    let dst = crate::threads::SharedMut::new(dst);
    crate::threads::par_ranges(rows * width, PAR_MIN, 16, |range| {
        let mut e = range.start;
        while e < range.end {
            let (r, j0) = (e / width, e % width);
            let j1 = width.min(j0 + (range.end - e));
            // SAFETY: parts take disjoint element ranges, and (row, column) ↦ row·dst_stride +
            // column is one-to-one for column < width ≤ dst_stride: disjoint pieces of dst.
            let d = unsafe { dst.range(r * dst_stride + j0..r * dst_stride + j1) };
            f(d, &src[r * src_stride + j0..r * src_stride + j1]);
            e += j1 - j0;
        }
    });
}

/// out[o, j, i] = x[o, start + j, i] for j < len: elements `start..start+len` of the
/// middle dim.                               x [outer, n, inner], out [outer, len, inner]
pub fn narrow<T: Copy + Send + Sync>(
    x: &[T],
    outer: usize,
    n: usize,
    inner: usize,
    start: usize,
    len: usize,
    out: &mut [T],
) {
    assert!(start + len <= n && x.len() == outer * n * inner && out.len() == outer * len * inner);
    let w = len * inner;
    // (min: an empty x, outer = 0, has no element `start·inner`)
    let x = &x[(start * inner).min(x.len())..];
    rows_apply(x, n * inner, out, w, (outer, w), |d, s| d.copy_from_slice(s));
}

/// The backward of [`narrow`]: dx[o, start + j, i] += g[o, j, i]; the rest of dx is
/// untouched.                                g [outer, len, inner], dx [outer, n, inner]
pub fn narrow_backward<T: crate::Float>(
    g: &[T],
    outer: usize,
    n: usize,
    inner: usize,
    start: usize,
    len: usize,
    dx: &mut [T],
) {
    assert!(start + len <= n && dx.len() == outer * n * inner && g.len() == outer * len * inner);
    let w = len * inner;
    let add = |d: &mut [T], s: &[T]| d.iter_mut().zip(s).for_each(|(d, &v)| *d += v);
    let at = (start * inner).min(dx.len());
    rows_apply(g, w, &mut dx[at..], n * inner, (outer, w), add);
}

/// Joins `xs` along the middle dim: x_k is `[outer, sizes[k], inner]`, out is
/// `[outer, Σ sizes, inner]` (each x_k's gradient is a [`narrow`] of out's).
pub fn concat<T: Copy + Send + Sync>(
    xs: &[&[T]],
    sizes: &[usize],
    outer: usize,
    inner: usize,
    out: &mut [T],
) {
    let total: usize = sizes.iter().sum();
    assert!(xs.len() == sizes.len() && out.len() == outer * total * inner, "concat: bad buffer sizes");
    let mut start = 0;
    for (x, &n) in xs.iter().zip(sizes) {
        assert_eq!(
            x.len(),
            outer * n * inner,
            "concat: a part holds {} elements, not {outer}·{n}·{inner}",
            x.len()
        );
        let w = n * inner;
        let dst = &mut out[(start * inner).min(outer * total * inner)..];
        rows_apply(x, w, dst, total * inner, (outer, w), |d, s| d.copy_from_slice(s));
        start += n;
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

    /// A zero dim anywhere permutes to nothing (it used to panic: the tiled transpose
    /// chunked by m·n = 0, the run copy divided by a run of 0).
    #[test]
    fn empty_shapes_permute_to_nothing() {
        let cases: &[(&[usize], &[usize])] = &[
            (&[2, 0, 3], &[2, 0, 1]), // transpose of [0, 3]-ish blocks
            (&[0, 3], &[1, 0]),
            (&[3, 0], &[1, 0]),
            (&[2, 3, 0], &[1, 0, 2]), // runs of 0
            (&[0, 2, 3], &[0, 2, 1]),
            (&[4, 0, 5, 6], &[3, 1, 0, 2]), // the odometer
        ];
        for &(shape, perm) in cases {
            assert!(permute::<f32>(&[], shape, perm).is_empty(), "{shape:?} {perm:?}");
            assert!(permute_reference::<f32>(&[], shape, perm).is_empty(), "{shape:?} {perm:?}");
        }
    }

    #[test]
    fn narrow_concat_and_back() {
        // a [2, 3, 2], b [2, 1, 2] → ab [2, 4, 2]; narrowing ab gives a and b back
        let a: Vec<f64> = (0..12).map(|i| i as f64).collect();
        let b = [100.0, 101.0, 102.0, 103.0];
        let mut ab = vec![0.0; 16];
        concat(&[&a, &b], &[3, 1], 2, 2, &mut ab);
        assert_eq!(ab[6..10], [100.0, 101.0, 6.0, 7.0]);
        let (mut a2, mut b2) = (vec![0.0; 12], vec![0.0; 4]);
        narrow(&ab, 2, 4, 2, 0, 3, &mut a2);
        narrow(&ab, 2, 4, 2, 3, 1, &mut b2);
        assert_eq!((a2, b2.as_slice()), (a, &b[..]));
        let mut d = vec![1.0; 16];
        narrow_backward(&b, 2, 4, 2, 3, 1, &mut d);
        assert_eq!(d[6..8], [101.0, 102.0]);
        assert_eq!(d.iter().filter(|&&v| v == 1.0).count(), 12);
    }

    /// Large enough to split over the threads, with parts starting mid-row: narrow, its
    /// backward and concat against plain loops.
    #[test]
    fn row_copies_split_over_threads_match_loops() {
        let (outer, n, inner) = (5usize, 7001usize, 9usize);
        let x: Vec<f64> = (0..outer * n * inner).map(|i| i as f64).collect();
        for (start, len) in [(0, n), (3, 4000), (6999, 2)] {
            let mut out = vec![f64::NAN; outer * len * inner];
            narrow(&x, outer, n, inner, start, len, &mut out);
            let mut dx = vec![0.5; outer * n * inner];
            narrow_backward(&out, outer, n, inner, start, len, &mut dx);
            for o in 0..outer {
                for j in 0..n {
                    for i in 0..inner {
                        let xi = (o * n + j) * inner + i;
                        if (start..start + len).contains(&j) {
                            assert_eq!(out[(o * len + j - start) * inner + i], x[xi]);
                            assert_eq!(dx[xi], 0.5 + x[xi]);
                        } else {
                            assert_eq!(dx[xi], 0.5, "outside the narrowed range");
                        }
                    }
                }
            }
        }
        let (a, b): (Vec<f64>, Vec<f64>) = (
            (0..outer * 3000 * inner).map(|i| i as f64).collect(),
            (0..outer * 4001 * inner).map(|i| -(i as f64)).collect(),
        );
        let mut ab = vec![f64::NAN; x.len()];
        concat(&[&a, &b], &[3000, 4001], outer, inner, &mut ab);
        for o in 0..outer {
            let row = &ab[o * n * inner..(o + 1) * n * inner];
            assert_eq!(row[..3000 * inner], a[o * 3000 * inner..(o + 1) * 3000 * inner]);
            assert_eq!(row[3000 * inner..], b[o * 4001 * inner..(o + 1) * 4001 * inner]);
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
