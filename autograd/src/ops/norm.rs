//! Layer normalisation.

use crate::backend::{Backend, NormOf, ResidualNorm};
use crate::storage::Storage;
use crate::Tensor;
use tapegrad_kernels::attention::DropoutMask;
use tapegrad_kernels::Float;

impl<T: Float> Tensor<T> {
    /// Normalises over the last dim, then scales and shifts:
    ///   μ = mean(x), σ² = mean((x − μ)²), x̂ = (x − μ)/√(σ² + eps), y = x̂·w + b.
    /// Backward (per row of n, ĝ = g·w):
    ///   dx = (1/√(σ²+eps)) · (ĝ − mean(ĝ) − x̂·mean(ĝ·x̂)),  dw = Σ g·x̂,  db = Σ g.
    ///
    /// `norm` holds the affine weight and bias (each optional, `[n]`) and eps, as it does
    /// for [`Tensor::residual_layer_norm`].
    pub fn layer_norm(&self, norm: Norm<'_, T>) -> Tensor<T> {
        assert!(self.rank() >= 1, "layer_norm: input must have at least one dim");
        let n = self.shape()[self.rank() - 1];
        let Norm { weight, bias, eps } = norm;
        check_affine("layer_norm", n, weight, bias);
        let rows = self.numel() / n.max(1);
        let mut inputs = vec![self];
        inputs.extend(weight);
        inputs.extend(bias);
        super::same_device("layer_norm", &inputs);
        let (ws, bs) = (weight.map(|w| w.storage()), bias.map(|b| b.storage()));
        let ln = NormOf { rows, n, w: ws.as_deref(), b: bs.as_deref(), eps };
        let (y, mean, rstd) = self.storage().layer_norm(ln);
        let (x, w, b) = (self.clone(), weight.cloned(), bias.cloned());
        let (xv, wv) = (self.detach(), weight.map(|w| w.detach())); // values as of the forward
        Tensor::from_op("layer_norm", Tensor::from_storage(y, self.shape()), &inputs, move |g| {
            let needs = |t: &Option<Tensor<T>>| t.as_ref().is_some_and(|t| t.tracks_grad());
            let want = [x.tracks_grad(), needs(&w), needs(&b)];
            let ws = wv.as_ref().map(|w| w.storage());
            let ln = NormOf { rows, n, w: ws.as_deref(), b: None, eps };
            let [dx, dw, db] = xv.storage().layer_norm_backward(&g.storage(), ln, (&mean, &rstd), want);
            if let Some(dx) = dx {
                x.accumulate_grad(|| Tensor::from_storage(dx, x.shape()));
            }
            accumulate_affine((&w, dw), (&b, db), n);
        })
    }
}

impl<T: Float> Tensor<T> {
    /// `layer_norm(dropout(self) + residual)`, the block after a transformer's dense
    /// layers, as one op. With M the keep mask `dropout` draws (the mask
    /// [`Tensor::dropout`] would draw from the same seed) and p its rate:
    ///
    ///   s = x ⊙ M/(1−p) + r,   y = layer_norm(s)
    ///   ds = the layer norm's backward at s,   dr = ds,   dx = ds ⊙ M/(1−p)
    ///
    /// The same values and gradients as `dropout`, `add` and `layer_norm` one after the
    /// other (tested), with the residual's gradient being ds itself where `add` would copy
    /// it once per input. `dropout` None (evaluation) is s = x + r.
    pub fn residual_layer_norm(
        &self,
        residual: &Tensor<T>,
        dropout: Option<DropoutMask>,
        norm: Norm<'_, T>,
    ) -> Tensor<T> {
        let shape = self.shape().to_vec();
        assert!(
            !shape.is_empty() && residual.shape() == &shape[..],
            "residual_layer_norm: input {shape:?} and residual {:?} must share one shape (rank ≥ 1)",
            residual.shape()
        );
        let n = shape[shape.len() - 1];
        let Norm { weight, bias, eps } = norm;
        check_affine("residual_layer_norm", n, weight, bias);
        if let Some(dm) = dropout {
            assert!(
                (0.0..=1.0).contains(&dm.p),
                "residual_layer_norm: dropout p = {} is not a probability",
                dm.p
            );
        }
        let dropout = dropout.filter(|dm| dm.p > 0.0);
        let rows = self.numel() / n.max(1);
        let mut inputs = vec![self, residual];
        inputs.extend(weight);
        inputs.extend(bias);
        super::same_device("residual_layer_norm", &inputs);

        // s = dropout(x) + r and y = layer_norm(s) (one pass on the CPU); s is kept for the backward
        let (ws, bs) = (weight.map(|w| w.storage()), bias.map(|b| b.storage()));
        let ln = NormOf { rows, n, w: ws.as_deref(), b: bs.as_deref(), eps };
        let seed = dropout.map(|dm| (dm.p, dm.seed));
        let ResidualNorm { y, s, keep, mean, rstd } =
            self.storage().residual_layer_norm(&residual.storage(), seed, ln);

        let (x, r, w, b) = (self.clone(), residual.clone(), weight.cloned(), bias.cloned());
        let wv = weight.map(|w| w.detach()); // the value as of the forward
        Tensor::from_op("residual_layer_norm", Tensor::from_storage(y, &shape), &inputs, move |g| {
            let needs = |t: &Option<Tensor<T>>| t.as_ref().is_some_and(|t| t.tracks_grad());
            let want = [x.tracks_grad() || r.tracks_grad(), needs(&w), needs(&b)];
            let ws = wv.as_ref().map(|w| w.storage());
            let ln = NormOf { rows, n, w: ws.as_deref(), b: None, eps };
            let [ds, dw, db] = s.layer_norm_backward(&g.storage(), ln, (&mean, &rstd), want);
            if let Some(ds) = ds {
                let ds = Tensor::from_storage(ds, &shape);
                // dx = ds ⊙ M/(1−p)
                x.accumulate_grad(|| match (&keep, dropout) {
                    (Some(keep), Some(dm)) => {
                        Tensor::from_storage(ds.storage().dropout_backward(keep, dm.p), &shape)
                    }
                    _ => ds.clone(),
                });
                r.accumulate_grad(|| ds); // ds's own buffer when r has no gradient yet
            }
            accumulate_affine((&w, dw), (&b, db), n);
        })
    }
}

/// Panics naming `op` unless the affine weight and bias, where given, are `[n]`.
fn check_affine<T: Float>(op: &str, n: usize, weight: Option<&Tensor<T>>, bias: Option<&Tensor<T>>) {
    for (name, p) in [("weight", weight), ("bias", bias)] {
        if let Some(p) = p {
            assert_eq!(p.shape(), [n], "{op}: {name} must have shape [{n}], got {:?}", p.shape());
        }
    }
}

/// The affine parameters' gradients `[n]`, where the backward computed them, into w and b.
fn accumulate_affine<T: Float>(
    (w, dw): (&Option<Tensor<T>>, Option<Storage<T>>),
    (b, db): (&Option<Tensor<T>>, Option<Storage<T>>),
    n: usize,
) {
    for (p, d) in [(w, dw), (b, db)] {
        if let (Some(p), Some(d)) = (p, d) {
            p.accumulate_grad(|| Tensor::from_storage(d, &[n]));
        }
    }
}

/// The affine part and epsilon of a layer norm: `y = x̂·weight + bias` (each optional).
#[derive(Clone, Copy)]
pub struct Norm<'a, T: Float> {
    pub weight: Option<&'a Tensor<T>>,
    pub bias: Option<&'a Tensor<T>>,
    pub eps: f64,
}

#[cfg(test)]
mod tests {
    use super::{DropoutMask, Norm};
    use crate::Tensor;
    use rand::{RngExt, SeedableRng};

    /// The fused op against dropout, add and layer_norm one after the other: the same mask
    /// from the same seed, and the same values and gradients to the last bit (f64).
    #[test]
    fn residual_layer_norm_equals_dropout_add_layer_norm() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(31);
        let mut p = |s: &[usize]| {
            Tensor::<f64>::param((0..s.iter().product()).map(|_| rng.random_range(-1.0..1.0)).collect(), s)
        };
        let (x, r, w, b) = (p(&[3, 5, 7]), p(&[3, 5, 7]), p(&[7]), p(&[7]));
        let wo = p(&[3, 5, 7]).detach(); // L = Σ wo ⊙ y
        for rate in [None, Some(0.3)] {
            // a layer's rng: the fused op takes the seed Tensor::dropout would draw from it
            let layer_rng = rand_chacha::ChaCha8Rng::seed_from_u64(77);
            let dropout = rate.map(|p| DropoutMask { p, seed: layer_rng.clone().random() });
            let norm = Norm { weight: Some(&w), bias: Some(&b), eps: 1e-5 };
            let fused = x.residual_layer_norm(&r, dropout, norm);
            fused.mul(&wo).sum().backward();
            let grads = |ts: [&Tensor<f64>; 4]| ts.map(|t| t.grad().expect("has a gradient").to_vec());
            let fused_grads = grads([&x, &r, &w, &b]);
            [&x, &r, &w, &b].iter().for_each(|t| t.zero_grad());
            // the three ops
            let dropped = x.dropout(rate.unwrap_or(0.0), rate.is_some(), &mut layer_rng.clone());
            let slow = dropped.add(&r).layer_norm(norm);
            slow.mul(&wo).sum().backward();
            assert_eq!(fused.to_vec(), slow.to_vec(), "y differs, dropout {dropout:?}");
            for (name, (f, s)) in
                ["x", "r", "w", "b"].iter().zip(fused_grads.iter().zip(grads([&x, &r, &w, &b])))
            {
                assert_eq!(f, &s, "d{name} differs, dropout {dropout:?}");
            }
            [&x, &r, &w, &b].iter().for_each(|t| t.zero_grad());
        }
    }
}
