// Layer normalisation over the last dim of [rows, n] (the GPU side of
// kernels/src/layernorm.rs). Per row, biased variance:
//
//   μ = mean(x),  rstd = 1/√(mean((x − μ)²) + eps),  x̂ = (x − μ)·rstd
//   y = x̂·w + b                                   (w = 1, b = 0 when absent: null)
//
// Backward (overwrites dx, adds into dw and db; each optional: null), with ĝ = g·w:
//
//   dx = rstd · (ĝ − mean(ĝ) − x̂ · mean(ĝ·x̂))     per row
//   dw += Σ_rows g·x̂,   db += Σ_rows g              per column
//
//   layernorm_fwd_T:        one block per row; μ and σ² by two block reductions
//                           (warp shuffles, then across warps), as the reference does.
//   layernorm_bwd_dx_T:     one block per row, the two means by block reductions.
//   layernorm_bwd_params_T: dw, db deterministically: thread (chunk, j) sums column j
//                           over its chunk of rows in order into partial[chunk][j]
//                           (neighbouring threads read neighbouring j: coalesced).
//   layernorm_sum_parts_T:  thread j adds the chunks' partials to dw[j], db[j] in chunk
//                           order. No atomics: the same bits on every run.
#include "common.cuh"

template <typename T>
__device__ void layernorm_fwd(const T* x, const T* w, const T* b, T eps, T* y, T* mean, T* rstd, u64 rows, u64 n) {
    __shared__ T scratch[32];
    const T nf = T(n);
    for (u64 r = blockIdx.x; r < rows; r += gridDim.x) {
        const T* xr = x + r * n;
        T* yr = y + r * n;
        T s = T(0);
        for (u64 j = threadIdx.x; j < n; j += blockDim.x) s += xr[j];
        const T mu = block_sum(s, scratch) / nf;
        T v = T(0);
        for (u64 j = threadIdx.x; j < n; j += blockDim.x) v += (xr[j] - mu) * (xr[j] - mu);
        const T rs = T(1) / t_sqrt(block_sum(v, scratch) / nf + eps);
        for (u64 j = threadIdx.x; j < n; j += blockDim.x) {
            const T xhat = (xr[j] - mu) * rs;
            yr[j] = xhat * (w ? w[j] : T(1)) + (b ? b[j] : T(0));
        }
        if (threadIdx.x == 0) {
            mean[r] = mu;
            rstd[r] = rs;
        }
    }
}

template <typename T>
__device__ void layernorm_bwd_dx(const T* x, const T* g, const T* w, const T* mean, const T* rstd, T* dx, u64 rows, u64 n) {
    __shared__ T scratch[32];
    const T nf = T(n);
    for (u64 r = blockIdx.x; r < rows; r += gridDim.x) {
        const T *xr = x + r * n, *gr = g + r * n;
        const T mu = mean[r], rs = rstd[r];
        T sg = T(0), sgx = T(0);
        for (u64 j = threadIdx.x; j < n; j += blockDim.x) {
            const T gh = gr[j] * (w ? w[j] : T(1));
            sg += gh;
            sgx += gh * (xr[j] - mu) * rs;
        }
        const T mean_gh = block_sum(sg, scratch) / nf;
        const T mean_ghx = block_sum(sgx, scratch) / nf;
        for (u64 j = threadIdx.x; j < n; j += blockDim.x) {
            const T xhat = (xr[j] - mu) * rs;
            const T gh = gr[j] * (w ? w[j] : T(1));
            dx[r * n + j] = rs * (gh - mean_gh - xhat * mean_ghx);
        }
    }
}

// partial (chunks, 2, n): [c][0][j] = Σ g·x̂, [c][1][j] = Σ g over rows c·per .. (c+1)·per.
template <typename T>
__device__ void layernorm_bwd_params(const T* x, const T* g, const T* mean, const T* rstd, T* partial, u64 rows,
                                     u64 n, u64 chunks, u64 per) {
    GRID_STRIDE(e, chunks * n) {
        const u64 c = e / n, j = e % n;
        const u64 r1 = (c + 1) * per < rows ? (c + 1) * per : rows;
        T sw = T(0), sb = T(0);
        for (u64 r = c * per; r < r1; r++) {
            const T gv = g[r * n + j];
            sw += gv * (x[r * n + j] - mean[r]) * rstd[r];
            sb += gv;
        }
        partial[(c * 2) * n + j] = sw;
        partial[(c * 2 + 1) * n + j] = sb;
    }
}

template <typename T> __device__ void layernorm_sum_parts(const T* partial, T* dw, T* db, u64 n, u64 chunks) {
    GRID_STRIDE(j, n) {
        T sw = T(0), sb = T(0);
        for (u64 c = 0; c < chunks; c++) {
            sw += partial[(c * 2) * n + j];
            sb += partial[(c * 2 + 1) * n + j];
        }
        if (dw) dw[j] += sw;
        if (db) db[j] += sb;
    }
}

#define LAYERNORM(T, S)                                                                                  \
    extern "C" __global__ void layernorm_fwd_##S(const T* x, const T* w, const T* b, T eps, T* y,        \
                                                 T* mean, T* rstd, u64 rows, u64 n) {                    \
        layernorm_fwd<T>(x, w, b, eps, y, mean, rstd, rows, n);                                          \
    }                                                                                                    \
    extern "C" __global__ void layernorm_bwd_dx_##S(const T* x, const T* g, const T* w, const T* mean,   \
                                                    const T* rstd, T* dx, u64 rows, u64 n) {             \
        layernorm_bwd_dx<T>(x, g, w, mean, rstd, dx, rows, n);                                           \
    }                                                                                                    \
    extern "C" __global__ void layernorm_bwd_params_##S(const T* x, const T* g, const T* mean,           \
                                                        const T* rstd, T* partial, u64 rows, u64 n,      \
                                                        u64 chunks, u64 per) {                           \
        layernorm_bwd_params<T>(x, g, mean, rstd, partial, rows, n, chunks, per);                        \
    }                                                                                                    \
    extern "C" __global__ void layernorm_sum_parts_##S(const T* partial, T* dw, T* db, u64 n,            \
                                                       u64 chunks) {                                     \
        layernorm_sum_parts<T>(partial, dw, db, n, chunks);                                              \
    }
FOR_F32_F64(LAYERNORM)
