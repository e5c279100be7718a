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
use tapegrad_peers::{exit_on_error, GemmArgs, Res};

fn main() {
    exit_on_error(run)
}

fn run() -> Res<()> {
    let g = GemmArgs::parse("usage: candle_gemm M N K [REPS]")?;
    let (m, n, k) = (g.m, g.n, g.k);
    let dev = Device::Cpu;
    let (av, bv) = g.operands();
    let a = Tensor::from_slice(&av, (m, k), &dev)?;
    let b = Tensor::from_slice(&bv, (k, n), &dev)?;
    let c: Vec<f32> = a.matmul(&b)?.flatten_all()?.to_vec1()?;
    g.check(&av, &bv, &c)?;
    let mut failed = None;
    let (best, reps) = g.best_seconds(|| a.matmul(&b).map_err(|e| failed = Some(e)));
    if let Some(e) = failed {
        return Err(e.into());
    }
    let threads = candle_core::utils::get_num_threads();
    println!(
        "candle matmul m={m} n={n} k={k} threads={threads} reps={reps} best_ms={:.4} gflops={:.2}",
        best * 1e3,
        g.flops() / best / 1e9
    );
    Ok(())
}
