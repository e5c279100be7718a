// ChaCha8 exactly as the CPU draws it (rand_chacha 0.3's ChaCha8Rng), so a GPU kernel
// can redraw any word of any stream the CPU kernels use (dropout masks).
//
// The CPU side: `ChaCha8Rng::seed_from_u64(seed)` then `set_stream(stream)`; the w-th
// u32 it yields is word w % 16 of block w / 16 of that stream. Here:
//
//   chacha_key(seed, key)        the 256-bit key seed_from_u64 makes: eight PCG32 outputs
//                                (rand_core 0.6's SeedableRng::seed_from_u64)
//   chacha8_block(key, stream, block, out)
//                                the 16 words of one block: state = constants, key,
//                                64-bit block counter (words 12–13), 64-bit stream
//                                (words 14–15); 4 double rounds; out = rounds + state
//
// Both are plain functions of their arguments, so any thread may draw any block:
// the numbers do not depend on which thread draws them.
#pragma once
#include "common.cuh"

__host__ __device__ __forceinline__ u32 chacha_rotl(u32 x, int r) { return (x << r) | (x >> (32 - r)); }

// The key ChaCha8Rng::seed_from_u64(seed) uses: PCG32 (state advanced first, then the
// XSH-RR output), eight times; each output is one little-endian key word.
__host__ __device__ __forceinline__ void chacha_key(u64 seed, u32 key[8]) {
    const u64 mul = 6364136223846793005ull, inc = 11634580027462260723ull;
    u64 state = seed;
    for (int w = 0; w < 8; w++) {
        state = state * mul + inc;
        const u32 xorshifted = (u32)(((state >> 18) ^ state) >> 27);
        const u32 rot = (u32)(state >> 59);
        key[w] = (xorshifted >> rot) | (xorshifted << ((32 - rot) & 31));
    }
}

#define CHACHA_QR(a, b, c, d)                                                                            \
    a += b; d ^= a; d = chacha_rotl(d, 16);                                                              \
    c += d; b ^= c; b = chacha_rotl(b, 12);                                                              \
    a += b; d ^= a; d = chacha_rotl(d, 8);                                                               \
    c += d; b ^= c; b = chacha_rotl(b, 7);

// Block `block` of stream `stream` under `key`: its 16 output words, in order.
__host__ __device__ __forceinline__ void chacha8_block(const u32 key[8], u64 stream, u64 block, u32 out[16]) {
    u32 s[16] = {0x61707865u, 0x3320646eu, 0x79622d32u, 0x6b206574u,
                 key[0], key[1], key[2], key[3], key[4], key[5], key[6], key[7],
                 (u32)block, (u32)(block >> 32), (u32)stream, (u32)(stream >> 32)};
    u32 x[16];
    for (int i = 0; i < 16; i++) x[i] = s[i];
    for (int dr = 0; dr < 4; dr++) { // 8 rounds: 4 × (column round, diagonal round)
        CHACHA_QR(x[0], x[4], x[8], x[12])
        CHACHA_QR(x[1], x[5], x[9], x[13])
        CHACHA_QR(x[2], x[6], x[10], x[14])
        CHACHA_QR(x[3], x[7], x[11], x[15])
        CHACHA_QR(x[0], x[5], x[10], x[15])
        CHACHA_QR(x[1], x[6], x[11], x[12])
        CHACHA_QR(x[2], x[7], x[8], x[13])
        CHACHA_QR(x[3], x[4], x[9], x[14])
    }
    for (int i = 0; i < 16; i++) out[i] = x[i] + s[i];
}
