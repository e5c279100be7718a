//! burn's side of the SGEMM rows of `benches/peers.sh`: `Tensor::matmul` of an M×K and a K×N
//! f32 matrix on burn's pure-Rust CPU backend (Flex, with its `simd` and `rayon` features), timed
//! as `examples/gemm.rs` times ours: after a warm-up, the best wall time of REPS products (by
//! default as many as take about a second, 3 to 200), printed as one line ending in
//! `gflops=<number>`; one element is checked against a dot product first. Threads: rayon's,
//! `RAYON_NUM_THREADS`.
//!
//! ```text
//! RAYON_NUM_THREADS=1 cargo run --release --bin burn_gemm -- M N K [REPS]
//! ```

use burn::prelude::*;
use std::time::Instant;

fn main() {
    if let Err(e) = run() {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}

fn run() -> Result<(), Box<dyn std::error::Error>> {
    let usage = "usage: burn_gemm M N K [REPS]";
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .map(|s| s.parse().map_err(|_| format!("{usage}: {s:?} is not a number")))
        .collect::<Result<_, _>>()?;
    let (m, n, k) = match args[..] {
        [m, n, k, ..] if m > 0 && n > 0 && k > 0 => (m, n, k),
        _ => return Err(format!("{usage} (M, N, K at least 1)").into()),
    };
    let flops = 2.0 * (m * n * k) as f64;
    let device = Device::flex();
    let fill = |len: usize, seed: usize| -> Vec<f32> {
        (0..len).map(|i| ((i * 7919 + seed) % 1000) as f32 / 1000.0 - 0.5).collect()
    };
    let (av, bv) = (fill(m * k, 1), fill(k * n, 2));
    let a = Tensor::<1>::from_floats(av.as_slice(), &device).reshape([m, k]);
    let b = Tensor::<1>::from_floats(bv.as_slice(), &device).reshape([k, n]);
    let product = || a.clone().matmul(b.clone());
    // a spot check against a dot product, so that a wrong product cannot be timed
    let c: Vec<f32> = product().into_data().try_to_vec::<f32>().map_err(|e| format!("{e:?}"))?;
    let (i, j) = (m / 2, n / 3);
    let want: f64 = (0..k).map(|p| av[i * k + p] as f64 * bv[p * n + j] as f64).sum();
    let got = c[i * n + j] as f64;
    if (got - want).abs() > 1e-3 * (1.0 + want.abs()) {
        return Err(format!("C[{i}][{j}] = {got}, want {want}").into());
    }
    // read one element of each product, so that no backend can defer the work past the clock
    let run_once = || -> f32 { product().slice([0..1, 0..1]).into_scalar::<f32>() };
    let t0 = Instant::now();
    run_once();
    let once = t0.elapsed().as_secs_f64().max(1e-7);
    let reps = args.get(3).copied().unwrap_or(((1.0 / once) as usize).clamp(3, 200));
    let mut best = f64::INFINITY;
    for _ in 0..reps {
        let t0 = Instant::now();
        run_once();
        best = best.min(t0.elapsed().as_secs_f64());
    }
    println!(
        "burn matmul m={m} n={n} k={k} reps={reps} best_ms={:.4} gflops={:.2}",
        best * 1e3,
        flops / best / 1e9
    );
    Ok(())
}
