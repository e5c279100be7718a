// Inverted dropout (the GPU side of kernels/src/dropout.rs), its mask drawn from the
// same ChaCha8 stream as the CPU, bit for bit:
//
//   word w of the stream of key k = the (w mod 16)-th word of ChaCha8 block ⌊w/16⌋, with
//   the input state  "expand 32-byte k" | k0 … k7 | counter lo, hi = ⌊w/16⌋ | stream 0, 0
//   and the output   (4 double rounds of the state) + state,   as rand_chacha's ChaCha8Rng.
//   k = the key ChaCha8Rng::seed_from_u64(seed) uses, computed on the host
//   (kernels::dropout::chacha8_key; tested there against rand_chacha).
//
//   dropout_fwd_T(k0..k7, threshold, scale, x, y, keep, n):  x, y, keep (n)
//       keep[i] = (word i ≥ threshold),  threshold = ⌊p·2³²⌋ (u64, so p = 1 keeps nothing)
//       y[i] = keep[i] ? x[i]·scale : 0,  scale = 1/(1−p)
//       one thread per ChaCha block of 16 elements (grid-stride)
//   dropout_bwd_T(g, keep, scale, dx, n):  dx[i] += keep[i] ? g[i]·scale : 0
#include "common.cuh"

__device__ __forceinline__ u32 rotl(u32 x, int k) { return (x << k) | (x >> (32 - k)); }

#define QR(a, b, c, d)                     \
    a += b; d ^= a; d = rotl(d, 16);       \
    c += d; b ^= c; b = rotl(b, 12);       \
    a += b; d ^= a; d = rotl(d, 8);        \
    c += d; b ^= c; b = rotl(b, 7);

// The 16 words of ChaCha8 block `block` of key k (stream 0).
__device__ __forceinline__ void chacha8_block(const u32* k, u64 block, u32* out) {
    const u32 s[16] = {0x61707865u, 0x3320646eu, 0x79622d32u, 0x6b206574u, k[0], k[1], k[2], k[3],
                       k[4], k[5], k[6], k[7], (u32)block, (u32)(block >> 32), 0u, 0u};
    u32 x[16];
#pragma unroll
    for (int i = 0; i < 16; ++i) x[i] = s[i];
#pragma unroll
    for (int r = 0; r < 4; ++r) { // 8 rounds: column, then diagonal, four times
        QR(x[0], x[4], x[8], x[12]) QR(x[1], x[5], x[9], x[13]) QR(x[2], x[6], x[10], x[14]) QR(x[3], x[7], x[11], x[15])
        QR(x[0], x[5], x[10], x[15]) QR(x[1], x[6], x[11], x[12]) QR(x[2], x[7], x[8], x[13]) QR(x[3], x[4], x[9], x[14])
    }
#pragma unroll
    for (int i = 0; i < 16; ++i) out[i] = x[i] + s[i];
}

template <typename T>
__device__ void dropout_fwd(const u32* key, u64 threshold, T scale, const T* x, T* y, unsigned char* keep, u64 n) {
    GRID_STRIDE(b, (n + 15) / 16) {
        u32 w[16];
        chacha8_block(key, b, w);
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
    GRID_STRIDE(i, n) dx[i] += keep[i] ? g[i] * scale : T(0);
}

#define DROPOUT(T, S)                                                                                         \
    extern "C" __global__ void dropout_fwd_##S(u32 k0, u32 k1, u32 k2, u32 k3, u32 k4, u32 k5, u32 k6, u32 k7, \
                                               u64 threshold, T scale, const T* x, T* y, unsigned char* keep,  \
                                               u64 n) {                                                        \
        const u32 key[8] = {k0, k1, k2, k3, k4, k5, k6, k7};                                                   \
        dropout_fwd<T>(key, threshold, scale, x, y, keep, n);                                                  \
    }                                                                                                          \
    extern "C" __global__ void dropout_bwd_##S(const T* g, const unsigned char* keep, T scale, T* dx, u64 n) {  \
        dropout_bwd<T>(g, keep, scale, dx, n);                                                                 \
    }
FOR_F32_F64(DROPOUT)
