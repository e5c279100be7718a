//! Losses. Each is a mean over samples, L = (1/N) Σᵢ l(yᵢ, tᵢ), so each backward
//! starts from the 1/N of that mean.

use crate::Tensor;
use tapegrad_kernels::activation::sigmoid;
use tapegrad_kernels::loss::{cross_entropy_backward, cross_entropy_forward};
use tapegrad_kernels::Float;

impl<T: Float> Tensor<T> {
    /// Cross-entropy of class logits `[N, C]` against `targets` (class indices), fused
    /// log-softmax + negative log-likelihood:
    ///   `lᵢ = −log softmax(xᵢ)[tᵢ] = logsumexp(xᵢ) − xᵢ[tᵢ]`,   L = (1/N) Σᵢ lᵢ,
    /// with N the number of rows whose target is not `ignore_index`.
    ///   dL/dxᵢⱼ = (1/N)·(softmax(xᵢ)ⱼ − [j = tᵢ])   (0 for ignored rows).
    pub fn cross_entropy(&self, targets: &[usize], ignore_index: Option<usize>) -> Tensor<T> {
        assert_eq!(self.rank(), 2, "cross_entropy: logits must be [N, C], got {:?}", self.shape());
        let (n, c) = (self.shape()[0], self.shape()[1]);
        assert_eq!(targets.len(), n, "cross_entropy: {} targets for {n} rows of logits", targets.len());
        if let Some(&bad) = targets.iter().find(|&&t| t >= c && Some(t) != ignore_index) {
            panic!("cross_entropy: target {bad} is out of range for {c} classes");
        }
        let (sum, count) = cross_entropy_forward(&self.data(), n, c, targets, ignore_index);
        let big_n = T::from_f64(count as f64);
        let mean = sum / big_n; // L = (1/N) Σᵢ lᵢ  (NaN when every row is ignored, as in PyTorch)
        let (x, xv, t) = (self.clone(), self.detach(), targets.to_vec());
        Tensor::from_op("cross_entropy", Tensor::scalar(mean), &[self], move |g| {
            let scale = g.item() / big_n; // dL/dlᵢ = 1/N: the mean's 1/N seeds backward
            x.accumulate_grad(|| {
                let mut dx = vec![T::ZERO; x.numel()];
                cross_entropy_backward(&xv.data(), n, c, &t, ignore_index, scale, &mut dx);
                Tensor::from_vec(dx, x.shape())
            });
        })
    }

    /// Binary cross-entropy on logits x against targets t ∈ [0, 1] (same shape), in
    /// the stable form lᵢ = max(xᵢ, 0) − xᵢtᵢ + log(1 + e^{−|xᵢ|}),  L = (1/N) Σᵢ lᵢ.
    ///   dL/dxᵢ = (1/N)(σ(xᵢ) − tᵢ),   dL/dtᵢ = −(1/N)·xᵢ.
    pub fn binary_cross_entropy_with_logits(&self, targets: &Tensor<T>) -> Tensor<T> {
        assert_eq!(
            self.shape(),
            targets.shape(),
            "binary_cross_entropy_with_logits: logits {:?} and targets {:?} differ",
            self.shape(),
            targets.shape()
        );
        let big_n = T::from_f64(self.numel() as f64);
        let sum: T = (self.data().iter().zip(targets.data().iter()))
            .map(|(&x, &t)| x.max(T::ZERO) - x * t + (T::ONE + (-x.abs()).exp()).ln())
            .sum();
        let mean = sum / big_n; // L = (1/N) Σᵢ lᵢ
        let (x, t, xv, tv) = (self.clone(), targets.clone(), self.detach(), targets.detach());
        Tensor::from_op("bce_with_logits", Tensor::scalar(mean), &[self, targets], move |g| {
            let scale = g.item() / big_n; // the mean's 1/N
            x.accumulate_grad(|| {
                let d =
                    xv.data().iter().zip(tv.data().iter()).map(|(&x, &t)| scale * (sigmoid(x) - t)).collect();
                Tensor::from_vec(d, xv.shape())
            });
            t.accumulate_grad(|| xv.mul_scalar(-scale));
        })
    }

    /// Mean squared error: lᵢ = (yᵢ − tᵢ)²,  L = (1/N) Σᵢ lᵢ.
    ///   dL/dyᵢ = (2/N)(yᵢ − tᵢ),  dL/dtᵢ = −(2/N)(yᵢ − tᵢ).
    pub fn mse(&self, target: &Tensor<T>) -> Tensor<T> {
        assert_eq!(self.shape(), target.shape(), "mse: {:?} and {:?} differ", self.shape(), target.shape());
        let diff = self.sub(target);
        diff.mul(&diff).mean()
    }
}
