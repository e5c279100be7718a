//! Multi-head scaled dot-product attention as one op (forward and backward fused;
//! the kernels and the math are in `tapegrad_kernels::attention`). In bf16 precision
//! (`crate::precision`, f32 tensors) its six products round their operands to bf16 and sum
//! in f32; the softmax, the dropout and every tensor stay f32.

use crate::backend::{Attention, Backend};
use crate::tape::is_grad_enabled;
use crate::Tensor;
use tapegrad_kernels::attention::AttentionShape;
pub use tapegrad_kernels::attention::DropoutMask;
use tapegrad_kernels::Float;

impl<T: Float> Tensor<T> {
    /// Attention of the queries `self` `[B, Tq, nh·d]` over keys `k` and values `v`
    /// `[B, T, nh·d]`, with the `heads` heads side by side (as the Q, K, V projections
    /// produce them), → `[B, Tq, nh·d]`. Self-attention has Tq = T; the queries of the
    /// first Tq positions alone give the first Tq rows of the full result, dropout
    /// included (a classifier's last layer, which reads `[CLS]` only, passes Tq = 1).
    /// Per batch item and head, with scale = 1/√d:
    ///
    ///   S = scale·Q·Kᵀ + mask,  P = softmax(S) (rows),  P' = dropout(P),  O = P'·V
    ///
    /// `key_mask` (B·T values, e.g. `[B, T]` or `[B, 1, 1, T]`) is added to every row of
    /// S: 0 for a real key, a very negative number for padding; it gets no gradient.
    /// `dropout` zeroes entries of P with probability p (mask drawn from its seed) and
    /// scales the rest by 1/(1−p). The gradients, with M the keep mask:
    ///
    ///   dV = P'ᵀ·dO,  dP = (dO·Vᵀ) ⊙ M/(1−p),  dS = P ⊙ (dP − rowsum(dP ⊙ P)),
    ///   dQ = scale·dS·K,  dK = scale·dSᵀ·Q.
    ///
    /// It equals `softmax(Q_h·K_hᵀ/√d + mask)·V_h` per head built from matmul, add,
    /// softmax and permute (tested), without the permutes and without writing S.
    pub fn attention(
        &self,
        k: &Tensor<T>,
        v: &Tensor<T>,
        heads: usize,
        key_mask: Option<&Tensor<T>>,
        dropout: Option<DropoutMask>,
    ) -> Tensor<T> {
        let (shape, kv_shape) = (self.shape().to_vec(), k.shape().to_vec());
        assert!(
            shape.len() == 3
                && kv_shape.len() == 3
                && v.shape() == &kv_shape[..]
                && (shape[0], shape[2]) == (kv_shape[0], kv_shape[2]),
            "attention: q must be [B, Tq, H] and k, v one [B, T, H] shape, got {:?}, {:?}, {:?}",
            shape,
            k.shape(),
            v.shape()
        );
        assert!(
            heads > 0 && shape[2].is_multiple_of(heads),
            "attention: hidden size {} does not split into {heads} heads",
            shape[2]
        );
        let s = AttentionShape {
            batch: shape[0],
            queries: shape[1],
            seq: kv_shape[1],
            heads,
            head_dim: shape[2] / heads,
        };
        if let Some(m) = key_mask {
            assert!(
                m.numel() == s.batch * s.seq,
                "attention: key mask {:?} must hold B·T = {} values",
                m.shape(),
                s.batch * s.seq
            );
        }
        if let Some(dm) = dropout {
            assert!((0.0..=1.0).contains(&dm.p), "attention: dropout p = {} is not a probability", dm.p);
        }
        let dropout = dropout.filter(|dm| dm.p > 0.0);
        // bf16 products for f32 tensors in bf16 precision (read once: the backward uses it too)
        let a = Attention { shape: s, dropout, bf16: crate::precision::bf16_products::<T>() };
        let mask = key_mask.map(|m| m.detach());
        let recording = is_grad_enabled() && [self, k, v].iter().any(|t| t.tracks_grad());

        let mut operands = vec![self, k, v];
        operands.extend(mask.as_ref());
        super::same_device("attention", &operands);

        // forward; P (B·nh·Tq·T) is kept only when a backward will need it
        let mask_st = mask.as_ref().map(|m| m.storage());
        let (o, probs) =
            self.storage().attention(&k.storage(), &v.storage(), mask_st.as_deref(), a, recording);

        let (qt, kt, vt) = (self.clone(), k.clone(), v.clone());
        let (qv, kv, vv) = (self.detach(), k.detach(), v.detach()); // values as of the forward
        Tensor::from_op("attention", Tensor::from_storage(o, &shape), &[self, k, v], move |g| {
            let probs = probs.as_ref().expect("recorded attention keeps P");
            let [dq, dk, dv] =
                qv.storage().attention_backward(&kv.storage(), &vv.storage(), probs, &g.storage(), a);
            qt.accumulate_grad(|| Tensor::from_storage(dq, &shape));
            kt.accumulate_grad(|| Tensor::from_storage(dk, &kv_shape));
            vt.accumulate_grad(|| Tensor::from_storage(dv, &kv_shape));
        })
    }
}

#[cfg(test)]
mod tests {
    use super::DropoutMask;
    use crate::Tensor;
    use rand::{Rng, RngExt, SeedableRng};

    fn rand_tensor(shape: &[usize], rng: &mut impl Rng, grad: bool) -> Tensor<f64> {
        let n = shape.iter().product();
        let v = (0..n).map(|_| rng.random_range(-1.0..1.0)).collect();
        if grad {
            Tensor::param(v, shape)
        } else {
            Tensor::from_vec(v, shape)
        }
    }

    /// The slow twin: the same attention from matmul, add, softmax and permute.
    fn composed(
        q: &Tensor<f64>,
        k: &Tensor<f64>,
        v: &Tensor<f64>,
        heads: usize,
        mask: &Tensor<f64>,
    ) -> Tensor<f64> {
        let (b, h, t) = (q.shape()[0], q.shape()[2], k.shape()[1]);
        let d = h / heads;
        let split = |x: &Tensor<f64>| x.reshape(&[b, x.shape()[1], heads, d]).permute(&[0, 2, 1, 3]);
        let scores = split(q).matmul(&split(k).permute(&[0, 1, 3, 2])).mul_scalar(1.0 / (d as f64).sqrt());
        let probs = scores.add(&mask.reshape(&[b, 1, 1, t])).softmax(-1);
        probs.matmul(&split(v)).permute(&[0, 2, 1, 3]).reshape(&[b, q.shape()[1], h])
    }

    /// Self-attention (Tq = T) and the first queries only (Tq = 2 of T = 9).
    #[test]
    fn fused_equals_its_slow_twin_forward_and_backward() {
        for tq in [9, 2] {
            fused_equals_slow_twin(tq);
        }
    }

    fn fused_equals_slow_twin(tq: usize) {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
        let (b, t, heads, d) = (2, 9, 3, 4);
        let mask_v: Vec<f64> =
            (0..b * t).map(|i| if i == 7 || i == 8 || i == 17 { -1e9 } else { 0.0 }).collect();
        let mask = Tensor::from_vec(mask_v, &[b, t]);
        let (q, k, v) = (
            rand_tensor(&[b, tq, heads * d], &mut rng, true),
            rand_tensor(&[b, t, heads * d], &mut rng, true),
            rand_tensor(&[b, t, heads * d], &mut rng, true),
        );
        let w = rand_tensor(&[b, tq, heads * d], &mut rng, false); // L = Σ w ⊙ O
        let fused = q.attention(&k, &v, heads, Some(&mask), None);
        fused.mul(&w).sum().backward();
        let grads: Vec<Vec<f64>> = [&q, &k, &v].iter().map(|x| x.grad().unwrap().to_vec()).collect();
        for x in [&q, &k, &v] {
            x.zero_grad();
        }
        let slow = composed(&q, &k, &v, heads, &mask);
        slow.mul(&w).sum().backward();
        let close = |a: &[f64], b: &[f64]| a.iter().zip(b).all(|(x, y)| (x - y).abs() < 1e-12);
        assert!(close(&fused.to_vec(), &slow.to_vec()), "forward differs, Tq = {tq}");
        for (name, (x, g)) in ["q", "k", "v"].iter().zip([&q, &k, &v].iter().zip(&grads)) {
            assert!(
                close(g, &x.grad().unwrap().to_vec()),
                "d{name} differs from the composed ops', Tq = {tq}"
            );
        }
    }

    /// bf16 precision reaches the kernels: under it the op's output and gradients are the bf16
    /// kernels' bits (`kernels::attention`'s tests hold those to the loops that round every
    /// product's operands), under f32 the f32 kernels' bits; the backward keeps its forward's
    /// mode when the precision changed between them; f64 tensors ignore the mode.
    #[test]
    fn bf16_precision_runs_the_bf16_kernels_forward_and_backward() {
        use crate::precision::{set_product_precision, Precision};
        use tapegrad_kernels::attention as k;
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(9);
        let s = k::AttentionShape::square(2, 11, 2, 8);
        let n = s.q_numel();
        let mut v = || (0..n).map(|_| rng.random_range(-1.0f32..1.0)).collect::<Vec<_>>();
        let (qv, kv, vv, gv) = (v(), v(), v(), v());
        let mask: Vec<f32> = (0..s.batch * s.seq).map(|i| if i % s.seq >= 9 { -1e9 } else { 0.0 }).collect();
        let dropout = Some(DropoutMask { p: 0.25, seed: 5 });
        let shape = [s.batch, s.seq, s.heads * s.head_dim];
        // the op, its forward in `p` and its backward after the guard dropped
        let op = |p: Precision| {
            let (q, kt, vt) = (
                Tensor::param(qv.clone(), &shape),
                Tensor::param(kv.clone(), &shape),
                Tensor::param(vv.clone(), &shape),
            );
            let o = {
                let _mode = set_product_precision(p);
                q.attention(
                    &kt,
                    &vt,
                    s.heads,
                    Some(&Tensor::from_vec(mask.clone(), &[s.batch, s.seq])),
                    dropout,
                )
            };
            o.mul(&Tensor::from_vec(gv.clone(), &shape)).sum().backward();
            let g = |t: &Tensor<f32>| t.grad().expect("has a gradient").to_vec();
            [o.to_vec(), g(&q), g(&kt), g(&vt)]
        };
        // the kernels called directly
        let kernels = |bf16: bool| {
            let qkv = k::Qkv { q: &qv[..], k: &kv[..], v: &vv[..] };
            let (mut o, mut p) = (vec![0.0; n], vec![0.0; s.probs_numel()]);
            let forward = if bf16 { k::attention_forward_bf16 } else { k::attention_forward };
            forward(s, qkv, Some(&mask), dropout, &mut o, Some(&mut p));
            let (mut dq, mut dk, mut dv) = (vec![0.0; n], vec![0.0; n], vec![0.0; n]);
            let backward = if bf16 { k::attention_backward_bf16 } else { k::attention_backward };
            backward(s, qkv, &p, dropout, &gv, k::Qkv { q: &mut dq[..], k: &mut dk[..], v: &mut dv[..] });
            [o, dq, dk, dv]
        };
        let (bf16, f32) = (op(Precision::Bf16), op(Precision::F32));
        // (compared whole, not printed: four vectors of 352 values)
        assert!(bf16 == kernels(true), "bf16 precision: not the bf16 kernels' o, dq, dk, dv");
        assert!(f32 == kernels(false), "f32 precision: not the f32 kernels' o, dq, dk, dv");
        assert!(bf16[0] != f32[0], "the bf16 products must round");
        // f64 tensors compute in f64 whatever the mode
        let q64 = Tensor::from_vec(qv.iter().map(|&x| x as f64).collect(), &shape);
        let run64 = |p: Precision| {
            let _mode = set_product_precision(p);
            q64.attention(&q64, &q64, s.heads, None, None).to_vec()
        };
        assert!(run64(Precision::Bf16) == run64(Precision::F32), "f64 attention changed with the mode");
    }

    #[test]
    fn dropout_is_reproducible_from_its_seed_and_off_in_no_grad_is_the_same_value() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(8);
        let shape = [2, 16, 8];
        let (q, k, v) = (
            rand_tensor(&shape, &mut rng, true),
            rand_tensor(&shape, &mut rng, false),
            rand_tensor(&shape, &mut rng, false),
        );
        let dm = Some(DropoutMask { p: 0.4, seed: 99 });
        let a = q.attention(&k, &v, 2, None, dm).to_vec();
        let b = crate::no_grad(|| q.attention(&k, &v, 2, None, dm)).to_vec();
        assert_eq!(a, b, "the same seed must give the same mask, with or without the tape");
        let c = q.attention(&k, &v, 2, None, Some(DropoutMask { p: 0.4, seed: 100 })).to_vec();
        assert_ne!(a, c, "another seed must give another mask");
        let p0 = q.attention(&k, &v, 2, None, Some(DropoutMask { p: 0.0, seed: 1 })).to_vec();
        assert_eq!(p0, q.attention(&k, &v, 2, None, None).to_vec(), "p = 0 is no dropout");
    }
}
