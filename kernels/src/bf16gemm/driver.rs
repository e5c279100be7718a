//! The blocked loop nest of the bf16 GEMM and its packing into bf16 pairs.
//!
//! The same BLIS loop order as `sgemm/driver.rs` (`jc` by NC, `pc` by KC, `ic` by MC, then
//! `jr` by NR and `ir` by MR around the micro-kernel), on operands packed as `u32` words, each
//! a pair of bf16 along the depth: the low half is depth `2q`, the high half `2q+1`, the
//! layout `vdpbf16ps` multiplies (one f32 lane += the two products of a pair).
//!
//! ```text
//! A micro-panel (MR rows):   apack[q*MR + i] = pair(A(i, 2q), A(i, 2q+1))
//! B micro-panel (NR cols):   bpack[q*NR + j] = pair(B(2q, j), B(2q+1, j))
//! ```
//!
//! Rows or columns past the matrix and the odd depth's missing half are zero. The depth block
//! KC is the same for every kernel, so every path adds the same partial sums into C in the same
//! order: paths agree bit for bit.

use std::cell::Cell;

/// Depth of a packed block (even: whole pairs). A MiniLM product's depth (384) is one block.
pub(crate) const KC: usize = 384;

/// `x` rounded to bf16 (nearest even; NaN stays a quiet NaN; f32 subnormals flush to ±0), its
/// 16 bits. Branch-free so that the packing loops vectorise; the same value as
/// `reference::round_bf16`.
#[inline(always)]
pub(crate) fn bf16_bits(x: f32) -> u32 {
    let u = x.to_bits();
    let u = if u & 0x7f80_0000 == 0 { u & 0x8000_0000 } else { u };
    let rounded = u.wrapping_add(0x7fff + ((u >> 16) & 1)) >> 16;
    if u & 0x7fff_ffff > 0x7f80_0000 {
        (u >> 16) | 0x40
    } else {
        rounded
    }
}

/// Two depths' values as one packed word (`lo` is the even depth).
#[inline(always)]
fn pair(lo: f32, hi: f32) -> u32 {
    bf16_bits(lo) | (bf16_bits(hi) << 16)
}

/// A register-blocked bf16 micro-kernel and its blocking.
pub(crate) trait Kernel {
    /// Rows of a C tile.
    const MR: usize;
    /// Columns of a C tile.
    const NR: usize;
    /// Rows of a packed A block (a multiple of MR).
    const MC: usize;
    /// Columns of a packed B block (a multiple of NR).
    const NC: usize;
    /// The packed depth in pairs is a multiple of this (zero pairs pad it): AMX tiles take 16.
    const KQ_ALIGN: usize = 1;
    /// A micro-panel row by row (`apack[i*kq + q]`, each row's pairs contiguous, as an AMX
    /// tile loads it) instead of pair by pair (`apack[q*MR + i]`).
    const A_ROWS: bool = false;
    /// Each pair as two words instead of one, the f32 bits of its two bf16 values, the odd
    /// depth's first (`apack[(2q+h)*MR + i]`, h = 0 the odd depth, 1 the even): the panels
    /// of an f32 micro-kernel over 2·kq depths, for a CPU without bf16 instructions. An f32
    /// FMA adds a product of two bf16 values exactly as the pair arithmetic does (the product
    /// is exact in f32), so such a kernel gives the same bits. Not with `A_ROWS`.
    const WIDE: bool = false;

    /// `C[i*rsc + j] = beta * C[i*rsc + j] + sum_q` (the pair products of `a[q*MR + i]` and
    /// `b[q*NR + j]`, odd depth first) over `kq` pairs, for the full MR x NR tile (`s.beta ==
    /// 0` ignores C's old contents), or, when `s.bias` is not null (`s.beta` is then 0),
    /// `C[i*rsc + j] = bias[j] + sum` (`CStart::for_kernel`).
    ///
    /// # Safety
    /// `a` holds `kq*MR` words, `b` holds `kq*NR` (twice that for a `WIDE` kernel), `c`
    /// addresses an MR x NR tile with row stride `rsc`, a bias holds NR floats, and the CPU
    /// supports the kernel's features.
    unsafe fn tile(kq: usize, a: *const u32, b: *const u32, c: *mut f32, rsc: usize, s: CStart);

    /// Packs a micro-panel whose rows are contiguous along the depth (`X(i, p) = x[i*s_i +
    /// p]`: a row-major A, a transposed B as in a linear layer's `X·Wᵀ`): as [`pack_panel`].
    /// A kernel may override it with a vectorised conversion and transpose (the scalar one
    /// took 42 % of a 4096 x 384 x 1536 product on 1 thread on AVX512-BF16).
    ///
    /// # Safety
    /// As [`pack_panel`] with `s_p = 1`.
    #[inline(always)]
    unsafe fn pack_depth_contiguous(x: *const f32, s_i: usize, w: usize, kc: usize, out: Panel) {
        pack_panel::<Self>(x, s_i, 1, w, kc, out)
    }

    /// `dst[i] = pair(lo[i], hi[i])` for `i < w`: one pair of depths of a panel whose rows
    /// are contiguous at each depth (a transposed A, as in a weight gradient `dYᵀ·X`, or a
    /// row-major B). A kernel may override it with a vectorised conversion.
    ///
    /// # Safety
    /// `lo` and `hi` address `w` floats, `dst` `w` words; the CPU supports the kernel's features.
    #[inline(always)]
    unsafe fn pair_runs(lo: *const f32, hi: *const f32, w: usize, dst: *mut u32) {
        for i in 0..w {
            *dst.add(i) = pair(*lo.add(i), *hi.add(i));
        }
    }
}

/// The largest MR*NR of any kernel (sizes the stack tile for edges).
const MAX_TILE: usize = 32 * 32;
/// The largest MR of an `A_ROWS` kernel (sizes `pack_panel`'s copy for its transposed A).
const MAX_A_ROWS: usize = 32;

/// One product on raw pointers, `C (m×n, rows rsc apart) = beta·C + bias + bf16(A)·bf16(B)`:
/// the same description of a product, the same row and column splits, and the same start of
/// each C tile (`CStart`, the bias in f32) as `sgemm`'s.
pub(crate) use crate::sgemm::{CStart, Gemm};

thread_local! {
    /// This thread's packing buffers (A block, B block), reused across calls.
    static BUFS: Cell<(Vec<u32>, Vec<u32>)> = const { Cell::new((Vec::new(), Vec::new())) };
}

/// Sequential blocked product (C has column stride 1).
///
/// # Safety
/// Every element the shapes and strides address is in bounds; C overlaps neither A nor B;
/// the CPU supports `K`'s features.
#[inline(always)]
pub(crate) unsafe fn gemm_seq<K: Kernel>(g: Gemm) {
    let Gemm { m, n, k, a, rsa, csa, b, rsb, csb, c, rsc, .. } = g;
    debug_assert!(m > 0 && n > 0 && k > 0);
    let (mut abuf, mut bbuf) = BUFS.with(|cell| cell.take());
    // words a pair takes in a panel
    let wpp = if K::WIDE { 2 } else { 1 };
    let kq_max = KC.min(k).div_ceil(2).next_multiple_of(K::KQ_ALIGN);
    // 16 words more, for a 64-byte-aligned start (the AVX2 kernel's aligned loads)
    abuf.resize(abuf.len().max(K::MC.min(m.div_ceil(K::MR) * K::MR) * kq_max * wpp + 16), 0);
    bbuf.resize(bbuf.len().max(K::NC.min(n.div_ceil(K::NR) * K::NR) * kq_max * wpp + 16), 0);
    let aligned = |v: &mut Vec<u32>| v.as_mut_ptr().add(v.as_ptr().align_offset(64));
    let (ab, bb) = (aligned(&mut abuf), aligned(&mut bbuf));
    const { assert!(K::MR * K::NR <= MAX_TILE, "the edge tile's buffer is too small for this kernel") };
    const { assert!(!K::A_ROWS || K::MR <= MAX_A_ROWS, "pack_panel's copy is too small for this kernel") };
    let mut tmp = [0.0f32; MAX_TILE];
    for jc in (0..n).step_by(K::NC) {
        let nc = K::NC.min(n - jc);
        for pc in (0..k).step_by(KC) {
            let kc = KC.min(k - pc);
            let kq = kc.div_ceil(2).next_multiple_of(K::KQ_ALIGN);
            let start = g.start.cols_from(jc).at_depth(pc);
            // B block (kc x nc): NR-column panels; B(p, j) is column j of "rows" csb apart.
            for (s, jr) in (0..nc).step_by(K::NR).enumerate() {
                let src = b.add(pc * rsb + (jc + jr) * csb);
                let out = Panel {
                    ptr: bb.add(s * K::NR * kq * wpp),
                    w_full: K::NR,
                    kq,
                    s_q: K::NR,
                    s_w: 1,
                    wide: K::WIDE,
                };
                pack::<K>(src, csb, rsb, K::NR.min(nc - jr), kc, out);
            }
            for ic in (0..m).step_by(K::MC) {
                let mc = K::MC.min(m - ic);
                for (r, ir) in (0..mc).step_by(K::MR).enumerate() {
                    let src = a.add((ic + ir) * rsa + pc * csa);
                    let (s_q, s_w) = if K::A_ROWS { (1, kq) } else { (K::MR, 1) };
                    let ptr = ab.add(r * K::MR * kq * wpp);
                    let out = Panel { ptr, w_full: K::MR, kq, s_q, s_w, wide: K::WIDE };
                    pack::<K>(src, rsa, csa, K::MR.min(mc - ir), kc, out);
                }
                for jr in (0..nc).step_by(K::NR) {
                    let nr = K::NR.min(nc - jr);
                    let bp = bb.add(jr * kq * wpp);
                    let tile_start = start.cols_from(jr);
                    for ir in (0..mc).step_by(K::MR) {
                        let mr = K::MR.min(mc - ir);
                        let ap = ab.add(ir * kq * wpp);
                        let cp = c.add((ic + ir) * rsc + jc + jr);
                        if mr == K::MR && nr == K::NR {
                            K::tile(kq, ap, bp, cp, rsc, tile_start.for_kernel(K::MR, K::NR, cp, rsc));
                        } else {
                            K::tile(kq, ap, bp, tmp.as_mut_ptr(), K::NR, CStart::OVERWRITE);
                            merge_tile(mr, nr, &tmp, K::NR, cp, rsc, tile_start);
                        }
                    }
                }
            }
        }
    }
    BUFS.with(|cell| cell.set((abuf, bbuf)));
}

/// Where a packed micro-panel goes: `w_full` rows (A) or columns (B) of `kq` pairs, the pair
/// `(i, q)` at `ptr[q*s_q + i*s_w]`, or, `wide` (`Kernel::WIDE`), its two values at
/// `ptr[(2q+h)*s_q + i*s_w]`.
pub(crate) struct Panel {
    pub(crate) ptr: *mut u32,
    pub(crate) w_full: usize,
    pub(crate) kq: usize,
    pub(crate) s_q: usize,
    pub(crate) s_w: usize,
    pub(crate) wide: bool,
}

/// Packs one micro-panel as [`pack_panel`] does, through the kernel's packing when the panel's
/// rows are contiguous along the depth (`s_p == 1`: [`Kernel::pack_depth_contiguous`]).
///
/// # Safety
/// As [`pack_panel`]; the CPU supports `K`'s features.
#[inline(always)]
pub(crate) unsafe fn pack<K: Kernel>(x: *const f32, s_i: usize, s_p: usize, w: usize, kc: usize, out: Panel) {
    if s_p == 1 {
        K::pack_depth_contiguous(x, s_i, w, kc, out)
    } else {
        pack_panel::<K>(x, s_i, s_p, w, kc, out)
    }
}

/// Packs one micro-panel: pair `(i, q)` = `pair(X(i, 2q), X(i, 2q+1))` for `i < w`,
/// `2q < kc` (the odd depth's high half is 0), and zero for `w <= i < w_full` and for the
/// padding pairs `kc/2 <= q < kq`, where `X(i, p) = x[i*s_i + p*s_p]`. A's panel is `X = A`,
/// B's is `X = Bᵀ`.
///
/// # Safety
/// `x` addresses the `w x kc` elements; `out` addresses its `w_full x kq` pairs.
#[inline(always)]
pub(crate) unsafe fn pack_panel<K: Kernel + ?Sized>(
    x: *const f32,
    s_i: usize,
    s_p: usize,
    w: usize,
    kc: usize,
    out: Panel,
) {
    if out.wide {
        return pack_panel_wide(x, s_i, s_p, w, kc, out);
    }
    let Panel { ptr, w_full, kq, s_q, s_w, .. } = out;
    let even = kc / 2;
    if s_p == 1 && s_q == 1 {
        // Rows contiguous along the depth in and out: a plain f32 → bf16 conversion per row
        // (the low half of a pair is the even depth: little-endian u16s in depth order).
        for i in 0..w {
            let (src, dst) = (x.add(i * s_i), ptr.add(i * s_w) as *mut u16);
            for p in 0..2 * even {
                *dst.add(p) = bf16_bits(*src.add(p)) as u16;
            }
        }
    } else if s_i == 1 && s_w == 1 {
        // The panel's rows are contiguous at each depth, in and out: pair up two such runs.
        for q in 0..even {
            K::pair_runs(x.add(2 * q * s_p), x.add((2 * q + 1) * s_p), w, ptr.add(q * s_q));
        }
    } else if s_i == 1 {
        // Rows contiguous at each depth into a panel stored row by row (AMX's A, `A_ROWS`):
        // pair up the runs as above into a pair-by-pair copy, then lay its columns out as rows.
        let mut runs = std::mem::MaybeUninit::<[u32; MAX_A_ROWS * KC / 2]>::uninit();
        assert!(w <= MAX_A_ROWS && even <= KC / 2, "a row-by-row panel of {w} rows, {kc} depths");
        let runs = runs.as_mut_ptr() as *mut u32; // words q*w + i, written before they are read
        for q in 0..even {
            K::pair_runs(x.add(2 * q * s_p), x.add((2 * q + 1) * s_p), w, runs.add(q * w));
        }
        for i in 0..w {
            for q in 0..even {
                *ptr.add(q * s_q + i * s_w) = *runs.add(q * w + i);
            }
        }
    } else {
        for i in 0..w {
            for q in 0..even {
                let v = x.add(i * s_i + 2 * q * s_p);
                *ptr.add(q * s_q + i * s_w) = pair(*v, *v.add(s_p));
            }
        }
    }
    for q in even..kq {
        for i in 0..w_full {
            let v = if q == even && kc % 2 == 1 && i < w {
                pair(*x.add(i * s_i + (kc - 1) * s_p), 0.0)
            } else {
                0
            };
            *ptr.add(q * s_q + i * s_w) = v;
        }
    }
    for i in w..w_full {
        for q in 0..even {
            *ptr.add(q * s_q + i * s_w) = 0;
        }
    }
}

/// [`pack_panel`] for a `Kernel::WIDE` kernel: depth p of row i as the f32 bits of
/// `bf16(X(i, p))` at word row `p ^ 1` (the odd depth of a pair first), zero past `kc` and
/// for the rows `w <= i < w_full`.
///
/// # Safety
/// As [`pack_panel`], `out` addressing `w_full x 2·kq` words.
#[inline(always)]
unsafe fn pack_panel_wide(x: *const f32, s_i: usize, s_p: usize, w: usize, kc: usize, out: Panel) {
    let Panel { ptr, w_full, kq, s_q, s_w, .. } = out;
    debug_assert!(s_q >= w_full && s_w == 1, "wide panels go depth by depth");
    let at = |i: usize, p: usize| ptr.add((p ^ 1) * s_q + i * s_w);
    let widened = |v: f32| bf16_bits(v) << 16;
    if s_i == 1 {
        // the panel's rows are contiguous at each depth
        for p in 0..kc {
            let (src, dst) = (x.add(p * s_p), at(0, p));
            for i in 0..w {
                *dst.add(i) = widened(*src.add(i));
            }
        }
    } else {
        for i in 0..w {
            let src = x.add(i * s_i);
            for p in 0..kc {
                *at(i, p) = widened(*src.add(p * s_p));
            }
        }
    }
    for p in 0..2 * kq {
        let from = if p < kc { w } else { 0 };
        for i in from..w_full {
            *at(i, p) = 0;
        }
    }
}

/// Adds an `mr x nr` corner of a computed tile into C, from the start `s`.
unsafe fn merge_tile(mr: usize, nr: usize, tmp: &[f32], ldt: usize, c: *mut f32, rsc: usize, s: CStart) {
    for i in 0..mr {
        let row = c.add(i * rsc);
        for (j, &v) in tmp[i * ldt..i * ldt + nr].iter().enumerate() {
            s.finish(row.add(j), j, v);
        }
    }
}

/// The bf16 value of a packed half, as f32 (exact).
#[inline(always)]
fn widen(h: u32) -> f32 {
    f32::from_bits(h << 16)
}

/// The portable micro-kernel (plain Rust, auto-vectorised): the pair arithmetic of
/// `vdpbf16ps` lane by lane, odd product first, on an MR × NR tile, with A's panel pair by
/// pair or, `A_ROWS`, row by row (AMX's layout), and the depth padded to `KQ_ALIGN` pairs.
/// The portable path runs [`Portable`]; the tests also run the driver at the AVX512-BF16 and
/// AMX paths' geometries with it, on every CPU.
pub(crate) struct Generic<
    const MR: usize,
    const NR: usize,
    const MC: usize,
    const NC: usize,
    const KQ_ALIGN: usize,
    const A_ROWS: bool,
>;

/// The portable path's kernel: 6 × 16, A pair by pair.
pub(crate) type Portable = Generic<6, 16, 144, 4080, 1, false>;

impl<
        const MR: usize,
        const NR: usize,
        const MC: usize,
        const NC: usize,
        const KQ_ALIGN: usize,
        const A_ROWS: bool,
    > Kernel for Generic<MR, NR, MC, NC, KQ_ALIGN, A_ROWS>
{
    const MR: usize = MR;
    const NR: usize = NR;
    const MC: usize = MC;
    const NC: usize = NC;
    const KQ_ALIGN: usize = KQ_ALIGN;
    const A_ROWS: bool = A_ROWS;

    unsafe fn tile(kq: usize, a: *const u32, b: *const u32, c: *mut f32, rsc: usize, s: CStart) {
        let mut acc = [[0.0f32; NR]; MR];
        // SAFETY: the caller guarantees kq*MR and kq*NR words behind a and b.
        let (a, b) =
            unsafe { (std::slice::from_raw_parts(a, kq * MR), std::slice::from_raw_parts(b, kq * NR)) };
        if A_ROWS {
            // pair (i, q) of A at a[i·kq + q]: gather each depth's column
            for (q, bp) in b.chunks_exact(NR).enumerate() {
                let ap: [u32; MR] = std::array::from_fn(|i| a[i * kq + q]);
                pair_products(&mut acc, &ap, bp);
            }
        } else {
            // pair (i, q) of A at a[q·MR + i]
            for (ap, bp) in a.chunks_exact(MR).zip(b.chunks_exact(NR)) {
                pair_products(&mut acc, ap, bp);
            }
        }
        for (i, row) in acc.iter().enumerate() {
            for (j, &v) in row.iter().enumerate() {
                // SAFETY: the caller guarantees the MR x NR tile of C and NR values of a bias.
                unsafe { s.finish(c.add(i * rsc + j), j, v) };
            }
        }
    }
}

/// `acc[i][j] +=` the pair product of `ap[i]` and `bp[j]`, odd depth first (one depth pair of
/// a portable tile).
#[inline(always)]
fn pair_products<const MR: usize, const NR: usize>(acc: &mut [[f32; NR]; MR], ap: &[u32], bp: &[u32]) {
    let (b_lo, b_hi): ([f32; NR], [f32; NR]) =
        (std::array::from_fn(|j| widen(bp[j] & 0xffff)), std::array::from_fn(|j| widen(bp[j] >> 16)));
    for (row, &ai) in acc.iter_mut().zip(ap) {
        let (a_lo, a_hi) = (widen(ai & 0xffff), widen(ai >> 16));
        for j in 0..NR {
            row[j] += a_hi * b_hi[j];
            row[j] += a_lo * b_lo[j];
        }
    }
}
