//! The bf16 GEMM by its definition, in plain Rust: every path is tested against it.
//!
//! ```text
//! â = bf16(a), b̂ = bf16(b)                  round to nearest even; f32 subnormals → ±0
//! C[i, j] = beta·C[i, j] + Σ_p â(i,p)·b̂(p,j)   each product exact in f32, summed in f32
//! ```
//!
//! The sum runs over the depth in pairs `(2q, 2q+1)`, adding the odd product first and then
//! the even one, one f32 rounding each: the order `vdpbf16ps` adds them in (checked bit for
//! bit against the instruction on this project's Intel Xeon), so a fast path whose depth fits one block is bit-exact
//! against this loop. A bf16 has f32's exponent and 8 significant bits, so the product of two
//! is exact in f32 (16 bits); only the sums round.

use crate::gemm::{Dims, MatMut, MatRef};

/// `x` rounded to bf16 (round to nearest even, NaN stays NaN), as the f32 with those upper 16
/// bits. An f32 subnormal becomes a signed zero, as the hardware conversion (`vcvtneps2bf16`)
/// and dot product (`vdpbf16ps`) treat denormal inputs.
pub fn round_bf16(x: f32) -> f32 {
    let x = if x.is_subnormal() { 0.0f32.copysign(x) } else { x };
    half::bf16::from_f32(x).to_f32()
}

/// `C = beta·C + bf16(A)·bf16(B)` (`+ bias[j]` on every row when C carries a bias, added to
/// `beta·C` before the sum) for every item of the batch: products and sums in f32, the depth
/// taken in pairs, odd product first (see the module doc). `beta == 0` ignores C's old
/// contents. The bias is not rounded: only A and B are.
pub fn bf16gemm_reference(d: Dims, a: MatRef<f32>, b: MatRef<f32>, beta: f32, mut c: MatMut<f32>) {
    let bias = c.bias;
    for item in 0..d.batch {
        let (a, b, mut c) = (a.item(item), b.item(item), c.item(item));
        let ah = |i: usize, p: usize| round_bf16(a.at(i, p));
        let bh = |p: usize, j: usize| round_bf16(b.at(p, j));
        for i in 0..d.m {
            for j in 0..d.n {
                let mut acc = 0.0f32;
                for p in (0..d.k).step_by(2) {
                    if p + 1 < d.k {
                        acc += ah(i, p + 1) * bh(p + 1, j);
                    }
                    acc += ah(i, p) * bh(p, j);
                }
                let ci = c.at(i, j);
                *ci = match crate::sgemm::reference::start(beta, *ci, bias.map(|bias| bias[j])) {
                    Some(s) => s + acc,
                    None => acc,
                };
            }
        }
    }
}
