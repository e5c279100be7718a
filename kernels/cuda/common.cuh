// Shared helpers for tapegrad's CUDA kernels (included by every kernels/cuda/*.cu).
//
// Conventions (see ARCHITECTURE.md, "The GPU backend"):
// - every kernel is a template over the element type T (float, double), instantiated
//   with extern "C" names `<family>_<kernel>_f32` / `_f64` by the INSTANTIATE macros;
// - element counts are unsigned 64-bit (`u64`), so no size overflows;
// - 1-D kernels use grid-stride loops, so any grid size is correct (the Rust side
//   picks the grid, `kernels/src/gpu/launch.rs`);
// - no float atomics: every output element has one owner, so two runs give identical bits.
#pragma once
#include <stdint.h>

typedef unsigned long long u64;
typedef long long i64;
typedef unsigned int u32;

#define GRID_STRIDE(i, n) \
    for (u64 i = (u64)blockIdx.x * blockDim.x + threadIdx.x; i < (n); i += (u64)blockDim.x * gridDim.x)

// Precise math for both types (expf/exp etc. pick the overload for T).
__device__ __forceinline__ float t_exp(float x) { return expf(x); }
__device__ __forceinline__ double t_exp(double x) { return exp(x); }
__device__ __forceinline__ float t_log(float x) { return logf(x); }
__device__ __forceinline__ double t_log(double x) { return log(x); }
__device__ __forceinline__ float t_tanh(float x) { return tanhf(x); }
__device__ __forceinline__ double t_tanh(double x) { return tanh(x); }
__device__ __forceinline__ float t_erf(float x) { return erff(x); }
__device__ __forceinline__ double t_erf(double x) { return erf(x); }
__device__ __forceinline__ float t_sqrt(float x) { return sqrtf(x); }
__device__ __forceinline__ double t_sqrt(double x) { return sqrt(x); }
__device__ __forceinline__ float t_pow(float x, float p) { return powf(x, p); }
__device__ __forceinline__ double t_pow(double x, double p) { return pow(x, p); }
__device__ __forceinline__ float t_max(float a, float b) { return fmaxf(a, b); }
__device__ __forceinline__ double t_max(double a, double b) { return fmax(a, b); }

// Sum over the 32 lanes of a warp (every lane gets the total).
template <typename T> __device__ __forceinline__ T warp_sum(T v) {
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}
// Max over the 32 lanes of a warp (every lane gets it).
template <typename T> __device__ __forceinline__ T warp_max(T v) {
    for (int o = 16; o > 0; o >>= 1) v = t_max(v, __shfl_xor_sync(0xffffffffu, v, o));
    return v;
}

// Sum over a block whose size is a multiple of 32 (≤ 1024); every thread gets the
// total. `scratch` holds 32 T in shared memory; the block synchronises twice.
template <typename T> __device__ __forceinline__ T block_sum(T v, T* scratch) {
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, warps = blockDim.x >> 5;
    v = warp_sum(v);
    __syncthreads(); // scratch may still be read by a previous call
    if (lane == 0) scratch[warp] = v;
    __syncthreads();
    v = lane < warps ? scratch[lane] : T(0);
    return warp_sum(v);
}
template <typename T> __device__ __forceinline__ T block_max(T v, T* scratch, T lowest) {
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, warps = blockDim.x >> 5;
    v = warp_max(v);
    __syncthreads();
    if (lane == 0) scratch[warp] = v;
    __syncthreads();
    v = lane < warps ? scratch[lane] : lowest;
    return warp_max(v);
}

// Instantiates X(T, suffix) for f32 and f64: each family defines a macro that writes
// its extern "C" __global__ entry points for one type, then calls FOR_F32_F64 on it.
#define FOR_F32_F64(X) X(float, f32) X(double, f64)

// Strided walks of at most RANK dims (broadcast.cu, permute.cu): a shape or stride
// array travels as six u64 parameters, SHAPE6(d) in a parameter list and ARR6(d) to
// gather them into an array (see Strided::params in kernels/src/gpu/launch.rs).
#define RANK 6
#define SHAPE6(p) u64 p##0, u64 p##1, u64 p##2, u64 p##3, u64 p##4, u64 p##5
#define ARR6(p) {p##0, p##1, p##2, p##3, p##4, p##5}

// The offsets into two operands of element i of a row-major walk over shape d: the
// coords of i in d dotted with each operand's strides. A dim of size 1 costs one
// division; fine at RANK 6.
__device__ __forceinline__ void offsets2(u64 i, const u64* d, const u64* sa, const u64* sb, u64& oa, u64& ob) {
    oa = 0;
    ob = 0;
#pragma unroll
    for (int k = RANK - 1; k >= 0; --k) {
        const u64 c = i % d[k];
        i /= d[k];
        oa += c * sa[k];
        ob += c * sb[k];
    }
}
