//! `Tensor`: a row-major array of `f32` (fast path) or `f64` (reference path),
//! with the node of the tape that produced it.

use crate::backend::Backend;
use crate::storage::{CpuStorage, Device, MappedSlice, Storage};
use crate::tape::{self, Node};
use memmap2::Mmap;
use std::cell::{Ref, RefMut};
use std::fmt;
use std::rc::Rc;
use std::sync::Arc;
use tapegrad_kernels::gpu::GpuError;
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
        Tensor::from_storage(Storage::from_vec(data), shape)
    }

    /// A constant holding `storage` (on its device). Panics if the sizes differ.
    pub fn from_storage(storage: Storage<T>, shape: &[usize]) -> Self {
        assert_eq!(
            storage.len(),
            numel(shape),
            "Tensor::from_storage: {} values do not fill shape {shape:?}",
            storage.len()
        );
        Tensor(Rc::new(Node::leaf(Rc::new(storage), shape.to_vec(), false)))
    }

    /// A constant of `shape` filled with `v`, on `device`.
    pub fn full_on(shape: &[usize], v: T, device: Device) -> Self {
        Tensor::from_storage(Storage::from_host(vec![v; numel(shape)], device), shape)
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
        Some(Tensor::from_storage(Storage::Cpu(CpuStorage::Mapped(slice)), shape))
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
        self.0.data.borrow().device()
    }

    /// The buffer (shared, not copied): what ops hand to the backend.
    pub fn storage(&self) -> Rc<Storage<T>> {
        self.0.data.borrow().clone()
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

    /// Borrow of the numbers (row-major), for a tensor on the CPU. Panics on a GPU
    /// tensor (use [`Tensor::to_vec`], which copies).
    pub fn data(&self) -> Ref<'_, [T]> {
        Ref::map(self.0.data.borrow(), |s| {
            s.cpu_slice().unwrap_or_else(|| {
                panic!("data(): this tensor is on {}; use to_vec() or .to(Device::Cpu)", s.device())
            })
        })
    }

    /// The numbers as an owned `Vec` (copied back from a GPU). Panics with the device's
    /// sticky error if an earlier op on it failed; [`Tensor::try_to_vec`] returns it.
    pub fn to_vec(&self) -> Vec<T> {
        self.try_to_vec().unwrap_or_else(|e| panic!("{}: {e}", self.device()))
    }

    /// The numbers as an owned `Vec`, or the error of the first GPU operation that
    /// failed on this tensor's device since it was created (the sticky error).
    pub fn try_to_vec(&self) -> Result<Vec<T>, GpuError> {
        self.0.data.borrow().to_host()
    }

    /// The numbers as an owned `Vec`, taken without a copy when this handle is the
    /// only one to the tensor and its buffer (the common case for a fresh gradient).
    pub fn into_vec(self) -> Vec<T> {
        match Rc::try_unwrap(self.0) {
            Ok(node) => match Rc::try_unwrap(node.data.into_inner()) {
                Ok(Storage::Cpu(CpuStorage::Owned(v))) => v.into_vec(),
                Ok(s) => Tensor::from_storage(s, &node.shape).to_vec(),
                Err(shared) => shared.to_host().unwrap_or_else(|e| panic!("{}: {e}", shared.device())),
            },
            Err(node) => Tensor(node).to_vec(),
        }
    }

    /// The buffer, taken without a copy when this handle is the only one.
    pub(crate) fn into_storage(self) -> Storage<T> {
        match Rc::try_unwrap(self.0) {
            Ok(node) => Rc::try_unwrap(node.data.into_inner()).unwrap_or_else(|shared| shared.duplicate()),
            Err(node) => node.data.borrow().duplicate(),
        }
    }

    /// The single value of a one-element tensor (copied back from a GPU: this is
    /// where a step waits for the device). Panics with the device's sticky error.
    pub fn item(&self) -> T {
        self.try_item().unwrap_or_else(|e| panic!("{}: {e}", self.device()))
    }

    /// [`Tensor::item`], returning the device's sticky error instead of panicking.
    pub fn try_item(&self) -> Result<T, GpuError> {
        assert_eq!(self.numel(), 1, "item() needs a one-element tensor, shape is {:?}", self.shape());
        Ok(self.try_to_vec()?[0])
    }

    /// True while the numbers are still a view into a memory map.
    pub fn is_mapped(&self) -> bool {
        self.0.data.borrow().is_mapped()
    }

    /// Mutable access to the numbers of a CPU tensor (tests, loading): copy-on-write,
    /// so a mapped view is copied into owned memory on first write, and values
    /// captured by a pending backward keep their old numbers. Panics on a GPU tensor.
    pub fn data_mut(&self) -> RefMut<'_, [T]> {
        let st = self.storage_mut();
        RefMut::map(st, |s| match s {
            Storage::Cpu(c) => c.as_mut_slice(),
            Storage::Cuda(c) => panic!("data_mut(): this tensor is on {}", Backend::device(c)),
        })
    }

    /// Mutable access to the buffer, on any device, for optimizers: copy-on-write
    /// as [`Tensor::data_mut`].
    pub fn storage_mut(&self) -> RefMut<'_, Storage<T>> {
        let mut cell = self.0.data.borrow_mut();
        if Rc::strong_count(&cell) > 1 {
            *cell = Rc::new(cell.duplicate());
        }
        RefMut::map(cell, |rc| Rc::get_mut(rc).expect("made unique above"))
    }

    /// The same numbers as a new constant leaf, cut off from the graph.
    pub fn detach(&self) -> Self {
        Tensor(Rc::new(Node::leaf(self.0.data.borrow().clone(), self.0.shape.clone(), false)))
    }

    /// The accumulated gradient dL/dself (a constant), if backward reached this leaf.
    pub fn grad(&self) -> Option<Tensor<T>> {
        let shape = self.shape().to_vec();
        self.0.grad.borrow().as_ref().map(|g| Tensor::from_storage(g.duplicate(), &shape))
    }

    /// Clears the accumulated gradient (PyTorch's `zero_grad(set_to_none=True)`).
    pub fn zero_grad(&self) {
        *self.0.grad.borrow_mut() = None;
    }

    /// The accumulated gradient's buffer, if any, without a copy (optimizers).
    pub fn grad_storage(&self) -> Option<Ref<'_, Storage<T>>> {
        Ref::filter_map(self.0.grad.borrow(), |g| g.as_ref()).ok()
    }

    /// Replaces the numbers with `values` (same length), on this tensor's device; a
    /// pending backward keeps the old ones (state loading).
    pub fn write_values(&self, values: Vec<T>) {
        assert_eq!(
            values.len(),
            self.numel(),
            "write_values: {} values for shape {:?}",
            values.len(),
            self.shape()
        );
        let st = Storage::from_host(values, self.device());
        *self.0.data.borrow_mut() = Rc::new(st);
    }

    /// Whether backward has left a gradient on this tensor.
    pub fn has_grad(&self) -> bool {
        self.0.grad.borrow().is_some()
    }

    /// Mutable access to the accumulated gradient's buffer, if any (optimizers,
    /// clipping).
    pub fn grad_storage_mut(&self) -> Option<RefMut<'_, Storage<T>>> {
        let g = self.0.grad.borrow_mut();
        if g.is_none() {
            return None;
        }
        Some(RefMut::map(g, |g| g.as_mut().expect("checked above")))
    }

    /// Replaces the gradient (optimizer state loading, tests); `None` clears it.
    pub fn set_grad(&self, g: Option<&Tensor<T>>) {
        if let Some(g) = g {
            assert_eq!(g.shape(), self.shape(), "set_grad: gradient shape must match the tensor");
            assert_eq!(g.device(), self.device(), "set_grad: gradient must be on the tensor's device");
        }
        *self.0.grad.borrow_mut() = g.map(|g| g.storage().duplicate());
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
        let seed = self.0.data.borrow().full_like(1, T::ONE); // dL/dL = 1, on the loss's device
        tape::backward(self, seed);
    }

    /// Backward from a non-scalar output with the given output gradient.
    pub fn backward_with(&self, grad: &Tensor<T>) {
        assert_eq!(grad.shape(), self.shape(), "backward_with: gradient shape must match the output");
        assert_eq!(grad.device(), self.device(), "backward_with: gradient must be on the output's device");
        tape::backward(self, grad.storage().duplicate());
    }

    /// Converts the element type (f32 ↔ f64) through the host; the result is a
    /// constant on the same device.
    pub fn cast<U: Float>(&self) -> Tensor<U> {
        let data = self.to_vec().iter().map(|v| U::from_f64(v.to_f64())).collect();
        Tensor::from_storage(Storage::from_host(data, self.device()), self.shape())
    }
}

impl<T: Float> fmt::Debug for Tensor<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.try_to_vec() {
            Ok(data) => {
                let shown: Vec<T> = data.iter().take(8).copied().collect();
                write!(f, "Tensor(shape={:?}, data={:?}", self.shape(), shown)?;
                if data.len() > 8 {
                    write!(f, "…")?;
                }
            }
            Err(e) => write!(f, "Tensor(shape={:?}, error={e}", self.shape())?,
        }
        if self.device() != Device::Cpu {
            write!(f, ", device={}", self.device())?;
        }
        if self.tracks_grad() {
            write!(f, ", grad_fn={}", self.0.op_name())?;
        }
        write!(f, ")")
    }
}
