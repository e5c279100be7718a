//! The examples' per-thread CPU clock (`#[path]`-included; not an example itself).

/// The calling thread's CPU time in seconds (Linux); the wall clock elsewhere.
#[cfg(target_os = "linux")]
#[allow(dead_code)] // not every example that includes this file uses both clocks
pub fn thread_cpu_seconds() -> f64 {
    const CLOCK_THREAD_CPUTIME_ID: i32 = 3;
    cpu_clock_seconds(CLOCK_THREAD_CPUTIME_ID)
}

/// The CPU time of the whole process in seconds, all its threads together, a thread that
/// ended included (Linux); `None` elsewhere.
#[allow(dead_code)] // not every example that includes this file uses both clocks
pub fn process_cpu_seconds() -> Option<f64> {
    #[cfg(target_os = "linux")]
    {
        const CLOCK_PROCESS_CPUTIME_ID: i32 = 2;
        Some(cpu_clock_seconds(CLOCK_PROCESS_CPUTIME_ID))
    }
    #[cfg(not(target_os = "linux"))]
    None
}

#[cfg(target_os = "linux")]
fn cpu_clock_seconds(clk: i32) -> f64 {
    #[repr(C)]
    struct Timespec {
        sec: i64,
        nsec: i64,
    }
    extern "C" {
        fn clock_gettime(clk: i32, tp: *mut Timespec) -> i32;
    }
    let mut ts = Timespec { sec: 0, nsec: 0 };
    // SAFETY: clock_gettime writes one timespec (64-bit Linux layout) into `ts`.
    let rc = unsafe { clock_gettime(clk, &mut ts) };
    assert_eq!(rc, 0, "clock_gettime failed");
    ts.sec as f64 + ts.nsec as f64 * 1e-9
}

#[cfg(not(target_os = "linux"))]
#[allow(dead_code)] // not every example that includes this file uses both clocks
pub fn thread_cpu_seconds() -> f64 {
    use std::sync::OnceLock;
    use std::time::Instant;
    static T0: OnceLock<Instant> = OnceLock::new();
    T0.get_or_init(Instant::now).elapsed().as_secs_f64()
}
