/* cuda_common.cuh — what the .cu files of kernels/cuda share: half/bf16 bit helpers, warp
 * and block reductions, and the launch-result check. Private to kernels/cuda; no kernels. */
#ifndef QRR_CUDA_COMMON_CUH
#define QRR_CUDA_COMMON_CUH

#include <cuda_fp16.h>
#include <cuda_runtime.h>
#include <float.h>
#include <stdint.h>

#include "qrr_cuda.h"
/* qrr_format.h is C11; its _Static_assert lines read as C++'s static_assert here. */
#define _Static_assert static_assert
#include "qrr_format.h"
#undef _Static_assert

#define QRR_WARP 32

static __device__ __forceinline__ float qrr__h2f(uint16_t b)
{
    return __half2float(__ushort_as_half(b));
}

static __device__ __forceinline__ uint16_t qrr__f2h(float f)
{
    return __half_as_ushort(__float2half_rn(f));
}

static __device__ __forceinline__ float qrr__bf2f(uint16_t b)
{
    return __uint_as_float((uint32_t)b << 16);
}

static __device__ __forceinline__ float qrr__warp_sum(float v)
{
    for (int o = QRR_WARP / 2; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}

static __device__ __forceinline__ float qrr__warp_max(float v)
{
    for (int o = QRR_WARP / 2; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
    return v;
}

/* Sum (max_op 0) or max (max_op 1) over the block; every thread gets the result. Needs
 * blockDim.x a multiple of 32 and at most 1024; red holds 32 floats of shared memory. */
static __device__ __forceinline__ float qrr__block_reduce(float v, float *red, int max_op)
{
    const int lane = threadIdx.x % QRR_WARP, warp = threadIdx.x / QRR_WARP;
    const int nw = blockDim.x / QRR_WARP;
    v = max_op ? qrr__warp_max(v) : qrr__warp_sum(v);
    __syncthreads(); /* red may still be read by an earlier reduction */
    if (lane == 0) red[warp] = v;
    __syncthreads();
    float r = lane < nw ? red[lane] : (max_op ? -INFINITY : 0.0f);
    return max_op ? qrr__warp_max(r) : qrr__warp_sum(r);
}

/* Per-row int8 quantization (W8A8), the CPU's rule: |v| is folded into the row's running
 * maximum, where a NaN or infinite v makes it +inf for good (fmaxf alone would drop a NaN);
 * the row's scale is then NaN, so the whole row comes out NaN as on the CPU. */
static __device__ __forceinline__ float qrr__amax_add(float amax, float v)
{
    const float a = fabsf(v);
    return a <= FLT_MAX ? fmaxf(amax, a) : INFINITY;
}

static __device__ __forceinline__ float qrr__row_scale(float amax)
{
    return amax > FLT_MAX ? NAN : amax > 0.0f ? amax / 127.0f : 1.0f;
}

/* 16-byte asynchronous copy from global to shared memory (sm_80+), so that a thread's
 * loads of a tile are all in flight at once; valid 0 writes 16 zero bytes and reads
 * nothing (src must still be a mapped address). Wait with qrr__cp_async_wait_all, then
 * __syncthreads before other threads read the tile. */
static __device__ __forceinline__ void qrr__cp_async16(void *dst, const void *src, bool valid)
{
    const unsigned d = (unsigned)__cvta_generic_to_shared(dst);
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(d), "l"(src),
                 "r"(valid ? 16 : 0)
                 : "memory");
}

static __device__ __forceinline__ void qrr__cp_async_wait_all(void)
{
    asm volatile("cp.async.commit_group;\ncp.async.wait_group 0;\n" ::: "memory");
}

/* The status of the launch just queued (configuration errors show here; faults later). */
static inline int qrr__launched(void)
{
    return (int)cudaGetLastError();
}

static inline unsigned qrr__blocks(size_t n, unsigned threads)
{
    size_t b = (n + threads - 1) / threads;
    return (unsigned)(b > 0x7fffffffu ? 0x7fffffffu : (b ? b : 1));
}

#endif
