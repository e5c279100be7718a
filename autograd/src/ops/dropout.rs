//! Dropout.

use crate::Tensor;
use rand::Rng;
use tapegrad_kernels::Float;

impl<T: Float> Tensor<T> {
    /// Inverted dropout: in training, each element is zeroed with probability `p`
    /// and the survivors are scaled by 1/(1−p), so the expectation is unchanged;
    /// in evaluation (`training == false`) it is the identity.
    /// With the mask m ∈ {0, 1}: y = x·m/(1−p), dL/dx = g·m/(1−p).
    pub fn dropout(&self, p: f64, training: bool, rng: &mut impl Rng) -> Tensor<T> {
        assert!((0.0..=1.0).contains(&p), "dropout: p = {p} is not a probability");
        if !training || p == 0.0 {
            return self.clone();
        }
        let scale = if p < 1.0 { T::from_f64(1.0 / (1.0 - p)) } else { T::ZERO };
        // The mask already holds the scale: m/(1−p) ∈ {0, 1/(1−p)}.
        let mask: Vec<T> =
            (0..self.numel()).map(|_| if rng.gen::<f64>() < p { T::ZERO } else { scale }).collect();
        let mask = Tensor::from_vec(mask, self.shape());
        self.mul(&mask)
    }
}
