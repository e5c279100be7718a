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
use tapegrad_peers::{exit_on_error, GemmArgs, Res};

fn main() {
    exit_on_error(run)
}

fn run() -> Res<()> {
    let g = GemmArgs::parse("usage: burn_gemm M N K [REPS]")?;
    let (m, n, k) = (g.m, g.n, g.k);
    let device = Device::flex();
    let (av, bv) = g.operands();
    let a = Tensor::<1>::from_floats(av.as_slice(), &device).reshape([m, k]);
    let b = Tensor::<1>::from_floats(bv.as_slice(), &device).reshape([k, n]);
    let product = || a.clone().matmul(b.clone());
    let c: Vec<f32> = product().into_data().try_to_vec::<f32>().map_err(|e| format!("{e:?}"))?;
    g.check(&av, &bv, &c)?;
    // one element of each product read, so that no backend can defer the work past the clock
    let (best, reps) = g.best_seconds(|| {
        let c = product();
        c.clone().slice([0..1, 0..1]).into_scalar::<f32>();
        c
    });
    println!(
        "burn matmul m={m} n={n} k={k} reps={reps} best_ms={:.4} gflops={:.2}",
        best * 1e3,
        g.flops() / best / 1e9
    );
    Ok(())
}
