//! What FTZ/DAZ fixes: the same multiply-add loop over normal numbers and over
//! denormals (|x| < 1.18e-38 in f32), with the MXCSR flush-to-zero (FTZ) and
//! denormals-are-zero (DAZ) bits off, then on. Without them, x86 cores take a slow
//! microcode path for every denormal operand or result; long LSTM backward chains
//! (products of many factors below 1) produce exactly such numbers.
//!
//! Run: `cargo run --release --example denormals` (one thread; prints ns per element
//! and each time as a ratio to the normal numbers' time in the same run).

#[path = "support/cli.rs"]
mod cli;
use std::hint::black_box;
use std::time::Instant;

const N: usize = 1 << 16;
const REPS: usize = 400;

/// y ← 0.75·y + 0.25·x, REPS times over N elements (stays in the range of its inputs).
fn run(x: &[f32]) -> f64 {
    let mut y = x.to_vec();
    let t = Instant::now();
    for _ in 0..REPS {
        for (y, &x) in y.iter_mut().zip(x) {
            *y = 0.75 * *y + 0.25 * x;
        }
        black_box(&mut y);
    }
    t.elapsed().as_secs_f64() * 1e9 / (N * REPS) as f64
}

#[cfg(target_arch = "x86_64")]
#[allow(deprecated)] // _mm_getcsr/_mm_setcsr: still correct
fn set_ftz_daz(on: bool) {
    use std::arch::x86_64::{_mm_getcsr, _mm_setcsr};
    const BITS: u32 = (1 << 15) | (1 << 6); // FTZ | DAZ
                                            // SAFETY: reads and writes this thread's MXCSR; only the FTZ/DAZ bits change.
    unsafe { _mm_setcsr(if on { _mm_getcsr() | BITS } else { _mm_getcsr() & !BITS }) };
}

#[cfg(not(target_arch = "x86_64"))]
fn set_ftz_daz(_on: bool) {}

fn main() {
    cli::Cli::new("usage: denormals (no arguments)").positionals(0);
    let normal = vec![1.5f32; N];
    let denormal = vec![1e-39f32; N];
    assert!(denormal[0] != 0.0 && denormal[0].abs() < f32::MIN_POSITIVE, "1e-39 is denormal in f32");
    for ftz in [false, true] {
        set_ftz_daz(ftz);
        let (a, b) = (run(&normal), run(&denormal));
        println!(
            "FTZ/DAZ {:<3}  normal {a:.3} ns/elem   denormal {b:.3} ns/elem   denormal/normal {:.1}x",
            if ftz { "on" } else { "off" },
            b / a
        );
    }
}
