// Gathers and scatter-adds along the middle dim of [outer, len, inner] (the GPU side of
// kernels/src/index.rs). Indices are i64; the caller checks them (autograd does), and
// an index out of [0, len) reads as 0 and adds nothing rather than touching memory.
//
//   index_select_T(x, idx, out, outer, len, inner, m):  out[o, j, i] = x[o, idx[j], i]
//       x (outer, len, inner), idx (m), out (outer, m, inner); one thread per output
//   index_add_T(g, idx, dx, outer, len, inner, m):      dx[o, r, i] += Σ_{j: idx[j] = r} g[o, j, i]
//       one block owns each destination row (o, r) and scans idx in j order, so there
//       are no atomics and the sum has the CPU's order (dx + g_j1 + g_j2 + …): the
//       same bits as kernels::index::index_add
//   gather_T(x, idx, out, outer, len, inner, m):        out[o, j, i] = x[o, idx[o, j, i], i]
//       idx, out (outer, m, inner)
//   scatter_add_T(g, idx, dx, outer, len, inner, m):    dx[o, r, i] += Σ_{j: idx[o,j,i] = r} g[o, j, i]
//       one thread owns each dx element and scans its m candidates in j order
#include "common.cuh"

template <typename T>
__device__ void index_select(const T* x, const i64* idx, T* out, u64 outer, u64 len, u64 inner, u64 m) {
    GRID_STRIDE(e, outer * m * inner) {
        const u64 i = e % inner, j = (e / inner) % m, o = e / (inner * m);
        const i64 r = idx[j];
        out[e] = (r >= 0 && (u64)r < len) ? x[(o * len + r) * inner + i] : T(0);
    }
}

template <typename T>
__device__ void index_add(const T* g, const i64* idx, T* dx, u64 outer, u64 len, u64 inner, u64 m) {
    for (u64 row = blockIdx.x; row < outer * len; row += gridDim.x) {
        const u64 o = row / len;
        const i64 r = (i64)(row % len);
        for (u64 i = threadIdx.x; i < inner; i += blockDim.x) {
            T acc = dx[row * inner + i];
            for (u64 j = 0; j < m; ++j)
                if (idx[j] == r) acc += g[(o * m + j) * inner + i];
            dx[row * inner + i] = acc;
        }
    }
}

template <typename T>
__device__ void gather(const T* x, const i64* idx, T* out, u64 outer, u64 len, u64 inner, u64 m) {
    GRID_STRIDE(e, outer * m * inner) {
        const u64 i = e % inner, o = e / (inner * m);
        const i64 r = idx[e];
        out[e] = (r >= 0 && (u64)r < len) ? x[(o * len + r) * inner + i] : T(0);
    }
}

template <typename T>
__device__ void scatter_add(const T* g, const i64* idx, T* dx, u64 outer, u64 len, u64 inner, u64 m) {
    GRID_STRIDE(e, outer * len * inner) {
        const u64 i = e % inner, o = e / (inner * len);
        const i64 r = (i64)((e / inner) % len);
        T acc = dx[e];
        for (u64 j = 0; j < m; ++j) {
            const u64 at = (o * m + j) * inner + i;
            if (idx[at] == r) acc += g[at];
        }
        dx[e] = acc;
    }
}

#define INDEX(T, S)                                                                                           \
    extern "C" __global__ void index_select_##S(const T* x, const i64* idx, T* out, u64 outer, u64 len,       \
                                                u64 inner, u64 m) {                                           \
        index_select<T>(x, idx, out, outer, len, inner, m);                                                   \
    }                                                                                                         \
    extern "C" __global__ void index_add_##S(const T* g, const i64* idx, T* dx, u64 outer, u64 len, u64 inner, \
                                             u64 m) {                                                         \
        index_add<T>(g, idx, dx, outer, len, inner, m);                                                       \
    }                                                                                                         \
    extern "C" __global__ void gather_##S(const T* x, const i64* idx, T* out, u64 outer, u64 len, u64 inner,  \
                                          u64 m) {                                                            \
        gather<T>(x, idx, out, outer, len, inner, m);                                                         \
    }                                                                                                         \
    extern "C" __global__ void scatter_add_##S(const T* g, const i64* idx, T* dx, u64 outer, u64 len,         \
                                               u64 inner, u64 m) {                                            \
        scatter_add<T>(g, idx, dx, outer, len, inner, m);                                                     \
    }
FOR_F32_F64(INDEX)
