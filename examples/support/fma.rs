//! The f32 FMA peak of this CPU, measured: twelve independent chains of FMAs on registers
//! only (no memory operand, no dependence stalls: 12 chains cover the FMA latency on both
//! FMA pipes), on a number of threads at once. Shared by `examples/fma_peak.rs` and
//! `examples/bilstm_step.rs` (`--peak`), which include it with `#[path]`.
//!
//! Two widths: 8-lane AVX2 FMAs and, where the CPU has AVX-512F, 16-lane ones (a core may
//! clock lower under 512-bit FMAs, so that peak is measured, not computed as twice the
//! AVX2 one). [`peak_of_active_isa`] is the ceiling of what our GEMMs run: the width of the
//! micro-kernel `isa::active()` selects.

#![cfg(target_arch = "x86_64")]
#![allow(dead_code)] // each example uses its own part

use std::arch::x86_64::*;
use std::hint::black_box;
use std::time::Instant;
use tapegrad::kernels::isa::{self, Isa};

/// The vector width of a peak measurement.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Width {
    /// 8 f32 lanes (`vfmadd…ps ymm`): AVX2 + FMA.
    Avx2,
    /// 16 f32 lanes (`vfmadd…ps zmm`): AVX-512F.
    Avx512,
}

impl Width {
    /// FLOPs per loop step: 12 FMAs × lanes × 2.
    fn step_flops(self) -> f64 {
        match self {
            Width::Avx2 => 12.0 * 8.0 * 2.0,
            Width::Avx512 => 12.0 * 16.0 * 2.0,
        }
    }

    /// Whether this CPU can run it.
    pub fn supported(self) -> bool {
        match self {
            Width::Avx2 => is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma"),
            Width::Avx512 => is_x86_feature_detected!("avx512f"),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Width::Avx2 => "AVX2 (8 lanes)",
            Width::Avx512 => "AVX-512 (16 lanes)",
        }
    }

    /// `steps` × 12 FMAs on registers only; the caller checked [`Width::supported`].
    fn chains(self, steps: usize) -> f32 {
        // SAFETY: `supported()` was checked by `peak` before any call.
        unsafe {
            match self {
                Width::Avx2 => chains_avx2(steps),
                Width::Avx512 => chains_avx512(steps),
            }
        }
    }
}

#[target_feature(enable = "avx2,fma")]
unsafe fn chains_avx2(steps: usize) -> f32 {
    // c ← c·m + a converges to a/(1 − m): no overflow, no denormals
    let (m, a) = (_mm256_set1_ps(0.999_9), _mm256_set1_ps(1e-4));
    let mut c: [__m256; 12] = std::array::from_fn(|i| _mm256_set1_ps(i as f32));
    for _ in 0..steps {
        for acc in c.iter_mut() {
            *acc = _mm256_fmadd_ps(*acc, m, a);
            // an empty asm statement that "may change" acc: the compiler must keep each
            // chain and each step (it adds no instruction)
            unsafe { std::arch::asm!("/* {0} */", inout(ymm_reg) * acc, options(pure, nomem, nostack)) };
        }
    }
    let mut out = [0f32; 8];
    let mut s = _mm256_setzero_ps();
    for v in &c {
        s = _mm256_add_ps(s, *v);
    }
    unsafe { _mm256_storeu_ps(out.as_mut_ptr(), s) };
    out.iter().sum()
}

#[target_feature(enable = "avx512f")]
unsafe fn chains_avx512(steps: usize) -> f32 {
    let (m, a) = (_mm512_set1_ps(0.999_9), _mm512_set1_ps(1e-4));
    let mut c: [__m512; 12] = std::array::from_fn(|i| _mm512_set1_ps(i as f32));
    for _ in 0..steps {
        for acc in c.iter_mut() {
            *acc = _mm512_fmadd_ps(*acc, m, a);
            unsafe { std::arch::asm!("/* {0} */", inout(zmm_reg) * acc, options(pure, nomem, nostack)) };
        }
    }
    c.iter().map(|v| _mm512_reduce_add_ps(*v)).sum()
}

/// Best GFLOP/s of five runs of `width`'s chains on `threads` threads at once, each run
/// about `secs / 5` seconds. `None` where the CPU lacks the width.
pub fn peak(width: Width, threads: usize, secs: f64) -> Option<f64> {
    if !width.supported() {
        return None;
    }
    // about secs/5 per run at ~100 GFLOP/s per thread
    let steps = ((secs / 5.0 * 100e9 / width.step_flops()) as usize).max(1);
    let mut best = 0.0f64;
    for _ in 0..5 {
        let t = Instant::now();
        std::thread::scope(|s| {
            for _ in 0..threads {
                s.spawn(|| black_box(width.chains(black_box(steps))));
            }
        });
        best = best.max(threads as f64 * steps as f64 * width.step_flops() / t.elapsed().as_secs_f64() / 1e9);
    }
    Some(best)
}

/// The width of the GEMM micro-kernel in use (`isa::active()`), or `None` for the
/// portable kernel, which has no fixed width to compare with.
pub fn active_width() -> Option<Width> {
    match isa::active() {
        Isa::Avx512 => Some(Width::Avx512),
        Isa::Avx2 => Some(Width::Avx2),
        Isa::Portable => None,
    }
}

/// The peak of the active micro-kernel's width on `threads` threads, with its width.
pub fn peak_of_active_isa(threads: usize, secs: f64) -> Option<(Width, f64)> {
    let w = active_width()?;
    peak(w, threads, secs).map(|p| (w, p))
}
