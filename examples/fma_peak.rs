//! What this CPU can do in f32 FMAs, measured: the ceiling under every GEMM-bound figure.
//!
//! 1. Peak: twelve independent chains of 8-lane FMAs on registers only (no memory operand,
//!    no dependence stalls: 12 chains cover the FMA latency on both FMA pipes), on 1 thread
//!    and on every core at once: the FMA units' throughput at the clock the machine gives.
//! 2. Our `sgemm` at 1024³ on all cores, as a share of that peak.
//!
//! Run: `cargo run --release --example fma_peak [-- --seconds S]` (x86_64 with AVX2 + FMA).
//! Each figure is the best of five runs, each thread running ~S/5 s (default S = 1).

fn usage(msg: &str) -> ! {
    eprintln!("error: {msg}\nusage: fma_peak [--seconds S]");
    std::process::exit(2);
}

fn main() {
    #[cfg(target_arch = "x86_64")]
    {
        if !(is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma")) {
            eprintln!("fma_peak: this CPU has no AVX2 + FMA");
            std::process::exit(2);
        }
        let argv: Vec<String> = std::env::args().skip(1).collect();
        let secs = match argv.as_slice() {
            [] => 1.0,
            [flag, v] if flag == "--seconds" => match v.parse::<f64>() {
                Ok(s) if s > 0.0 => s,
                _ => usage(&format!("--seconds: `{v}` is not a positive number")),
            },
            _ => usage("unknown arguments"),
        };
        x86::run(secs);
    }
    #[cfg(not(target_arch = "x86_64"))]
    eprintln!("fma_peak: x86_64 only");
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;
    use std::hint::black_box;
    use std::time::Instant;
    use tapegrad::kernels::sgemm::sgemm;
    use tapegrad::kernels::threads;

    /// FLOPs per loop step: 12 FMAs x 8 lanes x 2.
    const STEP_FLOPS: f64 = 12.0 * 8.0 * 2.0;

    /// `steps` x 12 FMAs on registers only.
    #[target_feature(enable = "avx2,fma")]
    unsafe fn registers_only(steps: usize) -> f32 {
        // c ← c·m + a converges to a/(1 − m): no overflow, no denormals
        let (m, a) = (_mm256_set1_ps(0.999_9), _mm256_set1_ps(1e-4));
        let mut c: [__m256; 12] = std::array::from_fn(|i| _mm256_set1_ps(i as f32));
        for _ in 0..steps {
            for acc in c.iter_mut() {
                *acc = _mm256_fmadd_ps(*acc, m, a);
                // an empty asm statement that "may change" acc: the compiler must keep each
                // chain and each step (it adds no instruction)
                std::arch::asm!("/* {0} */", inout(ymm_reg) * acc, options(pure, nomem, nostack));
            }
        }
        sum(&c)
    }

    #[target_feature(enable = "avx2,fma")]
    unsafe fn sum(c: &[__m256; 12]) -> f32 {
        let mut out = [0f32; 8];
        let mut s = _mm256_setzero_ps();
        for v in c {
            s = _mm256_add_ps(s, *v);
        }
        _mm256_storeu_ps(out.as_mut_ptr(), s);
        out.iter().sum()
    }

    /// Best GFLOP/s of five runs of `f(steps)` on `nthreads` threads at once.
    fn rate(nthreads: usize, steps: usize, f: impl Fn(usize) -> f32 + Sync) -> f64 {
        let mut best = 0.0f64;
        for _ in 0..5 {
            let t = Instant::now();
            std::thread::scope(|s| {
                for _ in 0..nthreads {
                    s.spawn(|| black_box(f(black_box(steps))));
                }
            });
            best = best.max(nthreads as f64 * steps as f64 * STEP_FLOPS / t.elapsed().as_secs_f64() / 1e9);
        }
        best
    }

    pub fn run(secs: f64) {
        // about secs/5 per run at ~100 GFLOP/s
        let steps = (secs / 5.0 * 100e9 / STEP_FLOPS) as usize;
        // SAFETY: AVX2 and FMA were detected in main.
        let peak = |s: usize| unsafe { registers_only(s) };
        let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
        println!("f32 FMA peak, registers only, best of 5:");
        let one = rate(1, steps, peak);
        let all = rate(cores, steps, peak);
        println!("  1 thread: {one:.1} GFLOP/s");
        println!("  {cores} threads: {all:.1} GFLOP/s");
        let n = 1024;
        let (x, y) = (vec![0.5f32; n * n], vec![0.25f32; n * n]);
        let mut z = vec![0f32; n * n];
        threads::set_num_threads(cores);
        let mut best = 0.0f64;
        for _ in 0..5 {
            let t = Instant::now();
            sgemm(n, n, n, &x, n, 1, &y, n, 1, 0.0, &mut z, n);
            best = best.max(2.0 * (n * n * n) as f64 / t.elapsed().as_secs_f64() / 1e9);
        }
        println!(
            "tapegrad sgemm 1024³ on {cores} threads: {best:.1} GFLOP/s = {:.0}% of that peak",
            100.0 * best / all
        );
    }
}
