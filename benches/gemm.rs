//! GEMM throughput on named shapes: ours (1 thread and all threads) beside
//! `matrixmultiply::sgemm` (single-threaded) in one criterion group per shape.
//! Throughput is in elements = FLOP (2*m*n*k per product).
//!
//! `cargo bench --bench gemm` (filter with e.g. `-- square_1024`).
#[path = "support/fill.rs"]
mod support;
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use std::hint::black_box;
use std::time::Duration;
use support::fill;
use tapegrad_kernels::gemm::{Dims, MatMut, MatRef};
use tapegrad_kernels::sgemm::sgemm;
use tapegrad_kernels::threads::{num_threads, set_num_threads};

struct Shape {
    name: &'static str,
    batch: usize,
    m: usize,
    n: usize,
    k: usize,
    samples: usize,
}

const SHAPES: &[Shape] = &[
    Shape { name: "square_128", batch: 1, m: 128, n: 128, k: 128, samples: 50 },
    Shape { name: "square_256", batch: 1, m: 256, n: 256, k: 256, samples: 30 },
    Shape { name: "square_512", batch: 1, m: 512, n: 512, k: 512, samples: 20 },
    Shape { name: "square_1024", batch: 1, m: 1024, n: 1024, k: 1024, samples: 10 },
    Shape { name: "square_2048", batch: 1, m: 2048, n: 2048, k: 2048, samples: 10 },
    // BiLSTM input projection: 64 sequences x 256 tokens, embedding 50 -> 4H = 1024.
    Shape { name: "bilstm_input_proj", batch: 1, m: 64 * 256, n: 1024, k: 50, samples: 10 },
    // One LSTM time step: h [64, 256] x W_hh [256, 1024].
    Shape { name: "bilstm_step", batch: 1, m: 64, n: 1024, k: 256, samples: 30 },
    // BERT-mini feed-forward: [4096, 384] x [384, 1536].
    Shape { name: "bert_ffn", batch: 1, m: 4096, n: 1536, k: 384, samples: 10 },
    // Attention scores Q K^T: 16 sequences x 12 heads of [256, 32] x [32, 256].
    Shape { name: "bert_attn_scores", batch: 16 * 12, m: 256, n: 256, k: 32, samples: 20 },
];

fn bench(c: &mut Criterion) {
    let all = num_threads();
    for sh in SHAPES {
        let (bt, m, n, k) = (sh.batch, sh.m, sh.n, sh.k);
        let a = fill(bt * m * k, 1);
        let b = fill(bt * k * n, 2);
        let mut out = vec![0.0f32; bt * m * n];
        let mut g = c.benchmark_group(sh.name);
        g.throughput(Throughput::Elements((2 * bt * m * n * k) as u64)); // FLOP
        g.sample_size(sh.samples.max(10));
        g.warm_up_time(Duration::from_millis(300));
        g.measurement_time(Duration::from_secs(2));
        let mut threads = vec![1];
        if all > 1 {
            threads.push(all);
        }
        for &t in &threads {
            g.bench_function(BenchmarkId::new("tapegrad", format!("t{t}")), |bch| {
                set_num_threads(t);
                bch.iter(|| {
                    let (a, b) =
                        (MatRef::rows(&a, k).batch_stride(m * k), MatRef::rows(&b, n).batch_stride(k * n));
                    sgemm(
                        Dims::new(m, n, k).batched(bt),
                        a,
                        b,
                        0.0,
                        MatMut::rows(&mut out, n).batch_stride(m * n),
                    );
                    black_box(&out);
                })
            });
        }
        set_num_threads(all);
        g.bench_function(BenchmarkId::new("matrixmultiply", "t1"), |bch| {
            bch.iter(|| {
                for i in 0..bt {
                    // SAFETY: the pointers address bt row-major products of the given shapes.
                    unsafe {
                        matrixmultiply::sgemm(
                            m,
                            k,
                            n,
                            1.0,
                            a.as_ptr().add(i * m * k),
                            k as isize,
                            1,
                            b.as_ptr().add(i * k * n),
                            n as isize,
                            1,
                            0.0,
                            out.as_mut_ptr().add(i * m * n),
                            n as isize,
                            1,
                        );
                    }
                }
                black_box(&out);
            })
        });
        g.finish();
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
