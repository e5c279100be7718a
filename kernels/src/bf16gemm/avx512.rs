//! AVX512-BF16 micro-kernel: a 12 x 32 C tile in 24 zmm accumulators, `vdpbf16ps` on packed
//! bf16 pairs (selected at run time on CPUs with AVX512-BF16; see `super::path`).
//!
//! Per depth pair: two loads of the packed B row (32 pairs), twelve broadcasts of an A pair, 24
//! `vdpbf16ps` (each lane += odd product, then += even product, f32, round to nearest even,
//! denormals flushed). Twice the f32 kernel's multiply-adds per instruction.

use super::driver::{gemm_seq, CStart, Gemm, Kernel};

pub(crate) struct Avx512Bf16;

impl Kernel for Avx512Bf16 {
    const MR: usize = 12;
    const NR: usize = 32;
    const MC: usize = 144;
    const NC: usize = 4080 - 4080 % 32;

    #[inline(always)]
    unsafe fn tile(kq: usize, a: *const u32, b: *const u32, c: *mut f32, rsc: usize, s: CStart) {
        #[cfg(target_arch = "x86_64")]
        {
            kernel_12x32(kq, a, b, c, rsc, s)
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            let _ = (kq, a, b, c, rsc, s);
            unreachable!("the AVX512-BF16 kernel is only selected on x86_64")
        }
    }
}

/// The whole blocked product compiled with AVX512-BF16 (packing included, kernel inlined).
///
/// # Safety
/// As [`gemm_seq`]; the CPU must support AVX512F, AVX512BW and AVX512-BF16.
#[cfg_attr(target_arch = "x86_64", target_feature(enable = "avx512f,avx512bw,avx512bf16,avx2,fma"))]
pub(crate) unsafe fn gemm_seq_avx512bf16(g: Gemm) {
    gemm_seq::<Avx512Bf16>(g)
}

/// # Safety
/// See [`Kernel::tile`]; the CPU must support AVX512F and AVX512-BF16.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bw,avx512bf16")]
unsafe fn kernel_12x32(kq: usize, mut a: *const u32, mut b: *const u32, c: *mut f32, rsc: usize, s: CStart) {
    use std::arch::x86_64::*;
    for i in 0..12 {
        let row = c.add(i * rsc) as *const i8;
        _mm_prefetch::<_MM_HINT_T0>(row);
        _mm_prefetch::<_MM_HINT_T0>(row.add(127));
    }
    let mut acc = [[_mm512_setzero_ps(); 2]; 12];
    for _ in 0..kq {
        // SAFETY (transmutes): __m512i and __m512bh are both 512 plain bits.
        let b0: __m512bh = std::mem::transmute(_mm512_loadu_si512(b as *const __m512i));
        let b1: __m512bh = std::mem::transmute(_mm512_loadu_si512(b.add(16) as *const __m512i));
        for (i, row) in acc.iter_mut().enumerate() {
            let x: __m512bh = std::mem::transmute(_mm512_set1_epi32(*a.add(i) as i32));
            row[0] = _mm512_dpbf16_ps(row[0], x, b0);
            row[1] = _mm512_dpbf16_ps(row[1], x, b1);
        }
        a = a.add(12);
        b = b.add(32);
    }
    let (beta, vb) = (s.beta, _mm512_set1_ps(s.beta));
    for (i, row) in acc.iter().enumerate() {
        let p = c.add(i * rsc);
        for (h, &v) in row.iter().enumerate() {
            let q = p.add(16 * h);
            // beta·C + v rounded twice (no FMA), as the portable kernel and the reference do
            let out = if !s.bias.is_null() {
                _mm512_add_ps(_mm512_loadu_ps(s.bias.add(16 * h)), v) // bias + sum (beta is 0)
            } else if beta == 0.0 {
                v
            } else if beta == 1.0 {
                _mm512_add_ps(_mm512_loadu_ps(q), v)
            } else {
                _mm512_add_ps(_mm512_mul_ps(vb, _mm512_loadu_ps(q)), v)
            };
            _mm512_storeu_ps(q, out);
        }
    }
}
