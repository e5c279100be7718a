// Losses (the GPU side of kernels/src/loss.rs). Every loss is a mean and is written to
// a one-element device buffer: nothing goes to the host. Sums over rows or elements
// are deterministic: per-block partial sums in f64 over a grid fixed by the size,
// then one block adds the partials in a fixed tree.
//
// Cross-entropy of logits x (n, c) against targets t (n, i64); rows with t = ignore
// (−1: none) are skipped; N = the rows used:
//   ce_rows_T(x, t, ignore, rowloss, n, c):  rowloss[r] = lse(x_r) − x_r[t_r]  (0 if ignored)
//       lse(x) = m + ln Σ_j e^{x_j − m}, m = max_j x_j; one block per row
//   ce_mean_T(rowloss, t, ignore, loss, count, n):  loss[0] = Σ_r rowloss[r] / N, count[0] = N
//       one block (NaN when N = 0, as the CPU)
//   ce_bwd_T(x, t, ignore, scale, dx, n, c):  dx_r += scale[0]·(softmax(x_r) − onehot(t_r))
//       scale: a device scalar (dL/dL_mean / N); one block per row
// Binary cross-entropy on logits x against t ∈ [0, 1], and the squared error (both (n)):
//   bce_partial_T(x, t, part, n):   part[b] = Σ_{i of block b} max(x,0) − x·t + ln(1 + e^{−|x|})
//   mse_partial_T(y, t, part, n):   part[b] = Σ_{i of block b} (y − t)²
//   mean_finish_T(part, parts, big_n, loss):  loss[0] = Σ part / N   (one block)
//   bce_bwd_T(x, t, g, big_n, dx, dt, n):  s = g[0]/N;  dx = s·(σ(x) − t),  dt = (−s)·x
//   mse_bwd_T(y, t, g, big_n, dy, dt, n):  s = 2·g[0]/N;  dy = s·(y − t),  dt = −dy
// The backwards of bce and mse write dx, dt; cross-entropy's adds, as on the CPU.
#include "common.cuh"

template <typename T> __device__ __forceinline__ T t_abs(T x) { return x < T(0) ? -x : x; }
template <typename T> __device__ __forceinline__ T t_log1p_exp_neg_abs(T x) { return t_log(T(1) + t_exp(-t_abs(x))); }

// σ(x) as kernels::activation::sigmoid: no overflow for large |x|.
template <typename T> __device__ __forceinline__ T sigmoid(T x) {
    if (x >= T(0)) return T(1) / (T(1) + t_exp(-x));
    const T e = t_exp(x);
    return e / (T(1) + e);
}

// max_j x_j and Σ_j e^{x_j − max} of one row, every thread of the block gets both.
template <typename T> __device__ __forceinline__ void row_max_sumexp(const T* row, u64 c, T* scratch, T& m, T& s) {
    T v = -INFINITY;
    for (u64 j = threadIdx.x; j < c; j += blockDim.x) v = t_max(v, row[j]);
    m = block_max(v, scratch, T(-INFINITY));
    T acc = T(0);
    for (u64 j = threadIdx.x; j < c; j += blockDim.x) acc += t_exp(row[j] - m);
    s = block_sum(acc, scratch);
}

template <typename T> __device__ void ce_rows(const T* x, const i64* t, i64 ignore, T* rowloss, u64 n, u64 c) {
    __shared__ T scratch[32];
    for (u64 r = blockIdx.x; r < n; r += gridDim.x) {
        const i64 tr = t[r];
        if (tr == ignore) { // uniform over the block
            if (threadIdx.x == 0) rowloss[r] = T(0);
            continue;
        }
        const T* row = x + r * c;
        T m, s;
        row_max_sumexp(row, c, scratch, m, s);
        if (threadIdx.x == 0) rowloss[r] = (tr >= 0 && (u64)tr < c) ? t_log(s) + m - row[tr] : T(NAN);
    }
}

template <typename T>
__device__ void ce_mean(const T* rowloss, const i64* t, i64 ignore, T* loss, T* count, u64 n) {
    __shared__ double scratch[32];
    double sum = 0, used = 0;
    for (u64 r = threadIdx.x; r < n; r += blockDim.x) {
        if (t[r] != ignore) sum += (double)rowloss[r], used += 1;
    }
    sum = block_sum(sum, scratch);
    used = block_sum(used, scratch);
    if (threadIdx.x == 0) {
        loss[0] = (T)(sum / used);
        count[0] = (T)used;
    }
}

template <typename T>
__device__ void ce_bwd(const T* x, const i64* t, i64 ignore, const T* scale, T* dx, u64 n, u64 c) {
    __shared__ T scratch[32];
    const T k = scale[0];
    for (u64 r = blockIdx.x; r < n; r += gridDim.x) {
        const i64 tr = t[r];
        if (tr == ignore) continue;
        const T* row = x + r * c;
        T m, s;
        row_max_sumexp(row, c, scratch, m, s);
        T* d = dx + r * c;
        for (u64 j = threadIdx.x; j < c; j += blockDim.x) {
            const T p = t_exp(row[j] - m) / s;
            d[j] += k * (p - ((i64)j == tr ? T(1) : T(0)));
        }
    }
}

// Partial sums of f(a_i, b_i) per block, in f64.
template <typename T, typename F> __device__ void partial(const T* a, const T* b, double* part, u64 n, F f) {
    __shared__ double scratch[32];
    double acc = 0;
    GRID_STRIDE(i, n) acc += (double)f(a[i], b[i]);
    acc = block_sum(acc, scratch);
    if (threadIdx.x == 0) part[blockIdx.x] = acc;
}

template <typename T> __device__ void mean_finish(const double* part, u64 parts, T big_n, T* loss) {
    __shared__ double scratch[32];
    double acc = 0;
    for (u64 k = threadIdx.x; k < parts; k += blockDim.x) acc += part[k];
    acc = block_sum(acc, scratch);
    if (threadIdx.x == 0) loss[0] = (T)acc / big_n;
}

template <typename T> __device__ void bce_bwd(const T* x, const T* t, const T* g, T big_n, T* dx, T* dt, u64 n) {
    const T s = g[0] / big_n;
    GRID_STRIDE(i, n) {
        dx[i] = s * (sigmoid(x[i]) - t[i]);
        dt[i] = -s * x[i];
    }
}

template <typename T> __device__ void mse_bwd(const T* y, const T* t, const T* g, T big_n, T* dy, T* dt, u64 n) {
    const T s = T(2) * g[0] / big_n;
    GRID_STRIDE(i, n) {
        const T d = s * (y[i] - t[i]);
        dy[i] = d;
        dt[i] = -d;
    }
}

template <typename T> struct Bce {
    __device__ T operator()(T x, T t) const { return t_max(x, T(0)) - x * t + t_log1p_exp_neg_abs(x); }
};
template <typename T> struct SqErr {
    __device__ T operator()(T y, T t) const { const T d = y - t; return d * d; }
};

#define LOSS(T, S)                                                                                              \
    extern "C" __global__ void ce_rows_##S(const T* x, const i64* t, i64 ignore, T* rowloss, u64 n, u64 c) {    \
        ce_rows<T>(x, t, ignore, rowloss, n, c);                                                                \
    }                                                                                                           \
    extern "C" __global__ void ce_mean_##S(const T* rowloss, const i64* t, i64 ignore, T* loss, T* count,       \
                                           u64 n) {                                                             \
        ce_mean<T>(rowloss, t, ignore, loss, count, n);                                                         \
    }                                                                                                           \
    extern "C" __global__ void ce_bwd_##S(const T* x, const i64* t, i64 ignore, const T* scale, T* dx, u64 n,   \
                                          u64 c) {                                                              \
        ce_bwd<T>(x, t, ignore, scale, dx, n, c);                                                               \
    }                                                                                                           \
    extern "C" __global__ void bce_partial_##S(const T* x, const T* t, double* part, u64 n) {                   \
        partial<T>(x, t, part, n, Bce<T>());                                                                    \
    }                                                                                                           \
    extern "C" __global__ void mse_partial_##S(const T* y, const T* t, double* part, u64 n) {                   \
        partial<T>(y, t, part, n, SqErr<T>());                                                                  \
    }                                                                                                           \
    extern "C" __global__ void mean_finish_##S(const double* part, u64 parts, T big_n, T* loss) {               \
        mean_finish<T>(part, parts, big_n, loss);                                                               \
    }                                                                                                           \
    extern "C" __global__ void bce_bwd_##S(const T* x, const T* t, const T* g, T big_n, T* dx, T* dt, u64 n) {  \
        bce_bwd<T>(x, t, g, big_n, dx, dt, n);                                                                  \
    }                                                                                                           \
    extern "C" __global__ void mse_bwd_##S(const T* y, const T* t, const T* g, T big_n, T* dy, T* dt, u64 n) {  \
        mse_bwd<T>(y, t, g, big_n, dy, dt, n);                                                                  \
    }
FOR_F32_F64(LOSS)
