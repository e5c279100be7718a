//! A product split over M by a team of threads that share each packed B block (BLIS-style).
//!
//! Independent threads would each pack all of B for their own rows; a team packs every
//! KC x NC block of B once, into buffers the threads share (they stay in the shared L3), and
//! then each thread runs the inner loops of [`super::driver`] for its own rows of A.

use super::driver::{macro_block, pack_b, Gemm, Kernel, Scratch, BUFS};
use std::cell::Cell;
use std::sync::atomic::{AtomicUsize, Ordering};

/// Spins briefly, then yields the core, until `done()`: a team's threads usually wait on each
/// other for microseconds, but on a busy machine the thread waited for may need this core.
#[inline(always)]
fn wait_until(done: impl Fn() -> bool) {
    let mut spins = 0u32;
    while !done() {
        if spins < 4096 {
            std::hint::spin_loop();
            spins += 1;
        } else {
            std::thread::yield_now();
        }
    }
}

/// NR panels packed per claim in a team: small enough to share a block's packing out evenly,
/// large enough that the row-major copy reads a few hundred contiguous bytes per row.
const TEAM_CHUNK: usize = 4;

/// The counters a team of threads coordinates through. All are cumulative over the product's
/// B blocks, so they never need resetting.
pub(crate) struct TeamState {
    parts: usize,
    /// Chunks of B panels claimed for packing.
    claimed: AtomicUsize,
    /// Chunks packed.
    packed: AtomicUsize,
    /// Per buffer: the blocks it has held that threads are done with, summed over threads.
    finished: [AtomicUsize; 2],
}

impl TeamState {
    pub(crate) fn new(parts: usize) -> Self {
        let z = || AtomicUsize::new(0);
        TeamState { parts, claimed: z(), packed: z(), finished: [z(), z()] }
    }
}

/// One thread's place in a product computed by a team that shares each packed B block.
pub(crate) struct Team<'a> {
    /// This thread's index, `0..parts`.
    pub tid: usize,
    pub state: &'a TeamState,
    /// Two B block buffers, [`team_b_len`] floats in all, 64-byte aligned.
    pub bbuf: *mut f32,
}

/// Floats in one packed B block of an `n`-column, depth-`k` product, rounded up to whole
/// 64-byte lines.
fn team_block_len<K: Kernel>(n: usize, k: usize) -> usize {
    (K::KC.min(k) * K::NC.min(n.div_ceil(K::NR) * K::NR)).div_ceil(16) * 16
}

/// Floats in a team's B buffers (two blocks) for an `n`-column, depth-`k` product.
pub(crate) fn team_b_len<K: Kernel>(n: usize, k: usize) -> usize {
    2 * team_block_len::<K>(n, k)
}

/// This thread's part of a product split over M by a team (BLIS-style), so that B is packed
/// once in all rather than once per thread, into buffers the threads share (in the shared L3).
///
/// Each KC x NC block of B is packed by whichever threads are there: they claim chunks of its
/// NR panels from a shared counter, so a thread that starts late (a pool worker still waking
/// up) costs the others nothing but the packing of its share. A thread then waits only until
/// the whole block is packed, and multiplies its own rows of A (shared out in MR units)
/// against it. Blocks alternate between two buffers, so packing block `b` waits only for every
/// thread to be done with block `b - 2`, never for the block just before.
///
/// # Safety
/// As [`super::driver::gemm_seq`]; every thread of the team calls this with the same
/// arguments (bar `tid`), `team.bbuf` holds [`team_b_len`] floats, and all `parts` threads run
/// concurrently.
#[inline(always)]
pub(crate) unsafe fn gemm_team<K: Kernel>(team: &Team, g: Gemm) {
    let Gemm { m, n, k, b, rsb, csb, .. } = g;
    let (tid, st) = (team.tid, team.state);
    let parts = st.parts;
    let units = m.div_ceil(K::MR);
    let lo = (units * tid / parts * K::MR).min(m);
    let hi = (units * (tid + 1) / parts * K::MR).min(m);
    let mut bufs = BUFS.with(|cell| cell.take());
    let abuf = bufs.a.get(K::MC.min((hi - lo).div_ceil(K::MR) * K::MR).max(K::MR) * K::KC.min(k));
    let block_len = team_block_len::<K>(n, k);
    // Chunks in the blocks before this one, and this block's index.
    let (mut base, mut blk) = (0, 0);
    for jc in (0..n).step_by(K::NC) {
        let nc = K::NC.min(n - jc);
        for pc in (0..k).step_by(K::KC) {
            let kc = K::KC.min(k - pc);
            let bbuf = team.bbuf.add(blk % 2 * block_len);
            let panels = nc.div_ceil(K::NR);
            let chunks = panels.div_ceil(TEAM_CHUNK);
            // This buffer held blocks blk - 2, blk - 4, ...: wait until every thread is done
            // with them. (No thread counts block blk in before the buffer is packed, and that
            // waits for this, so the sum reaches its target only when all threads are done.)
            wait_until(|| st.finished[blk % 2].load(Ordering::Acquire) >= parts * (blk / 2));
            loop {
                let cur = st.claimed.load(Ordering::Relaxed);
                if cur >= base + chunks {
                    break;
                }
                if st
                    .claimed
                    .compare_exchange_weak(cur, cur + 1, Ordering::Relaxed, Ordering::Relaxed)
                    .is_ok()
                {
                    let p0 = (cur - base) * TEAM_CHUNK;
                    let cols = ((p0 + TEAM_CHUNK) * K::NR).min(nc) - p0 * K::NR;
                    let src = b.add(pc * rsb + (jc + p0 * K::NR) * csb);
                    pack_b::<K>(kc, cols, src, rsb, csb, bbuf.add(p0 * K::NR * kc));
                    // Release: a thread that sees the count also sees the packed panels.
                    st.packed.fetch_add(1, Ordering::Release);
                }
            }
            wait_until(|| st.packed.load(Ordering::Acquire) >= base + chunks);
            if hi > lo {
                macro_block::<K>(g.rows(lo, hi).block((jc, nc), (pc, kc), bbuf), abuf);
            }
            // Release: our reads of this block happen before anyone repacks its buffer.
            st.finished[blk % 2].fetch_add(1, Ordering::Release);
            base += chunks;
            blk += 1;
        }
    }
    BUFS.with(|cell| cell.set(bufs));
}

/// Runs `f` with a 64-byte-aligned buffer of `len` floats kept for reuse by the calling thread
/// (the shared B block of the products it leads).
pub(crate) fn with_team_b<R>(len: usize, f: impl FnOnce(*mut f32) -> R) -> R {
    thread_local! {
        static TEAM_B: Cell<Scratch> = const { Cell::new(Scratch { buf: Vec::new() }) };
    }
    let mut scratch = TEAM_B.with(|cell| cell.take());
    let r = f(scratch.get(len));
    TEAM_B.with(|cell| cell.set(scratch));
    r
}
