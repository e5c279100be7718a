//! Interpreter speed on the tiled SGEMM test kernel: criterion's throughput is executed
//! thread-instructions per second (`cargo bench -p tapegrad-ptx-sim`), on one host thread
//! and on all of them; beside them the plain Rust loop for the same product, as the baseline.
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use tapegrad_ptx_sim::{Arg, LaunchDims, SimGpu};

fn bench(c: &mut Criterion) {
    let ptx = include_str!("../tests/ptx/sgemm.ptx");
    let (m, n, k) = (128usize, 128usize, 128usize);
    let mut g = c.benchmark_group("ptx_sim_sgemm_128");
    g.sample_size(10);
    let all = std::thread::available_parallelism().map_or(1, |n| n.get());
    for threads in [1, all] {
        let gpu = SimGpu::with_host_threads(threads);
        gpu.load_module("sgemm", ptx).unwrap();
        let a: Vec<u8> = (0..m * k).flat_map(|i| ((i % 7) as f32 * 0.25).to_le_bytes()).collect();
        let b: Vec<u8> = (0..k * n).flat_map(|i| ((i % 5) as f32 - 2.0).to_le_bytes()).collect();
        let (pa, pb, pc) =
            (gpu.alloc(a.len()).unwrap(), gpu.alloc(b.len()).unwrap(), gpu.alloc(m * n * 4).unwrap());
        gpu.write(pa, &a).unwrap();
        gpu.write(pb, &b).unwrap();
        let dims =
            LaunchDims { grid: [(n / 64) as u32, (m / 64) as u32, 1], block: [256, 1, 1], shared_bytes: 0 };
        let args = [
            Arg::Ptr(pa),
            Arg::Ptr(pb),
            Arg::Ptr(pc),
            Arg::I32(m as i32),
            Arg::I32(n as i32),
            Arg::I32(k as i32),
        ];
        let stats = gpu.launch("sgemm", "sgemm_tiled", dims, &args).unwrap();
        g.throughput(Throughput::Elements(stats.thread_instructions));
        g.bench_function(format!("{threads}_host_threads"), |bch| {
            bch.iter(|| gpu.launch("sgemm", "sgemm_tiled", dims, &args).unwrap())
        });
    }
    // Baseline in the same run: the plain Rust loop doing the same multiply (fused
    // multiply-adds in the kernel's order), so the interpreter's cost reads as a ratio.
    let a: Vec<f32> = (0..m * k).map(|i| (i % 7) as f32 * 0.25).collect();
    let b: Vec<f32> = (0..k * n).map(|i| (i % 5) as f32 - 2.0).collect();
    g.bench_function("native_rust_reference", |bch| {
        bch.iter(|| {
            let mut c = vec![0f32; m * n];
            for i in 0..m {
                for j in 0..n {
                    c[i * n + j] = (0..k).fold(0f32, |acc, p| a[i * k + p].mul_add(b[p * n + j], acc));
                }
            }
            std::hint::black_box(c)
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
