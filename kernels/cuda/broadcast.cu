// NumPy broadcasting on the GPU (the GPU side of kernels/src/broadcast.rs).
//
// Shapes reach the kernels already simplified by the launcher: size-1 dims dropped,
// adjacent dims merged where every operand stays contiguous across them, then padded
// on the left to RANK = 6 dims (size 1, stride 0). Each shape or stride array is
// passed as six u64 parameters (`SHAPE6(d)` below), so no launch needs a device copy.
//
//   binary_T(op, d[6], sa[6], sb[6], a, b, out, n):       out (n), n = Π d
//       out[i] = f(a[Σ c_k·sa_k], b[Σ c_k·sb_k])   with c = the row-major coords of i in d
//       (sa/sb are 0 on a dim the operand is broadcast along)
//   expand_T(d[6], sx[6], x, out, n):                      out[i] = x[Σ c_k·sx_k]
//   sum_to_T(d[6], sx[6], r[6], rx[6], x, out, n, rn):     out (n), the adjoint of expand
//       out[i] = Σ_{k < rn} x[Σ c_k·sx_k + Σ e_k·rx_k]
//       c = coords of i in the kept dims d, e = coords of k in the reduced dims r; the
//       preimage is summed in increasing k, so the result is the same bits every run.
//       One thread per output (sum_to_thread), or one block per output with a tree
//       reduction over the block (sum_to_block) when the preimage is long.
#include "common.cuh"

// The Binary op codes: Binary::code() on the Rust side.
enum { BIN_ADD = 0, BIN_SUB, BIN_MUL, BIN_DIV, BIN_MAX, BIN_MIN };

template <typename T> __device__ __forceinline__ T binary_f(u32 op, T x, T y) {
    switch (op) {
    case BIN_ADD: return x + y;
    case BIN_SUB: return x - y;
    case BIN_MUL: return x * y;
    case BIN_DIV: return x / y;
    case BIN_MAX: return t_max(x, y);         // NaN loses, as Rust's f64::max
    default: return (y < x || x != x) ? y : x; // BIN_MIN, NaN loses
    }
}

template <typename T>
__device__ void binary(u32 op, const u64* d, const u64* sa, const u64* sb, const T* a, const T* b, T* out, u64 n) {
    GRID_STRIDE(i, n) {
        u64 oa, ob;
        offsets2(i, d, sa, sb, oa, ob);
        out[i] = binary_f(op, a[oa], b[ob]);
    }
}

template <typename T> __device__ void expand(const u64* d, const u64* sx, const T* x, T* out, u64 n) {
    GRID_STRIDE(i, n) {
        u64 ox, unused;
        offsets2(i, d, sx, sx, ox, unused);
        out[i] = x[ox];
    }
}

// One thread per output element, the preimage summed sequentially.
template <typename T>
__device__ void sum_to_thread(const u64* d, const u64* sx, const u64* r, const u64* rx, const T* x, T* out, u64 n,
                              u64 rn) {
    GRID_STRIDE(i, n) {
        u64 base, unused;
        offsets2(i, d, sx, sx, base, unused);
        T acc = T(0);
        for (u64 k = 0; k < rn; ++k) {
            u64 o;
            offsets2(k, r, rx, rx, o, unused);
            acc += x[base + o];
        }
        out[i] = acc;
    }
}

// One block per output element (grid-stride over outputs): thread t sums k = t, t + B,
// …, then the block adds the partial sums in a fixed tree (block_sum).
template <typename T>
__device__ void sum_to_block(const u64* d, const u64* sx, const u64* r, const u64* rx, const T* x, T* out, u64 n,
                             u64 rn) {
    __shared__ T scratch[32];
    for (u64 i = blockIdx.x; i < n; i += gridDim.x) {
        u64 base, unused;
        offsets2(i, d, sx, sx, base, unused);
        T acc = T(0);
        for (u64 k = threadIdx.x; k < rn; k += blockDim.x) {
            u64 o;
            offsets2(k, r, rx, rx, o, unused);
            acc += x[base + o];
        }
        acc = block_sum(acc, scratch);
        if (threadIdx.x == 0) out[i] = acc;
    }
}

#define BROADCAST(T, S)                                                                                      \
    extern "C" __global__ void binary_##S(u32 op, SHAPE6(d), SHAPE6(sa), SHAPE6(sb), const T* a, const T* b, \
                                          T* out, u64 n) {                                                   \
        const u64 dd[RANK] = ARR6(d), aa[RANK] = ARR6(sa), bb[RANK] = ARR6(sb);                              \
        binary<T>(op, dd, aa, bb, a, b, out, n);                                                             \
    }                                                                                                        \
    extern "C" __global__ void expand_##S(SHAPE6(d), SHAPE6(sx), const T* x, T* out, u64 n) {                \
        const u64 dd[RANK] = ARR6(d), xx[RANK] = ARR6(sx);                                                   \
        expand<T>(dd, xx, x, out, n);                                                                        \
    }                                                                                                        \
    extern "C" __global__ void sum_to_thread_##S(SHAPE6(d), SHAPE6(sx), SHAPE6(r), SHAPE6(rx), const T* x,   \
                                                 T* out, u64 n, u64 rn) {                                    \
        const u64 dd[RANK] = ARR6(d), xx[RANK] = ARR6(sx), rr[RANK] = ARR6(r), rxx[RANK] = ARR6(rx);         \
        sum_to_thread<T>(dd, xx, rr, rxx, x, out, n, rn);                                                    \
    }                                                                                                        \
    extern "C" __global__ void sum_to_block_##S(SHAPE6(d), SHAPE6(sx), SHAPE6(r), SHAPE6(rx), const T* x,    \
                                                T* out, u64 n, u64 rn) {                                     \
        const u64 dd[RANK] = ARR6(d), xx[RANK] = ARR6(sx), rr[RANK] = ARR6(r), rxx[RANK] = ARR6(rx);         \
        sum_to_block<T>(dd, xx, rr, rxx, x, out, n, rn);                                                     \
    }
FOR_F32_F64(BROADCAST)
