//! Indexing: index_select (the embedding lookup), gather, masked_fill, where.

use super::{dim, split_at_dim};
use crate::backend::{Backend, Slab};
use crate::{Storage, Tensor};
use tapegrad_kernels::broadcast::broadcast_shape;
use tapegrad_kernels::Float;

impl<T: Float> Tensor<T> {
    /// Picks the slices `indices` along dim `d`: `out[..., j, ...] = x[..., indices[j], ...]`.
    /// With x an embedding table `[V, D]` and `d = 0` this is the embedding lookup.
    /// Backward is a scatter-add: `dx[..., indices[j], ...] += g[..., j, ...]`, so a
    /// row picked twice gets both contributions.
    pub fn index_select(&self, d: isize, indices: &[usize]) -> Tensor<T> {
        let d = dim(d, self.rank(), "index_select");
        let (outer, len, inner) = split_at_dim(self.shape(), d);
        if let Some(&bad) = indices.iter().find(|&&i| i >= len) {
            panic!("index_select: index {bad} is out of range for dim {d} of {:?}", self.shape());
        }
        let slab = Slab::whole(outer, len, inner);
        let out = self.storage().index_select(slab, indices);
        let mut shape = self.shape().to_vec();
        shape[d] = indices.len();
        let (x, idx) = (self.clone(), indices.to_vec());
        Tensor::from_op("index_select", Tensor::from_storage(out, &shape), &[self], move |g| {
            x.accumulate_grad(|| Tensor::from_storage(g.storage().index_add(slab, &idx, None), x.shape()));
        })
    }

    /// The embedding lookup with PyTorch's `padding_idx`: self is the table
    /// `[V, D]`, `ids` (any shape `ids_shape`) pick rows, out has shape
    /// `ids_shape + [D]`: `out[i, :] = W[ids[i], :]`.
    /// Backward scatter-adds `dW[ids[i], :] += g[i, :]`, except for the padding row,
    /// which never receives a gradient.
    pub fn embedding(&self, ids: &[usize], ids_shape: &[usize], padding_idx: Option<usize>) -> Tensor<T> {
        assert_eq!(self.rank(), 2, "embedding: the table must be [V, D], got {:?}", self.shape());
        assert_eq!(
            ids.len(),
            crate::numel(ids_shape),
            "embedding: {} ids for shape {ids_shape:?}",
            ids.len()
        );
        let (v, d) = (self.shape()[0], self.shape()[1]);
        if let Some(&bad) = ids.iter().find(|&&i| i >= v) {
            panic!("embedding: token id {bad} is out of range for a table of {v} rows");
        }
        let slab = Slab::whole(1, v, d);
        let out = self.storage().index_select(slab, ids);
        let mut shape = ids_shape.to_vec();
        shape.push(d);
        let (w, ids) = (self.clone(), ids.to_vec());
        Tensor::from_op("embedding", Tensor::from_storage(out, &shape), &[self], move |g| {
            // the padding row learns nothing
            w.accumulate_grad(|| {
                Tensor::from_storage(g.storage().index_add(slab, &ids, padding_idx), w.shape())
            });
        })
    }

    /// `torch.gather`: out[o, j, i] = x[o, index[o, j, i], i] along dim `d`, where
    /// `index` has `index_shape` (equal to x's shape except along `d`).
    /// Backward: dx[o, index[o, j, i], i] += g[o, j, i].
    pub fn gather(&self, d: isize, index: &[usize], index_shape: &[usize]) -> Tensor<T> {
        let d = dim(d, self.rank(), "gather");
        let same_elsewhere = index_shape.len() == self.rank()
            && (0..self.rank()).all(|i| i == d || index_shape[i] == self.shape()[i]);
        assert!(
            same_elsewhere && index.len() == crate::numel(index_shape),
            "gather: index shape {index_shape:?} must match {:?} outside dim {d}",
            self.shape()
        );
        let (outer, len, inner) = split_at_dim(self.shape(), d);
        if let Some(&bad) = index.iter().find(|&&i| i >= len) {
            panic!("gather: index {bad} is out of range for dim {d} of {:?}", self.shape());
        }
        let m = index_shape[d];
        let slab = Slab::whole(outer, len, inner);
        let out = self.storage().gather(slab, index, m);
        let (x, idx) = (self.clone(), index.to_vec());
        Tensor::from_op("gather", Tensor::from_storage(out, index_shape), &[self], move |g| {
            x.accumulate_grad(|| Tensor::from_storage(g.storage().scatter_add(slab, &idx, m), x.shape()));
        })
    }

    /// out = value where `mask` ≠ 0, else x (mask broadcasts to x's shape; it is a
    /// constant). dL/dx = g where the mask is 0, else 0.
    pub fn masked_fill(&self, mask: &Tensor<T>, value: T) -> Tensor<T> {
        assert!(
            broadcast_shape(mask.shape(), self.shape()).as_deref() == Some(self.shape()),
            "masked_fill: mask {:?} does not broadcast to {:?}",
            mask.shape(),
            self.shape()
        );
        super::same_device("masked_fill", &[self, mask]);
        let m = mask.detach().expand(self.shape());
        let out = self.storage().masked_fill(&m.storage(), value);
        let x = self.clone();
        Tensor::from_op("masked_fill", Tensor::from_storage(out, self.shape()), &[self], move |g| {
            // dx = g where the mask is 0: the same fill, with 0
            x.accumulate_grad(|| {
                Tensor::from_storage(g.storage().masked_fill(&m.storage(), T::ZERO), x.shape())
            });
        })
    }

    /// out = a where `cond` ≠ 0, else b (all three broadcast together; `cond` is a
    /// constant). `dL/da = sum_to(g·[cond], shape(a))`, `dL/db = sum_to(g·[¬cond], shape(b))`.
    pub fn where_(cond: &Tensor<T>, a: &Tensor<T>, b: &Tensor<T>) -> Tensor<T> {
        let shape = broadcast_shape(a.shape(), b.shape())
            .and_then(|s| broadcast_shape(&s, cond.shape()))
            .unwrap_or_else(|| {
                panic!("where: shapes {:?}, {:?}, {:?} do not broadcast", cond.shape(), a.shape(), b.shape())
            });
        super::same_device("where", &[cond, a, b]);
        let c = cond.detach().expand(&shape);
        let (ae, be) = (a.detach().expand(&shape), b.detach().expand(&shape));
        let out = Storage::where_(&c.storage(), &ae.storage(), &be.storage());
        let (at, bt) = (a.clone(), b.clone());
        Tensor::from_op("where", Tensor::from_storage(out, &shape), &[a, b], move |g| {
            let (da, db) = Storage::where_backward(&c.storage(), &g.storage());
            at.accumulate_grad(|| Tensor::from_storage(da, g.shape()).sum_to(at.shape()));
            bt.accumulate_grad(|| Tensor::from_storage(db, g.shape()).sum_to(bt.shape()));
        })
    }
}
