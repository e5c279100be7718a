//! Reductions: sum, mean, max.

use super::{dim, split_at_dim};
use crate::backend::{Backend, Slab};
use crate::Tensor;
use tapegrad_kernels::Float;

impl<T: Float> Tensor<T> {
    /// s = Σᵢ xᵢ (a scalar);  ∂s/∂xᵢ = 1, so dL/dx = g broadcast to x's shape.
    pub fn sum(&self) -> Tensor<T> {
        self.sum_to(&[])
    }

    /// Sum over `dims` (negative dims count from the end), keeping them as size 1 if
    /// `keepdim`. Built from `sum_to` and `reshape`, whose backwards it inherits.
    pub fn sum_dims(&self, dims: &[isize], keepdim: bool) -> Tensor<T> {
        let mut kept = self.shape().to_vec();
        for &d in dims {
            kept[dim(d, self.rank(), "sum_dims")] = 1;
        }
        let s = self.sum_to(&kept);
        if keepdim {
            return s;
        }
        let mut reduced: Vec<bool> = vec![false; self.rank()];
        dims.iter().for_each(|&d| reduced[dim(d, self.rank(), "sum_dims")] = true);
        let squeezed: Vec<usize> = (0..self.rank()).filter(|&i| !reduced[i]).map(|i| kept[i]).collect();
        s.reshape(&squeezed)
    }

    /// m = (1/N) Σᵢ xᵢ over all N elements;  ∂m/∂xᵢ = 1/N.
    pub fn mean(&self) -> Tensor<T> {
        self.sum().mul_scalar(T::ONE / T::from_f64(self.numel() as f64))
    }

    /// Mean over `dims`: the sum divided by the number of elements reduced.
    pub fn mean_dims(&self, dims: &[isize], keepdim: bool) -> Tensor<T> {
        let mut count = 1usize;
        let mut seen = vec![false; self.rank()];
        for &d in dims {
            let d = dim(d, self.rank(), "mean_dims");
            if !std::mem::replace(&mut seen[d], true) {
                count *= self.shape()[d];
            }
        }
        self.sum_dims(dims, keepdim).mul_scalar(T::ONE / T::from_f64(count as f64))
    }

    /// Max along `d`: values and the (first) index of each max.
    /// ∂max/∂xⱼ = 1 for the arg-max j, 0 elsewhere: the gradient goes to the winner.
    pub fn max_dim(&self, d: isize, keepdim: bool) -> (Tensor<T>, Vec<usize>) {
        let d = dim(d, self.rank(), "max_dim");
        let (outer, n, inner) = split_at_dim(self.shape(), d);
        assert!(n > 0, "max_dim: dim {d} of {:?} is empty", self.shape());
        let rows = Slab::whole(outer, n, inner);
        let (values, argmax) = self.storage().max_dim(rows);
        let mut shape = self.shape().to_vec();
        if keepdim {
            shape[d] = 1;
        } else {
            shape.remove(d);
        }
        let (x, idx) = (self.clone(), argmax.clone());
        let out = Tensor::from_op("max_dim", Tensor::from_storage(values, &shape), &[self], move |g| {
            x.accumulate_grad(|| Tensor::from_storage(g.storage().max_dim_backward(rows, &idx), x.shape()));
        });
        (out, argmax)
    }
}
