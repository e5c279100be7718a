// Elementwise functions of one tensor (the GPU side of kernels/src/elementwise.rs).
//
//   unary_fwd_T(op, c, x, y, n):       y[i] = f(x[i])             x, y (n)
//   unary_bwd_T(op, c, x, y, g, dx, n): dx[i] = g[i] · f'(x[i])   (f' may use y = f(x))
//
// `op` is Unary::code() on the Rust side; `c` is the scalar of add/mul/pow.
#include "common.cuh"

enum {
    UNARY_EXP = 0, UNARY_TANH, UNARY_SIGMOID, UNARY_RELU, UNARY_GELU, UNARY_GELU_TANH,
    UNARY_NEG, UNARY_LOG, UNARY_SQRT, UNARY_ADD_SCALAR, UNARY_MUL_SCALAR, UNARY_POW_SCALAR
};

template <typename T> __device__ __forceinline__ T sigmoid(T x) { return T(1) / (T(1) + t_exp(-x)); }

// GELU, erf form: x·Φ(x), Φ(x) = ½(1 + erf(x/√2)).
template <typename T> __device__ __forceinline__ T gelu(T x) {
    return T(0.5) * x * (T(1) + t_erf(x * T(0.70710678118654752440)));
}
// Φ(x) + x·φ(x), φ(x) = e^(−x²/2)/√(2π).
template <typename T> __device__ __forceinline__ T gelu_grad(T x) {
    return T(0.5) * (T(1) + t_erf(x * T(0.70710678118654752440))) +
           x * t_exp(T(-0.5) * x * x) * T(0.39894228040143267794);
}
// ½x(1 + tanh u), u = √(2/π)(x + 0.044715x³).
template <typename T> __device__ __forceinline__ T gelu_tanh(T x) {
    const T u = T(0.79788456080286535588) * (x + T(0.044715) * x * x * x);
    return T(0.5) * x * (T(1) + t_tanh(u));
}
template <typename T> __device__ __forceinline__ T gelu_tanh_grad(T x) {
    const T u = T(0.79788456080286535588) * (x + T(0.044715) * x * x * x);
    const T du = T(0.79788456080286535588) * (T(1) + T(3) * T(0.044715) * x * x);
    const T th = t_tanh(u);
    return T(0.5) * (T(1) + th) + T(0.5) * x * (T(1) - th * th) * du;
}

template <typename T> __device__ __forceinline__ T unary_f(u32 op, T c, T x) {
    switch (op) {
    case UNARY_EXP: return t_exp(x);
    case UNARY_TANH: return t_tanh(x);
    case UNARY_SIGMOID: return sigmoid(x);
    case UNARY_RELU: return x > T(0) ? x : T(0);
    case UNARY_GELU: return gelu(x);
    case UNARY_GELU_TANH: return gelu_tanh(x);
    case UNARY_NEG: return -x;
    case UNARY_LOG: return t_log(x);
    case UNARY_SQRT: return t_sqrt(x);
    case UNARY_ADD_SCALAR: return x + c;
    case UNARY_MUL_SCALAR: return c * x;
    default: return t_pow(x, c); // UNARY_POW_SCALAR
    }
}

// f'(x), given y = f(x).
template <typename T> __device__ __forceinline__ T unary_df(u32 op, T c, T x, T y) {
    switch (op) {
    case UNARY_EXP: return y;
    case UNARY_TANH: return T(1) - y * y;
    case UNARY_SIGMOID: return y * (T(1) - y);
    case UNARY_RELU: return x > T(0) ? T(1) : T(0);
    case UNARY_GELU: return gelu_grad(x);
    case UNARY_GELU_TANH: return gelu_tanh_grad(x);
    case UNARY_NEG: return T(-1);
    case UNARY_LOG: return T(1) / x;
    case UNARY_SQRT: return T(1) / (T(2) * y);
    case UNARY_ADD_SCALAR: return T(1);
    case UNARY_MUL_SCALAR: return c;
    default: return c * t_pow(x, c - T(1)); // UNARY_POW_SCALAR
    }
}

template <typename T> __device__ void unary_fwd(u32 op, T c, const T* x, T* y, u64 n) {
    GRID_STRIDE(i, n) y[i] = unary_f(op, c, x[i]);
}

template <typename T> __device__ void unary_bwd(u32 op, T c, const T* x, const T* y, const T* g, T* dx, u64 n) {
    GRID_STRIDE(i, n) dx[i] = g[i] * unary_df(op, c, x[i], y[i]);
}

#define ELEMENTWISE(T, S)                                                                               \
    extern "C" __global__ void unary_fwd_##S(u32 op, T c, const T* x, T* y, u64 n) {                    \
        unary_fwd<T>(op, c, x, y, n);                                                                   \
    }                                                                                                   \
    extern "C" __global__ void unary_bwd_##S(u32 op, T c, const T* x, const T* y, const T* g, T* dx, u64 n) { \
        unary_bwd<T>(op, c, x, y, g, dx, n);                                                            \
    }
FOR_F32_F64(ELEMENTWISE)
