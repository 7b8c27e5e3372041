/* qk_norm_rope.cu — per-head RMSNorm of the queries and keys, then rotary position
 * embedding (rotate-half: pairs i and i + D/2), on the q|k|v rows of a GEMM: in place on f16
 * rows, or from the int32 product of a W8A8 GEMM, dequantized on the way in (the values
 * too), which saves a pass that writes the rows as f16 and reads them back. */
#include "cuda_common.cuh"

/* Columns c .. c + 3 of token t's q|k|v row (c a multiple of 4), from f16 rows [T, ld]. */
struct qkv_f16 {
    const uint16_t *qkv;
    int ld;
    __device__ float4 at4(size_t t, int c) const
    {
        return qrr__h4_to_f4(*reinterpret_cast<const uint2 *>(qkv + t * ld + c));
    }
};

/* The same from an int8 GEMM's int32 product [T, ld], row scale sx and column scales sw. */
struct qkv_i32 {
    const int32_t *acc;
    int ld;
    const float *sx, *sw;
    __device__ float4 at4(size_t t, int c) const
    {
        const int4 a = *reinterpret_cast<const int4 *>(acc + t * ld + c);
        const float4 g = *reinterpret_cast<const float4 *>(sw + c);
        return qrr__dequant4(a, sx[t], g);
    }
};

static __device__ __forceinline__ float4 scaled(float4 v, float inv, float4 w)
{
    return make_float4(v.x * inv * w.x, v.y * inv * w.y, v.z * inv * w.z, v.w * inv * w.w);
}

/* Block (token, group of heads); heads 0..nq-1 are queries, then nk keys, then nv values
 * (only copied or dequantized). Each head is D/4 lanes of a warp holding 4 consecutive
 * columns each, so a head is read once with one vector load per lane; the rotate-half
 * partner of lane l's columns is in lane l ^ D/8. The block computes the token's cos/sin
 * once into shared memory while its loads are in flight. Output: f16 rows out [T, ld_out]. */
template <int D, class IN>
static __global__ void qk_norm_rope_kernel(IN in, uint16_t *out, int ld_out, int nq, int nk,
                                           int nv, const float *qw, const float *kw, float eps,
                                           const int *pos, const float *inv_freq)
{
    constexpr int LANES = D / 4, HALF = D / 2;
    __shared__ float4 rot[HALF / 4][2]; /* angles 4i .. 4i + 3 as (cos, sin) pairs */
    const size_t t = blockIdx.x;
    const int h = blockIdx.y * (blockDim.x / LANES) + threadIdx.x / LANES;
    const int c = 4 * (threadIdx.x % LANES); /* this lane's first column in the head */
    const bool live = h < nq + nk + nv;
    const float4 v = live ? in.at4(t, h * D + c) : make_float4(0.0f, 0.0f, 0.0f, 0.0f);
    const float p = (float)pos[t];
    float2 *rot2 = reinterpret_cast<float2 *>(rot);
    for (int i = threadIdx.x; i < HALF; i += blockDim.x) {
        float s, co;
        sincosf(p * inv_freq[i], &s, &co);
        rot2[i] = make_float2(co, s);
    }
    __syncthreads();
    /* Every lane takes part in the shuffles, whatever its head (a warp may hold two). */
    float ss = v.x * v.x + v.y * v.y + v.z * v.z + v.w * v.w;
    for (int o = LANES / 2; o > 0; o >>= 1) ss += __shfl_xor_sync(0xffffffffu, ss, o);
    const float4 u = make_float4(__shfl_xor_sync(0xffffffffu, v.x, LANES / 2),
                                 __shfl_xor_sync(0xffffffffu, v.y, LANES / 2),
                                 __shfl_xor_sync(0xffffffffu, v.z, LANES / 2),
                                 __shfl_xor_sync(0xffffffffu, v.w, LANES / 2));
    if (!live) return;
    uint2 *dst = reinterpret_cast<uint2 *>(out + t * ld_out + (size_t)h * D + c);
    if (h >= nq + nk) {
        *dst = qrr__f4_to_h4(v);
        return;
    }
    const float *w = h < nq ? qw : kw;
    const float inv = 1.0f / sqrtf(ss / (float)D + eps);
    const float4 a = scaled(v, inv, *reinterpret_cast<const float4 *>(w + c));
    const float4 b = scaled(u, inv, *reinterpret_cast<const float4 *>(w + (c ^ HALF)));
    const float4 r01 = rot[(c % HALF) / 4][0], r23 = rot[(c % HALF) / 4][1];
    /* first half: x_i = a c - b s; second half: x_{i+D/2} = a c + b s (a: own, b: partner) */
    const float sg = c < HALF ? -1.0f : 1.0f;
    *dst = qrr__f4_to_h4(make_float4(a.x * r01.x + sg * (b.x * r01.y),
                                     a.y * r01.z + sg * (b.y * r01.w),
                                     a.z * r23.x + sg * (b.z * r23.y),
                                     a.w * r23.z + sg * (b.w * r23.w)));
}

template <int D, class IN>
static void launch_d(IN in, uint16_t *out, int ld_out, int T, int nq, int nk, int nv,
                     const float *qw, const float *kw, float eps, const int *pos,
                     const float *inv_freq, cudaStream_t st)
{
    const unsigned threads = 256, per_block = threads / (D / 4);
    const dim3 grid((unsigned)T, ((unsigned)(nq + nk + nv) + per_block - 1) / per_block);
    qk_norm_rope_kernel<D><<<grid, threads, 0, st>>>(in, out, ld_out, nq, nk, nv, qw, kw, eps,
                                                     pos, inv_freq);
}

template <class IN>
static int launch(IN in, uint16_t *out, int ld_out, int T, int nq, int nk, int nv, int D,
                  const float *qw, const float *kw, float eps, const int *pos,
                  const float *inv_freq, cudaStream_t st)
{
    if (T <= 0 || nq + nk + nv <= 0) return 0;
    /* four columns a lane: rows and weights aligned to them */
    if ((D != 64 && D != 128) || ld_out % 4 || !qrr__aligned(out, 8) ||
        !qrr__aligned(qw, 16) || !qrr__aligned(kw, 16))
        return (int)cudaErrorInvalidValue;
    if (D == 64) launch_d<64>(in, out, ld_out, T, nq, nk, nv, qw, kw, eps, pos, inv_freq, st);
    else launch_d<128>(in, out, ld_out, T, nq, nk, nv, qw, kw, eps, pos, inv_freq, st);
    return qrr__launched();
}

extern "C" int qrr_cuda_qk_norm_rope(uint16_t *qkv, int ld, int T, int nq, int nk, int D,
                                     const float *qw, const float *kw, float eps,
                                     const int *pos, const float *inv_freq, qrr_cuda_stream st)
{
    return launch(qkv_f16{qkv, ld}, qkv, ld, T, nq, nk, 0, D, qw, kw, eps, pos, inv_freq,
                  (cudaStream_t)st);
}

extern "C" int qrr_cuda_qk_norm_rope_i32(const int32_t *acc, const float *sx, const float *sw,
                                         uint16_t *qkv, int ld, int T, int nq, int nk, int D,
                                         const float *qw, const float *kw, float eps,
                                         const int *pos, const float *inv_freq,
                                         qrr_cuda_stream st)
{
    if (!qrr__aligned(acc, 16) || !qrr__aligned(sw, 16)) return (int)cudaErrorInvalidValue;
    return launch(qkv_i32{acc, ld, sx, sw}, qkv, ld, T, nq, nk, nk, D, qw, kw, eps, pos,
                  inv_freq, (cudaStream_t)st);
}
