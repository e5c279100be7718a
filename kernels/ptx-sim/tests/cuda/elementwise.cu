// Elementwise math in f32 and f64: the libdevice expansions our kernels will use.
#include <cuda_fp16.h>
#include <cuda_bf16.h>

template <typename T> __device__ T gelu(T x);
template <> __device__ float gelu(float x) { return 0.5f * x * (1.0f + erff(x * 0.70710678f)); }
template <> __device__ double gelu(double x) { return 0.5 * x * (1.0 + erf(x * 0.7071067811865476)); }

// out[i*7 + k] = the k-th function of x[i].
template <typename T>
__device__ void unary_math(const T* x, T* out, int n) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n) return;
    T v = x[i];
    out[i * 7 + 0] = exp(v);
    out[i * 7 + 1] = log(fabs(v) + T(1));
    out[i * 7 + 2] = tanh(v);
    out[i * 7 + 3] = gelu(v);
    out[i * 7 + 4] = sqrt(fabs(v));
    out[i * 7 + 5] = pow(fabs(v) + T(0.5), T(1.7));
    out[i * 7 + 6] = T(1) / (v + T(3.5));
}
extern "C" __global__ void unary_math_f32(const float* x, float* out, int n) { unary_math(x, out, n); }
extern "C" __global__ void unary_math_f64(const double* x, double* out, int n) { unary_math(x, out, n); }

// Fast-math intrinsics (ex2/lg2/rcp/rsqrt/sin/cos approx) and the sigmoid an LSTM uses.
extern "C" __global__ void fast_math_f32(const float* x, float* out, int n) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n) return;
    float v = x[i];
    out[i * 6 + 0] = __expf(v);
    out[i * 6 + 1] = __logf(fabsf(v) + 1.0f);
    out[i * 6 + 2] = rsqrtf(fabsf(v) + 1.0f);
    out[i * 6 + 3] = __sinf(v);
    out[i * 6 + 4] = __cosf(v);
    out[i * 6 + 5] = 1.0f / (1.0f + __expf(-v));
}

// axpy with a fused multiply-add: y = a*x + y.
template <typename T>
__device__ void axpy(T a, const T* x, T* y, long n) {
    for (long i = blockIdx.x * (long)blockDim.x + threadIdx.x; i < n; i += (long)gridDim.x * blockDim.x)
        y[i] = fma(a, x[i], y[i]);
}
extern "C" __global__ void axpy_f32(float a, const float* x, float* y, long n) { axpy(a, x, y, n); }
extern "C" __global__ void axpy_f64(double a, const double* x, double* y, long n) { axpy(a, x, y, n); }

// f32 -> f16 / bf16 -> f32 round trips, and f32 -> i32 conversions with rounding modes.
extern "C" __global__ void convert(const float* x, float* out, int* ints, int n) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n) return;
    float v = x[i];
    __half h = __float2half_rn(v);
    __nv_bfloat16 b = __float2bfloat16_rn(v);
    out[i * 3 + 0] = __half2float(h);
    out[i * 3 + 1] = __bfloat162float(b);
    out[i * 3 + 2] = __half2float(__hadd(h, __float2half(1.0f)));
    ints[i * 4 + 0] = __float2int_rn(v * 10.0f);
    ints[i * 4 + 1] = __float2int_rz(v * 10.0f);
    ints[i * 4 + 2] = __float2int_rd(v * 10.0f);
    ints[i * 4 + 3] = (int)__float2uint_ru(fabsf(v) * 10.0f);
}
