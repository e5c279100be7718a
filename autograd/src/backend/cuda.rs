//! The CUDA backend: every method calls the typed launcher of its family
//! (`tapegrad_kernels::gpu::<family>`) on `GpuBuffer`s. A family whose launcher does
//! not exist yet reports `GpuError::Unavailable("<op> has no CUDA kernel yet")` through
//! the context's sticky error (see the module doc of `backend`).

use super::{Backend, Gemm, LstmLayer, LstmSaved, SgdStep, Slab, Targets};
use crate::storage::Device;
use std::sync::Arc;
use tapegrad_kernels::attention::{AttentionShape, DropoutMask};
use tapegrad_kernels::broadcast::Binary;
use tapegrad_kernels::elementwise::Unary;
use tapegrad_kernels::gpu::{self, DeviceRepr, GpuBuffer, GpuContext, GpuError};
use tapegrad_kernels::update::AdamStep;
use tapegrad_kernels::Float;

/// `len` elements on a GPU. `buf` is `None` when the op that made it failed (the
/// context then holds the error, and nothing runs on it any more).
pub struct CudaStorage<T: DeviceRepr> {
    device: Device,
    ctx: Arc<GpuContext>,
    buf: Option<GpuBuffer<T>>,
    len: usize,
}

/// The error of a family whose GPU launcher is not written yet.
fn no_kernel(op: &str) -> GpuError {
    GpuError::Unavailable(format!("{op} has no CUDA kernel yet"))
}

impl<T: DeviceRepr> CudaStorage<T> {
    /// `host` copied to the device of `ctx`.
    pub fn from_host(ctx: &Arc<GpuContext>, device: Device, host: &[T]) -> Self {
        let out = Self::empty(ctx, device, host.len());
        out.produce(|b| b.write(host))
    }

    /// An uninitialised buffer (the kernel that fills it writes every element), or a
    /// poisoned one when the context already failed or the allocation does.
    fn empty(ctx: &Arc<GpuContext>, device: Device, len: usize) -> Self {
        let buf = match ctx.check() {
            Ok(()) => GpuBuffer::uninit(ctx, len).map_err(|e| ctx.poison(e)).ok(),
            Err(_) => None,
        };
        CudaStorage { device, ctx: ctx.clone(), buf, len }
    }

    /// A new buffer of `len` on the same device, filled by `f` (skipped when the
    /// device is poisoned; an error of `f` poisons it).
    fn make(&self, len: usize, f: impl FnOnce(&mut GpuBuffer<T>) -> Result<(), GpuError>) -> Self {
        Self::empty(&self.ctx, self.device, len).produce(f)
    }

    fn produce(mut self, f: impl FnOnce(&mut GpuBuffer<T>) -> Result<(), GpuError>) -> Self {
        if let Some(b) = self.buf.as_mut() {
            if let Err(e) = f(b) {
                self.ctx.poison(e);
                self.buf = None;
            }
        }
        self
    }

    /// A buffer of `len` for an op with no GPU kernel yet: poisons the device.
    fn missing(&self, op: &str, len: usize) -> Self {
        self.ctx.poison(no_kernel(op));
        CudaStorage { device: self.device, ctx: self.ctx.clone(), buf: None, len }
    }

    /// The device this buffer is on.
    pub fn on(&self) -> Device {
        self.device
    }

    pub fn context(&self) -> &Arc<GpuContext> {
        &self.ctx
    }

    /// The device buffer; `None` when poisoned.
    pub fn buffer(&self) -> Option<&GpuBuffer<T>> {
        self.buf.as_ref()
    }
}

/// The buffers of `xs`, or `None` if any is poisoned.
fn bufs<T: DeviceRepr, const N: usize>(xs: [&CudaStorage<T>; N]) -> Option<[&GpuBuffer<T>; N]> {
    let mut out = Vec::with_capacity(N);
    for x in xs {
        out.push(x.buf.as_ref()?);
    }
    out.try_into().ok()
}

impl<T: Float> Backend<T> for CudaStorage<T> {
    type Mask = CudaStorage<u8>;
    type F64 = CudaStorage<f64>;

    fn device(&self) -> Device {
        self.device
    }
    fn len(&self) -> usize {
        self.len
    }
    fn to_host(&self) -> Result<Vec<T>, GpuError> {
        self.ctx.check()?;
        let b = self.buf.as_ref().ok_or_else(|| GpuError::Unavailable("poisoned buffer".into()))?;
        let v = b.to_host()?;
        self.ctx.check()?;
        Ok(v)
    }
    fn uploaded(&self, host: &[T]) -> Self {
        CudaStorage::from_host(&self.ctx, self.device, host)
    }
    fn duplicate(&self) -> Self {
        match bufs([self]) {
            Some([x]) => self.make(self.len, |o| o.copy_from(0, x, 0, x.len())),
            None => self.missing("copy", self.len),
        }
    }
    fn full_like(&self, n: usize, v: T) -> Self {
        if v == T::ZERO {
            return self.make(n, |o| o.zero());
        }
        self.uploaded(&vec![v; n])
    }

    fn unary(&self, op: Unary) -> Self {
        match bufs([self]) {
            Some([x]) => self.make(self.len, |y| gpu::elementwise::unary_forward(op, x, y)),
            None => self.missing("unary", self.len),
        }
    }
    fn unary_backward(&self, op: Unary, y: &Self, g: &Self) -> Self {
        match bufs([self, y, g]) {
            Some([x, y, g]) => self.make(self.len, |dx| gpu::elementwise::unary_backward(op, x, y, g, dx)),
            None => self.missing("unary_backward", self.len),
        }
    }
    fn binary(&self, _: Binary, _: &[usize], _: &Self, _: &[usize], out_shape: &[usize]) -> Self {
        self.missing("binary (broadcast)", crate::numel(out_shape))
    }
    fn sum_to(&self, _: &[usize], target: &[usize]) -> Self {
        self.missing("sum_to", crate::numel(target))
    }
    fn expand(&self, _: &[usize], out_shape: &[usize]) -> Self {
        self.missing("expand", crate::numel(out_shape))
    }
    fn add_assign(&mut self, _: &Self) {
        self.ctx.poison(no_kernel("add_assign"));
    }

    fn gemm(&self, _: &Self, _: &mut Self, _: Gemm) {
        self.ctx.poison(no_kernel("gemm"));
    }
    fn permute(&self, _: &[usize], _: &[usize]) -> Self {
        self.missing("permute", self.len)
    }
    /// `outer` device-to-device copies of a run of `len·inner` elements.
    fn narrow(&self, s: Slab) -> Self {
        let run = s.len * s.inner;
        match bufs([self]) {
            Some([x]) => self.make(s.outer * run, |o| {
                (0..s.outer).try_for_each(|i| o.copy_from(i * run, x, (i * s.n + s.start) * s.inner, run))
            }),
            None => self.missing("narrow", s.outer * run),
        }
    }
    fn narrow_add(&mut self, _: &Self, _: Slab) {
        self.ctx.poison(no_kernel("narrow_add"));
    }
    /// Per outer index, one device-to-device copy per part.
    fn concat(parts: &[&Self], sizes: &[usize], outer: usize, inner: usize) -> Self {
        let total: usize = sizes.iter().sum();
        let first = parts[0];
        let srcs: Option<Vec<&GpuBuffer<T>>> = parts.iter().map(|p| p.buf.as_ref()).collect();
        let Some(srcs) = srcs else { return first.missing("concat", outer * total * inner) };
        first.make(outer * total * inner, |out| {
            let mut at = 0;
            for o in 0..outer {
                for (src, &n) in srcs.iter().zip(sizes) {
                    out.copy_from(at, src, o * n * inner, n * inner)?;
                    at += n * inner;
                }
            }
            Ok(())
        })
    }

    fn max_dim(&self, s: Slab) -> (Self, Vec<usize>) {
        (self.missing("max_dim", s.outer * s.inner), vec![0; s.outer * s.inner])
    }
    fn max_dim_backward(&self, s: Slab, _: &[usize]) -> Self {
        self.missing("max_dim backward", s.outer * s.n * s.inner)
    }
    fn softmax(&self, _: Slab, _: bool) -> Self {
        self.missing("softmax", self.len)
    }
    fn softmax_backward(&self, _: &Self, _: Slab, _: bool) -> Self {
        self.missing("softmax backward", self.len)
    }
    fn layer_norm(
        &self,
        rows: usize,
        _: usize,
        _: Option<&Self>,
        _: Option<&Self>,
        _: f64,
    ) -> (Self, Self, Self) {
        let m = |n| self.missing("layer_norm", n);
        (m(self.len), m(rows), m(rows))
    }
    fn layer_norm_backward(
        &self,
        _: &Self,
        _: usize,
        n: usize,
        _: Option<&Self>,
        _: (&Self, &Self),
        want: [bool; 3],
    ) -> [Option<Self>; 3] {
        let m = |w: bool, len| w.then(|| self.missing("layer_norm backward", len));
        [m(want[0], self.len), m(want[1], n), m(want[2], n)]
    }

    fn cross_entropy(&self, _: Targets) -> Self {
        self.missing("cross_entropy", 1)
    }
    fn cross_entropy_backward(&self, _: &Self, _: Targets) -> Self {
        self.missing("cross_entropy backward", self.len)
    }
    fn bce_with_logits(&self, _: &Self) -> Self {
        self.missing("bce_with_logits", 1)
    }
    fn bce_with_logits_backward(&self, _: &Self, _: &Self, want: [bool; 2]) -> [Option<Self>; 2] {
        want.map(|w| w.then(|| self.missing("bce_with_logits backward", self.len)))
    }

    fn dropout(&self, _: f64, _: u64) -> (Self, CudaStorage<u8>) {
        self.ctx.poison(no_kernel("dropout"));
        let mask = CudaStorage { device: self.device, ctx: self.ctx.clone(), buf: None, len: self.len };
        (self.missing("dropout", self.len), mask)
    }
    fn dropout_backward(&self, _: &CudaStorage<u8>, _: f64) -> Self {
        self.missing("dropout backward", self.len)
    }

    fn index_select(&self, s: Slab, idx: &[usize]) -> Self {
        self.missing("index_select", s.outer * idx.len() * s.inner)
    }
    fn index_add(&self, s: Slab, _: &[usize], _: Option<usize>) -> Self {
        self.missing("index_add", s.outer * s.n * s.inner)
    }
    fn gather(&self, _: Slab, idx: &[usize], _: usize) -> Self {
        self.missing("gather", idx.len())
    }
    fn scatter_add(&self, s: Slab, _: &[usize], _: usize) -> Self {
        self.missing("scatter_add", s.outer * s.n * s.inner)
    }
    fn masked_fill(&self, _: &Self, _: T) -> Self {
        self.missing("masked_fill", self.len)
    }
    fn where_select(cond: &Self, _: &Self, _: &Self) -> Self {
        cond.missing("where", cond.len)
    }
    fn where_backward(cond: &Self, _: &Self) -> (Self, Self) {
        (cond.missing("where backward", cond.len), cond.missing("where backward", cond.len))
    }

    fn attention(
        &self,
        _: &Self,
        _: &Self,
        _: Option<&Self>,
        s: AttentionShape,
        _: Option<DropoutMask>,
        keep_probs: bool,
    ) -> (Self, Option<Self>) {
        (self.missing("attention", s.numel()), keep_probs.then(|| self.missing("attention", s.probs_numel())))
    }
    fn attention_backward(
        &self,
        _: &Self,
        _: &Self,
        _: &Self,
        _: &Self,
        s: AttentionShape,
        _: Option<DropoutMask>,
    ) -> [Self; 3] {
        [(); 3].map(|_| self.missing("attention backward", s.numel()))
    }
    fn lstm_cell(&self, c_prev: &Self, _: usize) -> (Self, Self, Self) {
        let m = |n| self.missing("lstm_cell", n);
        (m(2 * c_prev.len), m(self.len), m(c_prev.len))
    }
    fn lstm_cell_backward(&self, c_prev: &Self, _: &Self, _: &Self, _: usize) -> (Self, Self) {
        let m = |n| self.missing("lstm_cell backward", n);
        (m(self.len), m(c_prev.len))
    }
    fn lstm_layer(dirs: &[(&Self, &Self)], l: &LstmLayer) -> (Self, Vec<LstmSaved<Self>>) {
        let first = dirs[0].0;
        let (n, _) = l.n_b();
        let m = |len| first.missing("lstm_layer", len);
        let saved = dirs.iter().map(|_| LstmSaved {
            act: m(n * 4 * l.hidden),
            c: m(n * l.hidden),
            tanh_c: m(n * l.hidden),
        });
        (m(dirs.len() * l.block_rows() * l.hidden), saved.collect())
    }
    fn lstm_layer_backward(
        w_hh: &[&Self],
        _: &[LstmSaved<&Self>],
        _: &Self,
        _: &Self,
        l: &LstmLayer,
        want_dw: &[bool],
    ) -> Vec<(Self, Option<Self>)> {
        let (n, _) = l.n_b();
        let hh = l.hidden;
        let m = |len| w_hh[0].missing("lstm_layer backward", len);
        want_dw.iter().map(|&w| (m(n * 4 * hh), w.then(|| m(4 * hh * hh)))).collect()
    }

    fn adam_update(&mut self, _: &Self, _: &mut Self, _: &mut Self, _: AdamStep) {
        self.ctx.poison(no_kernel("adam_update"));
    }
    fn sgd_update(&mut self, _: &Self, _: Option<&mut Self>, _: SgdStep) {
        self.ctx.poison(no_kernel("sgd_update"));
    }
    fn add_sum_squares(&self, _: &mut CudaStorage<f64>) {
        self.ctx.poison(no_kernel("sum_squares (clip norm)"));
    }
    fn clip_by_norm(&mut self, _: &CudaStorage<f64>, _: f64) {
        self.ctx.poison(no_kernel("clip_by_norm"));
    }
    fn clip_by_value(&mut self, _: f64) {
        self.ctx.poison(no_kernel("clip_by_value"));
    }
}

impl<T: DeviceRepr> CudaStorage<T> {
    /// A buffer of `len` on the same device as `other`, of another element type
    /// (dropout masks, the f64 clipping accumulator): zeros.
    pub fn zeros_on<U: DeviceRepr>(other: &CudaStorage<U>, len: usize) -> Self {
        Self::empty(&other.ctx, other.device, len).produce(|b| b.zero())
    }
}
