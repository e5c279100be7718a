//! Fused multi-head attention on the GPU; the CPU twin (and the math) is
//! `kernels/src/attention.rs`, with the same arguments and outputs.
//!
//! Correctness first: per batch item the products run through `gpu::gemm::gemm`
//! (`gemm.cu`, the heads as a batch whose stride is the head size, read in place from
//! the `[B, T, nh·d]` layout), and the Tq×T blocks of every (batch, head) pair live in
//! global memory: S is written straight into P's buffer (`probs` when the caller keeps
//! it), and the row kernels of `attention.cu` turn it into P (and P' = P ⊙ M under
//! dropout, M redrawn from the CPU's ChaCha8 streams, `chacha.cuh`).

use super::gemm::{gemm, Dims, GpuMat, GpuMatMut};
use super::{count, launch, pick, scalar, GpuBuffer, GpuError, Kernel, KernelArg};
pub use crate::attention::Qkv;
use crate::attention::{AttentionShape, DropoutMask};
use crate::gemm::Strides;
use crate::Float;

pub const ENTRIES: &[&str] =
    &["attn_probs_f32", "attn_probs_f64", "attn_probs_bwd_f32", "attn_probs_bwd_f64"];

/// The dropout arguments of the row kernels: on/off, seed, threshold ⌊p·2³²⌋, keep factor
/// 1/(1−p) (0 when p = 1), exactly as the CPU's `DropoutMask` computes them.
fn dropout_args<T: Float>(dropout: Option<DropoutMask>) -> [KernelArg; 4] {
    match dropout {
        Some(dm) => {
            let keep = if dm.p < 1.0 { 1.0 / (1.0 - dm.p) } else { 0.0 };
            let threshold = (dm.p * 4_294_967_296.0) as u64;
            [KernelArg::U32(1), KernelArg::U64(dm.seed), KernelArg::U64(threshold), scalar::<T>(keep)]
        }
        None => [KernelArg::U32(0), KernelArg::U64(0), KernelArg::U64(0), scalar::<T>(0.0)],
    }
}

/// One head-batched product per batch item b: `C (m,n) = A·B` for the nh heads of b,
/// each operand either a head of a `[B, Tq, nh·d]` or `[B, T, nh·d]` buffer or a pair
/// block of a `[B·nh, Tq, T]` buffer (see [`Operand`]).
struct HeadProduct<'a, T: Float> {
    s: AttentionShape,
    m: usize,
    n: usize,
    k: usize,
    a: Operand<'a, T>,
    b: Operand<'a, T>,
}

/// An operand of a [`HeadProduct`] and how to read it.
struct Operand<'a, T: Float> {
    buf: &'a GpuBuffer<T>,
    layout: Layout,
}

impl<'a, T: Float> Operand<'a, T> {
    /// Batch item b's heads (or pairs) as one batched operand.
    fn item(&self, s: AttentionShape, b: usize) -> GpuMat<'a, T> {
        let (offset, strides) = self.layout.place(s, b);
        GpuMat::new(self.buf, strides).at(offset)
    }
}

#[derive(Clone, Copy)]
enum Layout {
    /// A head of q, o or their gradients `[B, Tq, nh·d]`, read as (Tq, d).
    Queries,
    /// A head of k, v or their gradients `[B, T, nh·d]`, read as (T, d), or as (d, T)
    /// when transposed.
    Keys { transposed: bool },
    /// A pair's block of `[B·nh, Tq, T]`, read as is or transposed.
    Pairs { transposed: bool },
}

impl Layout {
    /// (offset of batch item b, strides over heads, rows and columns).
    fn place(self, s: AttentionShape, b: usize) -> (usize, Strides) {
        let (tq, t, d, hid) = (s.queries, s.seq, s.head_dim, s.heads * s.head_dim);
        let block = tq * t;
        match self {
            Layout::Queries => (b * tq * hid, Strides { batch: d, row: hid, col: 1 }),
            Layout::Keys { transposed: false } => (b * t * hid, Strides { batch: d, row: hid, col: 1 }),
            Layout::Keys { transposed: true } => (b * t * hid, Strides { batch: d, row: 1, col: hid }),
            Layout::Pairs { transposed: false } => {
                (b * s.heads * block, Strides { batch: block, row: t, col: 1 })
            }
            Layout::Pairs { transposed: true } => {
                (b * s.heads * block, Strides { batch: block, row: 1, col: t })
            }
        }
    }
}

impl<T: Float> HeadProduct<'_, T> {
    /// Overwrites C, laid out as `c_layout` (not transposed) in `c`.
    fn run(&self, c: &mut GpuBuffer<T>, c_layout: Layout) -> Result<(), GpuError> {
        let d = Dims::new(self.m, self.n, self.k).batched(self.s.heads);
        for b in 0..self.s.batch {
            let (a, bb) = (self.a.item(self.s, b), self.b.item(self.s, b));
            let (c_offset, sc) = c_layout.place(self.s, b);
            gemm(d, a, bb, T::ZERO, GpuMatMut::new(c, sc).at(c_offset))?;
        }
        Ok(())
    }
}

const QUERIES: Layout = Layout::Queries;
const KEYS: Layout = Layout::Keys { transposed: false };
const KEYS_T: Layout = Layout::Keys { transposed: true };
const PAIRS: Layout = Layout::Pairs { transposed: false };
const PAIRS_T: Layout = Layout::Pairs { transposed: true };

/// o = attention(q, k, v) as in the CPU twin. `probs`, when given, receives P for a
/// backward, negated where dropout dropped the entry; `key_mask` is (B, T) additive;
/// `dropout` None means none.
pub fn attention_forward<T: Float>(
    s: AttentionShape,
    Qkv { q, k, v }: Qkv<&GpuBuffer<T>>,
    key_mask: Option<&GpuBuffer<T>>,
    dropout: Option<DropoutMask>,
    o: &mut GpuBuffer<T>,
    probs: Option<&mut GpuBuffer<T>>,
) -> Result<(), GpuError> {
    let (tq, t, d) = (s.queries, s.seq, s.head_dim);
    let (nq, nkv) = (s.q_numel(), s.kv_numel());
    s.check(&[("q", q.len(), nq), ("k", k.len(), nkv), ("v", v.len(), nkv), ("o", o.len(), nq)]);
    if let Some(m) = key_mask {
        s.check(&[("key_mask", m.len(), s.batch * t)]);
    }
    if let Some(p) = &probs {
        s.check(&[("probs", p.len(), s.probs_numel())]);
    }
    if nq == 0 || nkv == 0 {
        return o.zero(); // no queries, no keys or heads of size 0: each output an empty sum
    }
    let ctx = q.context();
    let mut own_p;
    let p = match probs {
        Some(p) => p,
        None => {
            own_p = GpuBuffer::<T>::uninit(ctx, s.probs_numel())?;
            &mut own_p
        }
    };
    // S (Tq,T) = Q (Tq,d) · Kᵀ (d,T), into P's buffer
    let qk = HeadProduct {
        s,
        m: tq,
        n: t,
        k: d,
        a: Operand { buf: q, layout: QUERIES },
        b: Operand { buf: k, layout: KEYS_T },
    };
    qk.run(p, PAIRS)?;
    // P = softmax(scale·S + mask) in place, P' = P ⊙ M under dropout
    let pd = match dropout {
        Some(_) => Some(GpuBuffer::<T>::uninit(ctx, s.probs_numel())?),
        None => None,
    };
    let pairs = s.batch * s.heads;
    let kernel = Kernel { module: "attention", entry: pick::<T>("attn_probs_f32", "attn_probs_f64") };
    let [on, seed, threshold, keep] = dropout_args::<T>(dropout);
    let mask = KernelArg::Ptr(key_mask.map_or(0, |m| m.ptr()));
    let pd_arg = KernelArg::Ptr(pd.as_ref().map_or(0, |b| b.ptr()));
    let scale = scalar::<T>(1.0 / (d as f64).sqrt());
    let args = [
        p.arg(),
        mask,
        scale,
        on,
        seed,
        threshold,
        keep,
        p.arg(),
        pd_arg,
        count(pairs),
        count(s.heads),
        count(tq),
        count(t),
    ];
    ctx.launch(kernel, launch::rows(pairs * tq, launch::row_threads(t)), &args)?;
    // O (Tq,d) = P' (Tq,T) · V (T,d)
    let p_used: &GpuBuffer<T> = pd.as_ref().unwrap_or(p);
    let pv = HeadProduct {
        s,
        m: tq,
        n: d,
        k: t,
        a: Operand { buf: p_used, layout: PAIRS },
        b: Operand { buf: v, layout: KEYS },
    };
    pv.run(o, QUERIES)
}

/// `grads` = dq, dk, dv (overwritten) from do_ = dL/dO, with `probs` the P saved by the
/// forward (the signs of its entries marking what dropout dropped) and the same
/// `dropout` it used.
pub fn attention_backward<T: Float>(
    s: AttentionShape,
    Qkv { q, k, v }: Qkv<&GpuBuffer<T>>,
    probs: &GpuBuffer<T>,
    dropout: Option<DropoutMask>,
    do_: &GpuBuffer<T>,
    Qkv { q: dq, k: dk, v: dv }: Qkv<&mut GpuBuffer<T>>,
) -> Result<(), GpuError> {
    let (tq, t, d) = (s.queries, s.seq, s.head_dim);
    let (nq, nkv) = (s.q_numel(), s.kv_numel());
    s.check(&[("q", q.len(), nq), ("k", k.len(), nkv), ("v", v.len(), nkv), ("dO", do_.len(), nq)]);
    s.check(&[("dq", dq.len(), nq), ("dk", dk.len(), nkv), ("dv", dv.len(), nkv)]);
    s.check(&[("probs", probs.len(), s.probs_numel())]);
    if nq == 0 || nkv == 0 {
        // the forward was empty sums
        return [dq, dk, dv].into_iter().try_for_each(|g| g.zero());
    }
    let ctx = q.context();
    let op = |buf, layout| Operand { buf, layout };
    // dP' (Tq,T) = dO (Tq,d) · Vᵀ (d,T)
    let mut dp = GpuBuffer::<T>::uninit(ctx, s.probs_numel())?;
    HeadProduct { s, m: tq, n: t, k: d, a: op(do_, QUERIES), b: op(v, KEYS_T) }.run(&mut dp, PAIRS)?;
    // dP = dP' ⊙ M, P' = P ⊙ M, then dS = scale · P ⊙ (dP − rowsum(dP ⊙ P)) in dP's buffer
    let pd = match dropout {
        Some(_) => Some(GpuBuffer::<T>::uninit(ctx, s.probs_numel())?),
        None => None,
    };
    let pairs = s.batch * s.heads;
    let kernel = Kernel { module: "attention", entry: pick::<T>("attn_probs_bwd_f32", "attn_probs_bwd_f64") };
    let [on, _, _, keep] = dropout_args::<T>(dropout); // M is in the signs of the saved P
    let pd_arg = KernelArg::Ptr(pd.as_ref().map_or(0, |b| b.ptr()));
    let scale = scalar::<T>(1.0 / (d as f64).sqrt());
    let rows = pairs * tq;
    let args = [probs.arg(), dp.arg(), pd_arg, scale, on, keep, count(rows), count(t)];
    ctx.launch(kernel, launch::rows(rows, launch::row_threads(t)), &args)?;
    let p_used = pd.as_ref().unwrap_or(probs);
    // dV (T,d) = P'ᵀ (T,Tq) · dO (Tq,d)
    HeadProduct { s, m: t, n: d, k: tq, a: op(p_used, PAIRS_T), b: op(do_, QUERIES) }.run(dv, KEYS)?;
    // dQ (Tq,d) = dS (Tq,T) · K (T,d);  dK (T,d) = dSᵀ (T,Tq) · Q (Tq,d)   (scale is in dS)
    HeadProduct { s, m: tq, n: d, k: t, a: op(&dp, PAIRS), b: op(k, KEYS) }.run(dq, QUERIES)?;
    HeadProduct { s, m: t, n: d, k: tq, a: op(&dp, PAIRS_T), b: op(q, QUERIES) }.run(dk, KEYS)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::attention::{attention_backward_reference, attention_forward_reference};
    use crate::gpu::testing::{close, down, on, out, to, tol, up, wide};
    use crate::gpu::{test_contexts, GpuContext};
    use std::sync::Arc;

    fn values<T: Float>(len: usize, seed: f64) -> Vec<T> {
        to(&(0..len).map(|i| (i as f64 * 0.618 + seed).sin() * 1.5).collect::<Vec<_>>())
    }

    /// Forward (o and P; o again without saving P) and backward in T against the CPU's
    /// plain-loop references in f64 on the same inputs, without and with key padding
    /// and dropout (the same ChaCha8 mask): f64 to 1e-12, f32 within rounding (2e-5
    /// forward, 1e-4 backward).
    pub(crate) fn check<T: Float>(ctx: &Arc<GpuContext>, s: AttentionShape) {
        let (nq, nkv, seq) = (s.q_numel(), s.kv_numel(), s.seq);
        let (q, k, v, g) =
            (values::<T>(nq, 0.1), values::<T>(nkv, 1.3), values::<T>(nkv, 2.2), values::<T>(nq, 3.7));
        let mask: Vec<T> = to(&(0..s.batch * seq)
            .map(|i| if i % seq >= seq - seq / 3 && i % seq > 0 { -1e30 } else { 0.0 })
            .collect::<Vec<_>>());
        let (t_fwd, t_bwd) = (tol::<T>(2e-5, 1e-12), tol::<T>(1e-4, 1e-12));
        let (qb, kb, vb, gb, mb) = (up(ctx, &q), up(ctx, &k), up(ctx, &v), up(ctx, &g), up(ctx, &mask));
        for (masked, dropout) in [(false, None), (true, None), (true, Some(DropoutMask { p: 0.3, seed: 11 }))]
        {
            let what = format!("{s:?} mask {masked} dropout {dropout:?}, {}", on::<T>(ctx));
            let mw = wide(&mask);
            let key_mask = masked.then_some(&mw[..]);
            let (qw, kw, vw) = (wide(&q), wide(&k), wide(&v));
            let mut o = vec![0.0; nq];
            let qkv = Qkv { q: &qw[..], k: &kw[..], v: &vw[..] };
            let p = attention_forward_reference(s, qkv, key_mask, dropout, &mut o);
            let (mut dq, mut dk, mut dv) = (vec![0.0; nq], vec![0.0; nkv], vec![0.0; nkv]);
            let want = Qkv { q: &mut dq[..], k: &mut dk[..], v: &mut dv[..] };
            attention_backward_reference(s, qkv, &p, dropout, &wide(&g), want);
            let mo = masked.then_some(&mb);
            let qkv_b = Qkv { q: &qb, k: &kb, v: &vb };
            let (mut ob, mut pb) = (out::<T>(ctx, nq), out::<T>(ctx, s.probs_numel()));
            attention_forward(s, qkv_b, mo, dropout, &mut ob, Some(&mut pb)).unwrap();
            close(&down(&ob), &o, t_fwd, &format!("o {what}"));
            // the saved P marks the entries dropout dropped with their sign bit, as on the CPU
            let saved: Vec<f64> = down(&pb);
            let unsigned: Vec<f64> = saved.iter().map(|x| x.abs()).collect();
            close(&unsigned, &p, t_fwd, &format!("P {what}"));
            let mut cpu_saved = vec![T::ZERO; s.probs_numel()];
            crate::attention::attention_forward(
                s,
                Qkv { q: &q[..], k: &k[..], v: &v[..] },
                masked.then_some(&mask[..]),
                dropout,
                &mut vec![T::ZERO; nq],
                Some(&mut cpu_saved),
            );
            let signs = |x: &[f64]| x.iter().map(|v| v.is_sign_negative()).collect::<Vec<_>>();
            assert_eq!(
                signs(&saved),
                signs(&wide(&cpu_saved)),
                "the saved P's signs (the mask) differ from the CPU's: {what}"
            );
            let mut o2 = out::<T>(ctx, nq);
            attention_forward(s, qkv_b, mo, dropout, &mut o2, None).unwrap();
            assert_eq!(o2.to_host().unwrap(), ob.to_host().unwrap(), "o without saving P: {what}");
            let mut grads: Vec<GpuBuffer<T>> = [nq, nkv, nkv].iter().map(|&n| out(ctx, n)).collect();
            let [dqb, dkb, dvb] = &mut grads[..] else { unreachable!() };
            attention_backward(s, qkv_b, &pb, dropout, &gb, Qkv { q: dqb, k: dkb, v: dvb }).unwrap();
            close(&down(dqb), &dq, t_bwd, &format!("dq {what}"));
            close(&down(dkb), &dk, t_bwd, &format!("dk {what}"));
            close(&down(dvb), &dv, t_bwd, &format!("dv {what}"));
        }
    }

    /// Odd shapes, one head to several, rows shorter and longer than a warp, fewer
    /// queries than keys (a classifier's last layer) and more.
    #[test]
    fn matches_cpu_reference() {
        for ctx in test_contexts() {
            for (batch, queries, seq, heads, head_dim) in [
                (1, 1, 1, 1, 1),
                (2, 7, 7, 3, 5),
                (2, 20, 20, 2, 8),
                (1, 33, 33, 1, 3),
                (2, 1, 20, 2, 8),
                (1, 5, 33, 1, 3),
                (2, 9, 4, 3, 5),
            ] {
                let s = AttentionShape { batch, queries, seq, heads, head_dim };
                check::<f64>(&ctx, s);
                check::<f32>(&ctx, s);
            }
        }
    }
}
