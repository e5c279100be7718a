// Tiled SGEMM: C (M,N) = A (M,K) · B (K,N), row-major. 64×64 block tile, 16-deep K tile,
// 256 threads, each computing a 4×4 register tile; float4 loads when aligned.
#define BM 64
#define BN 64
#define BK 16
extern "C" __global__ void __launch_bounds__(256) sgemm_tiled(const float* A, const float* B, float* C, int M, int N, int K) {
    __shared__ float As[BK][BM];
    __shared__ float Bs[BK][BN];
    int tx = threadIdx.x % 16, ty = threadIdx.x / 16;
    int row0 = blockIdx.y * BM, col0 = blockIdx.x * BN;
    float acc[4][4] = {};
    for (int k0 = 0; k0 < K; k0 += BK) {
        // A tile: 64 rows × 16 k = 1024 floats, 4 per thread.
        for (int l = threadIdx.x; l < BM * BK; l += 256) {
            int r = l / BK, k = l % BK;
            int gr = row0 + r, gk = k0 + k;
            As[k][r] = (gr < M && gk < K) ? A[(long)gr * K + gk] : 0.f;
        }
        // B tile: 16 k × 64 cols, as float4 when the row is inside and aligned.
        {
            int k = threadIdx.x / 16, c = (threadIdx.x % 16) * 4;
            int gk = k0 + k, gc = col0 + c;
            if (gk < K && gc + 3 < N && (N % 4) == 0) {
                float4 v = *reinterpret_cast<const float4*>(&B[(long)gk * N + gc]);
                Bs[k][c] = v.x; Bs[k][c + 1] = v.y; Bs[k][c + 2] = v.z; Bs[k][c + 3] = v.w;
            } else {
                for (int j = 0; j < 4; j++)
                    Bs[k][c + j] = (gk < K && gc + j < N) ? B[(long)gk * N + gc + j] : 0.f;
            }
        }
        __syncthreads();
#pragma unroll
        for (int k = 0; k < BK; k++) {
            float a[4], b[4];
#pragma unroll
            for (int i = 0; i < 4; i++) a[i] = As[k][ty * 4 + i];
            float4 bv = *reinterpret_cast<const float4*>(&Bs[k][tx * 4]);
            b[0] = bv.x; b[1] = bv.y; b[2] = bv.z; b[3] = bv.w;
#pragma unroll
            for (int i = 0; i < 4; i++)
#pragma unroll
                for (int j = 0; j < 4; j++) acc[i][j] = fmaf(a[i], b[j], acc[i][j]);
        }
        __syncthreads();
    }
    for (int i = 0; i < 4; i++)
        for (int j = 0; j < 4; j++) {
            int r = row0 + ty * 4 + i, c = col0 + tx * 4 + j;
            if (r < M && c < N) C[(long)r * N + c] = acc[i][j];
        }
}
