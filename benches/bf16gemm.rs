//! bf16 GEMM (f32 accumulation, operands rounded to bf16 while packing) beside our f32
//! `sgemm` on MiniLM's linear-layer shapes (16 sequences x 256 tokens = 4096 rows, hidden
//! 384, intermediate 1536), in the three layouts a linear layer runs: the forward
//! `y = x·Wᵀ` (NT), `dX = g·W` (NN) and `dW = gᵀ·x` (TN). One criterion group per shape and
//! layout, all threads; throughput in elements = FLOP (2·m·n·k).
//!
//! A fourth group per shape, `_fwd_bias`, times the forward with its bias both ways, in
//! each precision: the bias added by the product as it stores each C tile
//! (`MatMut::with_bias`, what `linear` runs) against the old way, C filled with the bias
//! rows (`broadcast::expand`) and the product accumulated into it (beta 1): the baseline
//! in the same run.
//!
//! `cargo bench --bench bf16gemm` (filter with e.g. `-- ffn_in`). The path in use is printed
//! first (`amx-bf16 32x32`, `avx512-bf16 12x32` or `portable 6x16`).
#[path = "support/fill.rs"]
mod support;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use std::hint::black_box;
use std::time::Duration;
use support::fill;
use tapegrad_kernels::bf16gemm::{self, bf16gemm};
use tapegrad_kernels::broadcast::expand;
use tapegrad_kernels::gemm::{Dims, MatMut, MatRef};
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

fn bench(c: &mut Criterion) {
    println!("bf16gemm path: {}, sgemm kernel: {}", bf16gemm::path().name(), sgemm::kernel_name());
    for l in LAYERS {
        let (r, i, o) = (l.rows, l.inp, l.out);
        let x = fill(r * i, 1);
        let w = fill(o * i, 2);
        let g = fill(r * o, 3);
        // (layout, sizes, A, B)
        let cases: [(&str, Dims, MatRef<f32>, MatRef<f32>); 3] = [
            // y (R, out) = x (R, in) · Wᵀ (in, out)
            ("fwd_NT", Dims::new(r, o, i), MatRef::rows(&x, i), MatRef::cols(&w, i)),
            // dX (R, in) = g (R, out) · W (out, in)
            ("dx_NN", Dims::new(r, i, o), MatRef::rows(&g, o), MatRef::rows(&w, i)),
            // dW (out, in) = gᵀ (out, R) · x (R, in)
            ("dw_TN", Dims::new(o, i, r), MatRef::cols(&g, o), MatRef::rows(&x, i)),
        ];
        for (layout, d, a, b) in cases {
            let mut out = vec![0.0f32; d.m * d.n];
            let mut grp = c.benchmark_group(format!("{}_{layout}", l.name));
            grp.throughput(Throughput::Elements(d.flops() as u64));
            grp.sample_size(10);
            grp.warm_up_time(Duration::from_millis(300));
            grp.measurement_time(Duration::from_secs(2));
            grp.bench_function("f32_sgemm", |bch| {
                bch.iter(|| {
                    sgemm(d, a, b, 0.0, MatMut::rows(&mut out, d.n));
                    black_box(&out);
                })
            });
            grp.bench_function("bf16gemm", |bch| {
                bch.iter(|| {
                    bf16gemm(d, a, b, 0.0, MatMut::rows(&mut out, d.n));
                    black_box(&out);
                })
            });
            grp.finish();
        }
        // y (R, out) = x (R, in) · Wᵀ (in, out) + b (out), both ways, both precisions
        let bias = fill(o, 4);
        let (d, a, b) = (Dims::new(r, o, i), MatRef::rows(&x, i), MatRef::cols(&w, i));
        let mut y = vec![0.0f32; r * o];
        let mut grp = c.benchmark_group(format!("{}_fwd_bias", l.name));
        grp.throughput(Throughput::Elements(d.flops() as u64));
        grp.sample_size(10);
        grp.warm_up_time(Duration::from_millis(300));
        grp.measurement_time(Duration::from_secs(2));
        type Product = fn(Dims, MatRef<f32>, MatRef<f32>, f32, MatMut<f32>);
        for (precision, product) in [("f32", sgemm as Product), ("bf16", bf16gemm as Product)] {
            grp.bench_function(format!("{precision}_expand_then_accumulate"), |bch| {
                bch.iter(|| {
                    expand(&bias, &[o], &[r, o], &mut y);
                    product(d, a, b, 1.0, MatMut::rows(&mut y, o));
                    black_box(&y);
                })
            });
            grp.bench_function(format!("{precision}_bias_in_product"), |bch| {
                bch.iter(|| {
                    product(d, a, b, 0.0, MatMut::rows(&mut y, o).with_bias(&bias));
                    black_box(&y);
                })
            });
        }
        grp.finish();
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
