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

use crate::stamp::{missing_sync, Access, WARP_EPOCHS};

/// Per shared byte, the last writer and a reader, each a stamp (`stamp.rs`, which holds the
/// ordering rule, shared with global memory's check).
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

    /// Warp `w`'s epoch: its `bar.warp.sync` meetings since the warp epochs last began.
    pub fn warp_epoch(&self, w: usize) -> u64 {
        self.warp_epoch.get(w).copied().unwrap_or(0)
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
        let access = Access { thread: t, epoch: self.epoch, warp_epoch: self.warp_epoch(t / 32) };
        let what = if write { "writes" } else { "reads" };
        for b in off..off + size {
            let (w, r) = (self.write[b], self.read[b]);
            if !write && w == NEVER && self.unwritten.is_none() {
                // an error unless another thread writes the byte before the next barrier:
                // then the race is the error (`take_unwritten`)
                self.unwritten = Some(Unwritten { thread: t, pc, offset: b });
            }
            access.check(w, r, write).map_err(|race| match race.other() {
                Some((other, did)) => message(b, t, what, did, other),
                None => format!(
                    "shared-memory race at shared offset {b:#x}: thread {t} (warp {}) writes it after threads of \
                     several warps read it, with no barrier between",
                    t / 32
                ),
            })?;
            if write {
                self.write[b] = access.stamp();
            } else {
                self.read[b] = access.read(r);
            }
        }
        Ok(())
    }
}

/// The message for a race at shared byte `b` between thread `t` and thread `other`.
fn message(b: usize, t: usize, what: &str, did: &str, other: usize) -> String {
    format!(
        "shared-memory race at shared offset {b:#x}: thread {t} (warp {}) {what} it after thread {other} (warp {}) {did} it, with no {} between",
        t / 32,
        other / 32,
        missing_sync(t, other)
    )
}
