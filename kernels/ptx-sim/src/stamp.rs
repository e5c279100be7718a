//! The ordering rule both race checks apply, shared memory's (`check.rs`, per byte) and
//! global memory's within a block (`memory.rs`, per word): an access is stamped with its
//! thread, the block epoch (barriers so far) and its warp's epoch (`__syncwarp()`s so far),
//! and two threads' accesses are unordered, so a write and another access of theirs race,
//! when they fall in one block epoch and either are in different warps or in one warp
//! epoch of their warp.
//!
//! A stamp is `block epoch << 32 | warp epoch << 12 | several warps << 11 | several
//! threads << 10 | thread`. A write stamp names the last writer. A read stamp names a
//! reader of the current block epoch, and its flags say that threads of other warps, or
//! other threads of its warp in its warp epoch, read too.

const TID: u64 = (1 << 10) - 1;
const THREADS: u64 = 1 << 10;
const WARPS: u64 = 1 << 11;
/// Warp epochs stay below this (20 bits of a stamp; `Shadow::warp_sync`).
pub const WARP_EPOCHS: u64 = 1 << 20;

/// One thread's access, as stamps record it.
#[derive(Clone, Copy, Debug)]
pub struct Access {
    pub thread: usize,
    /// The block epoch: 1 + the block's barriers so far (never 0, so a zero stamp is no one).
    pub epoch: u64,
    /// The epoch of the thread's warp: its `bar.warp.sync` meetings so far.
    pub warp_epoch: u64,
}

/// A race found by [`Access::check`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Race {
    /// After this thread's write.
    Wrote(usize),
    /// A write after this thread's read.
    Read(usize),
    /// A write after reads by threads of several warps.
    ReadBySeveralWarps,
}

impl Race {
    /// The other thread and what it did, for a message; `None` for reads by several warps.
    pub fn other(self) -> Option<(usize, &'static str)> {
        match self {
            Race::Wrote(o) => Some((o, "wrote")),
            Race::Read(o) => Some((o, "read")),
            Race::ReadBySeveralWarps => None,
        }
    }
}

/// What would have ordered threads `t` and `other`: a `__syncwarp()` within a warp, else a
/// barrier.
pub fn missing_sync(t: usize, other: usize) -> &'static str {
    if t / 32 == other / 32 {
        "__syncwarp()"
    } else {
        "barrier"
    }
}

impl Access {
    pub fn stamp(self) -> u64 {
        self.epoch << 32 | self.warp_epoch << 12 | self.thread as u64
    }

    fn current(self, s: u64) -> bool {
        s >> 32 == self.epoch
    }

    /// Unordered with another thread's access stamped `s`.
    fn unordered(self, s: u64) -> bool {
        let (warp, warp_epoch) = ((s & TID) as usize / 32, s >> 12 & (WARP_EPOCHS - 1));
        self.current(s) && (warp != self.thread / 32 || warp_epoch == self.warp_epoch)
    }

    /// Checks this access against the location's write stamp `w` and read stamp `r`.
    pub fn check(self, w: u64, r: u64, write: bool) -> Result<(), Race> {
        let tid = self.thread as u64;
        if (w & TID) != tid && self.unordered(w) {
            return Err(Race::Wrote((w & TID) as usize));
        }
        if write {
            if self.current(r) && r & WARPS != 0 {
                return Err(Race::ReadBySeveralWarps);
            }
            let other_reader = r & THREADS != 0 || (r & TID) != tid;
            if other_reader && self.unordered(r) {
                return Err(Race::Read((r & TID) as usize));
            }
        }
        Ok(())
    }

    /// The read stamp after this thread reads a location whose read stamp was `r`.
    pub fn read(self, r: u64) -> u64 {
        let warp = self.thread / 32;
        if !self.current(r) {
            self.stamp()
        } else if (r & TID) as usize / 32 != warp {
            r | WARPS
        } else if r >> 12 & (WARP_EPOCHS - 1) != self.warp_epoch {
            // this warp's earlier reads are ordered before this one by a __syncwarp()
            self.stamp() | (r & WARPS)
        } else if (r & TID) != self.thread as u64 {
            r | THREADS
        } else {
            r
        }
    }
}
