//! Ops that move numbers without arithmetic: reshape, permute, narrow, concat.
//! Each backward moves the gradient back the same way.

use super::{dim, split_at_dim};
use crate::backend::{Backend, Slab};
use crate::{Storage, Tensor};
use tapegrad_kernels::Float;

impl<T: Float> Tensor<T> {
    /// The same numbers with a new shape (same element count); dL/dx = reshape(g, shape(x)).
    pub fn reshape(&self, shape: &[usize]) -> Tensor<T> {
        assert_eq!(crate::numel(shape), self.numel(), "reshape: cannot view {:?} as {shape:?}", self.shape());
        let x = self.clone();
        let value = Tensor(std::rc::Rc::new(crate::tape::Node::leaf(
            self.0.data.borrow().clone(),
            shape.to_vec(),
            false,
        )));
        Tensor::from_op("reshape", value, &[self], move |g| {
            x.accumulate_grad(|| g.reshape(x.shape()));
        })
    }

    /// Inserts a dim of size 1 at `d`.
    pub fn unsqueeze(&self, d: isize) -> Tensor<T> {
        let d = dim(d, self.rank() + 1, "unsqueeze");
        let mut shape = self.shape().to_vec();
        shape.insert(d, 1);
        self.reshape(&shape)
    }

    /// Reorders dims: out dim i is input dim `perm[i]`. dL/dx = permute(g, perm⁻¹).
    pub fn permute(&self, perm: &[usize]) -> Tensor<T> {
        let r = self.rank();
        let mut seen = vec![false; r];
        assert!(
            perm.len() == r && perm.iter().all(|&p| p < r && !std::mem::replace(&mut seen[p], true)),
            "permute: {perm:?} is not a permutation of the {r} dims of {:?}",
            self.shape()
        );
        let out_shape: Vec<usize> = perm.iter().map(|&p| self.shape()[p]).collect();
        let out = self.storage().permute(self.shape(), perm);
        let mut inverse = vec![0; r];
        perm.iter().enumerate().for_each(|(i, &p)| inverse[p] = i);
        let x = self.clone();
        Tensor::from_op("permute", Tensor::from_storage(out, &out_shape), &[self], move |g| {
            x.accumulate_grad(|| g.permute(&inverse));
        })
    }

    /// Swaps two dims (a permute).
    pub fn transpose(&self, d0: isize, d1: isize) -> Tensor<T> {
        let (a, b) = (dim(d0, self.rank(), "transpose"), dim(d1, self.rank(), "transpose"));
        let mut perm: Vec<usize> = (0..self.rank()).collect();
        perm.swap(a, b);
        self.permute(&perm)
    }

    /// Elements `start..start+len` along dim `d`. Backward: dx = g on that slice, 0
    /// elsewhere, so g is added into that slice of the input's gradient (in place).
    pub fn narrow(&self, d: isize, start: usize, len: usize) -> Tensor<T> {
        let d = dim(d, self.rank(), "narrow");
        let (outer, n, inner) = split_at_dim(self.shape(), d);
        assert!(
            start + len <= n,
            "narrow: {start}..{} is out of range for dim {d} of {:?}",
            start + len,
            self.shape()
        );
        let slab = Slab { outer, n, inner, start, len };
        let out = self.storage().narrow(slab);
        let mut shape = self.shape().to_vec();
        shape[d] = len;
        let x = self.clone();
        Tensor::from_op("narrow", Tensor::from_storage(out, &shape), &[self], move |g| {
            // dx[.., start..start+len, ..] += g; the rest of dx gets nothing
            x.accumulate_grad_in_place(|dx| dx.narrow_backward(&g.storage(), slab));
        })
    }

    /// Joins tensors along dim `d` (other dims must agree). Each input's gradient is
    /// its slice of g (a `narrow`).
    pub fn concat(tensors: &[&Tensor<T>], d: isize) -> Tensor<T> {
        assert!(!tensors.is_empty(), "concat: no tensors");
        let first = tensors[0].shape();
        let d = dim(d, first.len(), "concat");
        for t in tensors {
            let ok = t.rank() == first.len() && (0..first.len()).all(|i| i == d || t.shape()[i] == first[i]);
            assert!(ok, "concat: shape {:?} does not match {first:?} outside dim {d}", t.shape());
        }
        let outer: usize = first[..d].iter().product();
        let inner: usize = first[d + 1..].iter().product();
        let sizes: Vec<usize> = tensors.iter().map(|t| t.shape()[d]).collect();
        let total: usize = sizes.iter().sum();
        super::same_device("concat", tensors);
        let storages: Vec<_> = tensors.iter().map(|t| t.storage()).collect();
        let parts: Vec<&Storage<T>> = storages.iter().map(|s| &**s).collect();
        let out = Storage::concat(&parts, &sizes, outer, inner);
        let mut shape = first.to_vec();
        shape[d] = total;
        let inputs: Vec<Tensor<T>> = tensors.iter().map(|&t| t.clone()).collect();
        Tensor::from_op("concat", Tensor::from_storage(out, &shape), tensors, move |g| {
            let mut start = 0;
            for (x, &n) in inputs.iter().zip(&sizes) {
                x.accumulate_grad(|| g.narrow(d as isize, start, n));
                start += n;
            }
        })
    }

    /// Stacks same-shape tensors along a new dim `d` (unsqueeze, then concat).
    pub fn stack(tensors: &[&Tensor<T>], d: isize) -> Tensor<T> {
        assert!(!tensors.is_empty(), "stack: no tensors");
        let d = dim(d, tensors[0].rank() + 1, "stack") as isize;
        let expanded: Vec<Tensor<T>> = tensors.iter().map(|t| t.unsqueeze(d)).collect();
        Tensor::concat(&expanded.iter().collect::<Vec<_>>(), d)
    }
}
