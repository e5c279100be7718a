//! The CUDA kernels on a real GPU: our tiled SGEMM beside cuBLAS on named shapes, and
//! memory-bound kernels beside a device-to-device copy of the same bytes.
//!
//! `cargo bench --bench gpu` (filter with e.g. `-- square_4096` or `-- bandwidth`).
//! Needs a CUDA GPU (the driver library is loaded at run time): without one it prints
//! `SKIPPED gpu benches: <why>` to stderr and exits 0 with an empty criterion run.
//!
//! * **GEMM** (f32, row-major C): `gpu::gemm::gemm_tiled` (the tiled kernel) against
//!   cuBLAS `cublasSgemmStridedBatched` (cudarc 0.19's `cublas::result::
//!   sgemm_strided_batched`, on the raw device pointers of our buffers, issued on our
//!   launcher's stream; math mode `CUBLAS_DEFAULT_MATH`: plain FP32, no TF32) on the
//!   workload's shapes and squares. Throughput is in elements = FLOP (2·batch·m·n·k).
//!   Each shape is validated before it is timed: ours against cuBLAS, element by element,
//!   within the f32 rounding bound `(k+2)·ε·(|A|·|B| + |β·C₀|)` (that bound computed by
//!   cuBLAS on the absolute values). Without libcublas the reference is our one-thread-
//!   per-element kernel `gemm_naive`.
//! * **Bandwidth**: `GpuBuffer::copy_from` (the copy engine, `cuMemcpyDtoDAsync`), our
//!   `unary_forward(Neg)` and our fused Adam update on 64 MiB, 256 MiB and 1 GiB buffers
//!   (throughput in decimal bytes/s: what a kernel reads plus writes), each also checked
//!   on the last chunk of its buffers (against the CPU twins) before timing.
//!
//! A criterion sample issues its iterations back to back on the stream and then waits
//! for them (`GpuContext::synchronize`): the time is the GPU's work (plus whatever the
//! host's launch overhead does not hide), not the launches alone. At the end it prints
//! ours/cuBLAS per shape and each kernel's bandwidth as a fraction of the copy's, from
//! the medians of the per-iteration times of the samples (warm-up included).
//!
//! `TAPEGRAD_GPU_BENCH_SIM=1 cargo bench --bench gpu` runs no benchmark: it checks the
//! bench's own logic on the simulated GPU instead (the validations on shrunken shapes,
//! the naive kernel as the reference) and, on the host, that the row-major → cuBLAS
//! argument mapping computes each shape's product (cuBLAS's column-major semantics
//! emulated in f64 against the CPU `gemm::gemm`).
//!
//! Code map: `gemm.rs` (the shapes, the cuBLAS mapping, validation and the GEMM
//! benches), `bandwidth.rs` (copy, negation and Adam on large buffers), `self_check.rs`
//! (the logic on the simulated GPU); this file holds what they share and `main`.

mod bandwidth;
mod gemm;
mod self_check;

#[path = "../support/fill.rs"]
mod support;
use criterion::Criterion;
use std::cell::RefCell;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};
use support::fill;
use tapegrad_kernels::gpu::cuda::CudaLauncher;
use tapegrad_kernels::gpu::{GpuBuffer, GpuContext};

type Buf = GpuBuffer<f32>;

/// Seconds per iteration of each sample, per benchmark ("group/id").
type Times = RefCell<BTreeMap<String, Vec<f64>>>;

/// The median of the samples of benchmark `key`.
fn median(times: &Times, key: &str) -> Option<f64> {
    let mut v = times.borrow().get(key)?.clone();
    v.sort_by(f64::total_cmp);
    (!v.is_empty()).then(|| v[v.len() / 2])
}

/// `iters` runs of `f` back to back, then a synchronize: the GPU's time for them.
fn timed(ctx: &GpuContext, times: &Times, key: &str, iters: u64, mut f: impl FnMut()) -> Duration {
    ctx.synchronize().expect("synchronize before a sample");
    let t = Instant::now();
    for _ in 0..iters {
        f();
    }
    ctx.synchronize().expect("synchronize after a sample");
    let d = t.elapsed();
    times.borrow_mut().entry(key.to_string()).or_default().push(d.as_secs_f64() / iters.max(1) as f64);
    d
}

fn main() {
    if std::env::var_os("TAPEGRAD_GPU_BENCH_SIM").is_some_and(|v| v != "0") {
        self_check::run();
        return;
    }
    let mut c = Criterion::default().configure_from_args();
    let launcher = match CudaLauncher::new(0) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("SKIPPED gpu benches: {e}");
            c.final_summary();
            return;
        }
    };
    let reference = match gemm::Reference::cublas(&launcher) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("no cuBLAS baseline ({e}): timing against our naive kernel instead");
            gemm::Reference::Naive
        }
    };
    let ctx = GpuContext::new(Box::new(launcher));
    eprintln!("gpu benches on {}", ctx.name());
    let times = Times::default();
    let gemm_rows = gemm::benches(&mut c, &ctx, &reference, &times);
    let bw_rows = bandwidth::benches(&mut c, &ctx, &times);
    c.final_summary();
    let gemm_ok = gemm::summary(&reference, &gemm_rows, &times);
    let bw_ok = bandwidth::summary(&bw_rows, &times);
    drop(reference); // the cuBLAS handle before the context's stream
    if !(gemm_ok && bw_ok) {
        std::process::exit(1);
    }
}
