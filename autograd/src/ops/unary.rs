//! Elementwise functions of one tensor: y = f(x), dL/dx = dL/dy · f'(x).

use crate::backend::Backend;
use crate::Tensor;
use tapegrad_kernels::elementwise::Unary;
use tapegrad_kernels::Float;

impl<T: Float> Tensor<T> {
    /// y = f(x) elementwise by the kernel of `op`; dx = g · f'(x) by its backward,
    /// which may use x or y = f(x) (`kernels::elementwise`).
    fn unary(&self, name: &'static str, op: Unary) -> Tensor<T> {
        let y = Tensor::from_storage(self.storage().unary(op), self.shape());
        let (x, xv, yv) = (self.clone(), self.detach(), y.clone()); // xv: x's values as of the forward
        Tensor::from_op(name, y, &[self], move |g| {
            x.accumulate_grad(|| {
                let dx = xv.storage().unary_backward(op, &yv.storage(), &g.storage());
                Tensor::from_storage(dx, xv.shape())
            });
        })
    }

    /// y = −x;  dy/dx = −1.
    pub fn neg(&self) -> Tensor<T> {
        self.unary("neg", Unary::Neg)
    }

    /// y = eˣ;  dy/dx = eˣ = y.
    pub fn exp(&self) -> Tensor<T> {
        self.unary("exp", Unary::Exp)
    }

    /// y = ln x;  dy/dx = 1/x.
    pub fn log(&self) -> Tensor<T> {
        self.unary("log", Unary::Log)
    }

    /// y = √x;  dy/dx = 1/(2√x) = 1/(2y).
    pub fn sqrt(&self) -> Tensor<T> {
        self.unary("sqrt", Unary::Sqrt)
    }

    /// y = tanh x;  dy/dx = 1 − y².
    pub fn tanh(&self) -> Tensor<T> {
        self.unary("tanh", Unary::Tanh)
    }

    /// y = σ(x) = 1/(1 + e⁻ˣ);  dy/dx = y(1 − y).
    pub fn sigmoid(&self) -> Tensor<T> {
        self.unary("sigmoid", Unary::Sigmoid)
    }

    /// y = max(x, 0);  dy/dx = 1 if x > 0 else 0.
    pub fn relu(&self) -> Tensor<T> {
        self.unary("relu", Unary::Relu)
    }

    /// GELU, erf form (BERT's): y = x·Φ(x);  dy/dx = Φ(x) + x·φ(x).
    pub fn gelu(&self) -> Tensor<T> {
        self.unary("gelu", Unary::Gelu)
    }

    /// GELU, tanh approximation: y = ½x(1 + tanh(√(2/π)(x + 0.044715x³))).
    pub fn gelu_tanh(&self) -> Tensor<T> {
        self.unary("gelu_tanh", Unary::GeluTanh)
    }

    /// y = x + c;  dy/dx = 1.
    pub fn add_scalar(&self, c: T) -> Tensor<T> {
        self.unary("add_scalar", Unary::AddScalar(c.to_f64()))
    }

    /// y = c·x;  dy/dx = c.
    pub fn mul_scalar(&self, c: T) -> Tensor<T> {
        self.unary("mul_scalar", Unary::MulScalar(c.to_f64()))
    }

    /// y = xᵖ;  dy/dx = p·xᵖ⁻¹.
    pub fn pow_scalar(&self, p: T) -> Tensor<T> {
        self.unary("pow_scalar", Unary::PowScalar(p.to_f64()))
    }
}
