//! Softmax and log-softmax along a dim.

use super::{dim, split_at_dim};
use crate::Tensor;
use tapegrad_kernels::softmax::{softmax_backward, softmax_forward};
use tapegrad_kernels::Float;

impl<T: Float> Tensor<T> {
    /// yⱼ = e^{xⱼ} / Σₖ e^{xₖ} along `d`;  dL/dxⱼ = yⱼ (gⱼ − Σₖ gₖ yₖ).
    pub fn softmax(&self, d: isize) -> Tensor<T> {
        self.softmax_impl(d, false)
    }

    /// yⱼ = xⱼ − log Σₖ e^{xₖ} along `d`;  dL/dxⱼ = gⱼ − softmax(x)ⱼ Σₖ gₖ.
    pub fn log_softmax(&self, d: isize) -> Tensor<T> {
        self.softmax_impl(d, true)
    }

    fn softmax_impl(&self, d: isize, log: bool) -> Tensor<T> {
        let name = if log { "log_softmax" } else { "softmax" };
        let d = dim(d, self.rank(), name);
        let (outer, n, inner) = split_at_dim(self.shape(), d);
        let mut y = vec![T::ZERO; self.numel()];
        softmax_forward(&self.data(), outer, n, inner, &mut y, log);
        let y = Tensor::from_vec(y, self.shape());
        let (x, yv) = (self.clone(), y.clone());
        Tensor::from_op(name, y, &[self], move |g| {
            x.accumulate_grad(|| {
                let mut dx = vec![T::ZERO; x.numel()];
                softmax_backward(&yv.data(), &g.data(), outer, n, inner, &mut dx, log);
                Tensor::from_vec(dx, x.shape())
            });
        })
    }
}
