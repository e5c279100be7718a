// Strided, batched matrix products (the GPU side of kernels/src/gemm.rs).
//
//   C_b = beta·C_b + bias + A_b·B_b      for b in 0..batch
//   A_b (m,k): A(i,p) = a[b·sa_batch + i·sa_row + p·sa_col]
//   B_b (k,n): B(p,j) = b[b·sb_batch + p·sb_row + j·sb_col]
//   C_b (m,n): C(i,j) = c[b·sc_batch + i·sc_row + j]          (row-major rows)
//   bias (n):  bias[j] added to every row of every item; a null pointer: none
//
// Transposes are only strides (NN, NT, TN, TT all run here); a batch stride of 0
// broadcasts one matrix. beta == 0 overwrites C without reading it (NaN there is
// ignored), as the CPU's gemm does; the bias is added in the store of each C element
// (the CPU adds it as it stores each C tile, in the same order: (beta·C + bias) + sum).
//
//   gemm_naive_T: one thread per C element, the k loop in order: the reference.
//   gemm_tiled_T: 64×64 C tiles per 32×8-thread block, each thread an 8×2 register
//                 block (rows ty + 8r, columns tx + 32q); A and B tiles of depth 16
//                 staged in shared memory. The tile loads put consecutive threads on
//                 the operand's unit-stride side (row-major or transposed), so they
//                 coalesce either way; a warp stores 32 consecutive columns of C.
//
// Every index is bounds-checked (zero-filled tiles), and the grid loops over tiles
// and batch items, so any sizes and any grid are correct. No atomics: each C element
// has one owner.
#include "common.cuh"

struct GemmStrides {
    u64 batch, row, col;
};

// C(i, j) after the product: the sum `acc` added to what C starts as, beta·C + bias[j]
// (either part absent: beta 0 does not read C, a null bias adds nothing).
template <typename T>
__device__ __forceinline__ T with_start(T beta, const T* cij, const T* bias, u64 j, T acc) {
    if (beta == T(0) && bias == nullptr) return acc;
    T s = beta == T(0) ? bias[j] : beta * *cij;
    if (beta != T(0) && bias != nullptr) s += bias[j];
    return s + acc;
}

template <typename T>
__device__ void gemm_naive(T beta, const T* a, const T* b, const T* bias, T* c, u64 batch, u64 m, u64 n,
                           u64 k, GemmStrides sa, GemmStrides sb, u64 sc_batch, u64 sc_row) {
    const u64 mn = m * n;
    GRID_STRIDE(e, batch * mn) {
        const u64 bi = e / mn, i = (e % mn) / n, j = e % n;
        const T* ab = a + bi * sa.batch + i * sa.row;
        const T* bb = b + bi * sb.batch + j * sb.col;
        T acc = T(0);
        for (u64 p = 0; p < k; p++) acc += ab[p * sa.col] * bb[p * sb.row];
        T* cij = c + bi * sc_batch + i * sc_row + j;
        *cij = with_start(beta, cij, bias, j, acc);
    }
}

#define TILE_M 64
#define TILE_N 64
#define TILE_K 16
#define THREADS_X 32                 // threads along n (a warp); each owns columns tx + 32·q
#define THREADS_Y 8                  // threads along m; each owns rows ty + 8·r
#define REG_N (TILE_N / THREADS_X)   // 2 columns per thread
#define REG_M (TILE_M / THREADS_Y)   // 8 rows per thread

// One padding element per shared-memory row: when the operand is contiguous along p
// (row-major A, or B read along k), consecutive threads write s[p][r], s[p+1][r], …,
// which without padding lie ROWS words apart, all in one bank (a 16-way conflict); with
// ROWS + 1 words a row they fall in 16 different banks.
#define PAD 1

// Loads the (rows × TILE_K) block at (r0, p0) of X(r, p) = x[r·rs + p·cs] into
// s[p][r] (zero outside rows × k). Consecutive threads walk the unit-stride side.
template <typename T, int ROWS>
__device__ __forceinline__ void load_tile(T (*s)[ROWS + PAD], const T* x, u64 rs, u64 cs, u64 rows, u64 k,
                                          u64 r0, u64 p0, int tid) {
    const bool along_p = cs == 1 && rs != 1;
    for (int e = tid; e < ROWS * TILE_K; e += THREADS_X * THREADS_Y) {
        const int rr = along_p ? e / TILE_K : e % ROWS;
        const int pp = along_p ? e % TILE_K : e / ROWS;
        const u64 r = r0 + rr, p = p0 + pp;
        s[pp][rr] = (r < rows && p < k) ? x[r * rs + p * cs] : T(0);
    }
}

template <typename T>
__device__ void gemm_tiled(T beta, const T* a, const T* b, const T* bias, T* c, u64 batch, u64 m, u64 n,
                           u64 k, GemmStrides sa, GemmStrides sb, u64 sc_batch, u64 sc_row) {
    __shared__ T As[TILE_K][TILE_M + PAD]; // As[p][i] = A(i0 + i, p0 + p)
    __shared__ T Bs[TILE_K][TILE_N + PAD]; // Bs[p][j] = B(p0 + p, j0 + j)
    const int tx = threadIdx.x, ty = threadIdx.y, tid = ty * THREADS_X + tx;
    const u64 tiles_n = (n + TILE_N - 1) / TILE_N, tiles_m = (m + TILE_M - 1) / TILE_M;
    for (u64 bi = blockIdx.z; bi < batch; bi += gridDim.z)
        for (u64 tm = blockIdx.y; tm < tiles_m; tm += gridDim.y)
            for (u64 tn = blockIdx.x; tn < tiles_n; tn += gridDim.x) {
                const u64 i0 = tm * TILE_M, j0 = tn * TILE_N;
                const T* ab = a + bi * sa.batch;
                const T* bb = b + bi * sb.batch;
                T acc[REG_M][REG_N];
                for (int r = 0; r < REG_M; r++)
                    for (int q = 0; q < REG_N; q++) acc[r][q] = T(0);
                for (u64 p0 = 0; p0 < k; p0 += TILE_K) {
                    // A(i, p) rows i, B read as Bᵀ(j, p) = B(p, j): rows j
                    load_tile<T, TILE_M>(As, ab, sa.row, sa.col, m, k, i0, p0, tid);
                    load_tile<T, TILE_N>(Bs, bb, sb.col, sb.row, n, k, j0, p0, tid);
                    __syncthreads();
#pragma unroll
                    for (int p = 0; p < TILE_K; p++) {
                        T av[REG_M], bv[REG_N];
#pragma unroll
                        for (int r = 0; r < REG_M; r++) av[r] = As[p][ty + THREADS_Y * r];
#pragma unroll
                        for (int q = 0; q < REG_N; q++) bv[q] = Bs[p][tx + THREADS_X * q];
#pragma unroll
                        for (int r = 0; r < REG_M; r++)
#pragma unroll
                            for (int q = 0; q < REG_N; q++) acc[r][q] += av[r] * bv[q];
                    }
                    __syncthreads(); // the tiles are overwritten next round
                }
                T* cb = c + bi * sc_batch;
                for (int r = 0; r < REG_M; r++) {
                    const u64 i = i0 + ty + THREADS_Y * r;
                    if (i >= m) continue;
                    for (int q = 0; q < REG_N; q++) {
                        const u64 j = j0 + tx + THREADS_X * q;
                        if (j >= n) continue;
                        T* cij = cb + i * sc_row + j;
                        *cij = with_start(beta, cij, bias, j, acc[r][q]);
                    }
                }
            }
}

#define GEMM(T, S)                                                                                        \
    extern "C" __global__ void gemm_naive_##S(T beta, const T* a, const T* b, const T* bias, T* c,        \
                                              u64 batch, u64 m, u64 n, u64 k, u64 sa_batch, u64 sa_row,   \
                                              u64 sa_col, u64 sb_batch, u64 sb_row, u64 sb_col,           \
                                              u64 sc_batch, u64 sc_row) {                                 \
        gemm_naive<T>(beta, a, b, bias, c, batch, m, n, k, GemmStrides{sa_batch, sa_row, sa_col},         \
                      GemmStrides{sb_batch, sb_row, sb_col}, sc_batch, sc_row);                           \
    }                                                                                                     \
    extern "C" __global__ void __launch_bounds__(256)                                                     \
        gemm_tiled_##S(T beta, const T* a, const T* b, const T* bias, T* c, u64 batch, u64 m, u64 n,      \
                       u64 k, u64 sa_batch, u64 sa_row, u64 sa_col, u64 sb_batch, u64 sb_row,             \
                       u64 sb_col, u64 sc_batch, u64 sc_row) {                                            \
        gemm_tiled<T>(beta, a, b, bias, c, batch, m, n, k, GemmStrides{sa_batch, sa_row, sa_col},         \
                      GemmStrides{sb_batch, sb_row, sb_col}, sc_batch, sc_row);                           \
    }
FOR_F32_F64(GEMM)
