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
    /* columns 4j .. 4j + 3 (I a multiple of 4, gu 8-byte aligned) */
    __device__ float4 gate4(size_t r, int j) const
    {
        return qrr__h4_to_f4(reinterpret_cast<const uint2 *>(gu + r * 2 * I)[j]);
    }
    __device__ float4 up4(size_t r, int j) const
    {
        return qrr__h4_to_f4(reinterpret_cast<const uint2 *>(gu + r * 2 * I + I)[j]);
    }
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
    /* columns 4j .. 4j + 3 (I a multiple of 4, acc and sw 16-byte aligned) */
    __device__ float4 gate4(size_t r, int j) const { return at4(r * 2 * I, 0, j); }
    __device__ float4 up4(size_t r, int j) const { return at4(r * 2 * I, I, j); }
    __device__ float4 at4(size_t row0, int col0, int j) const
    {
        return qrr__dequant4(reinterpret_cast<const int4 *>(acc + row0 + col0)[j], sx,
                             reinterpret_cast<const float4 *>(sw + col0)[j]);
    }
};

static __device__ __forceinline__ float swiglu(float gate, float up)
{
    return gate / (1.0f + expf(-gate)) * up;
}

template <class GU>
static __device__ __forceinline__ float swiglu_at(const GU &in, size_t r, int i)
{
    return swiglu(in.gate(r, i), in.up(r, i));
}

/* Row r held in registers (cuda_common.cuh): one read of gate|up, vector stores. */
template <int V, class GU>
static __device__ void swiglu_row_regs(const GU &in, size_t r, int I, uint16_t *out16,
                                       int8_t *out8, float *os)
{
    __shared__ float red[32];
    const int n4 = I / 4;
    float4 v[V];
    float amax = 0.0f;
#pragma unroll
    for (int k = 0; k < V; k++) {
        const int j = threadIdx.x + k * blockDim.x;
        v[k] = make_float4(0.0f, 0.0f, 0.0f, 0.0f);
        if (j >= n4) continue;
        const float4 g = in.gate4(r, j), u = in.up4(r, j);
        v[k] = make_float4(swiglu(g.x, u.x), swiglu(g.y, u.y), swiglu(g.z, u.z), swiglu(g.w, u.w));
        if (out16) reinterpret_cast<uint2 *>(out16 + r * I)[j] = qrr__f4_to_h4(v[k]);
        amax = qrr__amax_add4(amax, v[k]);
    }
    if (out8) qrr__quantize_regs(v, n4, amax, red, reinterpret_cast<char4 *>(out8 + r * I), os + r);
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
        out8[r * I + i] = qrr__q8(swiglu_at(in, r, i), s);
    if (threadIdx.x == 0) os[r] = s;
}

static __global__ void swiglu_kernel(const uint16_t *gu, int I, uint16_t *out16, int8_t *out8,
                                     float *os)
{
    swiglu_row(gu_f16{gu, I}, blockIdx.x, I, out16, out8, os);
}

template <int V>
static __global__ void swiglu_regs_kernel(const uint16_t *gu, int I, uint16_t *out16,
                                          int8_t *out8, float *os)
{
    swiglu_row_regs<V>(gu_f16{gu, I}, blockIdx.x, I, out16, out8, os);
}

/* sx may be os: each block reads its row's scale before the reduction that precedes the
 * write of the new one. */
static __global__ void swiglu_i32_kernel(const int32_t *acc, const float *sx, const float *sw,
                                         int I, uint16_t *out16, int8_t *out8, float *os)
{
    const float s = sx[blockIdx.x];
    swiglu_row(gu_i32{acc, sw, I, s}, blockIdx.x, I, out16, out8, os);
}

template <int V>
static __global__ void swiglu_i32_regs_kernel(const int32_t *acc, const float *sx,
                                              const float *sw, int I, uint16_t *out16,
                                              int8_t *out8, float *os)
{
    const float s = sx[blockIdx.x];
    swiglu_row_regs<V>(gu_i32{acc, sw, I, s}, blockIdx.x, I, out16, out8, os);
}

/* The register kernels' block size, or 0 when the scalar kernels must run. */
static unsigned regs_threads(int I, const void *in, size_t in_align, const uint16_t *out16,
                             const int8_t *out8)
{
    if (!qrr__aligned(in, in_align) || !qrr__aligned(out16, 8) || !qrr__aligned(out8, 4))
        return 0;
    return qrr__row_threads(I);
}

extern "C" int qrr_cuda_swiglu(const uint16_t *gu, int T, int I, uint16_t *out16, int8_t *out8,
                               float *os, qrr_cuda_stream st)
{
    if (T <= 0) return 0;
    if (out8 && !os) return (int)cudaErrorInvalidValue;
    cudaStream_t s = (cudaStream_t)st;
    const unsigned threads = regs_threads(I, gu, 8, out16, out8);
    if (threads)
        QRR__ROW_LAUNCH(swiglu_regs_kernel, qrr__row_chunks(I, threads), (unsigned)T,
                        threads, s, gu, I, out16, out8, os);
    else
        swiglu_kernel<<<(unsigned)T, 256, 0, s>>>(gu, I, out16, out8, os);
    return qrr__launched();
}

extern "C" int qrr_cuda_swiglu_i32(const int32_t *acc, const float *sx, const float *sw, int T,
                                   int I, uint16_t *out16, int8_t *out8, float *os,
                                   qrr_cuda_stream st)
{
    if (T <= 0) return 0;
    if ((out8 && !os) || (!out8 && !out16)) return (int)cudaErrorInvalidValue;
    cudaStream_t s = (cudaStream_t)st;
    const unsigned threads = qrr__aligned(sw, 16) ? regs_threads(I, acc, 16, out16, out8) : 0;
    if (threads)
        QRR__ROW_LAUNCH(swiglu_i32_regs_kernel, qrr__row_chunks(I, threads), (unsigned)T,
                        threads, s, acc, sx, sw, I, out16, out8, os);
    else
        swiglu_i32_kernel<<<(unsigned)T, 256, 0, s>>>(acc, sx, sw, I, out16, out8, os);
    return qrr__launched();
}
