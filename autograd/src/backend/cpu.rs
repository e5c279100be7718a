//! The CPU backend: every method calls the CPU kernel of its family on slices
//! (`tapegrad_kernels::<family>`), exactly as the ops did before the seam.
//!
//! Results come from the host caching allocator (`crate::alloc`): [`overwritten`] for a
//! kernel that writes every element of its output, [`zeroed`] for one that adds into
//! it (`+=`, documented as such on the kernel).

use super::{
    Attention, Backend, Gemm, LstmGrads, LstmLayer, LstmSaved, NormOf, ResidualNorm, SgdStep, Slab, Targets,
};
use crate::alloc::HostBuffer;
use crate::storage::{CpuStorage, Device};
use tapegrad_kernels as k;
use tapegrad_kernels::attention::Qkv;
use tapegrad_kernels::broadcast::Binary;
use tapegrad_kernels::elementwise::Unary;
use tapegrad_kernels::gpu::GpuError;
use tapegrad_kernels::layernorm::{LayerNormGrads, LayerNormIn, LayerNormStats, ResidualIn, ResidualOut};
use tapegrad_kernels::update::AdamStep;
use tapegrad_kernels::Float;

fn own<T: Float>(v: HostBuffer<T>) -> CpuStorage<T> {
    CpuStorage::Owned(v)
}

/// An output buffer the kernel overwrites completely (its old numbers are never read).
fn overwritten<T: Float>(n: usize) -> HostBuffer<T> {
    HostBuffer::uninit(n)
}

/// An output buffer the kernel adds into.
fn zeroed<T: Float>(n: usize) -> HostBuffer<T> {
    HostBuffer::zeros(n)
}

/// The layer norm kernels' operands: x and `ln`'s rows, n, weight and bias as slices.
fn norm_in<'a, T: Float>(x: &'a CpuStorage<T>, ln: NormOf<'a, CpuStorage<T>>) -> LayerNormIn<'a, [T]> {
    let (w, b) = (ln.w.map(|w| w.as_slice()), ln.b.map(|b| b.as_slice()));
    LayerNormIn { x: x.as_slice(), rows: ln.rows, n: ln.n, w, b }
}

impl<T: Float> Backend<T> for CpuStorage<T> {
    type Mask = HostBuffer<u8>;
    type F64 = CpuStorage<f64>;

    fn device(&self) -> Device {
        Device::Cpu
    }
    fn len(&self) -> usize {
        self.as_slice().len()
    }
    fn to_host(&self) -> Result<Vec<T>, GpuError> {
        Ok(self.as_slice().to_vec())
    }
    fn uploaded(&self, host: &[T]) -> Self {
        own(HostBuffer::from_slice(host))
    }
    fn duplicate(&self) -> Self {
        own(HostBuffer::from_slice(self.as_slice()))
    }
    fn full_like(&self, n: usize, v: T) -> Self {
        own(HostBuffer::filled(n, v))
    }
    fn uninit_like(&self, n: usize) -> Self {
        own(overwritten(n))
    }

    fn unary(&self, op: Unary) -> Self {
        let x = self.as_slice();
        let mut y = overwritten(x.len());
        k::elementwise::unary_forward(op, x, &mut y);
        own(y)
    }
    fn unary_backward(&self, op: Unary, y: &Self, g: &Self) -> Self {
        let mut dx = overwritten(self.len());
        k::elementwise::unary_backward(op, self.as_slice(), y.as_slice(), g.as_slice(), &mut dx);
        own(dx)
    }
    fn binary(
        &self,
        op: Binary,
        shape: &[usize],
        rhs: &Self,
        rhs_shape: &[usize],
        out_shape: &[usize],
    ) -> Self {
        let mut o = overwritten(crate::numel(out_shape));
        k::broadcast::binary(op, self.as_slice(), shape, rhs.as_slice(), rhs_shape, out_shape, &mut o);
        own(o)
    }
    fn sum_to(&self, shape: &[usize], target: &[usize]) -> Self {
        let mut o = overwritten(crate::numel(target));
        k::broadcast::sum_to(self.as_slice(), shape, target, &mut o);
        own(o)
    }
    fn expand(&self, shape: &[usize], out_shape: &[usize]) -> Self {
        let mut o = overwritten(crate::numel(out_shape));
        k::broadcast::expand(self.as_slice(), shape, out_shape, &mut o);
        own(o)
    }
    fn add_assign(&mut self, x: &Self) {
        k::update::add_assign(self.as_mut_slice(), x.as_slice());
    }

    fn gemm(&self, b: &Self, bias: Option<&Self>, c: &mut Self, p: Gemm) {
        use k::gemm::{Dims, MatMut, MatRef};
        let d = Dims { batch: p.batch, m: p.m, n: p.n, k: p.k };
        let a = MatRef::new(&self.as_slice()[p.a_offset..], p.sa);
        let b = MatRef::new(&b.as_slice()[p.b_offset..], p.sb);
        // the bias is added as each C tile is first written (`kernels::gemm::MatMut::with_bias`)
        let bias = bias.map(|bias| bias.as_slice());
        let c = MatMut { bias, ..MatMut::new(&mut c.as_mut_slice()[p.c_offset..], p.sc) };
        let product = if p.bf16 { k::gemm::gemm_bf16 } else { k::gemm::gemm };
        product(d, a, b, T::from_f64(p.beta), c);
    }
    fn permute(&self, shape: &[usize], perm: &[usize]) -> Self {
        let mut o = overwritten(self.len());
        k::permute::permute_into(self.as_slice(), shape, perm, &mut o);
        own(o)
    }
    fn narrow(&self, s: Slab) -> Self {
        let mut o = overwritten(s.outer * s.len * s.inner);
        k::permute::narrow(self.as_slice(), s.outer, s.n, s.inner, s.start, s.len, &mut o);
        own(o)
    }
    fn narrow_backward(&mut self, g: &Self, s: Slab) {
        k::permute::narrow_backward(g.as_slice(), s.outer, s.n, s.inner, s.start, s.len, self.as_mut_slice());
    }
    fn concat(parts: &[&Self], sizes: &[usize], outer: usize, inner: usize) -> Self {
        let slices: Vec<&[T]> = parts.iter().map(|p| p.as_slice()).collect();
        let mut o = overwritten(outer * sizes.iter().sum::<usize>() * inner);
        k::permute::concat(&slices, sizes, outer, inner, &mut o);
        own(o)
    }

    fn max_dim(&self, s: Slab) -> (Self, Vec<usize>) {
        let (mut values, mut argmax) = (overwritten(s.outer * s.inner), vec![0usize; s.outer * s.inner]);
        k::index::max_dim(self.as_slice(), s.outer, s.n, s.inner, &mut values, &mut argmax);
        (own(values), argmax)
    }
    fn max_dim_backward(&self, s: Slab, argmax: &[usize]) -> Self {
        let mut dx = zeroed(s.outer * s.n * s.inner);
        k::reduce::max_dim_backward(self.as_slice(), s.outer, s.n, s.inner, argmax, &mut dx);
        own(dx)
    }
    fn softmax(&self, s: Slab, log: bool) -> Self {
        let mut y = overwritten(self.len());
        k::softmax::softmax_forward(self.as_slice(), s.outer, s.n, s.inner, &mut y, log);
        own(y)
    }
    fn softmax_backward(&self, g: &Self, s: Slab, log: bool) -> Self {
        let mut dx = zeroed(self.len());
        k::softmax::softmax_backward(self.as_slice(), g.as_slice(), s.outer, s.n, s.inner, &mut dx, log);
        own(dx)
    }
    fn layer_norm(&self, ln: NormOf<'_, Self>) -> (Self, Self, Self) {
        let rows = ln.rows;
        let (mut y, mut mean, mut rstd) = (overwritten(self.len()), overwritten(rows), overwritten(rows));
        let stats = LayerNormStats { mean: &mut mean[..], rstd: &mut rstd[..] };
        k::layernorm::layer_norm_forward(norm_in(self, ln), T::from_f64(ln.eps), &mut y, stats);
        (own(y), own(mean), own(rstd))
    }
    fn layer_norm_backward(
        &self,
        g: &Self,
        ln: NormOf<'_, Self>,
        (mean, rstd): (&Self, &Self),
        want: [bool; 3],
    ) -> [Option<Self>; 3] {
        let mut dx = want[0].then(|| overwritten(self.len()));
        let mut dw = want[1].then(|| zeroed(ln.n));
        let mut db = want[2].then(|| zeroed(ln.n));
        let ln = LayerNormIn { b: None, ..norm_in(self, ln) };
        let stats = LayerNormStats { mean: mean.as_slice(), rstd: rstd.as_slice() };
        let grads = LayerNormGrads { dx: dx.as_deref_mut(), dw: dw.as_deref_mut(), db: db.as_deref_mut() };
        k::layernorm::layer_norm_backward(ln, stats, g.as_slice(), grads);
        [dx.map(own), dw.map(own), db.map(own)]
    }

    fn cross_entropy(&self, t: Targets) -> Self {
        let (sum, _) = k::loss::cross_entropy_forward(self.as_slice(), t.n, t.c, t.targets, t.ignore_index);
        // L = (1/N) Σᵢ lᵢ  (NaN when every row is ignored, as in PyTorch)
        own(HostBuffer::filled(1, sum / T::from_f64(t.count as f64)))
    }
    fn cross_entropy_backward(&self, g: &Self, t: Targets) -> Self {
        let scale = g.as_slice()[0] / T::from_f64(t.count as f64); // the mean's 1/N seeds backward
        let mut dx = zeroed(self.len());
        k::loss::cross_entropy_backward(self.as_slice(), t.n, t.c, t.targets, t.ignore_index, scale, &mut dx);
        own(dx)
    }
    fn bce_with_logits(&self, targets: &Self) -> Self {
        own(HostBuffer::filled(1, k::loss::bce_with_logits_forward(self.as_slice(), targets.as_slice())))
        // L = (1/N) Σᵢ lᵢ
    }
    fn bce_with_logits_backward(&self, targets: &Self, g: &Self, want: [bool; 2]) -> [Option<Self>; 2] {
        let (mut dx, mut dt) = (overwritten(self.len()), overwritten(self.len()));
        let (x, t) = (self.as_slice(), targets.as_slice());
        k::loss::bce_with_logits_backward(x, t, g.as_slice()[0], &mut dx, &mut dt); // the mean's 1/N inside
        [want[0].then(|| own(dx)), want[1].then(|| own(dt))]
    }

    fn dropout(&self, p: f64, seed: u64) -> (Self, HostBuffer<u8>) {
        let n = self.len();
        let (mut y, mut keep) = (overwritten(n), HostBuffer::uninit(n));
        k::dropout::dropout_forward(self.as_slice(), p, seed, &mut y, &mut keep);
        (own(y), keep)
    }
    /// The fused kernel (`kernels::layernorm::residual_layer_norm_forward`): x and the
    /// residual are read once, each row of s normalised while it is in L1.
    fn residual_layer_norm(
        &self,
        residual: &Self,
        dropout: Option<(f64, u64)>,
        ln: NormOf<'_, Self>,
    ) -> ResidualNorm<Self, HostBuffer<u8>> {
        let (len, rows) = (self.len(), ln.rows);
        let (mut s, mut y) = (overwritten(len), overwritten(len));
        let (mut mean, mut rstd) = (overwritten(rows), overwritten(rows));
        let mut keep = dropout.map(|_| HostBuffer::uninit(len));
        let inp = ResidualIn { ln: norm_in(self, ln), residual: residual.as_slice(), dropout };
        let out = ResidualOut {
            s: &mut s,
            y: &mut y,
            keep: keep.as_deref_mut(),
            stats: LayerNormStats { mean: &mut mean, rstd: &mut rstd },
        };
        k::layernorm::residual_layer_norm_forward(inp, T::from_f64(ln.eps), out);
        ResidualNorm { y: own(y), s: own(s), keep, mean: own(mean), rstd: own(rstd) }
    }
    fn dropout_backward(&self, keep: &HostBuffer<u8>, p: f64) -> Self {
        let mut dx = overwritten(self.len());
        k::dropout::dropout_backward(self.as_slice(), keep, p, &mut dx);
        own(dx)
    }

    fn index_select(&self, s: Slab, idx: &[usize]) -> Self {
        let mut o = overwritten(s.outer * idx.len() * s.inner);
        k::index::index_select(self.as_slice(), s.outer, s.n, s.inner, idx, &mut o);
        own(o)
    }
    fn index_add(&self, s: Slab, idx: &[usize], zero_row: Option<usize>) -> Self {
        let mut dx = zeroed(s.outer * s.n * s.inner);
        k::index::index_add(self.as_slice(), s.outer, s.n, s.inner, idx, &mut dx);
        if let Some(p) = zero_row.filter(|&p| p < s.n) {
            for o in 0..s.outer {
                dx[(o * s.n + p) * s.inner..(o * s.n + p + 1) * s.inner].fill(T::ZERO);
            }
        }
        own(dx)
    }
    fn gather(&self, s: Slab, idx: &[usize], m: usize) -> Self {
        let mut o = overwritten(idx.len());
        k::index::gather(self.as_slice(), s.outer, s.n, s.inner, idx, m, &mut o);
        own(o)
    }
    fn scatter_add(&self, s: Slab, idx: &[usize], m: usize) -> Self {
        let mut dx = zeroed(s.outer * s.n * s.inner);
        k::index::scatter_add(self.as_slice(), s.outer, s.n, s.inner, idx, m, &mut dx);
        own(dx)
    }
    fn masked_fill(&self, mask: &Self, value: T) -> Self {
        let mut o = overwritten(self.len());
        k::select::masked_fill(self.as_slice(), mask.as_slice(), value, &mut o);
        own(o)
    }
    fn where_(cond: &Self, a: &Self, b: &Self) -> Self {
        let mut o = overwritten(cond.len());
        k::select::where_(cond.as_slice(), a.as_slice(), b.as_slice(), &mut o);
        own(o)
    }
    fn where_backward(cond: &Self, g: &Self) -> (Self, Self) {
        let (mut da, mut db) = (overwritten(g.len()), overwritten(g.len()));
        k::select::where_backward(g.as_slice(), cond.as_slice(), &mut da, &mut db);
        (own(da), own(db))
    }

    fn attention(
        &self,
        kk: &Self,
        v: &Self,
        mask: Option<&Self>,
        Attention { shape: s, dropout, bf16 }: Attention,
        keep_probs: bool,
    ) -> (Self, Option<Self>) {
        let mut o = overwritten(s.q_numel());
        // every pair's P is written, unless there is no pair to run (no query, key or head)
        let probs_buf = if s.q_numel() * s.kv_numel() == 0 { zeroed } else { overwritten };
        let mut probs = keep_probs.then(|| probs_buf(s.probs_numel()));
        let forward =
            if bf16 { k::attention::attention_forward_bf16 } else { k::attention::attention_forward };
        forward(
            s,
            Qkv { q: self.as_slice(), k: kk.as_slice(), v: v.as_slice() },
            mask.map(|m| m.as_slice()),
            dropout,
            &mut o,
            probs.as_deref_mut(),
        );
        (own(o), probs.map(own))
    }
    fn attention_backward(
        &self,
        kk: &Self,
        v: &Self,
        probs: &Self,
        g: &Self,
        Attention { shape: s, dropout, bf16 }: Attention,
    ) -> [Self; 3] {
        let (nq, nkv) = (s.q_numel(), s.kv_numel());
        let (mut dq, mut dk, mut dv) = (overwritten(nq), overwritten(nkv), overwritten(nkv));
        let backward =
            if bf16 { k::attention::attention_backward_bf16 } else { k::attention::attention_backward };
        backward(
            s,
            Qkv { q: self.as_slice(), k: kk.as_slice(), v: v.as_slice() },
            probs.as_slice(),
            dropout,
            g.as_slice(),
            Qkv { q: &mut dq, k: &mut dk, v: &mut dv },
        );
        [own(dq), own(dk), own(dv)]
    }
    fn lstm_cell(&self, c_prev: &Self, hh: usize) -> (Self, Self, Self) {
        let b = c_prev.len() / hh.max(1);
        let mut act = HostBuffer::from_slice(self.as_slice()); // pre-activations → activations, in place
        let (mut h, mut c, mut tc) = (overwritten(b * hh), overwritten(b * hh), overwritten(b * hh));
        k::lstm::cell_forward(&mut act, c_prev.as_slice(), hh, &mut c, &mut tc, &mut h);
        let mut hc = overwritten(b * 2 * hh); // [h | c] per row
        k::permute::concat(&[&h, &c], &[hh, hh], b, 1, &mut hc);
        (own(hc), own(act), own(tc))
    }
    fn lstm_cell_backward(&self, c_prev: &Self, tanh_c: &Self, g: &Self, hh: usize) -> (Self, Self) {
        let b = c_prev.len() / hh.max(1);
        let (mut dh, mut dc) = (overwritten(b * hh), overwritten(b * hh));
        k::permute::narrow(g.as_slice(), b, 2 * hh, 1, 0, hh, &mut dh);
        k::permute::narrow(g.as_slice(), b, 2 * hh, 1, hh, hh, &mut dc);
        let (mut dz, mut dcp) = (overwritten(b * 4 * hh), overwritten(b * hh));
        let (act, c_prev, tanh_c) = (self.as_slice(), c_prev.as_slice(), tanh_c.as_slice());
        let x = k::lstm::CellBackwardIn { act, c_prev, tanh_c, dh: &dh, dc: &dc, hidden: hh };
        k::lstm::cell_backward(x, k::lstm::CellGrads { d_gates: &mut dz, dc_prev: &mut dcp });
        (own(dz), own(dcp))
    }
    fn lstm_layer(dirs: &[(&Self, &Self)], l: &LstmLayer) -> (Self, Self, Vec<LstmSaved<Self>>) {
        let (n, b) = l.n_b();
        let hh = l.hidden;
        let nd = dirs.len();
        // Saved per direction: the activated gates [N, 4H], c and tanh(c) [N, H].
        let mut acts: Vec<HostBuffer<T>> = (0..nd).map(|_| overwritten(n * 4 * hh)).collect();
        let mut cs: Vec<HostBuffer<T>> = (0..nd).map(|_| overwritten(n * hh)).collect();
        let mut tcs: Vec<HostBuffer<T>> = (0..nd).map(|_| overwritten(n * hh)).collect();
        // Each direction's h [N, H] (the recurrence multiplies its rows), then side by side
        // in the output; its h_n is not kept (the op takes it from the output's rows).
        let mut hs: Vec<HostBuffer<T>> = (0..nd).map(|_| overwritten(n * hh)).collect();
        let mut h_ns: Vec<HostBuffer<T>> = (0..nd).map(|_| overwritten(b * hh)).collect();
        let mut c_n = overwritten(nd * b * hh);
        let mut bufs = Vec::with_capacity(nd);
        let iter = acts.iter_mut().zip(&mut cs).zip(&mut tcs).zip(&mut hs).zip(&mut h_ns);
        for (d, (((((gates, c), tanh_c), h), h_n), c_n_d)) in
            iter.zip(c_n.chunks_mut((b * hh).max(1))).enumerate()
        {
            bufs.push(k::lstm::ForwardDir {
                xproj: dirs[d].0.as_slice(),
                gates,
                w_hh: dirs[d].1.as_slice(),
                reverse: l.reverse[d],
                h,
                c,
                tanh_c,
                h_n,
                c_n: c_n_d,
            });
        }
        k::lstm::sequences_forward(bufs, &l.batch_sizes, hh);
        let mut out = overwritten(n * nd * hh);
        let parts: Vec<&[T]> = hs.iter().map(|h| &h[..]).collect();
        k::permute::concat(&parts, &vec![hh; nd], n, 1, &mut out);
        let saved = acts
            .into_iter()
            .zip(cs)
            .zip(tcs)
            .map(|((act, c), tanh_c)| LstmSaved { act: own(act), c: own(c), tanh_c: own(tanh_c) })
            .collect();
        (own(out), own(c_n), saved)
    }
    fn lstm_layer_backward(
        g: LstmGrads<'_, Self>,
        l: &LstmLayer,
        want_dw: &[bool],
    ) -> Vec<(Self, Option<Self>)> {
        let (n, b) = l.n_b();
        let hh = l.hidden;
        let nd = g.w_hh.len();
        let width = nd * hh;
        // A missing gradient is zero (the output's when only c_n is used, and the reverse).
        let zero_out = g.d_out.is_none().then(|| zeroed(n * width));
        let zero_c_n = g.d_c_n.is_none().then(|| zeroed(nd * b * hh));
        let d_out = g.d_out.map_or_else(|| &zero_out.as_ref().expect("made above")[..], |d| d.as_slice());
        let d_c_n = g.d_c_n.map_or_else(|| &zero_c_n.as_ref().expect("made above")[..], |d| d.as_slice());
        // d h_n is part of d_out: h_n is a row of the output
        let zero_h_n = zeroed(b * hh);
        let mut dzs: Vec<HostBuffer<T>> = (0..nd).map(|_| overwritten(n * 4 * hh)).collect();
        let mut dws: Vec<Option<HostBuffer<T>>> =
            want_dw.iter().map(|&w| w.then(|| zeroed(4 * hh * hh))).collect();
        let out = g.out.as_slice();
        let mut bufs = Vec::with_capacity(nd);
        for (d, (dz, dw)) in dzs.iter_mut().zip(&mut dws).enumerate() {
            // this direction's columns of the output and of its gradient: rows `width` apart
            bufs.push(k::lstm::BackwardDir {
                act: g.saved[d].act.as_slice(),
                w_hh: g.w_hh[d].as_slice(),
                reverse: l.reverse[d],
                h: &out[d * hh..],
                c: g.saved[d].c.as_slice(),
                tanh_c: g.saved[d].tanh_c.as_slice(),
                stride: width,
                d_h: &d_out[d * hh..],
                d_h_n: &zero_h_n,
                d_c_n: &d_c_n[d * b * hh..(d + 1) * b * hh],
                d_gates: dz,
                d_w_hh: dw.as_deref_mut(),
            });
        }
        k::lstm::sequences_backward(bufs, &l.batch_sizes, hh);
        dzs.into_iter().zip(dws).map(|(dz, dw)| (own(dz), dw.map(own))).collect()
    }

    fn adam_update(&mut self, g: &Self, m: &mut Self, v: &mut Self, s: AdamStep) {
        k::update::adam_update(self.as_mut_slice(), g.as_slice(), m.as_mut_slice(), v.as_mut_slice(), s);
    }
    fn sgd_update(&mut self, g: &Self, buf: Option<&mut Self>, s: SgdStep) {
        k::update::sgd_update(self.as_mut_slice(), g.as_slice(), buf.map(|b| b.as_mut_slice()), s);
    }
    fn grad_norm(grads: &[&Self]) -> CpuStorage<f64> {
        let slices: Vec<&[T]> = grads.iter().map(|g| g.as_slice()).collect();
        own(HostBuffer::filled(1, k::update::grad_norm(&slices)))
    }
    fn clip_scale(&mut self, total: &CpuStorage<f64>, max_norm: f64) {
        k::update::clip_scale(self.as_mut_slice(), total.as_slice()[0], max_norm);
    }
    fn clip_by_value(&mut self, clip: f64) {
        k::update::clip_by_value(self.as_mut_slice(), clip);
    }
}
