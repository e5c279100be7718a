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
        // One random u32 per element, dropped when below p·2³² (probability p, to 2⁻³²);
        // filled in bulk, which the generator vectorises. The mask already holds the
        // scale: m/(1−p) ∈ {0, 1/(1−p)}.
        let threshold = (p * 4_294_967_296.0) as u64;
        let mut bits = vec![0u32; self.numel()];
        rng.fill(&mut bits[..]);
        let mask: Vec<T> =
            bits.iter().map(|&u| if (u as u64) < threshold { T::ZERO } else { scale }).collect();
        let mask = Tensor::from_vec(mask, self.shape());
        self.mul(&mask)
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
}
