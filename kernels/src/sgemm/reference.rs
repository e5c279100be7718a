//! Naive reference GEMM, generic over the element type (used by tests and for validation).

use crate::gemm::{Dims, MatMut, MatRef};
use std::ops::{Add, Mul};

/// `C = beta·C + A·B` (`+ bias[j]` on every row when C carries a bias) for every item of the
/// batch, by the textbook triple loop, items one after another (so overlapping C items
/// accumulate in order, as in [`crate::sgemm::sgemm`]).
///
/// When `beta == T::default()` (zero) the old contents of C are ignored (they may be NaN).
pub fn gemm_reference<T>(d: Dims, a: MatRef<T>, b: MatRef<T>, beta: T, mut c: MatMut<T>)
where
    T: Copy + Add<Output = T> + Mul<Output = T> + Default + PartialEq,
{
    let zero = T::default();
    let bias = c.bias;
    for item in 0..d.batch {
        let (a, b, mut c) = (a.item(item), b.item(item), c.item(item));
        for i in 0..d.m {
            for j in 0..d.n {
                let mut acc = zero;
                for p in 0..d.k {
                    acc = acc + a.at(i, p) * b.at(p, j);
                }
                let ci = c.at(i, j);
                *ci = match start(beta, *ci, bias.map(|bias| bias[j])) {
                    Some(s) => s + acc,
                    None => acc,
                };
            }
        }
    }
}

/// What C holds before the sum is added, `beta·C + bias`: `None` when both are absent
/// (`beta` zero, no bias), so that an old C (even NaN) is never read then. The fast kernels
/// start their tiles the same way (`driver::CStart`), in the same order.
pub(crate) fn start<T>(beta: T, c: T, bias: Option<T>) -> Option<T>
where
    T: Copy + Add<Output = T> + Mul<Output = T> + Default + PartialEq,
{
    let scaled = (beta != T::default()).then(|| beta * c);
    match (scaled, bias) {
        (Some(s), Some(b)) => Some(s + b),
        (s, None) => s,
        (None, b) => b,
    }
}

/// `f64`-accumulating reference for `f32` data: the result is the exactly-rounded-ish
/// value the fast kernel's error is measured against (the bias too, when C carries one).
pub fn sgemm_reference_f64(d: Dims, a: MatRef<f32>, b: MatRef<f32>, beta: f32, mut c: MatMut<f32>) {
    let bias = c.bias;
    for item in 0..d.batch {
        let (a, b, mut c) = (a.item(item), b.item(item), c.item(item));
        for i in 0..d.m {
            for j in 0..d.n {
                let mut acc = 0.0f64;
                for p in 0..d.k {
                    acc += a.at(i, p) as f64 * b.at(p, j) as f64;
                }
                let ci = c.at(i, j);
                let start = if beta == 0.0 { 0.0 } else { beta as f64 * *ci as f64 };
                *ci = (start + bias.map_or(0.0, |bias| bias[j] as f64) + acc) as f32;
            }
        }
    }
}
