//! Inverted dropout in one pass: y = x·m/(1−p), with m ∈ {0, 1} drawn per element.
//!
//! Element i is kept when the i-th u32 of the ChaCha8 stream of `seed` is at least
//! p·2³² (probability 1−p, to 2⁻³²). ChaCha seeks to any word, so each thread draws
//! its own range of the one stream: the mask depends on the seed alone, not on the
//! thread count. The forward writes the mask as bytes for the backward
//! (dx = g·m/(1−p)), a quarter of what a mask of floats would move.

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
    assert!((0.0..=1.0).contains(&p), "dropout: p = {p} is not a probability");
    let threshold = (p * 4_294_967_296.0) as u64;
    let scale = if p < 1.0 { T::from_f64(1.0 / (1.0 - p)) } else { T::ZERO };
    let (y, keep) = (SharedMut::new(y), SharedMut::new(keep));
    par_ranges(x.len(), PAR_MIN, BLOCK, |r| {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        rng.set_word_pos(r.start as u128);
        let mut bits = [0u32; BLOCK];
        // SAFETY: each part writes only its own range of y and keep.
        let (y, keep) = unsafe { (y.range(r.clone()), keep.range(r.clone())) };
        for ((x, y), keep) in x[r].chunks(BLOCK).zip(y.chunks_mut(BLOCK)).zip(keep.chunks_mut(BLOCK)) {
            let bits = &mut bits[..x.len()];
            rng.fill(bits);
            for i in 0..x.len() {
                let k = (bits[i] as u64) >= threshold;
                keep[i] = k as u8;
                y[i] = if k { x[i] * scale } else { T::ZERO };
            }
        }
    });
}

/// dx += g·m/(1−p) with m the `keep` bytes of the forward.
pub fn dropout_backward<T: Float>(g: &[T], keep: &[u8], p: f64, dx: &mut [T]) {
    assert!(keep.len() == g.len() && dx.len() == g.len(), "dropout_backward: bad buffer sizes");
    let scale = if p < 1.0 { T::from_f64(1.0 / (1.0 - p)) } else { T::ZERO };
    let dxs = SharedMut::new(dx);
    par_ranges(g.len(), PAR_MIN, BLOCK, |r| {
        // SAFETY: each part writes only its own range of dx.
        let dx = unsafe { dxs.range(r.clone()) };
        for ((d, &g), &k) in dx.iter_mut().zip(&g[r.clone()]).zip(&keep[r]) {
            *d += if k != 0 { g * scale } else { T::ZERO };
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

#[cfg(test)]
mod tests {
    use super::*;

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
                    assert_eq!(dx[i], 1.0 + y[i], "dx = 1 + g·m/(1−p) at {i}");
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
