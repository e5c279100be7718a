//! Thread count, the shared worker pool, and denormal control.
//!
//! # Thread count
//! [`num_threads`] defaults to all cores (`std::thread::available_parallelism`), overridden by the
//! environment variable `TAPEGRAD_NUM_THREADS` (read once, at first use) and at run time by
//! [`set_num_threads`]. Kernels run on one persistent [rayon] pool of that many workers (rebuilt
//! only when the count changes); no threads are spawned per call. Kernels decide by flop count
//! whether a problem is big enough to be worth splitting at all.
//!
//! # Denormals (FTZ/DAZ)
//! Gradients carried back through hundreds of recurrent steps underflow into the denormal range,
//! where x86 arithmetic is roughly 15x slower. [`enable_flush_to_zero`] sets the FTZ (flush results
//! to zero) and DAZ (treat denormal inputs as zero) bits of MXCSR on the *current thread*. Every
//! pool worker calls it when it starts, and the kernels call the cheap [`ensure_ftz`] (a
//! thread-local flag) on entry, so the calling thread is covered too. Note that this leaves FTZ/DAZ
//! set on the calling thread afterwards: denormal results there become 0. On targets other than
//! x86/x86_64 these functions do nothing.

use std::cell::Cell;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

/// 0 means "not yet decided" (read the environment on first use).
static NUM_THREADS: AtomicUsize = AtomicUsize::new(0);

fn default_threads() -> usize {
    let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    match std::env::var("TAPEGRAD_NUM_THREADS") {
        Ok(v) => match v.trim().parse::<usize>() {
            Ok(n) if n > 0 => n,
            _ => cores,
        },
        Err(_) => cores,
    }
}

/// The number of threads kernels may use (at least 1): the global count, or 1 inside [`alone`].
pub fn num_threads() -> usize {
    if ALONE.with(Cell::get) {
        return 1;
    }
    let n = NUM_THREADS.load(Ordering::Relaxed);
    if n != 0 {
        return n;
    }
    let d = default_threads();
    // Another thread may have raced us (or called set_num_threads): keep whatever is there.
    match NUM_THREADS.compare_exchange(0, d, Ordering::Relaxed, Ordering::Relaxed) {
        Ok(_) => d,
        Err(cur) => cur,
    }
}

thread_local! {
    /// Set while the current thread runs inside [`alone`].
    static ALONE: Cell<bool> = const { Cell::new(false) };
}

/// Runs `f` with every kernel it calls on the current thread only ([`num_threads`] is 1
/// there): for work that already keeps each core busy with its own share, such as the two
/// directions of a bidirectional LSTM layer, one per core. Without it a product inside one
/// share would split itself over the pool too and put a third busy thread on two cores.
pub fn alone<R>(f: impl FnOnce() -> R) -> R {
    /// Restores the previous state, also when `f` unwinds.
    struct Restore(bool);
    impl Drop for Restore {
        fn drop(&mut self) {
            ALONE.with(|a| a.set(self.0));
        }
    }
    let _restore = Restore(ALONE.with(|a| a.replace(true)));
    f()
}

/// Sets the number of threads kernels may use; 0 is treated as 1.
pub fn set_num_threads(n: usize) {
    NUM_THREADS.store(n.max(1), Ordering::Relaxed);
}

/// The pool and its size.
type SizedPool = Option<(usize, Arc<rayon::ThreadPool>)>;

static POOL: OnceLock<Mutex<SizedPool>> = OnceLock::new();

/// The shared pool with at least `n` workers (built on first use, rebuilt only to grow).
pub fn pool(n: usize) -> Arc<rayon::ThreadPool> {
    let cell = POOL.get_or_init(|| Mutex::new(None));
    let mut guard = cell.lock().unwrap_or_else(|e| e.into_inner());
    if let Some((size, p)) = guard.as_ref() {
        if *size >= n {
            return Arc::clone(p);
        }
    }
    let p = Arc::new(
        rayon::ThreadPoolBuilder::new()
            .num_threads(n)
            .thread_name(|i| format!("tapegrad-{i}"))
            .start_handler(|_| enable_flush_to_zero())
            .build()
            .expect("tapegrad: failed to build the worker thread pool"),
    );
    *guard = Some((n, Arc::clone(&p)));
    p
}

/// Runs `f(0..parts)` with each index on some thread: index 0 on the calling thread, the others
/// on the pool (of `parts - 1` workers or more: the caller is the last thread, so that no
/// spare worker spins for a core the parts need). Returns when all are done. `parts <= 1`
/// runs inline.
pub fn run_parts<F: Fn(usize) + Sync>(parts: usize, f: F) {
    if parts <= 1 {
        if parts == 1 {
            f(0);
        }
        return;
    }
    let p = pool(parts - 1);
    let f = &f;
    p.in_place_scope(|s| {
        for i in 1..parts {
            s.spawn(move |_| f(i));
        }
        f(0);
    });
}

/// Runs `a` on the calling thread and `b` on a pool worker at the same time (one after the
/// other when only one thread is allowed); returns when both are done.
pub fn join<A: FnOnce() + Send, B: FnOnce() + Send>(a: A, b: B) {
    if num_threads() < 2 {
        a();
        b();
        return;
    }
    pool(1).in_place_scope(|s| {
        s.spawn(|_| b());
        a();
    });
}

thread_local! {
    static FTZ_SET: Cell<bool> = const { Cell::new(false) };
}

/// Sets FTZ and DAZ on the current thread, once (a thread-local flag makes repeats cheap).
#[inline]
pub fn ensure_ftz() {
    FTZ_SET.with(|f| {
        if !f.get() {
            enable_flush_to_zero();
            f.set(true);
        }
    });
}

/// Sets the FTZ (bit 15) and DAZ (bit 6) bits of MXCSR on the current thread (x86/x86_64);
/// a no-op on other targets.
#[allow(deprecated)] // _mm_getcsr/_mm_setcsr: deprecated in favour of inline asm, still correct.
pub fn enable_flush_to_zero() {
    #[cfg(any(target_arch = "x86", target_arch = "x86_64"))]
    {
        #[cfg(target_arch = "x86")]
        use std::arch::x86::{_mm_getcsr, _mm_setcsr};
        #[cfg(target_arch = "x86_64")]
        use std::arch::x86_64::{_mm_getcsr, _mm_setcsr};
        const FTZ: u32 = 1 << 15;
        const DAZ: u32 = 1 << 6;
        // SAFETY: SSE is part of the x86_64 baseline (and of every x86 target Rust supports with
        // these intrinsics); setting FTZ/DAZ only changes how denormals are treated.
        unsafe {
            _mm_setcsr(_mm_getcsr() | FTZ | DAZ);
        }
        FTZ_SET.with(|f| f.set(true));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::hint::black_box;

    #[test]
    fn ftz_flushes_denormals() {
        // Run on a fresh thread so that the test harness thread is left as it was.
        std::thread::spawn(|| {
            enable_flush_to_zero();
            let x = black_box(1.0e-30f32) * black_box(1.0e-15f32);
            #[cfg(any(target_arch = "x86", target_arch = "x86_64"))]
            assert_eq!(x, 0.0, "FTZ should flush a denormal product to zero");
            let _ = x;
            // Normal-range arithmetic is unaffected.
            let y = black_box(1.5f32) * black_box(2.25f32);
            assert_eq!(y, 3.375);
            let z = black_box(1.0e-20f32) * black_box(1.0e-10f32);
            assert!((z - 1.0e-30).abs() <= 1.0e-36);
        })
        .join()
        .unwrap();
    }

    /// Every part runs exactly once, part 0 on the calling thread and the others on pool
    /// workers. (That the thread count setting takes effect is checked in its own process,
    /// `tests/thread_setting.rs`, since it is process-wide.)
    #[test]
    fn run_parts_runs_each_part_once() {
        let hits: Vec<AtomicUsize> = (0..3).map(|_| AtomicUsize::new(0)).collect();
        let caller = std::thread::current().id();
        let on_caller = Mutex::new(vec![false; 3]);
        run_parts(3, |i| {
            hits[i].fetch_add(1, Ordering::Relaxed);
            on_caller.lock().unwrap()[i] = std::thread::current().id() == caller;
        });
        assert!(hits.iter().all(|h| h.load(Ordering::Relaxed) == 1));
        assert_eq!(*on_caller.lock().unwrap(), [true, false, false]);
        assert!(
            pool(1).current_num_threads() >= 2,
            "the pool grows to the parts asked for less the caller, never shrinks"
        );
    }

    #[test]
    fn alone_limits_kernels_to_the_calling_thread_and_restores() {
        // (the flag, not num_threads(): other tests may set the global count meanwhile)
        let alone_now = || ALONE.with(Cell::get);
        alone(|| {
            assert_eq!(num_threads(), 1);
            alone(|| assert_eq!(num_threads(), 1));
            assert!(alone_now(), "a nested alone leaves the outer one in force");
            // par_ranges stays on this thread
            let caller = std::thread::current().id();
            par_ranges(1 << 20, 1, 1, |_| assert_eq!(std::thread::current().id(), caller));
        });
        assert!(!alone_now());
        let unwound = std::panic::catch_unwind(|| alone(|| panic!("inside alone")));
        assert!(unwound.is_err());
        assert!(!alone_now(), "restored when the work panics");
    }
}

/// Runs `f` over `0..len` split into contiguous ranges, one per thread, each at
/// least `min_per_part` long (so small inputs stay on the calling thread). Range
/// boundaries are multiples of `align`.
pub fn par_ranges(len: usize, min_per_part: usize, align: usize, f: impl Fn(std::ops::Range<usize>) + Sync) {
    let parts = num_threads().min(len / min_per_part.max(1)).max(1);
    if parts == 1 {
        f(0..len);
        return;
    }
    let align = align.max(1);
    let chunk = len.div_ceil(parts).div_ceil(align) * align;
    run_parts(parts, |i| {
        let (start, end) = ((i * chunk).min(len), ((i + 1) * chunk).min(len));
        if start < end {
            f(start..end);
        }
    });
}

/// A buffer shared by the parts of [`par_ranges`], each part touching its own range.
#[derive(Clone, Copy)]
pub struct SharedMut<T>(*mut T, usize);

// SAFETY: parts only touch disjoint ranges (the contract of `SharedMut::range`).
unsafe impl<T: Send> Send for SharedMut<T> {}
unsafe impl<T: Send> Sync for SharedMut<T> {}

impl<T> SharedMut<T> {
    pub fn new(s: &mut [T]) -> Self {
        SharedMut(s.as_mut_ptr(), s.len())
    }
    /// The elements `r` of the buffer.
    ///
    /// # Safety
    /// No two live slices from the same `SharedMut` may overlap, and the buffer
    /// must outlive them (both hold when each `par_ranges` part takes its own range).
    #[allow(clippy::mut_from_ref)]
    pub unsafe fn range(&self, r: std::ops::Range<usize>) -> &mut [T] {
        assert!(r.start <= r.end && r.end <= self.1, "SharedMut: range out of bounds");
        std::slice::from_raw_parts_mut(self.0.add(r.start), r.end - r.start)
    }
}
