//! AVX-512F micro-kernel: a 12 x 32 C tile in 24 zmm accumulators (selected at run time on CPUs
//! that have AVX-512F; set `TAPEGRAD_NO_AVX512=1` to use the AVX2 kernel instead; see `crate::isa`).
//!
//! Per depth step: two aligned loads of the packed B row (32 floats), twelve broadcasts of the
//! packed A column, 24 FMAs. 24 accumulators + 2 B registers + 1 broadcast = 27 of 32 zmm.

use super::driver::{gemm_seq, Gemm, Kernel};
use super::team::{gemm_team, Team};

pub(crate) struct Avx512;

impl Kernel for Avx512 {
    const MR: usize = 12;
    const NR: usize = 32;
    const MC: usize = 144;
    const KC: usize = 256;
    const NC: usize = 4080 - 4080 % 32;

    #[inline(always)]
    unsafe fn tile(k: usize, a: *const f32, b: *const f32, c: *mut f32, rsc: usize, beta: f32) {
        #[cfg(target_arch = "x86_64")]
        {
            kernel_12x32(k, a, b, c, rsc, beta)
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            let _ = (k, a, b, c, rsc, beta);
            unreachable!("the AVX-512 kernel is only selected on x86_64")
        }
    }
}

/// One thread's part of a team product (see [`gemm_team`]), compiled with AVX-512F.
///
/// # Safety
/// As [`gemm_team`]; the CPU must support AVX-512F.
#[cfg_attr(target_arch = "x86_64", target_feature(enable = "avx512f,avx2,fma"))]
pub(crate) unsafe fn gemm_team_avx512(team: &Team, g: Gemm) {
    gemm_team::<Avx512>(team, g)
}

/// The whole blocked product compiled with AVX-512F (packing included, micro-kernel inlined).
///
/// # Safety
/// As [`gemm_seq`]; the CPU must support AVX-512F.
#[cfg_attr(target_arch = "x86_64", target_feature(enable = "avx512f,avx2,fma"))]
pub(crate) unsafe fn gemm_seq_avx512(g: Gemm) {
    gemm_seq::<Avx512>(g)
}

/// # Safety
/// See [`Kernel::tile`]; the CPU must support AVX-512F.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn kernel_12x32(k: usize, mut a: *const f32, mut b: *const f32, c: *mut f32, rsc: usize, beta: f32) {
    use std::arch::x86_64::*;
    for i in 0..12 {
        let row = c.add(i * rsc) as *const i8;
        _mm_prefetch::<_MM_HINT_T0>(row);
        _mm_prefetch::<_MM_HINT_T0>(row.add(127));
    }
    let mut acc = [[_mm512_setzero_ps(); 2]; 12];
    for _ in 0..k {
        let b0 = _mm512_load_ps(b);
        let b1 = _mm512_load_ps(b.add(16));
        for (i, row) in acc.iter_mut().enumerate() {
            let x = _mm512_set1_ps(*a.add(i));
            row[0] = _mm512_fmadd_ps(x, b0, row[0]);
            row[1] = _mm512_fmadd_ps(x, b1, row[1]);
        }
        a = a.add(12);
        b = b.add(32);
    }
    let vb = _mm512_set1_ps(beta);
    for (i, row) in acc.iter().enumerate() {
        let p = c.add(i * rsc);
        for (h, &v) in row.iter().enumerate() {
            let q = p.add(16 * h);
            let out = if beta == 0.0 {
                v
            } else if beta == 1.0 {
                _mm512_add_ps(_mm512_loadu_ps(q), v)
            } else {
                _mm512_fmadd_ps(vb, _mm512_loadu_ps(q), v)
            };
            _mm512_storeu_ps(q, out);
        }
    }
}
