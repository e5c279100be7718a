//! The affine map of a fully connected layer, as one op: `y = x·Wᵀ + b`.
//!
//! ```text
//! x (R, in), W (out, in), b (out) → y (R, out)       (R = all leading dims of x)
//! y[r, j] = Σ_p x[r, p]·W[j, p] + b[j]
//!
//! dL/dx = g·W          (R, out)·(out, in)
//! dL/dW = gᵀ·x         (out, R)·(R, in)
//! dL/db = Σ_r g[r, :]
//! ```
//!
//! The same as `x.matmul(&w.transpose(0, 1)).add(b)` (the gradient tests compare the
//! two), without their extra passes: Wᵀ is read through strides instead of copied, and
//! y starts as the bias rows, which the product then accumulates into (no zero fill, no
//! separate add).

use crate::backend::{Backend, Gemm};
use crate::Tensor;
use tapegrad_kernels::gemm::Strides;
use tapegrad_kernels::Float;

impl<T: Float> Tensor<T> {
    /// `self·weightᵀ + bias` for self `[..., in]`, weight `[out, in]` (PyTorch's layout),
    /// bias `[out]` → `[..., out]` (math in the module doc).
    pub fn linear(&self, weight: &Tensor<T>, bias: Option<&Tensor<T>>) -> Tensor<T> {
        let xs = self.shape();
        assert!(
            !xs.is_empty() && weight.rank() == 2 && weight.shape()[1] == xs[xs.len() - 1],
            "linear: input {xs:?} and weight {:?} (want weight [out, in] with in = the input's last dim)",
            weight.shape()
        );
        let (out, inp) = (weight.shape()[0], weight.shape()[1]);
        if let Some(b) = bias {
            assert_eq!(b.shape(), &[out], "linear: bias must be [out] = [{out}], got {:?}", b.shape());
        }
        let rows = self.numel() / inp.max(1);
        let mut shape = xs.to_vec();
        *shape.last_mut().expect("rank ≥ 1") = out;

        let mut inputs = vec![self, weight];
        inputs.extend(bias);
        super::same_device("linear", &inputs);

        // y (R, out) = bias rows (b expanded), then += x (R, in) · Wᵀ (in, out)
        let x_st = self.storage();
        let (mut y, beta) = match bias {
            Some(b) => (b.storage().expand(&[out], &[rows, out]), 1.0),
            None => (super::product_out(&x_st, rows * out, inp), 0.0),
        };
        let w_t = Strides { batch: 0, row: 1, col: inp }; // Wᵀ(p, j) = W[j*in + p]
        let rm = Strides::row_major;
        x_st.gemm(
            &weight.storage(),
            &mut y,
            Gemm::new(1, (rows, out, inp), rm(rows, inp), w_t, rm(rows, out)).beta(beta),
        );

        let (x, w, b) = (self.clone(), weight.clone(), bias.cloned());
        let (xv, wv) = (self.detach(), weight.detach()); // operand values as of the forward
        Tensor::from_op("linear", Tensor::from_storage(y, &shape), &inputs, move |g| {
            let gd = g.storage();
            // dL/dx (R, in) = g (R, out) · W (out, in)
            x.accumulate_grad(|| {
                let mut dx = super::product_out(&gd, rows * inp, out);
                gd.gemm(
                    &wv.storage(),
                    &mut dx,
                    Gemm::new(1, (rows, inp, out), rm(rows, out), rm(out, inp), rm(rows, inp)),
                );
                Tensor::from_storage(dx, x.shape())
            });
            // dL/dW (out, in) = gᵀ (out, R) · x (R, in)
            w.accumulate_grad(|| {
                let mut dw = super::product_out(&gd, out * inp, rows);
                let g_t = Strides::transposed(rows, out);
                gd.gemm(
                    &xv.storage(),
                    &mut dw,
                    Gemm::new(1, (out, inp, rows), g_t, rm(rows, inp), rm(out, inp)),
                );
                Tensor::from_storage(dw, w.shape())
            });
            // dL/db (out) = Σ_r g[r, :]
            if let Some(b) = &b {
                b.accumulate_grad(|| Tensor::from_storage(gd.sum_to(&[rows, out], &[out]), &[out]));
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use crate::Tensor;
    use rand::{RngExt, SeedableRng};

    /// The fused op equals matmul-by-transpose plus add, values and gradients.
    #[test]
    fn linear_equals_matmul_transpose_add() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(21);
        let mut p = |s: &[usize]| {
            Tensor::<f64>::param((0..s.iter().product()).map(|_| rng.random_range(-1.0..1.0)).collect(), s)
        };
        for with_bias in [true, false] {
            let (x, w, b) = (p(&[2, 3, 5]), p(&[4, 5]), p(&[4]));
            let wo = p(&[2, 3, 4]).detach();
            let bias = with_bias.then_some(&b);
            x.linear(&w, bias).mul(&wo).sum().backward();
            let g = |t: &Tensor<f64>| t.grad().map(|g| g.to_vec());
            let (y1, gx, gw, gb) = (x.linear(&w, bias).to_vec(), g(&x).unwrap(), g(&w).unwrap(), g(&b));
            for t in [&x, &w, &b] {
                t.zero_grad();
            }
            let plain = x.matmul(&w.transpose(0, 1));
            let plain = if with_bias { plain.add(&b) } else { plain };
            plain.mul(&wo).sum().backward();
            let close = |a: &[f64], c: &[f64]| a.iter().zip(c).all(|(u, v)| (u - v).abs() < 1e-12);
            assert!(close(&y1, &plain.to_vec()));
            assert!(close(&gx, &g(&x).unwrap()) && close(&gw, &g(&w).unwrap()));
            if with_bias {
                assert!(close(&gb.unwrap(), &g(&b).unwrap()));
            } else {
                assert!(gb.is_none() && b.grad().is_none());
            }
            for t in [&x, &w, &b] {
                t.zero_grad();
            }
        }
    }
}
