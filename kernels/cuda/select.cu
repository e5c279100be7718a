// Elementwise selection (the GPU side of kernels/src/select.rs). Masks and conditions
// are T (nonzero = true), already expanded to the output's shape by the caller.
//
//   masked_fill_T(x, mask, value, out, n):   out[i] = mask[i] ≠ 0 ? value : x[i]
//   masked_fill_bwd_T(g, mask, dx, n):       dx[i]  = mask[i] ≠ 0 ? 0 : g[i]
//   where_T(cond, a, b, out, n):             out[i] = cond[i] ≠ 0 ? a[i] : b[i]
//   where_bwd_T(g, cond, da, db, n):         da[i] = cond[i] ≠ 0 ? g[i] : 0,  db[i] = the rest
// all (n); the backwards write (not add).
#include "common.cuh"

template <typename T> __device__ void masked_fill(const T* x, const T* mask, T value, T* out, u64 n) {
    GRID_STRIDE(i, n) out[i] = mask[i] != T(0) ? value : x[i];
}
template <typename T> __device__ void masked_fill_bwd(const T* g, const T* mask, T* dx, u64 n) {
    GRID_STRIDE(i, n) dx[i] = mask[i] != T(0) ? T(0) : g[i];
}
template <typename T> __device__ void where_(const T* cond, const T* a, const T* b, T* out, u64 n) {
    GRID_STRIDE(i, n) out[i] = cond[i] != T(0) ? a[i] : b[i];
}
template <typename T> __device__ void where_bwd(const T* g, const T* cond, T* da, T* db, u64 n) {
    GRID_STRIDE(i, n) {
        const bool c = cond[i] != T(0);
        da[i] = c ? g[i] : T(0);
        db[i] = c ? T(0) : g[i];
    }
}

#define SELECT(T, S)                                                                                      \
    extern "C" __global__ void masked_fill_##S(const T* x, const T* mask, T value, T* out, u64 n) {       \
        masked_fill<T>(x, mask, value, out, n);                                                           \
    }                                                                                                     \
    extern "C" __global__ void masked_fill_bwd_##S(const T* g, const T* mask, T* dx, u64 n) {             \
        masked_fill_bwd<T>(g, mask, dx, n);                                                               \
    }                                                                                                     \
    extern "C" __global__ void where_##S(const T* cond, const T* a, const T* b, T* out, u64 n) {          \
        where_<T>(cond, a, b, out, n);                                                                    \
    }                                                                                                     \
    extern "C" __global__ void where_bwd_##S(const T* g, const T* cond, T* da, T* db, u64 n) {            \
        where_bwd<T>(g, cond, da, db, n);                                                                 \
    }
FOR_F32_F64(SELECT)
