//! The AVX2 path for CPUs without bf16 instructions: the f32 AVX2 micro-kernel
//! (`sgemm/avx2.rs`, a 6 x 16 C tile) on panels packed wide (`Kernel::WIDE`): each operand
//! rounded to bf16 and widened back to f32 while packing, the odd depth of each pair first.
//!
//! ```text
//! apack[(2q+h)*6 + i] = bf16(A(i, 2q+1−h)),   bpack[(2q+h)*16 + j] = bf16(B(2q+1−h, j))
//! C[i, j] = start + Σ_q (â_odd·b̂_odd then â_even·b̂_even)      one FMA each, f32
//! ```
//!
//! A product of two bf16 values is exact in f32, so each FMA rounds once, as the pair
//! arithmetic does after each product: the same bits as the portable kernel (tested). It runs at
//! the f32 kernel's speed, the speed of `--precision f32`, where the portable kernel, plain
//! Rust on pairs, runs well below it; it saves no arithmetic, as AVX2 has no bf16 multiply.

use super::driver::{gemm_seq, CStart, Gemm, Kernel};

pub(crate) struct Avx2;

impl Kernel for Avx2 {
    const MR: usize = 6;
    const NR: usize = 16;
    const MC: usize = 144;
    const NC: usize = 4080;
    const WIDE: bool = true;

    #[inline(always)]
    unsafe fn tile(kq: usize, a: *const u32, b: *const u32, c: *mut f32, rsc: usize, s: CStart) {
        // The f32 kernel computes beta·C + sum in one FMA; the pair arithmetic rounds beta·C
        // first (`CStart::finish`). For a beta other than 0 and 1 write beta·C into the tile
        // first, then accumulate.
        let s = if s.beta != 0.0 && s.beta != 1.0 && s.bias.is_null() {
            s.write(Self::MR, Self::NR, c, rsc);
            CStart::ACCUMULATE
        } else {
            s
        };
        #[cfg(any(target_arch = "x86", target_arch = "x86_64"))]
        {
            crate::sgemm::avx2::kernel_6x16(2 * kq, a as *const f32, b as *const f32, c, rsc, s)
        }
        #[cfg(not(any(target_arch = "x86", target_arch = "x86_64")))]
        {
            let _ = (kq, a, b, c, rsc, s);
            unreachable!("the AVX2 kernel is only selected on x86")
        }
    }
}

/// The whole blocked product compiled with AVX2+FMA (packing included, kernel inlined).
///
/// # Safety
/// As [`gemm_seq`]; the CPU must support AVX2 and FMA.
#[cfg_attr(any(target_arch = "x86", target_arch = "x86_64"), target_feature(enable = "avx2,fma"))]
pub(crate) unsafe fn gemm_seq_avx2(g: Gemm) {
    gemm_seq::<Avx2>(g)
}
