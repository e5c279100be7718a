//! Replacing a leaf's numbers: loading pretrained weights into a built model.

use crate::Tensor;
use tapegrad_kernels::Float;

impl<T: Float> Tensor<T> {
    /// Makes this leaf hold `src`'s numbers, sharing them (PyTorch's
    /// `with torch.no_grad(): p.data = src`). Nothing is copied: a memory-mapped
    /// `src` stays a view, and the first write through [`Tensor::data_mut`] (an
    /// optimizer step) copies it, so `src` itself never changes. The leaf keeps its
    /// `requires_grad` flag; its stale gradient is cleared.
    ///
    /// Not an op: nothing is recorded on the tape and no gradient flows to `src`
    /// (as for any assignment, d self / d src is not defined). Panics if this is
    /// not a leaf or the shapes differ.
    pub fn set_data(&self, src: &Tensor<T>) {
        assert!(self.0.is_leaf(), "set_data: only a leaf's numbers can be replaced");
        assert_eq!(
            self.shape(),
            src.shape(),
            "set_data: shape {:?} cannot take numbers of shape {:?}",
            self.shape(),
            src.shape()
        );
        let storage = src.0.data.borrow().clone();
        *self.0.data.borrow_mut() = storage;
        self.zero_grad();
    }
}

#[cfg(test)]
mod tests {
    use crate::Tensor;

    #[test]
    fn shares_then_copies_on_write() {
        let p = Tensor::<f64>::param(vec![0.0; 3], &[3]);
        let src = Tensor::from_vec(vec![1.0, 2.0, 3.0], &[3]);
        p.set_data(&src);
        assert!(p.tracks_grad());
        assert_eq!(p.to_vec(), vec![1.0, 2.0, 3.0]);
        p.data_mut()[0] = 9.0;
        assert_eq!(src.to_vec(), vec![1.0, 2.0, 3.0], "the source must not change");
        assert_eq!(p.to_vec(), vec![9.0, 2.0, 3.0]);
    }
}
