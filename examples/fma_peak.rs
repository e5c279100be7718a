//! What this CPU can do in f32 FMAs, measured: the ceiling under every GEMM-bound figure.
//!
//! 1. Peak: twelve independent chains of FMAs on registers only (`examples/support/fma.rs`),
//!    8-lane AVX2 and, where the CPU has it, 16-lane AVX-512, on 1 thread and on every core
//!    at once: the FMA units' throughput at the clock the machine gives.
//! 2. Our `sgemm` at 1024³ on all cores, as a share of the peak of the width its
//!    micro-kernel uses (`isa::active`): `examples/bilstm_step --peak` reports its step
//!    against the same ceiling.
//!
//! Run: `cargo run --release --example fma_peak [-- --seconds S]` (x86_64 with AVX2 + FMA).
//! Each figure is the best of five runs, each thread running ~S/5 s (default S = 1).

#[path = "support/cli.rs"]
mod cli;
#[cfg(target_arch = "x86_64")]
#[path = "support/fma.rs"]
mod fma;

const USAGE: &str = "usage: fma_peak [--seconds S]";

fn main() {
    #[cfg(target_arch = "x86_64")]
    {
        let mut cli = cli::Cli::new(USAGE);
        let secs: f64 = cli.value("--seconds", "a positive number").unwrap_or(1.0);
        cli.positionals(0);
        if !(secs > 0.0 && secs.is_finite()) {
            cli.fail(&format!("--seconds: {secs} is not a positive number"));
        }
        if !fma::Width::Avx2.supported() {
            eprintln!("fma_peak: this CPU has no AVX2 + FMA");
            std::process::exit(2);
        }
        run(secs);
    }
    #[cfg(not(target_arch = "x86_64"))]
    eprintln!("fma_peak: x86_64 only");
}

#[cfg(target_arch = "x86_64")]
fn run(secs: f64) {
    use std::time::Instant;
    use tapegrad::kernels::gemm::{Dims, MatMut, MatRef};
    use tapegrad::kernels::sgemm::{kernel_name, sgemm};
    use tapegrad::kernels::threads;

    let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    println!("f32 FMA peak, registers only, best of 5:");
    for w in [fma::Width::Avx2, fma::Width::Avx512] {
        match (fma::peak(w, 1, secs), fma::peak(w, cores, secs)) {
            (Some(one), Some(all)) => {
                println!("  {}, 1 thread: {one:.1} GFLOP/s", w.name());
                println!("  {}, {cores} threads: {all:.1} GFLOP/s", w.name());
            }
            _ => println!("  {}: SKIPPED (this CPU lacks it)", w.name()),
        }
    }
    let Some((width, all)) = fma::peak_of_active_isa(cores, secs) else {
        println!("the GEMM runs the portable kernel (isa::force?): no peak to compare with");
        return;
    };
    let n = 1024;
    let (x, y) = (vec![0.5f32; n * n], vec![0.25f32; n * n]);
    let mut z = vec![0f32; n * n];
    threads::set_num_threads(cores);
    let mut best = 0.0f64;
    for _ in 0..5 {
        let t = Instant::now();
        sgemm(Dims::new(n, n, n), MatRef::rows(&x, n), MatRef::rows(&y, n), 0.0, MatMut::rows(&mut z, n));
        best = best.max(2.0 * (n * n * n) as f64 / t.elapsed().as_secs_f64() / 1e9);
    }
    println!(
        "tapegrad sgemm ({}) 1024³ on {cores} threads: {best:.1} GFLOP/s = {:.0}% of the {} peak ({all:.1}, measured again just now)",
        kernel_name(),
        100.0 * best / all,
        width.name()
    );
}
