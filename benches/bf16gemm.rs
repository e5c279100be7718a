//! bf16 GEMM (f32 accumulation, operands rounded to bf16 while packing) beside our f32
//! `sgemm` on MiniLM's linear-layer shapes (16 sequences x 256 tokens = 4096 rows, hidden
//! 384, intermediate 1536), in the three layouts a linear layer runs: the forward
//! `y = x·Wᵀ` (NT), `dX = g·W` (NN) and `dW = gᵀ·x` (TN). One criterion group per shape and
//! layout, all threads; throughput in elements = FLOP (2·m·n·k).
//!
//! `cargo bench --bench bf16gemm` (filter with e.g. `-- ffn_in`). The path in use is printed
//! first (`avx512-bf16 12x32` or `portable 6x16`).
#[path = "support/fill.rs"]
mod support;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use std::hint::black_box;
use std::time::Duration;
use support::fill;
use tapegrad_kernels::bf16gemm::{self, bf16gemm};
use tapegrad_kernels::sgemm::{self, sgemm};

/// A linear layer `in → out` over `rows` rows.
struct Layer {
    name: &'static str,
    rows: usize,
    inp: usize,
    out: usize,
}

const LAYERS: &[Layer] = &[
    // attention's Q, K, V and output projections
    Layer { name: "minilm_qkvo", rows: 4096, inp: 384, out: 384 },
    // feed-forward up and down
    Layer { name: "minilm_ffn_in", rows: 4096, inp: 384, out: 1536 },
    Layer { name: "minilm_ffn_out", rows: 4096, inp: 1536, out: 384 },
];

/// One product's operands: `C (m×n) = A·B` with `A(i,p) = a[i·rsa + p·csa]` etc.
#[derive(Clone, Copy)]
struct Product {
    m: usize,
    n: usize,
    k: usize,
    rsa: usize,
    csa: usize,
    rsb: usize,
    csb: usize,
}

fn bench(c: &mut Criterion) {
    println!("bf16gemm path: {}, sgemm kernel: {}", bf16gemm::path().name(), sgemm::kernel_name());
    for l in LAYERS {
        let (r, i, o) = (l.rows, l.inp, l.out);
        let x = fill(r * i, 1);
        let w = fill(o * i, 2);
        let g = fill(r * o, 3);
        // (layout, A, B, product)
        let cases: [(&str, &[f32], &[f32], Product); 3] = [
            // y (R, out) = x (R, in) · Wᵀ (in, out)
            ("fwd_NT", &x, &w, Product { m: r, n: o, k: i, rsa: i, csa: 1, rsb: 1, csb: i }),
            // dX (R, in) = g (R, out) · W (out, in)
            ("dx_NN", &g, &w, Product { m: r, n: i, k: o, rsa: o, csa: 1, rsb: i, csb: 1 }),
            // dW (out, in) = gᵀ (out, R) · x (R, in)
            ("dw_TN", &g, &x, Product { m: o, n: i, k: r, rsa: 1, csa: o, rsb: i, csb: 1 }),
        ];
        for (layout, a, b, p) in cases {
            let mut out = vec![0.0f32; p.m * p.n];
            let mut grp = c.benchmark_group(format!("{}_{layout}", l.name));
            grp.throughput(Throughput::Elements((2 * p.m * p.n * p.k) as u64));
            grp.sample_size(10);
            grp.warm_up_time(Duration::from_millis(300));
            grp.measurement_time(Duration::from_secs(2));
            grp.bench_function("f32_sgemm", |bch| {
                bch.iter(|| {
                    sgemm(p.m, p.n, p.k, a, p.rsa, p.csa, b, p.rsb, p.csb, 0.0, &mut out, p.n);
                    black_box(&out);
                })
            });
            grp.bench_function("bf16gemm", |bch| {
                bch.iter(|| {
                    bf16gemm(p.m, p.n, p.k, a, p.rsa, p.csa, b, p.rsb, p.csb, 0.0, &mut out, p.n);
                    black_box(&out);
                })
            });
            grp.finish();
        }
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
