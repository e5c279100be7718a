//! The caching allocator for CPU tensor buffers (`autograd/src/alloc.rs`) against the
//! system allocator, on the buffer sizes of a training step: each iteration takes a buffer,
//! writes every element (as a kernel writes its output) and frees it. What the system
//! allocator costs here depends on its thresholds (glibc maps a buffer over its mmap
//! threshold afresh, so its pages fault in on every write; a free raises that threshold,
//! up to 32 MiB, and the heap top is trimmed); the pool hands the same block back, already
//! resident, and `uninit` skips the zero fill. Throughput is in bytes written.
//!
//! `cargo bench --bench alloc` (filter with e.g. `-- bert_ffn`).
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use std::hint::black_box;
use std::time::Duration;
use tapegrad_autograd::alloc::{empty_cache, HostBuffer};

/// (name, f32 elements): MiniLM 16 × 256 tokens and the BiLSTM's packed batch.
const SIZES: &[(&str, usize)] = &[
    ("bert_hidden_4096x384", 4096 * 384),
    ("bert_ffn_4096x1536", 4096 * 1536),
    ("bilstm_gates_15000x1024", 15_000 * 1024),
];

fn bench(c: &mut Criterion) {
    for &(name, n) in SIZES {
        let mut g = c.benchmark_group(format!("alloc/{name}"));
        g.throughput(Throughput::Bytes((n * 4) as u64))
            .sample_size(20)
            .measurement_time(Duration::from_secs(3));
        g.bench_function(BenchmarkId::new("system_vec", n), |b| {
            b.iter(|| {
                // what an op did before the pool: a zeroed Vec, then the kernel's writes
                let mut v = vec![0f32; n];
                v.iter_mut().for_each(|x| *x = 1.0);
                black_box(&v);
            })
        });
        g.bench_function(BenchmarkId::new("pool_uninit", n), |b| {
            b.iter(|| {
                // an output the kernel overwrites: no zero fill
                let mut v = HostBuffer::<f32>::uninit(n);
                v.iter_mut().for_each(|x| *x = 1.0);
                black_box(&v);
            })
        });
        g.bench_function(BenchmarkId::new("pool_zeros", n), |b| {
            b.iter(|| {
                // an output the kernel accumulates into
                let mut v = HostBuffer::<f32>::zeros(n);
                v.iter_mut().for_each(|x| *x += 1.0);
                black_box(&v);
            })
        });
        g.finish();
        empty_cache();
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
