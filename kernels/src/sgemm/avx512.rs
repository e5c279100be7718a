//! AVX-512F micro-kernel: a 12 x 32 C tile in 24 zmm accumulators (selected at run time on CPUs
//! that have AVX-512F; set `TAPEGRAD_NO_AVX512=1` to use the AVX2 kernel instead; see `crate::isa`).
//!
//! Per depth step: two aligned loads of the packed B row (32 floats), twelve broadcasts of the
//! packed A column, 24 FMAs. 24 accumulators + 2 B registers + 1 broadcast = 27 of 32 zmm.
//!
//! The last micro-panel of A holds `m % 12` rows: the same kernel, compiled for that many rows
//! (`kernel_rows_x32::<R>`), computes only them ([`Kernel::tile_rows`]), so a product of 64 rows
//! (the BiLSTM's recurrence at batch 64) runs 64 rows of FMAs, not 72. At 64 x 1024 x 256 on
//! one thread of an AMD EPYC Zen 4: 90 GFLOP/s with the padded 12-row edge, against 100 for
//! 60 rows (five full tiles).

use super::driver::{gemm_seq, pack_a_rows_scalar, CStart, Gemm, Kernel};
use super::team::{gemm_team, Team};

pub(crate) struct Avx512;

impl Kernel for Avx512 {
    const MR: usize = 12;
    const NR: usize = 32;
    const MC: usize = 144;
    const KC: usize = 256;
    const NC: usize = 4080 - 4080 % 32;

    #[inline(always)]
    unsafe fn tile(k: usize, a: *const f32, b: *const f32, c: *mut f32, rsc: usize, s: CStart) {
        #[cfg(target_arch = "x86_64")]
        {
            kernel_rows_x32::<12>(k, a, b, c, rsc, s)
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            let _ = (k, a, b, c, rsc, s);
            unreachable!("the AVX-512 kernel is only selected on x86_64")
        }
    }

    #[inline(always)]
    unsafe fn tile_rows(
        mr: usize,
        k: usize,
        a: *const f32,
        b: *const f32,
        c: *mut f32,
        rsc: usize,
        s: CStart,
    ) {
        #[cfg(target_arch = "x86_64")]
        {
            let s = s.for_kernel(mr, 32, c, rsc);
            match mr {
                1 => kernel_rows_x32::<1>(k, a, b, c, rsc, s),
                2 => kernel_rows_x32::<2>(k, a, b, c, rsc, s),
                3 => kernel_rows_x32::<3>(k, a, b, c, rsc, s),
                4 => kernel_rows_x32::<4>(k, a, b, c, rsc, s),
                5 => kernel_rows_x32::<5>(k, a, b, c, rsc, s),
                6 => kernel_rows_x32::<6>(k, a, b, c, rsc, s),
                7 => kernel_rows_x32::<7>(k, a, b, c, rsc, s),
                8 => kernel_rows_x32::<8>(k, a, b, c, rsc, s),
                9 => kernel_rows_x32::<9>(k, a, b, c, rsc, s),
                10 => kernel_rows_x32::<10>(k, a, b, c, rsc, s),
                _ => kernel_rows_x32::<11>(k, a, b, c, rsc, s),
            }
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            let _ = (mr, k, a, b, c, rsc, s);
            unreachable!("the AVX-512 kernel is only selected on x86_64")
        }
    }

    #[inline(always)]
    unsafe fn pack_a_rows(kc: usize, a: *const f32, rsa: usize, out: *mut f32) {
        #[cfg(target_arch = "x86_64")]
        {
            pack_a_12rows(kc, a, rsa, out)
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            pack_a_rows_scalar(12, kc, a, rsa, out)
        }
    }

    #[inline(always)]
    unsafe fn pack_b_cols(kc: usize, b: *const f32, csb: usize, out: *mut f32) {
        #[cfg(target_arch = "x86_64")]
        {
            // 32 columns: four groups of 8
            for g in 0..4 {
                super::avx2::transpose_8rows(kc, b.add(8 * g * csb), csb, out.add(8 * g), 32);
            }
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            pack_a_rows_scalar(32, kc, b, csb, out)
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

/// The first `R` rows (`R <= 12`) of a 12 x 32 tile: A's packed panel keeps its 12-row
/// stride, and only rows below `R` are computed and written.
///
/// # Safety
/// See [`Kernel::tile`] (and [`Kernel::tile_rows`] for `R < 12`); the CPU must support AVX-512F.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn kernel_rows_x32<const R: usize>(
    k: usize,
    mut a: *const f32,
    mut b: *const f32,
    c: *mut f32,
    rsc: usize,
    s: CStart,
) {
    use std::arch::x86_64::*;
    const { assert!(R >= 1 && R <= 12) };
    for i in 0..R {
        let row = c.add(i * rsc) as *const i8;
        _mm_prefetch::<_MM_HINT_T0>(row);
        _mm_prefetch::<_MM_HINT_T0>(row.add(127));
    }
    let mut acc = [[_mm512_setzero_ps(); 2]; R];
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
    let (beta, vb) = (s.beta, _mm512_set1_ps(s.beta));
    for (i, row) in acc.iter().enumerate() {
        let p = c.add(i * rsc);
        for (h, &v) in row.iter().enumerate() {
            let q = p.add(16 * h);
            let out = if !s.bias.is_null() {
                _mm512_add_ps(_mm512_loadu_ps(s.bias.add(16 * h)), v) // bias + sum (beta is 0)
            } else if beta == 0.0 {
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

/// [`Kernel::pack_a_rows`] for 12 rows (`out[p*12 + i] = a[i*rsa + p]`), eight depth steps
/// at a time: rows 0-7 go through the classic 8x8 unpack/shuffle/permute transpose and are
/// stored as one 8-float vector per depth step; rows 8-11 through its first two stages, a
/// 4-float vector per step. 12 row loads and 16 stores replace 96 scalar loads and stores.
/// (AVX2 instructions: the transpose needs no 512-bit ones.)
///
/// # Safety
/// As [`Kernel::pack_a_rows`]; the CPU must support AVX2.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
pub(crate) unsafe fn pack_a_12rows(kc: usize, a: *const f32, rsa: usize, out: *mut f32) {
    use std::arch::x86_64::*;
    let full = kc / 8 * 8;
    for p in (0..full).step_by(8) {
        // r[i] = row i, depth steps p..p+8
        let r: [__m256; 12] = std::array::from_fn(|i| _mm256_loadu_ps(a.add(i * rsa + p)));
        // Pairs of rows interleaved: t[0] = r0[0] r1[0] r0[1] r1[1] | r0[4] r1[4] r0[5] r1[5], ...
        let t: [__m256; 12] = std::array::from_fn(|j| {
            let (x, y) = (r[j / 2 * 2], r[j / 2 * 2 + 1]);
            if j % 2 == 0 {
                _mm256_unpacklo_ps(x, y)
            } else {
                _mm256_unpackhi_ps(x, y)
            }
        });
        // Four rows per quad q (rows 4q..4q+4): s[q][d] holds depth steps d | d+4 (two lanes).
        let quad = |q: usize| {
            let (lo, hi) = (2 * (2 * q), 2 * (2 * q) + 2);
            let (t0, t1, t2, t3) = (t[lo], t[lo + 1], t[hi], t[hi + 1]);
            [
                _mm256_shuffle_ps::<0x44>(t0, t2),
                _mm256_shuffle_ps::<0xEE>(t0, t2),
                _mm256_shuffle_ps::<0x44>(t1, t3),
                _mm256_shuffle_ps::<0xEE>(t1, t3),
            ]
        };
        let (s0, s1, s2) = (quad(0), quad(1), quad(2));
        for d in 0..4 {
            let (lo, hi) = (out.add((p + d) * 12), out.add((p + d + 4) * 12));
            // rows 0-7: the low lanes of quads 0 and 1 are step d, the high lanes step d+4
            _mm256_storeu_ps(lo, _mm256_permute2f128_ps::<0x20>(s0[d], s1[d]));
            _mm256_storeu_ps(hi, _mm256_permute2f128_ps::<0x31>(s0[d], s1[d]));
            // rows 8-11
            _mm_storeu_ps(lo.add(8), _mm256_castps256_ps128(s2[d]));
            _mm_storeu_ps(hi.add(8), _mm256_extractf128_ps::<1>(s2[d]));
        }
    }
    if full < kc {
        pack_a_rows_scalar(12, kc - full, a.add(full), rsa, out.add(full * 12));
    }
}
