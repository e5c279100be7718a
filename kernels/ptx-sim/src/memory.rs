//! Global memory: allocations at 256-byte-aligned addresses with unmapped gaps between
//! them (so an access past one buffer never lands in another), stored as atomic 32-bit
//! words so blocks running on several host threads can share them: plain accesses are
//! relaxed loads/stores, 32-bit atomics are native, 64-bit atomics take a striped lock.
//!
//! **One owner per output.** Blocks of a launch run in no order a kernel may rely on (nor
//! do they on a GPU), so a word that one block writes must not be read or written by
//! another block of the same launch: the engine's kernels give every output element one
//! owner (`kernels/cuda/common.cuh`), and no kernel passes data between blocks. Each word
//! of a buffer remembers the launch and block that last wrote it ([`Buffer::claim`]); a
//! plain load or store of a whole word by another block of that launch is an error. It
//! also remembers which block of the launch read it (or that several did), so a write
//! that comes after another block's read is an error too: whichever of the two runs first,
//! the conflict is found (unless the two accesses happen at the same moment on two host
//! threads: the stamps are relaxed atomics, checked and then set).
//! Within a block, global memory is held to shared memory's rule (`stamp.rs`): each word
//! also remembers the thread that last wrote it and (while that block alone has read it)
//! who read it, with their block and warp epochs, and another thread's access after a
//! write, or a write after another thread's read, is a race unless a barrier, or for two
//! threads of one warp a `__syncwarp()`, came between. Atomics and sub-word accesses are not
//! tracked (bytes of one word may have different owners), so this can miss a conflict but
//! never invents one.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex, RwLock};

use crate::stamp::{Access, Race};
use crate::SimError;

/// Where the first allocation goes; addresses below are the shared and local windows.
pub const GLOBAL_BASE: u64 = 0x1_0000_0000;
/// Generic addresses of shared memory (`cvta.shared`): this window plus the offset.
pub const SHARED_WINDOW: u64 = 0x2000_0000;
/// Generic addresses of local memory (`cvta.local`).
pub const LOCAL_WINDOW: u64 = 0x1000_0000;
const GAP: u64 = 64 * 1024;

pub struct Buffer {
    pub base: u64,
    pub len: usize,
    pub words: Box<[AtomicU32]>,
    /// Per word, who wrote and read it in the latest launch that touched it.
    stamps: Box<[Stamps]>,
}

/// What a global word remembers of the accesses to it, for [`Buffer::claim`].
#[derive(Default)]
struct Stamps {
    /// The writer in the launch that last wrote it: [`BlockTag`]'s bits, 0 for none.
    owner: AtomicU64,
    /// The owner's thread that last wrote it, as a write stamp (`stamp.rs`).
    writer: AtomicU64,
    /// The block of the launch that read it, or [`BlockTag::several`] once a second block
    /// has; 0 for none.
    reader: AtomicU64,
    /// While one block alone has read it: that block's reads, as a read stamp (`stamp.rs`).
    block_reads: AtomicU64,
}

/// A plain access that conflicts with another in the same launch (module doc).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Conflict {
    Block(BlockTag),
    /// Unordered with another thread's access in this block (`stamp.rs`).
    Race(Race),
    /// A write to a word that another block of the launch read (a [`BlockTag::several`]
    /// tag when more than one did).
    ReadBy(BlockTag),
}

/// Who accesses a global word: the block, and the thread within it with its epochs.
#[derive(Clone, Copy, Debug)]
pub struct Accessor {
    pub block: BlockTag,
    pub access: Access,
}

/// A block of a launch: `launch << 32 | (block's linear index + 1)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BlockTag(pub u64);

impl BlockTag {
    pub fn new(launch: u32, linear_block: usize) -> BlockTag {
        BlockTag((launch as u64) << 32 | (linear_block as u64 + 1) & 0xffff_ffff)
    }
    /// The linear index of the block (x fastest); `None` for [`BlockTag::several`].
    pub fn block(self) -> Option<usize> {
        ((self.0 & 0xffff_ffff) as usize).checked_sub(1)
    }
    /// More than one block of the launch (a block's tag never has zero low bits).
    pub fn several(self) -> BlockTag {
        BlockTag(self.0 & !0xffff_ffff)
    }
    fn launch(self) -> u64 {
        self.0 >> 32
    }
}

#[derive(Default)]
pub struct Global {
    pub bufs: RwLock<BTreeMap<u64, Arc<Buffer>>>,
    next: Mutex<u64>,
    locks: [Mutex<()>; 16],
    launches: AtomicU32,
}

impl Global {
    pub fn alloc(&self, bytes: usize) -> Result<u64, SimError> {
        let mut next = self.next.lock().expect("allocator lock");
        if *next == 0 {
            *next = GLOBAL_BASE;
        }
        let base = *next;
        let n = bytes.div_ceil(4);
        let words = (0..n).map(|_| AtomicU32::new(0)).collect();
        let stamps = (0..n).map(|_| Stamps::default()).collect();
        *next = (base + bytes as u64 + GAP).div_ceil(256) * 256;
        let b = Arc::new(Buffer { base, len: bytes, words, stamps });
        self.bufs.write().expect("memory lock").insert(base, b);
        Ok(base)
    }

    pub fn free(&self, ptr: u64) -> Result<(), SimError> {
        match self.bufs.write().expect("memory lock").remove(&ptr) {
            Some(_) => Ok(()),
            None => {
                Err(SimError::new(format!("free of {ptr:#x}, which is not the start of a live allocation")))
            }
        }
    }

    /// The buffer holding `[addr, addr+len)` entirely, or an error naming the nearest one.
    pub fn find(&self, addr: u64, len: usize, what: &str) -> Result<(Arc<Buffer>, usize), SimError> {
        let bufs = self.bufs.read().expect("memory lock");
        let b = bufs.range(..=addr).next_back().map(|(_, b)| b.clone());
        find_in(b.as_deref(), addr, len).map_err(|m| SimError::new(format!("{what}: {m}")))?;
        let b = b.expect("checked");
        let off = (addr - b.base) as usize;
        Ok((b, off))
    }

    /// A new launch's number (1, 2, …; wraps after 2³² launches).
    pub fn next_launch(&self) -> u32 {
        self.launches.fetch_add(1, Relaxed).wrapping_add(1)
    }

    pub fn lock64(&self, addr: u64) -> std::sync::MutexGuard<'_, ()> {
        self.locks[(addr >> 3) as usize % 16].lock().expect("atomic lock")
    }
}

/// `len` bytes from `off` as the bytes before the first word boundary, the whole words
/// after it, and the bytes after the last whole word.
fn split_words(off: usize, len: usize) -> (usize, usize, usize) {
    let head = ((4 - off % 4) % 4).min(len);
    let words = (len - head) / 4;
    (head, words, len - head - 4 * words)
}

/// Checks that `[addr, addr+len)` lies in `b`; the message names the buffer.
pub fn find_in(b: Option<&Buffer>, addr: u64, len: usize) -> Result<(), String> {
    match b {
        Some(b) if addr + len as u64 <= b.base + b.len as u64 => Ok(()),
        Some(b) if addr < b.base + b.len as u64 + GAP => Err(format!(
            "{len} bytes at {addr:#x} run {} bytes past the end of buffer {:#x} ({} bytes)",
            addr + len as u64 - (b.base + b.len as u64),
            b.base,
            b.len
        )),
        _ => Err(format!("{len} bytes at {addr:#x} are in no allocated buffer")),
    }
}

impl Buffer {
    /// Checks a plain access of `size` bytes at `off` by `by` against the words' stamps in
    /// this launch (module doc), and stamps them with `by`. The error is the first conflict.
    #[inline(always)]
    pub fn claim(&self, off: usize, size: usize, by: Accessor, write: bool) -> Result<(), Conflict> {
        if size < 4 {
            return Ok(());
        }
        for s in &self.stamps[off / 4..(off + size) / 4] {
            // another block of this launch wrote it
            let o = s.owner.load(Relaxed);
            if BlockTag(o).launch() == by.block.launch() && o != by.block.0 && o != 0 {
                return Err(Conflict::Block(BlockTag(o)));
            }
            // another block of this launch read it, and this is a write
            let r = s.reader.load(Relaxed);
            let read_here = BlockTag(r).launch() == by.block.launch();
            if write && read_here && r != by.block.0 {
                return Err(Conflict::ReadBy(BlockTag(r)));
            }
            // within this block, what its threads did since the last barrier (`stamp.rs`); the
            // stamps are this block's if it wrote the word, or alone read it, in this launch
            let w = if o == by.block.0 { s.writer.load(Relaxed) } else { 0 };
            let reads = if r == by.block.0 { s.block_reads.load(Relaxed) } else { 0 };
            by.access.check(w, reads, write).map_err(Conflict::Race)?;
            if write {
                s.owner.store(by.block.0, Relaxed);
                s.writer.store(by.access.stamp(), Relaxed);
            } else if r == by.block.0 || !read_here {
                // this block alone has read it
                if r != by.block.0 {
                    s.reader.store(by.block.0, Relaxed);
                }
                let now = by.access.read(reads);
                if now != reads {
                    s.block_reads.store(now, Relaxed);
                }
            } else if r != by.block.several().0 {
                s.reader.store(by.block.several().0, Relaxed);
            }
        }
        Ok(())
    }

    #[inline(always)]
    pub fn load(&self, off: usize, size: usize) -> u64 {
        let w = off / 4;
        match size {
            4 => self.words[w].load(Relaxed) as u64,
            8 => self.words[w].load(Relaxed) as u64 | (self.words[w + 1].load(Relaxed) as u64) << 32,
            _ => {
                let sh = (off % 4) * 8;
                let v = (self.words[w].load(Relaxed) >> sh) as u64;
                v & ((1u64 << (size * 8)) - 1)
            }
        }
    }

    #[inline(always)]
    pub fn store(&self, off: usize, size: usize, v: u64) {
        let w = off / 4;
        match size {
            4 => self.words[w].store(v as u32, Relaxed),
            8 => {
                self.words[w].store(v as u32, Relaxed);
                self.words[w + 1].store((v >> 32) as u32, Relaxed);
            }
            _ => {
                // Sub-word: clear then set our bytes; neighbours' bytes are untouched.
                let sh = (off % 4) * 8;
                let m = (((1u64 << (size * 8)) - 1) as u32) << sh;
                self.words[w].fetch_and(!m, Relaxed);
                self.words[w].fetch_or(((v as u32) << sh) & m, Relaxed);
            }
        }
    }

    /// Copies out `dst.len()` bytes from `off`: whole words at a time where aligned.
    pub fn read_bytes(&self, off: usize, dst: &mut [u8]) {
        let (head, words, tail) = split_words(off, dst.len());
        for (i, d) in dst[..head].iter_mut().enumerate() {
            *d = self.load(off + i, 1) as u8;
        }
        for (w, d) in dst[head..head + 4 * words].chunks_exact_mut(4).enumerate() {
            d.copy_from_slice(&self.words[(off + head) / 4 + w].load(Relaxed).to_le_bytes());
        }
        let at = head + 4 * words;
        for (i, d) in dst[at..at + tail].iter_mut().enumerate() {
            *d = self.load(off + at + i, 1) as u8;
        }
    }

    /// Sets `len` bytes from `off` to `value`: whole words at a time where aligned.
    pub fn fill(&self, off: usize, len: usize, value: u8) {
        let (head, words, tail) = split_words(off, len);
        let at = off + head + 4 * words;
        for i in (off..off + head).chain(at..at + tail) {
            self.store(i, 1, value as u64);
        }
        for w in &self.words[(off + head) / 4..at / 4] {
            w.store(u32::from_ne_bytes([value; 4]), Relaxed);
        }
    }

    /// Copies in `src` at `off`: whole words at a time where aligned.
    pub fn write_bytes(&self, off: usize, src: &[u8]) {
        let (head, words, tail) = split_words(off, src.len());
        for (i, s) in src[..head].iter().enumerate() {
            self.store(off + i, 1, *s as u64);
        }
        for (w, s) in src[head..head + 4 * words].chunks_exact(4).enumerate() {
            self.words[(off + head) / 4 + w].store(u32::from_le_bytes([s[0], s[1], s[2], s[3]]), Relaxed);
        }
        let at = head + 4 * words;
        for (i, s) in src[at..at + tail].iter().enumerate() {
            self.store(off + at + i, 1, *s as u64);
        }
    }
}

/// The buffers of a launch, sorted by base, for lookups without locking.
pub struct Snapshot {
    pub bufs: Vec<Arc<Buffer>>,
}

impl Snapshot {
    pub fn new(g: &Global) -> Snapshot {
        Snapshot { bufs: g.bufs.read().expect("memory lock").values().cloned().collect() }
    }

    /// Index of the buffer holding `[addr, addr+len)`, trying `hint` first.
    #[inline(always)]
    pub fn lookup(&self, addr: u64, len: usize, hint: &mut usize) -> Result<usize, String> {
        if let Some(b) = self.bufs.get(*hint) {
            if addr >= b.base && addr + len as u64 <= b.base + b.len as u64 {
                return Ok(*hint);
            }
        }
        let i = self.bufs.partition_point(|b| b.base <= addr);
        let b = i.checked_sub(1).map(|i| &*self.bufs[i]);
        find_in(b, addr, len)?;
        *hint = i - 1;
        Ok(i - 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The stamps of one word, access by access: each conflict the module doc names, in
    /// both orders where there are two, and the accesses that are not conflicts.
    #[test]
    fn claims_find_each_conflict_in_either_order() {
        let g = Global::default();
        let base = g.alloc(4).unwrap();
        let (b, _) = g.find(base, 4, "test").unwrap();
        let launch = std::cell::Cell::new(0);
        let fresh = || launch.set(launch.get() + 1);
        // block, thread, block epoch (warp epochs: `warp_epochs_order_a_warp`)
        let at = |block: usize, thread: usize, epoch: u64| Accessor {
            block: BlockTag::new(launch.get(), block),
            access: Access { thread, epoch, warp_epoch: 0 },
        };
        let read = |by: Accessor| b.claim(0, 4, by, false);
        let write = |by: Accessor| b.claim(0, 4, by, true);
        let tag = |block: usize| BlockTag::new(launch.get(), block);

        // across blocks: write then read, read then write, write then write
        fresh();
        write(at(0, 0, 1)).unwrap();
        assert_eq!(read(at(1, 0, 1)), Err(Conflict::Block(tag(0))));
        fresh();
        read(at(0, 0, 1)).unwrap();
        assert_eq!(write(at(1, 0, 1)), Err(Conflict::ReadBy(tag(0))));
        fresh();
        read(at(0, 0, 1)).unwrap();
        read(at(2, 0, 1)).unwrap();
        assert_eq!(write(at(0, 0, 1)), Err(Conflict::ReadBy(tag(0).several())), "two blocks read it");
        fresh();
        write(at(0, 0, 1)).unwrap();
        assert_eq!(write(at(1, 0, 1)), Err(Conflict::Block(tag(0))));
        // many blocks reading, nobody writing: fine; and a new launch forgets the old one
        fresh();
        for block in 0..5 {
            read(at(block, 3, 1)).unwrap();
        }
        fresh();
        write(at(4, 0, 1)).unwrap();

        // within a block: warps 0 and 1, barrier epochs 1 and 2
        fresh();
        write(at(0, 0, 1)).unwrap();
        assert_eq!(read(at(0, 32, 1)), Err(Conflict::Race(Race::Wrote(0))), "read after write");
        fresh();
        read(at(0, 0, 1)).unwrap();
        assert_eq!(write(at(0, 32, 1)), Err(Conflict::Race(Race::Read(0))), "write after read");
        fresh();
        read(at(0, 0, 1)).unwrap();
        read(at(0, 40, 1)).unwrap();
        assert_eq!(write(at(0, 1, 1)), Err(Conflict::Race(Race::ReadBySeveralWarps)), "warp 1 read it too");
        // not races: one thread, or a barrier between
        fresh();
        read(at(0, 0, 1)).unwrap();
        write(at(0, 0, 1)).unwrap();
        read(at(0, 0, 1)).unwrap();
        fresh();
        read(at(0, 0, 1)).unwrap();
        read(at(0, 40, 1)).unwrap();
        write(at(0, 33, 2)).unwrap();
        read(at(0, 64, 3)).unwrap();
        write(at(0, 64, 3)).unwrap();
    }

    /// Within a warp, only a `__syncwarp()` (a new warp epoch) orders two threads' accesses
    /// of a global word, as of a shared byte.
    #[test]
    fn warp_epochs_order_a_warp() {
        let g = Global::default();
        let base = g.alloc(4).unwrap();
        let (b, _) = g.find(base, 4, "test").unwrap();
        let at = |launch: u32, thread: usize, warp_epoch: u64| Accessor {
            block: BlockTag::new(launch, 0),
            access: Access { thread, epoch: 1, warp_epoch },
        };
        b.claim(0, 4, at(1, 0, 0), true).unwrap();
        assert_eq!(b.claim(0, 4, at(1, 1, 0), false), Err(Conflict::Race(Race::Wrote(0))));
        b.claim(0, 4, at(2, 0, 0), false).unwrap();
        b.claim(0, 4, at(2, 5, 0), false).unwrap();
        assert_eq!(b.claim(0, 4, at(2, 1, 0), true), Err(Conflict::Race(Race::Read(0))));
        // a __syncwarp() between
        b.claim(0, 4, at(3, 0, 0), true).unwrap();
        b.claim(0, 4, at(3, 1, 1), false).unwrap();
        b.claim(0, 4, at(3, 2, 2), true).unwrap();
    }

    /// Byte copies in and out, and fills, at every alignment and length agree with a plain
    /// byte model.
    #[test]
    fn byte_copies_and_fills_at_any_alignment() {
        let g = Global::default();
        let base = g.alloc(40).unwrap();
        let (b, _) = g.find(base, 40, "test").unwrap();
        let mut model = vec![0u8; 40];
        let mut n = 1u8;
        for off in 0..9 {
            for len in 0..20 {
                let src: Vec<u8> = (0..len).map(|i| n.wrapping_add(i as u8 * 7)).collect();
                n = n.wrapping_add(31);
                b.write_bytes(off, &src);
                model[off..off + len].copy_from_slice(&src);
                if len % 3 == 2 {
                    // and a fill over what was just written, from the next byte on
                    let (at, n) = (off + 1, len - 1);
                    b.fill(at, n, n as u8);
                    model[at..at + n].fill(n as u8);
                    let mut all = vec![0u8; 40];
                    b.read_bytes(0, &mut all);
                    assert_eq!(all, model, "after filling {n} bytes at {at}");
                    b.write_bytes(off, &src);
                    model[off..off + len].copy_from_slice(&src);
                }
                let mut all = vec![0u8; 40];
                b.read_bytes(0, &mut all);
                assert_eq!(all, model, "after writing {len} bytes at {off}");
                let mut part = vec![0u8; len];
                b.read_bytes(off, &mut part);
                assert_eq!(part, src, "reading {len} bytes at {off}");
            }
        }
    }
}
