//! Losses. Each is a mean over samples, L = (1/N) Σᵢ l(yᵢ, tᵢ), so each backward
//! starts from the 1/N of that mean.

use crate::backend::{Backend, Targets};
use crate::Tensor;
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
        // N = the rows not ignored, known here on the host; the mean stays on the device
        // (L = (1/N) Σᵢ lᵢ, NaN when every row is ignored, as in PyTorch).
        let count = targets.iter().filter(|&&t| Some(t) != ignore_index).count();
        let loss = self.storage().cross_entropy(Targets { n, c, targets, ignore_index, count });
        let (x, xv, t) = (self.clone(), self.detach(), targets.to_vec());
        Tensor::from_op("cross_entropy", Tensor::from_storage(loss, &[]), &[self], move |g| {
            // dL/dlᵢ = g/N: the mean's 1/N scales the upstream gradient (on the device)
            let t = Targets { n, c, targets: &t, ignore_index, count };
            x.accumulate_grad(|| {
                Tensor::from_storage(xv.storage().cross_entropy_backward(&g.storage(), t), x.shape())
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
        super::same_device("binary_cross_entropy_with_logits", &[self, targets]);
        let loss = self.storage().bce_with_logits(&targets.storage()); // L = (1/N) Σᵢ lᵢ, on the device
        let (x, t, xv, tv) = (self.clone(), targets.clone(), self.detach(), targets.detach());
        Tensor::from_op("bce_with_logits", Tensor::from_storage(loss, &[]), &[self, targets], move |g| {
            let want = [x.tracks_grad(), t.tracks_grad()];
            let [dx, dt] = xv.storage().bce_with_logits_backward(&tv.storage(), &g.storage(), want);
            if let Some(dx) = dx {
                x.accumulate_grad(|| Tensor::from_storage(dx, xv.shape()));
            }
            if let Some(dt) = dt {
                t.accumulate_grad(|| Tensor::from_storage(dt, xv.shape()));
            }
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
