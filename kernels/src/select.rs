//! Elementwise selection by a mask: masked_fill and where, forward and backward.
//! Masks and conditions are `T` (nonzero = true) with the output's length: the caller
//! broadcasts them first (`broadcast::expand`). The GPU twin is `gpu/select.rs`.

use crate::Float;

/// out = value where mask ≠ 0, else x.                       x, mask, out (n)
pub fn masked_fill<T: Float>(x: &[T], mask: &[T], value: T, out: &mut [T]) {
    assert!(mask.len() == x.len() && out.len() == x.len(), "masked_fill: buffers differ in length");
    for ((o, &x), &m) in out.iter_mut().zip(x).zip(mask) {
        *o = if m != T::ZERO { value } else { x };
    }
}

/// dx = g where mask = 0, else 0 (written, not added).         g, mask, dx (n)
pub fn masked_fill_backward<T: Float>(g: &[T], mask: &[T], dx: &mut [T]) {
    assert!(mask.len() == g.len() && dx.len() == g.len(), "masked_fill_backward: buffers differ in length");
    for ((d, &g), &m) in dx.iter_mut().zip(g).zip(mask) {
        *d = if m != T::ZERO { T::ZERO } else { g };
    }
}

/// out = a where cond ≠ 0, else b.                           cond, a, b, out (n)
pub fn where_<T: Float>(cond: &[T], a: &[T], b: &[T], out: &mut [T]) {
    let n = cond.len();
    assert!(a.len() == n && b.len() == n && out.len() == n, "where: buffers differ in length");
    for i in 0..n {
        out[i] = if cond[i] != T::ZERO { a[i] } else { b[i] };
    }
}

/// `da = g·[cond]`, `db = g·[¬cond]` (written, not added; the caller sums each down to
/// its operand's shape with `broadcast::sum_to`).            g, cond, da, db (n)
pub fn where_backward<T: Float>(g: &[T], cond: &[T], da: &mut [T], db: &mut [T]) {
    let n = g.len();
    assert!(cond.len() == n && da.len() == n && db.len() == n, "where_backward: buffers differ in length");
    for i in 0..n {
        let c = cond[i] != T::ZERO;
        da[i] = if c { g[i] } else { T::ZERO };
        db[i] = if c { T::ZERO } else { g[i] };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fill_and_where_route_values_and_gradients() {
        let (x, mask) = ([1.0, 2.0, 3.0], [0.0, 1.0, -2.0]);
        let mut out = [0.0; 3];
        masked_fill(&x, &mask, -9.0, &mut out);
        assert_eq!(out, [1.0, -9.0, -9.0]);
        masked_fill_backward(&[5.0, 6.0, 7.0], &mask, &mut out);
        assert_eq!(out, [5.0, 0.0, 0.0]);
        where_(&mask, &x, &[10.0, 20.0, 30.0], &mut out);
        assert_eq!(out, [10.0, 2.0, 3.0]);
        let (mut da, mut db) = ([9.0; 3], [9.0; 3]);
        where_backward(&[5.0, 6.0, 7.0], &mask, &mut da, &mut db);
        assert_eq!((da, db), ([0.0, 6.0, 7.0], [5.0, 0.0, 0.0]));
    }
}
