//! Shared-memory race detection. Between two barriers (an epoch), a byte of shared
//! memory may be written by threads of one warp only, or read by any threads; a write
//! and another access by threads of *different* warps in one epoch is a race. Accesses
//! within a warp are not checked (the warp is assumed to run in step, as nvcc's
//! warp-synchronous code expects), and atomics are not recorded.

/// Per shared byte, the last writer and a reader: `epoch << 11 | several_warps << 10 | tid`.
pub struct Shadow {
    write: Vec<u32>,
    read: Vec<u32>,
    epoch: u32,
}

const MULTI: u32 = 1 << 10;
const TID: u32 = (1 << 10) - 1;

impl Shadow {
    pub fn new(bytes: usize) -> Shadow {
        Shadow { write: vec![0; bytes], read: vec![0; bytes], epoch: 1 }
    }

    /// A barrier completed: a new epoch begins.
    pub fn barrier(&mut self) {
        self.epoch += 1;
        if self.epoch >= 1 << 21 {
            self.write.iter_mut().for_each(|w| *w = 0);
            self.read.iter_mut().for_each(|w| *w = 0);
            self.epoch = 1;
        }
    }

    #[inline(always)]
    pub fn access(&mut self, t: usize, off: usize, size: usize, write: bool) -> Result<(), String> {
        let (e, tid, warp) = (self.epoch << 11, t as u32, t / 32);
        for b in off..off + size {
            let w = self.write[b];
            if w >> 11 << 11 == e && (w & TID) as usize / 32 != warp {
                let what = if write { "writes" } else { "reads" };
                return Err(format!(
                    "shared-memory race at shared offset {b:#x}: thread {t} (warp {warp}) {what} it after thread {} (warp {}) wrote it, with no barrier between",
                    w & TID,
                    (w & TID) / 32
                ));
            }
            let r = self.read[b];
            let r_now = r >> 11 << 11 == e;
            if write {
                if r_now && (r & MULTI != 0 || (r & TID) as usize / 32 != warp) {
                    return Err(format!(
                        "shared-memory race at shared offset {b:#x}: thread {t} (warp {warp}) writes it after thread {} (warp {}) read it, with no barrier between",
                        r & TID,
                        (r & TID) / 32
                    ));
                }
                self.write[b] = e | tid;
            } else if !r_now {
                self.read[b] = e | tid;
            } else if (r & TID) as usize / 32 != warp {
                self.read[b] = r | MULTI;
            }
        }
        Ok(())
    }
}
