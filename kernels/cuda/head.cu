/* head.cu — the end of the forward pass: gather each sequence's last row, and the yes/no
 * (or single-logit) head as fp32 dot products accumulated in double. */
#include "cuda_common.cuh"

static __global__ void gather_rows_kernel(const char *src, size_t ld_src, const int *rows,
                                          size_t row_bytes, char *dst, size_t ld_dst)
{
    const int s = blockIdx.x;
    const char *a = src + (size_t)rows[s] * ld_src;
    char *b = dst + (size_t)s * ld_dst;
    for (size_t j = threadIdx.x; j < row_bytes; j += blockDim.x) b[j] = a[j];
}

extern "C" int qrr_cuda_gather_rows(const void *src, int ld_src, const int *rows, int S, int n,
                                    int elem_size, void *dst, int ld_dst, qrr_cuda_stream st)
{
    if (S <= 0) return 0;
    gather_rows_kernel<<<(unsigned)S, 256, 0, (cudaStream_t)st>>>(
        (const char *)src, (size_t)ld_src * elem_size, rows, (size_t)n * elem_size, (char *)dst,
        (size_t)ld_dst * elem_size);
    return qrr__launched();
}

static __device__ __forceinline__ double warp_sum_d(double v)
{
    for (int o = QRR_WARP / 2; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}

/* One block of 256 threads per (sequence, head row). */
static __global__ void head_kernel(const float *h, int H, const float *head, int n_rows,
                                   double *out)
{
    __shared__ double red[8];
    const int s = blockIdx.x / n_rows, r = blockIdx.x % n_rows;
    const float *a = h + (size_t)s * H, *b = head + (size_t)r * H;
    double acc = 0.0;
    for (int j = threadIdx.x; j < H; j += blockDim.x) acc += (double)a[j] * (double)b[j];
    acc = warp_sum_d(acc);
    if (threadIdx.x % QRR_WARP == 0) red[threadIdx.x / QRR_WARP] = acc;
    __syncthreads();
    if (threadIdx.x == 0) {
        double t = 0.0;
        for (int w = 0; w < (int)(blockDim.x / QRR_WARP); w++) t += red[w];
        out[blockIdx.x] = t;
    }
}

extern "C" int qrr_cuda_head(const float *h, int S, int H, const float *head, int n_rows,
                             double *out, qrr_cuda_stream st)
{
    if (S <= 0 || n_rows <= 0) return 0;
    head_kernel<<<(unsigned)(S * n_rows), 256, 0, (cudaStream_t)st>>>(h, H, head, n_rows, out);
    return qrr__launched();
}
