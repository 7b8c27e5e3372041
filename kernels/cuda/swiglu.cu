/* swiglu.cu — the MLP's gate: silu(gate) * up from the gate|up rows of one GEMM, into f16
 * and/or int8 with a per-row scale (fused dynamic quantization for W8A8). The gate|up rows
 * are f16, or the int32 product of a W8A8 GEMM dequantized here, which saves a pass that
 * writes them as f16 and reads them back. */
#include "cuda_common.cuh"

/* Row r's gate and up at column i, from f16 rows [T, 2I]. */
struct gu_f16 {
    const uint16_t *gu;
    int I;
    __device__ float gate(size_t r, int i) const { return qrr__h2f(gu[r * 2 * I + i]); }
    __device__ float up(size_t r, int i) const { return qrr__h2f(gu[r * 2 * I + I + i]); }
};

/* The same from an int8 GEMM's int32 product [T, 2I], row scale sx and column scales sw. */
struct gu_i32 {
    const int32_t *acc;
    const float *sw;
    int I;
    float sx; /* this row's scale, read once before the row's output scale may overwrite it */
    __device__ float gate(size_t r, int i) const { return (float)acc[r * 2 * I + i] * sx * sw[i]; }
    __device__ float up(size_t r, int i) const
    {
        return (float)acc[r * 2 * I + I + i] * sx * sw[I + i];
    }
};

template <class GU>
static __device__ __forceinline__ float swiglu_at(const GU &in, size_t r, int i)
{
    const float a = in.gate(r, i);
    return a / (1.0f + expf(-a)) * in.up(r, i);
}

template <class GU>
static __device__ void swiglu_row(const GU &in, size_t r, int I, uint16_t *out16, int8_t *out8,
                                  float *os)
{
    __shared__ float red[32];
    float amax = 0.0f;
    for (int i = threadIdx.x; i < I; i += blockDim.x) {
        float v = swiglu_at(in, r, i);
        if (out16) out16[r * I + i] = qrr__f2h(v);
        amax = qrr__amax_add(amax, v);
    }
    if (!out8) return;
    amax = qrr__block_reduce(amax, red, 1);
    const float s = qrr__row_scale(amax);
    for (int i = threadIdx.x; i < I; i += blockDim.x)
        out8[r * I + i] = (int8_t)fminf(127.0f, fmaxf(-127.0f, rintf(swiglu_at(in, r, i) / s)));
    if (threadIdx.x == 0) os[r] = s;
}

static __global__ void swiglu_kernel(const uint16_t *gu, int I, uint16_t *out16, int8_t *out8,
                                     float *os)
{
    swiglu_row(gu_f16{gu, I}, blockIdx.x, I, out16, out8, os);
}

/* sx may be os: each block reads its row's scale before the reduction that precedes the
 * write of the new one. */
static __global__ void swiglu_i32_kernel(const int32_t *acc, const float *sx, const float *sw,
                                         int I, uint16_t *out16, int8_t *out8, float *os)
{
    const float s = sx[blockIdx.x];
    swiglu_row(gu_i32{acc, sw, I, s}, blockIdx.x, I, out16, out8, os);
}

extern "C" int qrr_cuda_swiglu(const uint16_t *gu, int T, int I, uint16_t *out16, int8_t *out8,
                               float *os, qrr_cuda_stream st)
{
    if (T <= 0) return 0;
    if (out8 && !os) return (int)cudaErrorInvalidValue;
    swiglu_kernel<<<(unsigned)T, 256, 0, (cudaStream_t)st>>>(gu, I, out16, out8, os);
    return qrr__launched();
}

extern "C" int qrr_cuda_swiglu_i32(const int32_t *acc, const float *sx, const float *sw, int T,
                                   int I, uint16_t *out16, int8_t *out8, float *os,
                                   qrr_cuda_stream st)
{
    if (T <= 0) return 0;
    if ((out8 && !os) || (!out8 && !out16)) return (int)cudaErrorInvalidValue;
    swiglu_i32_kernel<<<(unsigned)T, 256, 0, (cudaStream_t)st>>>(acc, sx, sw, I, out16, out8,
                                                                  os);
    return qrr__launched();
}
