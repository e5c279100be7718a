//! Single-precision GEMM: `C = beta*C + A*B` with arbitrary strides for A and B.
//!
//! A BLIS/GotoBLAS-style implementation: operands are packed into cache-sized blocks
//! (see `driver.rs`) and multiplied by a register-blocked micro-kernel chosen at run time
//! (AVX-512F 12x32, AVX2+FMA 6x16, or a portable auto-vectorised fallback). Large products
//! are split over the [`crate::threads`] pool along M or N, whichever is larger. Along M, the
//! threads form a team that packs each block of B once into a buffer they share; along N (and
//! from inside a pool worker) they run independent products, each packing its own operands.
//! Batched products are split over the batch.
//!
//! C always has column stride 1 (`C[i*rsc + j]`); transposes of A and B are expressed through
//! their strides (NN, NT, TN, TT and any other layout all work).

pub(crate) mod avx2;
pub(crate) mod avx512;
pub(crate) mod driver;
mod prepacked;
mod product;
pub mod reference;
mod team;
#[cfg(test)]
mod tests;

pub use prepacked::{sgemm_prepacked, PackedB};
pub use reference::{gemm_reference, sgemm_reference_f64};

use crate::gemm::{check, extent, Dims, MatMut, MatRef};

use crate::isa::Family;
pub(crate) use crate::isa::Isa;
use crate::threads;
use driver::{gemm_seq, Generic, Kernel};
pub(crate) use driver::{CStart, Gemm};
use std::sync::atomic::{AtomicUsize, Ordering};
use team::{gemm_team, team_b_len, with_team_b, Team, TeamState};

/// Products below this many flops (per thread) stay on one thread: waking a pool worker costs
/// microseconds, which a small product cannot repay.
const PAR_MIN_FLOPS_PER_THREAD: usize = 1 << 21;

/// Products split over M share their packed B blocks (a team) from this many flops up. Below
/// it the threads pack B each for themselves: that costs only microseconds, and measured
/// faster than coordinating (e.g. 256x256x64 on 2 threads, ~110 vs ~100 GFLOP/s), while a
/// 512^3 product gains ~5% from the team.
const TEAM_MIN_FLOPS: usize = 1 << 26;

/// The portable fallback: the same geometry as the AVX2 kernel.
pub(crate) type Portable = Generic<6, 16, 144, 256, 4080>;

/// The AVX-512 family's geometry (its 12 × 32 tile and its blocks) with the portable
/// arithmetic: the tests run the code generic over the kernel (the prepacked product, the
/// attention panels) at that geometry on every CPU, not only where AVX-512 runs.
#[cfg(test)]
pub(crate) type Avx512Shaped = Generic<
    { avx512::Avx512::MR },
    { avx512::Avx512::NR },
    { avx512::Avx512::MC },
    { avx512::Avx512::KC },
    { avx512::Avx512::NC },
>;

/// The micro-kernel family in use now ([`crate::isa::active`]: the CPU's best, or the one
/// [`crate::isa::force`] set).
pub(crate) fn isa() -> Isa {
    crate::isa::active()
}

/// The name of the micro-kernel in use ("avx512 12x32", "avx2+fma 6x16" or "portable 6x16").
pub fn kernel_name() -> &'static str {
    match isa() {
        Isa::Avx512 => "avx512 12x32",
        Isa::Avx2 => "avx2+fma 6x16",
        Isa::Portable => "portable 6x16",
    }
}

/// `C = beta·C + A·B` for every item of the batch, with any strides for A and B
/// (`A(i,p) = a.data[i·a.s.row + p·a.s.col]`, the batch items `a.s.batch` apart; NN, NT,
/// TN all work) and C row-major; `+ bias` on every row when C carries one
/// ([`MatMut::with_bias`], added by the micro-kernel as it stores each tile of C).
/// `beta == 0.0` overwrites C (its old contents, even NaN, are ignored); `beta == 1.0`
/// accumulates; other values scale. A or B may be broadcast over the batch (batch stride
/// 0); if C's items overlap (e.g. batch stride 0), the products are applied one after
/// another in batch order.
///
/// # Panics
/// If a slice is too short for its sizes and strides, C is not row-major, or C's rows
/// overlap (row stride < n with m > 1).
pub fn sgemm(d: Dims, a: MatRef<f32>, b: MatRef<f32>, beta: f32, c: MatMut<f32>) {
    sgemm_with(isa(), threads::num_threads(), d, a, b, beta, c);
}

/// A team's shared B buffer, handed to its threads.
#[derive(Clone, Copy)]
struct MutPtr(*mut f32);
// SAFETY: the team's counters order every write to the buffer before the reads of it, and the
// buffer outlives the parallel scope.
unsafe impl Send for MutPtr {}
unsafe impl Sync for MutPtr {}
impl MutPtr {
    fn get(self) -> *mut f32 {
        self.0
    }
}

/// The micro-kernel's C tile, MR × NR, of `isa`'s family.
pub(crate) fn tile_shape(isa: Isa) -> (usize, usize) {
    match isa {
        Isa::Avx512 => (avx512::Avx512::MR, avx512::Avx512::NR),
        Isa::Avx2 => (avx2::Avx2::MR, avx2::Avx2::NR),
        Isa::Portable => (Portable::MR, Portable::NR),
    }
}

/// [`sgemm`] with an explicit kernel family and thread count (for tests and benchmarks).
pub(crate) fn sgemm_with(
    isa: Isa,
    nthreads: usize,
    d: Dims,
    a: MatRef<f32>,
    b: MatRef<f32>,
    beta: f32,
    mut c: MatMut<f32>,
) {
    if d.batch == 0 {
        return;
    }
    check("sgemm", d, &a, &b, &c);
    threads::ensure_ftz();
    crate::isa::note(Family::Sgemm, isa);
    let Dims { batch, m, n, .. } = d;
    let (sa, sb, sc) = (a.s.batch, b.s.batch, c.s.batch);
    let disjoint = batch == 1 || sc >= extent("sgemm", m, n, c.s.row, 1, "C");
    let par = nthreads.min(d.flops() / PAR_MIN_FLOPS_PER_THREAD).min(batch);
    let g = Gemm::new(d, &a, &b, beta, &mut c);
    if disjoint && par > 1 && batch >= nthreads {
        // One product per task, handed out dynamically so uneven batches balance.
        let next = AtomicUsize::new(0);
        threads::run_parts(par, |_| loop {
            let i = next.fetch_add(1, Ordering::Relaxed);
            if i >= batch {
                break;
            }
            // SAFETY: `check` covered every batch item; C items are disjoint (batch stride >=
            // extent), so each is written by exactly one task.
            unsafe { gemm_par(isa, 1, g.offset(i * sa, i * sb, i * sc)) };
        });
    } else {
        for i in 0..batch {
            // SAFETY: as above; items run one after another.
            unsafe { gemm_par(isa, nthreads, g.offset(i * sa, i * sb, i * sc)) };
        }
    }
}

/// Splits one product over up to `nthreads` threads and runs the blocked kernel on each part.
///
/// # Safety
/// Every addressed element is in bounds; C does not overlap A or B and its rows do not overlap.
unsafe fn gemm_par(isa: Isa, nthreads: usize, g: Gemm) {
    let Gemm { m, n, k, c, rsc, .. } = g;
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        g.start.write(m, n, c, rsc);
        return;
    }
    let (mr, nr) = tile_shape(isa);
    let flops = 2 * m * n * k;
    // Split the larger of M and N: the other operand is the one every part packs for itself.
    let split_m = m >= n;
    let (len, unit) = if split_m { (m, mr) } else { (n, nr) };
    let units = len.div_ceil(unit);
    let parts = nthreads.min(flops / PAR_MIN_FLOPS_PER_THREAD).min(units).max(1);
    // Split over M by a team that packs each B block once, together, into buffers they share
    // (see `team::gemm_team`). Not from inside a pool worker: the team waits for each of its
    // threads to finish a block, and a worker's own queued part could then never start.
    if parts > 1 && split_m && flops >= TEAM_MIN_FLOPS && rayon::current_thread_index().is_none() {
        let len = match isa {
            Isa::Avx512 => team_b_len::<avx512::Avx512>(n, k),
            Isa::Avx2 => team_b_len::<avx2::Avx2>(n, k),
            Isa::Portable => team_b_len::<Portable>(n, k),
        };
        let state = TeamState::new(parts);
        with_team_b(len, |bbuf| {
            let bbuf = MutPtr(bbuf);
            threads::run_parts(parts, |tid| {
                let team = Team { tid, state: &state, bbuf: bbuf.get() };
                // SAFETY: each thread writes its own rows of C and the B panels it claimed;
                // the team's counters order the packing of a block before its reads, and the
                // reads before the buffer is packed again.
                unsafe { team_part(isa, &team, g) };
            });
        });
        return;
    }
    let run_part = |part: usize| {
        let lo = units * part / parts * unit;
        let hi = (units * (part + 1) / parts * unit).min(len);
        if lo >= hi {
            return;
        }
        // SAFETY: each part covers a disjoint range of C's rows (or columns) and reads inside
        // the caller-checked A and B.
        unsafe {
            if split_m {
                seq(isa, g.rows(lo, hi));
            } else {
                seq(isa, g.cols(lo, hi));
            }
        }
    };
    if parts == 1 {
        run_part(0);
    } else {
        threads::run_parts(parts, run_part);
    }
}

/// Runs one thread's part of a team product with the chosen kernel.
unsafe fn team_part(isa: Isa, team: &Team, g: Gemm) {
    threads::ensure_ftz();
    match isa {
        Isa::Avx512 => avx512::gemm_team_avx512(team, g),
        Isa::Avx2 => avx2::gemm_team_avx2(team, g),
        Isa::Portable => gemm_team::<Portable>(team, g),
    }
}

/// Runs the sequential blocked product with the chosen kernel.
unsafe fn seq(isa: Isa, g: Gemm) {
    threads::ensure_ftz();
    match isa {
        Isa::Avx512 => avx512::gemm_seq_avx512(g),
        Isa::Avx2 => avx2::gemm_seq_avx2(g),
        Isa::Portable => gemm_seq::<Portable>(g),
    }
}
