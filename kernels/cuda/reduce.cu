// Reductions over the middle dim of x viewed as [outer, n, inner] (the GPU side of
// kernels/src/reduce.rs).
//
//   sum_rows_T(x, out, rows, n, mean):        inner = 1: out[r] = Σ_j x[r, j]   (÷ n if mean)
//       one block per row, a strided partial sum per thread, then a fixed tree (block_sum)
//   sum_cols_T(x, out, outer, n, inner, mean): inner > 1: out[o, i] = Σ_j x[o, j, i]
//       one thread per (o, i), j ascending (adjacent threads read adjacent i: coalesced)
//   max_rows_T / max_cols_T(x, out, argmax, …): out[o, i] = max_j x[o, j, i] and the
//       first j reaching it (i64); a NaN is the max (its first j), as kernels::reduce::max_dim
//   max_bwd_T(g, argmax, dx, outer, n, inner): dx[o, j, i] += g[o, i] where j = argmax[o, i]
//       one thread per element of dx (one owner, no atomics)
#include "common.cuh"

template <typename T> __device__ void sum_rows(const T* x, T* out, u64 rows, u64 n, u32 mean) {
    __shared__ T scratch[32];
    for (u64 r = blockIdx.x; r < rows; r += gridDim.x) {
        const T* row = x + r * n;
        T acc = T(0);
        for (u64 j = threadIdx.x; j < n; j += blockDim.x) acc += row[j];
        acc = block_sum(acc, scratch);
        if (threadIdx.x == 0) out[r] = mean ? acc / T(n) : acc;
    }
}

template <typename T> __device__ void sum_cols(const T* x, T* out, u64 outer, u64 n, u64 inner, u32 mean) {
    GRID_STRIDE(k, outer * inner) {
        const u64 o = k / inner, i = k % inner;
        const T* col = x + o * n * inner + i;
        T acc = T(0);
        for (u64 j = 0; j < n; ++j) acc += col[j * inner];
        out[k] = mean ? acc / T(n) : acc;
    }
}

// Is (v, j) a better max than (w, k)? NaN beats numbers, then the larger value, then
// the smaller index: associative and commutative, so any reduction tree gives the
// sequential scan's answer.
template <typename T> __device__ __forceinline__ bool better(T v, i64 j, T w, i64 k) {
    const bool vn = v != v, wn = w != w;
    if (vn != wn) return vn;
    if (!vn && v != w) return v > w;
    return j < k;
}

template <typename T> __device__ void max_rows(const T* x, T* out, i64* argmax, u64 rows, u64 n) {
    __shared__ T sv[32];
    __shared__ i64 sj[32];
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, warps = blockDim.x >> 5;
    for (u64 r = blockIdx.x; r < rows; r += gridDim.x) {
        const T* row = x + r * n;
        T v = row[0];
        i64 j = 0;
        for (u64 t = threadIdx.x; t < n; t += blockDim.x)
            if (better(row[t], (i64)t, v, j)) v = row[t], j = (i64)t;
        for (int o = 16; o > 0; o >>= 1) {
            const T w = __shfl_xor_sync(0xffffffffu, v, o);
            const i64 k = __shfl_xor_sync(0xffffffffu, j, o);
            if (better(w, k, v, j)) v = w, j = k;
        }
        __syncthreads(); // the previous row's result is read
        if (lane == 0) sv[warp] = v, sj[warp] = j;
        __syncthreads();
        if (warp == 0) {
            v = lane < warps ? sv[lane] : sv[0];
            j = lane < warps ? sj[lane] : sj[0];
            for (int o = 16; o > 0; o >>= 1) {
                const T w = __shfl_xor_sync(0xffffffffu, v, o);
                const i64 k = __shfl_xor_sync(0xffffffffu, j, o);
                if (better(w, k, v, j)) v = w, j = k;
            }
            if (lane == 0) out[r] = v, argmax[r] = j;
        }
    }
}

template <typename T> __device__ void max_cols(const T* x, T* out, i64* argmax, u64 outer, u64 n, u64 inner) {
    GRID_STRIDE(k, outer * inner) {
        const u64 o = k / inner, i = k % inner;
        const T* col = x + o * n * inner + i;
        T v = col[0];
        i64 best = 0;
        for (u64 j = 1; j < n; ++j)
            if (better(col[j * inner], (i64)j, v, best)) v = col[j * inner], best = (i64)j;
        out[k] = v;
        argmax[k] = best;
    }
}

template <typename T> __device__ void max_bwd(const T* g, const i64* argmax, T* dx, u64 outer, u64 n, u64 inner) {
    GRID_STRIDE(e, outer * n * inner) {
        const u64 i = e % inner, j = (e / inner) % n, o = e / (inner * n);
        const u64 k = o * inner + i;
        if (argmax[k] == (i64)j) dx[e] += g[k];
    }
}

#define REDUCE(T, S)                                                                                          \
    extern "C" __global__ void sum_rows_##S(const T* x, T* out, u64 rows, u64 n, u32 mean) {                  \
        sum_rows<T>(x, out, rows, n, mean);                                                                   \
    }                                                                                                         \
    extern "C" __global__ void sum_cols_##S(const T* x, T* out, u64 outer, u64 n, u64 inner, u32 mean) {      \
        sum_cols<T>(x, out, outer, n, inner, mean);                                                           \
    }                                                                                                         \
    extern "C" __global__ void max_rows_##S(const T* x, T* out, i64* argmax, u64 rows, u64 n) {               \
        max_rows<T>(x, out, argmax, rows, n);                                                                 \
    }                                                                                                         \
    extern "C" __global__ void max_cols_##S(const T* x, T* out, i64* argmax, u64 outer, u64 n, u64 inner) {   \
        max_cols<T>(x, out, argmax, outer, n, inner);                                                         \
    }                                                                                                         \
    extern "C" __global__ void max_bwd_##S(const T* g, const i64* argmax, T* dx, u64 outer, u64 n, u64 inner) { \
        max_bwd<T>(g, argmax, dx, outer, n, inner);                                                           \
    }
FOR_F32_F64(REDUCE)
