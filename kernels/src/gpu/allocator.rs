//! The caching allocator: device memory is taken from the launcher once and reused.
//!
//! `cudaMalloc`/`cudaFree` synchronise the device and cost tens of microseconds, and a
//! training step frees and allocates the same sizes every time. So a freed buffer is
//! not returned to the launcher: it goes on a free list of its **size class**, and the
//! next request of that class takes it. Size classes are powers of two from 256 bytes
//! up to 1 MiB, then multiples of 1 MiB, so a step's buffers find their classes again
//! and at most half of a small buffer (1 MiB of a large one) is padding.
//!
//! When the launcher runs out of memory, the cache is emptied and the request tried
//! once more. [`CachingAllocator::empty`] returns everything cached (between phases,
//! or before a large evaluation).

use super::launcher::{DevPtr, GpuError, Launcher};
use std::collections::HashMap;
use std::sync::Mutex;

const MIN_CLASS: usize = 256;
const LARGE: usize = 1 << 20;

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
    /// Calls that reached the launcher's `alloc`.
    pub device_allocs: usize,
}

#[derive(Default)]
struct Pool {
    free: HashMap<usize, Vec<DevPtr>>,
    stats: PoolStats,
}

/// Free lists by size class over one launcher.
#[derive(Default)]
pub struct CachingAllocator {
    pool: Mutex<Pool>,
}

impl CachingAllocator {
    /// A block of at least `bytes`: a cached one of the same class, else a new one.
    pub fn alloc(&self, launcher: &dyn Launcher, bytes: usize) -> Result<DevPtr, GpuError> {
        let class = size_class(bytes);
        let mut pool = self.pool.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(ptr) = pool.free.get_mut(&class).and_then(Vec::pop) {
            pool.stats.cached -= class;
            pool.stats.in_use += class;
            return Ok(ptr);
        }
        let ptr = match launcher.alloc(class) {
            Ok(ptr) => ptr,
            Err(GpuError::OutOfMemory { .. }) => {
                Self::release_all(&mut pool, launcher)?;
                launcher.alloc(class)?
            }
            Err(e) => return Err(e),
        };
        pool.stats.device_allocs += 1;
        pool.stats.in_use += class;
        Ok(ptr)
    }

    /// Puts a block of `bytes` (as requested from `alloc`) on its free list.
    pub fn release(&self, ptr: DevPtr, bytes: usize) {
        let class = size_class(bytes);
        let mut pool = self.pool.lock().unwrap_or_else(|e| e.into_inner());
        pool.stats.in_use -= class;
        pool.stats.cached += class;
        pool.free.entry(class).or_default().push(ptr);
    }

    /// Returns every cached block to the launcher.
    pub fn empty(&self, launcher: &dyn Launcher) -> Result<(), GpuError> {
        let mut pool = self.pool.lock().unwrap_or_else(|e| e.into_inner());
        Self::release_all(&mut pool, launcher)
    }

    pub fn stats(&self) -> PoolStats {
        self.pool.lock().unwrap_or_else(|e| e.into_inner()).stats
    }

    /// Frees every cached block; a block whose free fails is still dropped from the
    /// cache (its memory is the driver's now), the others are freed, and the first
    /// error is returned.
    fn release_all(pool: &mut Pool, launcher: &dyn Launcher) -> Result<(), GpuError> {
        let mut first = Ok(());
        for (_, ptrs) in pool.free.drain() {
            for ptr in ptrs {
                if let Err(e) = launcher.free(ptr) {
                    first = first.and(Err(e));
                }
            }
        }
        pool.stats.cached = 0;
        first
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
}
