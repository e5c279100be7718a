// Fused optimizer updates (the GPU side of kernels/src/update.rs), bit-identical to the
// CPU: every multiply, add, divide and square root is a separately rounded IEEE
// operation (__fmul_rn/__dmul_rn & co., which nvcc never contracts into an FMA), in the
// CPU's order. (The CPU flushes subnormals to zero, the GPU keeps them: results
// differ only where a value falls below 2⁻¹²⁶ in f32 or 2⁻¹⁰²² in f64.)
//
//   adam_T(theta, g, m, v, c…, n):   all (n); c = the step's scalars (AdamCoefs), in T:
//       θ ← θ·decay;  gᵢ = g + l2·θ;  m ← β₁m + (1−β₁)gᵢ;  v ← β₂v + ((1−β₂)gᵢ)gᵢ;
//       θ ← θ − step_size·(m / (√v / bc2_sqrt + ε))
//   sgd_T(theta, g, buf, lr, mu, one_minus_damp, wd, momentum, nesterov, first, n):
//       gᵢ = g + wd·θ;  b ← first ? gᵢ : μb + (1−τ)gᵢ;  d = nesterov ? gᵢ + μb : b;  θ ← θ − lr·d
//       (without momentum, buf is null and d = gᵢ)
//   sumsq_partial_T(x, n, parts, at):  parts[at + blk] = Σ_{i of block blk} xᵢ²  (f64)
//   norm_finish(parts, count, total):  total[0] = √(Σ parts)   (one block, a fixed tree)
//   clip_scale_T(g, total, max_norm, n):  coef = max_norm / (total[0] + 1e−6);
//       g ← (T)coef · g  if coef < 1  (torch.nn.utils.clip_grad_norm_)
//   clip_value_T(g, clip, n):  g ← min(max(g, −clip), clip)  (torch.nn.utils.clip_grad_value_)
//   add_assign_T(y, x, n):  y ← y + x  (gradient accumulation)
#include "common.cuh"

__device__ __forceinline__ float mul_rn(float a, float b) { return __fmul_rn(a, b); }
__device__ __forceinline__ double mul_rn(double a, double b) { return __dmul_rn(a, b); }
__device__ __forceinline__ float add_rn(float a, float b) { return __fadd_rn(a, b); }
__device__ __forceinline__ double add_rn(double a, double b) { return __dadd_rn(a, b); }
__device__ __forceinline__ float sub_rn(float a, float b) { return __fsub_rn(a, b); }
__device__ __forceinline__ double sub_rn(double a, double b) { return __dsub_rn(a, b); }
__device__ __forceinline__ float div_rn(float a, float b) { return __fdiv_rn(a, b); }
__device__ __forceinline__ double div_rn(double a, double b) { return __ddiv_rn(a, b); }
__device__ __forceinline__ float sqrt_rn(float a) { return __fsqrt_rn(a); }
__device__ __forceinline__ double sqrt_rn(double a) { return __dsqrt_rn(a); }

template <typename T> struct AdamCoefs {
    T beta1, beta2, one_minus_b1, one_minus_b2, eps, l2, decay, step_size, bc2_sqrt;
};

template <typename T> __device__ void adam(T* theta, const T* g, T* m, T* v, AdamCoefs<T> c, u64 n) {
    GRID_STRIDE(i, n) {
        T th = mul_rn(theta[i], c.decay);                                  // θ·(1 − ηλ)   (AdamW)
        const T gi = add_rn(g[i], mul_rn(c.l2, th));                       // g + λθ       (Adam's L2)
        const T mi = add_rn(mul_rn(c.beta1, m[i]), mul_rn(c.one_minus_b1, gi));
        const T vi = add_rn(mul_rn(c.beta2, v[i]), mul_rn(mul_rn(c.one_minus_b2, gi), gi));
        const T denom = add_rn(div_rn(sqrt_rn(vi), c.bc2_sqrt), c.eps);   // √v/√(1−β₂ᵗ) + ε
        th = sub_rn(th, mul_rn(c.step_size, div_rn(mi, denom)));
        theta[i] = th;
        m[i] = mi;
        v[i] = vi;
    }
}

template <typename T>
__device__ void sgd(T* theta, const T* g, T* buf, T lr, T mu, T one_minus_damp, T wd, u32 momentum, u32 nesterov,
                    u32 first, u64 n) {
    GRID_STRIDE(i, n) {
        const T gi = add_rn(g[i], mul_rn(wd, theta[i])); // g + λθ
        T d = gi;
        if (momentum) {
            const T b = first ? gi : add_rn(mul_rn(mu, buf[i]), mul_rn(one_minus_damp, gi));
            buf[i] = b;
            d = nesterov ? add_rn(gi, mul_rn(mu, b)) : b;
        }
        theta[i] = sub_rn(theta[i], mul_rn(lr, d));
    }
}

template <typename T> __device__ void sumsq_partial(const T* x, u64 n, double* parts, u64 at) {
    __shared__ double scratch[32];
    double acc = 0;
    GRID_STRIDE(i, n) {
        const double v = (double)x[i];
        acc += v * v;
    }
    acc = block_sum(acc, scratch);
    if (threadIdx.x == 0) parts[at + blockIdx.x] = acc;
}

template <typename T> __device__ void clip_scale(T* g, const double* total, double max_norm, u64 n) {
    const double coef = max_norm / (total[0] + 1e-6);
    if (!(coef < 1.0)) return;
    const T c = (T)coef;
    GRID_STRIDE(i, n) g[i] = mul_rn(g[i], c);
}

template <typename T> __device__ void clip_value(T* g, T clip, u64 n) {
    GRID_STRIDE(i, n) {
        const T v = g[i];
        g[i] = v < -clip ? -clip : (v > clip ? clip : v); // a NaN stays NaN, as on the CPU
    }
}

template <typename T> __device__ void add_assign(T* y, const T* x, u64 n) {
    GRID_STRIDE(i, n) y[i] = add_rn(y[i], x[i]);
}

extern "C" __global__ void norm_finish(const double* parts, u64 count, double* total) {
    __shared__ double scratch[32];
    double acc = 0;
    for (u64 k = threadIdx.x; k < count; k += blockDim.x) acc += parts[k];
    acc = block_sum(acc, scratch);
    if (threadIdx.x == 0) total[0] = sqrt(acc);
}

#define UPDATE(T, S)                                                                                          \
    extern "C" __global__ void adam_##S(T* theta, const T* g, T* m, T* v, T beta1, T beta2, T one_minus_b1,   \
                                        T one_minus_b2, T eps, T l2, T decay, T step_size, T bc2_sqrt, u64 n) { \
        const AdamCoefs<T> c = {beta1, beta2, one_minus_b1, one_minus_b2, eps, l2, decay, step_size, bc2_sqrt}; \
        adam<T>(theta, g, m, v, c, n);                                                                        \
    }                                                                                                         \
    extern "C" __global__ void sgd_##S(T* theta, const T* g, T* buf, T lr, T mu, T one_minus_damp, T wd,      \
                                       u32 momentum, u32 nesterov, u32 first, u64 n) {                        \
        sgd<T>(theta, g, buf, lr, mu, one_minus_damp, wd, momentum, nesterov, first, n);                      \
    }                                                                                                         \
    extern "C" __global__ void sumsq_partial_##S(const T* x, u64 n, double* parts, u64 at) {                  \
        sumsq_partial<T>(x, n, parts, at);                                                                    \
    }                                                                                                         \
    extern "C" __global__ void clip_scale_##S(T* g, const double* total, double max_norm, u64 n) {            \
        clip_scale<T>(g, total, max_norm, n);                                                                 \
    }                                                                                                         \
    extern "C" __global__ void clip_value_##S(T* g, T clip, u64 n) { clip_value<T>(g, clip, n); }             \
    extern "C" __global__ void add_assign_##S(T* y, const T* x, u64 n) { add_assign<T>(y, x, n); }
FOR_F32_F64(UPDATE)
