//! Fused multi-head attention on the GPU; the CPU twin (and the math) is
//! `kernels/src/attention.rs`, with the same arguments and outputs.
//!
//! Correctness first: per batch item the products run through the tiled GEMM
//! (`gemm.cu`, the heads as a batch whose stride is the head size, read in place from
//! the `[B, T, nh·d]` layout), and the T×T blocks of every (batch, head) pair live in
//! global memory: S is written straight into P's buffer (`probs` when the caller keeps
//! it), and the row kernels of `attention.cu` turn it into P (and P' = P ⊙ M under
//! dropout, M redrawn from the CPU's ChaCha8 streams, `chacha.cuh`).

use super::gemm::{gemm, Gemm};
use super::{count, launch, pick, scalar, GpuBuffer, GpuError, Kernel, KernelArg};
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
/// each operand either a head of a `[B, T, nh·d]` buffer or a pair block of a
/// `[B·nh, T, T]` buffer (see [`Operand`]).
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

#[derive(Clone, Copy)]
enum Layout {
    /// A head of `[B, T, nh·d]`, read as (T, d), or as (d, T) when transposed.
    Head { transposed: bool },
    /// A pair's block of `[B·nh, T, T]`, read as is or transposed.
    Pairs { transposed: bool },
}

impl Layout {
    /// (offset of batch item b, strides over heads, rows and columns).
    fn place(self, s: AttentionShape, b: usize) -> (usize, Strides) {
        let (t, d, hid) = (s.seq, s.head_dim, s.heads * s.head_dim);
        match self {
            Layout::Head { transposed: false } => (b * t * hid, Strides { batch: d, row: hid, col: 1 }),
            Layout::Head { transposed: true } => (b * t * hid, Strides { batch: d, row: 1, col: hid }),
            Layout::Pairs { transposed: false } => {
                (b * s.heads * t * t, Strides { batch: t * t, row: t, col: 1 })
            }
            Layout::Pairs { transposed: true } => {
                (b * s.heads * t * t, Strides { batch: t * t, row: 1, col: t })
            }
        }
    }
}

impl<T: Float> HeadProduct<'_, T> {
    /// Overwrites C, laid out as `c_layout` (not transposed) in `c`.
    fn run(&self, c: &mut GpuBuffer<T>, c_layout: Layout) -> Result<(), GpuError> {
        for b in 0..self.s.batch {
            let (a_offset, sa) = self.a.layout.place(self.s, b);
            let (b_offset, sb) = self.b.layout.place(self.s, b);
            let (c_offset, sc) = c_layout.place(self.s, b);
            let (a, bb) = (self.a.buf, self.b.buf);
            let (batch, m, n, k) = (self.s.heads, self.m, self.n, self.k);
            gemm(Gemm {
                batch,
                m,
                n,
                k,
                a,
                a_offset,
                sa,
                b: bb,
                b_offset,
                sb,
                beta: T::ZERO,
                c,
                c_offset,
                sc,
            })?;
        }
        Ok(())
    }
}

const HEAD: Layout = Layout::Head { transposed: false };
const HEAD_T: Layout = Layout::Head { transposed: true };
const PAIRS: Layout = Layout::Pairs { transposed: false };
const PAIRS_T: Layout = Layout::Pairs { transposed: true };

fn check(s: AttentionShape, bufs: &[(&str, usize, usize)]) {
    for &(name, len, want) in bufs {
        assert!(len == want, "attention {s:?}: {name} has {len} elements, needs {want}");
    }
}

/// o = attention(q, k, v) as in the CPU twin. `probs`, when given, receives P (for a
/// backward); `key_mask` is (B, T) additive; `dropout` None means none.
#[allow(clippy::too_many_arguments)]
pub fn attention_forward<T: Float>(
    s: AttentionShape,
    q: &GpuBuffer<T>,
    k: &GpuBuffer<T>,
    v: &GpuBuffer<T>,
    key_mask: Option<&GpuBuffer<T>>,
    dropout: Option<DropoutMask>,
    o: &mut GpuBuffer<T>,
    probs: Option<&mut GpuBuffer<T>>,
) -> Result<(), GpuError> {
    let (n, t, d) = (s.numel(), s.seq, s.head_dim);
    check(s, &[("q", q.len(), n), ("k", k.len(), n), ("v", v.len(), n), ("o", o.len(), n)]);
    if let Some(m) = key_mask {
        check(s, &[("key_mask", m.len(), s.batch * t)]);
    }
    if let Some(p) = &probs {
        check(s, &[("probs", p.len(), s.probs_numel())]);
    }
    if n == 0 {
        return Ok(());
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
    // S (T,T) = Q (T,d) · Kᵀ (d,T), into P's buffer
    let qk = HeadProduct {
        s,
        m: t,
        n: t,
        k: d,
        a: Operand { buf: q, layout: HEAD },
        b: Operand { buf: k, layout: HEAD_T },
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
        count(t),
    ];
    ctx.launch(kernel, launch::rows(pairs * t, launch::row_threads(t)), &args)?;
    // O (T,d) = P' (T,T) · V (T,d)
    let p_used: &GpuBuffer<T> = pd.as_ref().unwrap_or(p);
    let pv = HeadProduct {
        s,
        m: t,
        n: d,
        k: t,
        a: Operand { buf: p_used, layout: PAIRS },
        b: Operand { buf: v, layout: HEAD },
    };
    pv.run(o, HEAD)
}

/// dq, dk, dv (overwritten) from do_ = dL/dO, with `probs` the P saved by the forward
/// and the same `dropout` (p and seed) it used.
#[allow(clippy::too_many_arguments)]
pub fn attention_backward<T: Float>(
    s: AttentionShape,
    q: &GpuBuffer<T>,
    k: &GpuBuffer<T>,
    v: &GpuBuffer<T>,
    probs: &GpuBuffer<T>,
    dropout: Option<DropoutMask>,
    do_: &GpuBuffer<T>,
    dq: &mut GpuBuffer<T>,
    dk: &mut GpuBuffer<T>,
    dv: &mut GpuBuffer<T>,
) -> Result<(), GpuError> {
    let (n, t, d) = (s.numel(), s.seq, s.head_dim);
    check(s, &[("q", q.len(), n), ("k", k.len(), n), ("v", v.len(), n), ("dO", do_.len(), n)]);
    check(s, &[("dq", dq.len(), n), ("dk", dk.len(), n), ("dv", dv.len(), n)]);
    check(s, &[("probs", probs.len(), s.probs_numel())]);
    if n == 0 {
        return Ok(());
    }
    let ctx = q.context();
    let op = |buf, layout| Operand { buf, layout };
    // dP' (T,T) = dO (T,d) · Vᵀ (d,T)
    let mut dp = GpuBuffer::<T>::uninit(ctx, s.probs_numel())?;
    HeadProduct { s, m: t, n: t, k: d, a: op(do_, HEAD), b: op(v, HEAD_T) }.run(&mut dp, PAIRS)?;
    // dP = dP' ⊙ M, P' = P ⊙ M, then dS = scale · P ⊙ (dP − rowsum(dP ⊙ P)) in dP's buffer
    let pd = match dropout {
        Some(_) => Some(GpuBuffer::<T>::uninit(ctx, s.probs_numel())?),
        None => None,
    };
    let pairs = s.batch * s.heads;
    let kernel = Kernel { module: "attention", entry: pick::<T>("attn_probs_bwd_f32", "attn_probs_bwd_f64") };
    let [on, seed, threshold, keep] = dropout_args::<T>(dropout);
    let pd_arg = KernelArg::Ptr(pd.as_ref().map_or(0, |b| b.ptr()));
    let scale = scalar::<T>(1.0 / (d as f64).sqrt());
    let args = [probs.arg(), dp.arg(), pd_arg, scale, on, seed, threshold, keep, count(pairs), count(t)];
    ctx.launch(kernel, launch::rows(pairs * t, launch::row_threads(t)), &args)?;
    let p_used = pd.as_ref().unwrap_or(probs);
    // dV (T,d) = P'ᵀ (T,T) · dO (T,d)
    HeadProduct { s, m: t, n: d, k: t, a: op(p_used, PAIRS_T), b: op(do_, HEAD) }.run(dv, HEAD)?;
    // dQ (T,d) = dS (T,T) · K (T,d);  dK (T,d) = dSᵀ (T,T) · Q (T,d)   (scale is in dS)
    HeadProduct { s, m: t, n: d, k: t, a: op(&dp, PAIRS), b: op(k, HEAD) }.run(dq, HEAD)?;
    HeadProduct { s, m: t, n: d, k: t, a: op(&dp, PAIRS_T), b: op(q, HEAD) }.run(dk, HEAD)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::attention::{attention_backward_reference, attention_forward_reference};
    use crate::gpu::test_contexts;

    /// The row kernels' and products' launches fit their PTX `.param` lists, with mask
    /// and dropout, f32 and f64 (no GPU needed).
    #[test]
    fn launches_fit_their_entries() {
        fn run<T: Float>() {
            let ctx = crate::gpu::param_check::context();
            let s = AttentionShape { batch: 2, seq: 3, heads: 2, head_dim: 4 };
            let z = |n| GpuBuffer::<T>::zeros(&ctx, n).unwrap();
            let (q, k, v, mask) = (z(s.numel()), z(s.numel()), z(s.numel()), z(6));
            let (mut o, mut p) = (z(s.numel()), z(s.probs_numel()));
            let dropout = Some(DropoutMask { p: 0.1, seed: 3 });
            attention_forward(s, &q, &k, &v, Some(&mask), dropout, &mut o, Some(&mut p)).unwrap();
            let (mut dq, mut dk, mut dv) = (z(s.numel()), z(s.numel()), z(s.numel()));
            attention_backward(s, &q, &k, &v, &p, dropout, &o, &mut dq, &mut dk, &mut dv).unwrap();
        }
        run::<f32>();
        run::<f64>();
    }

    fn values(len: usize, seed: f64) -> Vec<f64> {
        (0..len).map(|i| (i as f64 * 0.618 + seed).sin() * 1.5).collect()
    }

    fn close(got: &[f64], want: &[f64], tol: f64, what: &str) {
        assert_eq!(got.len(), want.len(), "{what}");
        for (i, (g, w)) in got.iter().zip(want).enumerate() {
            assert!((g - w).abs() <= tol * (1.0 + w.abs()), "{what} at {i}: {g} vs {w}");
        }
    }

    /// Forward (o and P) and backward against the CPU's plain-loop references, with and
    /// without padding and dropout (the same ChaCha8 mask), odd shapes; f64 to 1e-12,
    /// f32 within rounding.
    #[test]
    fn matches_cpu_reference() {
        for ctx in test_contexts() {
            for (batch, seq, heads, head_dim) in [(1, 1, 1, 1), (2, 7, 3, 5), (2, 20, 2, 8), (1, 33, 1, 3)] {
                let s = AttentionShape { batch, seq, heads, head_dim };
                let n = s.numel();
                let (q, k, v, g) = (values(n, 0.1), values(n, 1.3), values(n, 2.2), values(n, 3.7));
                let mask: Vec<f64> = (0..batch * seq)
                    .map(|i| if i % seq >= seq - seq / 3 && i % seq > 0 { -1e30 } else { 0.0 })
                    .collect();
                for (masked, dropout) in
                    [(false, None), (true, None), (true, Some(DropoutMask { p: 0.3, seed: 11 }))]
                {
                    let what = format!("{s:?} mask {masked} dropout {dropout:?} on {}", ctx.name());
                    let key_mask = masked.then_some(&mask[..]);
                    let mut o = vec![0.0; n];
                    let p = attention_forward_reference(s, &q, &k, &v, key_mask, dropout, &mut o);
                    let (mut dq, mut dk, mut dv) = (vec![0.0; n], vec![0.0; n], vec![0.0; n]);
                    attention_backward_reference(s, &q, &k, &v, &p, dropout, &g, &mut dq, &mut dk, &mut dv);
                    let up = |x: &[f64]| GpuBuffer::from_host(&ctx, x).unwrap();
                    let (qb, kb, vb, gb, mb) = (up(&q), up(&k), up(&v), up(&g), up(&mask));
                    let mb = masked.then_some(&mb);
                    let mut ob = GpuBuffer::<f64>::uninit(&ctx, n).unwrap();
                    let mut pb = GpuBuffer::<f64>::uninit(&ctx, s.probs_numel()).unwrap();
                    attention_forward(s, &qb, &kb, &vb, mb, dropout, &mut ob, Some(&mut pb)).unwrap();
                    close(&ob.to_host().unwrap(), &o, 1e-12, &format!("o {what}"));
                    close(&pb.to_host().unwrap(), &p, 1e-12, &format!("P {what}"));
                    let mut o2 = GpuBuffer::<f64>::uninit(&ctx, n).unwrap();
                    attention_forward(s, &qb, &kb, &vb, mb, dropout, &mut o2, None).unwrap();
                    assert_eq!(o2.to_host().unwrap(), ob.to_host().unwrap(), "o without saving P: {what}");
                    let mut grads: Vec<GpuBuffer<f64>> =
                        (0..3).map(|_| GpuBuffer::uninit(&ctx, n).unwrap()).collect();
                    let [dqb, dkb, dvb] = &mut grads[..] else { unreachable!() };
                    attention_backward(s, &qb, &kb, &vb, &pb, dropout, &gb, dqb, dkb, dvb).unwrap();
                    close(&dqb.to_host().unwrap(), &dq, 1e-12, &format!("dq {what}"));
                    close(&dkb.to_host().unwrap(), &dk, 1e-12, &format!("dk {what}"));
                    close(&dvb.to_host().unwrap(), &dv, 1e-12, &format!("dv {what}"));
                    // f32: the same within rounding
                    let f = |x: &[f64]| {
                        GpuBuffer::from_host(&ctx, &x.iter().map(|&a| a as f32).collect::<Vec<_>>()).unwrap()
                    };
                    let (qb, kb, vb, mb) = (f(&q), f(&k), f(&v), f(&mask));
                    let mb = masked.then_some(&mb);
                    let mut ob = GpuBuffer::<f32>::uninit(&ctx, n).unwrap();
                    let mut pb = GpuBuffer::<f32>::uninit(&ctx, s.probs_numel()).unwrap();
                    attention_forward(s, &qb, &kb, &vb, mb, dropout, &mut ob, Some(&mut pb)).unwrap();
                    let back = |b: &GpuBuffer<f32>| {
                        b.to_host().unwrap().iter().map(|&x| x as f64).collect::<Vec<f64>>()
                    };
                    close(&back(&ob), &o, 2e-5, &format!("f32 o {what}"));
                    let gb = f(&g);
                    let mut grads: Vec<GpuBuffer<f32>> =
                        (0..3).map(|_| GpuBuffer::uninit(&ctx, n).unwrap()).collect();
                    let [dqb, dkb, dvb] = &mut grads[..] else { unreachable!() };
                    attention_backward(s, &qb, &kb, &vb, &pb, dropout, &gb, dqb, dkb, dvb).unwrap();
                    close(&back(dqb), &dq, 1e-4, &format!("f32 dq {what}"));
                    close(&back(dkb), &dk, 1e-4, &format!("f32 dk {what}"));
                    close(&back(dvb), &dv, 1e-4, &format!("f32 dv {what}"));
                }
            }
        }
    }
}
