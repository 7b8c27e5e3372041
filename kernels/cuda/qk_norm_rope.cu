/* qk_norm_rope.cu — per-head RMSNorm of the queries and keys, then rotary position
 * embedding (rotate-half: pairs i and i + D/2), in place on the f16 q|k|v rows of a GEMM. */
#include "cuda_common.cuh"

/* One warp per (token, head); heads 0..nq-1 are queries, nq..nq+nk-1 keys. */
static __global__ void qk_norm_rope_kernel(uint16_t *qkv, int ld, int T, int nq, int nk, int D,
                                           const float *qw, const float *kw, float eps,
                                           const int *pos, const float *inv_freq)
{
    const int warps = blockDim.x / QRR_WARP;
    const long long item = (long long)blockIdx.x * warps + threadIdx.x / QRR_WARP;
    const int lane = threadIdx.x % QRR_WARP;
    const int heads = nq + nk;
    if (item >= (long long)T * heads) return;
    const int t = (int)(item / heads), h = (int)(item % heads);
    uint16_t *x = qkv + (size_t)t * ld + (size_t)h * D;
    const float *w = h < nq ? qw : kw;
    const int half = D / 2;
    float ss = 0.0f;
    for (int i = lane; i < D; i += QRR_WARP) {
        float v = qrr__h2f(x[i]);
        ss += v * v;
    }
    ss = qrr__warp_sum(ss);
    const float inv = 1.0f / sqrtf(ss / (float)D + eps);
    const float p = (float)pos[t];
    for (int i = lane; i < half; i += QRR_WARP) {
        float a = qrr__h2f(x[i]) * inv * w[i];
        float b = qrr__h2f(x[i + half]) * inv * w[i + half];
        float s, c;
        sincosf(p * inv_freq[i], &s, &c);
        x[i] = qrr__f2h(a * c - b * s);
        x[i + half] = qrr__f2h(b * c + a * s);
    }
}

extern "C" int qrr_cuda_qk_norm_rope(uint16_t *qkv, int ld, int T, int nq, int nk, int D,
                                     const float *qw, const float *kw, float eps,
                                     const int *pos, const float *inv_freq, qrr_cuda_stream st)
{
    if (T <= 0 || nq + nk <= 0) return 0;
    if (D % 2) return (int)cudaErrorInvalidValue;
    const unsigned threads = 256, per_block = threads / QRR_WARP;
    size_t items = (size_t)T * (size_t)(nq + nk);
    qk_norm_rope_kernel<<<qrr__blocks(items, per_block), threads, 0, (cudaStream_t)st>>>(
        qkv, ld, T, nq, nk, D, qw, kw, eps, pos, inv_freq);
    return qrr__launched();
}
