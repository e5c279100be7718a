//! The BLIS/GotoBLAS loop nest around a register-blocked micro-kernel, and operand packing.
//!
//! Loop order (outer to inner): `jc` over N by `NC` (B block of KC x NC, packed once, lives in
//! L3), `pc` over K by `KC`, `ic` over M by `MC` (A block of MC x KC, packed, lives in L2), `jr`
//! over the block's columns by `NR` (one packed B micro-panel, KC x NR, stays in L1), `ir` over
//! its rows by `MR` (streams the A micro-panels from L2), calling the MR x NR micro-kernel.
//!
//! Packing copies any strides (so transposes cost nothing extra) into the micro-kernel's order,
//! padding partial panels with zeros; a partial C tile is computed into a stack tile and then
//! merged into C element by element.
//!
//! [`gemm_seq`] runs the nest on one thread; `super::team` runs it on several threads that
//! split M and share each packed B block, as BLIS does.

pub(crate) use super::product::{CStart, Gemm};
use std::cell::Cell;

/// A register-blocked micro-kernel and the cache blocking that suits it.
pub(crate) trait Kernel {
    /// Rows of a C tile (A micro-panel height).
    const MR: usize;
    /// Columns of a C tile (B micro-panel width).
    const NR: usize;
    /// Rows of a packed A block (a multiple of MR).
    const MC: usize;
    /// Depth of a packed block.
    const KC: usize;
    /// Columns of a packed B block (a multiple of NR).
    const NC: usize;

    /// `C[i*rsc + j] = beta * C[i*rsc + j] + sum_p A[p*MR + i] * B[p*NR + j]` for the full
    /// MR x NR tile (`s.beta == 0` ignores C's old contents), or, when `s.bias` is not null
    /// (`s.beta` is then 0), `C[i*rsc + j] = bias[j] + sum` (see [`CStart::for_kernel`]).
    ///
    /// # Safety
    /// `a` holds `k*MR` floats, `b` holds `k*NR` floats (64-byte aligned), `c` addresses an
    /// MR x NR tile with row stride `rsc`, a bias holds NR floats, and the CPU supports the
    /// kernel's features.
    unsafe fn tile(k: usize, a: *const f32, b: *const f32, c: *mut f32, rsc: usize, s: CStart);

    /// [`Kernel::tile`] for the first `mr < MR` rows of a full-width tile (the last micro-panel
    /// of A, zero-padded to MR rows), writing those rows of C only, from the start `s` as
    /// [`CStart::finish`] gives it. The default runs the full tile into a scratch tile and
    /// merges its rows; a kernel may override it with one that computes only `mr` rows (with
    /// batch 64, the BiLSTM's recurrence has a 4-row edge in each of its 12-row AVX-512 tiles'
    /// products: the full tile spends 72 rows of FMAs on 64).
    ///
    /// # Safety
    /// As [`Kernel::tile`], with `c` addressing an `mr` x NR tile and `0 < mr < MR`.
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
        let mut tmp = [0.0f32; MAX_TILE];
        Self::tile(k, a, b, tmp.as_mut_ptr(), Self::NR, CStart::OVERWRITE);
        merge_tile(mr, Self::NR, &tmp, Self::NR, c, rsc, s);
    }

    /// Packs one full MR-row micro-panel of a row-major A (column stride 1, row stride `rsa`):
    /// `out[p*MR + i] = a[i*rsa + p]` for `p < kc`, `i < MR`. This is a transpose; kernels may
    /// override it with a vectorised one (the default makes MR sequential scalar streams).
    ///
    /// # Safety
    /// `a` addresses MR rows of `kc` floats with row stride `rsa`; `out` holds `kc*MR` floats;
    /// the CPU supports the kernel's features.
    #[inline(always)]
    unsafe fn pack_a_rows(kc: usize, a: *const f32, rsa: usize, out: *mut f32) {
        pack_a_rows_scalar(Self::MR, kc, a, rsa, out);
    }

    /// Packs one full NR-column micro-panel of a column-major B (row stride 1, column stride
    /// `csb`): `out[p*NR + j] = b[j*csb + p]` for `p < kc`, `j < NR`: the transpose of
    /// [`Kernel::pack_a_rows`] on NR columns (attention's `P·V` with P stored transposed, a
    /// linear layer's `X·Wᵀ` read as B). Kernels may override it with a vectorised one.
    ///
    /// # Safety
    /// `b` addresses NR columns of `kc` floats with column stride `csb`; `out` holds `kc*NR`
    /// floats; the CPU supports the kernel's features.
    #[inline(always)]
    unsafe fn pack_b_cols(kc: usize, b: *const f32, csb: usize, out: *mut f32) {
        pack_a_rows_scalar(Self::NR, kc, b, csb, out);
    }
}

/// The portable row-major A panel packing (see [`Kernel::pack_a_rows`]), `mr` rows.
///
/// # Safety
/// As [`Kernel::pack_a_rows`].
#[inline(always)]
pub(crate) unsafe fn pack_a_rows_scalar(mr: usize, kc: usize, a: *const f32, rsa: usize, out: *mut f32) {
    for i in 0..mr {
        let s = a.add(i * rsa);
        for p in 0..kc {
            *out.add(p * mr + i) = *s.add(p);
        }
    }
}

/// The largest MR*NR of any kernel (sizes the stack tile for edges).
const MAX_TILE: usize = 12 * 32;

/// A reusable, 64-byte-aligned scratch buffer.
#[derive(Default)]
pub(super) struct Scratch {
    pub(super) buf: Vec<f32>,
}

impl Scratch {
    /// A pointer to at least `len` aligned floats.
    pub(super) fn get(&mut self, len: usize) -> *mut f32 {
        if self.buf.len() < len + 16 {
            let mut v: Vec<f32> = Vec::with_capacity(len + 16);
            hugepage_hint(v.as_ptr(), len + 16);
            v.resize(len + 16, 0.0);
            self.buf = v;
        }
        let p = self.buf.as_mut_ptr();
        let off = p.align_offset(64);
        // SAFETY: off < 16 and the buffer holds len + 16 floats.
        unsafe { p.add(off) }
    }
}

/// Advises Linux to back the 2 MB-aligned interior of a (not yet touched) buffer with
/// transparent huge pages: the packed B block is megabytes, walked panel by panel, and 4 KB
/// pages cost TLB misses there. Advisory only; a no-op on other systems and small buffers.
fn hugepage_hint(p: *const f32, len: usize) {
    #[cfg(target_os = "linux")]
    {
        extern "C" {
            fn madvise(addr: *mut std::ffi::c_void, len: usize, advice: i32) -> i32;
        }
        const MADV_HUGEPAGE: i32 = 14;
        const HUGE: usize = 2 << 20;
        let start = p as usize;
        let end = start + len * std::mem::size_of::<f32>();
        let (lo, hi) = (start.div_ceil(HUGE) * HUGE, end / HUGE * HUGE);
        if hi > lo {
            // SAFETY: madvise only advises about pages of our own allocation; errors are ignored.
            unsafe {
                madvise(lo as *mut std::ffi::c_void, hi - lo, MADV_HUGEPAGE);
            }
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = (p, len);
}

#[derive(Default)]
pub(super) struct PackBufs {
    pub(super) a: Scratch,
    b: Scratch,
}

thread_local! {
    pub(super) static BUFS: Cell<PackBufs> = const {
        Cell::new(PackBufs {
            a: Scratch { buf: Vec::new() },
            b: Scratch { buf: Vec::new() },
        })
    };
}

/// Sequential blocked GEMM on raw pointers (C has column stride 1).
///
/// # Safety
/// All elements addressed by the shapes and strides are in bounds; C does not overlap A or B;
/// the CPU supports `K`'s features.
#[inline(always)]
pub(crate) unsafe fn gemm_seq<K: Kernel>(g: Gemm) {
    let Gemm { m, n, k, .. } = g;
    debug_assert!(m > 0 && n > 0 && k > 0);
    // Take this thread's buffers out for the duration (no closure around the hot path, so that
    // everything inlines into the caller's target-feature context), and put them back after.
    let mut bufs = BUFS.with(|cell| cell.take());
    let kc_max = K::KC.min(k);
    let mc_max = K::MC.min(m.div_ceil(K::MR) * K::MR);
    let nc_max = K::NC.min(n.div_ceil(K::NR) * K::NR);
    let abuf = bufs.a.get(mc_max * kc_max);
    let bbuf = bufs.b.get(nc_max * kc_max);
    blocked::<K>(g, abuf, bbuf);
    BUFS.with(|cell| cell.set(bufs));
}

#[inline(always)]
unsafe fn blocked<K: Kernel>(g: Gemm, abuf: *mut f32, bbuf: *mut f32) {
    let Gemm { n, k, b, rsb, csb, .. } = g;
    for jc in (0..n).step_by(K::NC) {
        let nc = K::NC.min(n - jc);
        for pc in (0..k).step_by(K::KC) {
            let kc = K::KC.min(k - pc);
            pack_b::<K>(kc, nc, b.add(pc * rsb + jc * csb), rsb, csb, bbuf);
            macro_block::<K>(g.block((jc, nc), (pc, kc), bbuf), abuf);
        }
    }
}

/// The three inner loops for one block ([`Gemm::block`]: `a` at its depth, `b` the packed
/// KC x NC block of B, `c` and the start's bias at its column): `ic` over the `m` rows of A
/// by MC, packing each A block into `abuf`, then `jr` and `ir` over its micro-tiles.
#[inline(always)]
pub(super) unsafe fn macro_block<K: Kernel>(blk: Gemm, abuf: *mut f32) {
    let Gemm { m, n: nc, k: kc, a, rsa, csa, b: bbuf, start, c, rsc, .. } = blk;
    const { assert!(K::MR * K::NR <= MAX_TILE, "the edge tile's buffer is too small for this kernel") };
    let mut tmp = [0.0f32; MAX_TILE];
    for ic in (0..m).step_by(K::MC) {
        let mc = K::MC.min(m - ic);
        pack_a::<K>(mc, kc, a.add(ic * rsa), rsa, csa, abuf);
        for jr in (0..nc).step_by(K::NR) {
            let nr = K::NR.min(nc - jr);
            let bp = bbuf.add(jr * kc);
            let tile_start = start.cols_from(jr);
            // While this micro-panel's tiles run, prefetch the next B micro-panel (KC x NR,
            // 16 KB for AVX2), a slice per tile. The B block is meant to sit in L3, but when
            // A is tall (2048 rows) its stream and C's push the block out, and each new
            // micro-panel then stalled its first tiles on memory (+4-6% at 2048^3, 1 thread).
            // With few rows the block stays cached and the prefetches only cost (64x1024x256:
            // -1.3%), hence the threshold.
            let next_len = if jr + K::NR < nc && m >= 4 * K::MC { kc * K::NR } else { 0 };
            let slice = next_len.div_ceil(mc.div_ceil(K::MR));
            let next_b = bbuf.add((jr + K::NR).min(nc) * kc);
            for (t, ir) in (0..mc).step_by(K::MR).enumerate() {
                let start = (t * slice).min(next_len);
                prefetch_l2(next_b.wrapping_add(start), (next_len - start).min(slice));
                let mr = K::MR.min(mc - ir);
                let ap = abuf.add(ir * kc);
                let cp = c.add((ic + ir) * rsc + jr);
                if mr == K::MR && nr == K::NR {
                    K::tile(kc, ap, bp, cp, rsc, tile_start.for_kernel(K::MR, K::NR, cp, rsc));
                } else if nr == K::NR {
                    K::tile_rows(mr, kc, ap, bp, cp, rsc, tile_start);
                } else {
                    K::tile(kc, ap, bp, tmp.as_mut_ptr(), K::NR, CStart::OVERWRITE);
                    merge_tile(mr, nr, &tmp, K::NR, cp, rsc, tile_start);
                }
            }
        }
    }
}

/// Hints the CPU to fetch the `len` floats at `p` into L2 (a no-op off x86). Prefetches never
/// fault, so `p` need not be dereferenceable.
#[inline(always)]
fn prefetch_l2(p: *const f32, len: usize) {
    #[cfg(any(target_arch = "x86", target_arch = "x86_64"))]
    {
        #[cfg(target_arch = "x86")]
        use std::arch::x86::{_mm_prefetch, _MM_HINT_T1};
        #[cfg(target_arch = "x86_64")]
        use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T1};
        for off in (0..len).step_by(16) {
            // SAFETY: a prefetch is only a hint; it reads nothing and cannot fault.
            unsafe { _mm_prefetch::<_MM_HINT_T1>(p.wrapping_add(off) as *const i8) };
        }
    }
    #[cfg(not(any(target_arch = "x86", target_arch = "x86_64")))]
    let _ = (p, len);
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

/// Packs an `mc x kc` block of A into MR-row micro-panels: panel `r`, depth `p`, row `i` goes to
/// `out[r*MR*kc + p*MR + i]`; rows past `mc` are zero.
#[inline(always)]
pub(crate) unsafe fn pack_a<K: Kernel>(
    mc: usize,
    kc: usize,
    a: *const f32,
    rsa: usize,
    csa: usize,
    out: *mut f32,
) {
    let mr_full = K::MR;
    let full = mc / mr_full;
    if rsa == 1 && csa != 1 {
        // Column-major A (transposed, e.g. gᵀ in dL/dW = gᵀ·x): depth step p's mc floats are
        // contiguous, and successive depth steps a whole row of the source apart (one page).
        // Walking one panel down all kc steps touches kc lines in one L1 set; walking one step
        // across all panels writes to mc/MR streams that alias in L1. So: four depth steps at
        // a time (their lines stay in L1), every panel's 4·MR floats written in one run.
        // (dL/dW of a [N, 1024] output at n = 16, one thread: 1.6x the packing-bound product.)
        const STEPS: usize = 4;
        for p0 in (0..kc).step_by(STEPS) {
            let steps = STEPS.min(kc - p0);
            for r in 0..full {
                let (src, dst) = (a.add(p0 * csa + r * mr_full), out.add(r * mr_full * kc + p0 * mr_full));
                for p in 0..steps {
                    std::ptr::copy_nonoverlapping(src.add(p * csa), dst.add(p * mr_full), mr_full);
                }
            }
        }
    } else {
        for r in 0..full {
            let (src, dst) = (a.add(r * mr_full * rsa), out.add(r * mr_full * kc));
            if csa == 1 {
                // Row-major A: a transpose of MR rows (the kernel may vectorise it).
                K::pack_a_rows(kc, src, rsa, dst);
            } else {
                for p in 0..kc {
                    for i in 0..mr_full {
                        *dst.add(p * mr_full + i) = *src.add(i * rsa + p * csa);
                    }
                }
            }
        }
    }
    // The partial last panel, zero-padded.
    let mr = mc - full * mr_full;
    if mr > 0 {
        let (src, dst) = (a.add(full * mr_full * rsa), out.add(full * mr_full * kc));
        for p in 0..kc {
            let d = dst.add(p * mr_full);
            for i in 0..mr {
                *d.add(i) = *src.add(i * rsa + p * csa);
            }
            for i in mr..mr_full {
                *d.add(i) = 0.0;
            }
        }
    }
}

/// Packs a `kc x nc` block of B into NR-column micro-panels: panel `s`, depth `p`, column `j` goes
/// to `out[s*NR*kc + p*NR + j]`; columns past `nc` are zero.
#[inline(always)]
pub(crate) unsafe fn pack_b<K: Kernel>(
    kc: usize,
    nc: usize,
    b: *const f32,
    rsb: usize,
    csb: usize,
    out: *mut f32,
) {
    let nr_full = K::NR;
    let full = nc / nr_full;
    if csb == 1 {
        // Row-major B: walk each row sequentially (a column walk would touch one page per row),
        // a group of panels at a time so the written lines stay within a few pages.
        const GROUP: usize = 16;
        for g in (0..full).step_by(GROUP) {
            let ge = (g + GROUP).min(full);
            for p in 0..kc {
                let s = b.add(p * rsb);
                let d = out.add(p * nr_full);
                for jr in g..ge {
                    std::ptr::copy_nonoverlapping(s.add(jr * nr_full), d.add(jr * nr_full * kc), nr_full);
                }
            }
        }
    } else if rsb == 1 {
        // Column-major B (transposed): NR sequential streams per panel.
        for jr in 0..full {
            K::pack_b_cols(kc, b.add(jr * nr_full * csb), csb, out.add(jr * nr_full * kc));
        }
    } else {
        for jr in 0..full {
            let src = b.add(jr * nr_full * csb);
            let dst = out.add(jr * nr_full * kc);
            for p in 0..kc {
                for j in 0..nr_full {
                    *dst.add(p * nr_full + j) = *src.add(p * rsb + j * csb);
                }
            }
        }
    }
    // The partial last panel, zero-padded.
    let nr = nc - full * nr_full;
    if nr > 0 {
        let src = b.add(full * nr_full * csb);
        let dst = out.add(full * nr_full * kc);
        for p in 0..kc {
            let d = dst.add(p * nr_full);
            for j in 0..nr {
                *d.add(j) = *src.add(p * rsb + j * csb);
            }
            for j in nr..nr_full {
                *d.add(j) = 0.0;
            }
        }
    }
}

/// Portable micro-kernel (auto-vectorised by the compiler), with its blocking as parameters so
/// tests can drive the loop nest through many small blocks.
pub(crate) struct Generic<const MR: usize, const NR: usize, const MC: usize, const KC: usize, const NC: usize>;

impl<const MR: usize, const NR: usize, const MC: usize, const KC: usize, const NC: usize> Kernel
    for Generic<MR, NR, MC, KC, NC>
{
    const MR: usize = MR;
    const NR: usize = NR;
    const MC: usize = MC;
    const KC: usize = KC;
    const NC: usize = NC;

    unsafe fn tile(k: usize, a: *const f32, b: *const f32, c: *mut f32, rsc: usize, s: CStart) {
        let mut acc = [[0.0f32; NR]; MR];
        // SAFETY: the caller guarantees k*MR and k*NR floats behind a and b.
        let (a, b) =
            unsafe { (std::slice::from_raw_parts(a, k * MR), std::slice::from_raw_parts(b, k * NR)) };
        for (ap, bp) in a.chunks_exact(MR).zip(b.chunks_exact(NR)) {
            for (row, &ai) in acc.iter_mut().zip(ap) {
                for (cij, &bj) in row.iter_mut().zip(bp) {
                    *cij += ai * bj;
                }
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
