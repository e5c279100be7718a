//! NumPy broadcasting on row-major buffers: binary ops, expand, and the
//! reduction back to an operand's shape that every broadcasting backward needs.
//!
//! The cases a transformer runs on every layer take a threaded path: a binary op of
//! two same-shape operands (the residual add), split into ranges over the threads; an
//! expand that repeats `x` whole (a row `[n]` → `[rows, n]`), split into blocks of whole
//! copies; and its adjoint, the sum of those copies (a linear layer's bias gradient), each
//! thread summing a block of rows. (A linear layer's bias itself is not expanded on the
//! CPU: the product adds it to each C tile, `gemm::MatMut::with_bias`.)

use crate::elementwise::PAR_MIN;
use crate::threads::{par_ranges, SharedMut};
use crate::Float;

/// The broadcast shape of `a` and `b` (NumPy rules: align on the right, a dim of 1
/// stretches), or `None` when they are incompatible.
pub fn broadcast_shape(a: &[usize], b: &[usize]) -> Option<Vec<usize>> {
    let r = a.len().max(b.len());
    let mut out = vec![0; r];
    for i in 0..r {
        let da = if i + a.len() >= r { a[i + a.len() - r] } else { 1 };
        let db = if i + b.len() >= r { b[i + b.len() - r] } else { 1 };
        out[i] = match (da, db) {
            (x, y) if x == y => x,
            (1, y) => y,
            (x, 1) => x,
            _ => return None,
        };
    }
    Some(out)
}

/// Strides (in elements) to read a row-major `shape` as if it had `out_shape`:
/// broadcast dims get stride 0.
pub fn broadcast_strides(shape: &[usize], out_shape: &[usize]) -> Vec<usize> {
    let r = out_shape.len();
    assert!(shape.len() <= r, "broadcast: {shape:?} has more dims than {out_shape:?}");
    let mut strides = vec![0; r];
    let mut s = 1;
    for i in (0..shape.len()).rev() {
        let o = i + r - shape.len();
        strides[o] = if shape[i] == 1 && out_shape[o] != 1 { 0 } else { s };
        s *= shape[i];
    }
    strides
}

/// Calls `f(offset_a, offset_b, offset_out, inner_len, inner_stride_a, inner_stride_b)`
/// once per run of the last dimension of `out_shape`.
fn for_each_row(
    out_shape: &[usize],
    sa: &[usize],
    sb: &[usize],
    mut f: impl FnMut(usize, usize, usize, usize, usize, usize),
) {
    let r = out_shape.len();
    if r == 0 {
        f(0, 0, 0, 1, 0, 0);
        return;
    }
    let inner = out_shape[r - 1];
    let rows: usize = out_shape[..r - 1].iter().product();
    if inner == 0 || rows == 0 {
        return;
    }
    let mut idx = vec![0usize; r - 1];
    let (mut oa, mut ob) = (0usize, 0usize);
    for row in 0..rows {
        f(oa, ob, row * inner, inner, sa[r - 1], sb[r - 1]);
        // odometer increment over the outer dims
        for d in (0..r - 1).rev() {
            idx[d] += 1;
            oa += sa[d];
            ob += sb[d];
            if idx[d] < out_shape[d] {
                break;
            }
            oa -= sa[d] * out_shape[d];
            ob -= sb[d] * out_shape[d];
            idx[d] = 0;
        }
    }
}

/// `out = f(a, b)` elementwise with broadcasting; `out` has `out_shape`.
pub fn zip_broadcast<T: Float>(
    a: &[T],
    a_shape: &[usize],
    b: &[T],
    b_shape: &[usize],
    out_shape: &[usize],
    out: &mut [T],
    f: impl Fn(T, T) -> T + Sync,
) {
    if a_shape == b_shape {
        // fast path: same shape, ranges split between threads
        assert!(a.len() == out.len() && b.len() == out.len(), "zip_broadcast: buffers differ in length");
        let o = SharedMut::new(out);
        par_ranges(a.len(), PAR_MIN, 16, |r| {
            // SAFETY: each part writes its own range.
            let out = unsafe { o.range(r.clone()) };
            for ((o, &x), &y) in out.iter_mut().zip(&a[r.clone()]).zip(&b[r]) {
                *o = f(x, y);
            }
        });
        return;
    }
    let sa = broadcast_strides(a_shape, out_shape);
    let sb = broadcast_strides(b_shape, out_shape);
    for_each_row(out_shape, &sa, &sb, |oa, ob, oo, len, ia, ib| {
        let out = &mut out[oo..oo + len];
        match (ia, ib) {
            (1, 1) => {
                for ((o, &x), &y) in out.iter_mut().zip(&a[oa..oa + len]).zip(&b[ob..ob + len]) {
                    *o = f(x, y);
                }
            }
            (1, 0) => {
                let y = b[ob];
                for (o, &x) in out.iter_mut().zip(&a[oa..oa + len]) {
                    *o = f(x, y);
                }
            }
            _ => {
                for (j, o) in out.iter_mut().enumerate() {
                    *o = f(a[oa + j * ia], b[ob + j * ib]);
                }
            }
        }
    });
}

/// The binary ops of two broadcast tensors, with the op codes the GPU kernels take
/// (`kernels/cuda/broadcast.cu`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Binary {
    Add,
    Sub,
    Mul,
    Div,
    /// The larger; a NaN loses (as `f64::max`).
    Max,
    /// The smaller; a NaN loses.
    Min,
}

impl Binary {
    pub const ALL: [Binary; 6] =
        [Binary::Add, Binary::Sub, Binary::Mul, Binary::Div, Binary::Max, Binary::Min];

    /// f(x, y).
    #[inline(always)]
    pub fn apply<T: Float>(self, x: T, y: T) -> T {
        match self {
            Binary::Add => x + y,
            Binary::Sub => x - y,
            Binary::Mul => x * y,
            Binary::Div => x / y,
            Binary::Max => x.max(y),
            Binary::Min => {
                if y < x || x.is_nan() {
                    y
                } else {
                    x
                }
            }
        }
    }

    /// The op code of the GPU kernels (`BIN_*` in `broadcast.cu`).
    pub fn code(self) -> u32 {
        self as u32
    }
}

/// `out = op(a, b)` elementwise with broadcasting; `out` has `out_shape`.
pub fn binary<T: Float>(
    op: Binary,
    a: &[T],
    a_shape: &[usize],
    b: &[T],
    b_shape: &[usize],
    out_shape: &[usize],
    out: &mut [T],
) {
    // one closure type per op, so the op is a constant in each loop (which then vectorizes)
    macro_rules! with_op {
        ($($op:ident),*) => {
            match op {
                $(Binary::$op => zip_broadcast(a, a_shape, b, b_shape, out_shape, out, |x, y| Binary::$op.apply(x, y)),)*
            }
        };
    }
    with_op!(Add, Sub, Mul, Div, Max, Min)
}

/// Copies `x` (shape `x_shape`) broadcast to `out_shape` into `out`.
pub fn expand<T: Float>(x: &[T], x_shape: &[usize], out_shape: &[usize], out: &mut [T]) {
    let sx = broadcast_strides(x_shape, out_shape);
    if repeats_whole(x_shape, out_shape) {
        // out (R, n) = R copies of x (n): blocks of whole copies split between threads
        let (n, copies) = (x.len(), out.len() / x.len());
        let o = SharedMut::new(out);
        par_ranges(copies, PAR_MIN.div_ceil(n), 1, |copies| {
            // SAFETY: each part writes its own copies.
            let out = unsafe { o.range(copies.start * n..copies.end * n) };
            out.chunks_exact_mut(n).for_each(|c| c.copy_from_slice(x));
        });
        return;
    }
    for_each_row(out_shape, &sx, &sx, |ox, _, oo, len, ix, _| {
        let out = &mut out[oo..oo + len];
        match ix {
            0 => out.fill(x[ox]),
            1 => out.copy_from_slice(&x[ox..ox + len]),
            _ => out.iter_mut().enumerate().for_each(|(j, o)| *o = x[ox + j * ix]),
        }
    });
}

/// Whether broadcasting `x_shape` to `out_shape` repeats x whole: x's dims, less
/// leading 1s, are the trailing dims of `out_shape` (e.g. `[n]` or `[1, n]` → `[R, n]`).
fn repeats_whole(x_shape: &[usize], out_shape: &[usize]) -> bool {
    let first = x_shape.iter().position(|&d| d != 1).unwrap_or(x_shape.len());
    let x = &x_shape[first..];
    let n: usize = x.iter().product();
    n > 0 && x.len() <= out_shape.len() && out_shape.ends_with(x)
}

/// The adjoint of [`expand`]: sums `x` (shape `x_shape`) down to `target_shape`,
/// which must broadcast to `x_shape`. `out` is overwritten.
pub fn sum_to<T: Float>(x: &[T], x_shape: &[usize], target_shape: &[usize], out: &mut [T]) {
    out.fill(T::ZERO);
    if x_shape == target_shape {
        out.copy_from_slice(x);
        return;
    }
    if repeats_whole(target_shape, x_shape) {
        // out (n) = Σ over the R rows of x (R, n) (a linear layer's bias gradient): each
        // thread sums a block of rows, then the blocks' sums are added in order
        let n = out.len();
        let rows = x.len() / n;
        let parts = crate::threads::num_threads().min(x.len() / PAR_MIN).clamp(1, rows.max(1));
        let mut partial = vec![T::ZERO; (parts - 1) * n];
        let slots = SharedMut::new(&mut partial);
        let first = SharedMut::new(out);
        let per = rows.div_ceil(parts);
        crate::threads::run_parts(parts, |i| {
            // SAFETY: part i alone writes its slot (part 0: `out` itself).
            let acc = unsafe {
                if i == 0 {
                    first.range(0..n)
                } else {
                    slots.range((i - 1) * n..i * n)
                }
            };
            for row in x[(i * per).min(rows) * n..((i + 1) * per).min(rows) * n].chunks_exact(n) {
                acc.iter_mut().zip(row).for_each(|(a, &v)| *a += v);
            }
        });
        for part in partial.chunks_exact(n) {
            out.iter_mut().zip(part).for_each(|(o, &v)| *o += v);
        }
        return;
    }
    let st = broadcast_strides(target_shape, x_shape);
    for_each_row(x_shape, &st, &st, |ot, _, ox, len, it, _| {
        let row = &x[ox..ox + len];
        match it {
            0 => out[ot] += row.iter().copied().sum::<T>(),
            1 => out[ot..ot + len].iter_mut().zip(row).for_each(|(o, &v)| *o += v),
            _ => row.iter().enumerate().for_each(|(j, &v)| out[ot + j * it] += v),
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shapes_broadcast_like_numpy() {
        assert_eq!(broadcast_shape(&[3, 1, 5], &[4, 1]), Some(vec![3, 4, 5]));
        assert_eq!(broadcast_shape(&[], &[2, 3]), Some(vec![2, 3]));
        assert_eq!(broadcast_shape(&[2, 3], &[3, 2]), None);
    }

    #[test]
    fn binary_ops() {
        let (a, b) = ([1.0, -2.0, f64::NAN], [0.5]);
        let mut out = [0.0; 3];
        let want: [(Binary, [f64; 3]); 6] = [
            (Binary::Add, [1.5, -1.5, f64::NAN]),
            (Binary::Sub, [0.5, -2.5, f64::NAN]),
            (Binary::Mul, [0.5, -1.0, f64::NAN]),
            (Binary::Div, [2.0, -4.0, f64::NAN]),
            (Binary::Max, [1.0, 0.5, 0.5]),
            (Binary::Min, [0.5, -2.0, 0.5]),
        ];
        for (op, w) in want {
            binary(op, &a, &[3], &b, &[1], &[3], &mut out);
            for i in 0..3 {
                assert!(out[i] == w[i] || (out[i].is_nan() && w[i].is_nan()), "{op:?} at {i}: {}", out[i]);
            }
        }
    }

    #[test]
    fn zip_and_sum_to_are_adjoint() {
        // a (2,3) + b (3,) ; then sum back to (3,)
        let a = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0];
        let b = [10.0, 20.0, 30.0];
        let mut out = [0.0; 6];
        zip_broadcast(&a, &[2, 3], &b, &[3], &[2, 3], &mut out, |x, y| x + y);
        assert_eq!(out, [11.0, 22.0, 33.0, 14.0, 25.0, 36.0]);
        let mut col = [0.0; 2];
        sum_to(&a, &[2, 3], &[2, 1], &mut col);
        assert_eq!(col, [6.0, 15.0]);
        let mut row = [0.0; 3];
        sum_to(&a, &[2, 3], &[1, 3], &mut row);
        assert_eq!(row, [5.0, 7.0, 9.0]);
        let mut e = [0.0; 6];
        expand(&[1.0, 2.0], &[2, 1], &[2, 3], &mut e);
        assert_eq!(e, [1.0, 1.0, 1.0, 2.0, 2.0, 2.0]);
    }

    /// The threaded paths (same-shape zip, whole-copy expand) and the row paths against
    /// indexing by the broadcast strides, on sizes that split between threads.
    #[test]
    fn threaded_and_row_paths_match_indexing() {
        let idx = |shape: &[usize], out_shape: &[usize], flat: usize| {
            let st = broadcast_strides(shape, out_shape);
            let (mut rest, mut at) = (flat, 0);
            for (d, s) in out_shape.iter().zip(&st).rev() {
                at += (rest % d) * s;
                rest /= d;
            }
            at
        };
        for (x_shape, out_shape) in [
            (vec![384], vec![300, 384]),
            (vec![1, 7], vec![5000, 7]),
            (vec![3, 1, 5], vec![3, 4000, 5]),
            (vec![2, 1], vec![2, 3]),
            (vec![4], vec![0, 4]),
        ] {
            let n: usize = x_shape.iter().product();
            let x: Vec<f64> = (0..n).map(|i| i as f64 * 0.5 - 3.0).collect();
            let mut out = vec![0.0; out_shape.iter().product()];
            expand(&x, &x_shape, &out_shape, &mut out);
            for (i, &o) in out.iter().enumerate() {
                assert_eq!(o, x[idx(&x_shape, &out_shape, i)], "expand {x_shape:?} → {out_shape:?} at {i}");
            }
            // the adjoint: integers, so any summation order gives the same sums
            let big: Vec<f64> = (0..out.len()).map(|i| (i % 11) as f64).collect();
            let mut want = vec![0.0; n];
            for (i, &v) in big.iter().enumerate() {
                want[idx(&x_shape, &out_shape, i)] += v;
            }
            let mut got = vec![7.0; n];
            sum_to(&big, &out_shape, &x_shape, &mut got);
            assert_eq!(got, want, "sum_to {out_shape:?} → {x_shape:?}");
        }
        let len = 3 * PAR_MIN + 5;
        let a: Vec<f32> = (0..len).map(|i| (i % 97) as f32).collect();
        let b: Vec<f32> = (0..len).map(|i| (i % 13) as f32 * 0.25).collect();
        let mut out = vec![0f32; len];
        binary(Binary::Sub, &a, &[len], &b, &[len], &[len], &mut out);
        assert!(out.iter().zip(a.iter().zip(&b)).all(|(&o, (&x, &y))| o == x - y));
    }
}
