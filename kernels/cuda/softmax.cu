// Softmax and log-softmax along the middle dim of an [outer, n, inner] view (the GPU
// side of kernels/src/softmax.rs). Element (o, j, i) is x[(o·n + j)·inner + i].
//
//   forward:  y_j = e^{x_j − max} / Σ_k e^{x_k − max}          (softmax)
//             y_j = x_j − max − log Σ_k e^{x_k − max}           (log_softmax)
//   backward (adds into dx, given y and the output gradient g):
//             dx_j += y_j (g_j − Σ_k g_k y_k)                   (softmax)
//             dx_j += g_j − e^{y_j} Σ_k g_k                     (log_softmax)
//
//   softmax_{fwd,bwd}_rows_T (inner == 1): one block per row of n contiguous elements,
//       the reductions by warp shuffles then across warps (block_max / block_sum);
//       the grid loops over rows beyond its size.
//   softmax_{fwd,bwd}_cols_T (inner > 1): one thread per (o, i) column walking its n
//       elements inner apart; neighbouring threads read neighbouring i (coalesced).
#include "common.cuh"

template <typename T> __device__ void softmax_fwd_rows(const T* x, T* y, u64 rows, u64 n, u32 log) {
    __shared__ T scratch[32];
    for (u64 r = blockIdx.x; r < rows; r += gridDim.x) {
        const T* xr = x + r * n;
        T* yr = y + r * n;
        T m = -INFINITY;
        for (u64 j = threadIdx.x; j < n; j += blockDim.x) m = t_max(m, xr[j]);
        m = block_max(m, scratch, T(-INFINITY));
        T s = T(0);
        for (u64 j = threadIdx.x; j < n; j += blockDim.x) s += t_exp(xr[j] - m);
        s = block_sum(s, scratch);
        if (log) {
            const T lse = t_log(s);
            for (u64 j = threadIdx.x; j < n; j += blockDim.x) yr[j] = xr[j] - m - lse;
        } else {
            const T inv = T(1) / s;
            for (u64 j = threadIdx.x; j < n; j += blockDim.x) yr[j] = t_exp(xr[j] - m) * inv;
        }
    }
}

template <typename T> __device__ void softmax_bwd_rows(const T* y, const T* g, T* dx, u64 rows, u64 n, u32 log) {
    __shared__ T scratch[32];
    for (u64 r = blockIdx.x; r < rows; r += gridDim.x) {
        const T *yr = y + r * n, *gr = g + r * n;
        T* dr = dx + r * n;
        T s = T(0); // Σ g (log) or Σ g·y
        for (u64 j = threadIdx.x; j < n; j += blockDim.x) s += log ? gr[j] : gr[j] * yr[j];
        s = block_sum(s, scratch);
        for (u64 j = threadIdx.x; j < n; j += blockDim.x)
            dr[j] += log ? gr[j] - t_exp(yr[j]) * s : yr[j] * (gr[j] - s);
    }
}

template <typename T>
__device__ void softmax_fwd_cols(const T* x, T* y, u64 outer, u64 n, u64 inner, u32 log) {
    GRID_STRIDE(c, outer * inner) {
        const u64 base = (c / inner) * n * inner + c % inner;
        T m = -INFINITY;
        for (u64 j = 0; j < n; j++) m = t_max(m, x[base + j * inner]);
        T s = T(0);
        for (u64 j = 0; j < n; j++) s += t_exp(x[base + j * inner] - m);
        const T lse = t_log(s), inv = T(1) / s;
        for (u64 j = 0; j < n; j++) {
            const u64 at = base + j * inner;
            y[at] = log ? x[at] - m - lse : t_exp(x[at] - m) * inv;
        }
    }
}

template <typename T>
__device__ void softmax_bwd_cols(const T* y, const T* g, T* dx, u64 outer, u64 n, u64 inner, u32 log) {
    GRID_STRIDE(c, outer * inner) {
        const u64 base = (c / inner) * n * inner + c % inner;
        T s = T(0);
        for (u64 j = 0; j < n; j++) {
            const u64 at = base + j * inner;
            s += log ? g[at] : g[at] * y[at];
        }
        for (u64 j = 0; j < n; j++) {
            const u64 at = base + j * inner;
            dx[at] += log ? g[at] - t_exp(y[at]) * s : y[at] * (g[at] - s);
        }
    }
}

#define SOFTMAX(T, S)                                                                                    \
    extern "C" __global__ void softmax_fwd_rows_##S(const T* x, T* y, u64 rows, u64 n, u32 log) {        \
        softmax_fwd_rows<T>(x, y, rows, n, log);                                                         \
    }                                                                                                    \
    extern "C" __global__ void softmax_bwd_rows_##S(const T* y, const T* g, T* dx, u64 rows, u64 n,      \
                                                    u32 log) {                                           \
        softmax_bwd_rows<T>(y, g, dx, rows, n, log);                                                     \
    }                                                                                                    \
    extern "C" __global__ void softmax_fwd_cols_##S(const T* x, T* y, u64 outer, u64 n, u64 inner,       \
                                                    u32 log) {                                           \
        softmax_fwd_cols<T>(x, y, outer, n, inner, log);                                                 \
    }                                                                                                    \
    extern "C" __global__ void softmax_bwd_cols_##S(const T* y, const T* g, T* dx, u64 outer, u64 n,     \
                                                    u64 inner, u32 log) {                                \
        softmax_bwd_cols<T>(y, g, dx, outer, n, inner, log);                                             \
    }
FOR_F32_F64(SOFTMAX)
