//! Memory-bound kernels beside a plain memcpy of the same bytes.
//!
//! Each group moves the same bytes (read x, write y) over an array far larger
//! than L2, so the ratio kernel/memcpy says how close a kernel gets to the memory
//! bandwidth. Throughput is reported in bytes/s: the bytes a kernel reads plus the
//! bytes it writes (a `+=` output counts twice), memcpy's being 2 × 16 MiB.
//!
//! The LSTM cell (`lstm_cell`) is the exception: at the tutorial's step (64 rows, H = 256)
//! its buffers stay in L2 and five transcendentals a unit bound it, so its group times each
//! path the CPU has (`isa::force`) against the portable loop, in units of the cell a second.
//!
//! `cargo bench --bench kernels`

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use std::hint::black_box;
use tapegrad::kernels::dropout::{dropout_backward, dropout_forward};
use tapegrad::kernels::elementwise::{unary_backward, unary_forward, Unary};
use tapegrad::kernels::isa::{self, Family};
use tapegrad::kernels::layernorm::{
    layer_norm_backward, layer_norm_forward, residual_layer_norm_forward, LayerNormGrads, LayerNormIn,
    LayerNormStats, ResidualIn, ResidualOut,
};
use tapegrad::kernels::loss::{cross_entropy_backward, cross_entropy_forward};
use tapegrad::kernels::lstm::{cell_backward, cell_forward, CellBackwardIn, CellGrads};
use tapegrad::kernels::softmax::{softmax_backward, softmax_forward};

/// 16 MiB of f32 in, 16 MiB out.
const N: usize = 4 << 20;

fn data(n: usize) -> Vec<f32> {
    (0..n).map(|i| ((i * 7919) % 1000) as f32 / 250.0 - 2.0).collect()
}

fn memcpy(c: &mut Criterion, group: &str, bytes: u64) -> (Vec<f32>, Vec<f32>) {
    let (x, mut y) = (data(N), vec![0f32; N]);
    let mut g = c.benchmark_group(group);
    g.throughput(Throughput::Bytes(bytes)).sample_size(20);
    g.bench_function("memcpy", |b| b.iter(|| y.copy_from_slice(black_box(&x))));
    g.finish();
    (x, y)
}

fn elementwise(c: &mut Criterion) {
    let bytes = (2 * N * 4) as u64;
    let (x, mut y) = memcpy(c, "elementwise", bytes);
    let mut g = c.benchmark_group("elementwise");
    g.throughput(Throughput::Bytes(bytes)).sample_size(20);
    for (name, op) in
        [("exp", Unary::Exp), ("tanh", Unary::Tanh), ("sigmoid", Unary::Sigmoid), ("gelu", Unary::Gelu)]
    {
        g.bench_function(BenchmarkId::new("forward", name), |b| {
            b.iter(|| unary_forward(op, black_box(&x), &mut y))
        });
    }
    // backward reads x, y, g and writes dx: twice the bytes of memcpy
    let (gr, mut dx) = (data(N), vec![0f32; N]);
    g.throughput(Throughput::Bytes(2 * bytes));
    g.bench_function(BenchmarkId::new("backward", "gelu"), |b| {
        b.iter(|| unary_backward(Unary::Gelu, black_box(&x), &y, &gr, &mut dx))
    });
    g.finish();
}

fn dropout(c: &mut Criterion) {
    let bytes = (2 * N * 4) as u64;
    let (x, mut y) = memcpy(c, "dropout", bytes);
    let mut g = c.benchmark_group("dropout");
    g.sample_size(20);
    // forward reads x and writes y and the mask (a byte each); backward reads g and the
    // mask and writes dx
    let mut keep = vec![0u8; N];
    g.throughput(Throughput::Bytes(bytes + N as u64));
    g.bench_function(BenchmarkId::new("forward", "p0.1"), |b| {
        b.iter(|| dropout_forward(black_box(&x), 0.1, 7, &mut y, &mut keep))
    });
    let mut dx = vec![0f32; N];
    g.bench_function(BenchmarkId::new("backward", "p0.1"), |b| {
        b.iter(|| dropout_backward(black_box(&y), &keep, 0.1, &mut dx))
    });
    g.finish();
}

fn softmax(c: &mut Criterion) {
    let bytes = (2 * N * 4) as u64;
    let (x, mut y) = memcpy(c, "softmax", bytes);
    let mut g = c.benchmark_group("softmax");
    g.throughput(Throughput::Bytes(bytes)).sample_size(20);
    for n in [256usize, 1024] {
        g.bench_function(BenchmarkId::new("rows", n), |b| {
            b.iter(|| softmax_forward(black_box(&x), N / n, n, 1, &mut y, false))
        });
    }
    // backward reads y, g and updates dx (read + write): twice the bytes of memcpy
    let (gr, mut dx) = (data(N), vec![0f32; N]);
    g.throughput(Throughput::Bytes(2 * bytes));
    for (name, log) in [("softmax", false), ("log_softmax", true)] {
        softmax_forward(&x, N / 1024, 1024, 1, &mut y, log);
        g.bench_function(BenchmarkId::new(format!("backward/{name}"), 1024), |b| {
            b.iter(|| softmax_backward(black_box(&y), &gr, N / 1024, 1024, 1, &mut dx, log))
        });
    }
    g.finish();
}

fn cross_entropy(c: &mut Criterion) {
    memcpy(c, "cross_entropy", (2 * N * 4) as u64);
    let mut g = c.benchmark_group("cross_entropy");
    g.sample_size(20);
    let x = data(N);
    let mut d = vec![0f32; N];
    // 1024 classes, and BERT's vocabulary as the classes of a language-model head
    for classes in [1024usize, 30522] {
        let rows = N / classes;
        let (x, d) = (&x[..rows * classes], &mut d[..rows * classes]);
        let targets: Vec<usize> = (0..rows).map(|i| (i * 7919) % classes).collect();
        // forward reads the logits; backward reads them and updates dlogits
        g.throughput(Throughput::Bytes((rows * classes * 4) as u64));
        g.bench_function(BenchmarkId::new("forward", classes), |b| {
            b.iter(|| cross_entropy_forward(black_box(x), rows, classes, &targets, None))
        });
        g.throughput(Throughput::Bytes((3 * rows * classes * 4) as u64));
        g.bench_function(BenchmarkId::new("backward", classes), |b| {
            b.iter(|| cross_entropy_backward(black_box(x), rows, classes, &targets, None, 1e-3, d))
        });
    }
    g.finish();
}

fn layernorm(c: &mut Criterion) {
    let bytes = (2 * N * 4) as u64;
    let (x, mut y) = memcpy(c, "layernorm", bytes);
    let mut g = c.benchmark_group("layernorm");
    g.throughput(Throughput::Bytes(bytes)).sample_size(20);
    let n = 512; // divides N; BERT's 384 rows behave the same
    let (w, bias) = (vec![1.0f32; n], vec![0.0f32; n]);
    let (mut mean, mut rstd) = (vec![0f32; N / n], vec![0f32; N / n]);
    let ln = LayerNormIn { x: &x[..], rows: N / n, n, w: Some(&w[..]), b: Some(&bias[..]) };
    g.bench_function(BenchmarkId::new("forward", n), |b| {
        b.iter(|| {
            let stats = LayerNormStats { mean: &mut mean[..], rstd: &mut rstd[..] };
            layer_norm_forward(black_box(ln), 1e-5, &mut y, stats)
        })
    });
    // backward reads x, g and updates dx (read + write): twice the bytes of memcpy;
    // dw and db (n each) are noise beside them
    let (gr, mut dx, mut dw, mut db) = (data(N), vec![0f32; N], vec![0f32; n], vec![0f32; n]);
    g.throughput(Throughput::Bytes(2 * bytes));
    g.bench_function(BenchmarkId::new("backward", n), |b| {
        b.iter(|| {
            let grads =
                LayerNormGrads { dx: Some(&mut dx[..]), dw: Some(&mut dw[..]), db: Some(&mut db[..]) };
            layer_norm_backward(
                black_box(ln),
                LayerNormStats { mean: &mean[..], rstd: &rstd[..] },
                &gr,
                grads,
            )
        })
    });
    // layer_norm(dropout(x) + r) in one pass (BERT's block after its dense layers): reads x
    // and r, writes s, y and the mask: 2 + 1/4 times memcpy's bytes with dropout
    let (r, mut s) = (data(N), vec![0f32; N]);
    let mut keep = vec![0u8; N];
    for (name, dropout) in [("residual_forward", None), ("residual_dropout_forward", Some((0.1, 7)))] {
        g.throughput(Throughput::Bytes(2 * bytes + if dropout.is_some() { N as u64 } else { 0 }));
        g.bench_function(BenchmarkId::new(name, n), |b| {
            b.iter(|| {
                let inp = ResidualIn { ln, residual: &r[..], dropout };
                let out = ResidualOut {
                    s: &mut s[..],
                    y: &mut y[..],
                    keep: dropout.map(|_| &mut keep[..]),
                    stats: LayerNormStats { mean: &mut mean[..], rstd: &mut rstd[..] },
                };
                residual_layer_norm_forward(black_box(inp), 1e-5, out)
            })
        });
    }
    g.finish();
}

/// The fused LSTM cell, forward (z's copy back to the pre-activations included: the cell
/// overwrites them) and backward, on one step of the tutorial's recurrence: 64 rows, H = 256,
/// every row with a previous state.
fn lstm_cell(c: &mut Criterion) {
    let (rows, hh) = (64, 256);
    let pre = data(rows * 4 * hh);
    let c_prev: Vec<f32> = data(rows * hh).iter().map(|v| v * 0.5).collect();
    let (mut z, mut cs, mut tc, mut h) =
        (pre.clone(), vec![0f32; rows * hh], vec![0f32; rows * hh], vec![0f32; rows * hh]);
    let (dh, dc) = (data(rows * hh), data(rows * hh));
    let (mut dz, mut dcp) = (vec![0f32; rows * 4 * hh], vec![0f32; rows * hh]);
    let mut g = c.benchmark_group("lstm_cell");
    g.throughput(Throughput::Elements((rows * hh) as u64));
    for &isa in Family::Lstm.paths() {
        if !Family::Lstm.cpu_supports(isa) {
            eprintln!("lstm_cell/{}: SKIPPED (this CPU lacks it)", isa.name());
            continue;
        }
        let _forced = isa::force(isa);
        g.bench_function(BenchmarkId::new("forward", isa.name()), |b| {
            b.iter(|| {
                z.copy_from_slice(&pre);
                cell_forward(&mut z, black_box(&c_prev), hh, &mut cs, &mut tc, &mut h)
            })
        });
        cell_forward(&mut z, &c_prev, hh, &mut cs, &mut tc, &mut h); // z: the activations
        g.bench_function(BenchmarkId::new("backward", isa.name()), |b| {
            b.iter(|| {
                let x = CellBackwardIn {
                    act: &z[..],
                    c_prev: &c_prev[..],
                    tanh_c: &tc[..],
                    dh: &dh[..],
                    dc: &dc[..],
                    hidden: hh,
                };
                cell_backward(black_box(x), CellGrads { d_gates: &mut dz[..], dc_prev: &mut dcp[..] })
            })
        });
    }
    g.finish();
}

criterion_group!(benches, elementwise, dropout, softmax, cross_entropy, layernorm, lstm_cell);
criterion_main!(benches);
