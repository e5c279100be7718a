//! AVX512-BF16 micro-kernel: a 12 x 32 C tile in 24 zmm accumulators, `vdpbf16ps` on packed
//! bf16 pairs (selected at run time on CPUs with AVX512-BF16; see `super::path`).
//!
//! Per depth pair: two loads of the packed B row (32 pairs), twelve broadcasts of an A pair, 24
//! `vdpbf16ps` (each lane += odd product, then += even product, f32, round to nearest even,
//! denormals flushed). Twice the f32 kernel's multiply-adds per instruction.
//!
//! Packing rounds with `vcvtne2ps2bf16` (the same bits as the scalar `bf16_bits`, tested on
//! NaN, subnormals and ties): a panel whose rows are contiguous along the depth (a row-major
//! A, a transposed B) 32 depths per row at a time and then transposed, a panel whose rows are
//! contiguous at each depth (a transposed A, a row-major B) 16 rows at a time. On a Zen 4, 2
//! threads, against the scalar packing: 4096 x 384 x 1536 246 -> 308 GFLOP/s, a weight
//! gradient (`dYᵀ·X`, 1536 x 384 x 4096) 207 -> 359. The AMX kernel packs with the same
//! functions (its A panels row by row, its depth padded to 16 pairs).

use super::driver::{gemm_seq, CStart, Gemm, Kernel, Panel, KC};

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

    #[inline(always)]
    unsafe fn pair_runs(lo: *const f32, hi: *const f32, w: usize, dst: *mut u32) {
        #[cfg(target_arch = "x86_64")]
        {
            pair_runs_avx512(lo, hi, w, dst)
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            let _ = (lo, hi, w, dst);
            unreachable!("the AVX512-BF16 kernel is only selected on x86_64")
        }
    }

    #[inline(always)]
    unsafe fn pack_depth_contiguous(x: *const f32, s_i: usize, w: usize, kc: usize, out: Panel) {
        #[cfg(target_arch = "x86_64")]
        {
            pack_depth_contiguous_avx512(x, s_i, w, kc, out)
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            let _ = (x, s_i, w, kc, out);
            unreachable!("the AVX512-BF16 kernel is only selected on x86_64")
        }
    }
}

/// [`Kernel::pair_runs`] sixteen words at a time: both runs rounded by one `vcvtne2ps2bf16`
/// (bf16 lanes 0-15 from `lo`, 16-31 from `hi`), then interleaved by `vpermw` into words
/// `lo[i] | hi[i] << 16`.
///
/// # Safety
/// As [`Kernel::pair_runs`]; the CPU must support AVX512F, AVX512BW and AVX512-BF16.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bw,avx512bf16,avx2,fma")]
unsafe fn pair_runs_avx512(lo: *const f32, hi: *const f32, w: usize, dst: *mut u32) {
    use std::arch::x86_64::*;
    // word i takes bf16 lane i (lo's) as its low half, lane 16 + i (hi's) as its high half
    let zip = _mm512_set_epi16(
        31, 15, 30, 14, 29, 13, 28, 12, 27, 11, 26, 10, 25, 9, 24, 8, 23, 7, 22, 6, 21, 5, 20, 4, 19, 3, 18,
        2, 17, 1, 16, 0,
    );
    // 16 words, the first `mask`'s lanes (whole runs of 16, then the tail: no mask to compute
    // for a panel's full width, the same one every depth for a short panel)
    let words = |i: usize, mask: u16| {
        let l = _mm512_maskz_loadu_ps(mask, lo.add(i));
        let h = _mm512_maskz_loadu_ps(mask, hi.add(i));
        // SAFETY (transmute): __m512bh and __m512i are both 512 plain bits.
        let halves: __m512i = std::mem::transmute(_mm512_cvtne2ps_pbh(h, l));
        _mm512_mask_storeu_epi32(dst.add(i) as *mut i32, mask, _mm512_permutexvar_epi16(zip, halves));
    };
    let full = w - w % 16;
    for i in (0..full).step_by(16) {
        words(i, !0);
    }
    if full < w {
        words(full, (1u16 << (w - full)) - 1);
    }
}

/// [`Kernel::pack_depth_contiguous`] for this kernel's panels and AMX's: each row's depths
/// rounded to bf16 pairs 32 at a time ([`round_rows`]), then, for a panel stored pair by pair
/// (`out[q*w_full + i]`: this kernel's 12-row A and 32-column B, AMX's B), the rows of words
/// transposed as the f32 kernel transposes its panels (`pack_a_12rows`, and `transpose_8rows`
/// for each 8 of 32: moves, no arithmetic); a panel stored row by row (AMX's A, `s_q == 1`)
/// takes the rounded rows as they are. Rows past `w` and the padding pairs past
/// `kc.div_ceil(2)` (AMX pads the depth to 16 pairs) are zero.
///
/// # Safety
/// As [`Kernel::pack_depth_contiguous`], `out` a pair-by-pair panel of 12 or 32 rows or a
/// row-by-row one, of at most `KC / 2` pairs; the CPU must support AVX512F, AVX512BW and
/// AVX512-BF16.
#[cfg(target_arch = "x86_64")]
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512bf16,avx2,fma")]
pub(crate) unsafe fn pack_depth_contiguous_avx512(
    x: *const f32,
    s_i: usize,
    w: usize,
    kc: usize,
    out: Panel,
) {
    let Panel { ptr, w_full, kq, s_q, s_w, wide } = out;
    let pairs = kc.div_ceil(2);
    debug_assert!(kc <= KC && pairs <= kq && kq <= KC / 2 && !wide && w <= w_full);
    // The rounded rows, row i's kq pairs at dst[i*stride..], zero past `pairs` and past row w:
    // the panel itself when it is stored row by row (s_q == 1), else a copy to transpose.
    let mut copy = std::mem::MaybeUninit::<[u32; 32 * KC / 2]>::uninit();
    let (dst, stride) = if s_q == 1 { (ptr, s_w) } else { (copy.as_mut_ptr() as *mut u32, kq) };
    debug_assert!(stride >= kq && (s_q == 1 || (s_q == w_full && s_w == 1 && w_full <= 32)));
    round_rows(x, s_i, w, kc, dst, stride);
    for i in 0..w_full {
        let from = if i < w { pairs } else { 0 };
        dst.add(i * stride + from).write_bytes(0, kq - from);
    }
    if s_q == 1 {
        return;
    }
    let (rows, ptr) = (dst as *const f32, ptr as *mut f32);
    if w_full == 12 {
        crate::sgemm::avx512::pack_a_12rows(kq, rows, kq, ptr);
    } else {
        debug_assert_eq!(w_full, 32);
        for g in 0..4 {
            crate::sgemm::avx2::transpose_8rows(kq, rows.add(8 * g * kq), kq, ptr.add(8 * g), 32);
        }
    }
}

/// `dst[i*s_dst + q] = pair(X(i, 2q), X(i, 2q+1))` for `i < w`, `q < kc.div_ceil(2)` (the odd
/// depth's high half 0), `X(i, p) = x[i*s_i + p]`: 32 depths a `vcvtne2ps2bf16` (nearest
/// even, subnormals to zero, NaN quieted: the same bits as `bf16_bits`; bf16 lanes 0-15 from
/// the low 16 depths, so a pair's low half is its even depth). Writes nothing else.
///
/// # Safety
/// `x` addresses the `w x kc` elements, `dst` the `w` rows of pairs; the CPU must support
/// AVX512F, AVX512BW and AVX512-BF16.
#[cfg(target_arch = "x86_64")]
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512bf16,avx2,fma")]
unsafe fn round_rows(x: *const f32, s_i: usize, w: usize, kc: usize, dst: *mut u32, s_dst: usize) {
    use std::arch::x86_64::*;
    for i in 0..w {
        let (src, dst) = (x.add(i * s_i), dst.add(i * s_dst));
        for p in (0..kc).step_by(32) {
            let left = kc - p;
            let mask =
                |from: usize| if left >= from + 16 { !0 } else { (1u16 << left.saturating_sub(from)) - 1 };
            let lo = _mm512_maskz_loadu_ps(mask(0), src.add(p));
            let hi = _mm512_maskz_loadu_ps(mask(16), src.add(p + 16));
            // SAFETY (transmute): __m512bh and __m512i are both 512 plain bits.
            let pairs: __m512i = std::mem::transmute(_mm512_cvtne2ps_pbh(hi, lo));
            let words = left.div_ceil(2).min(16);
            _mm512_mask_storeu_epi32(dst.add(p / 2) as *mut i32, ((1u32 << words) - 1) as u16, pairs);
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
