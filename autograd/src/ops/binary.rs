//! Elementwise ops of two tensors with NumPy broadcasting.
//!
//! If `a` was broadcast to the output shape, its gradient is the output gradient
//! summed back over the broadcast dims: dL/da = sum_to(∂L/∂out · ∂out/∂a, shape(a)).

use crate::backend::Backend;
use crate::Tensor;
use std::ops::{Add, Div, Mul, Neg, Sub};
use tapegrad_kernels::broadcast::{broadcast_shape, Binary};
use tapegrad_kernels::Float;

impl<T: Float> Tensor<T> {
    /// out = a op b with broadcasting (`kernels::broadcast::binary`).
    fn zip(&self, rhs: &Tensor<T>, name: &str, op: Binary) -> Tensor<T> {
        let shape = broadcast_shape(self.shape(), rhs.shape()).unwrap_or_else(|| {
            panic!("{name}: shapes {:?} and {:?} do not broadcast", self.shape(), rhs.shape())
        });
        super::same_device(name, &[self, rhs]);
        let out = self.storage().binary(op, self.shape(), &rhs.storage(), rhs.shape(), &shape);
        Tensor::from_storage(out, &shape)
    }

    /// a + b;  ∂/∂a = 1, ∂/∂b = 1.
    pub fn add(&self, rhs: &Tensor<T>) -> Tensor<T> {
        let (a, b) = (self.clone(), rhs.clone());
        Tensor::from_op("add", self.zip(rhs, "add", Binary::Add), &[self, rhs], move |g| {
            a.accumulate_grad(|| g.sum_to(a.shape()));
            b.accumulate_grad(|| g.sum_to(b.shape()));
        })
    }

    /// a − b;  ∂/∂a = 1, ∂/∂b = −1.
    pub fn sub(&self, rhs: &Tensor<T>) -> Tensor<T> {
        let (a, b) = (self.clone(), rhs.clone());
        Tensor::from_op("sub", self.zip(rhs, "sub", Binary::Sub), &[self, rhs], move |g| {
            a.accumulate_grad(|| g.sum_to(a.shape()));
            b.accumulate_grad(|| g.sum_to(b.shape()).neg());
        })
    }

    /// a · b;  ∂/∂a = b, ∂/∂b = a.
    pub fn mul(&self, rhs: &Tensor<T>) -> Tensor<T> {
        let (a, b, av, bv) = (self.clone(), rhs.clone(), self.detach(), rhs.detach());
        Tensor::from_op("mul", self.zip(rhs, "mul", Binary::Mul), &[self, rhs], move |g| {
            a.accumulate_grad(|| g.mul(&bv).sum_to(a.shape()));
            b.accumulate_grad(|| g.mul(&av).sum_to(b.shape()));
        })
    }

    /// a / b;  ∂/∂a = 1/b, ∂/∂b = −a/b².
    pub fn div(&self, rhs: &Tensor<T>) -> Tensor<T> {
        let (a, b, av, bv) = (self.clone(), rhs.clone(), self.detach(), rhs.detach());
        Tensor::from_op("div", self.zip(rhs, "div", Binary::Div), &[self, rhs], move |g| {
            a.accumulate_grad(|| g.div(&bv).sum_to(a.shape()));
            b.accumulate_grad(|| g.mul(&av).div(&bv.mul(&bv)).neg().sum_to(b.shape()));
        })
    }

    /// Sums this tensor down to `shape`, which must broadcast to this tensor's shape
    /// (the adjoint of broadcasting). dL/dx = expand(g, shape(x)).
    pub fn sum_to(&self, shape: &[usize]) -> Tensor<T> {
        if shape == self.shape() {
            return self.clone();
        }
        assert!(
            broadcast_shape(shape, self.shape()).as_deref() == Some(self.shape()),
            "sum_to: {shape:?} does not broadcast to {:?}",
            self.shape()
        );
        let out = self.storage().sum_to(self.shape(), shape);
        let x = self.clone();
        Tensor::from_op("sum_to", Tensor::from_storage(out, shape), &[self], move |g| {
            x.accumulate_grad(|| g.expand(x.shape()));
        })
    }

    /// Broadcasts this tensor to `shape` (a copy). dL/dx = sum_to(g, shape(x)).
    pub fn expand(&self, shape: &[usize]) -> Tensor<T> {
        if shape == self.shape() {
            return self.clone();
        }
        assert!(
            broadcast_shape(self.shape(), shape).as_deref() == Some(shape),
            "expand: {:?} does not broadcast to {shape:?}",
            self.shape()
        );
        let out = self.storage().expand(self.shape(), shape);
        let x = self.clone();
        Tensor::from_op("expand", Tensor::from_storage(out, shape), &[self], move |g| {
            x.accumulate_grad(|| g.sum_to(x.shape()));
        })
    }
}

// Operators on references only (`&a + &b`): by-value impls would shadow the
// inherent methods in method-call syntax (`a.mul(&b).div(&c)`).
macro_rules! operator {
    ($trait:ident, $method:ident) => {
        impl<T: Float> $trait<&Tensor<T>> for &Tensor<T> {
            type Output = Tensor<T>;
            fn $method(self, rhs: &Tensor<T>) -> Tensor<T> {
                Tensor::$method(self, rhs)
            }
        }
    };
}
operator!(Add, add);
operator!(Sub, sub);
operator!(Mul, mul);
operator!(Div, div);

impl<T: Float> Neg for &Tensor<T> {
    type Output = Tensor<T>;
    fn neg(self) -> Tensor<T> {
        Tensor::neg(self)
    }
}
