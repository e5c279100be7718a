//! Layer normalisation.

use crate::backend::Backend;
use crate::Tensor;
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
        let mut inputs = vec![self];
        inputs.extend(weight);
        inputs.extend(bias);
        super::same_device("layer_norm", &inputs);
        let (ws, bs) = (weight.map(|w| w.storage()), bias.map(|b| b.storage()));
        let (y, mean, rstd) = self.storage().layer_norm(rows, n, ws.as_deref(), bs.as_deref(), eps);
        let (x, w, b) = (self.clone(), weight.cloned(), bias.cloned());
        let (xv, wv) = (self.detach(), weight.map(|w| w.detach())); // values as of the forward
        Tensor::from_op("layer_norm", Tensor::from_storage(y, self.shape()), &inputs, move |g| {
            let needs = |t: &Option<Tensor<T>>| t.as_ref().is_some_and(|t| t.tracks_grad());
            let want = [x.tracks_grad(), needs(&w), needs(&b)];
            let ws = wv.as_ref().map(|w| w.storage());
            let [dx, dw, db] = xv.storage().layer_norm_backward(
                &g.storage(),
                (rows, n),
                ws.as_deref(),
                (&mean, &rstd),
                want,
            );
            if let Some(dx) = dx {
                x.accumulate_grad(|| Tensor::from_storage(dx, x.shape()));
            }
            if let (Some(w), Some(dw)) = (&w, dw) {
                w.accumulate_grad(|| Tensor::from_storage(dw, &[n]));
            }
            if let (Some(b), Some(db)) = (&b, db) {
                b.accumulate_grad(|| Tensor::from_storage(db, &[n]));
            }
        })
    }
}
