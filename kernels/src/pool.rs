//! Size classes and free lists: the part the two caching allocators share, the
//! device one (`gpu/allocator.rs`, [`CachingAllocator`](crate::gpu::allocator::CachingAllocator))
//! and the host one for CPU tensors (`tapegrad_autograd::alloc`, `HostAllocator`).
//!
//! A training step frees and allocates the same sizes every time. So a freed block is
//! not returned to whatever it came from (the launcher, the system): it goes on a free
//! list of its **size class**, and the next request of that class takes it. Size
//! classes are powers of two from 256 bytes up to 1 MiB, then multiples of 1 MiB, so a
//! step's buffers find their classes again and at most half of a small buffer (1 MiB
//! of a large one) is padding.
//!
//! [`FreeLists`] is only bookkeeping: blocks of any kind `B` (a device pointer, a host
//! block), by class, with [`PoolStats`]. Getting and returning memory, and the policy
//! of when to, are the allocators' own.

use std::collections::BTreeMap;

/// The smallest class.
pub const MIN_CLASS: usize = 256;
/// Classes up to this are powers of two; above it, multiples of it.
pub const LARGE: usize = 1 << 20;

/// The bytes actually reserved for a request of `bytes`.
pub fn size_class(bytes: usize) -> usize {
    let bytes = bytes.max(1);
    if bytes <= LARGE {
        bytes.next_power_of_two().max(MIN_CLASS)
    } else {
        bytes.div_ceil(LARGE) * LARGE
    }
}

/// Bytes in use and cached, for tests and reports.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PoolStats {
    /// Bytes (by size class) held by live buffers.
    pub in_use: usize,
    /// Bytes (by size class) on the free lists.
    pub cached: usize,
    /// Blocks taken from the backing allocator (the launcher's `alloc`, the system's):
    /// requests the free lists could not serve.
    pub allocs: usize,
    /// Blocks handed back to the backing allocator (emptied or evicted from the cache).
    pub frees: usize,
}

/// Free blocks by size class, oldest first within a class, and the counts of
/// [`PoolStats`]. Callers keep every block's class and pass it back with the block.
pub struct FreeLists<B> {
    /// class → (when it was freed, block); a class's newest block is its last.
    free: BTreeMap<usize, Vec<(u64, B)>>,
    stats: PoolStats,
    /// Counts releases: how "when it was freed" is measured.
    clock: u64,
}

impl<B> Default for FreeLists<B> {
    fn default() -> Self {
        Self::new()
    }
}

impl<B> FreeLists<B> {
    pub const fn new() -> Self {
        FreeLists {
            free: BTreeMap::new(),
            stats: PoolStats { in_use: 0, cached: 0, allocs: 0, frees: 0 },
            clock: 0,
        }
    }

    /// The most recently freed block of exactly `class` (its memory is likeliest
    /// still in the CPU's caches), now in use.
    pub fn take(&mut self, class: usize) -> Option<B> {
        self.take_fit(class, class).map(|(_, b)| b)
    }

    /// The most recently freed block of the smallest class in `class..=max_class`
    /// that has one, with that class; now in use.
    pub fn take_fit(&mut self, class: usize, max_class: usize) -> Option<(usize, B)> {
        let (&c, list) = self.free.range_mut(class..=max_class).find(|(_, l)| !l.is_empty())?;
        let (_, b) = list.pop().expect("non-empty");
        if list.is_empty() {
            self.free.remove(&c);
        }
        self.stats.cached -= c;
        self.stats.in_use += c;
        Some((c, b))
    }

    /// Counts a block of `class` just taken from the backing allocator as in use.
    pub fn add_new(&mut self, class: usize) {
        self.stats.allocs += 1;
        self.stats.in_use += class;
    }

    /// Puts an in-use block of `class` on its free list.
    pub fn put(&mut self, class: usize, block: B) {
        self.stats.in_use -= class;
        self.stats.cached += class;
        self.clock += 1;
        self.free.entry(class).or_default().push((self.clock, block));
    }

    /// Forgets an in-use block of `class` that its owner hands back to the backing
    /// allocator itself.
    pub fn forget(&mut self, class: usize) {
        self.stats.in_use -= class;
        self.stats.frees += 1;
    }

    /// Takes the block freed longest ago off the free lists (to evict it).
    pub fn pop_oldest(&mut self) -> Option<(usize, B)> {
        let (&c, _) = self.free.iter().min_by_key(|(_, l)| l.first().map_or(u64::MAX, |(t, _)| *t))?;
        let list = self.free.get_mut(&c).expect("found above");
        let (_, b) = list.remove(0);
        if list.is_empty() {
            self.free.remove(&c);
        }
        self.stats.cached -= c;
        self.stats.frees += 1;
        Some((c, b))
    }

    /// Takes every cached block off the free lists (to return them).
    pub fn drain(&mut self) -> Vec<(usize, B)> {
        let all: Vec<(usize, B)> = std::mem::take(&mut self.free)
            .into_iter()
            .flat_map(|(c, l)| l.into_iter().map(move |(_, b)| (c, b)))
            .collect();
        self.stats.cached = 0;
        self.stats.frees += all.len();
        all
    }

    pub fn stats(&self) -> PoolStats {
        self.stats
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn size_classes_round_up_and_stay_close() {
        assert_eq!(size_class(0), 256);
        assert_eq!(size_class(1), 256);
        assert_eq!(size_class(257), 512);
        assert_eq!(size_class(4096), 4096);
        assert_eq!(size_class(LARGE), LARGE);
        assert_eq!(size_class(LARGE + 1), 2 * LARGE);
        assert_eq!(size_class(5 * LARGE - 7), 5 * LARGE);
        for bytes in [1usize, 300, 70_000, 3 << 20, (7 << 20) + 5] {
            let c = size_class(bytes);
            assert!(c >= bytes && (c <= 2 * bytes.max(128) || c - bytes < LARGE), "{bytes} -> {c}");
        }
    }

    #[test]
    fn free_lists_reuse_newest_first_and_evict_oldest_first() {
        let mut f = FreeLists::new();
        for (class, b) in [(256, 'a'), (512, 'b'), (256, 'c')] {
            f.add_new(class);
            f.put(class, b);
        }
        assert_eq!(f.stats(), PoolStats { in_use: 0, cached: 1024, allocs: 3, frees: 0 });
        assert_eq!(f.take(256), Some('c'), "the newest of the class");
        assert_eq!(f.take(1024), None);
        assert_eq!(f.take_fit(300, 4096), Some((512, 'b')), "the smallest class that fits");
        f.put(512, 'b');
        assert_eq!(f.pop_oldest(), Some((256, 'a')));
        assert_eq!(f.stats(), PoolStats { in_use: 256, cached: 512, allocs: 3, frees: 1 });
        assert_eq!(f.drain(), vec![(512, 'b')]);
        f.forget(256);
        assert_eq!(f.stats(), PoolStats { in_use: 0, cached: 0, allocs: 3, frees: 3 });
    }
}
