//! The GEMM benches: the workload's shapes, the row-major product as a cuBLAS
//! (column-major) call, the validation of ours against the reference, the timing and
//! the table.

use crate::{fill, median, timed, Buf, Times};
use criterion::{BenchmarkId, Criterion, Throughput};
use cudarc::cublas::{result as blas, sys as blas_sys, CudaBlas};
use std::ffi::{c_int, c_longlong};
use std::sync::Arc;
use std::time::Duration;
use tapegrad_kernels::gemm::{Dims, Strides};
use tapegrad_kernels::gpu::cuda::CudaLauncher;
use tapegrad_kernels::gpu::gemm::{GpuMat, GpuMatMut};
use tapegrad_kernels::gpu::{self, GpuContext};

// ---------------------------------------------------------------------------------
// Shapes
// ---------------------------------------------------------------------------------

/// `C (m×n) = beta·C + op(A) (m×k) · op(B) (k×n)`, `batch` times; `ta`: A is stored
/// transposed (k×m row-major), `tb`: B is stored transposed (n×k row-major, a linear
/// layer's `[out, in]` weight).
#[derive(Clone, Copy, Debug)]
pub struct Shape {
    pub name: &'static str,
    pub batch: usize,
    pub m: usize,
    pub n: usize,
    pub k: usize,
    pub ta: bool,
    pub tb: bool,
    pub beta: f32,
}

const fn shape(name: &'static str, m: usize, n: usize, k: usize, ta: bool, tb: bool) -> Shape {
    Shape { name, batch: 1, m, n, k, ta, tb, beta: 0.0 }
}

/// MiniLM (all-MiniLM-L6-v2): batch 16 × 256 tokens = 4096 rows, hidden 384, FFN 1536;
/// `linear` computes x·Wᵀ (B transposed), dx = g·W (plain), dW = gᵀ·x (A transposed).
/// BiLSTM (the tutorial's): batch 64, about 256 steps, embedding 50, hidden 256, 4H = 1024.
pub const SHAPES: &[Shape] = &[
    shape("square_512", 512, 512, 512, false, false),
    shape("square_1024", 1024, 1024, 1024, false, false),
    shape("square_2048", 2048, 2048, 2048, false, false),
    shape("square_4096", 4096, 4096, 4096, false, false),
    // Q, K, V and attention-output projections: [4096, 384] · Wᵀ [384, 384]
    shape("minilm_proj_fwd", 4096, 384, 384, false, true),
    // FFN up: [4096, 384] · Wᵀ [384, 1536]; FFN down: [4096, 1536] · Wᵀ [1536, 384]
    shape("minilm_ffn_up_fwd", 4096, 1536, 384, false, true),
    shape("minilm_ffn_down_fwd", 4096, 384, 1536, false, true),
    // FFN up backward: dx = g [4096, 1536] · W [1536, 384]; dW = gᵀ [1536, 4096] · x [4096, 384]
    shape("minilm_ffn_up_dx", 4096, 384, 1536, false, false),
    shape("minilm_ffn_up_dw", 1536, 384, 4096, true, false),
    // Attention scores Q·Kᵀ, 16 × 12 heads of [256, 32] · [32, 256] (a batched product;
    // the models' attention itself is the fused kernel, not this)
    Shape {
        name: "batched_attn_scores",
        batch: 16 * 12,
        m: 256,
        n: 256,
        k: 32,
        ta: false,
        tb: true,
        beta: 0.0,
    },
    // One LSTM time step: gates [64, 1024] += h [64, 256] · W_hhᵀ [256, 1024]
    Shape { name: "bilstm_step_fwd", batch: 1, m: 64, n: 1024, k: 256, ta: false, tb: true, beta: 1.0 },
    // Its backward: dh [64, 256] = dgates [64, 1024] · W_hh [1024, 256]
    shape("bilstm_step_dh", 64, 256, 1024, false, false),
    // Input projections of all 64 × 256 tokens: layer 1 (E = 50), layer 2 (2H = 512)
    shape("bilstm_input_proj_l1", 64 * 256, 1024, 50, false, true),
    shape("bilstm_input_proj_l2", 64 * 256, 1024, 512, false, true),
    // dW_hh += dgatesᵀ [1024, 16384] · h_prev [16384, 256]
    Shape { name: "bilstm_dw_hh", batch: 1, m: 1024, n: 256, k: 64 * 256, ta: true, tb: false, beta: 1.0 },
];

impl Shape {
    pub fn flops(&self) -> u64 {
        (2 * self.batch * self.m * self.n * self.k) as u64
    }
    pub fn lens(&self) -> (usize, usize, usize) {
        let Shape { batch, m, n, k, .. } = *self;
        (batch * m * k, batch * k * n, batch * m * n)
    }
    /// Our strides for A, B and C.
    /// The product's sizes.
    pub fn dims(&self) -> Dims {
        Dims::new(self.m, self.n, self.k).batched(self.batch)
    }

    pub fn strides(&self) -> (Strides, Strides, Strides) {
        let Shape { m, n, k, ta, tb, .. } = *self;
        let sa = if ta { Strides::transposed(k, m) } else { Strides::row_major(m, k) };
        let sb = if tb { Strides::transposed(n, k) } else { Strides::row_major(k, n) };
        (sa, sb, Strides::row_major(m, n))
    }
    /// The same layout on small sizes (the simulated GPU's self-check): odd sizes near
    /// the tile edges, at most 3 batch items.
    pub fn shrunk(&self) -> Shape {
        let s = |d: usize| if d <= 70 { d } else { 61 + d % 9 };
        Shape { batch: self.batch.min(3), m: s(self.m), n: s(self.n), k: s(self.k), ..*self }
    }
}

// ---------------------------------------------------------------------------------
// The row-major product as a cuBLAS (column-major) call
// ---------------------------------------------------------------------------------

/// The arguments of `cublasSgemmStridedBatched` (cuBLAS's names: its A, B, C).
#[derive(Clone, Copy, Debug)]
pub struct BlasArgs {
    trans_a: bool,
    trans_b: bool,
    m: usize,
    n: usize,
    k: usize,
    lda: usize,
    ldb: usize,
    ldc: usize,
    stride_a: usize,
    stride_b: usize,
    stride_c: usize,
    batch: usize,
}

/// cuBLAS is column-major, and a row-major matrix read column-major is its transpose:
/// row-major `C = op(A)·op(B)` is column-major `Cᵀ = op(B)ᵀ·op(A)ᵀ`, so cuBLAS's A is
/// our B and its B our A, each with our transposition flag, and m and n swap.
pub fn blas_args(sh: &Shape) -> BlasArgs {
    let Shape { batch, m, n, k, ta, tb, .. } = *sh;
    BlasArgs {
        trans_a: tb,
        trans_b: ta,
        m: n,
        n: m,
        k,
        // our B read column-major: n×k (ld n), or stored n×k row-major = k×n (ld k)
        lda: if tb { k } else { n },
        // our A read column-major: k×m (ld k), or stored k×m row-major = m×k (ld m)
        ldb: if ta { m } else { k },
        ldc: n,
        stride_a: k * n,
        stride_b: m * k,
        stride_c: m * n,
        batch,
    }
}

/// Our (A, B) as cuBLAS's (A, B): swapped (see [`blas_args`]).
pub fn blas_operands<'a, T: ?Sized>(a: &'a T, b: &'a T) -> (&'a T, &'a T) {
    (b, a)
}

/// cuBLAS's strided batched SGEMM semantics, on the host in f64 (the mapping's check).
pub fn blas_emulate(p: &BlasArgs, a: &[f32], b: &[f32], beta: f32, c: &mut [f32]) {
    assert!(p.lda >= if p.trans_a { p.k } else { p.m }.max(1), "lda too small: {p:?}");
    assert!(p.ldb >= if p.trans_b { p.n } else { p.k }.max(1), "ldb too small: {p:?}");
    assert!(p.ldc >= p.m.max(1), "ldc too small: {p:?}");
    for l in 0..p.batch {
        let (a, b) = (&a[l * p.stride_a..], &b[l * p.stride_b..]);
        for j in 0..p.n {
            for i in 0..p.m {
                let mut s = 0.0f64;
                for q in 0..p.k {
                    let av = if p.trans_a { a[q + i * p.lda] } else { a[i + q * p.lda] };
                    let bv = if p.trans_b { b[j + q * p.ldb] } else { b[q + j * p.ldb] };
                    s += av as f64 * bv as f64;
                }
                let ci = l * p.stride_c + i + j * p.ldc;
                c[ci] = (s + beta as f64 * c[ci] as f64) as f32;
            }
        }
    }
}

// ---------------------------------------------------------------------------------
// Ours and the reference
// ---------------------------------------------------------------------------------

/// What ours is checked and timed against.
pub enum Reference {
    Cublas(CudaBlas),
    /// Our one-thread-per-element kernel (no libcublas, or the simulated GPU).
    Naive,
}

impl Reference {
    pub fn name(&self) -> &'static str {
        match self {
            Reference::Cublas(_) => "cublas",
            Reference::Naive => "naive",
        }
    }

    /// cuBLAS on the stream our launcher issues on (see [`CudaLauncher::stream`]).
    pub fn cublas(launcher: &CudaLauncher) -> Result<Reference, String> {
        // SAFETY: only probes whether the library can be loaded.
        if !unsafe { blas_sys::is_culib_present() } {
            return Err("libcublas is not installed (or not on the library path)".into());
        }
        let handle = CudaBlas::new(launcher.stream()).map_err(|e| format!("cublasCreate: {e}"))?;
        // SAFETY: a live handle. Default math: FP32 products and sums, no TF32.
        unsafe { blas_sys::cublasSetMathMode(*handle.handle(), blas_sys::cublasMath_t::CUBLAS_DEFAULT_MATH) }
            .result()
            .map_err(|e| format!("cublasSetMathMode: {e}"))?;
        Ok(Reference::Cublas(handle))
    }

    pub fn gemm(&self, sh: &Shape, a: &Buf, b: &Buf, beta: f32, c: &mut Buf) -> Result<(), String> {
        let (la, lb, lc) = sh.lens();
        assert!(a.len() >= la && b.len() >= lb && c.len() >= lc, "{}: operands too short", sh.name);
        match self {
            Reference::Naive => {
                let (sa, sb, sc) = sh.strides();
                let (a, b, c) = (GpuMat::new(a, sa), GpuMat::new(b, sb), GpuMatMut::new(c, sc));
                gpu::gemm::gemm_naive(sh.dims(), a, b, beta, c).map_err(|e| e.to_string())
            }
            Reference::Cublas(handle) => {
                let p = blas_args(sh);
                let i = |v: usize| c_int::try_from(v).expect("dimension fits cuBLAS's int");
                let l = |v: usize| v as c_longlong;
                let op = |t: bool| {
                    if t {
                        blas_sys::cublasOperation_t::CUBLAS_OP_T
                    } else {
                        blas_sys::cublasOperation_t::CUBLAS_OP_N
                    }
                };
                let alpha = 1.0f32;
                let (blas_a, blas_b) = blas_operands(a, b);
                // SAFETY: the pointers address live buffers of this device holding the
                // operands (lengths checked above; `blas_args`'s layout is checked against
                // the CPU product by the self-check); alpha and beta are host scalars (the
                // handle's default pointer mode); the handle issues on our stream, so the
                // call is ordered with our kernels and the buffers outlive it (every
                // sample ends with a synchronize).
                unsafe {
                    blas::sgemm_strided_batched(
                        *handle.handle(),
                        op(p.trans_a),
                        op(p.trans_b),
                        i(p.m),
                        i(p.n),
                        i(p.k),
                        &alpha,
                        blas_a.ptr() as *const f32,
                        i(p.lda),
                        l(p.stride_a),
                        blas_b.ptr() as *const f32,
                        i(p.ldb),
                        l(p.stride_b),
                        &beta,
                        c.ptr() as *mut f32,
                        i(p.ldc),
                        l(p.stride_c),
                        i(p.batch),
                    )
                }
                .map_err(|e| format!("cublasSgemmStridedBatched: {e}"))
            }
        }
    }
}

pub fn ours(sh: &Shape, a: &Buf, b: &Buf, beta: f32, c: &mut Buf) -> Result<(), String> {
    let (sa, sb, sc) = sh.strides();
    let (a, b, c) = (GpuMat::new(a, sa), GpuMat::new(b, sb), GpuMatMut::new(c, sc));
    gpu::gemm::gemm_tiled(sh.dims(), a, b, beta, c).map_err(|e| e.to_string())
}

fn abs(v: &[f32]) -> Vec<f32> {
    v.iter().map(|x| x.abs()).collect()
}

// ---------------------------------------------------------------------------------
// Validate, then time
// ---------------------------------------------------------------------------------

/// A shape's operands on the device, left as the validation used them.
pub struct Operands {
    pub a: Buf,
    pub b: Buf,
    pub c: Buf,
}

pub struct Agreement {
    /// max |ours − ref| / max |ref|
    pub max_rel: f64,
    /// max over C of |ours − ref| / (ε·bound): within k + 2 passes
    pub worst_in_eps: f64,
}

/// Ours against the reference on one shape, element by element, within the f32 bound.
pub fn validate(ctx: &Arc<GpuContext>, r: &Reference, sh: &Shape) -> Result<(Operands, Agreement), String> {
    validate_product(ctx, r, sh, ours)
}

/// [`validate`] with the product under test as an argument (the self-check passes a
/// wrong one, which must fail).
pub fn validate_product(
    ctx: &Arc<GpuContext>,
    r: &Reference,
    sh: &Shape,
    ours: impl Fn(&Shape, &Buf, &Buf, f32, &mut Buf) -> Result<(), String>,
) -> Result<(Operands, Agreement), String> {
    let e = |e: gpu::GpuError| e.to_string();
    let (la, lb, lc) = sh.lens();
    let (ah, bh, c0) = (fill(la, 1), fill(lb, 2), fill(lc, 3));
    let (a, b) = (Buf::from_host(ctx, &ah).map_err(e)?, Buf::from_host(ctx, &bh).map_err(e)?);
    let mut c = Buf::from_host(ctx, &c0).map_err(e)?;
    let mut want = Buf::from_host(ctx, &c0).map_err(e)?;
    ours(sh, &a, &b, sh.beta, &mut c)?;
    r.gemm(sh, &a, &b, sh.beta, &mut want)?;
    // |A|·|B| + |β·C₀|, by the reference
    let (aa, ab) = (Buf::from_host(ctx, &abs(&ah)).map_err(e)?, Buf::from_host(ctx, &abs(&bh)).map_err(e)?);
    let mut bound = Buf::from_host(ctx, &abs(&c0)).map_err(e)?;
    r.gemm(sh, &aa, &ab, sh.beta.abs(), &mut bound)?;
    ctx.synchronize().map_err(e)?;
    let (got, want, bound) =
        (c.to_host().map_err(e)?, want.to_host().map_err(e)?, bound.to_host().map_err(e)?);
    let eps = f32::EPSILON as f64;
    let limit = (sh.k + 2) as f64;
    let (mut max_err, mut max_ref, mut worst) = (0f64, 0f64, 0f64);
    for (i, ((&g, &w), &bd)) in got.iter().zip(&want).zip(&bound).enumerate() {
        let err = (g as f64 - w as f64).abs();
        let scaled = err / (eps * (bd as f64).max(f32::MIN_POSITIVE as f64));
        if scaled.is_nan() || scaled > limit {
            return Err(format!(
                "{}: C[{i}] is {g}, {} gives {w}: off by {err:e}, {scaled:.1} ε·(|A||B|+|βC₀|) \
                 (at most {limit} allowed)",
                sh.name,
                r.name()
            ));
        }
        max_err = max_err.max(err);
        max_ref = max_ref.max((w as f64).abs());
        worst = worst.max(scaled);
    }
    let agreement = Agreement { max_rel: max_err / max_ref.max(f64::MIN_POSITIVE), worst_in_eps: worst };
    Ok((Operands { a, b, c }, agreement))
}

pub struct GemmRow {
    pub shape: Shape,
    pub result: Result<Agreement, String>,
}

pub fn benches(c: &mut Criterion, ctx: &Arc<GpuContext>, r: &Reference, times: &Times) -> Vec<GemmRow> {
    let mut rows = Vec::new();
    for sh in SHAPES {
        let (mut ops, agreement) = match validate(ctx, r, sh) {
            Ok(v) => v,
            Err(e) => {
                eprintln!("VALIDATION FAILED, not timed: {e}");
                rows.push(GemmRow { shape: *sh, result: Err(e) });
                continue;
            }
        };
        let mut g = c.benchmark_group(format!("gemm/{}", sh.name));
        g.throughput(Throughput::Elements(sh.flops())); // FLOP
        g.sample_size(20).warm_up_time(Duration::from_millis(500)).measurement_time(Duration::from_secs(2));
        let Operands { a, b, c: out } = &mut ops;
        let key = format!("gemm/{}/tapegrad", sh.name);
        g.bench_function(BenchmarkId::new("tapegrad", "tiled"), |bch| {
            bch.iter_custom(|iters| {
                timed(ctx, times, &key, iters, || ours(sh, a, b, sh.beta, out).expect("our GEMM"))
            })
        });
        let key = format!("gemm/{}/{}", sh.name, r.name());
        g.bench_function(BenchmarkId::new(r.name(), "sgemm"), |bch| {
            bch.iter_custom(|iters| {
                timed(ctx, times, &key, iters, || r.gemm(sh, a, b, sh.beta, out).expect("reference GEMM"))
            })
        });
        g.finish();
        rows.push(GemmRow { shape: *sh, result: Ok(agreement) });
        drop(ops);
        ctx.empty_cache().expect("empty the allocator's cache");
    }
    rows
}

/// Prints ours against the reference per shape; false when a shape failed validation.
pub fn summary(r: &Reference, gemm: &[GemmRow], times: &Times) -> bool {
    let med = |key: String| median(times, &key);
    let mut ok = true;
    println!();
    println!("GEMM, f32 (medians of the samples; reference: {}):", r.name());
    println!(
        "{:<22} {:>22} {:>12} {:>12} {:>9} {:>11} {:>10}",
        "shape",
        "batch×m×n×k",
        "ours GFLOP/s",
        format!("{} GFLOP/s", r.name()),
        "ours/ref",
        "max rel err",
        "worst/ε·b"
    );
    println!(
        "(max rel err: max |ours − ref| / max |ref|; worst/ε·b: max |ours − ref| / (ε·(|A||B| + |βC₀|)), \
         at most k + 2 allowed)"
    );
    for row in gemm {
        let sh = &row.shape;
        let dims = format!("{}×{}×{}×{}", sh.batch, sh.m, sh.n, sh.k);
        match &row.result {
            Err(_) => {
                ok = false;
                println!("{:<22} {:>22} VALIDATION FAILED (see above), not timed", sh.name, dims);
            }
            Ok(agr) => {
                let gf = |t: Option<f64>| t.map(|t| sh.flops() as f64 / t / 1e9);
                let (o, b) = (
                    gf(med(format!("gemm/{}/tapegrad", sh.name))),
                    gf(med(format!("gemm/{}/{}", sh.name, r.name()))),
                );
                let f = |v: Option<f64>, p: usize| v.map_or("-".into(), |v| format!("{v:.p$}"));
                println!(
                    "{:<22} {:>22} {:>12} {:>12} {:>9} {:>11.2e} {:>10.2}",
                    sh.name,
                    dims,
                    f(o, 1),
                    f(b, 1),
                    f(o.zip(b).map(|(o, b)| o / b), 3),
                    agr.max_rel,
                    agr.worst_in_eps
                );
            }
        }
    }
    ok
}
