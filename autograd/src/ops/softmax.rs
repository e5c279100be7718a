//! Softmax and log-softmax along a dim.

use super::{dim, split_at_dim};
use crate::backend::{Backend, Slab};
use crate::Tensor;
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
        let rows = Slab::whole(outer, n, inner);
        let y = Tensor::from_storage(self.storage().softmax(rows, log), self.shape());
        let (x, yv) = (self.clone(), y.clone());
        Tensor::from_op(name, y, &[self], move |g| {
            x.accumulate_grad(|| {
                Tensor::from_storage(yv.storage().softmax_backward(&g.storage(), rows, log), x.shape())
            });
        })
    }
}
