//! Fused multi-head scaled dot-product attention, with the heads side by side in
//! the hidden dim (the layout the Q, K, V projections produce), so no permutes.
//!
//! ```text
//! q, k, v, o  (B, T, nh·d)   head h in columns h·d .. (h+1)·d of every row
//! key_mask    (B, T)         additive: 0 for a real key, a very negative number for padding
//! probs       (B, nh, T, T)  the softmax P, kept by the forward for the backward, with
//!                            the sign bit of each entry dropout dropped set (below)
//! ```
//!
//! For each batch item b and head h, with scale = 1/√d and a dropout keep-mask M
//! (each entry kept with probability 1−p):
//!
//! ```text
//! S  = scale · Q Kᵀ + mask_b          (T,T)
//! P  = softmax of each row of S       (T,T)
//! P' = P ⊙ M / (1−p)                  (T,T)
//! O  = P' V                           (T,d)
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
//! Without a P to keep and without dropout (evaluation) the forward computes the same
//! thing transposed: Sᵀ = K Qᵀ, the softmax down its columns (the mask on its rows),
//! and O = P V with P read from Pᵀ, so the GEMM takes P as a column-major operand,
//! which it packs by plain copies instead of a transposing gather.
//!
//! The (b, h) pairs are independent, so threads take them one at a time and keep S,
//! P' and the dropout bits in per-thread scratch: a 256-token head's T×T block is
//! 256 KiB and stays in L2. Only P reaches memory, and only when a backward needs it.
//! Pair `i` draws its mask M from ChaCha8 stream `i` of `seed`, row by row. The mask
//! travels to the backward inside the saved P, at no cost in memory: P ≥ 0, so its
//! sign bit is free, and the forward saves −P (−0.0 for a P of 0) where M dropped the
//! entry. The backward reads M back from the signs (`unmask`) instead of
//! drawing the stream again. [`attention_forward_reference`] and
//! [`attention_backward_reference`] are the same math as plain loops, from the
//! unsigned P and the mask drawn anew.

use crate::gemm::{Dims, MatMut, MatRef};
use crate::sgemm::reference::gemm_reference;
use crate::sgemm::{isa, sgemm_with};
use crate::threads::{num_threads, run_parts, SharedMut};
use crate::{softmax, Float};
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::sync::atomic::{AtomicUsize, Ordering};

/// Q, K and V `(B, T, nh·d)`, read (`B = &[T]`), or their gradients, written
/// (`B = &mut [T]`); on the GPU the same over device buffers.
#[derive(Clone, Copy, Debug)]
pub struct Qkv<B> {
    pub q: B,
    pub k: B,
    pub v: B,
}

/// Batch B, sequence T, heads nh and head size d.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AttentionShape {
    pub batch: usize,
    pub seq: usize,
    pub heads: usize,
    pub head_dim: usize,
}

impl AttentionShape {
    /// Elements of q, k, v or o: B·T·nh·d.
    pub fn numel(&self) -> usize {
        self.batch * self.seq * self.heads * self.head_dim
    }
    /// Elements of the saved probabilities: B·nh·T·T.
    pub fn probs_numel(&self) -> usize {
        self.batch * self.heads * self.seq * self.seq
    }
    fn pairs(&self) -> usize {
        self.batch * self.heads
    }
    fn hidden(&self) -> usize {
        self.heads * self.head_dim
    }
    /// Where head h of batch item b starts in q, k, v or o (rows are `hidden()` apart).
    fn head_offset(&self, pair: usize) -> usize {
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

/// `c (m,n) = A·B` on one thread (c row-major, overwritten).
fn gemm<T: Float>(d: Dims, a: MatRef<T>, b: MatRef<T>, c: &mut [T]) {
    let c = MatMut::rows(c, d.n);
    match (a.as_f32(), b.as_f32(), c.as_f32()) {
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

/// Copies a contiguous (T, d) head into its columns of a (B, T, nh·d) buffer.
///
/// # Safety
/// As [`SharedMut::range`]: no other thread writes this pair's columns.
unsafe fn scatter_head<T: Float>(s: AttentionShape, pair: usize, head: &[T], out: &SharedMut<T>) {
    let (d, base) = (s.head_dim, s.head_offset(pair));
    for (i, row) in head.chunks_exact(d).enumerate() {
        let at = base + i * s.hidden();
        out.range(at..at + d).copy_from_slice(row);
    }
}

fn check(s: AttentionShape, bufs: &[(&str, usize, usize)]) {
    for &(name, len, want) in bufs {
        assert!(len == want, "attention {s:?}: {name} has {len} elements, needs {want}");
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
    attention_forward_with(num_threads(), s, qkv, key_mask, dropout, o, probs)
}

fn attention_forward_with<T: Float>(
    nthreads: usize,
    s: AttentionShape,
    Qkv { q, k, v }: Qkv<&[T]>,
    key_mask: Option<&[T]>,
    dropout: Option<DropoutMask>,
    o: &mut [T],
    probs: Option<&mut [T]>,
) {
    let (n, t, d, hid) = (s.numel(), s.seq, s.head_dim, s.hidden());
    check(s, &[("q", q.len(), n), ("k", k.len(), n), ("v", v.len(), n), ("o", o.len(), n)]);
    if let Some(m) = key_mask {
        check(s, &[("key_mask", m.len(), s.batch * t)]);
    }
    if let Some(p) = &probs {
        check(s, &[("probs", p.len(), s.probs_numel())]);
    }
    if n == 0 {
        return; // no tokens, or heads of size 0: nothing to attend
    }
    let scale = T::from_f64(1.0 / (d as f64).sqrt());
    let (o, probs) = (SharedMut::new(o), probs.map(SharedMut::new));
    // Without a P to save or a dropout (evaluation), the scores go transposed (below).
    let transposed = probs.is_none() && dropout.is_none();
    // scratch: S (T,T), P (T,T) unless saved, a row's dropout bits, O_head (T,d),
    // the column maxima and sums of the transposed path (2T)
    let scratch = || {
        let (tt, p_tt) = (vec![T::ZERO; t * t], if transposed { 0 } else { t * t });
        (tt, vec![T::ZERO; p_tt], vec![0u32; t], vec![T::ZERO; t * d], vec![T::ZERO; 2 * t])
    };
    for_each_pair(nthreads, s.pairs(), scratch, |pair, (sc, p_tmp, bits, o_head, cols)| {
        let off = s.head_offset(pair);
        let mask = key_mask.map(|m| &m[(pair / s.heads) * t..][..t]);
        if transposed {
            // Sᵀ (T,T) = K (T,d) · Qᵀ (d,T): row j for key j, column i for query i
            gemm(Dims::new(t, t, d), MatRef::rows(&k[off..], hid), MatRef::cols(&q[off..], hid), sc);
            // Pᵀ = the softmax down each column of scale·Sᵀ + mask (mask[j] on row j), in place
            softmax::scaled_softmax_cols(sc, t, scale, mask, cols);
            // O (T,d) = P · V with P(i,j) = Pᵀ[j·T + i]: a column-major A, which the GEMM
            // packs by plain copies (a row-major P takes a transposing pack)
            gemm(Dims::new(t, d, t), MatRef::cols(sc, t), MatRef::rows(&v[off..], hid), o_head);
            // SAFETY: pair `pair` alone writes its head's columns of o.
            unsafe { scatter_head(s, pair, o_head, &o) };
            return;
        }
        // S (T,T) = Q (T,d) · Kᵀ (d,T), both read in place (rows hid apart)
        gemm(Dims::new(t, t, d), MatRef::rows(&q[off..], hid), MatRef::cols(&k[off..], hid), sc);
        // SAFETY: pair `pair` alone owns probs[pair·T² ..][..T²].
        let p = match &probs {
            Some(pr) => unsafe { pr.range(pair * t * t..(pair + 1) * t * t) },
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
        // O (T,d) = P' (T,T) · V (T,d)
        gemm(Dims::new(t, d, t), MatRef::rows(pd, t), MatRef::rows(&v[off..], hid), o_head);
        // SAFETY: pair `pair` alone writes its head's columns of o.
        unsafe { scatter_head(s, pair, o_head, &o) };
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
    attention_backward_with(num_threads(), s, qkv, probs, dropout, do_, grads)
}

fn attention_backward_with<T: Float>(
    nthreads: usize,
    s: AttentionShape,
    Qkv { q, k, v }: Qkv<&[T]>,
    probs: &[T],
    dropout: Option<DropoutMask>,
    do_: &[T],
    Qkv { q: dq, k: dk, v: dv }: Qkv<&mut [T]>,
) {
    let (n, t, d, hid) = (s.numel(), s.seq, s.head_dim, s.hidden());
    check(s, &[("q", q.len(), n), ("k", k.len(), n), ("v", v.len(), n), ("dO", do_.len(), n)]);
    check(s, &[("dq", dq.len(), n), ("dk", dk.len(), n), ("dv", dv.len(), n)]);
    check(s, &[("probs", probs.len(), s.probs_numel())]);
    if n == 0 {
        return;
    }
    let scale = T::from_f64(1.0 / (d as f64).sqrt());
    let (dq, dk, dv) = (SharedMut::new(dq), SharedMut::new(dk), SharedMut::new(dv));
    // scratch: dP' (T,T), P' (T,T), dS (T,T), a head's gradient (T,d)
    let scratch = || {
        let tt = || vec![T::ZERO; t * t];
        (tt(), tt(), tt(), vec![T::ZERO; t * d])
    };
    for_each_pair(nthreads, s.pairs(), scratch, |pair, (dp, pd, ds, g_head)| {
        let off = s.head_offset(pair);
        let saved = &probs[pair * t * t..(pair + 1) * t * t];
        // dP' (T,T) = dO (T,d) · Vᵀ (d,T)
        gemm(Dims::new(t, t, d), MatRef::rows(&do_[off..], hid), MatRef::cols(&v[off..], hid), dp);
        // the forward's P' = P ⊙ M/(1−p) again, and dP = dP' ⊙ M/(1−p) in place
        if let Some(dm) = dropout {
            unmask(saved, dm.keep(), pd, dp);
        }
        // SAFETY (the three scatters): pair `pair` alone writes its head's columns.
        // dV (T,d) = P'ᵀ (T,T) · dO (T,d)
        let p_dropped = if dropout.is_some() { &pd[..] } else { saved };
        gemm(Dims::new(t, d, t), MatRef::cols(p_dropped, t), MatRef::rows(&do_[off..], hid), g_head);
        unsafe { scatter_head(s, pair, g_head, &dv) };
        // P without the signs, into P''s buffer (free now)
        let p = match dropout {
            Some(_) => {
                pd.iter_mut().zip(saved).for_each(|(p, &sv)| *p = sv.abs());
                &pd[..]
            }
            None => saved,
        };
        // dS (T,T) = P ⊙ (dP − rowsum(dP ⊙ P)), row by row (the kernel adds into dS)
        ds.fill(T::ZERO);
        softmax::softmax_backward_rows(p, dp, t, ds);
        // dQ (T,d) = scale · dS (T,T) · K (T,d)
        gemm(Dims::new(t, d, t), MatRef::rows(ds, t), MatRef::rows(&k[off..], hid), g_head);
        g_head.iter_mut().for_each(|x| *x *= scale);
        unsafe { scatter_head(s, pair, g_head, &dq) };
        // dK (T,d) = scale · dSᵀ (T,T) · Q (T,d)
        gemm(Dims::new(t, d, t), MatRef::cols(ds, t), MatRef::rows(&q[off..], hid), g_head);
        g_head.iter_mut().for_each(|x| *x *= scale);
        unsafe { scatter_head(s, pair, g_head, &dk) };
    });
}

/// The backward's dropout step on one pair's (T,T) block, from `saved`, P as the forward
/// saved it (−P where M dropped the entry, so M = the entries whose sign bit is clear):
/// `pd` = P' = P ⊙ M/(1−p), and `dp` = dP' ⊙ M/(1−p) in place, with `keep` = 1/(1−p).
fn unmask<T: Float>(saved: &[T], keep: T, pd: &mut [T], dp: &mut [T]) {
    for ((&sv, pd), dp) in saved.iter().zip(pd.iter_mut()).zip(dp.iter_mut()) {
        let f = if sv.is_sign_negative() { T::ZERO } else { keep };
        *pd = sv.abs() * f;
        *dp *= f;
    }
}

/// The keep factors M/(1−p) of every pair, (B·nh, T, T), as the fast kernels draw them.
fn reference_factors<T: Float>(s: AttentionShape, dropout: Option<DropoutMask>) -> Vec<T> {
    let t = s.seq;
    let mut f = vec![T::ONE; s.probs_numel()];
    if let Some(dm) = dropout.filter(|_| t > 0) {
        let mut bits = vec![0u32; t];
        for (pair, fp) in f.chunks_exact_mut(t * t).enumerate() {
            let mut rng = dm.rng(pair);
            fp.chunks_exact_mut(t).for_each(|row| dm.next_row(&mut rng, &mut bits, row));
        }
    }
    f
}

/// [`attention_forward`] by plain loops (the same dropout mask). Returns P.
pub fn attention_forward_reference<T: Float>(
    s: AttentionShape,
    Qkv { q, k, v }: Qkv<&[T]>,
    key_mask: Option<&[T]>,
    dropout: Option<DropoutMask>,
    o: &mut [T],
) -> Vec<T> {
    let (t, d, nh, hid) = (s.seq, s.head_dim, s.heads, s.hidden());
    let scale = T::from_f64(1.0 / (d as f64).sqrt());
    let at = |b: usize, i: usize, h: usize, c: usize| (b * t + i) * hid + h * d + c;
    let f = reference_factors::<T>(s, dropout);
    let mut probs = vec![T::ZERO; s.probs_numel()];
    for b in 0..s.batch {
        for h in 0..nh {
            let pair = b * nh + h;
            for i in 0..t {
                let mut row: Vec<T> = (0..t)
                    .map(|j| {
                        let dot: T = (0..d).map(|c| q[at(b, i, h, c)] * k[at(b, j, h, c)]).sum();
                        dot * scale + key_mask.map_or(T::ZERO, |m| m[b * t + j])
                    })
                    .collect();
                let max = row.iter().fold(T::NEG_INFINITY, |m, &x| m.max(x));
                row.iter_mut().for_each(|x| *x = (*x - max).exp());
                let sum: T = row.iter().copied().sum();
                for j in 0..t {
                    probs[(pair * t + i) * t + j] = row[j] / sum;
                }
                for c in 0..d {
                    o[at(b, i, h, c)] = (0..t)
                        .map(|j| {
                            let ij = (pair * t + i) * t + j;
                            probs[ij] * f[ij] * v[at(b, j, h, c)]
                        })
                        .sum();
                }
            }
        }
    }
    probs
}

/// [`attention_backward`] by plain loops, from the P of [`attention_forward_reference`].
pub fn attention_backward_reference<T: Float>(
    s: AttentionShape,
    Qkv { q, k, v }: Qkv<&[T]>,
    probs: &[T],
    dropout: Option<DropoutMask>,
    do_: &[T],
    Qkv { q: dq, k: dk, v: dv }: Qkv<&mut [T]>,
) {
    let (t, d, nh, hid) = (s.seq, s.head_dim, s.heads, s.hidden());
    let scale = T::from_f64(1.0 / (d as f64).sqrt());
    let at = |b: usize, i: usize, h: usize, c: usize| (b * t + i) * hid + h * d + c;
    let f = reference_factors::<T>(s, dropout);
    for x in [&mut *dq, &mut *dk, &mut *dv] {
        x.fill(T::ZERO);
    }
    for b in 0..s.batch {
        for h in 0..nh {
            let pair = b * nh + h;
            let ij = |i: usize, j: usize| (pair * t + i) * t + j;
            for i in 0..t {
                // dP_ij = M_ij/(1−p) · Σ_c dO_ic V_jc
                let dp: Vec<T> = (0..t)
                    .map(|j| f[ij(i, j)] * (0..d).map(|c| do_[at(b, i, h, c)] * v[at(b, j, h, c)]).sum::<T>())
                    .collect();
                let dot: T = (0..t).map(|j| dp[j] * probs[ij(i, j)]).sum();
                for j in 0..t {
                    let ds = probs[ij(i, j)] * (dp[j] - dot) * scale;
                    for c in 0..d {
                        dv[at(b, j, h, c)] += probs[ij(i, j)] * f[ij(i, j)] * do_[at(b, i, h, c)];
                        dq[at(b, i, h, c)] += ds * k[at(b, j, h, c)];
                        dk[at(b, j, h, c)] += ds * q[at(b, i, h, c)];
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, RngExt};

    fn rand_vec<T: Float>(n: usize, rng: &mut impl Rng) -> Vec<T> {
        (0..n).map(|_| T::from_f64(rng.random_range(-1.5..1.5))).collect()
    }

    fn max_diff<T: Float>(a: &[T], b: &[T]) -> f64 {
        a.iter().zip(b).map(|(x, y)| (x.to_f64() - y.to_f64()).abs()).fold(0.0, f64::max)
    }

    /// Fast forward and backward against the loops, for f32 and f64, over odd sizes,
    /// with and without padding and dropout, on 1 and 2 threads.
    fn check_against_reference<T: Float>(tol: f64) {
        let mut rng = ChaCha8Rng::seed_from_u64(17);
        for (batch, seq, heads, head_dim) in
            [(2, 0, 2, 3), (1, 1, 1, 1), (2, 7, 3, 5), (3, 17, 2, 8), (2, 33, 4, 16)]
        {
            let s = AttentionShape { batch, seq, heads, head_dim };
            let n = s.numel();
            let (q, k, v, g) = (
                rand_vec::<T>(n, &mut rng),
                rand_vec(n, &mut rng),
                rand_vec(n, &mut rng),
                rand_vec(n, &mut rng),
            );
            // the last third of each sequence is padding
            let mask: Vec<T> = (0..batch * seq)
                .map(|i| if i % seq >= seq - seq / 3 && i % seq > 0 { T::from_f64(-1e30) } else { T::ZERO })
                .collect();
            for (key_mask, dropout) in [
                (None, None),
                (Some(&mask[..]), None),
                (Some(&mask[..]), Some(DropoutMask { p: 0.3, seed: 11 })),
                (None, Some(DropoutMask { p: 1.0, seed: 12 })), // nothing kept
            ] {
                let qkv = Qkv { q: &q[..], k: &k[..], v: &v[..] };
                let mut want_o = vec![T::ZERO; n];
                let want_p = attention_forward_reference(s, qkv, key_mask, dropout, &mut want_o);
                let mut want = [vec![T::ZERO; n], vec![T::ZERO; n], vec![T::ZERO; n]];
                let [wq, wk, wv] = &mut want;
                attention_backward_reference(s, qkv, &want_p, dropout, &g, Qkv { q: wq, k: wk, v: wv });
                for threads in [1, 2] {
                    let (mut o, mut p) = (vec![T::ZERO; n], vec![T::ZERO; s.probs_numel()]);
                    attention_forward_with(threads, s, qkv, key_mask, dropout, &mut o, Some(&mut p));
                    let mut o2 = vec![T::ZERO; n];
                    attention_forward_with(threads, s, qkv, key_mask, dropout, &mut o2, None);
                    let (mut dq, mut dk, mut dv) = (vec![T::ZERO; n], vec![T::ZERO; n], vec![T::ZERO; n]);
                    let grads = Qkv { q: &mut dq[..], k: &mut dk[..], v: &mut dv[..] };
                    attention_backward_with(threads, s, qkv, &p, dropout, &g, grads);
                    let what =
                        format!("{s:?} mask {} dropout {dropout:?} threads {threads}", key_mask.is_some());
                    assert!(max_diff(&o, &want_o) < tol, "o: {what}");
                    // without P to save and without dropout, o2 takes the transposed path
                    assert!(max_diff(&o2, &want_o) < tol, "o without saving P: {what}");
                    // P is saved with the sign bit of each dropped entry set
                    let unsigned: Vec<T> = p.iter().map(|x| x.abs()).collect();
                    assert!(max_diff(&unsigned, &want_p) < tol, "P: {what}");
                    let factors = reference_factors::<T>(s, dropout);
                    let dropped = |f: &T| dropout.is_some() && *f == T::ZERO;
                    assert!(
                        p.iter().zip(&factors).all(|(x, f)| x.is_sign_negative() == dropped(f)),
                        "the signs of the saved P are not the mask: {what}"
                    );
                    for (name, got, want) in [("dq", &dq, &*wq), ("dk", &dk, &*wk), ("dv", &dv, &*wv)] {
                        assert!(max_diff(got, want) < tol, "{name}: {what}: {}", max_diff(got, want));
                    }
                }
            }
        }
    }

    #[test]
    fn fast_matches_reference_f32() {
        check_against_reference::<f32>(2e-5);
    }

    #[test]
    fn fast_matches_reference_f64() {
        check_against_reference::<f64>(1e-12);
    }

    #[test]
    fn padded_keys_get_no_probability_and_dropout_keeps_1_minus_p() {
        let s = AttentionShape { batch: 1, seq: 64, heads: 2, head_dim: 4 };
        let n = s.numel();
        let mut rng = ChaCha8Rng::seed_from_u64(18);
        let (q, k, v) = (rand_vec::<f32>(n, &mut rng), rand_vec(n, &mut rng), rand_vec(n, &mut rng));
        let mask: Vec<f32> = (0..64).map(|j| if j >= 48 { f32::MIN } else { 0.0 }).collect();
        let (mut o, mut p) = (vec![0.0; n], vec![0.0; s.probs_numel()]);
        attention_forward(s, Qkv { q: &q, k: &k, v: &v }, Some(&mask), None, &mut o, Some(&mut p));
        for row in p.chunks_exact(64) {
            assert!(row[48..].iter().all(|&x| x == 0.0), "a padded key got probability");
            assert!((row.iter().sum::<f32>() - 1.0).abs() < 1e-5);
        }
        let f = reference_factors::<f32>(s, Some(DropoutMask { p: 0.25, seed: 5 }));
        let kept = f.iter().filter(|&&x| x != 0.0).count() as f64 / f.len() as f64;
        assert!((kept - 0.75).abs() < 0.02, "kept {kept}");
        assert!(f.iter().all(|&x| x == 0.0 || (x - 1.0 / 0.75).abs() < 1e-6));
    }
}
