//! Times `tapegrad_kernels::sgemm::sgemm` (or, with `--bf16`, `bf16gemm::bf16gemm`) on one shape.
//!
//! `cargo run --release --example gemm -- --m 1024 --n 1024 --k 1024 --threads 1 [--batch B]
//! [--reps R] [--trans-a] [--trans-b] [--cpu-time] [--bf16]` prints one line ending in
//! `gflops=<number>` (best of R). `--cpu-time` times with the calling thread's CPU clock instead
//! of the wall clock (Linux; meaningful for `--threads 1` on a machine shared with other work).
//! Every run is first validated on three rows against its reference (`sgemm_reference_f64`,
//! or `bf16gemm_reference` for `--bf16`).
#[path = "support/cli.rs"]
mod cli;
#[path = "support/clock.rs"]
mod clock;
use clock::thread_cpu_seconds;
use std::time::Instant;
use tapegrad_kernels::bf16gemm::{self, bf16gemm, bf16gemm_reference};
use tapegrad_kernels::gemm::{Dims, MatMut, MatRef};
use tapegrad_kernels::sgemm::{kernel_name, sgemm, sgemm_reference_f64};
use tapegrad_kernels::threads::set_num_threads;

const USAGE: &str =
    "usage: gemm --m M --n N --k K [--threads T] [--batch B] [--reps R] [--trans-a] [--trans-b] [--cpu-time] [--bf16]";

fn main() {
    let mut cli = cli::Cli::new(USAGE);
    let int = "a non-negative integer";
    let (ta, tb, cpu, bf16) =
        (cli.switch("--trans-a"), cli.switch("--trans-b"), cli.switch("--cpu-time"), cli.switch("--bf16"));
    let (m, n, k) = (cli.value("--m", int), cli.value("--n", int), cli.value("--k", int));
    let threads: Option<usize> = cli.value("--threads", int);
    let batch: usize = cli.value("--batch", int).unwrap_or(1);
    let reps: usize = cli.value("--reps", int).unwrap_or(0);
    cli.positionals(0);
    let (m, n, k): (usize, usize, usize) = match (m, n, k) {
        (Some(m), Some(n), Some(k)) => (m, n, k),
        _ => cli.fail("--m, --n and --k are required"),
    };
    if let Some(t) = threads {
        set_num_threads(t);
    }
    let threads = tapegrad_kernels::threads::num_threads();
    let mut seed = 0x2545_f491_u32;
    let mut rnd = move || {
        seed ^= seed << 13;
        seed ^= seed >> 17;
        seed ^= seed << 5;
        (seed as f32 / u32::MAX as f32) * 2.0 - 1.0
    };
    let huge = std::env::var_os("GEMM_NO_HUGEPAGES").is_none();
    let mut a = alloc(batch * m * k, huge);
    a.iter_mut().for_each(|x| *x = rnd());
    let mut b = alloc(batch * k * n, huge);
    b.iter_mut().for_each(|x| *x = rnd());
    let mut c = alloc(batch * m * n, huge);
    // A is m x k: row-major (k, 1) or stored transposed (1, m); likewise B.
    let am = if ta { MatRef::cols(&a, m) } else { MatRef::rows(&a, k) }.batch_stride(m * k);
    let bm = if tb { MatRef::cols(&b, k) } else { MatRef::rows(&b, n) }.batch_stride(k * n);
    let d = Dims::new(m, n, k).batched(batch);
    let run = |c: &mut [f32]| {
        let cm = MatMut::rows(c, n).batch_stride(m * n);
        if bf16 {
            bf16gemm(d, am, bm, 0.0, cm)
        } else {
            sgemm(d, am, bm, 0.0, cm)
        }
    };
    // Validate: spot-check rows of the first product against the reference (f64 sums for
    // sgemm; for bf16gemm the same rounded operands, summed in f32 in another order).
    run(&mut c);
    let rows: Vec<usize> = [0, m / 2, m.saturating_sub(1)].into_iter().filter(|&i| i < m).collect();
    let mut max_err = 0.0f32;
    for &i in &rows {
        let mut want = vec![0.0f32; n];
        let row_i = MatRef::new(&a[i * am.s.row..], am.s);
        let row = Dims::new(1, n, k);
        if bf16 {
            bf16gemm_reference(row, row_i, bm, 0.0, MatMut::rows(&mut want, n));
        } else {
            sgemm_reference_f64(row, row_i, bm, 0.0, MatMut::rows(&mut want, n));
        }
        for j in 0..n {
            let e = (c[i * n + j] - want[j]).abs() / (1.0 + want[j].abs());
            max_err = max_err.max(e);
        }
    }
    let tol = 1e-5 + 3e-6 * k as f32;
    if max_err > tol {
        eprintln!("error: result mismatch vs reference: max rel err {max_err} > {tol}");
        std::process::exit(1);
    }
    let flops = 2.0 * (batch * m * n * k) as f64;
    // Enough repeats for ~1 s of work, between 3 and 200.
    let t0 = Instant::now();
    run(&mut c);
    let once = t0.elapsed().as_secs_f64().max(1e-7);
    let reps = if reps > 0 { reps } else { ((1.0 / once) as usize).clamp(3, 200) };
    let mut best = f64::INFINITY;
    for _ in 0..reps {
        let (t, c0) = (Instant::now(), thread_cpu_seconds());
        run(&mut c);
        let dt = if cpu { thread_cpu_seconds() - c0 } else { t.elapsed().as_secs_f64() };
        best = best.min(dt);
    }
    let kernel = if bf16 { bf16gemm::path().name() } else { kernel_name() };
    println!(
        "{} m={m} n={n} k={k} batch={batch} trans_a={ta} trans_b={tb} threads={threads} kernel=\"{kernel}\" reps={reps} clock={} best_ms={:.4} gflops={:.2}",
        if bf16 { "bf16gemm" } else { "sgemm" },
        if cpu { "thread-cpu" } else { "wall" },
        best * 1e3,
        flops / best / 1e9
    );
}

/// A zeroed buffer; with `huge`, like numpy (which madvises arrays of 4 MB and more), its
/// 2 MB-aligned interior is advised to use transparent huge pages before it is touched (Linux
/// with THP in `madvise` mode). Set GEMM_NO_HUGEPAGES=1 to measure without.
fn alloc(len: usize, huge: bool) -> Vec<f32> {
    let mut v: Vec<f32> = Vec::with_capacity(len);
    if huge {
        hugepage_hint(v.as_ptr(), len);
    }
    v.resize(len, 0.0);
    v
}

/// Advises the kernel to back the 2 MB-aligned interior of `len` floats at `p` with transparent
/// huge pages; a no-op elsewhere or for small buffers.
fn hugepage_hint(p: *const f32, len: usize) {
    #[cfg(target_os = "linux")]
    {
        extern "C" {
            fn madvise(addr: *mut std::ffi::c_void, len: usize, advice: i32) -> i32;
        }
        const MADV_HUGEPAGE: i32 = 14;
        const HUGE: usize = 2 << 20;
        let start = p as usize;
        let end = start + len * std::mem::size_of::<f32>();
        let lo = start.div_ceil(HUGE) * HUGE;
        let hi = end / HUGE * HUGE;
        if hi > lo {
            // SAFETY: advisory only, on pages inside our own allocation; failure is harmless.
            unsafe {
                madvise(lo as *mut std::ffi::c_void, hi - lo, MADV_HUGEPAGE);
            }
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = (p, len);
}
