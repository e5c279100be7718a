//! The CUDA kernels on a real GPU: our tiled SGEMM beside cuBLAS on named shapes, and
//! memory-bound kernels beside a device-to-device copy of the same bytes.
//!
//! `cargo bench --bench gpu` (filter with e.g. `-- square_4096` or `-- bandwidth`).
//! Needs a CUDA GPU (the driver library is loaded at run time): without one it prints
//! `SKIPPED gpu benches: <why>` to stderr and exits 0 with an empty criterion run.
//!
//! * **GEMM** (f32, row-major C): `gpu::gemm::gemm_batched` (the tiled kernel) against
//!   cuBLAS `cublasSgemmStridedBatched` (cudarc 0.19's `cublas::result::
//!   sgemm_strided_batched`, on the raw device pointers of our buffers, issued on our
//!   launcher's stream; math mode `CUBLAS_DEFAULT_MATH`: plain FP32, no TF32) on the
//!   workload's shapes and squares. Throughput is in elements = FLOP (2·batch·m·n·k).
//!   Each shape is validated before it is timed: ours against cuBLAS, element by element,
//!   within the f32 rounding bound `(k+2)·ε·(|A|·|B| + |β·C₀|)` (that bound computed by
//!   cuBLAS on the absolute values). Without libcublas the reference is our one-thread-
//!   per-element kernel `gemm_batched_naive`.
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
//! emulated in f64 against the CPU `gemm_batched`).

use criterion::{BenchmarkId, Criterion, Throughput};
use cudarc::cublas::{result as blas, sys as blas_sys, CudaBlas};
use std::cell::RefCell;
use std::collections::BTreeMap;
use std::ffi::{c_int, c_longlong};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tapegrad_kernels::elementwise::Unary;
use tapegrad_kernels::gemm::Strides;
use tapegrad_kernels::gpu::cuda::CudaLauncher;
use tapegrad_kernels::gpu::{self, GpuBuffer, GpuContext};
use tapegrad_kernels::update::AdamStep;

// ---------------------------------------------------------------------------------
// Shapes
// ---------------------------------------------------------------------------------

/// `C (m×n) = beta·C + op(A) (m×k) · op(B) (k×n)`, `batch` times; `ta`: A is stored
/// transposed (k×m row-major), `tb`: B is stored transposed (n×k row-major, a linear
/// layer's `[out, in]` weight).
#[derive(Clone, Copy, Debug)]
struct Shape {
    name: &'static str,
    batch: usize,
    m: usize,
    n: usize,
    k: usize,
    ta: bool,
    tb: bool,
    beta: f32,
}

const fn shape(name: &'static str, m: usize, n: usize, k: usize, ta: bool, tb: bool) -> Shape {
    Shape { name, batch: 1, m, n, k, ta, tb, beta: 0.0 }
}

/// MiniLM (all-MiniLM-L6-v2): batch 16 × 256 tokens = 4096 rows, hidden 384, FFN 1536;
/// `linear` computes x·Wᵀ (B transposed), dx = g·W (plain), dW = gᵀ·x (A transposed).
/// BiLSTM (the tutorial's): batch 64, about 256 steps, embedding 50, hidden 256, 4H = 1024.
const SHAPES: &[Shape] = &[
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
    fn flops(&self) -> u64 {
        (2 * self.batch * self.m * self.n * self.k) as u64
    }
    fn lens(&self) -> (usize, usize, usize) {
        let Shape { batch, m, n, k, .. } = *self;
        (batch * m * k, batch * k * n, batch * m * n)
    }
    /// Our strides for A, B and C.
    fn strides(&self) -> (Strides, Strides, Strides) {
        let Shape { m, n, k, ta, tb, .. } = *self;
        let sa = if ta { Strides::transposed(k, m) } else { Strides::row_major(m, k) };
        let sb = if tb { Strides::transposed(n, k) } else { Strides::row_major(k, n) };
        (sa, sb, Strides::row_major(m, n))
    }
    /// The same layout on small sizes (the simulated GPU's self-check): odd sizes near
    /// the tile edges, at most 3 batch items.
    fn shrunk(&self) -> Shape {
        let s = |d: usize| if d <= 70 { d } else { 61 + d % 9 };
        Shape { batch: self.batch.min(3), m: s(self.m), n: s(self.n), k: s(self.k), ..*self }
    }
}

// ---------------------------------------------------------------------------------
// The row-major product as a cuBLAS (column-major) call
// ---------------------------------------------------------------------------------

/// The arguments of `cublasSgemmStridedBatched` (cuBLAS's names: its A, B, C).
#[derive(Clone, Copy, Debug)]
struct BlasArgs {
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
fn blas_args(sh: &Shape) -> BlasArgs {
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
fn blas_operands<'a, T: ?Sized>(a: &'a T, b: &'a T) -> (&'a T, &'a T) {
    (b, a)
}

/// cuBLAS's strided batched SGEMM semantics, on the host in f64 (the mapping's check).
fn blas_emulate(p: &BlasArgs, a: &[f32], b: &[f32], beta: f32, c: &mut [f32]) {
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
// The device, ours and the reference
// ---------------------------------------------------------------------------------

type Buf = GpuBuffer<f32>;

/// What ours is checked and timed against.
enum Reference {
    Cublas(CudaBlas),
    /// Our one-thread-per-element kernel (no libcublas, or the simulated GPU).
    Naive,
}

impl Reference {
    fn name(&self) -> &'static str {
        match self {
            Reference::Cublas(_) => "cublas",
            Reference::Naive => "naive",
        }
    }

    /// cuBLAS on the stream our launcher issues on (see [`CudaLauncher::stream`]).
    fn cublas(launcher: &CudaLauncher) -> Result<Reference, String> {
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

    fn gemm(&self, sh: &Shape, a: &Buf, b: &Buf, beta: f32, c: &mut Buf) -> Result<(), String> {
        let (la, lb, lc) = sh.lens();
        assert!(a.len() >= la && b.len() >= lb && c.len() >= lc, "{}: operands too short", sh.name);
        match self {
            Reference::Naive => {
                let (sa, sb, sc) = sh.strides();
                gpu::gemm::gemm_batched_naive(sh.batch, sh.m, sh.n, sh.k, a, sa, b, sb, beta, c, sc)
                    .map_err(|e| e.to_string())
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

fn ours(sh: &Shape, a: &Buf, b: &Buf, beta: f32, c: &mut Buf) -> Result<(), String> {
    let (sa, sb, sc) = sh.strides();
    gpu::gemm::gemm_batched(sh.batch, sh.m, sh.n, sh.k, a, sa, b, sb, beta, c, sc).map_err(|e| e.to_string())
}

/// Uniform in [-0.5, 0.5) (xorshift32).
fn fill(len: usize, seed: u32) -> Vec<f32> {
    let mut s = seed.max(1);
    (0..len)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 17;
            s ^= s << 5;
            (s as f32 / u32::MAX as f32) - 0.5
        })
        .collect()
}

fn abs(v: &[f32]) -> Vec<f32> {
    v.iter().map(|x| x.abs()).collect()
}

// ---------------------------------------------------------------------------------
// Validate, then time
// ---------------------------------------------------------------------------------

/// A shape's operands on the device, left as the validation used them.
struct Operands {
    a: Buf,
    b: Buf,
    c: Buf,
}

struct Agreement {
    /// max |ours − ref| / max |ref|
    max_rel: f64,
    /// max over C of |ours − ref| / (ε·bound): within k + 2 passes
    worst_in_eps: f64,
}

/// Ours against the reference on one shape, element by element, within the f32 bound.
fn validate(ctx: &Arc<GpuContext>, r: &Reference, sh: &Shape) -> Result<(Operands, Agreement), String> {
    validate_product(ctx, r, sh, ours)
}

/// [`validate`] with the product under test as an argument (the self-check passes a
/// wrong one, which must fail).
fn validate_product(
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

/// Seconds per iteration of each sample, per benchmark ("group/id").
type Times = RefCell<BTreeMap<String, Vec<f64>>>;

fn median(v: &[f64]) -> Option<f64> {
    let mut v = v.to_vec();
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

struct GemmRow {
    shape: Shape,
    result: Result<Agreement, String>,
}

fn gemm_benches(c: &mut Criterion, ctx: &Arc<GpuContext>, r: &Reference, times: &Times) -> Vec<GemmRow> {
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

// ---------------------------------------------------------------------------------
// Bandwidth
// ---------------------------------------------------------------------------------

/// Four f32 buffers of `len` elements, each `pattern[i % chunk]` for its own pattern
/// (uploaded once, tiled on the device); the fourth non-negative (Adam's v).
struct Streams {
    chunk: usize,
    patterns: [Vec<f32>; 4],
    bufs: [Buf; 4],
}

fn streams(ctx: &Arc<GpuContext>, len: usize, chunk: usize) -> Result<Streams, String> {
    let e = |e: gpu::GpuError| e.to_string();
    let chunk = chunk.min(len);
    let patterns = [fill(chunk, 11), fill(chunk, 12), fill(chunk, 13).iter().map(|x| x * 0.1).collect(), {
        fill(chunk, 14).iter().map(|x| x * x * 0.01).collect()
    }];
    let mut bufs = Vec::new();
    for p in &patterns {
        let src = Buf::from_host(ctx, p).map_err(e)?;
        let mut buf = Buf::uninit(ctx, len).map_err(e)?;
        let mut at = 0;
        while at < len {
            let n = chunk.min(len - at);
            buf.copy_from(at, &src, 0, n).map_err(e)?;
            at += n;
        }
        bufs.push(buf);
    }
    let bufs: [Buf; 4] = bufs.try_into().map_err(|_| "four buffers".to_string())?;
    Ok(Streams { chunk, patterns, bufs })
}

impl Streams {
    /// The pattern's values over the last `chunk` elements of a buffer of `len`.
    fn tail(&self, which: usize, len: usize) -> Vec<f32> {
        let start = len - self.chunk;
        (start..len).map(|i| self.patterns[which][i % self.chunk]).collect()
    }
}

/// The last `chunk` elements of `buf`, on the host.
fn tail_of(buf: &Buf, chunk: usize) -> Result<Vec<f32>, String> {
    let e = |e: gpu::GpuError| e.to_string();
    let mut t = Buf::uninit(buf.context(), chunk).map_err(e)?;
    t.copy_from(0, buf, buf.len() - chunk, chunk).map_err(e)?;
    t.to_host().map_err(e)
}

const ADAM: AdamStep =
    AdamStep { lr: 1e-3, beta1: 0.9, beta2: 0.999, eps: 1e-8, weight_decay: 0.01, decoupled: true, step: 1 };

/// Copy, negate and one Adam step on buffers of `len`, each checked on the last chunk
/// (copy and negation exactly, Adam against the CPU's `update::adam_update`).
fn validate_streams(s: &mut Streams, len: usize) -> Result<(), String> {
    let e = |e: gpu::GpuError| e.to_string();
    let chunk = s.chunk;
    let [want, mut theta, mut mh, mut vh] = [0, 0, 2, 3].map(|w| s.tail(w, len));
    let [x, y, m, v] = &mut s.bufs;
    y.copy_from(0, x, 0, len).map_err(e)?;
    let got = tail_of(y, chunk)?;
    if got != want {
        return Err(format!("copy_from of {len} elements: the last {chunk} differ"));
    }
    gpu::elementwise::unary_forward(Unary::Neg, x, y).map_err(e)?;
    let got = tail_of(y, chunk)?;
    if got.iter().zip(&want).any(|(g, w)| *g != -w) {
        return Err(format!("unary_forward(Neg) of {len} elements: the last {chunk} are not −x"));
    }
    // Adam: θ = x, g = the copy of x just negated (y), moments m and v
    let grad = tail_of(y, chunk)?;
    gpu::update::adam_update(x, y, m, v, ADAM).map_err(e)?;
    tapegrad_kernels::update::adam_update(&mut theta, &grad, &mut mh, &mut vh, ADAM);
    for (what, buf, want) in [("θ", &*x, &theta), ("m", &*m, &mh), ("v", &*v, &vh)] {
        let got = tail_of(buf, chunk)?;
        if let Some((i, (g, w))) =
            got.iter().zip(want).enumerate().find(|(_, (g, w))| (*g - *w).abs() > 1e-6 * (1.0 + w.abs()))
        {
            return Err(format!(
                "adam_update of {len} elements: {what}[{}] is {g}, the CPU's {w}",
                len - chunk + i
            ));
        }
    }
    Ok(())
}

const MIB: usize = 1 << 20;
/// Bytes per buffer.
const SIZES: &[usize] = &[64 * MIB, 256 * MIB, 1024 * MIB];

struct BandwidthRow {
    mib: usize,
    result: Result<(), String>,
}

fn bandwidth_benches(c: &mut Criterion, ctx: &Arc<GpuContext>, times: &Times) -> Vec<BandwidthRow> {
    let mut rows = Vec::new();
    for &bytes in SIZES {
        let (len, mib) = (bytes / 4, bytes / MIB);
        let checked = streams(ctx, len, 4 * MIB).and_then(|mut s| validate_streams(&mut s, len).map(|()| s));
        let mut s = match checked {
            Ok(s) => s,
            Err(e) => {
                eprintln!("VALIDATION FAILED, not timed: {e}");
                rows.push(BandwidthRow { mib, result: Err(e) });
                continue;
            }
        };
        let [x, y, m, v] = &mut s.bufs;
        let group = format!("bandwidth/{mib}MiB");
        let mut g = c.benchmark_group(&group);
        g.sample_size(20).warm_up_time(Duration::from_millis(500)).measurement_time(Duration::from_secs(2));
        // copy and negation read x and write y; Adam reads θ, g, m, v and writes θ, m, v
        g.throughput(Throughput::BytesDecimal(2 * bytes as u64));
        let key = format!("{group}/copy");
        g.bench_function("copy", |bch| {
            bch.iter_custom(|iters| {
                timed(ctx, times, &key, iters, || y.copy_from(0, x, 0, len).expect("copy_from"))
            })
        });
        let key = format!("{group}/neg");
        g.bench_function("neg", |bch| {
            bch.iter_custom(|iters| {
                timed(ctx, times, &key, iters, || {
                    gpu::elementwise::unary_forward(Unary::Neg, x, y).expect("unary_forward")
                })
            })
        });
        g.throughput(Throughput::BytesDecimal(7 * bytes as u64));
        let key = format!("{group}/adam");
        g.bench_function("adam", |bch| {
            bch.iter_custom(|iters| {
                timed(ctx, times, &key, iters, || {
                    gpu::update::adam_update(x, y, m, v, ADAM).expect("adam_update")
                })
            })
        });
        g.finish();
        rows.push(BandwidthRow { mib, result: Ok(()) });
        drop(s);
        ctx.empty_cache().expect("empty the allocator's cache");
    }
    rows
}

// ---------------------------------------------------------------------------------
// Summary
// ---------------------------------------------------------------------------------

fn summary(r: &Reference, gemm: &[GemmRow], bw: &[BandwidthRow], times: &Times) -> bool {
    let times = times.borrow();
    let med = |key: String| times.get(&key).and_then(|v| median(v));
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
    println!();
    println!("Bandwidth (GB/s = 1e9 bytes read + written per second; fraction of the copy's):");
    println!(
        "{:<10} {:>10} {:>10} {:>10} {:>8} {:>8}",
        "buffers", "copy", "neg", "adam", "neg/copy", "adam/copy"
    );
    for row in bw {
        if row.result.is_err() {
            ok = false;
            println!("{:<10} VALIDATION FAILED (see above), not timed", format!("{} MiB", row.mib));
            continue;
        }
        let bytes = (row.mib * MIB) as f64;
        let gbs =
            |k: &str, per: f64| med(format!("bandwidth/{}MiB/{k}", row.mib)).map(|t| per * bytes / t / 1e9);
        let (cp, ng, ad) = (gbs("copy", 2.0), gbs("neg", 2.0), gbs("adam", 7.0));
        let f = |v: Option<f64>, p: usize| v.map_or("-".into(), |v| format!("{v:.p$}"));
        let frac = |v: Option<f64>| f(v.zip(cp).map(|(v, c)| v / c), 3);
        println!(
            "{:<10} {:>10} {:>10} {:>10} {:>8} {:>8}",
            format!("{} MiB", row.mib),
            f(cp, 1),
            f(ng, 1),
            f(ad, 1),
            frac(ng),
            frac(ad)
        );
    }
    ok
}

// ---------------------------------------------------------------------------------
// The self-check without a GPU
// ---------------------------------------------------------------------------------

/// The bench's logic on the simulated GPU and the host (`TAPEGRAD_GPU_BENCH_SIM=1`).
fn self_check() {
    // 1. The cuBLAS argument mapping computes each shape's product (host, f64 sums).
    for sh in SHAPES.iter().map(Shape::shrunk) {
        let (la, lb, lc) = sh.lens();
        let (a, b, c0) = (fill(la, 1), fill(lb, 2), fill(lc, 3));
        let mut got = c0.clone();
        let (blas_a, blas_b) = blas_operands(&a[..], &b[..]);
        blas_emulate(&blas_args(&sh), blas_a, blas_b, sh.beta, &mut got);
        // the column-major Cᵀ (n×m, ld n) is the row-major C itself
        let f64s = |v: &[f32]| v.iter().map(|&x| x as f64).collect::<Vec<f64>>();
        let mut want = f64s(&c0);
        let (sa, sb, sc) = sh.strides();
        let (m, n, k) = (sh.m, sh.n, sh.k);
        let (a64, b64) = (f64s(&a), f64s(&b));
        tapegrad_kernels::gemm::gemm_batched(
            sh.batch,
            m,
            n,
            k,
            &a64,
            sa,
            &b64,
            sb,
            sh.beta as f64,
            &mut want,
            sc,
        );
        for (i, (g, w)) in got.iter().zip(&want).enumerate() {
            assert!(
                (*g as f64 - w).abs() <= 1e-6 * (1.0 + w.abs()),
                "{} {sh:?}: the cuBLAS mapping gives C[{i}] = {g}, the product is {w}",
                sh.name
            );
        }
    }
    eprintln!("self-check: the cuBLAS argument mapping computes all {} shapes' products", SHAPES.len());

    // 2. Validation, timing and the bandwidth checks on the simulated GPU.
    let ctx = gpu::sim_context();
    let r = Reference::Naive;
    let times = Times::default();
    let mut rows = Vec::new();
    for sh in SHAPES.iter().map(Shape::shrunk) {
        let (mut ops, agr) = validate(&ctx, &r, &sh).unwrap_or_else(|e| panic!("validation: {e}"));
        // a wrong product must fail it: ours with the last term of every sum left out
        let short = |sh: &Shape, a: &Buf, b: &Buf, beta: f32, c: &mut Buf| {
            let (sa, sb, sc) = sh.strides();
            gpu::gemm::gemm_batched(sh.batch, sh.m, sh.n, sh.k - 1, a, sa, b, sb, beta, c, sc)
                .map_err(|e| e.to_string())
        };
        assert!(validate_product(&ctx, &r, &sh, short).is_err(), "{}: a wrong product passed", sh.name);
        let Operands { a, b, c } = &mut ops;
        let key = |who: &str| format!("gemm/{}/{who}", sh.name);
        timed(&ctx, &times, &key("tapegrad"), 2, || ours(&sh, a, b, sh.beta, c).unwrap());
        timed(&ctx, &times, &key(r.name()), 2, || r.gemm(&sh, a, b, sh.beta, c).unwrap());
        eprintln!(
            "self-check: {:<22} {}×{}×{}×{} ta {} tb {}: ours = naive, max rel err {:.2e}, worst {:.2} ε·bound",
            sh.name, sh.batch, sh.m, sh.n, sh.k, sh.ta, sh.tb, agr.max_rel, agr.worst_in_eps
        );
        rows.push(GemmRow { shape: sh, result: Ok(agr) });
    }
    assert_eq!(times.borrow().len(), 2 * SHAPES.len(), "every shape was timed, ours and the reference");
    eprintln!("self-check: the summary, from the simulated GPU's times (meaningless as speeds):");
    assert!(summary(&r, &rows, &[], &times), "every shape passed");
    for (len, chunk) in [(5000, 1024), (4096, 4096), (300, 1024)] {
        let mut s = streams(&ctx, len, chunk).unwrap();
        validate_streams(&mut s, len).unwrap_or_else(|e| panic!("bandwidth validation: {e}"));
    }
    eprintln!("self-check: copy, negation and Adam agree with the host on the buffers' tails");
    // and the checks catch a wrong result: a stream whose copy was not made
    let mut s = streams(&ctx, 5000, 1024).unwrap();
    s.patterns[0][7] += 1.0;
    assert!(validate_streams(&mut s, 5000).is_err(), "a wrong tail must fail the bandwidth check");
    eprintln!("self-check: passed (no GPU was used)");
}

// ---------------------------------------------------------------------------------

fn main() {
    if std::env::var_os("TAPEGRAD_GPU_BENCH_SIM").is_some_and(|v| v != "0") {
        self_check();
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
    let reference = match Reference::cublas(&launcher) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("no cuBLAS baseline ({e}): timing against our naive kernel instead");
            Reference::Naive
        }
    };
    let ctx = GpuContext::new(Box::new(launcher));
    eprintln!("gpu benches on {}", ctx.name());
    let times = Times::default();
    let gemm = gemm_benches(&mut c, &ctx, &reference, &times);
    let bw = bandwidth_benches(&mut c, &ctx, &times);
    c.final_summary();
    let ok = summary(&reference, &gemm, &bw, &times);
    drop(reference); // the cuBLAS handle before the context's stream
    if !ok {
        std::process::exit(1);
    }
}
