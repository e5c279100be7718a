// The fused LSTM cell and the h/c interleave copies (the GPU side of
// kernels/src/lstm/mod.rs; the packed recurrence's launcher runs its per-step
// products through gemm.cu and these cells).
//
//   gates, act, d_gates  [rows, 4H]   the row split in PyTorch's order [i | f | g | o]
//   c_prev, dc_prev      [p, H]       p ≤ rows: rows p.. start from c_prev = 0
//   c, tanh_c, h, dh, dc [rows, H]
//   hc, g_hc             [rows, 2H]   [h | c] per row (the cell op's one output)
//
// Forward (gates in place: pre-activations in, activations out):
//   i = σ(z_i)  f = σ(z_f)  g = tanh(z_g)  o = σ(z_o);  c = f⊙c_prev + i⊙g;  h = o⊙tanh(c)
// Backward, with dh the sum of dh and dh_add (null: none), dc the gradient reaching c:
//   dc_tot = dc + dh⊙o⊙(1 − tanh²c)
//   dz_i = dc_tot⊙g⊙i(1 − i)   dz_f = dc_tot⊙c_prev⊙f(1 − f)
//   dz_g = dc_tot⊙i⊙(1 − g²)   dz_o = dh⊙tanh(c)⊙o(1 − o)      dc_prev = dc_tot⊙f
// dc_prev may be the same memory as dc: each (row, j) is read, then written, by one
// thread and no other.
//
// One thread per (row, j) of [rows, H], grid-stride; neighbouring threads touch
// neighbouring j of each gate block (coalesced).
#include "common.cuh"

// σ(x) as the CPU computes it (no overflow of e^{−x} for very negative x).
template <typename T> __device__ __forceinline__ T sigmoid(T x) {
    if (x >= T(0)) return T(1) / (T(1) + t_exp(-x));
    const T e = t_exp(x);
    return e / (T(1) + e);
}

template <typename T>
__device__ void lstm_cell_fwd(T* gates, const T* c_prev, T* c, T* tanh_c, T* h, u64 rows, u64 p, u64 hidden) {
    GRID_STRIDE(e, rows * hidden) {
        const u64 r = e / hidden, j = e % hidden;
        T* z = gates + r * 4 * hidden + j;
        const T i = sigmoid(z[0]), f = sigmoid(z[hidden]), g = t_tanh(z[2 * hidden]), o = sigmoid(z[3 * hidden]);
        const T cp = r < p ? c_prev[e] : T(0);
        const T cv = f * cp + i * g;
        const T tc = t_tanh(cv);
        z[0] = i;
        z[hidden] = f;
        z[2 * hidden] = g;
        z[3 * hidden] = o;
        c[e] = cv;
        tanh_c[e] = tc;
        h[e] = o * tc;
    }
}

template <typename T>
__device__ void lstm_cell_bwd(const T* act, const T* c_prev, const T* tanh_c, const T* dh, const T* dh_add,
                              const T* dc, T* d_gates, T* dc_prev, u64 rows, u64 p, u64 hidden) {
    GRID_STRIDE(e, rows * hidden) {
        const u64 r = e / hidden, j = e % hidden;
        const T* a = act + r * 4 * hidden + j;
        T* dz = d_gates + r * 4 * hidden + j;
        const T i = a[0], f = a[hidden], g = a[2 * hidden], o = a[3 * hidden], t = tanh_c[e];
        const T dhv = dh_add ? dh[e] + dh_add[e] : dh[e];
        const T dct = dc[e] + dhv * o * (T(1) - t * t);
        const T cp = r < p ? c_prev[e] : T(0);
        dz[0] = dct * g * i * (T(1) - i);
        dz[hidden] = dct * cp * f * (T(1) - f);
        dz[2 * hidden] = dct * i * (T(1) - g * g);
        dz[3 * hidden] = dhv * t * o * (T(1) - o);
        if (r < p) dc_prev[e] = dct * f;
    }
}

// hc[r] = [h[r] | c[r]]
template <typename T> __device__ void lstm_interleave(const T* h, const T* c, T* hc, u64 rows, u64 hidden) {
    GRID_STRIDE(e, rows * 2 * hidden) {
        const u64 r = e / (2 * hidden), j = e % (2 * hidden);
        hc[e] = j < hidden ? h[r * hidden + j] : c[r * hidden + j - hidden];
    }
}

// [dh[r] | dc[r]] = g_hc[r]
template <typename T> __device__ void lstm_split(const T* g_hc, T* dh, T* dc, u64 rows, u64 hidden) {
    GRID_STRIDE(e, rows * 2 * hidden) {
        const u64 r = e / (2 * hidden), j = e % (2 * hidden);
        if (j < hidden)
            dh[r * hidden + j] = g_hc[e];
        else
            dc[r * hidden + j - hidden] = g_hc[e];
    }
}

#define LSTM(T, S)                                                                                       \
    extern "C" __global__ void lstm_cell_fwd_##S(T* gates, const T* c_prev, T* c, T* tanh_c, T* h,       \
                                                 u64 rows, u64 p, u64 hidden) {                          \
        lstm_cell_fwd<T>(gates, c_prev, c, tanh_c, h, rows, p, hidden);                                  \
    }                                                                                                    \
    extern "C" __global__ void lstm_cell_bwd_##S(const T* act, const T* c_prev, const T* tanh_c,         \
                                                 const T* dh, const T* dh_add, const T* dc, T* d_gates,  \
                                                 T* dc_prev, u64 rows, u64 p, u64 hidden) {              \
        lstm_cell_bwd<T>(act, c_prev, tanh_c, dh, dh_add, dc, d_gates, dc_prev, rows, p, hidden);        \
    }                                                                                                    \
    extern "C" __global__ void lstm_interleave_##S(const T* h, const T* c, T* hc, u64 rows, u64 hidden) { \
        lstm_interleave<T>(h, c, hc, rows, hidden);                                                      \
    }                                                                                                    \
    extern "C" __global__ void lstm_split_##S(const T* g_hc, T* dh, T* dc, u64 rows, u64 hidden) {       \
        lstm_split<T>(g_hc, dh, dc, rows, hidden);                                                       \
    }
FOR_F32_F64(LSTM)
