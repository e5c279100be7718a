// ChaCha8 block function: rotates (shf.l.wrap), xor, add; one 64-byte block per thread.
__device__ __forceinline__ unsigned rotl(unsigned x, int n) { return (x << n) | (x >> (32 - n)); }
#define QR(a, b, c, d)                          \
    a += b; d ^= a; d = rotl(d, 16);            \
    c += d; b ^= c; b = rotl(b, 12);            \
    a += b; d ^= a; d = rotl(d, 8);             \
    c += d; b ^= c; b = rotl(b, 7);

// key: 8 words; out: 16 words per block index (counter = blockIdx*blockDim+tid); also the
// dropout-style uniform floats from the first four words.
extern "C" __global__ void chacha8(const unsigned* key, unsigned long long stream, unsigned* out, float* uniform, int nblocks) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= nblocks) return;
    unsigned s[16], x[16];
    s[0] = 0x61707865; s[1] = 0x3320646e; s[2] = 0x79622d32; s[3] = 0x6b206574;
    for (int k = 0; k < 8; k++) s[4 + k] = key[k];
    unsigned long long ctr = (unsigned long long)i;
    s[12] = (unsigned)ctr; s[13] = (unsigned)(ctr >> 32);
    s[14] = (unsigned)stream; s[15] = (unsigned)(stream >> 32);
    for (int k = 0; k < 16; k++) x[k] = s[k];
    for (int r = 0; r < 8; r += 2) {
        QR(x[0], x[4], x[8], x[12]) QR(x[1], x[5], x[9], x[13]) QR(x[2], x[6], x[10], x[14]) QR(x[3], x[7], x[11], x[15])
        QR(x[0], x[5], x[10], x[15]) QR(x[1], x[6], x[11], x[12]) QR(x[2], x[7], x[8], x[13]) QR(x[3], x[4], x[9], x[14])
    }
    for (int k = 0; k < 16; k++) out[i * 16 + k] = x[k] + s[k];
    for (int k = 0; k < 4; k++) uniform[i * 4 + k] = (float)((x[k] + s[k]) >> 8) * (1.0f / 16777216.0f);
    // byte shuffle (prmt): swap bytes of word 0.
    out[i * 16] = __byte_perm(out[i * 16], 0, 0x0123);
}
