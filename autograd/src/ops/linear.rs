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
//! the product adds b to each tile of y as it first writes it (no zero fill, no broadcast
//! copy of b, no separate add; `kernels::gemm::MatMut::with_bias`).
//!
//! In bf16 precision (`crate::precision`, f32 tensors) the three products round their
//! operands to bf16 and sum in f32 (`kernels::bf16gemm`):
//!
//! ```text
//! y     = bf16(x)·bf16(W)ᵀ + b
//! dL/dx = bf16(g)·bf16(W)
//! dL/dW = bf16(g)ᵀ·bf16(x)          dL/db as above, in f32
//! ```
//!
//! the gradient of the rounded product taken as if the rounding were the identity (the
//! straight-through rule of mixed-precision training); x, W, b and every gradient stay f32.

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
        // bf16 products for f32 tensors in bf16 precision (read once: the backward uses it too)
        let bf16 = crate::precision::bf16_products::<T>();
        let mut shape = xs.to_vec();
        *shape.last_mut().expect("rank ≥ 1") = out;

        let mut inputs = vec![self, weight];
        inputs.extend(bias);
        super::same_device("linear", &inputs);

        // y (R, out) = x (R, in) · Wᵀ (in, out) + b (out), b added to every row
        let x_st = self.storage();
        let mut y = super::product_out(&x_st, rows * out, inp);
        let w_t = Strides { batch: 0, row: 1, col: inp }; // Wᵀ(p, j) = W[j*in + p]
        let rm = Strides::row_major;
        let b_st = bias.map(|b| b.storage());
        x_st.gemm(
            &weight.storage(),
            b_st.as_deref(),
            &mut y,
            Gemm::new(1, (rows, out, inp), rm(rows, inp), w_t, rm(rows, out)).bf16(bf16),
        );

        let (x, w, b) = (self.clone(), weight.clone(), bias.cloned());
        let (xv, wv) = (self.detach(), weight.detach()); // operand values as of the forward
        Tensor::from_op("linear", Tensor::from_storage(y, &shape), &inputs, move |g| {
            let gd = g.storage();
            // dL/dx (R, in) += g (R, out) · W (out, in), summed into x's gradient by the
            // product itself when x already has one (it feeds several layers: Q, K, V)
            x.accumulate_grad_with(
                || super::product_out(&gd, rows * inp, out),
                |dx, beta| {
                    let p = Gemm::new(1, (rows, inp, out), rm(rows, out), rm(out, inp), rm(rows, inp));
                    gd.gemm(&wv.storage(), None, dx, p.beta(beta).bf16(bf16));
                },
            );
            // dL/dW (out, in) = gᵀ (out, R) · x (R, in)
            w.accumulate_grad(|| {
                let mut dw = super::product_out(&gd, out * inp, rows);
                let g_t = Strides::transposed(rows, out);
                gd.gemm(
                    &xv.storage(),
                    None,
                    &mut dw,
                    Gemm::new(1, (out, inp, rows), g_t, rm(rows, inp), rm(out, inp)).bf16(bf16),
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

    /// bf16 precision: the output and the gradients of x, W and b against the f32 op's on the
    /// same inputs. Finite differences cannot check a bf16 op (a step below bf16's resolution
    /// changes nothing, one above it is too coarse for a derivative), so the reference is the
    /// f32 op's analytic gradient, within bf16's error: each operand is off by ≤ 2⁻⁸ of itself,
    /// each product by ≤ 2⁻⁷ + 2⁻¹⁶, so `|Δ| ≤ (2⁻⁷ + 2⁻¹⁶)·Σ|terms|` plus the f32 sums'
    /// rounding (≤ k·2⁻²⁴·Σ|terms|); with every value in [−1, 1] a k-term sum has
    /// `Σ|terms| ≤ k`, and we allow that bound at Σ|terms| = k. The bias gradient is an f32 sum in
    /// both: identical.
    #[test]
    fn bf16_linear_matches_f32_within_bf16_error() {
        use crate::precision::{set_product_precision, Precision};
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(22);
        let (r, inp, out) = (40, 96, 24);
        let mut v = |n: usize| (0..n).map(|_| rng.random_range(-1.0f32..1.0)).collect::<Vec<_>>();
        let (xv, wv, bv, gv) = (v(r * inp), v(out * inp), v(out), v(r * out));
        let run = |p: Precision| {
            let _mode = set_product_precision(p);
            let x = Tensor::<f32>::param(xv.clone(), &[r, inp]);
            let w = Tensor::<f32>::param(wv.clone(), &[out, inp]);
            let b = Tensor::<f32>::param(bv.clone(), &[out]);
            let y = x.linear(&w, Some(&b));
            y.mul(&Tensor::from_vec(gv.clone(), &[r, out])).sum().backward();
            let g = |t: &Tensor<f32>| t.grad().expect("has a gradient").to_vec();
            (y.to_vec(), g(&x), g(&w), g(&b))
        };
        let (y32, dx32, dw32, db32) = run(Precision::F32);
        let (y16, dx16, dw16, db16) = run(Precision::Bf16);
        // Σ|terms| bounds: |x|,|W|,|g| ≤ 1, so y's k = inp terms sum to ≤ inp, dx's ≤ out, dw's ≤ r
        let within = |what: &str, got: &[f32], want: &[f32], terms: usize| {
            let bound = (2f32.powi(-7) + 2f32.powi(-16) + terms as f32 * 2f32.powi(-24)) * terms as f32;
            let worst = got.iter().zip(want).map(|(a, b)| (a - b).abs()).fold(0.0, f32::max);
            assert!(worst <= bound, "{what}: bf16 differs from f32 by {worst:e} > {bound:e}");
            assert!(worst > 0.0, "{what}: bf16 equals f32 exactly: was it rounded?");
        };
        within("y", &y16, &y32, inp);
        within("dx", &dx16, &dx32, out);
        within("dw", &dw16, &dw32, r);
        assert_eq!(db16, db32, "db is an f32 sum in both precisions");
        // and the precision is back to f32 once the guard dropped
        assert_eq!(crate::precision::product_precision(), Precision::F32);
    }
}
