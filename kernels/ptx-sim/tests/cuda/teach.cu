// For the trace example: a block of 64 threads sums up to 64 numbers. Warp shuffles
// first, then one partial per warp through shared memory and a barrier.
extern "C" __global__ void block_sum(const float* x, float* out, int n) {
    __shared__ float warp_sums[2];
    int t = threadIdx.x;
    float v = t < n ? x[t] : 0.0f;  // threads past n read nothing
    for (int o = 16; o > 0; o >>= 1) v += __shfl_down_sync(0xffffffffu, v, o);
    if (t % 32 == 0) warp_sums[t / 32] = v;  // one lane per warp writes: divergence
    __syncthreads();
    if (t == 0) out[0] = warp_sums[0] + warp_sums[1];
}
