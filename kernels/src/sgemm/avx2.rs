//! AVX2 + FMA micro-kernel: a 6 x 16 C tile in 12 ymm accumulators.
//!
//! Per depth step: two aligned loads of the packed B row (16 floats), six broadcasts of the
//! packed A column, twelve FMAs. 12 accumulators + 2 B registers + 1 broadcast = 15 of the
//! 16 ymm registers.

#[cfg(target_arch = "x86")]
use std::arch::x86::*;
#[cfg(target_arch = "x86_64")]
use std::arch::x86_64::*;

use super::driver::{gemm_seq, pack_a_rows_scalar, CStart, Gemm, Kernel};
use super::team::{gemm_team, Team};

/// Blocking: a 16 KB B micro-panel (KC x NR) in the 32 KB L1, a 144 KB A block (MC x KC) in
/// the 512 KB L2, a 4 MB B block (KC x NC) in L3. (Other MC/KC/NC choices measured no better
/// on Zen 3.)
pub(crate) struct Avx2;

impl Kernel for Avx2 {
    const MR: usize = 6;
    const NR: usize = 16;
    const MC: usize = 144;
    const KC: usize = 256;
    const NC: usize = 4080;

    #[inline(always)]
    unsafe fn tile(k: usize, a: *const f32, b: *const f32, c: *mut f32, rsc: usize, s: CStart) {
        #[cfg(any(target_arch = "x86", target_arch = "x86_64"))]
        {
            kernel_6x16(k, a, b, c, rsc, s)
        }
        #[cfg(not(any(target_arch = "x86", target_arch = "x86_64")))]
        {
            let _ = (k, a, b, c, rsc, s);
            unreachable!("the AVX2 kernel is only selected on x86")
        }
    }

    #[inline(always)]
    unsafe fn pack_a_rows(kc: usize, a: *const f32, rsa: usize, out: *mut f32) {
        #[cfg(any(target_arch = "x86", target_arch = "x86_64"))]
        {
            pack_a_6rows(kc, a, rsa, out)
        }
        #[cfg(not(any(target_arch = "x86", target_arch = "x86_64")))]
        {
            super::driver::pack_a_rows_scalar(6, kc, a, rsa, out)
        }
    }

    #[inline(always)]
    unsafe fn pack_b_cols(kc: usize, b: *const f32, csb: usize, out: *mut f32) {
        #[cfg(any(target_arch = "x86", target_arch = "x86_64"))]
        {
            // 16 columns: two groups of 8
            transpose_8rows(kc, b, csb, out, 16);
            transpose_8rows(kc, b.add(8 * csb), csb, out.add(8), 16);
        }
        #[cfg(not(any(target_arch = "x86", target_arch = "x86_64")))]
        {
            super::driver::pack_a_rows_scalar(16, kc, b, csb, out)
        }
    }
}

/// The whole blocked product compiled with AVX2+FMA (packing included), so that the
/// micro-kernel inlines and the packing copies use 256-bit moves.
///
/// # Safety
/// As [`gemm_seq`]; the CPU must support AVX2 and FMA.
#[cfg(any(target_arch = "x86", target_arch = "x86_64"))]
#[target_feature(enable = "avx2,fma")]
pub(crate) unsafe fn gemm_seq_avx2(g: Gemm) {
    gemm_seq::<Avx2>(g)
}

/// One thread's part of a team product (see [`gemm_team`]), compiled with AVX2+FMA.
///
/// # Safety
/// As [`gemm_team`]; the CPU must support AVX2 and FMA.
#[cfg(any(target_arch = "x86", target_arch = "x86_64"))]
#[target_feature(enable = "avx2,fma")]
pub(crate) unsafe fn gemm_team_avx2(team: &Team, g: Gemm) {
    gemm_team::<Avx2>(team, g)
}

/// # Safety
/// See [`Kernel::tile`]; the CPU must support AVX2 and FMA.
#[cfg(any(target_arch = "x86", target_arch = "x86_64"))]
#[target_feature(enable = "avx2,fma")]
pub(crate) unsafe fn kernel_6x16(
    k: usize,
    mut a: *const f32,
    mut b: *const f32,
    c: *mut f32,
    rsc: usize,
    s: CStart,
) {
    let mut c00 = _mm256_setzero_ps();
    let mut c01 = _mm256_setzero_ps();
    let mut c10 = _mm256_setzero_ps();
    let mut c11 = _mm256_setzero_ps();
    let mut c20 = _mm256_setzero_ps();
    let mut c21 = _mm256_setzero_ps();
    let mut c30 = _mm256_setzero_ps();
    let mut c31 = _mm256_setzero_ps();
    let mut c40 = _mm256_setzero_ps();
    let mut c41 = _mm256_setzero_ps();
    let mut c50 = _mm256_setzero_ps();
    let mut c51 = _mm256_setzero_ps();

    macro_rules! step {
        ($off:expr) => {{
            let bp = b.add($off * 16);
            let ap = a.add($off * 6);
            let b0 = _mm256_load_ps(bp);
            let b1 = _mm256_load_ps(bp.add(8));
            let x = _mm256_broadcast_ss(&*ap);
            c00 = _mm256_fmadd_ps(x, b0, c00);
            c01 = _mm256_fmadd_ps(x, b1, c01);
            let x = _mm256_broadcast_ss(&*ap.add(1));
            c10 = _mm256_fmadd_ps(x, b0, c10);
            c11 = _mm256_fmadd_ps(x, b1, c11);
            let x = _mm256_broadcast_ss(&*ap.add(2));
            c20 = _mm256_fmadd_ps(x, b0, c20);
            c21 = _mm256_fmadd_ps(x, b1, c21);
            let x = _mm256_broadcast_ss(&*ap.add(3));
            c30 = _mm256_fmadd_ps(x, b0, c30);
            c31 = _mm256_fmadd_ps(x, b1, c31);
            let x = _mm256_broadcast_ss(&*ap.add(4));
            c40 = _mm256_fmadd_ps(x, b0, c40);
            c41 = _mm256_fmadd_ps(x, b1, c41);
            let x = _mm256_broadcast_ss(&*ap.add(5));
            c50 = _mm256_fmadd_ps(x, b0, c50);
            c51 = _mm256_fmadd_ps(x, b1, c51);
        }};
    }

    macro_rules! steps {
        ($count:expr) => {{
            let mut left = $count;
            while left >= 4 {
                _mm_prefetch::<_MM_HINT_T0>(a.wrapping_add(96) as *const i8);
                step!(0);
                step!(1);
                step!(2);
                step!(3);
                a = a.add(24);
                b = b.add(64);
                left -= 4;
            }
            while left > 0 {
                step!(0);
                a = a.add(6);
                b = b.add(16);
                left -= 1;
            }
        }};
    }
    // Fetch the C tile's lines (two per row: 16 floats may straddle two) before the depth loop,
    // and the lines of the tile below it (usually the next one computed) well ahead of time.
    for i in 0..6 {
        let row = c.add(i * rsc) as *const i8;
        _mm_prefetch::<_MM_HINT_T0>(row);
        _mm_prefetch::<_MM_HINT_T0>(row.add(63));
    }
    steps!(k / 2);
    for i in 6..12 {
        let row = c.wrapping_add(i * rsc) as *const i8;
        _mm_prefetch::<_MM_HINT_T0>(row);
        _mm_prefetch::<_MM_HINT_T0>(row.wrapping_add(63));
    }
    steps!(k - k / 2);

    let beta = s.beta;
    macro_rules! store_row {
        ($i:expr, $lo:ident, $hi:ident) => {{
            let p = c.add($i * rsc);
            if !s.bias.is_null() {
                // bias + sum (beta is 0)
                _mm256_storeu_ps(p, _mm256_add_ps(_mm256_loadu_ps(s.bias), $lo));
                _mm256_storeu_ps(p.add(8), _mm256_add_ps(_mm256_loadu_ps(s.bias.add(8)), $hi));
            } else if beta == 0.0 {
                _mm256_storeu_ps(p, $lo);
                _mm256_storeu_ps(p.add(8), $hi);
            } else if beta == 1.0 {
                _mm256_storeu_ps(p, _mm256_add_ps(_mm256_loadu_ps(p), $lo));
                _mm256_storeu_ps(p.add(8), _mm256_add_ps(_mm256_loadu_ps(p.add(8)), $hi));
            } else {
                let vb = _mm256_set1_ps(beta);
                _mm256_storeu_ps(p, _mm256_fmadd_ps(vb, _mm256_loadu_ps(p), $lo));
                _mm256_storeu_ps(p.add(8), _mm256_fmadd_ps(vb, _mm256_loadu_ps(p.add(8)), $hi));
            }
        }};
    }
    store_row!(0, c00, c01);
    store_row!(1, c10, c11);
    store_row!(2, c20, c21);
    store_row!(3, c30, c31);
    store_row!(4, c40, c41);
    store_row!(5, c50, c51);
}

/// Packs 6 rows of a row-major A into the kernel's order (`out[p*6 + i] = a[i*rsa + p]`), eight
/// depth steps at a time: six 8-float row loads are transposed in registers (the first two
/// stages of the classic 8x8 unpack/shuffle transpose, rows 6 and 7 being absent) and written
/// as eight 4-float + 2-float stores, instead of 48 scalar loads and stores.
///
/// # Safety
/// As [`Kernel::pack_a_rows`]; the CPU must support AVX2.
#[cfg(any(target_arch = "x86", target_arch = "x86_64"))]
#[target_feature(enable = "avx2,fma")]
unsafe fn pack_a_6rows(kc: usize, a: *const f32, rsa: usize, out: *mut f32) {
    let rows = [a, a.add(rsa), a.add(2 * rsa), a.add(3 * rsa), a.add(4 * rsa), a.add(5 * rsa)];
    let full = kc / 8 * 8;
    for p in (0..full).step_by(8) {
        let r: [__m256; 6] = std::array::from_fn(|i| _mm256_loadu_ps(rows[i].add(p)));
        // Pairs of rows interleaved: t0 = r0[0] r1[0] r0[1] r1[1] | r0[4] r1[4] r0[5] r1[5], ...
        let t0 = _mm256_unpacklo_ps(r[0], r[1]);
        let t1 = _mm256_unpackhi_ps(r[0], r[1]);
        let t2 = _mm256_unpacklo_ps(r[2], r[3]);
        let t3 = _mm256_unpackhi_ps(r[2], r[3]);
        let t4 = _mm256_unpacklo_ps(r[4], r[5]);
        let t5 = _mm256_unpackhi_ps(r[4], r[5]);
        // Rows 0-3 of depth steps (0|4), (1|5), (2|6), (3|7) in the two 128-bit lanes.
        let u = [
            _mm256_shuffle_ps::<0x44>(t0, t2),
            _mm256_shuffle_ps::<0xEE>(t0, t2),
            _mm256_shuffle_ps::<0x44>(t1, t3),
            _mm256_shuffle_ps::<0xEE>(t1, t3),
        ];
        let d = out.add(p * 6);
        for (pair, v) in [(0, t4), (1, t5)] {
            // v holds rows 4-5 of steps 2*pair, 2*pair + 1 (low lane) and 4 + those (high lane).
            let (vlo, vhi) = (_mm256_castps256_ps128(v), _mm256_extractf128_ps::<1>(v));
            for (half, v45) in [(0, vlo), (1, vhi)] {
                let ul = &u[2 * pair..2 * pair + 2];
                let (x0, x1) = if half == 0 {
                    (_mm256_castps256_ps128(ul[0]), _mm256_castps256_ps128(ul[1]))
                } else {
                    (_mm256_extractf128_ps::<1>(ul[0]), _mm256_extractf128_ps::<1>(ul[1]))
                };
                let step = 4 * half + 2 * pair;
                let d0 = d.add(step * 6);
                _mm_storeu_ps(d0, x0);
                _mm_store_sd(d0.add(4) as *mut f64, _mm_castps_pd(v45));
                let d1 = d0.add(6);
                _mm_storeu_ps(d1, x1);
                _mm_storeh_pd(d1.add(4) as *mut f64, _mm_castps_pd(v45));
            }
        }
    }
    if full < kc {
        pack_a_rows_scalar(6, kc - full, a.add(full), rsa, out.add(full * 6));
    }
}

/// `out[p*ostride + i] = a[i*rsa + p]` for 8 rows `i` and `p < kc`: eight depth steps at a
/// time, the classic 8x8 transpose in registers (unpack pairs of rows, shuffle quads, swap
/// 128-bit lanes), one 8-float store per depth step. Packs column-major B panels
/// ([`Kernel::pack_b_cols`]) for both x86 kernels, a group of 8 columns per call.
///
/// # Safety
/// `a` addresses 8 rows of `kc` floats with stride `rsa`; `out` addresses `kc` groups of 8
/// floats `ostride` apart; the CPU must support AVX2.
#[cfg(any(target_arch = "x86", target_arch = "x86_64"))]
#[target_feature(enable = "avx2,fma")]
pub(crate) unsafe fn transpose_8rows(kc: usize, a: *const f32, rsa: usize, out: *mut f32, ostride: usize) {
    let full = kc / 8 * 8;
    for p in (0..full).step_by(8) {
        let r: [__m256; 8] = std::array::from_fn(|i| _mm256_loadu_ps(a.add(i * rsa + p)));
        // t[2q] = r[2q][0] r[2q+1][0] r[2q][1] r[2q+1][1] | (the same at 4, 5); t[2q+1] at 2, 3 | 6, 7
        let t: [__m256; 8] = std::array::from_fn(|j| {
            let (x, y) = (r[j / 2 * 2], r[j / 2 * 2 + 1]);
            if j % 2 == 0 {
                _mm256_unpacklo_ps(x, y)
            } else {
                _mm256_unpackhi_ps(x, y)
            }
        });
        // s[4h + d]: rows 4h..4h+4 of depth steps d (low lane) and d+4 (high lane)
        let s: [__m256; 8] = std::array::from_fn(|x| {
            let (h, d) = (x / 4, x % 4);
            let (lo, hi) = (t[4 * h + d / 2], t[4 * h + 2 + d / 2]);
            if d % 2 == 0 {
                _mm256_shuffle_ps::<0x44>(lo, hi)
            } else {
                _mm256_shuffle_ps::<0xEE>(lo, hi)
            }
        });
        for d in 0..4 {
            _mm256_storeu_ps(out.add((p + d) * ostride), _mm256_permute2f128_ps::<0x20>(s[d], s[4 + d]));
            _mm256_storeu_ps(out.add((p + d + 4) * ostride), _mm256_permute2f128_ps::<0x31>(s[d], s[4 + d]));
        }
    }
    for p in full..kc {
        for i in 0..8 {
            *out.add(p * ostride + i) = *a.add(i * rsa + p);
        }
    }
}
