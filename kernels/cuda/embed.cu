/* embed.cu — the embedding gather: one fp32 row of the residual stream per token, from a
 * table stored in any of the file's dtypes (int8 rows with their per-row or per-block scale). */
#include "cuda_common.cuh"

static __global__ void embed_kernel(const int32_t *ids, const void *table, uint32_t dtype,
                                    const float *scale, int block, int H, float *x)
{
    const int t = blockIdx.x;
    const size_t row = (size_t)ids[t];
    float *dst = x + (size_t)t * H;
    for (int j = threadIdx.x; j < H; j += blockDim.x) {
        size_t i = row * (size_t)H + (size_t)j;
        float v;
        switch (dtype) {
        case QRR_DTYPE_F32: v = ((const float *)table)[i]; break;
        case QRR_DTYPE_F16: v = qrr__h2f(((const uint16_t *)table)[i]); break;
        case QRR_DTYPE_BF16: v = qrr__bf2f(((const uint16_t *)table)[i]); break;
        default: {
            float s = block > 0 ? scale[row * (size_t)(H / block) + (size_t)(j / block)]
                                : scale[row];
            v = (float)((const int8_t *)table)[i] * s;
        }
        }
        dst[j] = v;
    }
}

extern "C" int qrr_cuda_embed(const int32_t *ids, int T, const void *table, uint32_t dtype,
                              const float *scale, int block, int H, float *x, qrr_cuda_stream st)
{
    if (T <= 0) return 0;
    if (dtype == QRR_DTYPE_I8 && (!scale || (block > 0 && H % block)))
        return (int)cudaErrorInvalidValue;
    unsigned threads = H >= 256 ? 256 : 64;
    embed_kernel<<<(unsigned)T, threads, 0, (cudaStream_t)st>>>(ids, table, dtype, scale, block,
                                                                 H, x);
    return qrr__launched();
}
