/* gemm_peak.cu — the card's measured ceilings for the GPU benchmark table: an 8192^3 f16 GEMM
 * (fp32 accumulation) and int8 GEMM through the same cuBLASLt wrapper libqrr uses, on random
 * data, and a device-to-device copy. Prints one JSON line. */
#include <cuda_fp16.h>
#include <cuda_runtime.h>
#include <stdio.h>
#include <stdlib.h>

#include "qrr_cuda.h"

#define CK(x) do { cudaError_t e_ = (x); if (e_ != cudaSuccess) { \
    fprintf(stderr, "gemm_peak: %s: %s\n", #x, cudaGetErrorString(e_)); exit(1); } } while (0)

static __global__ void fill(unsigned char *p, size_t n, unsigned seed, int halves)
{
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n;
         i += (size_t)gridDim.x * blockDim.x) {
        unsigned h = (unsigned)i * 2654435761u ^ seed;
        h ^= h >> 15; h *= 2246822519u; h ^= h >> 13;
        if (halves) ((__half *)p)[i] = __float2half(((float)(h & 0xffff) / 65535.0f) - 0.5f);
        else ((signed char *)p)[i] = (signed char)((int)(h & 0xff) - 128 + ((h & 0xff) == 0));
    }
}

static int cmp(const void *a, const void *b)
{
    float x = *(const float *)a, y = *(const float *)b;
    return (x > y) - (x < y);
}

int main(void)
{
    const int n = 8192, reps = 20;
    qrr_diag d;
    qrr_cuda_gemm *g;
    if (qrr_cuda_gemm_create(&g, 32u << 20, &d) != QRR_OK) { fprintf(stderr, "%s\n", d.msg); return 1; }
    size_t el = (size_t)n * n;
    void *a, *b, *c;
    CK(cudaMalloc(&a, el * 2)); CK(cudaMalloc(&b, el * 2)); CK(cudaMalloc(&c, el * 4));
    fill<<<4096, 256>>>((unsigned char *)a, el, 1u, 1);
    fill<<<4096, 256>>>((unsigned char *)b, el, 2u, 1);
    CK(cudaGetLastError());
    cudaEvent_t e0, e1;
    CK(cudaEventCreate(&e0)); CK(cudaEventCreate(&e1));
    float t[reps], ms;
    double tf16, ti8, bw;
    for (int r = -3; r < reps; r++) {
        CK(cudaEventRecord(e0));
        if (qrr_cuda_gemm_f16(g, (const uint16_t *)a, n, n, (const uint16_t *)b, n, n, c, n, 0, 0,
                              0, &d) != QRR_OK) { fprintf(stderr, "%s\n", d.msg); return 1; }
        CK(cudaEventRecord(e1)); CK(cudaEventSynchronize(e1));
        CK(cudaEventElapsedTime(&ms, e0, e1));
        if (r >= 0) t[r] = ms;
    }
    qsort(t, reps, sizeof t[0], cmp);
    tf16 = 2.0 * n * (double)n * n / (t[reps / 2] * 1e-3) / 1e12;

    fill<<<4096, 256>>>((unsigned char *)a, el, 3u, 0);
    fill<<<4096, 256>>>((unsigned char *)b, el, 4u, 0);
    CK(cudaGetLastError());
    for (int r = -3; r < reps; r++) {
        CK(cudaEventRecord(e0));
        if (qrr_cuda_gemm_i8(g, (const int8_t *)a, n, n, (const int8_t *)b, n, n, (int32_t *)c, n,
                             0, &d) != QRR_OK) { fprintf(stderr, "%s\n", d.msg); return 1; }
        CK(cudaEventRecord(e1)); CK(cudaEventSynchronize(e1));
        CK(cudaEventElapsedTime(&ms, e0, e1));
        if (r >= 0) t[r] = ms;
    }
    qsort(t, reps, sizeof t[0], cmp);
    ti8 = 2.0 * n * (double)n * n / (t[reps / 2] * 1e-3) / 1e12;

    size_t bytes = el * 2; /* 128 MiB each way */
    for (int r = -3; r < reps; r++) {
        CK(cudaEventRecord(e0));
        CK(cudaMemcpyAsync(b, a, bytes, cudaMemcpyDeviceToDevice));
        CK(cudaEventRecord(e1)); CK(cudaEventSynchronize(e1));
        CK(cudaEventElapsedTime(&ms, e0, e1));
        if (r >= 0) t[r] = ms;
    }
    qsort(t, reps, sizeof t[0], cmp);
    bw = 2.0 * bytes / (t[reps / 2] * 1e-3) / 1e12;

    cudaDeviceProp p;
    CK(cudaGetDeviceProperties(&p, 0));
    printf("{\"device\":\"%s\",\"f16_tflops\":%.1f,\"i8_tops\":%.1f,\"copy_tbps\":%.2f,"
           "\"size\":%d}\n", p.name, tf16, ti8, bw, n);
    qrr_cuda_gemm_free(g);
    return 0;
}
