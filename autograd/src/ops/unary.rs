//! Elementwise functions of one tensor: y = f(x), dL/dx = dL/dy · f'(x).

use crate::Tensor;
use tapegrad_kernels::activation as act;
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

    /// y = −x;  dy/dx = −1.
    pub fn neg(&self) -> Tensor<T> {
        self.unary("neg", |x| -x, |_, _| -T::ONE)
    }

    /// y = eˣ;  dy/dx = eˣ = y.
    pub fn exp(&self) -> Tensor<T> {
        self.unary("exp", |x| x.exp(), |_, y| y)
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
        self.unary("tanh", |x| x.tanh(), |_, y| T::ONE - y * y)
    }

    /// y = σ(x) = 1/(1 + e⁻ˣ);  dy/dx = y(1 − y).
    pub fn sigmoid(&self) -> Tensor<T> {
        self.unary("sigmoid", act::sigmoid, |_, y| y * (T::ONE - y))
    }

    /// y = max(x, 0);  dy/dx = 1 if x > 0 else 0.
    pub fn relu(&self) -> Tensor<T> {
        self.unary("relu", |x| x.max(T::ZERO), |x, _| if x > T::ZERO { T::ONE } else { T::ZERO })
    }

    /// GELU, erf form (BERT's): y = x·Φ(x);  dy/dx = Φ(x) + x·φ(x).
    pub fn gelu(&self) -> Tensor<T> {
        self.unary("gelu", act::gelu_erf, |x, _| act::gelu_erf_grad(x))
    }

    /// GELU, tanh approximation: y = ½x(1 + tanh(√(2/π)(x + 0.044715x³))).
    pub fn gelu_tanh(&self) -> Tensor<T> {
        self.unary("gelu_tanh", act::gelu_tanh, |x, _| act::gelu_tanh_grad(x))
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
