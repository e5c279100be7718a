// The row kernels of fused multi-head attention (the GPU side of
// kernels/src/attention.rs; its launcher runs the products through gemm.cu).
//
//   q, o        (B, Tq, nh·d)     head h in columns h·d .. (h+1)·d
//   k, v        (B, T, nh·d)      (Tq = T for self-attention; fewer queries, as a
//                                 classifier's last layer asks, are the first rows of S)
//   key_mask    (B, T)            additive (null: none)
//   S, P, P'    (B·nh, Tq, T)     per (batch, head) pair, row i of pair π at (π·Tq + i)·T
//                                 (the saved P with the sign bit of each dropped entry set)
//
// Forward, for each pair π = b·nh + h, with scale = 1/√d and keep factors
// M_ij ∈ {0, 1/(1−p)}:
//   S = scale · Q Kᵀ + mask_b   (the launcher writes Q Kᵀ; attn_probs_T does the rest)
//   P = softmax of each row of S;  P' = P ⊙ M;  O = P' V
// Backward, given dO (the launcher computes dP' = dO Vᵀ first):
//   dP = dP' ⊙ M;  dS = scale · P ⊙ (dP − rowsum(dP ⊙ P))     (attn_probs_bwd_T)
//   dV = P'ᵀ dO;  dQ = dS K;  dK = dSᵀ Q                      (the launcher's products)
//
// M is the CPU's: entry (i, j) of pair π is kept when word i·T + j of ChaCha8 stream π
// of `seed` is at least `threshold` = ⌊p·2³²⌋ (chacha.cuh). Each thread draws whole
// 16-word ChaCha blocks of its row's word range, so no block is drawn twice per row
// pass. The forward saves −P where M dropped the entry (P ≥ 0, so the sign bit is
// free; −0.0 for a P of 0), and the backward reads M back from the signs instead of
// drawing the stream again, as on the CPU.
//
// One block per row (pair, i), the reductions by warp shuffles then across warps; the
// grid loops over rows beyond its size. Every element has one writer.
#include "chacha.cuh"
#include "common.cuh"

// Calls f(j, word) for the words of row i's range [i·T, i·T + T) of stream `pair`,
// split over the block's threads by ChaCha block.
template <typename F>
__device__ __forceinline__ void for_row_words(const u32 key[8], u64 pair, u64 i, u64 t, F f) {
    const u64 w0 = i * t, w1 = w0 + t; // [w0, w1)
    for (u64 blk = w0 / 16 + threadIdx.x; blk * 16 < w1; blk += blockDim.x) {
        u32 words[16];
        chacha8_block(key, pair, blk, words);
        for (int q = 0; q < 16; q++) {
            const u64 w = blk * 16 + q;
            if (w >= w0 && w < w1) f(w - w0, words[q]);
        }
    }
}

// In: s = Q Kᵀ per pair (may be the same buffer as p). Out: p = softmax(scale·s + mask),
// and when `dropout` pd = p ⊙ M and p negated where M dropped (pd unused otherwise).
template <typename T>
__device__ void attn_probs(const T* s, const T* key_mask, T scale, u32 dropout, u64 seed, u64 threshold, T keep,
                           T* p, T* pd, u64 pairs, u64 heads, u64 tq, u64 t) {
    __shared__ T scratch[32];
    u32 key[8];
    chacha_key(seed, key);
    for (u64 row = blockIdx.x; row < pairs * tq; row += gridDim.x) {
        const u64 pair = row / tq, i = row % tq, b = pair / heads;
        const T* sr = s + row * t;
        T* pr = p + row * t;
        const T* mask = key_mask ? key_mask + b * t : nullptr;
        T m = -INFINITY;
        for (u64 j = threadIdx.x; j < t; j += blockDim.x) m = t_max(m, sr[j] * scale + (mask ? mask[j] : T(0)));
        m = block_max(m, scratch, T(-INFINITY));
        T sum = T(0);
        for (u64 j = threadIdx.x; j < t; j += blockDim.x) sum += t_exp(sr[j] * scale + (mask ? mask[j] : T(0)) - m);
        const T inv = T(1) / block_sum(sum, scratch);
        for (u64 j = threadIdx.x; j < t; j += blockDim.x)
            pr[j] = t_exp(sr[j] * scale + (mask ? mask[j] : T(0)) - m) * inv; // reads then writes its own j
        if (dropout) {
            __syncthreads(); // P of the row written (by other threads) before it is read
            T* pdr = pd + row * t;
            for_row_words(key, pair, i, t, [&](u64 j, u32 u) {
                const bool kept = (u64)u >= threshold;
                pdr[j] = kept ? pr[j] * keep : T(0);
                if (!kept) pr[j] = -pr[j]; // the mask, for the backward
            });
        }
        __syncthreads(); // the next row's pass may reuse nothing, but keeps rows in step
    }
}

// The `rows` = B·nh·Tq rows of T. In: p = P as the forward saved it (signs marking M),
// dp = dP' = dO Vᵀ. Out: dp = dS =
// scale · P ⊙ (dP − rowsum(dP ⊙ P)) with dP = dP' ⊙ M, and pd = P' = P ⊙ M when `dropout`.
template <typename T>
__device__ void attn_probs_bwd(const T* p, T* dp, T* pd, T scale, u32 dropout, T keep, u64 rows, u64 t) {
    __shared__ T scratch[32];
    for (u64 row = blockIdx.x; row < rows; row += gridDim.x) {
        const T* pr = p + row * t;
        T* dpr = dp + row * t;
        if (dropout) { // each thread rereads only its own j below: no barrier needed
            T* pdr = pd + row * t;
            for (u64 j = threadIdx.x; j < t; j += blockDim.x) {
                const T f = signbit(pr[j]) ? T(0) : keep;
                dpr[j] *= f;
                pdr[j] = fabs(pr[j]) * f;
            }
        }
        T dot = T(0);
        for (u64 j = threadIdx.x; j < t; j += blockDim.x) dot += dpr[j] * fabs(pr[j]);
        dot = block_sum(dot, scratch);
        for (u64 j = threadIdx.x; j < t; j += blockDim.x) dpr[j] = scale * (fabs(pr[j]) * (dpr[j] - dot));
        __syncthreads();
    }
}

#define ATTENTION(T, S)                                                                                  \
    extern "C" __global__ void attn_probs_##S(const T* s, const T* key_mask, T scale, u32 dropout,       \
                                              u64 seed, u64 threshold, T keep, T* p, T* pd, u64 pairs,   \
                                              u64 heads, u64 tq, u64 t) {                                \
        attn_probs<T>(s, key_mask, scale, dropout, seed, threshold, keep, p, pd, pairs, heads, tq, t);   \
    }                                                                                                    \
    extern "C" __global__ void attn_probs_bwd_##S(const T* p, T* dp, T* pd, T scale, u32 dropout, T keep, \
                                                  u64 rows, u64 t) {                                     \
        attn_probs_bwd<T>(p, dp, pd, scale, dropout, keep, rows, t);                                     \
    }
FOR_F32_F64(ATTENTION)
