// Warp and block reductions: shuffles, votes, shared memory, barriers, atomics.

template <typename T> __device__ T warp_sum(T v) {
    for (int o = 16; o > 0; o >>= 1) v += __shfl_down_sync(0xffffffffu, v, o);
    return v;
}
template <typename T> __device__ T warp_max_xor(T v) {
    for (int o = 16; o > 0; o >>= 1) v = max(v, __shfl_xor_sync(0xffffffffu, v, o));
    return v;
}

// Row sums: one block per row, blockDim a multiple of 32; warp partials in dynamic shared memory.
template <typename T>
__device__ void row_sum(const T* x, T* out, int cols) {
    extern __shared__ unsigned char smem_raw[];
    T* partial = reinterpret_cast<T*>(smem_raw);
    const T* row = x + (long)blockIdx.x * cols;
    T acc = 0;
    for (int c = threadIdx.x; c < cols; c += blockDim.x) acc += row[c];
    acc = warp_sum(acc);
    int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
    if (lane == 0) partial[warp] = acc;
    __syncthreads();
    if (warp == 0) {
        int nw = blockDim.x / 32;
        T v = lane < nw ? partial[lane] : T(0);
        v = warp_sum(v);
        if (lane == 0) out[blockIdx.x] = v;
    }
}
extern "C" __global__ void row_sum_f32(const float* x, float* out, int cols) { row_sum(x, out, cols); }
extern "C" __global__ void row_sum_f64(const double* x, double* out, int cols) { row_sum(x, out, cols); }

// Row max with xor shuffles and a static shared array (blockDim.x == 256).
template <typename T>
__device__ void row_max(const T* x, T* out, int cols) {
    __shared__ T partial[8];
    const T* row = x + (long)blockIdx.x * cols;
    T m = -1e30;
    for (int c = threadIdx.x; c < cols; c += blockDim.x) m = max(m, row[c]);
    m = warp_max_xor(m);
    if (threadIdx.x % 32 == 0) partial[threadIdx.x / 32] = m;
    __syncthreads();
    if (threadIdx.x < 32) {
        T v = threadIdx.x < 8 ? partial[threadIdx.x] : T(-1e30);
        v = warp_max_xor(v);
        if (threadIdx.x == 0) out[blockIdx.x] = v;
    }
}
extern "C" __global__ void row_max_f32(const float* x, float* out, int cols) { row_max(x, out, cols); }
extern "C" __global__ void row_max_f64(const double* x, double* out, int cols) { row_max(x, out, cols); }

// Broadcast (shfl idx), inclusive scan (shfl up), ballot and all: one warp per 32 elements.
extern "C" __global__ void warp_ops(const int* x, int* out, unsigned* votes, int n) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    int lane = threadIdx.x & 31;
    int v = i < n ? x[i] : 0;
    int first = __shfl_sync(0xffffffffu, v, 0);
    int scan = v;
    for (int o = 1; o < 32; o <<= 1) {
        int t = __shfl_up_sync(0xffffffffu, scan, o);
        if (lane >= o) scan += t;
    }
    unsigned pos = __ballot_sync(0xffffffffu, v > 0);
    int all = __all_sync(0xffffffffu, v > -100);
    int any = __any_sync(0xffffffffu, v == 7);
    if (i < n) {
        out[i * 2 + 0] = first;
        out[i * 2 + 1] = scan;
    }
    if (lane == 0) votes[(i / 32) * 3 + 0] = pos, votes[(i / 32) * 3 + 1] = all, votes[(i / 32) * 3 + 2] = any;
}

// Histogram: shared-memory atomics per block, then global atomics; and a global f32 atomic sum.
extern "C" __global__ void histogram(const unsigned* x, unsigned* hist, float* total, int n, int bins) {
    extern __shared__ unsigned local_hist[];
    for (int b = threadIdx.x; b < bins; b += blockDim.x) local_hist[b] = 0;
    __syncthreads();
    float s = 0.f;
    for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < n; i += gridDim.x * blockDim.x) {
        atomicAdd(&local_hist[x[i] % bins], 1u);
        s += (float)(x[i] & 15);
    }
    __syncthreads();
    for (int b = threadIdx.x; b < bins; b += blockDim.x) atomicAdd(&hist[b], local_hist[b]);
    atomicAdd(total, s);
}

// Shared-memory f32 atomics and atomicMax/atomicCAS on global.
extern "C" __global__ void atomics_misc(const float* x, float* block_sums, int* gmax, unsigned* cas_count, int n) {
    __shared__ float s;
    if (threadIdx.x == 0) s = 0.f;
    __syncthreads();
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) {
        atomicAdd(&s, x[i]);
        atomicMax(gmax, (int)(x[i] * 100.f));
        unsigned old = *cas_count, assumed;
        do { assumed = old; old = atomicCAS(cas_count, assumed, assumed + 1); } while (old != assumed);
    }
    __syncthreads();
    if (threadIdx.x == 0) block_sums[blockIdx.x] = s;
}
