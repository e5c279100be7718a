//! The attention kernels' definitions as plain loops over (b, h, i, j, c): the forward and
//! backward of the module doc, in `T` (f64 for the fast kernels' tests), and the same with
//! every product operand rounded to bf16 (the `_bf16` kernels' definition). The keep factors
//! are drawn as the fast kernels draw them, so the dropout masks match.

#[cfg(doc)]
use super::{attention_backward, attention_backward_bf16, attention_forward, attention_forward_bf16};
use super::{AttentionShape, DropoutMask, Qkv};
use crate::Float;

/// The keep factors M/(1−p) of every pair, (B·nh, Tq, T), as the fast kernels draw them.
pub(super) fn reference_factors<T: Float>(s: AttentionShape, dropout: Option<DropoutMask>) -> Vec<T> {
    let (t, tq) = (s.seq, s.queries);
    let mut f = vec![T::ONE; s.probs_numel()];
    if let Some(dm) = dropout.filter(|_| t * tq > 0) {
        let mut bits = vec![0u32; t];
        for (pair, fp) in f.chunks_exact_mut(tq * t).enumerate() {
            let mut rng = dm.rng(pair);
            fp.chunks_exact_mut(t).for_each(|row| dm.next_row(&mut rng, &mut bits, row));
        }
    }
    f
}

/// [`attention_forward`] by plain loops (the same dropout mask). Returns P.
pub fn attention_forward_reference<T: Float>(
    s: AttentionShape,
    qkv: Qkv<&[T]>,
    key_mask: Option<&[T]>,
    dropout: Option<DropoutMask>,
    o: &mut [T],
) -> Vec<T> {
    forward_reference(s, qkv, (key_mask, dropout), o, |x| x)
}

/// [`attention_forward_bf16`] by plain loops: each product operand rounded to bf16
/// (`round_bf16`, from the value as an f32), the rest in `T`. Returns P.
pub fn attention_forward_bf16_reference<T: Float>(
    s: AttentionShape,
    qkv: Qkv<&[T]>,
    key_mask: Option<&[T]>,
    dropout: Option<DropoutMask>,
    o: &mut [T],
) -> Vec<T> {
    forward_reference(s, qkv, (key_mask, dropout), o, round_bf16::<T>)
}

/// `x` rounded to bf16 as the products round an f32 operand.
fn round_bf16<T: Float>(x: T) -> T {
    T::from_f64(crate::bf16gemm::round_bf16(x.to_f64() as f32) as f64)
}

/// The forward's loops, `r` applied to every operand of a product.
fn forward_reference<T: Float>(
    s: AttentionShape,
    Qkv { q, k, v }: Qkv<&[T]>,
    (key_mask, dropout): (Option<&[T]>, Option<DropoutMask>),
    o: &mut [T],
    r: impl Fn(T) -> T,
) -> Vec<T> {
    let (t, tq, d, nh, hid) = (s.seq, s.queries, s.head_dim, s.heads, s.hidden());
    let scale = T::from_f64(1.0 / (d as f64).sqrt());
    let at_q = |b: usize, i: usize, h: usize, c: usize| (b * tq + i) * hid + h * d + c;
    let at = |b: usize, j: usize, h: usize, c: usize| (b * t + j) * hid + h * d + c;
    let f = reference_factors::<T>(s, dropout);
    let mut probs = vec![T::ZERO; s.probs_numel()];
    for b in 0..s.batch {
        for h in 0..nh {
            let pair = b * nh + h;
            for i in 0..tq {
                let mut row: Vec<T> = (0..t)
                    .map(|j| {
                        let dot: T = (0..d).map(|c| r(q[at_q(b, i, h, c)]) * r(k[at(b, j, h, c)])).sum();
                        dot * scale + key_mask.map_or(T::ZERO, |m| m[b * t + j])
                    })
                    .collect();
                let max = row.iter().fold(T::NEG_INFINITY, |m, &x| m.max(x));
                row.iter_mut().for_each(|x| *x = (*x - max).exp());
                let sum: T = row.iter().copied().sum();
                for j in 0..t {
                    probs[(pair * tq + i) * t + j] = row[j] / sum;
                }
                for c in 0..d {
                    o[at_q(b, i, h, c)] = (0..t)
                        .map(|j| {
                            let ij = (pair * tq + i) * t + j;
                            r(probs[ij] * f[ij]) * r(v[at(b, j, h, c)])
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
    qkv: Qkv<&[T]>,
    probs: &[T],
    dropout: Option<DropoutMask>,
    do_: &[T],
    grads: Qkv<&mut [T]>,
) {
    backward_reference(s, qkv, (probs, dropout), (do_, grads), |x| x)
}

/// [`attention_backward_bf16`] by plain loops, from the P of
/// [`attention_forward_bf16_reference`]: each product operand rounded to bf16.
pub fn attention_backward_bf16_reference<T: Float>(
    s: AttentionShape,
    qkv: Qkv<&[T]>,
    probs: &[T],
    dropout: Option<DropoutMask>,
    do_: &[T],
    grads: Qkv<&mut [T]>,
) {
    backward_reference(s, qkv, (probs, dropout), (do_, grads), round_bf16::<T>)
}

/// The backward's loops, `r` applied to every operand of a product.
fn backward_reference<T: Float>(
    s: AttentionShape,
    Qkv { q, k, v }: Qkv<&[T]>,
    (probs, dropout): (&[T], Option<DropoutMask>),
    (do_, Qkv { q: dq, k: dk, v: dv }): (&[T], Qkv<&mut [T]>),
    r: impl Fn(T) -> T,
) {
    let (t, tq, d, nh, hid) = (s.seq, s.queries, s.head_dim, s.heads, s.hidden());
    let scale = T::from_f64(1.0 / (d as f64).sqrt());
    let at_q = |b: usize, i: usize, h: usize, c: usize| (b * tq + i) * hid + h * d + c;
    let at = |b: usize, j: usize, h: usize, c: usize| (b * t + j) * hid + h * d + c;
    let f = reference_factors::<T>(s, dropout);
    for x in [&mut *dq, &mut *dk, &mut *dv] {
        x.fill(T::ZERO);
    }
    for b in 0..s.batch {
        for h in 0..nh {
            let pair = b * nh + h;
            let ij = |i: usize, j: usize| (pair * tq + i) * t + j;
            for i in 0..tq {
                // dP_ij = M_ij/(1−p) · Σ_c dO_ic V_jc
                let dp: Vec<T> = (0..t)
                    .map(|j| {
                        f[ij(i, j)]
                            * (0..d).map(|c| r(do_[at_q(b, i, h, c)]) * r(v[at(b, j, h, c)])).sum::<T>()
                    })
                    .collect();
                let dot: T = (0..t).map(|j| dp[j] * probs[ij(i, j)]).sum();
                for j in 0..t {
                    let ds = r(probs[ij(i, j)] * (dp[j] - dot) * scale);
                    let pd = r(probs[ij(i, j)] * f[ij(i, j)]);
                    for c in 0..d {
                        dv[at(b, j, h, c)] += pd * r(do_[at_q(b, i, h, c)]);
                        dq[at_q(b, i, h, c)] += ds * r(k[at(b, j, h, c)]);
                        dk[at(b, j, h, c)] += ds * r(q[at_q(b, i, h, c)]);
                    }
                }
            }
        }
    }
}
