//! NumPy broadcasting on row-major buffers: binary ops, expand, and the
//! reduction back to an operand's shape that every broadcasting backward needs.

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
    f: impl Fn(T, T) -> T,
) {
    if a_shape == b_shape {
        // fast path: same shape
        for ((o, &x), &y) in out.iter_mut().zip(a).zip(b) {
            *o = f(x, y);
        }
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

/// The binary elementwise ops (`out = a op b` with broadcasting). The GPU runs the
/// same list; [`Binary::code`] is the op code its kernel takes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Binary {
    Add,
    Sub,
    Mul,
    Div,
}

impl Binary {
    /// The op code of the GPU kernels (`BINARY_*` in `kernels/cuda/broadcast.cu`).
    pub fn code(self) -> u32 {
        self as u32
    }
    pub fn all() -> [Binary; 4] {
        [Binary::Add, Binary::Sub, Binary::Mul, Binary::Div]
    }
}

/// `out = a op b` with broadcasting (`out` has `out_shape`). The op is matched once,
/// outside the loops, so each op runs its own monomorphic loop.
pub fn binary<T: Float>(
    op: Binary,
    a: &[T],
    a_shape: &[usize],
    b: &[T],
    b_shape: &[usize],
    out_shape: &[usize],
    out: &mut [T],
) {
    match op {
        Binary::Add => zip_broadcast(a, a_shape, b, b_shape, out_shape, out, |x, y| x + y),
        Binary::Sub => zip_broadcast(a, a_shape, b, b_shape, out_shape, out, |x, y| x - y),
        Binary::Mul => zip_broadcast(a, a_shape, b, b_shape, out_shape, out, |x, y| x * y),
        Binary::Div => zip_broadcast(a, a_shape, b, b_shape, out_shape, out, |x, y| x / y),
    }
}

/// The reference of [`binary`]: one output element at a time, by index arithmetic.
pub fn binary_reference<T: Float>(
    op: Binary,
    a: &[T],
    a_shape: &[usize],
    b: &[T],
    b_shape: &[usize],
    out_shape: &[usize],
    out: &mut [T],
) {
    let (sa, sb) = (broadcast_strides(a_shape, out_shape), broadcast_strides(b_shape, out_shape));
    for (i, o) in out.iter_mut().enumerate() {
        let (mut rest, mut ia, mut ib) = (i, 0, 0);
        for d in (0..out_shape.len()).rev() {
            let k = rest % out_shape[d];
            rest /= out_shape[d];
            ia += k * sa[d];
            ib += k * sb[d];
        }
        let (x, y) = (a[ia], b[ib]);
        *o = match op {
            Binary::Add => x + y,
            Binary::Sub => x - y,
            Binary::Mul => x * y,
            Binary::Div => x / y,
        };
    }
}

/// Copies `x` (shape `x_shape`) broadcast to `out_shape` into `out`.
pub fn expand<T: Float>(x: &[T], x_shape: &[usize], out_shape: &[usize], out: &mut [T]) {
    let sx = broadcast_strides(x_shape, out_shape);
    for_each_row(out_shape, &sx, &sx, |ox, _, oo, len, ix, _| {
        if ix == 1 {
            out[oo..oo + len].copy_from_slice(&x[ox..ox + len]); // a whole row: one copy
        } else {
            for (j, o) in out[oo..oo + len].iter_mut().enumerate() {
                *o = x[ox + j * ix];
            }
        }
    });
}

/// The adjoint of [`expand`]: sums `x` (shape `x_shape`) down to `target_shape`,
/// which must broadcast to `x_shape`. `out` is overwritten.
pub fn sum_to<T: Float>(x: &[T], x_shape: &[usize], target_shape: &[usize], out: &mut [T]) {
    out.fill(T::ZERO);
    if x_shape == target_shape {
        out.copy_from_slice(x);
        return;
    }
    let st = broadcast_strides(target_shape, x_shape);
    for_each_row(x_shape, &st, &st, |ot, _, ox, len, it, _| {
        let row = &x[ox..ox + len];
        if it == 0 {
            out[ot] += row.iter().copied().sum::<T>();
        } else {
            for (j, &v) in row.iter().enumerate() {
                out[ot + j * it] += v;
            }
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

    #[test]
    fn binary_matches_reference() {
        let shapes: &[(&[usize], &[usize])] =
            &[(&[2, 3], &[2, 3]), (&[2, 3], &[3]), (&[4, 1, 5], &[3, 1]), (&[], &[2, 2]), (&[3, 1], &[1, 4])];
        for &(sa, sb) in shapes {
            let out_shape = broadcast_shape(sa, sb).unwrap();
            let n: usize = out_shape.iter().product();
            let a: Vec<f64> = (0..sa.iter().product()).map(|i| 1.5 + i as f64).collect();
            let b: Vec<f64> = (0..sb.iter().product()).map(|i| 0.25 - i as f64).collect();
            for op in Binary::all() {
                let (mut fast, mut slow) = (vec![0.0; n], vec![0.0; n]);
                binary(op, &a, sa, &b, sb, &out_shape, &mut fast);
                binary_reference(op, &a, sa, &b, sb, &out_shape, &mut slow);
                assert_eq!(fast, slow, "{op:?} {sa:?} {sb:?}");
            }
        }
    }
}
