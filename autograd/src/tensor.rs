//! `Tensor`: a row-major array of `f32` (fast path) or `f64` (reference path),
//! with the node of the tape that produced it.

use crate::storage::{Device, MappedSlice, Storage};
use crate::tape::{self, Node};
use memmap2::Mmap;
use std::cell::{Ref, RefMut};
use std::fmt;
use std::rc::Rc;
use std::sync::Arc;
use tapegrad_kernels::Float;

/// A handle to a node of the computation graph. Cloning is cheap (shared node).
///
/// Tensors are `!Send`: each thread builds and differentiates its own graphs.
pub struct Tensor<T: Float = f32>(pub(crate) Rc<Node<T>>);

impl<T: Float> Clone for Tensor<T> {
    fn clone(&self) -> Self {
        Tensor(self.0.clone())
    }
}

/// Number of elements of a shape (1 for a scalar `[]`).
pub fn numel(shape: &[usize]) -> usize {
    shape.iter().product()
}

impl<T: Float> Tensor<T> {
    /// A constant (no gradient) from owned data. Panics if `data.len()` ≠ the shape's size.
    pub fn from_vec(data: Vec<T>, shape: &[usize]) -> Self {
        assert_eq!(
            data.len(),
            numel(shape),
            "Tensor::from_vec: {} values do not fill shape {shape:?}",
            data.len()
        );
        Tensor(Rc::new(Node::leaf(Rc::new(Storage::Owned(data)), shape.to_vec(), false)))
    }

    /// A trainable leaf (`requires_grad`): a parameter whose gradient backward fills.
    pub fn param(data: Vec<T>, shape: &[usize]) -> Self {
        Self::from_vec(data, shape).requires_grad(true)
    }

    pub fn scalar(v: T) -> Self {
        Self::from_vec(vec![v], &[])
    }
    pub fn zeros(shape: &[usize]) -> Self {
        Self::from_vec(vec![T::ZERO; numel(shape)], shape)
    }
    pub fn ones(shape: &[usize]) -> Self {
        Self::from_vec(vec![T::ONE; numel(shape)], shape)
    }
    pub fn full(shape: &[usize], v: T) -> Self {
        Self::from_vec(vec![v; numel(shape)], shape)
    }

    /// A constant viewing `numel(shape)` elements at `byte_offset` of a memory map,
    /// without copying. `None` when out of bounds or misaligned (copy instead).
    /// Writing to it (an optimizer step) copies it into owned memory first.
    pub fn from_mmap(map: Arc<Mmap>, byte_offset: usize, shape: &[usize]) -> Option<Self> {
        let slice = MappedSlice::new(map, byte_offset, numel(shape))?;
        Some(Tensor(Rc::new(Node::leaf(Rc::new(Storage::Mapped(slice)), shape.to_vec(), false))))
    }

    /// Marks a leaf as trainable (or not), builder style. See [`Tensor::set_requires_grad`].
    pub fn requires_grad(self, on: bool) -> Self {
        self.set_requires_grad(on);
        self
    }

    /// Marks a leaf as trainable (or frozen). Panics on a tensor produced by an op:
    /// only leaves are parameters.
    pub fn set_requires_grad(&self, on: bool) {
        assert!(
            self.0.is_leaf(),
            "requires_grad can only be set on leaf tensors (this one came from `{}`)",
            self.0.op_name()
        );
        self.0.requires_grad.set(on);
    }

    /// Whether gradients flow to or through this tensor.
    pub fn tracks_grad(&self) -> bool {
        self.0.requires_grad.get()
    }

    pub fn shape(&self) -> &[usize] {
        &self.0.shape
    }
    pub fn rank(&self) -> usize {
        self.0.shape.len()
    }
    pub fn numel(&self) -> usize {
        numel(&self.0.shape)
    }
    pub fn device(&self) -> Device {
        Device::Cpu
    }
    /// Unique, increasing id of the node (creation order).
    pub fn id(&self) -> u64 {
        self.0.id
    }

    /// How many handles point at this tensor's node: the caller's clones plus the
    /// recorded ops that use it. Lets tests check that graphs are freed.
    pub fn handle_count(&self) -> usize {
        Rc::strong_count(&self.0)
    }

    /// Borrow of the numbers (row-major).
    pub fn data(&self) -> Ref<'_, [T]> {
        Ref::map(self.0.data.borrow(), |s| s.as_slice())
    }

    /// The numbers as an owned `Vec`.
    pub fn to_vec(&self) -> Vec<T> {
        self.data().to_vec()
    }

    /// The numbers as an owned `Vec`, taken without a copy when this handle is the
    /// only one to the tensor and its buffer (the common case for a fresh gradient).
    pub fn into_vec(self) -> Vec<T> {
        match Rc::try_unwrap(self.0) {
            Ok(node) => match Rc::try_unwrap(node.data.into_inner()) {
                Ok(crate::storage::Storage::Owned(v)) => v,
                Ok(s) => s.as_slice().to_vec(),
                Err(shared) => shared.as_slice().to_vec(),
            },
            Err(node) => Tensor(node).to_vec(),
        }
    }

    /// The single value of a one-element tensor.
    pub fn item(&self) -> T {
        assert_eq!(self.numel(), 1, "item() needs a one-element tensor, shape is {:?}", self.shape());
        self.data()[0]
    }

    /// True while the numbers are still a view into a memory map.
    pub fn is_mapped(&self) -> bool {
        self.0.data.borrow().is_mapped()
    }

    /// Mutable access to the numbers, for optimizers: copy-on-write, so a mapped
    /// view is copied into owned memory on first write, and values captured by a
    /// pending backward keep their old numbers.
    pub fn data_mut(&self) -> RefMut<'_, [T]> {
        let mut cell = self.0.data.borrow_mut();
        if Rc::strong_count(&cell) > 1 || cell.is_mapped() {
            *cell = Rc::new(Storage::Owned(cell.as_slice().to_vec()));
        }
        RefMut::map(cell, |rc| match Rc::get_mut(rc) {
            Some(Storage::Owned(v)) => v.as_mut_slice(),
            _ => unreachable!("made unique and owned above"),
        })
    }

    /// The same numbers as a new constant leaf, cut off from the graph.
    pub fn detach(&self) -> Self {
        Tensor(Rc::new(Node::leaf(self.0.data.borrow().clone(), self.0.shape.clone(), false)))
    }

    /// The accumulated gradient dL/dself (a constant), if backward reached this leaf.
    pub fn grad(&self) -> Option<Tensor<T>> {
        let shape = self.shape().to_vec();
        self.0.grad.borrow().as_ref().map(|g| Tensor::from_vec(g.clone(), &shape))
    }

    /// Clears the accumulated gradient (PyTorch's `zero_grad(set_to_none=True)`).
    pub fn zero_grad(&self) {
        *self.0.grad.borrow_mut() = None;
    }

    /// Mutable access to the accumulated gradient, if any (for clipping).
    pub fn grad_mut(&self) -> Option<RefMut<'_, [T]>> {
        let g = self.0.grad.borrow_mut();
        if g.is_none() {
            return None;
        }
        Some(RefMut::map(g, |g| g.as_mut().expect("checked above").as_mut_slice()))
    }

    /// Reverse-mode differentiation of this scalar: seeds dL/dL = 1 and walks the
    /// tape back. See `tape::backward`.
    pub fn backward(&self) {
        assert_eq!(
            self.numel(),
            1,
            "backward() needs a scalar loss, got shape {:?}; use backward_with(grad)",
            self.shape()
        );
        tape::backward(self, vec![T::ONE]);
    }

    /// Backward from a non-scalar output with the given output gradient.
    pub fn backward_with(&self, grad: &Tensor<T>) {
        assert_eq!(grad.shape(), self.shape(), "backward_with: gradient shape must match the output");
        tape::backward(self, grad.to_vec());
    }

    /// Converts the element type (f32 ↔ f64); the result is a constant.
    pub fn cast<U: Float>(&self) -> Tensor<U> {
        let data = self.data().iter().map(|v| U::from_f64(v.to_f64())).collect();
        Tensor::from_vec(data, self.shape())
    }
}

impl<T: Float> fmt::Debug for Tensor<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let data = self.data();
        let shown: Vec<T> = data.iter().take(8).copied().collect();
        write!(f, "Tensor(shape={:?}, data={:?}", self.shape(), shown)?;
        if data.len() > 8 {
            write!(f, "…")?;
        }
        if self.tracks_grad() {
            write!(f, ", grad_fn={}", self.0.op_name())?;
        }
        write!(f, ")")
    }
}
