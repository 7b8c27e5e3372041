/* device.cu — which CUDA devices there are and what CUDA errors are called. Runs on a
 * machine without a GPU or driver too: every failure comes back as a status and a message. */
#include <stdio.h>

#include "cuda_common.cuh"

extern "C" int qrr_cuda_device_count(int *n, qrr_diag *d)
{
    *n = 0;
    int count = 0;
    cudaError_t e = cudaGetDeviceCount(&count);
    if (e != cudaSuccess) {
        (void)cudaGetLastError(); /* clear the sticky-free error state of the runtime */
        return qrr_fail(d, QRR_ERR_DEVICE, "no CUDA device: cudaGetDeviceCount returned %d "
                        "(%s: %s)", (int)e, cudaGetErrorName(e), cudaGetErrorString(e));
    }
    if (count == 0)
        return qrr_fail(d, QRR_ERR_DEVICE, "no CUDA device: cudaGetDeviceCount returned 0 "
                        "devices");
    *n = count;
    return QRR_OK;
}

extern "C" int qrr_cuda_device_describe(int dev, char *buf, size_t cap, qrr_diag *d)
{
    cudaDeviceProp p;
    cudaError_t e = cudaGetDeviceProperties(&p, dev);
    if (e != cudaSuccess)
        return qrr_fail(d, QRR_ERR_DEVICE, "cudaGetDeviceProperties(%d): %s", dev,
                        cudaGetErrorString(e));
    snprintf(buf, cap, "%s, sm_%d%d, %d SMs, %.1f GiB", p.name, p.major, p.minor,
             p.multiProcessorCount, (double)p.totalGlobalMem / (1024.0 * 1024.0 * 1024.0));
    return QRR_OK;
}

extern "C" const char *qrr_cuda_error_str(int err)
{
    return cudaGetErrorString((cudaError_t)err);
}
