//! Indexing: index_select (the embedding lookup), gather, masked_fill, where.

use super::{dim, split_at_dim};
use crate::Tensor;
use tapegrad_kernels::broadcast::broadcast_shape;
use tapegrad_kernels::index as k;
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
        let mut out = vec![T::ZERO; outer * indices.len() * inner];
        k::index_select(&self.data(), outer, len, inner, indices, &mut out);
        let mut shape = self.shape().to_vec();
        shape[d] = indices.len();
        let (x, idx) = (self.clone(), indices.to_vec());
        Tensor::from_op("index_select", Tensor::from_vec(out, &shape), &[self], move |g| {
            x.accumulate_grad(|| {
                let mut dx = vec![T::ZERO; x.numel()];
                k::index_add(&g.data(), outer, len, inner, &idx, &mut dx);
                Tensor::from_vec(dx, x.shape())
            });
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
        let mut out = vec![T::ZERO; ids.len() * d];
        k::index_select(&self.data(), 1, v, d, ids, &mut out);
        let mut shape = ids_shape.to_vec();
        shape.push(d);
        let (w, ids) = (self.clone(), ids.to_vec());
        Tensor::from_op("embedding", Tensor::from_vec(out, &shape), &[self], move |g| {
            w.accumulate_grad(|| {
                let mut dw = vec![T::ZERO; w.numel()];
                k::index_add(&g.data(), 1, v, d, &ids, &mut dw);
                if let Some(p) = padding_idx.filter(|&p| p < v) {
                    dw[p * d..(p + 1) * d].fill(T::ZERO); // the padding row learns nothing
                }
                Tensor::from_vec(dw, w.shape())
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
        let mut out = vec![T::ZERO; index.len()];
        k::gather(&self.data(), outer, len, inner, index, m, &mut out);
        let (x, idx) = (self.clone(), index.to_vec());
        Tensor::from_op("gather", Tensor::from_vec(out, index_shape), &[self], move |g| {
            x.accumulate_grad(|| {
                let mut dx = vec![T::ZERO; x.numel()];
                k::scatter_add(&g.data(), outer, len, inner, &idx, m, &mut dx);
                Tensor::from_vec(dx, x.shape())
            });
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
        let m = mask.detach().expand(self.shape());
        let out: Vec<T> = self
            .data()
            .iter()
            .zip(m.data().iter())
            .map(|(&x, &k)| if k != T::ZERO { value } else { x })
            .collect();
        let x = self.clone();
        Tensor::from_op("masked_fill", Tensor::from_vec(out, self.shape()), &[self], move |g| {
            x.accumulate_grad(|| {
                let (gd, md) = (g.data(), m.data());
                let dx = gd.iter().zip(md.iter()).map(|(&g, &k)| if k != T::ZERO { T::ZERO } else { g });
                Tensor::from_vec(dx.collect(), x.shape())
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
        let c = cond.detach().expand(&shape);
        let (ae, be) = (a.detach().expand(&shape), b.detach().expand(&shape));
        let out: Vec<T> = (c.data().iter().zip(ae.data().iter()).zip(be.data().iter()))
            .map(|((&c, &x), &y)| if c != T::ZERO { x } else { y })
            .collect();
        let (at, bt) = (a.clone(), b.clone());
        Tensor::from_op("where", Tensor::from_vec(out, &shape), &[a, b], move |g| {
            let pick = |take_true: bool| {
                let (gd, cd) = (g.data(), c.data());
                let v = gd
                    .iter()
                    .zip(cd.iter())
                    .map(|(&g, &c)| if (c != T::ZERO) == take_true { g } else { T::ZERO });
                Tensor::from_vec(v.collect(), g.shape())
            };
            at.accumulate_grad(|| pick(true).sum_to(at.shape()));
            bt.accumulate_grad(|| pick(false).sum_to(bt.shape()));
        })
    }
}
