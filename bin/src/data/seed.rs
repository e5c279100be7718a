//! Seeded, portable random number generators.
//!
//! All randomness in the data pipeline comes from [`rng`]: a ChaCha8 generator
//! whose 256-bit key is derived from `(seed, purpose, index)` with SplitMix64.
//! ChaCha8 output is specified bit for bit, so a given triple produces the same
//! stream on every platform and every run. `purpose` separates independent uses
//! of one user seed (the validation split must not change when the batch order
//! does); `index` is e.g. the epoch number.

use rand::{Rng, RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// What a generator is used for; each purpose gets an independent stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u64)]
pub enum Purpose {
    /// Carving the validation set out of the training split.
    ValidSplit = 1,
    /// Choosing the `limit` subset of a data set.
    Limit = 2,
    /// Per-epoch example order in the batcher (index = epoch).
    EpochShuffle = 3,
    /// Initialising embedding rows for words missing from GloVe.
    EmbeddingInit = 4,
    /// Initialising model parameters (index 0).
    ModelInit = 5,
    /// Dropout masks of training step `index` (reseeded every step, so a resumed
    /// run draws the same masks as an uninterrupted one).
    Dropout = 6,
}

fn splitmix64(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The generator for `(seed, purpose, index)`.
pub fn rng(seed: u64, purpose: Purpose, index: u64) -> ChaCha8Rng {
    // A chain of SplitMix64 steps: each input is folded into the state after
    // the previous one has been mixed, so distinct triples give distinct keys.
    let mut state = seed;
    let a = splitmix64(&mut state);
    let mut state = a ^ (purpose as u64).wrapping_mul(0xD6E8_FEB8_6659_FD93);
    let b = splitmix64(&mut state);
    let mut state = b ^ index.wrapping_mul(0xA076_1D64_78BD_642F);
    let mut key = [0u8; 32];
    for chunk in key.chunks_exact_mut(8) {
        chunk.copy_from_slice(&splitmix64(&mut state).to_le_bytes());
    }
    ChaCha8Rng::from_seed(key)
}

/// One standard normal sample (Box–Muller; uses two uniforms per call).
pub fn standard_normal<R: Rng>(rng: &mut R) -> f32 {
    // u1 in (0, 1] so that ln(u1) is finite.
    let u1: f64 = 1.0 - rng.random::<f64>();
    let u2: f64 = rng.random::<f64>();
    ((-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()) as f32
}

/// Fisher–Yates shuffle driven by `rng` (independent of `rand`'s `SliceRandom`
/// and of its integer sampling, see [`index_inclusive`], so it cannot change under
/// us: the order depends on the ChaCha8 keystream alone).
pub fn shuffle<T, R: Rng>(items: &mut [T], rng: &mut R) {
    for i in (1..items.len()).rev() {
        let j = index_inclusive(rng, i);
        items.swap(i, j);
    }
}

/// A uniform integer in `0..=max` from whole `next_u64` draws: the widening multiply
/// v·(max+1) = hi·2⁶⁴ + lo, keeping hi unless lo falls in the rejection zone
/// (Lemire's method with the conservative zone (range ≪ lz(range)) − 1).
///
/// This is, draw for draw, what `rand` 0.8's `gen_range(0..=max)` did for `usize` on a
/// 64-bit target; `rand` 0.9 changed its integer sampling, so it is written out here
/// and the split, `limit` and batch orders stayed what they were before the upgrade to
/// `rand` 0.10 (`seeded_streams_are_pinned` holds the same numbers). It always draws
/// 64 bits, also where `usize` is 32 bits wide.
pub fn index_inclusive<R: Rng + ?Sized>(rng: &mut R, max: usize) -> usize {
    let range = (max as u64).wrapping_add(1);
    if range == 0 {
        return rng.next_u64() as usize; // max = u64::MAX: any value will do
    }
    let zone = (range << range.leading_zeros()).wrapping_sub(1);
    loop {
        let m = u128::from(rng.next_u64()) * u128::from(range);
        let (hi, lo) = ((m >> 64) as u64, m as u64);
        if lo <= zone {
            return hi as usize;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_triple_same_stream_different_triples_differ() {
        let a: Vec<u32> = (0..8).map(|_| rng(7, Purpose::Limit, 3).random()).collect();
        let mut r = rng(7, Purpose::Limit, 3);
        let b: Vec<u32> = (0..8).map(|_| r.random()).collect();
        // `a` drew each value from a fresh generator: all eight are the stream's first value
        assert!(a.iter().all(|&v| v == b[0]), "a fresh rng for one triple must start the same stream");
        // one generator's stream: the same eight values from a second generator, not all equal
        let mut r2 = rng(7, Purpose::Limit, 3);
        let c: Vec<u32> = (0..8).map(|_| r2.random()).collect();
        assert_eq!(b, c, "the same triple must give the same stream");
        assert!(b.windows(2).any(|w| w[0] != w[1]), "the stream must not repeat one value");
        let x: u64 = rng(7, Purpose::Limit, 4).random();
        let y: u64 = rng(7, Purpose::EpochShuffle, 3).random();
        let z: u64 = rng(8, Purpose::Limit, 3).random();
        let w: u64 = rng(7, Purpose::Limit, 3).random();
        assert!(x != w && y != w && z != w);
    }

    #[test]
    fn normal_has_roughly_unit_moments() {
        let mut r = rng(1, Purpose::EmbeddingInit, 0);
        let n = 20_000;
        let xs: Vec<f32> = (0..n).map(|_| standard_normal(&mut r)).collect();
        let mean = xs.iter().sum::<f32>() / n as f32;
        let var = xs.iter().map(|x| (x - mean) * (x - mean)).sum::<f32>() / n as f32;
        assert!(mean.abs() < 0.03, "mean {mean}");
        assert!((var - 1.0).abs() < 0.05, "var {var}");
    }

    #[test]
    fn shuffle_is_a_permutation() {
        let mut v: Vec<usize> = (0..100).collect();
        shuffle(&mut v, &mut rng(0, Purpose::Limit, 0));
        assert_ne!(v, (0..100).collect::<Vec<_>>());
        v.sort_unstable();
        assert_eq!(v, (0..100).collect::<Vec<_>>());
    }

    /// `index_inclusive` draws what `rand` 0.8's `gen_range(0..=max)` drew for `usize`
    /// (numbers from rand 0.8.5 and rand_chacha 0.3 on x86-64), small and 64-bit bounds,
    /// and consumes the same words: the sixth value needed one rejected draw.
    #[test]
    #[cfg(target_pointer_width = "64")]
    fn index_inclusive_matches_rand_0_8() {
        let mut r = ChaCha8Rng::seed_from_u64(9);
        let v: Vec<usize> =
            [1, 22_499, 1 << 40, usize::MAX - 1, 0, 6].iter().map(|&m| index_inclusive(&mut r, m)).collect();
        assert_eq!(v, [0, 17595, 190815245729, 10808256792868092926, 0, 4]);
        assert_eq!(r.get_word_pos(), 14);
    }

    /// The seeded streams pinned to numbers: the split, limit and batch order come
    /// from `shuffle`, the GloVe rows of unknown words from `standard_normal`.
    #[test]
    fn seeded_streams_are_pinned() {
        let mut v: Vec<usize> = (0..10).collect();
        shuffle(&mut v, &mut rng(1, Purpose::ValidSplit, 0));
        let mut r = rng(2, Purpose::EmbeddingInit, 0);
        let normals: Vec<f32> = (0..3).map(|_| standard_normal(&mut r)).collect();
        let u: u64 = rng(3, Purpose::ModelInit, 0).random();
        assert_eq!(v, [7, 0, 3, 6, 8, 2, 5, 9, 1, 4]);
        assert_eq!(normals, [2.9200191, 0.48520732, 1.466504]);
        assert_eq!(u, 14462255446212711338);
    }
}
