//! The fuzz tests' allocation probe: a global allocator that remembers, per
//! thread, the largest single allocation since [`peak_of`] started, so a property
//! can assert that no input makes the reader allocate in proportion to a length
//! it declares rather than to the bytes it has. Requests over [`HARD_LIMIT`] fail
//! (the process aborts with std's "memory allocation of N bytes failed") instead
//! of swapping the machine.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

pub struct PeakAlloc;

/// No fuzz input may make one allocation this large.
pub const HARD_LIMIT: usize = 1 << 32;

thread_local! {
    static PEAK: Cell<usize> = const { Cell::new(0) };
}

fn note(size: usize) -> bool {
    let _ = PEAK.try_with(|p| p.set(p.get().max(size)));
    size <= HARD_LIMIT
}

// SAFETY: every call is forwarded to `System` unchanged (or refused with null,
// which callers must handle as an allocation failure).
unsafe impl GlobalAlloc for PeakAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if note(layout.size()) {
            unsafe { System.alloc(layout) }
        } else {
            std::ptr::null_mut()
        }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if note(layout.size()) {
            unsafe { System.alloc_zeroed(layout) }
        } else {
            std::ptr::null_mut()
        }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if note(new_size) {
            unsafe { System.realloc(ptr, layout, new_size) }
        } else {
            std::ptr::null_mut()
        }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
}

/// Runs `f` and returns its result with the largest single allocation it made on
/// this thread (threads it spawns are not counted).
pub fn peak_of<R>(f: impl FnOnce() -> R) -> (R, usize) {
    PEAK.with(|p| p.set(0));
    let r = f();
    (r, PEAK.with(Cell::get))
}

/// Test cases per property: `PROPTEST_CASES` if set (the long run), else `default`
/// (sized so that the fuzz suites stay within a minute or two of CI on 2 cores).
pub fn cases(default: u32) -> u32 {
    std::env::var("PROPTEST_CASES").ok().and_then(|s| s.parse().ok()).unwrap_or(default)
}
