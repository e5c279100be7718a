//! The caching allocator: device memory is taken from the launcher once and reused.
//!
//! `cudaMalloc`/`cudaFree` synchronise the device and cost tens of microseconds, and a
//! training step frees and allocates the same sizes every time. So a freed buffer is
//! not returned to the launcher: it goes on a free list of its **size class**, and the
//! next request of that class takes it. Size classes are powers of two from 256 bytes
//! up to 1 MiB, then multiples of 1 MiB, so a step's buffers find their classes again
//! and at most half of a small buffer (1 MiB of a large one) is padding. The classes and
//! free lists are `crate::pool`'s, shared with the host allocator for CPU tensors
//! (`tapegrad_autograd::alloc`).
//!
//! When the launcher runs out of memory, the cache is emptied and the request tried
//! once more. [`CachingAllocator::empty`] returns everything cached (between phases,
//! or before a large evaluation).

use super::launcher::{DevPtr, GpuError, Launcher};
use crate::pool::FreeLists;
pub use crate::pool::{size_class, PoolStats};
use std::sync::Mutex;

/// Free lists by size class over one launcher.
#[derive(Default)]
pub struct CachingAllocator {
    pool: Mutex<FreeLists<DevPtr>>,
}

impl CachingAllocator {
    /// A block of at least `bytes`: a cached one of the same class, else a new one.
    pub fn alloc(&self, launcher: &dyn Launcher, bytes: usize) -> Result<DevPtr, GpuError> {
        let class = size_class(bytes);
        let mut pool = self.pool.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(ptr) = pool.take(class) {
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
        pool.add_new(class);
        Ok(ptr)
    }

    /// Puts a block of `bytes` (as requested from `alloc`) on its free list.
    pub fn release(&self, ptr: DevPtr, bytes: usize) {
        let class = size_class(bytes);
        self.pool.lock().unwrap_or_else(|e| e.into_inner()).put(class, ptr);
    }

    /// Returns every cached block to the launcher.
    pub fn empty(&self, launcher: &dyn Launcher) -> Result<(), GpuError> {
        let mut pool = self.pool.lock().unwrap_or_else(|e| e.into_inner());
        Self::release_all(&mut pool, launcher)
    }

    pub fn stats(&self) -> PoolStats {
        self.pool.lock().unwrap_or_else(|e| e.into_inner()).stats()
    }

    /// Frees every cached block; a block whose free fails is still dropped from the
    /// cache (its memory is the driver's now), the others are freed, and the first
    /// error is returned.
    fn release_all(pool: &mut FreeLists<DevPtr>, launcher: &dyn Launcher) -> Result<(), GpuError> {
        let mut first = Ok(());
        for (_, ptr) in pool.drain() {
            if let Err(e) = launcher.free(ptr) {
                first = first.and(Err(e));
            }
        }
        first
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gpu::sim::SimLauncher;

    #[test]
    fn a_freed_block_serves_the_next_request_of_its_class() {
        let (launcher, pool) = (SimLauncher::new(), CachingAllocator::default());
        let a = pool.alloc(&launcher, 3000).unwrap();
        let b = pool.alloc(&launcher, 3000).unwrap();
        assert_ne!(a, b, "two live blocks");
        pool.release(a, 3000);
        assert_eq!(pool.alloc(&launcher, 4096).unwrap(), a, "the same class (4 KiB) reuses it");
        pool.release(a, 4096);
        pool.release(b, 3000);
        assert_eq!(pool.stats(), PoolStats { in_use: 0, cached: 8192, allocs: 2, frees: 0 });
        pool.empty(&launcher).unwrap();
        assert_eq!(pool.stats(), PoolStats { in_use: 0, cached: 0, allocs: 2, frees: 2 });
    }
}
