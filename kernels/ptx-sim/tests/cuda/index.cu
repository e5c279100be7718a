// Integer index math: 32/64-bit div/rem, mul.wide, mad, shifts, min/max, selp; loops,
// early returns, divergent branches.

// A strided gather: out[i] = x[(i / cols) * stride + (i % cols)] with 64-bit indexing.
extern "C" __global__ void gather2d_f32(const float* x, float* out, long rows, long cols, long stride) {
    long i = blockIdx.x * (long)blockDim.x + threadIdx.x;
    if (i >= rows * cols) return;
    long r = i / cols, c = i % cols;
    out[i] = x[r * stride + c];
}

// 32-bit integer mix: results per thread.
extern "C" __global__ void int_mix(const int* a, const unsigned* b, int* out, int n) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n) return;
    int x = a[i];
    unsigned y = b[i];
    int d = (y % 7u) + 1;
    out[i * 8 + 0] = x / d;
    out[i * 8 + 1] = x % d;
    out[i * 8 + 2] = (int)(y >> (i & 31)) ^ (x << 3);
    out[i * 8 + 3] = max(x, (int)y) + min(x, -5);
    out[i * 8 + 4] = (int)((unsigned)max((unsigned)x, y) / 3u);
    out[i * 8 + 5] = x > 0 ? x * 3 + 1 : x / 2;    // divergent
    out[i * 8 + 6] = __popc(y) + __clz(x) + __brev(y) % 97;
    long long w = (long long)x * (long long)(int)y;  // mul.wide
    out[i * 8 + 7] = (int)(w >> 17);
}

// A data-dependent loop: Collatz steps (divergent trip counts within a warp).
extern "C" __global__ void collatz(const unsigned* x, unsigned* steps, int n) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n) return;
    unsigned long long v = x[i];
    unsigned s = 0;
    while (v != 1 && s < 1000) {
        v = (v & 1) ? 3 * v + 1 : v >> 1;
        s++;
    }
    steps[i] = s;
}

// 64-bit unsigned div/rem and a 3-D launch: out[z][y][x] = hash of coordinates.
extern "C" __global__ void grid3d(unsigned long long* out, unsigned long long mod) {
    unsigned x = blockIdx.x * blockDim.x + threadIdx.x;
    unsigned y = blockIdx.y * blockDim.y + threadIdx.y;
    unsigned z = blockIdx.z * blockDim.z + threadIdx.z;
    unsigned nx = gridDim.x * blockDim.x, ny = gridDim.y * blockDim.y;
    unsigned long long id = ((unsigned long long)z * ny + y) * nx + x;
    unsigned long long h = id * 0x9E3779B97F4A7C15ull;
    out[id] = (h % mod) + (h / mod) % 1000;
}
