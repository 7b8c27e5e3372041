/* rmsnorm.cu — RMSNorm of fp32 rows (the residual stream) into the GEMMs' input types: f16,
 * int8 with a per-row scale (fused dynamic quantization for W8A8), and/or fp32. */
#include "cuda_common.cuh"

/* One block per row, held in registers (cuda_common.cuh): one read of x, vector stores.
 * With acc, the W8A8 product acc [rows, n] (row scales sx, column scales sw) is first added
 * into the row, which goes back to x_out (= x) before it is normalized. */
template <int V>
static __global__ void rmsnorm_regs_kernel(const float *x, const int32_t *acc, const float *sx,
                                           const float *sw, float *x_out, const float *w, int n,
                                           float eps, uint16_t *y16, int8_t *y8, float *ys,
                                           float *y32)
{
    __shared__ float red[32];
    const size_t r = blockIdx.x;
    const int n4 = n / 4;
    const float4 *xr = reinterpret_cast<const float4 *>(x + r * n);
    const float4 *w4 = reinterpret_cast<const float4 *>(w);
    const float s = acc ? sx[r] : 0.0f; /* read before ys[r], which may be sx[r], is written */
    float4 v[V];
    float ss = 0.0f;
#pragma unroll
    for (int k = 0; k < V; k++) {
        const int j = threadIdx.x + k * blockDim.x;
        v[k] = j < n4 ? xr[j] : make_float4(0.0f, 0.0f, 0.0f, 0.0f);
        if (acc && j < n4) {
            v[k] = qrr__add4(v[k], qrr__dequant4(reinterpret_cast<const int4 *>(acc + r * n)[j], s,
                                                 reinterpret_cast<const float4 *>(sw)[j]));
            reinterpret_cast<float4 *>(x_out + r * n)[j] = v[k];
        }
        ss += v[k].x * v[k].x + v[k].y * v[k].y + v[k].z * v[k].z + v[k].w * v[k].w;
    }
    ss = qrr__block_reduce(ss, red, 0);
    const float inv = 1.0f / sqrtf(ss / (float)n + eps);
    float amax = 0.0f;
#pragma unroll
    for (int k = 0; k < V; k++) {
        const int j = threadIdx.x + k * blockDim.x;
        if (j >= n4) continue;
        const float4 g = w4[j];
        v[k] = make_float4(v[k].x * inv * g.x, v[k].y * inv * g.y, v[k].z * inv * g.z,
                           v[k].w * inv * g.w);
        if (y16) reinterpret_cast<uint2 *>(y16 + r * n)[j] = qrr__f4_to_h4(v[k]);
        if (y32) reinterpret_cast<float4 *>(y32 + r * n)[j] = v[k];
        amax = qrr__amax_add4(amax, v[k]);
    }
    if (y8) qrr__quantize_regs(v, n4, amax, red, reinterpret_cast<char4 *>(y8 + r * n), ys + r);
}

/* Any width and alignment: two passes over the row. */
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
    for (int j = threadIdx.x; j < n; j += blockDim.x) y8[r * n + j] = qrr__q8(xr[j] * inv * w[j], s);
    if (threadIdx.x == 0) ys[r] = s;
}

/* The register kernel's block size for these rows and outputs, or 0 (scalar kernels). */
static unsigned regs_threads(const float *x, const float *w, int n, const uint16_t *y16,
                             const int8_t *y8, const float *y32)
{
    if (!qrr__aligned(x, 16) || !qrr__aligned(w, 16) || !qrr__aligned(y16, 8) ||
        !qrr__aligned(y8, 4) || !qrr__aligned(y32, 16))
        return 0;
    return qrr__row_threads(n);
}

extern "C" int qrr_cuda_rmsnorm(const float *x, const float *w, int rows, int n, float eps,
                                uint16_t *y16, int8_t *y8, float *ys, float *y32,
                                qrr_cuda_stream st)
{
    if (rows <= 0) return 0;
    if (y8 && !ys) return (int)cudaErrorInvalidValue;
    cudaStream_t s = (cudaStream_t)st;
    const unsigned threads = regs_threads(x, w, n, y16, y8, y32);
    if (threads)
        QRR__ROW_LAUNCH(rmsnorm_regs_kernel, qrr__row_chunks(n, threads), (unsigned)rows,
                        threads, s, x, (const int32_t *)NULL, (const float *)NULL,
                        (const float *)NULL, (float *)NULL, w, n, eps, y16, y8, ys, y32);
    else
        rmsnorm_kernel<<<(unsigned)rows, n >= 1024 ? 256 : 128, 0, s>>>(x, w, n, eps, y16, y8,
                                                                        ys, y32);
    return qrr__launched();
}

extern "C" int qrr_cuda_rmsnorm_add_i32(float *x, const int32_t *acc, const float *sx,
                                        const float *sw, const float *w, int rows, int n,
                                        float eps, uint16_t *y16, int8_t *y8, float *ys,
                                        float *y32, qrr_cuda_stream st)
{
    if (rows <= 0) return 0;
    if (y8 && !ys) return (int)cudaErrorInvalidValue;
    const unsigned threads = regs_threads(x, w, n, y16, y8, y32);
    if (!threads || !qrr__aligned(acc, 16) || !qrr__aligned(sw, 16)) {
        int e = qrr_cuda_dequant(acc, rows, n, sx, sw, NULL, x, n, 1, st);
        return e ? e : qrr_cuda_rmsnorm(x, w, rows, n, eps, y16, y8, ys, y32, st);
    }
    QRR__ROW_LAUNCH(rmsnorm_regs_kernel, qrr__row_chunks(n, threads), (unsigned)rows,
                    threads, (cudaStream_t)st, x, acc, sx, sw, x, w, n, eps, y16, y8, ys, y32);
    return qrr__launched();
}
