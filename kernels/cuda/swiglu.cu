/* swiglu.cu — the MLP's gate: silu(gate) * up from the f16 gate|up rows of one GEMM, into
 * f16 and/or int8 with a per-row scale (fused dynamic quantization for W8A8). */
#include "cuda_common.cuh"

static __device__ __forceinline__ float swiglu_at(const uint16_t *g, int I, int i)
{
    float a = qrr__h2f(g[i]), b = qrr__h2f(g[I + i]);
    return a / (1.0f + expf(-a)) * b;
}

static __global__ void swiglu_kernel(const uint16_t *gu, int I, uint16_t *out16, int8_t *out8,
                                     float *os)
{
    __shared__ float red[32];
    const size_t r = blockIdx.x;
    const uint16_t *g = gu + r * 2 * (size_t)I;
    float amax = 0.0f;
    for (int i = threadIdx.x; i < I; i += blockDim.x) {
        float v = swiglu_at(g, I, i);
        if (out16) out16[r * I + i] = qrr__f2h(v);
        amax = qrr__amax_add(amax, v);
    }
    if (!out8) return;
    amax = qrr__block_reduce(amax, red, 1);
    const float s = qrr__row_scale(amax);
    for (int i = threadIdx.x; i < I; i += blockDim.x)
        out8[r * I + i] = (int8_t)fminf(127.0f, fmaxf(-127.0f, rintf(swiglu_at(g, I, i) / s)));
    if (threadIdx.x == 0) os[r] = s;
}

extern "C" int qrr_cuda_swiglu(const uint16_t *gu, int T, int I, uint16_t *out16, int8_t *out8,
                               float *os, qrr_cuda_stream st)
{
    if (T <= 0) return 0;
    if (out8 && !os) return (int)cudaErrorInvalidValue;
    swiglu_kernel<<<(unsigned)T, 256, 0, (cudaStream_t)st>>>(gu, I, out16, out8, os);
    return qrr__launched();
}
