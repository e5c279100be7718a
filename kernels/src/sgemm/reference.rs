//! Naive reference GEMM, generic over the element type (used by tests and for validation).

use crate::gemm::{Dims, MatMut, MatRef};
use std::ops::{Add, Mul};

/// `C = beta·C + A·B` for every item of the batch, by the textbook triple loop, items one
/// after another (so overlapping C items accumulate in order, as in [`crate::sgemm::sgemm`]).
///
/// When `beta == T::default()` (zero) the old contents of C are ignored (they may be NaN).
pub fn gemm_reference<T>(d: Dims, a: MatRef<T>, b: MatRef<T>, beta: T, mut c: MatMut<T>)
where
    T: Copy + Add<Output = T> + Mul<Output = T> + Default + PartialEq,
{
    let zero = T::default();
    for item in 0..d.batch {
        let (a, b, mut c) = (a.item(item), b.item(item), c.item(item));
        for i in 0..d.m {
            for j in 0..d.n {
                let mut acc = zero;
                for p in 0..d.k {
                    acc = acc + a.at(i, p) * b.at(p, j);
                }
                let ci = c.at(i, j);
                *ci = if beta == zero { acc } else { beta * *ci + acc };
            }
        }
    }
}

/// `f64`-accumulating reference for `f32` data: the result is the exactly-rounded-ish
/// value the fast kernel's error is measured against.
pub fn sgemm_reference_f64(d: Dims, a: MatRef<f32>, b: MatRef<f32>, beta: f32, mut c: MatMut<f32>) {
    for item in 0..d.batch {
        let (a, b, mut c) = (a.item(item), b.item(item), c.item(item));
        for i in 0..d.m {
            for j in 0..d.n {
                let mut acc = 0.0f64;
                for p in 0..d.k {
                    acc += a.at(i, p) as f64 * b.at(p, j) as f64;
                }
                let ci = c.at(i, j);
                *ci = if beta == 0.0 { acc as f32 } else { (beta as f64 * *ci as f64 + acc) as f32 };
            }
        }
    }
}
