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

/// `x` rounded to bf16 (round to nearest even, NaN stays NaN), as the f32 with those upper 16
/// bits. An f32 subnormal becomes a signed zero, as the hardware conversion (`vcvtneps2bf16`)
/// and dot product (`vdpbf16ps`) treat denormal inputs.
pub fn round_bf16(x: f32) -> f32 {
    let x = if x.is_subnormal() { 0.0f32.copysign(x) } else { x };
    half::bf16::from_f32(x).to_f32()
}

/// `C[i*rsc + j] = beta * C[i*rsc + j] + sum_p bf16(A(i,p)) * bf16(B(p,j))` with
/// `A(i,p) = a[i*rsa + p*csa]`, `B(p,j) = b[p*rsb + j*csb]`: products and sums in f32, the
/// depth taken in pairs, odd product first (see the module doc). `beta == 0` ignores C's old
/// contents.
#[allow(clippy::too_many_arguments)]
pub fn bf16gemm_reference(
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
    let ah = |i: usize, p: usize| round_bf16(a[i * rsa + p * csa]);
    let bh = |p: usize, j: usize| round_bf16(b[p * rsb + j * csb]);
    for i in 0..m {
        for j in 0..n {
            let mut acc = 0.0f32;
            for p in (0..k).step_by(2) {
                if p + 1 < k {
                    acc += ah(i, p + 1) * bh(p + 1, j);
                }
                acc += ah(i, p) * bh(p, j);
            }
            let ci = &mut c[i * rsc + j];
            *ci = if beta == 0.0 { acc } else { beta * *ci + acc };
        }
    }
}
