//! Inverted dropout in one pass: y = x·m/(1−p), with m ∈ {0, 1} drawn per element.
//!
//! Element i is kept when the i-th u32 of the ChaCha8 stream of `seed` is at least
//! p·2³² (probability 1−p, to 2⁻³²). ChaCha seeks to any word, so each thread draws
//! its own range of the one stream: the mask depends on the seed alone, not on the
//! thread count. The forward writes the mask as bytes for the backward
//! (dx = g·m/(1−p)), a quarter of what a mask of floats would move.
//!
//! The stream, exactly (what the GPU kernel `kernels/cuda/dropout.cu` reproduces, and
//! what [`chacha8_key`]/[`chacha8_block`] spell out and test against rand_chacha 0.3):
//! - key: `ChaCha8Rng::seed_from_u64(seed)` fills its 32-byte key with 8 outputs of
//!   PCG32 (rand_core 0.6: state ← state·6364136223846793005 + 11634580027462260723,
//!   output XSH-RR), little-endian;
//! - word w of the stream: word w mod 16 of ChaCha block ⌊w/16⌋, the block's input
//!   state being the constants, the key, a 64-bit block counter ⌊w/16⌋ (words 12, 13)
//!   and stream 0 (words 14, 15); 8 rounds, output = rounds(state) + state;
//! - `set_word_pos(w)` starts at word w; `fill(&mut [u32])` reads consecutive words.
//!
//! rand 0.9/0.10 move ChaCha8Rng into other crates (`rand_chacha` 0.9, `chacha20`):
//! if an upgrade changes the key expansion or the stream positions,
//! `chacha8_reproduces_rand_chacha` fails; the GPU (`kernels/cuda/chacha.cuh`) computes
//! what [`chacha8_key`] and [`chacha8_block`] compute, not what the crate does.

use crate::threads::{par_ranges, SharedMut};
use crate::Float;
use rand::{Rng, RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// Elements per call to the generator (a 4 KiB block of bits on the stack).
const BLOCK: usize = 1024;
/// Elements per thread at least (smaller inputs stay on the calling thread).
const PAR_MIN: usize = 1 << 16;

/// y = x·m/(1−p) and keep = m, for the mask of `seed` (see the module doc).
pub fn dropout_forward<T: Float>(x: &[T], p: f64, seed: u64, y: &mut [T], keep: &mut [u8]) {
    assert!(y.len() == x.len() && keep.len() == x.len(), "dropout_forward: bad buffer sizes");
    let mask = Mask::new(p, seed);
    let (y, keep) = (SharedMut::new(y), SharedMut::new(keep));
    par_ranges(x.len(), PAR_MIN, BLOCK, |r| {
        let mut rng = mask.stream_at(r.start);
        let mut bits = [0u32; BLOCK];
        // SAFETY: each part writes only its own range of y and keep.
        let (y, keep) = unsafe { (y.range(r.clone()), keep.range(r.clone())) };
        for ((x, y), keep) in x[r].chunks(BLOCK).zip(y.chunks_mut(BLOCK)).zip(keep.chunks_mut(BLOCK)) {
            mask.apply(&mut rng, &mut bits[..x.len()], x, y, keep);
        }
    });
}

/// An element is kept when its u32 word is at least ⌊p·2³²⌋, returned as a u32 so the
/// comparisons vectorize; None when that is 2³² (p = 1, or a p within 2⁻³³ of it):
/// nothing is kept. (Dropout here and attention's dropout.)
pub(crate) fn keep_threshold(p: f64) -> Option<u32> {
    u32::try_from((p * 4_294_967_296.0) as u64).ok()
}

/// The factor of a kept element: 1/(1−p), or 0 when p = 1 (nothing is kept).
pub(crate) fn keep_scale(p: f64) -> f64 {
    if p < 1.0 {
        1.0 / (1.0 - p)
    } else {
        0.0
    }
}

/// Dropout's mask of one seed, for kernels that apply it as they go (this module's and
/// `layernorm::residual_layer_norm_forward`).
#[derive(Clone, Copy)]
pub(crate) struct Mask {
    seed: u64,
    /// [`keep_threshold`]
    threshold: Option<u32>,
    /// [`keep_scale`]
    scale: f64,
}

impl Mask {
    pub(crate) fn new(p: f64, seed: u64) -> Self {
        assert!((0.0..=1.0).contains(&p), "dropout: p = {p} is not a probability");
        Mask { seed, threshold: keep_threshold(p), scale: keep_scale(p) }
    }
    /// The stream of `seed`, at the word of element `i`.
    pub(crate) fn stream_at(&self, i: usize) -> ChaCha8Rng {
        let mut rng = ChaCha8Rng::seed_from_u64(self.seed);
        rng.set_word_pos(i as u128);
        rng
    }
    /// The next `x.len()` elements: keep = m, y = x·m/(1−p), drawing the words into `bits`.
    #[inline]
    pub(crate) fn apply<T: Float>(
        &self,
        rng: &mut ChaCha8Rng,
        bits: &mut [u32],
        x: &[T],
        y: &mut [T],
        keep: &mut [u8],
    ) {
        rng.fill(&mut bits[..]);
        let Some(threshold) = self.threshold else {
            y.fill(T::ZERO);
            keep.fill(0);
            return;
        };
        let scale = T::from_f64(self.scale);
        for (((&u, &x), y), keep) in bits.iter().zip(x).zip(y.iter_mut()).zip(keep.iter_mut()) {
            let k = u >= threshold;
            *keep = k as u8;
            *y = if k { x * scale } else { T::ZERO };
        }
    }
}

/// dx = g·m/(1−p) (overwritten) with m the `keep` bytes of the forward.
pub fn dropout_backward<T: Float>(g: &[T], keep: &[u8], p: f64, dx: &mut [T]) {
    assert!(keep.len() == g.len() && dx.len() == g.len(), "dropout_backward: bad buffer sizes");
    let scale = T::from_f64(keep_scale(p));
    let dxs = SharedMut::new(dx);
    par_ranges(g.len(), PAR_MIN, BLOCK, |r| {
        // SAFETY: each part writes only its own range of dx.
        let dx = unsafe { dxs.range(r.clone()) };
        for ((d, &g), &k) in dx.iter_mut().zip(&g[r.clone()]).zip(&keep[r]) {
            *d = if k != 0 { g * scale } else { T::ZERO };
        }
    });
}

/// [`dropout_forward`] drawing the stream in one sequential pass (the reference).
pub fn dropout_forward_reference<T: Float>(x: &[T], p: f64, seed: u64, y: &mut [T], keep: &mut [u8]) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let threshold = (p * 4_294_967_296.0) as u64;
    for i in 0..x.len() {
        let k = (rng.next_u32() as u64) >= threshold;
        keep[i] = k as u8;
        y[i] = if k { x[i] * T::from_f64(1.0 / (1.0 - p)) } else { T::ZERO };
    }
}

/// The ChaCha8 key `ChaCha8Rng::seed_from_u64(seed)` uses (see the module doc), as
/// little-endian words.
pub fn chacha8_key(seed: u64) -> [u32; 8] {
    const MUL: u64 = 6_364_136_223_846_793_005;
    const INC: u64 = 11_634_580_027_462_260_723;
    let mut state = seed;
    std::array::from_fn(|_| {
        state = state.wrapping_mul(MUL).wrapping_add(INC);
        let xorshifted = (((state >> 18) ^ state) >> 27) as u32;
        xorshifted.rotate_right((state >> 59) as u32)
    })
}

/// Words 16·block … 16·block + 15 of the ChaCha8 stream of `key` (stream 0).
pub fn chacha8_block(key: &[u32; 8], block: u64) -> [u32; 16] {
    let mut s = [0u32; 16];
    s[..4].copy_from_slice(&[0x6170_7865, 0x3320_646e, 0x7962_2d32, 0x6b20_6574]); // "expand 32-byte k"
    s[4..12].copy_from_slice(key);
    s[12] = block as u32;
    s[13] = (block >> 32) as u32;
    let mut x = s;
    let qr = |x: &mut [u32; 16], a: usize, b: usize, c: usize, d: usize| {
        x[a] = x[a].wrapping_add(x[b]);
        x[d] = (x[d] ^ x[a]).rotate_left(16);
        x[c] = x[c].wrapping_add(x[d]);
        x[b] = (x[b] ^ x[c]).rotate_left(12);
        x[a] = x[a].wrapping_add(x[b]);
        x[d] = (x[d] ^ x[a]).rotate_left(8);
        x[c] = x[c].wrapping_add(x[d]);
        x[b] = (x[b] ^ x[c]).rotate_left(7);
    };
    for _ in 0..4 {
        qr(&mut x, 0, 4, 8, 12);
        qr(&mut x, 1, 5, 9, 13);
        qr(&mut x, 2, 6, 10, 14);
        qr(&mut x, 3, 7, 11, 15);
        qr(&mut x, 0, 5, 10, 15);
        qr(&mut x, 1, 6, 11, 12);
        qr(&mut x, 2, 7, 8, 13);
        qr(&mut x, 3, 4, 9, 14);
    }
    std::array::from_fn(|i| x[i].wrapping_add(s[i]))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The stream definition the GPU reproduces is rand_chacha's: key, blocks, seeks.
    #[test]
    fn chacha8_reproduces_rand_chacha() {
        for seed in [0u64, 1, 42, 0xdead_beef_cafe_f00d, u64::MAX] {
            let key = chacha8_key(seed);
            let bytes = ChaCha8Rng::seed_from_u64(seed).get_seed();
            let words: Vec<u32> =
                bytes.chunks(4).map(|c| u32::from_le_bytes(c.try_into().unwrap())).collect();
            assert_eq!(key.to_vec(), words, "key of seed {seed}");
            let mut rng = ChaCha8Rng::seed_from_u64(seed);
            for b in 0..9u64 {
                let want: Vec<u32> = (0..16).map(|_| rng.next_u32()).collect();
                assert_eq!(chacha8_block(&key, b).to_vec(), want, "seed {seed} block {b}");
            }
            // a seek to any word, far and into the high counter word
            for w in [5u64, 16 * 1_000_003 + 7, (1u64 << 36) + 3] {
                rng.set_word_pos(w as u128);
                assert_eq!(
                    rng.next_u32(),
                    chacha8_block(&key, w / 16)[(w % 16) as usize],
                    "seed {seed} word {w}"
                );
            }
        }
    }

    #[test]
    fn threaded_mask_is_the_sequential_stream() {
        // 3 parts of uneven size, and sizes around the block
        for n in [0, 1, 1023, 1025, 3 * PAR_MIN + 17] {
            let x: Vec<f32> = (0..n).map(|i| 1.0 + (i % 13) as f32).collect();
            for p in [0.0, 0.1, 0.5, 1.0] {
                let (mut y, mut keep) = (vec![0.0; n], vec![0u8; n]);
                let (mut y_ref, mut keep_ref) = (vec![0.0; n], vec![0u8; n]);
                dropout_forward(&x, p, 42, &mut y, &mut keep);
                dropout_forward_reference(&x, p, 42, &mut y_ref, &mut keep_ref);
                assert_eq!(keep, keep_ref, "n {n} p {p}");
                assert_eq!(y, y_ref, "n {n} p {p}");
                let mut dx = vec![1.0f32; n];
                dropout_backward(&x, &keep, p, &mut dx);
                for i in 0..n {
                    assert_eq!(dx[i], y[i], "dx = g·m/(1−p), overwritten, at {i}");
                }
            }
        }
    }

    #[test]
    fn drops_a_fraction_p() {
        let n = 400_000;
        let x = vec![1.0f64; n];
        for p in [0.1, 0.5, 0.9] {
            let (mut y, mut keep) = (vec![0.0; n], vec![0u8; n]);
            dropout_forward(&x, p, 7, &mut y, &mut keep);
            let dropped = keep.iter().filter(|&&k| k == 0).count() as f64 / n as f64;
            assert!((dropped - p).abs() < 0.005, "p {p}: dropped {dropped}");
        }
    }
}
