//! The exact random stream behind dropout masks and every seeded draw: ChaCha8
//! as `rand_chacha` defines it, written out here from the definition so that
//! another implementation (the CUDA backend's) can produce identical masks, and
//! so that a dependency upgrade that changed the stream would fail here.
//!
//! The definition:
//! * `seed_from_u64(s)`: the 32-byte key is eight outputs of PCG32 (XSH RR,
//!   multiplier 6364136223846793005, increment 11634580027462260723, state
//!   starting at `s`, the state advanced before each output), little-endian.
//! * The ChaCha state: the four constants of "expand 32-byte k", the key as eight
//!   little-endian words, a 64-bit block counter (words 12 low, 13 high) from 0 and
//!   a 64-bit stream id (words 14, 15) of 0; 8 rounds (4 double rounds), then the
//!   input added word-wise.
//! * Word `i` of the stream (`set_word_pos(i)`) is word `i % 16` of block `i / 16`;
//!   `next_u32` takes the next word, `next_u64` the next two (the first is the low
//!   half), `fill(&mut [u32])` consecutive words.
//! * Dropout keeps element i when word i ≥ ⌊p·2³²⌋ (`kernels/src/dropout.rs`).

use rand::{Rng, RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;

fn pcg32_key(mut state: u64) -> [u32; 8] {
    const MUL: u64 = 6364136223846793005;
    const INC: u64 = 11634580027462260723;
    let mut key = [0u32; 8];
    for k in key.iter_mut() {
        state = state.wrapping_mul(MUL).wrapping_add(INC);
        let xorshifted = (((state >> 18) ^ state) >> 27) as u32;
        *k = xorshifted.rotate_right((state >> 59) as u32);
    }
    key
}

fn quarter(s: &mut [u32; 16], a: usize, b: usize, c: usize, d: usize) {
    s[a] = s[a].wrapping_add(s[b]);
    s[d] = (s[d] ^ s[a]).rotate_left(16);
    s[c] = s[c].wrapping_add(s[d]);
    s[b] = (s[b] ^ s[c]).rotate_left(12);
    s[a] = s[a].wrapping_add(s[b]);
    s[d] = (s[d] ^ s[a]).rotate_left(8);
    s[c] = s[c].wrapping_add(s[d]);
    s[b] = (s[b] ^ s[c]).rotate_left(7);
}

fn block(key: &[u32; 8], counter: u64) -> [u32; 16] {
    let mut input = [0u32; 16];
    input[..4].copy_from_slice(&[0x6170_7865, 0x3320_646e, 0x7962_2d32, 0x6b20_6574]);
    input[4..12].copy_from_slice(key);
    input[12] = counter as u32;
    input[13] = (counter >> 32) as u32;
    let mut s = input;
    for _ in 0..4 {
        quarter(&mut s, 0, 4, 8, 12);
        quarter(&mut s, 1, 5, 9, 13);
        quarter(&mut s, 2, 6, 10, 14);
        quarter(&mut s, 3, 7, 11, 15);
        quarter(&mut s, 0, 5, 10, 15);
        quarter(&mut s, 1, 6, 11, 12);
        quarter(&mut s, 2, 7, 8, 13);
        quarter(&mut s, 3, 4, 9, 14);
    }
    for (o, i) in s.iter_mut().zip(input) {
        *o = o.wrapping_add(i);
    }
    s
}

/// Word `pos` of the stream of `seed_from_u64(seed)`.
fn word(seed: u64, pos: u64) -> u32 {
    block(&pcg32_key(seed), pos / 16)[(pos % 16) as usize]
}

#[test]
fn chacha8_stream_is_the_documented_one() {
    for seed in [0u64, 1, 42, 0x9E37_79B9_7F4A_7C15, u64::MAX] {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        for pos in 0..100 {
            assert_eq!(rng.next_u32(), word(seed, pos), "seed {seed}, word {pos}");
        }
        for start in [1u64, 15, 16, 17, 1000, 65_537, (1 << 32) * 16 + 3] {
            let mut rng = ChaCha8Rng::seed_from_u64(seed);
            rng.set_word_pos(start as u128);
            let mut words = [0u32; 40];
            rng.fill(&mut words[..]);
            for (k, w) in words.iter().enumerate() {
                assert_eq!(*w, word(seed, start + k as u64), "seed {seed}, word {}", start + k as u64);
            }
            let mut rng = ChaCha8Rng::seed_from_u64(seed);
            rng.set_word_pos(start as u128);
            let lo_hi = word(seed, start) as u64 | (word(seed, start + 1) as u64) << 32;
            assert_eq!(rng.next_u64(), lo_hi);
        }
    }
}

/// Fixed words of the stream, so a change shows as numbers too.
#[test]
fn chacha8_known_words() {
    let mut rng = ChaCha8Rng::seed_from_u64(42);
    let first: Vec<u32> = (0..4).map(|_| rng.next_u32()).collect();
    assert_eq!(first, (0..4).map(|p| word(42, p)).collect::<Vec<_>>());
    println!("seed 42, words 0..4: {first:08x?}");
}
