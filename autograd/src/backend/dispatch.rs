//! `Storage<T>` implements [`Backend`] by dispatching ONCE per op to the variant its
//! operands live on. Operands on different devices are a programmer error: it panics
//! naming the kernel family and both devices (the ops check first with the op's own
//! name, see `ops::same_device`).

use super::{
    Attention, Backend, CudaStorage, Gemm, LstmGrads, LstmLayer, LstmSaved, NormOf, ResidualNorm, SgdStep,
    Slab, Targets,
};
use crate::storage::{CpuStorage, Device, Storage};
use tapegrad_kernels::broadcast::Binary;
use tapegrad_kernels::elementwise::Unary;
use tapegrad_kernels::gpu::GpuError;
use tapegrad_kernels::update::AdamStep;
use tapegrad_kernels::Float;

/// Dropout's keep mask on either device.
pub enum Mask {
    Cpu(crate::alloc::HostBuffer<u8>),
    Cuda(CudaStorage<u8>),
}

/// One variant of `Storage`: how to find it in, and put it back into, a `Storage`.
trait Variant<T: Float>: Backend<T> {
    fn get(s: &Storage<T>) -> Option<&Self>;
    fn get_mut(s: &mut Storage<T>) -> Option<&mut Self>;
    fn wrap(self) -> Storage<T>;
}

impl<T: Float> Variant<T> for CpuStorage<T> {
    fn get(s: &Storage<T>) -> Option<&Self> {
        match s {
            Storage::Cpu(c) => Some(c),
            _ => None,
        }
    }
    fn get_mut(s: &mut Storage<T>) -> Option<&mut Self> {
        match s {
            Storage::Cpu(c) => Some(c),
            _ => None,
        }
    }
    fn wrap(self) -> Storage<T> {
        Storage::Cpu(self)
    }
}

impl<T: Float> Variant<T> for CudaStorage<T> {
    fn get(s: &Storage<T>) -> Option<&Self> {
        match s {
            Storage::Cuda(c) => Some(c),
            _ => None,
        }
    }
    fn get_mut(s: &mut Storage<T>) -> Option<&mut Self> {
        match s {
            Storage::Cuda(c) => Some(c),
            _ => None,
        }
    }
    fn wrap(self) -> Storage<T> {
        Storage::Cuda(self)
    }
}

fn mixed(op: &str, a: Device, b: Device) -> ! {
    panic!("{op}: operands on different devices ({a} and {b}); move them with .to(device) first")
}

/// `s` as the variant `B` (the one of the operand on `dev`), or a panic naming both devices.
fn same<'a, T: Float, B: Variant<T>>(op: &str, dev: Device, s: &'a Storage<T>) -> &'a B {
    B::get(s).unwrap_or_else(|| mixed(op, dev, s.device()))
}

fn same_mut<'a, T: Float, B: Variant<T>>(op: &str, dev: Device, s: &'a mut Storage<T>) -> &'a mut B {
    let other = s.device();
    B::get_mut(s).unwrap_or_else(|| mixed(op, dev, other))
}

fn same_opt<'a, T: Float, B: Variant<T>>(op: &str, dev: Device, s: Option<&'a Storage<T>>) -> Option<&'a B> {
    s.map(|s| same(op, dev, s))
}

/// `ln` with its weight and bias as the variant `B`, or a panic naming both devices.
fn norm_on<'a, T: Float, B: Variant<T>>(op: &str, dev: Device, ln: NormOf<'a, Storage<T>>) -> NormOf<'a, B> {
    NormOf { w: same_opt(op, dev, ln.w), b: same_opt(op, dev, ln.b), rows: ln.rows, n: ln.n, eps: ln.eps }
}

fn wrap_saved<T: Float, B: Variant<T>>(s: LstmSaved<B>) -> LstmSaved<Storage<T>> {
    LstmSaved { act: s.act.wrap(), c: s.c.wrap(), tanh_c: s.tanh_c.wrap() }
}

/// `residual_layer_norm` on the variant `s`, its mask wrapped by `mask`.
fn residual_on<T: Float, B: Variant<T>>(
    s: &B,
    residual: &Storage<T>,
    dropout: Option<(f64, u64)>,
    ln: NormOf<'_, Storage<T>>,
    mask: impl Fn(B::Mask) -> Mask,
) -> ResidualNorm<Storage<T>, Mask> {
    let (d, op) = (s.device(), "residual_layer_norm");
    let o = s.residual_layer_norm(same(op, d, residual), dropout, norm_on(op, d, ln));
    ResidualNorm {
        y: o.y.wrap(),
        s: o.s.wrap(),
        keep: o.keep.map(mask),
        mean: o.mean.wrap(),
        rstd: o.rstd.wrap(),
    }
}

/// Runs `$body` with `$b` bound to the variant of `$s` (the same tokens for both arms,
/// so each arm calls its own backend; `same` infers the variant of the other operands).
macro_rules! each {
    ($s:expr, $b:ident => $body:expr) => {
        match $s {
            Storage::Cpu($b) => $body,
            Storage::Cuda($b) => $body,
        }
    };
}

impl<T: Float> Backend<T> for Storage<T> {
    type Mask = Mask;
    type F64 = Storage<f64>;

    fn device(&self) -> Device {
        each!(self, s => s.device())
    }
    fn len(&self) -> usize {
        each!(self, s => s.len())
    }
    fn to_host(&self) -> Result<Vec<T>, GpuError> {
        each!(self, s => s.to_host())
    }
    fn uploaded(&self, host: &[T]) -> Self {
        each!(self, s => s.uploaded(host).wrap())
    }
    fn duplicate(&self) -> Self {
        each!(self, s => s.duplicate().wrap())
    }
    fn full_like(&self, n: usize, v: T) -> Self {
        each!(self, s => s.full_like(n, v).wrap())
    }
    fn uninit_like(&self, n: usize) -> Self {
        each!(self, s => s.uninit_like(n).wrap())
    }

    fn unary(&self, op: Unary) -> Self {
        each!(self, s => s.unary(op).wrap())
    }
    fn unary_backward(&self, op: Unary, y: &Self, g: &Self) -> Self {
        let d = self.device();
        each!(self, s => s.unary_backward(op, same("unary", d, y), same("unary", d, g)).wrap())
    }
    fn binary(
        &self,
        op: Binary,
        shape: &[usize],
        rhs: &Self,
        rhs_shape: &[usize],
        out_shape: &[usize],
    ) -> Self {
        let d = self.device();
        each!(self, s => s.binary(op, shape, same("binary", d, rhs), rhs_shape, out_shape).wrap())
    }
    fn sum_to(&self, shape: &[usize], target: &[usize]) -> Self {
        each!(self, s => s.sum_to(shape, target).wrap())
    }
    fn expand(&self, shape: &[usize], out_shape: &[usize]) -> Self {
        each!(self, s => s.expand(shape, out_shape).wrap())
    }
    fn add_assign(&mut self, x: &Self) {
        let d = self.device();
        each!(self, s => s.add_assign(same("gradient accumulation", d, x)))
    }

    fn gemm(&self, b: &Self, bias: Option<&Self>, c: &mut Self, p: Gemm) {
        let d = self.device();
        each!(self, s => s.gemm(same("gemm", d, b), same_opt("gemm", d, bias), same_mut("gemm", d, c), p))
    }
    fn permute(&self, shape: &[usize], perm: &[usize]) -> Self {
        each!(self, s => s.permute(shape, perm).wrap())
    }
    fn narrow(&self, sl: Slab) -> Self {
        each!(self, s => s.narrow(sl).wrap())
    }
    fn narrow_backward(&mut self, g: &Self, sl: Slab) {
        let d = self.device();
        each!(self, s => s.narrow_backward(same("narrow backward", d, g), sl))
    }
    fn concat(parts: &[&Self], sizes: &[usize], outer: usize, inner: usize) -> Self {
        let d = parts[0].device();
        match parts[0] {
            Storage::Cpu(_) => {
                let ps: Vec<&CpuStorage<T>> = parts.iter().map(|p| same("concat", d, p)).collect();
                CpuStorage::concat(&ps, sizes, outer, inner).wrap()
            }
            Storage::Cuda(_) => {
                let ps: Vec<&CudaStorage<T>> = parts.iter().map(|p| same("concat", d, p)).collect();
                CudaStorage::concat(&ps, sizes, outer, inner).wrap()
            }
        }
    }

    fn max_dim(&self, sl: Slab) -> (Self, Vec<usize>) {
        each!(self, s => {
            let (v, i) = s.max_dim(sl);
            (v.wrap(), i)
        })
    }
    fn max_dim_backward(&self, sl: Slab, argmax: &[usize]) -> Self {
        each!(self, s => s.max_dim_backward(sl, argmax).wrap())
    }
    fn softmax(&self, sl: Slab, log: bool) -> Self {
        each!(self, s => s.softmax(sl, log).wrap())
    }
    fn softmax_backward(&self, g: &Self, sl: Slab, log: bool) -> Self {
        let d = self.device();
        each!(self, s => s.softmax_backward(same("softmax", d, g), sl, log).wrap())
    }
    fn layer_norm(&self, ln: NormOf<'_, Self>) -> (Self, Self, Self) {
        let d = self.device();
        each!(self, s => {
            let (y, m, r) = s.layer_norm(norm_on("layer_norm", d, ln));
            (y.wrap(), m.wrap(), r.wrap())
        })
    }
    fn layer_norm_backward(
        &self,
        g: &Self,
        ln: NormOf<'_, Self>,
        (mean, rstd): (&Self, &Self),
        want: [bool; 3],
    ) -> [Option<Self>; 3] {
        let d = self.device();
        let op = "layer_norm";
        each!(self, s => {
            let saved = (same(op, d, mean), same(op, d, rstd));
            s.layer_norm_backward(same(op, d, g), norm_on(op, d, ln), saved, want)
                .map(|x| x.map(Variant::wrap))
        })
    }

    fn cross_entropy(&self, t: Targets) -> Self {
        each!(self, s => s.cross_entropy(t).wrap())
    }
    fn cross_entropy_backward(&self, g: &Self, t: Targets) -> Self {
        let d = self.device();
        each!(self, s => s.cross_entropy_backward(same("cross_entropy", d, g), t).wrap())
    }
    fn bce_with_logits(&self, targets: &Self) -> Self {
        let d = self.device();
        each!(self, s => s.bce_with_logits(same("bce_with_logits", d, targets)).wrap())
    }
    fn bce_with_logits_backward(&self, targets: &Self, g: &Self, want: [bool; 2]) -> [Option<Self>; 2] {
        let d = self.device();
        let op = "bce_with_logits";
        each!(self, s => s.bce_with_logits_backward(same(op, d, targets), same(op, d, g), want).map(|x| x.map(Variant::wrap)))
    }

    fn dropout(&self, p: f64, seed: u64) -> (Self, Mask) {
        match self {
            Storage::Cpu(s) => {
                let (y, m) = s.dropout(p, seed);
                (y.wrap(), Mask::Cpu(m))
            }
            Storage::Cuda(s) => {
                let (y, m) = s.dropout(p, seed);
                (y.wrap(), Mask::Cuda(m))
            }
        }
    }
    fn residual_layer_norm(
        &self,
        residual: &Self,
        dropout: Option<(f64, u64)>,
        ln: NormOf<'_, Self>,
    ) -> ResidualNorm<Self, Mask> {
        match self {
            Storage::Cpu(s) => residual_on(s, residual, dropout, ln, Mask::Cpu),
            Storage::Cuda(s) => residual_on(s, residual, dropout, ln, Mask::Cuda),
        }
    }
    fn dropout_backward(&self, keep: &Mask, p: f64) -> Self {
        match (self, keep) {
            (Storage::Cpu(s), Mask::Cpu(m)) => s.dropout_backward(m, p).wrap(),
            (Storage::Cuda(s), Mask::Cuda(m)) => s.dropout_backward(m, p).wrap(),
            (s, Mask::Cpu(_)) => mixed("dropout", s.device(), Device::Cpu),
            (s, Mask::Cuda(m)) => mixed("dropout", s.device(), m.on()),
        }
    }

    fn index_select(&self, sl: Slab, idx: &[usize]) -> Self {
        each!(self, s => s.index_select(sl, idx).wrap())
    }
    fn index_add(&self, sl: Slab, idx: &[usize], zero_row: Option<usize>) -> Self {
        each!(self, s => s.index_add(sl, idx, zero_row).wrap())
    }
    fn gather(&self, sl: Slab, idx: &[usize], m: usize) -> Self {
        each!(self, s => s.gather(sl, idx, m).wrap())
    }
    fn scatter_add(&self, sl: Slab, idx: &[usize], m: usize) -> Self {
        each!(self, s => s.scatter_add(sl, idx, m).wrap())
    }
    fn masked_fill(&self, mask: &Self, value: T) -> Self {
        let d = self.device();
        each!(self, s => s.masked_fill(same("masked_fill", d, mask), value).wrap())
    }
    fn where_(cond: &Self, a: &Self, b: &Self) -> Self {
        let d = cond.device();
        each!(cond, c => Backend::where_(c, same("where", d, a), same("where", d, b)).wrap())
    }
    fn where_backward(cond: &Self, g: &Self) -> (Self, Self) {
        let d = cond.device();
        each!(cond, c => {
            let (a, b) = Backend::where_backward(c, same("where", d, g));
            (a.wrap(), b.wrap())
        })
    }

    fn attention(
        &self,
        k: &Self,
        v: &Self,
        mask: Option<&Self>,
        a: Attention,
        keep_probs: bool,
    ) -> (Self, Option<Self>) {
        let d = self.device();
        let op = "attention";
        each!(self, s => {
            let (o, p) = s.attention(same(op, d, k), same(op, d, v), same_opt(op, d, mask), a, keep_probs);
            (o.wrap(), p.map(Variant::wrap))
        })
    }
    fn attention_backward(&self, k: &Self, v: &Self, probs: &Self, g: &Self, a: Attention) -> [Self; 3] {
        let d = self.device();
        let op = "attention";
        each!(self, s => s
            .attention_backward(same(op, d, k), same(op, d, v), same(op, d, probs), same(op, d, g), a)
            .map(Variant::wrap))
    }
    fn lstm_cell(&self, c_prev: &Self, hidden: usize) -> (Self, Self, Self) {
        let d = self.device();
        each!(self, s => {
            let (hc, act, tc) = s.lstm_cell(same("lstm_cell", d, c_prev), hidden);
            (hc.wrap(), act.wrap(), tc.wrap())
        })
    }
    fn lstm_cell_backward(&self, c_prev: &Self, tanh_c: &Self, g: &Self, hidden: usize) -> (Self, Self) {
        let d = self.device();
        let op = "lstm_cell";
        each!(self, s => {
            let (dz, dc) = s.lstm_cell_backward(same(op, d, c_prev), same(op, d, tanh_c), same(op, d, g), hidden);
            (dz.wrap(), dc.wrap())
        })
    }
    fn lstm_layer(dirs: &[(&Self, &Self)], l: &LstmLayer) -> (Self, Self, Vec<LstmSaved<Self>>) {
        fn run<T: Float, B: Variant<T>>(
            dirs: &[(&Storage<T>, &Storage<T>)],
            l: &LstmLayer,
        ) -> (Storage<T>, Storage<T>, Vec<LstmSaved<Storage<T>>>) {
            let (d, op) = (dirs[0].0.device(), "lstm_packed");
            let ds: Vec<(&B, &B)> = dirs.iter().map(|(x, w)| (same(op, d, x), same(op, d, w))).collect();
            let (out, c_n, saved) = B::lstm_layer(&ds, l);
            (out.wrap(), c_n.wrap(), saved.into_iter().map(wrap_saved).collect())
        }
        match dirs[0].0 {
            Storage::Cpu(_) => run::<T, CpuStorage<T>>(dirs, l),
            Storage::Cuda(_) => run::<T, CudaStorage<T>>(dirs, l),
        }
    }
    fn lstm_layer_backward(
        g: LstmGrads<'_, Self>,
        l: &LstmLayer,
        want_dw: &[bool],
    ) -> Vec<(Self, Option<Self>)> {
        fn run<T: Float, B: Variant<T>>(
            g: LstmGrads<'_, Storage<T>>,
            l: &LstmLayer,
            want_dw: &[bool],
        ) -> Vec<(Storage<T>, Option<Storage<T>>)> {
            let (d, op) = (g.out.device(), "lstm_packed");
            let ws: Vec<&B> = g.w_hh.iter().map(|w| same(op, d, w)).collect();
            let sv: Vec<LstmSaved<&B>> = g
                .saved
                .iter()
                .map(|s| LstmSaved {
                    act: same(op, d, s.act),
                    c: same(op, d, s.c),
                    tanh_c: same(op, d, s.tanh_c),
                })
                .collect();
            let gb = LstmGrads {
                w_hh: &ws,
                saved: &sv,
                out: same(op, d, g.out),
                d_out: g.d_out.map(|x| same(op, d, x)),
                d_c_n: g.d_c_n.map(|x| same(op, d, x)),
            };
            let r = B::lstm_layer_backward(gb, l, want_dw);
            r.into_iter().map(|(dz, dw)| (dz.wrap(), dw.map(Variant::wrap))).collect()
        }
        match g.out {
            Storage::Cpu(_) => run::<T, CpuStorage<T>>(g, l, want_dw),
            Storage::Cuda(_) => run::<T, CudaStorage<T>>(g, l, want_dw),
        }
    }

    fn adam_update(&mut self, g: &Self, m: &mut Self, v: &mut Self, st: AdamStep) {
        let d = self.device();
        let op = "adam";
        each!(self, s => s.adam_update(same(op, d, g), same_mut(op, d, m), same_mut(op, d, v), st))
    }
    fn sgd_update(&mut self, g: &Self, buf: Option<&mut Self>, st: SgdStep) {
        let d = self.device();
        let op = "sgd";
        each!(self, s => s.sgd_update(same(op, d, g), buf.map(|b| same_mut(op, d, b)), st))
    }
    fn grad_norm(grads: &[&Self]) -> Storage<f64> {
        let (d, op) = (grads[0].device(), "clip_grad_norm");
        match grads[0] {
            Storage::Cpu(_) => {
                let gs: Vec<&CpuStorage<T>> = grads.iter().map(|g| same(op, d, g)).collect();
                CpuStorage::grad_norm(&gs).wrap()
            }
            Storage::Cuda(_) => {
                let gs: Vec<&CudaStorage<T>> = grads.iter().map(|g| same(op, d, g)).collect();
                CudaStorage::grad_norm(&gs).wrap()
            }
        }
    }
    fn clip_scale(&mut self, total: &Storage<f64>, max_norm: f64) {
        let d = self.device();
        each!(self, s => s.clip_scale(same("clip_grad_norm", d, total), max_norm))
    }
    fn clip_by_value(&mut self, clip: f64) {
        each!(self, s => s.clip_by_value(clip))
    }
}
