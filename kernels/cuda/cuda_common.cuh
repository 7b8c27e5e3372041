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

static __device__ __forceinline__ int8_t qrr__q8(float v, float s)
{
    return (int8_t)fminf(127.0f, fmaxf(-127.0f, rintf(v / s)));
}

/* ---- rows held in registers, four consecutive columns at a time ----
 * A row kernel of this kind gives each thread V chunks of 4 columns (chunk j = threadIdx.x
 * + k * blockDim.x), so the row is read once with vector loads and a fused quantization
 * needs no second pass over memory. Needs the width a multiple of 4 and the rows aligned
 * to the vectors (qrr__aligned); the launchers fall back to a scalar kernel otherwise. */
static __device__ __forceinline__ float4 qrr__h4_to_f4(uint2 b)
{
    const float2 lo = __half22float2(*reinterpret_cast<const __half2 *>(&b.x));
    const float2 hi = __half22float2(*reinterpret_cast<const __half2 *>(&b.y));
    return make_float4(lo.x, lo.y, hi.x, hi.y);
}

static __device__ __forceinline__ uint2 qrr__f4_to_h4(float4 v)
{
    const __half2 lo = __floats2half2_rn(v.x, v.y), hi = __floats2half2_rn(v.z, v.w);
    return make_uint2(*reinterpret_cast<const unsigned *>(&lo),
                      *reinterpret_cast<const unsigned *>(&hi));
}

/* Four int32 results of an int8 GEMM dequantized: acc * row scale s * column scales w. */
static __device__ __forceinline__ float4 qrr__dequant4(int4 acc, float s, float4 w)
{
    return make_float4((float)acc.x * s * w.x, (float)acc.y * s * w.y, (float)acc.z * s * w.z,
                       (float)acc.w * s * w.w);
}

static __device__ __forceinline__ float4 qrr__add4(float4 a, float4 b)
{
    return make_float4(a.x + b.x, a.y + b.y, a.z + b.z, a.w + b.w);
}

static __device__ __forceinline__ float qrr__amax_add4(float amax, float4 v)
{
    return qrr__amax_add(qrr__amax_add(qrr__amax_add(qrr__amax_add(amax, v.x), v.y), v.z), v.w);
}

/* The end of a fused per-row quantization: amax (this thread's part) over the block gives
 * the row's scale, written to *s_out; the thread's V chunks of the row (n4 chunks in all)
 * go to q as int8. Every thread of the block must call it. */
template <int V>
static __device__ __forceinline__ void qrr__quantize_regs(const float4 (&v)[V], int n4,
                                                          float amax, float *red, char4 *q,
                                                          float *s_out)
{
    amax = qrr__block_reduce(amax, red, 1);
    const float s = qrr__row_scale(amax);
#pragma unroll
    for (int k = 0; k < V; k++) {
        const int j = threadIdx.x + k * blockDim.x;
        if (j < n4)
            q[j] = make_char4(qrr__q8(v[k].x, s), qrr__q8(v[k].y, s), qrr__q8(v[k].z, s),
                              qrr__q8(v[k].w, s));
    }
    if (threadIdx.x == 0) *s_out = s;
}

/* Block size and chunks per thread for a row of n columns, n / 4 chunks of 4: at most 4
 * chunks a thread, at least 128 threads; 0 threads when n is not a positive multiple of 4
 * or the row is too wide for one block (then the scalar kernel runs). */
static inline unsigned qrr__row_threads(int n)
{
    if (n <= 0 || n % 4) return 0;
    unsigned t = ((unsigned)(n / 4 + 3) / 4 + 31) / 32 * 32;
    if (t < 128) t = 128;
    return t > 1024 ? 0 : t;
}

static inline int qrr__row_chunks(int n, unsigned threads)
{
    return (int)(((unsigned)(n / 4) + threads - 1) / threads);
}

/* kernel<V><<<grid, threads, 0, st>>>(args...) for V = chunks (1 to 4). */
#define QRR__ROW_LAUNCH(kernel, chunks, grid, threads, st, ...)                              \
    do {                                                                                     \
        switch (chunks) {                                                                    \
        case 1: kernel<1><<<(grid), (threads), 0, (st)>>>(__VA_ARGS__); break;              \
        case 2: kernel<2><<<(grid), (threads), 0, (st)>>>(__VA_ARGS__); break;              \
        case 3: kernel<3><<<(grid), (threads), 0, (st)>>>(__VA_ARGS__); break;              \
        default: kernel<4><<<(grid), (threads), 0, (st)>>>(__VA_ARGS__); break;             \
        }                                                                                    \
    } while (0)

static inline bool qrr__aligned(const void *p, size_t bytes)
{
    return (uintptr_t)p % bytes == 0;
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
