//! The CUDA backend: every method calls the typed launcher of its family
//! (`tapegrad_kernels::gpu::<family>`) on `GpuBuffer`s, with the same arguments as the
//! CPU kernel that `cpu.rs` calls. The launchers run on a real GPU or on the simulated
//! one (the PTX interpreter): which is decided by the device's context, not here.
//!
//! Every method follows one pattern, [`CudaStorage::attempt`]: skip if the device
//! already failed, run the launches, and on an error record it as the context's sticky
//! error (see the module doc of `backend`) and return buffers that hold no memory.
//! Host data an op needs on the device (indices, the mean's N) is uploaded per call.

use super::{Attention, Backend, Gemm, LstmGrads, LstmLayer, LstmSaved, NormOf, SgdStep, Slab, Targets};
use crate::storage::Device;
use std::sync::Arc;
use tapegrad_kernels::attention::Qkv;
use tapegrad_kernels::broadcast::Binary;
use tapegrad_kernels::elementwise::Unary;
use tapegrad_kernels::gpu::gemm::{GpuMat, GpuMatMut};
use tapegrad_kernels::gpu::layernorm::{LayerNormGrads, LayerNormIn, LayerNormStats};
use tapegrad_kernels::gpu::lstm::{BackwardDir, CellBackwardIn, CellGrads, ForwardDir};
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

type Res<R> = Result<R, GpuError>;

impl<T: DeviceRepr> CudaStorage<T> {
    /// `host` copied to the device of `ctx`.
    pub fn from_host(ctx: &Arc<GpuContext>, device: Device, host: &[T]) -> Self {
        let probe = CudaStorage { device, ctx: ctx.clone(), buf: None, len: host.len() };
        let buf = probe.attempt(|| GpuBuffer::from_host(ctx, host));
        CudaStorage { buf, ..probe }
    }

    /// A buffer of `len` on the same device as `other`, of another element type
    /// (dropout masks, the f64 clipping norm): zeros.
    pub fn zeros_on<U: DeviceRepr>(other: &CudaStorage<U>, len: usize) -> Self {
        let buf = other.attempt(|| GpuBuffer::zeros(&other.ctx, len));
        CudaStorage { device: other.device, ctx: other.ctx.clone(), buf, len }
    }

    /// Runs `f` unless the device already failed; an error of `f` becomes the
    /// device's sticky error. `None` in both cases.
    fn attempt<R>(&self, f: impl FnOnce() -> Res<R>) -> Option<R> {
        self.ctx.check().ok()?;
        f().map_err(|e| self.ctx.poison(e)).ok()
    }

    /// A result of `len` elements on this device (no memory when `buf` is `None`).
    fn wrap<U: DeviceRepr>(&self, buf: Option<GpuBuffer<U>>, len: usize) -> CudaStorage<U> {
        CudaStorage { device: self.device, ctx: self.ctx.clone(), buf, len }
    }

    /// The device buffer, or an error for a buffer whose op failed (unreachable in
    /// practice: `attempt` stops first, since that failure poisoned the device).
    fn get(&self) -> Res<&GpuBuffer<T>> {
        self.buf
            .as_ref()
            .ok_or_else(|| GpuError::Driver { op: "read".into(), message: "a buffer whose op failed".into() })
    }

    /// Runs the in-place update `f` on this buffer (see `attempt`).
    fn in_place(&mut self, f: impl FnOnce(&mut GpuBuffer<T>) -> Res<()>) {
        if self.ctx.check().is_err() {
            return;
        }
        if let Some(b) = self.buf.as_mut() {
            if let Err(e) = f(b) {
                self.ctx.poison(e);
            }
        }
    }

    fn uninit(&self, len: usize) -> Res<GpuBuffer<T>> {
        GpuBuffer::uninit(&self.ctx, len)
    }
    fn zeros(&self, len: usize) -> Res<GpuBuffer<T>> {
        GpuBuffer::zeros(&self.ctx, len)
    }
    /// Host indices as the kernels' i64 buffer.
    fn indices(&self, idx: &[usize]) -> Res<GpuBuffer<i64>> {
        let v: Vec<i64> = idx.iter().map(|&i| i as i64).collect();
        GpuBuffer::from_host(&self.ctx, &v)
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

impl<T: Float> CudaStorage<T> {
    /// One new buffer of `len`, written by `f` (zeroed first when `f` accumulates).
    fn out(&self, len: usize, zeroed: bool, f: impl FnOnce(&mut GpuBuffer<T>) -> Res<()>) -> Self {
        let buf = self.attempt(|| {
            let mut o = if zeroed { self.zeros(len)? } else { self.uninit(len)? };
            f(&mut o)?;
            Ok(o)
        });
        self.wrap(buf, len)
    }

    /// Several new buffers of the given lengths (see `out`).
    fn outs<const N: usize>(
        &self,
        lens: [usize; N],
        zeroed: bool,
        f: impl FnOnce([&mut GpuBuffer<T>; N]) -> Res<()>,
    ) -> [Self; N] {
        let bufs = self.attempt(|| {
            let mut bs = Vec::with_capacity(N);
            for &len in &lens {
                bs.push(if zeroed { self.zeros(len)? } else { self.uninit(len)? });
            }
            let mut bs: [GpuBuffer<T>; N] =
                bs.try_into().unwrap_or_else(|_: Vec<_>| unreachable!("N lengths, N buffers"));
            f(bs.each_mut())?;
            Ok(bs)
        });
        let mut bufs = bufs.map(|b| b.map(Some)).unwrap_or_else(|| [(); N].map(|_| None));
        std::array::from_fn(|i| self.wrap(bufs[i].take(), lens[i]))
    }
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
        let v = self.get()?.to_host()?;
        self.ctx.check()?;
        Ok(v)
    }
    fn uploaded(&self, host: &[T]) -> Self {
        CudaStorage::from_host(&self.ctx, self.device, host)
    }
    fn duplicate(&self) -> Self {
        self.out(self.len, false, |o| o.copy_from(0, self.get()?, 0, self.len))
    }
    fn full_like(&self, n: usize, v: T) -> Self {
        if v == T::ZERO {
            return self.out(n, true, |_| Ok(()));
        }
        self.uploaded(&vec![v; n])
    }
    fn uninit_like(&self, n: usize) -> Self {
        self.out(n, false, |_| Ok(()))
    }

    fn unary(&self, op: Unary) -> Self {
        self.out(self.len, false, |y| gpu::elementwise::unary_forward(op, self.get()?, y))
    }
    fn unary_backward(&self, op: Unary, y: &Self, g: &Self) -> Self {
        self.out(self.len, false, |dx| {
            gpu::elementwise::unary_backward(op, self.get()?, y.get()?, g.get()?, dx)
        })
    }
    fn binary(
        &self,
        op: Binary,
        shape: &[usize],
        rhs: &Self,
        rhs_shape: &[usize],
        out_shape: &[usize],
    ) -> Self {
        self.out(crate::numel(out_shape), false, |o| {
            gpu::broadcast::binary(op, self.get()?, shape, rhs.get()?, rhs_shape, out_shape, o)
        })
    }
    fn sum_to(&self, shape: &[usize], target: &[usize]) -> Self {
        self.out(crate::numel(target), false, |o| gpu::broadcast::sum_to(self.get()?, shape, target, o))
    }
    fn expand(&self, shape: &[usize], out_shape: &[usize]) -> Self {
        self.out(crate::numel(out_shape), false, |o| gpu::broadcast::expand(self.get()?, shape, out_shape, o))
    }
    fn add_assign(&mut self, x: &Self) {
        self.in_place(|y| gpu::update::add_assign(y, x.get()?));
    }

    fn gemm(&self, b: &Self, bias: Option<&Self>, c: &mut Self, p: Gemm) {
        // `precision::check_device` refuses bf16 off the CPU before any work
        assert!(!p.bf16, "gemm: bf16 products run on the CPU only (device {:?})", self.device());
        c.in_place(|cb| {
            let d = gpu::gemm::Dims::new(p.m, p.n, p.k).batched(p.batch);
            let a = GpuMat::new(self.get()?, p.sa).at(p.a_offset);
            let b = GpuMat::new(b.get()?, p.sb).at(p.b_offset);
            // the bias is added as each C element is stored (`gemm.cu`'s `with_start`)
            let c = GpuMatMut { bias: bias.map(|bias| bias.get()).transpose()?, ..GpuMatMut::new(cb, p.sc) };
            gpu::gemm::gemm(d, a, b, T::from_f64(p.beta), c.at(p.c_offset))
        });
    }
    fn permute(&self, shape: &[usize], perm: &[usize]) -> Self {
        self.out(self.len, false, |o| gpu::permute::permute(self.get()?, shape, perm, o))
    }
    fn narrow(&self, s: Slab) -> Self {
        self.out(s.outer * s.len * s.inner, false, |o| {
            gpu::permute::narrow(self.get()?, s.outer, s.n, s.inner, s.start, s.len, o)
        })
    }
    fn narrow_backward(&mut self, g: &Self, s: Slab) {
        self.in_place(|dx| {
            gpu::permute::narrow_backward(g.get()?, s.outer, s.n, s.inner, s.start, s.len, dx)
        });
    }
    fn concat(parts: &[&Self], sizes: &[usize], outer: usize, inner: usize) -> Self {
        parts[0].out(outer * sizes.iter().sum::<usize>() * inner, false, |o| {
            let xs = parts.iter().map(|p| p.get()).collect::<Res<Vec<_>>>()?;
            gpu::permute::concat(&xs, sizes, outer, inner, o)
        })
    }

    /// The arg-max comes back to the host (the op returns it as `Vec<usize>`): a wait.
    fn max_dim(&self, s: Slab) -> (Self, Vec<usize>) {
        let m = s.outer * s.inner;
        let mut host = vec![0; m];
        let values = self.out(m, false, |v| {
            let mut argmax = GpuBuffer::<i64>::uninit(&self.ctx, m)?;
            gpu::reduce::max_dim(self.get()?, s.outer, s.n, s.inner, v, &mut argmax)?;
            host = argmax.to_host()?.into_iter().map(|i| i as usize).collect();
            Ok(())
        });
        (values, host)
    }
    fn max_dim_backward(&self, s: Slab, argmax: &[usize]) -> Self {
        self.out(s.outer * s.n * s.inner, true, |dx| {
            gpu::reduce::max_dim_backward(self.get()?, s.outer, s.n, s.inner, &self.indices(argmax)?, dx)
        })
    }
    fn softmax(&self, s: Slab, log: bool) -> Self {
        self.out(self.len, false, |y| {
            gpu::softmax::softmax_forward(self.get()?, s.outer, s.n, s.inner, y, log)
        })
    }
    fn softmax_backward(&self, g: &Self, s: Slab, log: bool) -> Self {
        self.out(self.len, true, |dx| {
            gpu::softmax::softmax_backward(self.get()?, g.get()?, s.outer, s.n, s.inner, dx, log)
        })
    }
    fn layer_norm(&self, ln: NormOf<'_, Self>) -> (Self, Self, Self) {
        let rows = ln.rows;
        let [y, mean, rstd] = self.outs([self.len, rows, rows], false, |[y, mean, rstd]| {
            let (w, b) = (ln.w.map(|w| w.get()).transpose()?, ln.b.map(|b| b.get()).transpose()?);
            let x = LayerNormIn { x: self.get()?, rows, n: ln.n, w, b };
            gpu::layernorm::layer_norm_forward(x, T::from_f64(ln.eps), y, LayerNormStats { mean, rstd })
        });
        (y, mean, rstd)
    }
    fn layer_norm_backward(
        &self,
        g: &Self,
        ln: NormOf<'_, Self>,
        (mean, rstd): (&Self, &Self),
        want: [bool; 3],
    ) -> [Option<Self>; 3] {
        let (rows, n) = (ln.rows, ln.n);
        // dx is overwritten; dw and db are sums over the rows, added into zeros
        let [dx, dw, db] = self.outs([self.len, n, n], false, |[dx, dw, db]| {
            dw.zero()?;
            db.zero()?;
            let w = ln.w.map(|w| w.get()).transpose()?;
            let x = LayerNormIn { x: self.get()?, rows, n, w, b: None };
            let stats = LayerNormStats { mean: mean.get()?, rstd: rstd.get()? };
            let [dx, dw, db] = [(want[0], dx), (want[1], dw), (want[2], db)].map(|(on, b)| on.then_some(b));
            gpu::layernorm::layer_norm_backward(x, stats, g.get()?, LayerNormGrads { dx, dw, db })
        });
        let mut r = [Some(dx), Some(dw), Some(db)];
        for (slot, on) in r.iter_mut().zip(want) {
            if !on {
                *slot = None;
            }
        }
        r
    }

    fn cross_entropy(&self, t: Targets) -> Self {
        self.out(1, false, |loss| {
            let mut count = self.uninit(1)?; // N, also known on the host (t.count)
            let targets = self.indices(t.targets)?;
            gpu::loss::cross_entropy_forward(
                self.get()?,
                t.n,
                t.c,
                &targets,
                t.ignore_index,
                loss,
                &mut count,
            )
        })
    }
    fn cross_entropy_backward(&self, g: &Self, t: Targets) -> Self {
        self.out(self.len, true, |dx| {
            // scale = g / N, the mean's 1/N, divided on the device as the CPU divides
            let n = GpuBuffer::from_host(&self.ctx, &[T::from_f64(t.count as f64)])?;
            let mut scale = self.uninit(1)?;
            gpu::broadcast::binary(Binary::Div, g.get()?, &[1], &n, &[1], &[1], &mut scale)?;
            let targets = self.indices(t.targets)?;
            gpu::loss::cross_entropy_backward(self.get()?, t.n, t.c, &targets, t.ignore_index, &scale, dx)
        })
    }
    fn bce_with_logits(&self, targets: &Self) -> Self {
        self.out(1, false, |loss| gpu::loss::bce_with_logits_forward(self.get()?, targets.get()?, loss))
    }
    fn bce_with_logits_backward(&self, targets: &Self, g: &Self, want: [bool; 2]) -> [Option<Self>; 2] {
        let [dx, dt] = self.outs([self.len, self.len], false, |[dx, dt]| {
            gpu::loss::bce_with_logits_backward(self.get()?, targets.get()?, g.get()?, dx, dt)
        });
        [want[0].then_some(dx), want[1].then_some(dt)]
    }

    fn dropout(&self, p: f64, seed: u64) -> (Self, CudaStorage<u8>) {
        let mut keep = CudaStorage::<u8>::zeros_on(self, self.len);
        let y = self.out(self.len, false, |y| {
            let k = keep
                .buf
                .as_mut()
                .ok_or_else(|| GpuError::Driver { op: "dropout".into(), message: "no mask".into() })?;
            gpu::dropout::dropout_forward(self.get()?, p, seed, y, k)
        });
        (y, keep)
    }
    fn dropout_backward(&self, keep: &CudaStorage<u8>, p: f64) -> Self {
        self.out(self.len, false, |dx| gpu::dropout::dropout_backward(self.get()?, keep.get()?, p, dx))
    }

    fn index_select(&self, s: Slab, idx: &[usize]) -> Self {
        self.out(s.outer * idx.len() * s.inner, false, |o| {
            gpu::index::index_select(self.get()?, s.outer, s.n, s.inner, &self.indices(idx)?, o)
        })
    }
    fn index_add(&self, s: Slab, idx: &[usize], zero_row: Option<usize>) -> Self {
        self.out(s.outer * s.n * s.inner, true, |dx| {
            gpu::index::index_add(self.get()?, s.outer, s.n, s.inner, &self.indices(idx)?, dx)?;
            if let Some(p) = zero_row.filter(|&p| p < s.n) {
                let zeros = self.zeros(s.inner)?; // the padding row gets no gradient
                for o in 0..s.outer {
                    dx.copy_from((o * s.n + p) * s.inner, &zeros, 0, s.inner)?;
                }
            }
            Ok(())
        })
    }
    fn gather(&self, s: Slab, idx: &[usize], m: usize) -> Self {
        self.out(idx.len(), false, |o| {
            gpu::index::gather(self.get()?, s.outer, s.n, s.inner, &self.indices(idx)?, m, o)
        })
    }
    fn scatter_add(&self, s: Slab, idx: &[usize], m: usize) -> Self {
        self.out(s.outer * s.n * s.inner, true, |dx| {
            gpu::index::scatter_add(self.get()?, s.outer, s.n, s.inner, &self.indices(idx)?, m, dx)
        })
    }
    fn masked_fill(&self, mask: &Self, value: T) -> Self {
        self.out(self.len, false, |o| gpu::select::masked_fill(self.get()?, mask.get()?, value, o))
    }
    fn where_(cond: &Self, a: &Self, b: &Self) -> Self {
        cond.out(cond.len, false, |o| gpu::select::where_(cond.get()?, a.get()?, b.get()?, o))
    }
    fn where_backward(cond: &Self, g: &Self) -> (Self, Self) {
        let [da, db] = cond.outs([cond.len, cond.len], false, |[da, db]| {
            gpu::select::where_backward(g.get()?, cond.get()?, da, db)
        });
        (da, db)
    }

    fn attention(
        &self,
        k: &Self,
        v: &Self,
        mask: Option<&Self>,
        Attention { shape: s, dropout, bf16 }: Attention,
        keep_probs: bool,
    ) -> (Self, Option<Self>) {
        // `precision::check_device` refuses bf16 off the CPU before any work
        assert!(!bf16, "attention: bf16 products run on the CPU only (device {:?})", self.device());
        let mut probs = keep_probs.then(|| self.out(s.probs_numel(), false, |_| Ok(())));
        let o = self.out(s.q_numel(), false, |o| {
            let mask = mask.map(|m| m.get()).transpose()?;
            let p = probs.as_mut().map(|p| {
                p.buf.as_mut().ok_or_else(|| GpuError::Driver {
                    op: "attention".into(),
                    message: "no buffer for P".into(),
                })
            });
            let p = p.transpose()?;
            let qkv = Qkv { q: self.get()?, k: k.get()?, v: v.get()? };
            gpu::attention::attention_forward(s, qkv, mask, dropout, o, p)
        });
        (o, probs)
    }
    fn attention_backward(
        &self,
        k: &Self,
        v: &Self,
        probs: &Self,
        g: &Self,
        Attention { shape: s, dropout, bf16 }: Attention,
    ) -> [Self; 3] {
        assert!(!bf16, "attention: bf16 products run on the CPU only (device {:?})", self.device());
        let (nq, nkv) = (s.q_numel(), s.kv_numel());
        self.outs([nq, nkv, nkv], false, |[dq, dk, dv]| {
            let qkv = Qkv { q: self.get()?, k: k.get()?, v: v.get()? };
            gpu::attention::attention_backward(
                s,
                qkv,
                probs.get()?,
                dropout,
                g.get()?,
                Qkv { q: dq, k: dk, v: dv },
            )
        })
    }
    fn lstm_cell(&self, c_prev: &Self, hh: usize) -> (Self, Self, Self) {
        let b = self.len / (4 * hh).max(1);
        let [hc, act, tanh_c] = self.outs([b * 2 * hh, self.len, b * hh], false, |[hc, act, tanh_c]| {
            act.copy_from(0, self.get()?, 0, self.len)?; // pre-activations → activations, in place
            let (mut h, mut c) = (self.uninit(b * hh)?, self.uninit(b * hh)?);
            gpu::lstm::cell_forward(act, c_prev.get()?, hh, &mut c, tanh_c, &mut h)?;
            gpu::lstm::interleave_hc(&h, &c, hh, hc) // [h | c] per row
        });
        (hc, act, tanh_c)
    }
    fn lstm_cell_backward(&self, c_prev: &Self, tanh_c: &Self, g: &Self, hh: usize) -> (Self, Self) {
        let b = self.len / (4 * hh).max(1);
        let [dz, dcp] = self.outs([self.len, c_prev.len], false, |[dz, dcp]| {
            let (mut dh, mut dc) = (self.uninit(b * hh)?, self.uninit(b * hh)?);
            gpu::lstm::split_hc(g.get()?, hh, &mut dh, &mut dc)?;
            let (act, c_prev, tanh_c) = (self.get()?, c_prev.get()?, tanh_c.get()?);
            let x = CellBackwardIn { act, c_prev, tanh_c, dh: &dh, dc: &dc, hidden: hh };
            gpu::lstm::cell_backward(x, CellGrads { d_gates: dz, dc_prev: dcp })
        });
        (dz, dcp)
    }
    /// Per direction the recurrence writes h, h_n and c_n to their own buffers; the h are
    /// then put side by side in the output (one concat) and the c_n one after another.
    fn lstm_layer(dirs: &[(&Self, &Self)], l: &LstmLayer) -> (Self, Self, Vec<LstmSaved<Self>>) {
        let first = dirs[0].0;
        let ((n, b), hh, nd) = (l.n_b(), l.hidden, dirs.len());
        let run = first.attempt(|| {
            let mut per_dir = Vec::with_capacity(nd);
            for _ in dirs {
                let gates = first.uninit(n * 4 * hh)?;
                let bufs = [n * hh, n * hh, n * hh, b * hh, b * hh].map(|len| first.uninit(len));
                let [h, c, tanh_c, h_n, c_n] = bufs;
                per_dir.push((gates, h?, c?, tanh_c?, h_n?, c_n?));
            }
            let mut fwd = Vec::with_capacity(nd);
            for (d, (gates, h, c, tanh_c, h_n, c_n)) in per_dir.iter_mut().enumerate() {
                let (xproj, w_hh) = (dirs[d].0.get()?, dirs[d].1.get()?);
                fwd.push(ForwardDir { xproj, gates, w_hh, reverse: l.reverse[d], h, c, tanh_c, h_n, c_n });
            }
            gpu::lstm::sequences_forward(fwd, &l.batch_sizes, hh)?;
            let mut out = first.uninit(n * nd * hh)?;
            let hs: Vec<&GpuBuffer<T>> = per_dir.iter().map(|d| &d.1).collect();
            gpu::permute::concat(&hs, &vec![hh; nd], n, 1, &mut out)?;
            let mut c_n = first.uninit(nd * b * hh)?;
            for (d, dir) in per_dir.iter().enumerate() {
                c_n.copy_from(d * b * hh, &dir.5, 0, b * hh)?;
            }
            Ok((out, c_n, per_dir))
        });
        let saved = |act, c, tanh_c| LstmSaved {
            act: first.wrap(act, n * 4 * hh),
            c: first.wrap(c, n * hh),
            tanh_c: first.wrap(tanh_c, n * hh),
        };
        let (out_len, c_n_len) = (n * nd * hh, nd * b * hh);
        match run {
            Some((out, c_n, per_dir)) => {
                let s = per_dir.into_iter().map(|(act, _, c, tc, _, _)| saved(Some(act), Some(c), Some(tc)));
                (first.wrap(Some(out), out_len), first.wrap(Some(c_n), c_n_len), s.collect())
            }
            None => (
                first.wrap(None, out_len),
                first.wrap(None, c_n_len),
                (0..nd).map(|_| saved(None, None, None)).collect(),
            ),
        }
    }
    /// The recurrence reads each direction's h and d_h as its own `[N, H]`: they are taken
    /// out of the output's columns first (a missing gradient is zero).
    fn lstm_layer_backward(
        g: LstmGrads<'_, Self>,
        l: &LstmLayer,
        want_dw: &[bool],
    ) -> Vec<(Self, Option<Self>)> {
        let ((n, b), hh) = (l.n_b(), l.hidden);
        let (nd, out) = (g.w_hh.len(), g.out);
        let run = out.attempt(|| {
            let columns = |buf: &GpuBuffer<T>, d: usize| -> Res<GpuBuffer<T>> {
                let mut o = out.uninit(n * hh)?;
                gpu::permute::narrow(buf, n, nd, hh, d, 1, &mut o)?;
                Ok(o)
            };
            let zero_h_n = out.zeros(b * hh)?;
            let zero_c_n = if g.d_c_n.is_none() { Some(out.zeros(nd * b * hh)?) } else { None };
            let d_c_n = match (g.d_c_n, &zero_c_n) {
                (Some(d), _) => d.get()?,
                (None, z) => z.as_ref().expect("made above"),
            };
            let mut per_dir = Vec::with_capacity(nd);
            for d in 0..nd {
                let h = columns(out.get()?, d)?;
                let d_h = match g.d_out {
                    Some(d_out) => columns(d_out.get()?, d)?,
                    None => out.zeros(n * hh)?,
                };
                per_dir.push((h, d_h));
            }
            let mut grads = Vec::with_capacity(nd);
            for &want in want_dw {
                grads
                    .push((out.uninit(n * 4 * hh)?, if want { Some(out.zeros(4 * hh * hh)?) } else { None }));
            }
            let mut dirs = Vec::with_capacity(nd);
            for (d, ((d_gates, d_w_hh), (h, d_h))) in grads.iter_mut().zip(&per_dir).enumerate() {
                dirs.push(BackwardDir {
                    act: g.saved[d].act.get()?,
                    w_hh: g.w_hh[d].get()?,
                    reverse: l.reverse[d],
                    h,
                    h_offset: 0,
                    c: g.saved[d].c.get()?,
                    tanh_c: g.saved[d].tanh_c.get()?,
                    d_h,
                    d_h_offset: 0,
                    d_h_n: &zero_h_n,
                    d_h_n_offset: 0,
                    d_c_n,
                    d_c_n_offset: d * b * hh,
                    d_gates,
                    d_w_hh: d_w_hh.as_mut(),
                });
            }
            gpu::lstm::sequences_backward(dirs, &l.batch_sizes, hh)?;
            Ok(grads)
        });
        match run {
            Some(grads) => grads
                .into_iter()
                .map(|(dz, dw)| {
                    (out.wrap(Some(dz), n * 4 * hh), dw.map(|dw| out.wrap(Some(dw), 4 * hh * hh)))
                })
                .collect(),
            None => want_dw
                .iter()
                .map(|&w| (out.wrap(None, n * 4 * hh), w.then(|| out.wrap(None, 4 * hh * hh))))
                .collect(),
        }
    }

    fn adam_update(&mut self, g: &Self, m: &mut Self, v: &mut Self, s: AdamStep) {
        let (Some(mb), Some(vb)) = (m.buf.as_mut(), v.buf.as_mut()) else { return };
        self.in_place(|theta| gpu::update::adam_update(theta, g.get()?, mb, vb, s));
    }
    fn sgd_update(&mut self, g: &Self, buf: Option<&mut Self>, s: SgdStep) {
        let buf = buf.and_then(|b| b.buf.as_mut());
        self.in_place(|theta| gpu::update::sgd_update(theta, g.get()?, buf, s));
    }
    fn grad_norm(grads: &[&Self]) -> CudaStorage<f64> {
        let first = grads[0];
        let total = first.attempt(|| {
            let mut total = GpuBuffer::<f64>::uninit(&first.ctx, 1)?;
            let bufs = grads.iter().map(|g| g.get()).collect::<Res<Vec<_>>>()?;
            gpu::update::grad_norm(&bufs, &mut total)?;
            Ok(total)
        });
        first.wrap(total, 1)
    }
    fn clip_scale(&mut self, total: &CudaStorage<f64>, max_norm: f64) {
        let Some(t) = total.buf.as_ref() else { return };
        self.in_place(|g| gpu::update::clip_scale(g, t, max_norm));
    }
    fn clip_by_value(&mut self, clip: f64) {
        self.in_place(|g| gpu::update::clip_by_value(g, clip));
    }
}
