//! Naive reference GEMM, generic over the element type (used by tests and for validation).

use std::ops::{Add, Mul};

/// `C[i*rsc + j] = beta * C[i*rsc + j] + sum_p A(i,p) * B(p,j)` with
/// `A(i,p) = a[i*rsa + p*csa]`, `B(p,j) = b[p*rsb + j*csb]`, by the textbook triple loop.
///
/// When `beta == T::default()` (zero) the old contents of C are ignored (they may be NaN).
#[allow(clippy::too_many_arguments)]
pub fn gemm_reference<T>(
    m: usize,
    n: usize,
    k: usize,
    a: &[T],
    rsa: usize,
    csa: usize,
    b: &[T],
    rsb: usize,
    csb: usize,
    beta: T,
    c: &mut [T],
    rsc: usize,
) where
    T: Copy + Add<Output = T> + Mul<Output = T> + Default + PartialEq,
{
    let zero = T::default();
    for i in 0..m {
        for j in 0..n {
            let mut acc = zero;
            for p in 0..k {
                acc = acc + a[i * rsa + p * csa] * b[p * rsb + j * csb];
            }
            let ci = &mut c[i * rsc + j];
            *ci = if beta == zero { acc } else { beta * *ci + acc };
        }
    }
}

/// `f64`-accumulating reference for `f32` data: the result is the exactly-rounded-ish
/// value the fast kernel's error is measured against.
#[allow(clippy::too_many_arguments)]
pub fn sgemm_reference_f64(
    m: usize,
    n: usize,
    k: usize,
    a: &[f32],
    rsa: usize,
    csa: usize,
    b: &[f32],
    rsb: usize,
    csb: usize,
    beta: f32,
    c: &mut [f32],
    rsc: usize,
) {
    for i in 0..m {
        for j in 0..n {
            let mut acc = 0.0f64;
            for p in 0..k {
                acc += a[i * rsa + p * csa] as f64 * b[p * rsb + j * csb] as f64;
            }
            let ci = &mut c[i * rsc + j];
            *ci = if beta == 0.0 { acc as f32 } else { (beta as f64 * *ci as f64 + acc) as f32 };
        }
    }
}
