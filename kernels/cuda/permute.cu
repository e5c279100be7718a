// Copies that move numbers without arithmetic (the GPU side of kernels/src/permute.rs).
//
//   permute_T(d[6], s[6], src, out, n):   out[i] = src[Σ c_k·s_k], c = coords of i in d
//       out (d) row-major; s = the source strides of the output dims (a permutation of
//       src's row-major strides, simplified by the launcher: Strided::simplify)
//   transpose_T(src, out, batch, m, n):   out[b, j, i] = src[b, i, j]
//       src (batch, m, n), out (batch, n, m): 32×32 tiles through shared memory, so both
//       the reads and the writes are coalesced; blocks of 32×8 threads loop over tiles
//   slab_T(src, dst, outer, len, inner, src_n, src_start, dst_n, dst_start, add):
//       dst[o, dst_start + j, i] = (or +=) src[o, src_start + j, i],  j < len
//       src (outer, src_n, inner), dst (outer, dst_n, inner): narrow, its backward (add),
//       and each part of a concat
#include "common.cuh"

template <typename T> __device__ void permute(const u64* d, const u64* s, const T* src, T* out, u64 n) {
    GRID_STRIDE(i, n) {
        u64 o, unused;
        offsets2(i, d, s, s, o, unused);
        out[i] = src[o];
    }
}

#define TILE 32
template <typename T> __device__ void transpose(const T* src, T* out, u64 batch, u64 m, u64 n) {
    __shared__ T tile[TILE][TILE + 1]; // +1: columns fall in different banks
    const u64 tm = (m + TILE - 1) / TILE, tn = (n + TILE - 1) / TILE;
    for (u64 t = blockIdx.x; t < batch * tm * tn; t += gridDim.x) {
        const u64 b = t / (tm * tn), i0 = (t / tn) % tm * TILE, j0 = t % tn * TILE;
        const T* s = src + b * m * n;
        T* o = out + b * m * n;
        __syncthreads(); // the previous tile has been written out
        for (u32 r = threadIdx.y; r < TILE; r += blockDim.y) {
            const u64 i = i0 + r, j = j0 + threadIdx.x;
            if (i < m && j < n) tile[r][threadIdx.x] = s[i * n + j];
        }
        __syncthreads();
        for (u32 r = threadIdx.y; r < TILE; r += blockDim.y) {
            const u64 j = j0 + r, i = i0 + threadIdx.x;
            if (i < m && j < n) o[j * m + i] = tile[threadIdx.x][r];
        }
    }
}

template <typename T>
__device__ void slab(const T* src, T* dst, u64 outer, u64 len, u64 inner, u64 src_n, u64 src_start, u64 dst_n,
                     u64 dst_start, u32 add) {
    const u64 run = len * inner; // one o's slab is contiguous on both sides
    GRID_STRIDE(e, outer * run) {
        const u64 o = e / run, k = e % run;
        const T v = src[(o * src_n + src_start) * inner + k];
        T* d = dst + (o * dst_n + dst_start) * inner + k;
        *d = add ? *d + v : v;
    }
}

#define PERMUTE(T, S)                                                                                        \
    extern "C" __global__ void permute_##S(SHAPE6(d), SHAPE6(s), const T* src, T* out, u64 n) {              \
        const u64 dd[RANK] = ARR6(d), ss[RANK] = ARR6(s);                                                    \
        permute<T>(dd, ss, src, out, n);                                                                     \
    }                                                                                                        \
    extern "C" __global__ void transpose_##S(const T* src, T* out, u64 batch, u64 m, u64 n) {                \
        transpose<T>(src, out, batch, m, n);                                                                 \
    }                                                                                                        \
    extern "C" __global__ void slab_##S(const T* src, T* dst, u64 outer, u64 len, u64 inner, u64 src_n,     \
                                        u64 src_start, u64 dst_n, u64 dst_start, u32 add) {                  \
        slab<T>(src, dst, outer, len, inner, src_n, src_start, dst_n, dst_start, add);                       \
    }
FOR_F32_F64(PERMUTE)
