// Planted faults: each kernel has one bug the simulator must catch.

// Writes one element past the end of `out` (n elements) from the last thread.
extern "C" __global__ void oob_write(float* out, int n) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i <= n) out[i] = 1.0f;
}

// Threads with odd index return before the barrier the others wait at.
extern "C" __global__ void barrier_skip(float* out) {
    __shared__ float s[256];
    if (threadIdx.x & 1) return;
    s[threadIdx.x] = threadIdx.x;
    __syncthreads();
    out[threadIdx.x] = s[(threadIdx.x + 2) % blockDim.x];
}

// Only the low 16 lanes take the branch, but the shuffle names the whole warp.
extern "C" __global__ void shuffle_wrong_mask(const float* x, float* out) {
    float v = x[threadIdx.x];
    if (threadIdx.x % 32 < 16) v += __shfl_down_sync(0xffffffffu, v, 1);
    out[threadIdx.x] = v;
}

// Every thread writes s[0] with no barrier or atomic between the writes.
extern "C" __global__ void shared_race(float* out) {
    __shared__ float s[1];
    s[0] = threadIdx.x;
    __syncthreads();
    out[threadIdx.x] = s[0];
}

// Reads a neighbour's shared slot without a barrier after the writes (read/write race).
extern "C" __global__ void shared_missing_barrier(float* out) {
    __shared__ float s[128];
    s[threadIdx.x] = threadIdx.x;
    out[threadIdx.x] = s[(threadIdx.x + 64) % 128];
}

// Misaligned 4-byte load from a byte offset.
extern "C" __global__ void misaligned(const char* p, float* out) {
    out[threadIdx.x] = *reinterpret_cast<const float*>(p + 1 + threadIdx.x * 4);
}

// Lanes of one warp hand each other values through shared memory with no __syncwarp()
// between the writes and the reads: warp-synchronous code, which Volta and later GPUs
// do not honour (a warp's threads need not run in step).
extern "C" __global__ void warp_exchange_unsynced(float* out) {
    __shared__ float s[32];
    s[threadIdx.x] = threadIdx.x;
    out[threadIdx.x] = s[threadIdx.x ^ 1];
}

// The same with __syncwarp() between: correct on every GPU (not a fault; the control).
extern "C" __global__ void warp_exchange_synced(float* out) {
    __shared__ float s[32];
    s[threadIdx.x] = threadIdx.x;
    __syncwarp();
    float v = s[threadIdx.x ^ 1];
    __syncwarp();
    s[threadIdx.x] = 2.0f * v;
    __syncwarp();
    out[threadIdx.x] = s[threadIdx.x ^ 1];
}

// Each lane reads the next lane's slot and then overwrites its own with no __syncwarp()
// between: the previous lane may not have read the old value yet (write after read).
extern "C" __global__ void warp_overwrite_unsynced(float* out) {
    __shared__ float s[32];
    s[threadIdx.x] = threadIdx.x;
    __syncwarp();
    float v = s[(threadIdx.x + 1) % 32];
    s[threadIdx.x] = 2.0f * v;
    __syncwarp();
    out[threadIdx.x] = s[threadIdx.x];
}

// Half the slots are written, every slot is read: on a GPU the other half holds whatever an
// earlier block left in that shared memory.
extern "C" __global__ void shared_read_unwritten(float* out) {
    __shared__ float s[64];
    if (threadIdx.x < 32) s[threadIdx.x] = threadIdx.x;
    __syncthreads();
    out[threadIdx.x] = s[threadIdx.x];
}

// Every block writes out[threadIdx.x]: each output has as many owners as the grid has blocks,
// and which write lands last depends on the order the blocks happen to run in.
extern "C" __global__ void output_of_every_block(float* out) {
    out[threadIdx.x] = blockIdx.x;
}

// Block 1 reads what block 0 wrote in the same launch: blocks run in no order a kernel can
// rely on, so it may read the old values.
extern "C" __global__ void reads_another_blocks_output(float* buf, float* out) {
    if (blockIdx.x == 0) buf[threadIdx.x] = threadIdx.x;
    else out[threadIdx.x] = buf[threadIdx.x];
}

// The other order: block 0 reads what block 1 then writes (blocks run in no order, so the
// read may see either value).
extern "C" __global__ void overwrites_what_another_block_read(float* buf, float* out) {
    if (blockIdx.x == 1) buf[threadIdx.x] = threadIdx.x;
    else out[threadIdx.x] = buf[threadIdx.x];
}

// Thread 0 writes out[0] and thread 32, of the next warp, reads it with no barrier between:
// within a block, global memory needs a barrier as shared memory does.
extern "C" __global__ void global_missing_barrier(float* out) {
    if (threadIdx.x == 0) out[0] = 1.0f;
    if (threadIdx.x == 32) out[1] = out[0];
}

// Thread 0 reads out[0] and thread 32, of the next warp, then overwrites it with no barrier
// between: thread 0 may read either value.
extern "C" __global__ void global_write_after_read(float* out) {
    if (threadIdx.x == 0) out[1] = out[0];
    if (threadIdx.x == 32) out[0] = 2.0f;
}

// Lanes 0 and 1 of one warp hand a value through global memory with no __syncwarp():
// since Volta a warp's lanes need not run in step.
extern "C" __global__ void global_missing_syncwarp(float* out) {
    if (threadIdx.x == 0) out[0] = 1.0f;
    if (threadIdx.x == 1) out[1] = out[0];
}

// The same with __syncwarp() between (not a fault; the control): out[1] = 1.
extern "C" __global__ void global_with_syncwarp(float* out) {
    if (threadIdx.x == 0) out[0] = 1.0f;
    __syncwarp();
    if (threadIdx.x == 1) out[1] = out[0];
}

// The same with __syncthreads() between (not a fault; the control): out[1] = 1.
extern "C" __global__ void global_with_barrier(float* out) {
    if (threadIdx.x == 0) out[0] = 1.0f;
    __syncthreads();
    if (threadIdx.x == 32) out[1] = out[0];
}
