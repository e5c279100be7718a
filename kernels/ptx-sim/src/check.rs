//! Shared-memory race detection, with the ordering Volta and later GPUs give: a block
//! barrier (`bar.sync`) orders every thread's shared-memory accesses, `bar.warp.sync`
//! (`__syncwarp()`) orders those of one warp's threads, and nothing else does. The threads
//! of a warp are *not* assumed to run in step (since Volta they need not), so lanes that
//! hand each other values through shared memory need a `__syncwarp()` between, and a
//! shuffle or a vote does not stand in for it.
//!
//! Between two barriers (a block epoch), a byte of shared memory written by one thread and
//! read or written by another is a race, unless both are threads of one warp and that warp
//! met at a `bar.warp.sync` in between (a warp epoch: any member mask counts, so a sync of
//! some lanes orders the whole warp here, a simplification that can miss a race but not
//! invent one). Atomics are not recorded. Reading a byte that no thread of the block has
//! written is an error too: on a GPU it holds whatever an earlier block left there.

/// Per shared byte, the last writer and a reader, each a stamp
/// `block epoch << 32 | warp epoch << 12 | several warps << 11 | several threads << 10 | tid`:
/// the epochs are those of the access (the warp epoch of the accessing thread's warp); for
/// reads, "several" flags say that other threads (of other warps, or of this warp in this
/// warp epoch) read the byte too.
pub struct Shadow {
    write: Vec<u64>,
    read: Vec<u64>,
    epoch: u64,
    /// Completed `bar.warp.sync` meetings of each warp since the shadow began.
    warp_epoch: Vec<u64>,
    /// The first read of a byte no thread had written, since the last barrier.
    unwritten: Option<Unwritten>,
}

/// A read of a shared byte that no thread of the block had written: thread, instruction
/// and byte.
#[derive(Clone, Copy, Debug)]
pub struct Unwritten {
    pub thread: usize,
    pub pc: usize,
    pub offset: usize,
}

impl Unwritten {
    /// The message, after the place (`Block::at`) of the read.
    pub fn message(&self) -> String {
        format!(
            "thread {} (warp {}) reads shared offset {:#x}, which no thread of the block has written \
             (shared memory starts undefined on a GPU)",
            self.thread,
            self.thread / 32,
            self.offset
        )
    }
}

/// The write stamp of a byte no thread of the block has written: a GPU's shared memory
/// starts undefined, so reading such a byte is an error (the simulator's starts at zero,
/// which would hide it).
const NEVER: u64 = 0;
/// The write stamp of a byte an atomic wrote: written, and of no epoch (atomics are not
/// checked for races).
const ATOMIC: u64 = u64::MAX;
const TID: u64 = (1 << 10) - 1;
const THREADS: u64 = 1 << 10;
const WARPS: u64 = 1 << 11;
/// Warp epochs stay below this (20 bits of a stamp; `warp_sync`).
const WARP_EPOCHS: u64 = 1 << 20;

impl Shadow {
    pub fn new(bytes: usize) -> Shadow {
        Shadow {
            write: vec![NEVER; bytes],
            read: vec![0; bytes],
            epoch: 1,
            warp_epoch: Vec::new(),
            unwritten: None,
        }
    }

    /// The block epoch: 1 + the barriers completed so far, + the times the warp epochs
    /// started again (`warp_sync`); global memory's writers are stamped with it too
    /// (`memory.rs`). It never wraps in a simulation: a stamp holds
    /// 2³² epochs, more barriers than one block can run here in any sensible time.
    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    /// A barrier completed: a new block epoch begins.
    pub fn barrier(&mut self) {
        self.epoch += 1;
    }

    /// The first read of a never-written byte since the last barrier, if any: called when
    /// a barrier completes and when the block ends, by which time no other thread's write
    /// made it a race instead.
    pub fn take_unwritten(&mut self) -> Option<Unwritten> {
        self.unwritten.take()
    }

    /// Warp `w`'s threads met at a `bar.warp.sync`: a new warp epoch begins for it. Where
    /// a warp epoch would outgrow its 20 bits, a new block epoch begins instead and the warp
    /// epochs start again: every earlier access then counts as ordered, so a race across
    /// that point may go unseen, and none is invented.
    pub fn warp_sync(&mut self, w: usize) {
        if self.warp_epoch.len() <= w {
            self.warp_epoch.resize(w + 1, 0);
        }
        self.warp_epoch[w] += 1;
        if self.warp_epoch[w] >= WARP_EPOCHS {
            self.epoch += 1;
            self.warp_epoch.fill(0);
        }
    }

    /// An atomic on shared bytes: not checked for races, but the bytes count as written
    /// from now on (an `atomicExch` may be what first sets them).
    pub fn atomic(&mut self, off: usize, size: usize) {
        self.write[off..off + size].iter_mut().filter(|w| **w == NEVER).for_each(|w| *w = ATOMIC);
    }

    #[inline(always)]
    pub fn access(
        &mut self,
        t: usize,
        pc: usize,
        off: usize,
        size: usize,
        write: bool,
    ) -> Result<(), String> {
        let (tid, warp, epoch) = (t as u64, t / 32, self.epoch);
        let we = self.warp_epoch.get(warp).copied().unwrap_or(0);
        let stamp = epoch << 32 | we << 12 | tid;
        let current = |s: u64| s >> 32 == epoch;
        let warp_of = |s: u64| (s & TID) as usize / 32;
        let warp_epoch_of = |s: u64| s >> 12 & (WARP_EPOCHS - 1);
        // whether this access is unordered with another thread's access stamped `s`: both in
        // this block epoch, and in different warps or in this warp's current warp epoch
        let unordered = |s: u64| current(s) && (warp_of(s) != warp || warp_epoch_of(s) == we);
        let what = if write { "writes" } else { "reads" };
        for b in off..off + size {
            let w = self.write[b];
            if !write && w == NEVER && self.unwritten.is_none() {
                // an error unless another thread writes the byte before the next barrier:
                // then the race is the error (`take_unwritten`)
                self.unwritten = Some(Unwritten { thread: t, pc, offset: b });
            }
            if (w & TID) != tid && unordered(w) {
                return Err(race(b, t, what, "wrote", w & TID));
            }
            let r = self.read[b];
            if write {
                let other_reader = r & (WARPS | THREADS) != 0 || (r & TID) != tid;
                if current(r) && r & WARPS != 0 {
                    return Err(format!(
                        "shared-memory race at shared offset {b:#x}: thread {t} (warp {warp}) writes it after threads of \
                         several warps read it, with no barrier between"
                    ));
                }
                if other_reader && unordered(r) {
                    return Err(race(b, t, what, "read", r & TID));
                }
                self.write[b] = stamp;
            } else if !current(r) {
                self.read[b] = stamp;
            } else if warp_of(r) != warp {
                self.read[b] = r | WARPS;
            } else if warp_epoch_of(r) != we {
                // this warp's earlier reads are ordered before this one by a __syncwarp()
                self.read[b] = stamp | (r & WARPS);
            } else if (r & TID) != tid {
                self.read[b] = r | THREADS;
            }
        }
        Ok(())
    }
}

/// The message for a race at shared byte `b` between thread `t` and thread `other`.
fn race(b: usize, t: usize, what: &str, did: &str, other: u64) -> String {
    let sync = if t as u64 / 32 == other / 32 { "__syncwarp()" } else { "barrier" };
    format!(
        "shared-memory race at shared offset {b:#x}: thread {t} (warp {}) {what} it after thread {other} (warp {}) {did} it, with no {sync} between",
        t / 32,
        other / 32
    )
}
