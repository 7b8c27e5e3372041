/* rmsnorm.cu — RMSNorm of fp32 rows (the residual stream) into the GEMMs' input types: f16,
 * int8 with a per-row scale (fused dynamic quantization for W8A8), and/or fp32. */
#include "cuda_common.cuh"

static __global__ void rmsnorm_kernel(const float *x, const float *w, int n, float eps,
                                      uint16_t *y16, int8_t *y8, float *ys, float *y32)
{
    __shared__ float red[32];
    const size_t r = blockIdx.x;
    const float *xr = x + r * n;
    float ss = 0.0f;
    for (int j = threadIdx.x; j < n; j += blockDim.x) ss += xr[j] * xr[j];
    ss = qrr__block_reduce(ss, red, 0);
    const float inv = 1.0f / sqrtf(ss / (float)n + eps);
    float amax = 0.0f;
    for (int j = threadIdx.x; j < n; j += blockDim.x) {
        float v = xr[j] * inv * w[j];
        if (y16) y16[r * n + j] = qrr__f2h(v);
        if (y32) y32[r * n + j] = v;
        amax = qrr__amax_add(amax, v);
    }
    if (!y8) return;
    amax = qrr__block_reduce(amax, red, 1);
    const float s = qrr__row_scale(amax);
    for (int j = threadIdx.x; j < n; j += blockDim.x) {
        float v = xr[j] * inv * w[j];
        y8[r * n + j] = (int8_t)fminf(127.0f, fmaxf(-127.0f, rintf(v / s)));
    }
    if (threadIdx.x == 0) ys[r] = s;
}

extern "C" int qrr_cuda_rmsnorm(const float *x, const float *w, int rows, int n, float eps,
                                uint16_t *y16, int8_t *y8, float *ys, float *y32,
                                qrr_cuda_stream st)
{
    if (rows <= 0) return 0;
    if (y8 && !ys) return (int)cudaErrorInvalidValue;
    unsigned threads = n >= 1024 ? 256 : 128;
    rmsnorm_kernel<<<(unsigned)rows, threads, 0, (cudaStream_t)st>>>(x, w, n, eps, y16, y8, ys,
                                                                      y32);
    return qrr__launched();
}
