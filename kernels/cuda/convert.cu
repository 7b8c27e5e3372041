/* convert.cu — widen or narrow uploaded weights to f16 on the device, counting the values
 * f16 cannot hold (the caller fails on any: nothing is clamped silently). */
#include "cuda_common.cuh"

static __global__ void to_f16_kernel(const void *src, uint32_t dtype, size_t n, uint16_t *dst,
                                     int *overflow)
{
    size_t stride = (size_t)gridDim.x * blockDim.x;
    int bad = 0;
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += stride) {
        float f;
        if (dtype == QRR_DTYPE_F32) f = ((const float *)src)[i];
        else if (dtype == QRR_DTYPE_BF16) f = qrr__bf2f(((const uint16_t *)src)[i]);
        else f = qrr__h2f(((const uint16_t *)src)[i]);
        __half h = __float2half_rn(f);
        if (!isfinite(f) || __hisinf(h)) bad++;
        dst[i] = __half_as_ushort(h);
    }
    if (bad) atomicAdd(overflow, bad);
}

static int launch(const void *src, uint32_t dtype, size_t n, uint16_t *dst, int *overflow,
                  cudaStream_t st)
{
    const unsigned threads = 256;
    unsigned blocks = qrr__blocks(n, threads);
    if (blocks > 4096) blocks = 4096;
    to_f16_kernel<<<blocks, threads, 0, st>>>(src, dtype, n, dst, overflow);
    return qrr__launched();
}

extern "C" int qrr_cuda_to_f16(const void *src, uint32_t src_dtype, size_t n, uint16_t *dst,
                               int *d_overflow, qrr_cuda_stream st)
{
    if (n == 0) return 0;
    if (src_dtype != QRR_DTYPE_F32 && src_dtype != QRR_DTYPE_BF16 && src_dtype != QRR_DTYPE_F16)
        return (int)cudaErrorInvalidValue;
    return launch(src, src_dtype, n, dst, d_overflow, (cudaStream_t)st);
}
