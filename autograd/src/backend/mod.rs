//! The device seam: ONE trait, [`Backend`], with a method per kernel family.
//!
//! ```text
//!   ops/ (shapes, what to save, the tape)       Tensor<T> ── Rc<Storage<T>>
//!   Storage<T> = Cpu(CpuStorage) | Cuda(CudaStorage)   dispatches once per op (dispatch.rs)
//!   impl Backend for CpuStorage   (cpu.rs)   → kernels::<family>::*        (slices)
//!   impl Backend for CudaStorage  (cuda.rs)  → kernels::gpu::<family>::*   (GpuBuffers)
//! ```
//!
//! Every method is infallible. On the CPU nothing can fail; on a GPU a failure (no
//! kernel yet, out of memory, a failed launch) is recorded as the device context's
//! sticky error ([`tapegrad_kernels::gpu::GpuContext::poison`]) and the op returns a
//! "poisoned" buffer of the right length that holds no memory; every later op on that
//! device is skipped, and the first `try_to_vec`/`try_item` (or `to_vec`/`item`, which
//! panic with it) reports the error. This is CUDA's own error model, one level up.
//!
//! Operands are `Self`: the dispatcher has already checked that they live on one
//! device (mixing devices panics with the op and both devices named).

mod cpu;
mod cuda;
mod dispatch;

pub use cuda::CudaStorage;
pub use dispatch::Mask;

use tapegrad_kernels::attention::{AttentionShape, DropoutMask};
use tapegrad_kernels::broadcast::Binary;
use tapegrad_kernels::elementwise::Unary;
use tapegrad_kernels::gemm::Strides;
use tapegrad_kernels::gpu::GpuError;
use tapegrad_kernels::update::AdamStep;
pub use tapegrad_kernels::update::SgdStep;
use tapegrad_kernels::Float;

use crate::storage::Device;

/// One (batched, strided) product `C = beta·C + A·B` (see `kernels::gemm`), with each
/// operand starting `*_offset` elements into its buffer.
#[derive(Clone, Copy, Debug)]
pub struct Gemm {
    pub batch: usize,
    pub m: usize,
    pub n: usize,
    pub k: usize,
    pub sa: Strides,
    pub sb: Strides,
    pub sc: Strides,
    pub a_offset: usize,
    pub b_offset: usize,
    pub c_offset: usize,
    /// 0 overwrites C, 1 accumulates into it.
    pub beta: f64,
    /// Round A and B to bf16 and accumulate in f32 (`kernels::bf16gemm`; f32 on the CPU only).
    pub bf16: bool,
}

impl Gemm {
    /// A product at the start of every buffer.
    pub fn new(
        batch: usize,
        (m, n, k): (usize, usize, usize),
        sa: Strides,
        sb: Strides,
        sc: Strides,
    ) -> Self {
        Gemm { batch, m, n, k, sa, sb, sc, a_offset: 0, b_offset: 0, c_offset: 0, beta: 0.0, bf16: false }
    }
    pub fn beta(self, beta: f64) -> Self {
        Gemm { beta, ..self }
    }
    /// The product in bf16 (operands rounded, f32 sums) when `bf16` is set.
    pub fn bf16(self, bf16: bool) -> Self {
        Gemm { bf16, ..self }
    }
}

/// One attention call as [`Backend::attention`] and its backward take it: the shape, the
/// dropout on P, and the arithmetic of its products.
#[derive(Clone, Copy, Debug)]
pub struct Attention {
    pub shape: AttentionShape,
    pub dropout: Option<DropoutMask>,
    /// Round each product's operands to bf16 and sum in f32 (`kernels::attention`'s `_bf16`
    /// kernels; f32 on the CPU only).
    pub bf16: bool,
}

/// A layer norm over rows of n: the affine weight and bias (optional) and eps, as
/// `Backend::layer_norm`, its backward and `Backend::residual_layer_norm` take it.
pub struct NormOf<'a, S> {
    pub rows: usize,
    pub n: usize,
    pub w: Option<&'a S>,
    pub b: Option<&'a S>,
    pub eps: f64,
}

// by hand: a derive would ask S: Copy, and only references to S are held
impl<S> Clone for NormOf<'_, S> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<S> Copy for NormOf<'_, S> {}

/// What `Backend::residual_layer_norm` returns: y and s `[rows, n]`, the dropout mask
/// (exactly when there is dropout) and the mean and rstd of each row of s.
pub struct ResidualNorm<S, M> {
    pub y: S,
    pub s: S,
    pub keep: Option<M>,
    pub mean: S,
    pub rstd: S,
}

/// A `[outer, n, inner]` view of a tensor around one dim, and a slice
/// `start..start + len` of that dim (narrow; softmax and max use `start = 0, len = n`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Slab {
    pub outer: usize,
    pub n: usize,
    pub inner: usize,
    pub start: usize,
    pub len: usize,
}

impl Slab {
    /// The whole dim.
    pub fn whole(outer: usize, n: usize, inner: usize) -> Self {
        Slab { outer, n, inner, start: 0, len: n }
    }
}

/// Class targets of a cross-entropy: `n` rows of `c` logits.
#[derive(Clone, Copy, Debug)]
pub struct Targets<'a> {
    pub n: usize,
    pub c: usize,
    pub targets: &'a [usize],
    pub ignore_index: Option<usize>,
    /// Rows not ignored: the N of the mean (known on the host from the targets).
    pub count: usize,
}

/// What a packed LSTM layer keeps per direction for its backward: the activated gates
/// `[N, 4H]`, c and tanh(c) `[N, H]` (the h rows are the op's output).
pub struct LstmSaved<S> {
    pub act: S,
    pub c: S,
    pub tanh_c: S,
}

/// What a packed LSTM layer's backward reads: per direction its recurrent weight and what
/// the forward saved, the forward's output, and the output gradients (None: zero).
pub struct LstmGrads<'a, S> {
    pub w_hh: &'a [&'a S],
    pub saved: &'a [LstmSaved<&'a S>],
    /// `[N, D·H]`.
    pub out: &'a S,
    /// `[N, D·H]`, `[D·B, H]`.
    pub d_out: Option<&'a S>,
    pub d_c_n: Option<&'a S>,
}

/// The packed LSTM layer's geometry: `batch_sizes` per step, hidden size, and each
/// direction's time order.
#[derive(Clone, Debug)]
pub struct LstmLayer {
    pub batch_sizes: Vec<usize>,
    pub hidden: usize,
    pub reverse: Vec<bool>,
}

impl LstmLayer {
    /// `(N = Σ batch_sizes, B = batch_sizes[0])`.
    pub fn n_b(&self) -> (usize, usize) {
        (self.batch_sizes.iter().sum(), self.batch_sizes.first().copied().unwrap_or(0))
    }
}

/// A buffer of `T` on one device and every kernel family on it (module doc).
/// Shapes are checked by the ops before they call in; methods get plain sizes.
pub trait Backend<T: Float>: Sized {
    /// Dropout's keep mask (one byte per element).
    type Mask;
    /// A buffer of f64 on the same device (the clipping norm accumulates in f64).
    type F64;

    fn device(&self) -> Device;
    fn len(&self) -> usize;
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// The numbers, copied to the host; on a GPU, also the device's sticky error.
    fn to_host(&self) -> Result<Vec<T>, GpuError>;
    /// `host` copied to this buffer's device.
    fn uploaded(&self, host: &[T]) -> Self;
    /// A copy on the same device.
    fn duplicate(&self) -> Self;
    /// `n` copies of `v` on the same device.
    fn full_like(&self, n: usize, v: T) -> Self;
    /// `n` elements on the same device whose values are unspecified (left over from
    /// earlier buffers): for an output the caller overwrites completely, such as a
    /// product with `beta = 0`.
    fn uninit_like(&self, n: usize) -> Self;

    // elementwise and broadcasting
    fn unary(&self, op: Unary) -> Self;
    /// dx = g·f'(x), self = x, `y` = f(x).
    fn unary_backward(&self, op: Unary, y: &Self, g: &Self) -> Self;
    fn binary(
        &self,
        op: Binary,
        shape: &[usize],
        rhs: &Self,
        rhs_shape: &[usize],
        out_shape: &[usize],
    ) -> Self;
    fn sum_to(&self, shape: &[usize], target: &[usize]) -> Self;
    fn expand(&self, shape: &[usize], out_shape: &[usize]) -> Self;
    /// self += x (gradient accumulation).
    fn add_assign(&mut self, x: &Self);

    // products and copies
    /// c = beta·c + bias + self·b as described by `p`, `bias` (`p.n` values) added to every
    /// row of every item of c when given.
    fn gemm(&self, b: &Self, bias: Option<&Self>, c: &mut Self, p: Gemm);
    fn permute(&self, shape: &[usize], perm: &[usize]) -> Self;
    fn narrow(&self, s: Slab) -> Self;
    /// The backward of narrow: self[:, start..start+len, :] += g.
    fn narrow_backward(&mut self, g: &Self, s: Slab);
    fn concat(parts: &[&Self], sizes: &[usize], outer: usize, inner: usize) -> Self;

    // reductions and rows
    /// Max over the middle dim: values and (host) arg-max indices.
    fn max_dim(&self, s: Slab) -> (Self, Vec<usize>);
    /// self = g `[outer, inner]` → dx `[outer, n, inner]`.
    fn max_dim_backward(&self, s: Slab, argmax: &[usize]) -> Self;
    fn softmax(&self, s: Slab, log: bool) -> Self;
    /// self = y.
    fn softmax_backward(&self, g: &Self, s: Slab, log: bool) -> Self;
    /// self = x `[ln.rows, ln.n]`: (y, mean, rstd).
    fn layer_norm(&self, ln: NormOf<'_, Self>) -> (Self, Self, Self);
    /// self = x `[ln.rows, ln.n]`, `saved` the forward's (mean, rstd); (dx, dw, db), each
    /// computed when `want` asks. The backward reads `ln`'s weight, not its bias or eps.
    fn layer_norm_backward(
        &self,
        g: &Self,
        ln: NormOf<'_, Self>,
        saved: (&Self, &Self),
        want: [bool; 3],
    ) -> [Option<Self>; 3];

    // losses: the mean stays on the device (one element)
    fn cross_entropy(&self, t: Targets) -> Self;
    /// self = logits, g = dL/dloss (one element).
    fn cross_entropy_backward(&self, g: &Self, t: Targets) -> Self;
    fn bce_with_logits(&self, targets: &Self) -> Self;
    /// self = logits; (dx, dt) when asked.
    fn bce_with_logits_backward(&self, targets: &Self, g: &Self, want: [bool; 2]) -> [Option<Self>; 2];

    fn dropout(&self, p: f64, seed: u64) -> (Self, Self::Mask);
    /// self = g.
    fn dropout_backward(&self, keep: &Self::Mask, p: f64) -> Self;
    /// self = x `[rows, n]`: s = dropout(x) + residual, with the mask `dropout(p, seed)`
    /// draws (`dropout` None: s = x + residual), and y = layer_norm(s). By default the
    /// three kernels in turn; the CPU fuses them into one pass over each row.
    fn residual_layer_norm(
        &self,
        residual: &Self,
        dropout: Option<(f64, u64)>,
        ln: NormOf<'_, Self>,
    ) -> ResidualNorm<Self, Self::Mask> {
        let shape = [ln.rows, ln.n];
        let (dropped, keep) = match dropout {
            Some((p, seed)) => {
                let (d, keep) = self.dropout(p, seed);
                (Some(d), Some(keep))
            }
            None => (None, None),
        };
        let s = dropped.as_ref().unwrap_or(self).binary(Binary::Add, &shape, residual, &shape, &shape);
        let (y, mean, rstd) = s.layer_norm(ln);
        ResidualNorm { y, s, keep, mean, rstd }
    }

    // gathers and scatter-adds (host indices)
    fn index_select(&self, s: Slab, idx: &[usize]) -> Self;
    /// self = g `[outer, idx.len(), inner]` → dx `[outer, s.n, inner]`, with row
    /// `zero_row` of the middle dim zeroed (an embedding's padding row).
    fn index_add(&self, s: Slab, idx: &[usize], zero_row: Option<usize>) -> Self;
    /// `m` = index length along the dim.
    fn gather(&self, s: Slab, idx: &[usize], m: usize) -> Self;
    fn scatter_add(&self, s: Slab, idx: &[usize], m: usize) -> Self;
    fn masked_fill(&self, mask: &Self, value: T) -> Self;
    fn where_(cond: &Self, a: &Self, b: &Self) -> Self;
    /// (g where cond, g where ¬cond).
    fn where_backward(cond: &Self, g: &Self) -> (Self, Self);

    // fused layers
    /// (o, P when `keep_probs`).
    fn attention(
        &self,
        k: &Self,
        v: &Self,
        mask: Option<&Self>,
        a: Attention,
        keep_probs: bool,
    ) -> (Self, Option<Self>);
    /// self = q; (dq, dk, dv).
    fn attention_backward(&self, k: &Self, v: &Self, probs: &Self, g: &Self, a: Attention) -> [Self; 3];
    /// self = gates `[B, 4H]` → ([h | c] `[B, 2H]`, activated gates, tanh c).
    fn lstm_cell(&self, c_prev: &Self, hidden: usize) -> (Self, Self, Self);
    /// self = activated gates; g = dL/d[h | c] → (dgates, dc_prev).
    fn lstm_cell_backward(&self, c_prev: &Self, tanh_c: &Self, g: &Self, hidden: usize) -> (Self, Self);
    /// `dirs[d] = (xproj [N, 4H], w_hh [4H, H])` → (out `[N, D·H]`: every step's h with the
    /// directions side by side, the next layer's input; c_n `[D·B, H]`: each direction's
    /// final cell states; saved).
    fn lstm_layer(dirs: &[(&Self, &Self)], l: &LstmLayer) -> (Self, Self, Vec<LstmSaved<Self>>);
    /// out = the forward's output (its h rows); `d_out` `[N, D·H]` and `d_c_n` `[D·B, H]`
    /// the gradients (None: zero) → per direction (dxproj, dw_hh if asked).
    fn lstm_layer_backward(
        g: LstmGrads<'_, Self>,
        l: &LstmLayer,
        want_dw: &[bool],
    ) -> Vec<(Self, Option<Self>)>;

    // optimizers (in place on the parameter, self = θ)
    fn adam_update(&mut self, g: &Self, m: &mut Self, v: &mut Self, s: AdamStep);
    fn sgd_update(&mut self, g: &Self, buf: Option<&mut Self>, s: SgdStep);
    /// The global L2 norm √(Σ_buffers Σᵢ gᵢ²) of `grads` (at least one), accumulated
    /// in f64 into a one-element buffer on their device.
    fn grad_norm(grads: &[&Self]) -> Self::F64;
    /// self ← self·coef when coef = max_norm/(total + 1e-6) < 1 (`total` from `grad_norm`).
    fn clip_scale(&mut self, total: &Self::F64, max_norm: f64);
    fn clip_by_value(&mut self, clip: f64);
}
