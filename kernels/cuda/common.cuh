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
