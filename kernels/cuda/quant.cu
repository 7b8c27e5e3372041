/* quant.cu — the two halves of a W8A8 GEMM around cuBLASLt's int8 product: per-row dynamic
 * quantization of f16 activations, and the dequantizing epilogue (optionally adding into
 * the fp32 residual stream); and the way back from int8 activations to f16. */
#include "cuda_common.cuh"

/* One block per row, held in registers (cuda_common.cuh). */
template <int V>
static __global__ void quantize_rows_regs_kernel(const uint16_t *x, int n, int8_t *q, float *s)
{
    __shared__ float red[32];
    const size_t r = blockIdx.x;
    const int n4 = n / 4;
    const uint2 *xr = reinterpret_cast<const uint2 *>(x + r * n);
    float4 v[V];
    float amax = 0.0f;
#pragma unroll
    for (int k = 0; k < V; k++) {
        const int j = threadIdx.x + k * blockDim.x;
        v[k] = j < n4 ? qrr__h4_to_f4(xr[j]) : make_float4(0.0f, 0.0f, 0.0f, 0.0f);
        amax = qrr__amax_add4(amax, v[k]);
    }
    qrr__quantize_regs(v, n4, amax, red, reinterpret_cast<char4 *>(q + r * n), s + r);
}

/* Any width and alignment. */
static __global__ void quantize_rows_kernel(const uint16_t *x, int n, int8_t *q, float *s)
{
    __shared__ float red[32];
    const size_t r = blockIdx.x;
    const uint16_t *xr = x + r * n;
    float amax = 0.0f;
    for (int j = threadIdx.x; j < n; j += blockDim.x) amax = qrr__amax_add(amax, qrr__h2f(xr[j]));
    amax = qrr__block_reduce(amax, red, 1);
    const float sc = qrr__row_scale(amax);
    for (int j = threadIdx.x; j < n; j += blockDim.x) q[r * n + j] = qrr__q8(qrr__h2f(xr[j]), sc);
    if (threadIdx.x == 0) s[r] = sc;
}

extern "C" int qrr_cuda_quantize_rows(const uint16_t *x, int rows, int n, int8_t *q, float *s,
                                      qrr_cuda_stream st)
{
    if (rows <= 0) return 0;
    cudaStream_t cs = (cudaStream_t)st;
    const unsigned threads = qrr__row_threads(n);
    if (threads && qrr__aligned(x, 8) && qrr__aligned(q, 4))
        QRR__ROW_LAUNCH(quantize_rows_regs_kernel, qrr__row_chunks(n, threads),
                        (unsigned)rows, threads, cs, x, n, q, s);
    else
        quantize_rows_kernel<<<(unsigned)rows, 256, 0, cs>>>(x, n, q, s);
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

/* One block per row, four columns at a time (N and ldy multiples of 4, aligned). */
static __global__ void dequant_rows_kernel(const int32_t *acc, int N, const float *sx,
                                           const float *sw, uint16_t *y16, float *y32, int ldy,
                                           int add)
{
    const size_t m = blockIdx.x;
    const float s = sx[m];
    const int4 *a = reinterpret_cast<const int4 *>(acc + m * N);
    const float4 *w = reinterpret_cast<const float4 *>(sw);
    for (int j = threadIdx.x; j < N / 4; j += blockDim.x) {
        const float4 v = qrr__dequant4(a[j], s, w[j]);
        if (y16) {
            reinterpret_cast<uint2 *>(y16 + m * ldy)[j] = qrr__f4_to_h4(v);
            continue;
        }
        float4 *o = reinterpret_cast<float4 *>(y32 + m * ldy) + j;
        *o = add ? qrr__add4(*o, v) : v;
    }
}

/* Any shape and alignment. */
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
    cudaStream_t s = (cudaStream_t)st;
    if (N % 4 == 0 && ldy % 4 == 0 && qrr__aligned(acc, 16) && qrr__aligned(sw, 16) &&
        qrr__aligned(y16, 8) && qrr__aligned(y32, 16)) {
        const unsigned threads = N / 4 >= 256 ? 256 : (unsigned)(N / 4 + 31) / 32 * 32;
        dequant_rows_kernel<<<(unsigned)M, threads, 0, s>>>(acc, N, sx, sw, y16, y32, ldy, add);
        return qrr__launched();
    }
    unsigned blocks = qrr__blocks((size_t)M * N, 256);
    if (blocks > 8192) blocks = 8192;
    dequant_kernel<<<blocks, 256, 0, s>>>(acc, M, N, sx, sw, y16, y32, ldy, add);
    return qrr__launched();
}
