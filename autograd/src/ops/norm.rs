//! Layer normalisation.

use crate::Tensor;
use tapegrad_kernels::layernorm::{layer_norm_backward, layer_norm_forward};
use tapegrad_kernels::Float;

impl<T: Float> Tensor<T> {
    /// Normalises over the last dim, then scales and shifts:
    ///   μ = mean(x), σ² = mean((x − μ)²), x̂ = (x − μ)/√(σ² + eps), y = x̂·w + b.
    /// Backward (per row of n, ĝ = g·w):
    ///   dx = (1/√(σ²+eps)) · (ĝ − mean(ĝ) − x̂·mean(ĝ·x̂)),  dw = Σ g·x̂,  db = Σ g.
    pub fn layer_norm(&self, weight: Option<&Tensor<T>>, bias: Option<&Tensor<T>>, eps: f64) -> Tensor<T> {
        assert!(self.rank() >= 1, "layer_norm: input must have at least one dim");
        let n = self.shape()[self.rank() - 1];
        for (name, p) in [("weight", weight), ("bias", bias)] {
            if let Some(p) = p {
                assert_eq!(p.shape(), [n], "layer_norm: {name} must have shape [{n}], got {:?}", p.shape());
            }
        }
        let rows = self.numel() / n.max(1);
        let eps = T::from_f64(eps);
        let (mut y, mut mean, mut rstd) =
            (vec![T::ZERO; self.numel()], vec![T::ZERO; rows], vec![T::ZERO; rows]);
        {
            let (wd, bd) = (weight.map(|w| w.data()), bias.map(|b| b.data()));
            layer_norm_forward(
                &self.data(),
                rows,
                n,
                wd.as_deref(),
                bd.as_deref(),
                eps,
                &mut y,
                &mut mean,
                &mut rstd,
            );
        }
        let (x, w, b) = (self.clone(), weight.cloned(), bias.cloned());
        let (xv, wv) = (self.detach(), weight.map(|w| w.detach())); // values as of the forward
        let mut inputs = vec![self];
        inputs.extend(weight);
        inputs.extend(bias);
        Tensor::from_op("layer_norm", Tensor::from_vec(y, self.shape()), &inputs, move |g| {
            let needs = |t: &Option<Tensor<T>>| t.as_ref().is_some_and(|t| t.tracks_grad());
            let mut dx = x.tracks_grad().then(|| vec![T::ZERO; x.numel()]);
            let mut dw = needs(&w).then(|| vec![T::ZERO; n]);
            let mut db = needs(&b).then(|| vec![T::ZERO; n]);
            {
                let wd = wv.as_ref().map(|w| w.data());
                layer_norm_backward(
                    &xv.data(),
                    &g.data(),
                    rows,
                    n,
                    wd.as_deref(),
                    &mean,
                    &rstd,
                    dx.as_deref_mut(),
                    dw.as_deref_mut(),
                    db.as_deref_mut(),
                );
            }
            if let Some(dx) = dx {
                x.accumulate_grad(|| Tensor::from_vec(dx, x.shape()));
            }
            if let (Some(w), Some(dw)) = (&w, dw) {
                w.accumulate_grad(|| Tensor::from_vec(dw, &[n]));
            }
            if let (Some(b), Some(db)) = (&b, db) {
                b.accumulate_grad(|| Tensor::from_vec(db, &[n]));
            }
        })
    }
}
