//! Dropout.

use crate::backend::Backend;
use crate::Tensor;
use rand::{Rng, RngExt};
use tapegrad_kernels::Float;

impl<T: Float> Tensor<T> {
    /// Inverted dropout: in training, each element is zeroed with probability `p`
    /// and the survivors are scaled by 1/(1−p), so the expectation is unchanged;
    /// in evaluation (`training == false`) it is the identity.
    /// With the mask m ∈ {0, 1}: y = x·m/(1−p), dL/dx = g·m/(1−p).
    ///
    /// The mask comes from one u64 drawn from `rng` (the kernel expands it, in
    /// parallel, into one random u32 per element) and is kept as bytes for the backward.
    pub fn dropout(&self, p: f64, training: bool, rng: &mut impl Rng) -> Tensor<T> {
        assert!((0.0..=1.0).contains(&p), "dropout: p = {p} is not a probability");
        if !training || p == 0.0 {
            return self.clone();
        }
        let seed: u64 = rng.random();
        let (y, keep) = self.storage().dropout(p, seed);
        let x = self.clone();
        Tensor::from_op("dropout", Tensor::from_storage(y, self.shape()), &[self], move |g| {
            x.accumulate_grad(|| Tensor::from_storage(g.storage().dropout_backward(&keep, p), x.shape()));
        })
    }
}

#[cfg(test)]
mod tests {
    use crate::Tensor;
    use rand::SeedableRng;

    #[test]
    fn dropout_drops_p_and_scales_the_rest() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(3);
        let n = 200_000;
        let x = Tensor::<f64>::from_vec((0..n).map(|i| 1.0 + (i % 7) as f64).collect(), &[n]);
        for p in [0.1, 0.5, 0.9] {
            let y = x.dropout(p, true, &mut rng).to_vec();
            let zeros = y.iter().filter(|&&v| v == 0.0).count() as f64 / n as f64;
            assert!((zeros - p).abs() < 0.005, "p {p}: dropped fraction {zeros}");
            for (i, &v) in y.iter().enumerate() {
                let want = (1.0 + (i % 7) as f64) / (1.0 - p);
                assert!(v == 0.0 || (v - want).abs() < 1e-12, "p {p}: element {i} = {v}, want 0 or {want}");
            }
        }
        assert!(x.dropout(1.0, true, &mut rng).to_vec().iter().all(|&v| v == 0.0));
        assert_eq!(x.dropout(0.5, false, &mut rng).to_vec(), x.to_vec());
    }

    #[test]
    fn gradient_is_the_same_mask_scaled() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(4);
        let x = Tensor::<f64>::param(vec![2.0; 5000], &[5000]);
        let y = x.dropout(0.3, true, &mut rng);
        y.sum().backward();
        let (y, g) = (y.to_vec(), x.grad().unwrap().to_vec());
        for i in 0..5000 {
            // y = 2·m/(1−p), dL/dx = m/(1−p)
            assert!((g[i] - y[i] / 2.0).abs() < 1e-12, "element {i}: y {} grad {}", y[i], g[i]);
        }
    }
}
