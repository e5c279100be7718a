//! Elementwise functions of one tensor: y = f(x), dL/dx = dL/dy · f'(x).

use crate::Tensor;
use tapegrad_kernels::elementwise::{unary_backward, unary_forward, Unary};
use tapegrad_kernels::Float;

impl<T: Float> Tensor<T> {
    /// y = f(x) elementwise; backward dx = g · df(x, y) (the derivative may use x or y).
    fn unary(&self, name: &'static str, f: impl Fn(T) -> T, df: impl Fn(T, T) -> T + 'static) -> Tensor<T> {
        let shape = self.shape().to_vec();
        let y = Tensor::from_vec(self.data().iter().map(|&v| f(v)).collect(), &shape);
        let (x, xv) = (self.clone(), self.detach()); // xv: x's values as of the forward
        Tensor::from_op(name, y.clone(), &[self], move |g| {
            x.accumulate_grad(|| {
                let (xd, yd, gd) = (xv.data(), y.data(), g.data());
                let dx = (0..gd.len()).map(|i| gd[i] * df(xd[i], yd[i])).collect();
                Tensor::from_vec(dx, &shape)
            });
        })
    }

    /// y = f(x) for an activation with a vector kernel; dx = g · f'(x) by the
    /// matching backward kernel (`kernels::elementwise`).
    fn activation(&self, name: &'static str, op: Unary) -> Tensor<T> {
        let mut y = vec![T::ZERO; self.numel()];
        unary_forward(op, &self.data(), &mut y);
        let y = Tensor::from_vec(y, self.shape());
        let (x, xv, yv) = (self.clone(), self.detach(), y.clone());
        Tensor::from_op(name, y, &[self], move |g| {
            x.accumulate_grad(|| {
                let mut dx = vec![T::ZERO; xv.numel()];
                unary_backward(op, &xv.data(), &yv.data(), &g.data(), &mut dx);
                Tensor::from_vec(dx, xv.shape())
            });
        })
    }

    /// y = −x;  dy/dx = −1.
    pub fn neg(&self) -> Tensor<T> {
        self.unary("neg", |x| -x, |_, _| -T::ONE)
    }

    /// y = eˣ;  dy/dx = eˣ = y.
    pub fn exp(&self) -> Tensor<T> {
        self.activation("exp", Unary::Exp)
    }

    /// y = ln x;  dy/dx = 1/x.
    pub fn log(&self) -> Tensor<T> {
        self.unary("log", |x| x.ln(), |x, _| T::ONE / x)
    }

    /// y = √x;  dy/dx = 1/(2√x) = 1/(2y).
    pub fn sqrt(&self) -> Tensor<T> {
        self.unary("sqrt", |x| x.sqrt(), |_, y| T::ONE / (T::from_f64(2.0) * y))
    }

    /// y = tanh x;  dy/dx = 1 − y².
    pub fn tanh(&self) -> Tensor<T> {
        self.activation("tanh", Unary::Tanh)
    }

    /// y = σ(x) = 1/(1 + e⁻ˣ);  dy/dx = y(1 − y).
    pub fn sigmoid(&self) -> Tensor<T> {
        self.activation("sigmoid", Unary::Sigmoid)
    }

    /// y = max(x, 0);  dy/dx = 1 if x > 0 else 0.
    pub fn relu(&self) -> Tensor<T> {
        self.activation("relu", Unary::Relu)
    }

    /// GELU, erf form (BERT's): y = x·Φ(x);  dy/dx = Φ(x) + x·φ(x).
    pub fn gelu(&self) -> Tensor<T> {
        self.activation("gelu", Unary::Gelu)
    }

    /// GELU, tanh approximation: y = ½x(1 + tanh(√(2/π)(x + 0.044715x³))).
    pub fn gelu_tanh(&self) -> Tensor<T> {
        self.activation("gelu_tanh", Unary::GeluTanh)
    }

    /// y = x + c;  dy/dx = 1.
    pub fn add_scalar(&self, c: T) -> Tensor<T> {
        self.unary("add_scalar", move |x| x + c, |_, _| T::ONE)
    }

    /// y = c·x;  dy/dx = c.
    pub fn mul_scalar(&self, c: T) -> Tensor<T> {
        self.unary("mul_scalar", move |x| c * x, move |_, _| c)
    }

    /// y = xᵖ;  dy/dx = p·xᵖ⁻¹.
    pub fn pow_scalar(&self, p: T) -> Tensor<T> {
        self.unary("pow_scalar", move |x| x.powf(p), move |x, _| p * x.powf(p - T::ONE))
    }
}
