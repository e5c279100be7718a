// Inverted dropout (the GPU side of kernels/src/dropout.rs), its mask drawn from the
// same ChaCha8 stream as the CPU, bit for bit:
//
//   word w of the stream of key k = the (w mod 16)-th word of ChaCha8 block ⌊w/16⌋, with
//   the input state  "expand 32-byte k" | k0 … k7 | counter lo, hi = ⌊w/16⌋ | stream 0, 0
//   and the output   (4 double rounds of the state) + state,   as rand_chacha's ChaCha8Rng.
//   k = the key ChaCha8Rng::seed_from_u64(seed) uses. The block function and the key
//   are chacha.cuh's (shared with attention's dropout); kernels::dropout::chacha8_key
//   and chacha8_block spell out the same in Rust, tested against rand_chacha.
//
//   dropout_fwd_T(seed, threshold, scale, x, y, keep, n):  x, y, keep (n)
//       keep[i] = (word i ≥ threshold),  threshold = ⌊p·2³²⌋ (u64, so p = 1 keeps nothing)
//       y[i] = keep[i] ? x[i]·scale : 0,  scale = 1/(1−p)
//       one thread per ChaCha block of 16 elements (grid-stride)
//   dropout_bwd_T(g, keep, scale, dx, n):  dx[i] = keep[i] ? g[i]·scale : 0
#include "chacha.cuh"

template <typename T>
__device__ void dropout_fwd(u64 seed, u64 threshold, T scale, const T* x, T* y, unsigned char* keep, u64 n) {
    u32 key[8];
    chacha_key(seed, key);
    GRID_STRIDE(b, (n + 15) / 16) {
        u32 w[16];
        chacha8_block(key, 0, b, w); // stream 0
#pragma unroll
        for (int j = 0; j < 16; ++j) {
            const u64 i = b * 16 + j;
            if (i < n) {
                const bool k = (u64)w[j] >= threshold;
                keep[i] = k;
                y[i] = k ? x[i] * scale : T(0);
            }
        }
    }
}

template <typename T> __device__ void dropout_bwd(const T* g, const unsigned char* keep, T scale, T* dx, u64 n) {
    GRID_STRIDE(i, n) dx[i] = keep[i] ? g[i] * scale : T(0);
}

#define DROPOUT(T, S)                                                                                         \
    extern "C" __global__ void dropout_fwd_##S(u64 seed, u64 threshold, T scale, const T* x, T* y,             \
                                               unsigned char* keep, u64 n) {                                   \
        dropout_fwd<T>(seed, threshold, scale, x, y, keep, n);                                                 \
    }                                                                                                          \
    extern "C" __global__ void dropout_bwd_##S(const T* g, const unsigned char* keep, T scale, T* dx, u64 n) {  \
        dropout_bwd<T>(g, keep, scale, dx, n);                                                                 \
    }
FOR_F32_F64(DROPOUT)
