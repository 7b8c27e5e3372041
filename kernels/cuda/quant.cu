/* quant.cu — the two halves of a W8A8 GEMM around cuBLASLt's int8 product: per-row dynamic
 * quantization of f16 activations, and the dequantizing epilogue (optionally adding into
 * the fp32 residual stream); and the way back from int8 activations to f16. */
#include "cuda_common.cuh"

static __global__ void quantize_rows_kernel(const uint16_t *x, int n, int8_t *q, float *s)
{
    __shared__ float red[32];
    const size_t r = blockIdx.x;
    const uint16_t *xr = x + r * n;
    float amax = 0.0f;
    for (int j = threadIdx.x; j < n; j += blockDim.x) amax = qrr__amax_add(amax, qrr__h2f(xr[j]));
    amax = qrr__block_reduce(amax, red, 1);
    const float sc = qrr__row_scale(amax);
    for (int j = threadIdx.x; j < n; j += blockDim.x)
        q[r * n + j] = (int8_t)fminf(127.0f, fmaxf(-127.0f, rintf(qrr__h2f(xr[j]) / sc)));
    if (threadIdx.x == 0) s[r] = sc;
}

extern "C" int qrr_cuda_quantize_rows(const uint16_t *x, int rows, int n, int8_t *q, float *s,
                                      qrr_cuda_stream st)
{
    if (rows <= 0) return 0;
    quantize_rows_kernel<<<(unsigned)rows, 256, 0, (cudaStream_t)st>>>(x, n, q, s);
    return qrr__launched();
}

static __global__ void dequantize_rows_kernel(const int8_t *q, const float *s, int n,
                                              uint16_t *x)
{
    const size_t r = blockIdx.x;
    const float sc = s[r];
    for (int j = threadIdx.x; j < n; j += blockDim.x)
        x[r * n + j] = qrr__f2h((float)q[r * n + j] * sc);
}

extern "C" int qrr_cuda_dequantize_rows(const int8_t *q, const float *s, int rows, int n,
                                        uint16_t *x, qrr_cuda_stream st)
{
    if (rows <= 0 || n <= 0) return 0;
    dequantize_rows_kernel<<<(unsigned)rows, 256, 0, (cudaStream_t)st>>>(q, s, n, x);
    return qrr__launched();
}

static __global__ void dequant_kernel(const int32_t *acc, int M, int N, const float *sx,
                                      const float *sw, uint16_t *y16, float *y32, int ldy,
                                      int add)
{
    const size_t total = (size_t)M * N, stride = (size_t)gridDim.x * blockDim.x;
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < total; i += stride) {
        const size_t m = i / N, n = i % N;
        float v = (float)acc[i] * sx[m] * sw[n];
        if (y16) y16[m * ldy + n] = qrr__f2h(v);
        else if (add) y32[m * ldy + n] += v;
        else y32[m * ldy + n] = v;
    }
}

extern "C" int qrr_cuda_dequant(const int32_t *acc, int M, int N, const float *sx,
                                const float *sw, uint16_t *y16, float *y32, int ldy, int add,
                                qrr_cuda_stream st)
{
    if (M <= 0 || N <= 0) return 0;
    if (!y16 && !y32) return (int)cudaErrorInvalidValue;
    unsigned blocks = qrr__blocks((size_t)M * N, 256);
    if (blocks > 8192) blocks = 8192;
    dequant_kernel<<<blocks, 256, 0, (cudaStream_t)st>>>(acc, M, N, sx, sw, y16, y32, ldy, add);
    return qrr__launched();
}
