//! The benches' operands: the same values in every run and every bench.

/// Uniform in [-0.5, 0.5) (xorshift32).
pub fn fill(len: usize, seed: u32) -> Vec<f32> {
    let mut s = seed.max(1);
    (0..len)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 17;
            s ^= s << 5;
            (s as f32 / u32::MAX as f32) - 0.5
        })
        .collect()
}
