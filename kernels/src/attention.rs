//! Fused multi-head scaled dot-product attention, with the heads side by side in
//! the hidden dim (the layout the Q, K, V projections produce), so no permutes.
//!
//! ```text
//! q, o        (B, Tq, nh·d)  head h in columns h·d .. (h+1)·d of every row
//! k, v        (B, T, nh·d)
//! key_mask    (B, T)         additive: 0 for a real key, a very negative number for padding
//! probs       (B, nh, Tq, T) the softmax P, kept by the forward for the backward, with
//!                            the sign bit of each entry dropout dropped set (below)
//! ```
//!
//! Self-attention has Tq = T. A model that reads the output at its first positions only
//! (a classifier's last layer reads `[CLS]`) passes the queries of those positions alone:
//! query i sees the same keys, mask and dropout row as in the full block, so its output
//! is row i of the full attention's, at Tq/T of the cost.
//!
//! For each batch item b and head h, with scale = 1/√d and a dropout keep-mask M
//! (each entry kept with probability 1−p):
//!
//! ```text
//! S  = scale · Q Kᵀ + mask_b          (Tq,T)
//! P  = softmax of each row of S       (Tq,T)
//! P' = P ⊙ M / (1−p)                  (Tq,T)
//! O  = P' V                           (Tq,d)
//! ```
//!
//! and backward, given dO:
//!
//! ```text
//! dP' = dO Vᵀ                         dV = P'ᵀ dO
//! dP  = dP' ⊙ M / (1−p)
//! dS  = P ⊙ (dP − rowsum(dP ⊙ P))     (softmax backward)
//! dQ  = scale · dS K                  dK = scale · dSᵀ Q
//! ```
//!
//! Without a P to keep and without dropout (evaluation, f32), and with at least a
//! panel's worth of queries, the forward computes the same thing transposed, NR queries
//! at a time, on the micro-kernel's packed panels (`panels`): Sᵀ = K Qᵀ, the softmax
//! down its columns (the mask on its rows), and Oᵀ = Vᵀ Pᵀ, with Pᵀ already laid out as
//! the product's packed operand. Fewer queries (a classifier's one `[CLS]` query) take
//! the row path below, which then computes no scores it does not keep.
//!
//! `attention_forward_bf16` and `attention_backward_bf16` (`--precision bf16`) are the
//! same kernels with each product's two operands rounded to bf16 and f32 sums
//! (`bf16gemm`, one thread per pair): S = bf16(Q)·bf16(K)ᵀ, O = bf16(P')·bf16(V), and in
//! the backward bf16(dO)·bf16(V)ᵀ, bf16(P')ᵀ·bf16(dO), bf16(scale·dS)·bf16(K) and
//! bf16(scale·dS)ᵀ·bf16(Q). The softmax, the dropout and every stored value stay f32, as
//! under PyTorch's autocast; they take the row path, evaluation too.
//!
//! The (b, h) pairs are independent, so threads take them one at a time and keep S,
//! P' and the dropout bits in per-thread scratch: a 256-token head's T×T block is
//! 256 KiB and stays in L2. Only P reaches memory, and only when a backward needs it.
//! Pair `i` draws its mask M from ChaCha8 stream `i` of `seed`, row by row (entry (q, j)
//! is word q·T + j of the stream, whatever Tq is). The mask
//! travels to the backward inside the saved P, at no cost in memory: P ≥ 0, so its
//! sign bit is free, and the forward saves −P (−0.0 for a P of 0) where M dropped the
//! entry. The backward reads M back from the signs (`softmax_dropout_backward`, which
//! also turns dP' into scale·dS in place, a row at a time) instead of drawing the
//! stream again. [`attention_forward_reference`] and
//! [`attention_backward_reference`] are the same math as plain loops, from the
//! unsigned P and the mask drawn anew.

use crate::gemm::{Dims, MatMut, MatRef};
use crate::sgemm::reference::gemm_reference;
use crate::sgemm::{isa, sgemm_with};
use crate::threads::{num_threads, run_parts, SharedMut};
use crate::{as_f32, as_f32_mut, softmax, Float};
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::sync::atomic::{AtomicUsize, Ordering};

mod panels;
mod reference;
mod softmax_backward;

pub use reference::{
    attention_backward_bf16_reference, attention_backward_reference, attention_forward_bf16_reference,
    attention_forward_reference,
};

use softmax_backward::{softmax_dropout_backward, SoftmaxBackward};

/// Q, K and V `(B, T, nh·d)`, read (`B = &[T]`), or their gradients, written
/// (`B = &mut [T]`); on the GPU the same over device buffers.
#[derive(Clone, Copy, Debug)]
pub struct Qkv<B> {
    pub q: B,
    pub k: B,
    pub v: B,
}

/// Batch B, query positions Tq, key (and value) positions T, heads nh and head size d.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AttentionShape {
    pub batch: usize,
    pub queries: usize,
    pub seq: usize,
    pub heads: usize,
    pub head_dim: usize,
}

impl AttentionShape {
    /// Self-attention over `seq` positions: Tq = T.
    pub const fn square(batch: usize, seq: usize, heads: usize, head_dim: usize) -> Self {
        AttentionShape { batch, queries: seq, seq, heads, head_dim }
    }
    /// Elements of q or o: B·Tq·nh·d.
    pub fn q_numel(&self) -> usize {
        self.batch * self.queries * self.hidden()
    }
    /// Elements of k or v: B·T·nh·d.
    pub fn kv_numel(&self) -> usize {
        self.batch * self.seq * self.hidden()
    }
    /// Elements of the saved probabilities: B·nh·Tq·T.
    pub fn probs_numel(&self) -> usize {
        self.batch * self.heads * self.queries * self.seq
    }
    fn pairs(&self) -> usize {
        self.batch * self.heads
    }
    fn hidden(&self) -> usize {
        self.heads * self.head_dim
    }
    /// Asserts that each `(name, len, want)` buffer has its `want` elements (both
    /// devices' kernels call it before any work).
    pub(crate) fn check(&self, bufs: &[(&str, usize, usize)]) {
        for &(name, len, want) in bufs {
            assert!(len == want, "attention {self:?}: {name} has {len} elements, needs {want}");
        }
    }
    /// Where head h of batch item b starts in q or o (rows are `hidden()` apart).
    fn q_offset(&self, pair: usize) -> usize {
        let (b, h) = (pair / self.heads, pair % self.heads);
        b * self.queries * self.hidden() + h * self.head_dim
    }
    /// Where head h of batch item b starts in k or v.
    fn kv_offset(&self, pair: usize) -> usize {
        let (b, h) = (pair / self.heads, pair % self.heads);
        b * self.seq * self.hidden() + h * self.head_dim
    }
}

/// Inverted dropout on the attention probabilities: entry kept when its random u32
/// is at least p·2³² (probability 1−p), then scaled by 1/(1−p).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct DropoutMask {
    pub p: f64,
    pub seed: u64,
}

impl DropoutMask {
    /// The generator of pair `pair`'s mask: its own ChaCha8 stream, so the mask does
    /// not depend on which thread takes the pair.
    fn rng(&self, pair: usize) -> ChaCha8Rng {
        let mut rng = ChaCha8Rng::seed_from_u64(self.seed);
        rng.set_stream(pair as u64);
        rng
    }
    /// The factor of a kept entry, 1/(1−p) (0 when p = 1: nothing is kept).
    fn keep<T: Float>(&self) -> T {
        T::from_f64(crate::dropout::keep_scale(self.p))
    }
    /// The next row's keep factors m/(1−p) ∈ {0, 1/(1−p)}, from `bits` as scratch: the
    /// reference's spelling, an entry kept when its u32 is at least ⌊p·2³²⌋ as a u64.
    fn next_row<T: Float>(&self, rng: &mut ChaCha8Rng, bits: &mut [u32], factors: &mut [T]) {
        let (threshold, keep) = ((self.p * 4_294_967_296.0) as u64, self.keep());
        rng.fill(bits);
        for (f, &u) in factors.iter_mut().zip(bits.iter()) {
            *f = if (u as u64) < threshold { T::ZERO } else { keep };
        }
    }
}

/// How a call runs: on how many threads, and whether its products round their operands to
/// bf16 (f32 data only; the f32 products otherwise).
#[derive(Clone, Copy, Debug)]
struct Run {
    threads: usize,
    bf16: bool,
}

impl Run {
    /// All the threads, the products in f32 or (`bf16`) bf16; bf16 asks for f32 data.
    fn new<T: Float>(bf16: bool) -> Run {
        assert!(!bf16 || T::DTYPE == "F32", "attention: bf16 products take f32 data, not {}", T::DTYPE);
        Run { threads: num_threads(), bf16 }
    }
}

/// `c (m,n) = A·B` on one thread (c row-major, overwritten), the operands rounded to bf16
/// (f32 sums) when `bf16`.
fn gemm<T: Float>(bf16: bool, d: Dims, a: MatRef<T>, b: MatRef<T>, c: &mut [T]) {
    let c = MatMut::rows(c, d.n);
    match (a.as_f32(), b.as_f32(), c.as_f32()) {
        (Some(af), Some(bf), Ok(cf)) if bf16 => {
            crate::bf16gemm::bf16gemm_with(crate::bf16gemm::path(), 1, d, af, bf, 0.0, cf);
        }
        (Some(af), Some(bf), Ok(cf)) => {
            let isa = isa();
            crate::isa::note(crate::isa::Family::Attention, isa);
            sgemm_with(isa, 1, d, af, bf, 0.0, cf);
        }
        (_, _, Ok(_)) => unreachable!("A, B and C have one element type"),
        (_, _, Err(c)) => gemm_reference(d, a, b, T::ZERO, c),
    }
}

/// Runs `f(pair)` for every (b, h) pair, the pairs handed out one at a time to the threads;
/// `scratch()` makes each thread's scratch once.
fn for_each_pair<S>(
    nthreads: usize,
    pairs: usize,
    scratch: impl Fn() -> S + Sync,
    f: impl Fn(usize, &mut S) + Sync,
) {
    crate::threads::ensure_ftz();
    let next = AtomicUsize::new(0);
    run_parts(nthreads.min(pairs), |_| {
        crate::threads::ensure_ftz();
        let mut s = scratch();
        loop {
            let pair = next.fetch_add(1, Ordering::Relaxed);
            if pair >= pairs {
                break;
            }
            f(pair, &mut s);
        }
    });
}

/// Copies a contiguous (rows, d) head into its columns of a (B, rows, nh·d) buffer,
/// starting at `base` (`q_offset` or `kv_offset` of the pair).
///
/// # Safety
/// As [`SharedMut::range`]: no other thread writes this pair's columns.
unsafe fn scatter_head<T: Float>(s: AttentionShape, base: usize, head: &[T], out: &SharedMut<T>) {
    let d = s.head_dim;
    for (i, row) in head.chunks_exact(d).enumerate() {
        let at = base + i * s.hidden();
        out.range(at..at + d).copy_from_slice(row);
    }
}

/// o = attention(q, k, v) as in the module docs. `probs`, when given, receives P for a
/// backward, negated where dropout dropped the entry; `key_mask` is (B, T) additive;
/// `dropout` None means none.
pub fn attention_forward<T: Float>(
    s: AttentionShape,
    qkv: Qkv<&[T]>,
    key_mask: Option<&[T]>,
    dropout: Option<DropoutMask>,
    o: &mut [T],
    probs: Option<&mut [T]>,
) {
    attention_forward_with(Run::new::<T>(false), s, qkv, key_mask, dropout, o, probs)
}

/// [`attention_forward`] with its two products in bf16 (operands rounded, f32 sums; module
/// doc), for `--precision bf16`.
///
/// # Panics
/// If `T` is not f32 (bf16 precision is an f32 mode), and as [`attention_forward`].
pub fn attention_forward_bf16<T: Float>(
    s: AttentionShape,
    qkv: Qkv<&[T]>,
    key_mask: Option<&[T]>,
    dropout: Option<DropoutMask>,
    o: &mut [T],
    probs: Option<&mut [T]>,
) {
    attention_forward_with(Run::new::<T>(true), s, qkv, key_mask, dropout, o, probs)
}

fn attention_forward_with<T: Float>(
    run: Run,
    s: AttentionShape,
    Qkv { q, k, v }: Qkv<&[T]>,
    key_mask: Option<&[T]>,
    dropout: Option<DropoutMask>,
    o: &mut [T],
    probs: Option<&mut [T]>,
) {
    let (t, tq, d, hid) = (s.seq, s.queries, s.head_dim, s.hidden());
    let (nq, nkv) = (s.q_numel(), s.kv_numel());
    s.check(&[("q", q.len(), nq), ("k", k.len(), nkv), ("v", v.len(), nkv), ("o", o.len(), nq)]);
    if let Some(m) = key_mask {
        s.check(&[("key_mask", m.len(), s.batch * t)]);
    }
    if let Some(p) = &probs {
        s.check(&[("probs", p.len(), s.probs_numel())]);
    }
    if nq == 0 || nkv == 0 {
        o.fill(T::ZERO); // no queries, no keys or heads of size 0: each output an empty sum
        return;
    }
    let isa = isa();
    if probs.is_none() && dropout.is_none() && !run.bf16 && panels::pays(isa, tq) {
        // evaluation in f32 with a panel's worth of queries: the panels path (module doc)
        if let (Some(q), Some(k), Some(v), Some(o)) = (as_f32(q), as_f32(k), as_f32(v), as_f32_mut(&mut *o)) {
            let mask = key_mask.map(|m| as_f32(m).expect("T is f32"));
            return eval_forward(isa, run.threads, s, Qkv { q, k, v }, mask, o);
        }
    }
    let scale = T::from_f64(1.0 / (d as f64).sqrt());
    let (o, probs) = (SharedMut::new(o), probs.map(SharedMut::new));
    // scratch: S (Tq,T), P (Tq,T) unless saved, a row's dropout bits, O_head (Tq,d)
    let scratch = || {
        let p_tmp = if probs.is_some() { 0 } else { tq * t };
        (vec![T::ZERO; tq * t], vec![T::ZERO; p_tmp], vec![0u32; t], vec![T::ZERO; tq * d])
    };
    for_each_pair(run.threads, s.pairs(), scratch, |pair, (sc, p_tmp, bits, o_head)| {
        let (qo, ko) = (s.q_offset(pair), s.kv_offset(pair));
        let mask = key_mask.map(|m| &m[(pair / s.heads) * t..][..t]);
        // S (Tq,T) = Q (Tq,d) · Kᵀ (d,T), both read in place (rows hid apart)
        gemm(run.bf16, Dims::new(tq, t, d), MatRef::rows(&q[qo..], hid), MatRef::cols(&k[ko..], hid), sc);
        // SAFETY: pair `pair` alone owns probs[pair·Tq·T ..][..Tq·T].
        let p = match &probs {
            Some(pr) => unsafe { pr.range(pair * tq * t..(pair + 1) * tq * t) },
            None => &mut p_tmp[..],
        };
        // P = softmax(scale·S + mask), row by row, on this thread
        softmax::scaled_softmax_rows(sc, t, scale, mask, p);
        // P' = P ⊙ M/(1−p), into S's buffer (S is no longer needed); P becomes −P where M
        // dropped the entry, the mask the backward reads back (module doc)
        let pd: &[T] = match dropout {
            Some(dm) => {
                let (mut rng, keep) = (dm.rng(pair), dm.keep::<T>());
                // no threshold (p within 2⁻³³ of 1): nothing is kept
                let (any, threshold) = match crate::dropout::keep_threshold(dm.p) {
                    Some(t) => (true, t),
                    None => (false, 0),
                };
                for (prow, drow) in p.chunks_exact_mut(t).zip(sc.chunks_exact_mut(t)) {
                    rng.fill(&mut bits[..]);
                    for ((pv, x), &u) in prow.iter_mut().zip(drow.iter_mut()).zip(bits.iter()) {
                        let kept = any && u >= threshold;
                        let (f, sign) = if kept { (keep, T::ONE) } else { (T::ZERO, -T::ONE) };
                        *x = *pv * f;
                        *pv *= sign;
                    }
                }
                sc
            }
            None => p,
        };
        // O (Tq,d) = P' (Tq,T) · V (T,d)
        gemm(run.bf16, Dims::new(tq, d, t), MatRef::rows(pd, t), MatRef::rows(&v[ko..], hid), o_head);
        // SAFETY: pair `pair` alone writes its head's columns of o.
        unsafe { scatter_head(s, qo, o_head, &o) };
    });
}

/// The evaluation forward in f32 (no P saved, no dropout): each pair on the micro-kernel's
/// panels (`panels::eval_pair`), its O scattered into its head's columns. The shapes
/// and lengths were checked by the caller; no buffer is empty.
fn eval_forward(
    isa: crate::sgemm::Isa,
    nthreads: usize,
    s: AttentionShape,
    qkv: Qkv<&[f32]>,
    key_mask: Option<&[f32]>,
    o: &mut [f32],
) {
    let shape = panels::PairShape::of(s);
    crate::isa::note(crate::isa::Family::Attention, isa);
    let o = SharedMut::new(o);
    for_each_pair(nthreads, s.pairs(), panels::Scratch::default, |pair, bufs| {
        let head = panels::Head::of(s, pair, qkv, key_mask, &o);
        // SAFETY: pair `pair` alone writes its head's columns of o.
        unsafe { panels::eval_pair(isa, shape, &head, bufs) };
    });
}

/// `grads` = dq, dk, dv (overwritten) from do_ = dL/dO, with `probs` the P saved by the
/// forward (the signs of its entries marking what dropout dropped) and the same
/// `dropout` it used.
pub fn attention_backward<T: Float>(
    s: AttentionShape,
    qkv: Qkv<&[T]>,
    probs: &[T],
    dropout: Option<DropoutMask>,
    do_: &[T],
    grads: Qkv<&mut [T]>,
) {
    attention_backward_with(Run::new::<T>(false), s, qkv, probs, dropout, do_, grads)
}

/// [`attention_backward`] with its four products in bf16 (operands rounded, f32 sums;
/// module doc): the backward of [`attention_forward_bf16`].
///
/// # Panics
/// If `T` is not f32, and as [`attention_backward`].
pub fn attention_backward_bf16<T: Float>(
    s: AttentionShape,
    qkv: Qkv<&[T]>,
    probs: &[T],
    dropout: Option<DropoutMask>,
    do_: &[T],
    grads: Qkv<&mut [T]>,
) {
    attention_backward_with(Run::new::<T>(true), s, qkv, probs, dropout, do_, grads)
}

fn attention_backward_with<T: Float>(
    run: Run,
    s: AttentionShape,
    Qkv { q, k, v }: Qkv<&[T]>,
    probs: &[T],
    dropout: Option<DropoutMask>,
    do_: &[T],
    Qkv { q: dq, k: dk, v: dv }: Qkv<&mut [T]>,
) {
    let (t, tq, d, hid) = (s.seq, s.queries, s.head_dim, s.hidden());
    let (nq, nkv) = (s.q_numel(), s.kv_numel());
    s.check(&[("q", q.len(), nq), ("k", k.len(), nkv), ("v", v.len(), nkv), ("dO", do_.len(), nq)]);
    s.check(&[("dq", dq.len(), nq), ("dk", dk.len(), nkv), ("dv", dv.len(), nkv)]);
    s.check(&[("probs", probs.len(), s.probs_numel())]);
    if nq == 0 || nkv == 0 {
        [dq, dk, dv].into_iter().for_each(|g| g.fill(T::ZERO)); // the forward was empty sums
        return;
    }
    let scale = T::from_f64(1.0 / (d as f64).sqrt());
    let keep = dropout.map(|dm| dm.keep::<T>());
    let (dq, dk, dv) = (SharedMut::new(dq), SharedMut::new(dk), SharedMut::new(dv));
    // scratch: dP', then scale·dS (Tq,T); P' (Tq,T) with dropout; a head's gradient
    // (Tq,d) or (T,d)
    let scratch = || {
        let pd = if dropout.is_some() { tq * t } else { 0 };
        (vec![T::ZERO; tq * t], vec![T::ZERO; pd], vec![T::ZERO; tq.max(t) * d])
    };
    let bf16 = run.bf16;
    for_each_pair(run.threads, s.pairs(), scratch, |pair, (dp, pd, g_head)| {
        let (qo, ko) = (s.q_offset(pair), s.kv_offset(pair));
        let saved = &probs[pair * tq * t..(pair + 1) * tq * t];
        // dP' (Tq,T) = dO (Tq,d) · Vᵀ (d,T)
        gemm(bf16, Dims::new(tq, t, d), MatRef::rows(&do_[qo..], hid), MatRef::cols(&v[ko..], hid), dp);
        // dP' becomes scale·dS in place (the dropout's and the softmax's backward), and
        // with dropout P' is rebuilt from the saved P and its signs
        softmax_dropout_backward(SoftmaxBackward { saved, t, keep, scale }, dp, pd);
        let (p_dropped, ds) = (if dropout.is_some() { &pd[..] } else { saved }, &dp[..]);
        // SAFETY (the three scatters): pair `pair` alone writes its head's columns.
        // dV (T,d) = P'ᵀ (T,Tq) · dO (Tq,d)
        let gk = &mut g_head[..t * d];
        gemm(bf16, Dims::new(t, d, tq), MatRef::cols(p_dropped, t), MatRef::rows(&do_[qo..], hid), gk);
        unsafe { scatter_head(s, ko, gk, &dv) };
        // dQ (Tq,d) = (scale·dS) (Tq,T) · K (T,d)
        let gq = &mut g_head[..tq * d];
        gemm(bf16, Dims::new(tq, d, t), MatRef::rows(ds, t), MatRef::rows(&k[ko..], hid), gq);
        unsafe { scatter_head(s, qo, gq, &dq) };
        // dK (T,d) = (scale·dS)ᵀ (T,Tq) · Q (Tq,d)
        let gk = &mut g_head[..t * d];
        gemm(bf16, Dims::new(t, d, tq), MatRef::cols(ds, t), MatRef::rows(&q[qo..], hid), gk);
        unsafe { scatter_head(s, ko, gk, &dk) };
    });
}

#[cfg(test)]
mod tests;
