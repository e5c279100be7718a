//! candle's side of the SGEMM rows of `benches/peers.sh`: `Tensor::matmul` of an M×K and a
//! K×N f32 matrix on the CPU (candle's default build: the `gemm` crate, no BLAS), timed as
//! `examples/gemm.rs` times ours: after a warm-up, the best wall time of REPS products (by
//! default as many as take about a second, 3 to 200), printed as one line ending in
//! `gflops=<number>`; one element is checked against a dot product first. The thread count is candle's:
//! `RAYON_NUM_THREADS`.
//!
//! ```text
//! RAYON_NUM_THREADS=1 cargo run --release --bin candle_gemm -- M N K [REPS]
//! ```

use candle_core::{Device, Tensor};
use std::time::Instant;

fn main() {
    if let Err(e) = run() {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}

fn run() -> Result<(), Box<dyn std::error::Error>> {
    let usage = "usage: candle_gemm M N K [REPS]";
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .map(|s| s.parse().map_err(|_| format!("{usage}: {s:?} is not a number")))
        .collect::<Result<_, _>>()?;
    let (m, n, k) = match args[..] {
        [m, n, k, ..] if m > 0 && n > 0 && k > 0 => (m, n, k),
        _ => return Err(format!("{usage} (M, N, K at least 1)").into()),
    };
    let flops = 2.0 * (m * n * k) as f64;
    let dev = Device::Cpu;
    let fill = |len: usize, seed: usize| -> Vec<f32> {
        (0..len).map(|i| ((i * 7919 + seed) % 1000) as f32 / 1000.0 - 0.5).collect()
    };
    let (av, bv) = (fill(m * k, 1), fill(k * n, 2));
    let a = Tensor::from_slice(&av, (m, k), &dev)?;
    let b = Tensor::from_slice(&bv, (k, n), &dev)?;
    let c = a.matmul(&b)?; // warm-up
                           // a spot check against a dot product, so that a wrong product cannot be timed
    let (i, j) = (m / 2, n / 3);
    let want: f64 = (0..k).map(|p| av[i * k + p] as f64 * bv[p * n + j] as f64).sum();
    let got = c.get(i)?.get(j)?.to_scalar::<f32>()? as f64;
    if (got - want).abs() > 1e-3 * (1.0 + want.abs()) {
        return Err(format!("C[{i}][{j}] = {got}, want {want}").into());
    }
    // as examples/gemm.rs: enough repetitions for ~1 s of work, between 3 and 200
    let t0 = Instant::now();
    drop(a.matmul(&b)?);
    let once = t0.elapsed().as_secs_f64().max(1e-7);
    let reps = args.get(3).copied().unwrap_or(((1.0 / once) as usize).clamp(3, 200));
    let mut best = f64::INFINITY;
    for _ in 0..reps {
        let t0 = Instant::now();
        let c = a.matmul(&b)?;
        best = best.min(t0.elapsed().as_secs_f64());
        drop(c);
    }
    let threads = candle_core::utils::get_num_threads();
    println!(
        "candle matmul m={m} n={n} k={k} threads={threads} reps={reps} best_ms={:.4} gflops={:.2}",
        best * 1e3,
        flops / best / 1e9
    );
    Ok(())
}
