//! Moving numbers between devices.

use crate::storage::Device;
use crate::Tensor;
use tapegrad_kernels::Float;

impl<T: Float> Tensor<T> {
    /// The same numbers on `device` (the tensor itself when already there). An op:
    /// dL/dx = g moved back to x's device. Copying off a GPU waits for it and panics
    /// with its sticky error, like `to_vec`.
    pub fn to(&self, device: Device) -> Tensor<T> {
        if self.device() == device {
            return self.clone();
        }
        let value = Tensor::from_storage(self.storage().to_device(device), self.shape());
        let (x, from) = (self.clone(), self.device());
        Tensor::from_op("to", value, &[self], move |g| x.accumulate_grad(|| g.to(from)))
    }

    /// Moves a leaf (a parameter) to `device` in place, keeping its identity, so that
    /// optimizers and modules holding it see the moved numbers. Its gradient is
    /// cleared. Panics on a tensor produced by an op.
    pub fn move_to(&self, device: Device) {
        assert!(
            self.0.is_leaf(),
            "move_to: only a leaf can move in place (this one came from `{}`)",
            self.0.op_name()
        );
        if self.device() == device {
            return;
        }
        let moved = self.storage().to_device(device);
        *self.0.data.borrow_mut() = std::rc::Rc::new(moved);
        self.zero_grad();
    }
}
