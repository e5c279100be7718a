//! Choosing between values by a condition, elementwise: `masked_fill` and `where`.
//! Conditions are floats (any non-zero is true), already broadcast to the output's
//! length by the caller.

use crate::Float;

/// out = value where mask ≠ 0, else x.                 x, mask, out (n)
pub fn masked_fill<T: Float>(x: &[T], mask: &[T], value: T, out: &mut [T]) {
    assert!(x.len() == mask.len() && out.len() == x.len(), "masked_fill: buffers differ in length");
    for ((o, &x), &m) in out.iter_mut().zip(x).zip(mask) {
        *o = if m != T::ZERO { value } else { x };
    }
}

/// out = a where cond ≠ 0, else b.                      cond, a, b, out (n)
pub fn where_select<T: Float>(cond: &[T], a: &[T], b: &[T], out: &mut [T]) {
    let n = cond.len();
    assert!(a.len() == n && b.len() == n && out.len() == n, "where: buffers differ in length");
    for i in 0..n {
        out[i] = if cond[i] != T::ZERO { a[i] } else { b[i] };
    }
}

/// The gradients of `where` with respect to both branches, in one pass:
/// da = g where cond ≠ 0 (else 0), db = g where cond = 0 (else 0).
pub fn where_backward<T: Float>(cond: &[T], g: &[T], da: &mut [T], db: &mut [T]) {
    let n = cond.len();
    assert!(g.len() == n && da.len() == n && db.len() == n, "where_backward: buffers differ in length");
    for i in 0..n {
        let on = cond[i] != T::ZERO;
        da[i] = if on { g[i] } else { T::ZERO };
        db[i] = if on { T::ZERO } else { g[i] };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn picks_by_condition() {
        let (x, m) = ([1.0, 2.0, 3.0], [0.0, 1.0, -2.0]);
        let mut out = [0.0; 3];
        masked_fill(&x, &m, 9.0, &mut out);
        assert_eq!(out, [1.0, 9.0, 9.0]);
        where_select(&m, &x, &[7.0, 8.0, 9.0], &mut out);
        assert_eq!(out, [7.0, 2.0, 3.0]);
        let (mut da, mut db) = ([5.0; 3], [5.0; 3]);
        where_backward(&m, &[1.0, 2.0, 3.0], &mut da, &mut db);
        assert_eq!((da, db), ([0.0, 2.0, 3.0], [1.0, 0.0, 0.0]));
    }
}
