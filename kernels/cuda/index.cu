// Gathers and scatter-adds along the middle dim of [outer, len, inner] (the GPU side of
// kernels/src/index.rs). Indices are i64; the caller checks them (autograd does), and
// an index out of [0, len) reads as 0 and adds nothing rather than touching memory.
//
//   index_select_T(x, idx, out, outer, len, inner, m):  out[o, j, i] = x[o, idx[j], i]
//       x (outer, len, inner), idx (m), out (outer, m, inner); one thread per output
//   index_add_T(g, idx, dx, outer, len, inner, m):      dx[o, r, i] += Σ_{j: idx[j] = r} g[o, j, i]
//       one block owns each destination row (o, r) and finds its j in idx in order
//       (warp 0, 32 indices per step), so there are no atomics and the sum has the
//       CPU's order (dx + g_j1 + g_j2 + …): the same bits as kernels::index::index_add
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

// index_add: block per destination row (o, r). Warp 0 scans idx 32 at a time and
// appends the matching j (in increasing order: ballot, then each hit's rank among
// the lower lanes) to a shared list of up to MATCHES; then every thread adds those
// rows of g to its columns of dx, in list order. A row with more matches takes
// several rounds, each continuing where the last stopped, so the order stays j's.
#define MATCHES 256
template <typename T>
__device__ void index_add(const T* g, const i64* idx, T* dx, u64 outer, u64 len, u64 inner, u64 m) {
    __shared__ u64 list[MATCHES];
    __shared__ u32 found;
    __shared__ u64 next;
    const u32 lane = threadIdx.x & 31;
    for (u64 row = blockIdx.x; row < outer * len; row += gridDim.x) {
        const u64 o = row / len;
        const i64 r = (i64)(row % len);
        u64 j0 = 0;
        while (j0 < m) { // uniform: j0 comes from shared memory
            if (threadIdx.x < 32) {
                u32 c = 0;
                u64 j = j0;
                while (j < m && c + 32 <= MATCHES) {
                    const u64 jj = j + lane;
                    const bool hit = jj < m && idx[jj] == r;
                    const u32 mask = __ballot_sync(0xffffffffu, hit);
                    if (hit) list[c + __popc(mask & ((1u << lane) - 1))] = jj;
                    c += __popc(mask);
                    j += 32;
                }
                if (lane == 0) found = c, next = j;
            }
            __syncthreads();
            const u32 c = found;
            for (u64 i = threadIdx.x; i < inner; i += blockDim.x) {
                if (c == 0) break;
                T acc = dx[row * inner + i];
                for (u32 k = 0; k < c; ++k) acc += g[(o * m + list[k]) * inner + i];
                dx[row * inner + i] = acc;
            }
            j0 = next;
            __syncthreads(); // everyone has read list, found and next before warp 0 refills them
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
