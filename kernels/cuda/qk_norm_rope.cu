/* qk_norm_rope.cu — per-head RMSNorm of the queries and keys, then rotary position
 * embedding (rotate-half: pairs i and i + D/2), on the q|k|v rows of a GEMM: in place on f16
 * rows, or from the int32 product of a W8A8 GEMM, dequantized on the way in (the values
 * too), which saves a pass that writes the rows as f16 and reads them back. */
#include "cuda_common.cuh"

/* Columns c, c + 1 of token t's q|k|v row (c even), from f16 rows [T, ld]. */
struct qkv_f16 {
    const uint16_t *qkv;
    int ld;
    __device__ float2 at2(size_t t, int c) const
    {
        return __half22float2(*reinterpret_cast<const __half2 *>(qkv + t * ld + c));
    }
};

/* The same from an int8 GEMM's int32 product [T, ld], row scale sx and column scales sw. */
struct qkv_i32 {
    const int32_t *acc;
    int ld;
    const float *sx, *sw;
    __device__ float2 at2(size_t t, int c) const
    {
        const int2 a = *reinterpret_cast<const int2 *>(acc + t * ld + c);
        const float2 g = *reinterpret_cast<const float2 *>(sw + c);
        const float s = sx[t];
        return make_float2((float)a.x * s * g.x, (float)a.y * s * g.y);
    }
};

static __device__ __forceinline__ void store2(uint16_t *p, float a, float b)
{
    *reinterpret_cast<__half2 *>(p) = __floats2half2_rn(a, b);
}

/* One block per token; its warps take the heads in turn: 0..nq-1 queries, then nk keys,
 * then nv values (only copied or dequantized). The token's cos/sin pairs are computed once
 * into shared memory rather than once per head. Output: f16 rows out [T, ld_out]. */
template <class IN>
static __global__ void qk_norm_rope_kernel(IN in, uint16_t *out, int ld_out, int nq, int nk,
                                           int nv, int D, const float *qw, const float *kw,
                                           float eps, const int *pos, const float *inv_freq)
{
    extern __shared__ float2 rot[]; /* [D/2]: (cos, sin) of the token's angles */
    const size_t t = blockIdx.x;
    const int half = D / 2, lane = threadIdx.x % QRR_WARP, warps = blockDim.x / QRR_WARP;
    const float p = (float)pos[t];
    for (int i = threadIdx.x; i < half; i += blockDim.x) {
        float s, c;
        sincosf(p * inv_freq[i], &s, &c);
        rot[i] = make_float2(c, s);
    }
    __syncthreads();
    uint16_t *row = out + t * ld_out;
    for (int h = threadIdx.x / QRR_WARP; h < nq + nk + nv; h += warps) {
        const int c0 = h * D;
        if (h >= nq + nk) {
            for (int i = 2 * lane; i < D; i += 2 * QRR_WARP) {
                const float2 v = in.at2(t, c0 + i);
                store2(row + c0 + i, v.x, v.y);
            }
            continue;
        }
        const float *w = h < nq ? qw : kw;
        float ss = 0.0f;
        for (int i = 2 * lane; i < D; i += 2 * QRR_WARP) {
            const float2 v = in.at2(t, c0 + i);
            ss += v.x * v.x + v.y * v.y;
        }
        ss = qrr__warp_sum(ss);
        const float inv = 1.0f / sqrtf(ss / (float)D + eps);
        /* every lane has read its elements above; each lane writes only its own below */
        for (int i = 2 * lane; i < half; i += 2 * QRR_WARP) {
            float2 a = in.at2(t, c0 + i), b = in.at2(t, c0 + half + i);
            a = make_float2(a.x * inv * w[i], a.y * inv * w[i + 1]);
            b = make_float2(b.x * inv * w[half + i], b.y * inv * w[half + i + 1]);
            const float2 r0 = rot[i], r1 = rot[i + 1];
            store2(row + c0 + i, a.x * r0.x - b.x * r0.y, a.y * r1.x - b.y * r1.y);
            store2(row + c0 + half + i, b.x * r0.x + a.x * r0.y, b.y * r1.x + a.y * r1.y);
        }
    }
}

template <class IN>
static int launch(IN in, uint16_t *out, int ld_out, int T, int nq, int nk, int nv, int D,
                  const float *qw, const float *kw, float eps, const int *pos,
                  const float *inv_freq, cudaStream_t st)
{
    if (T <= 0 || nq + nk + nv <= 0) return 0;
    /* pairs of columns: D/2 even, and rows aligned to 2 elements */
    if (D % 4 || ld_out % 2 || !qrr__aligned(out, 4)) return (int)cudaErrorInvalidValue;
    const int heads = nq + nk + nv, warps = heads < 8 ? heads : 8;
    qk_norm_rope_kernel<<<(unsigned)T, (unsigned)warps * QRR_WARP, (D / 2) * sizeof(float2),
                          st>>>(in, out, ld_out, nq, nk, nv, D, qw, kw, eps, pos, inv_freq);
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
    if (!qrr__aligned(acc, 8) || !qrr__aligned(sw, 8)) return (int)cudaErrorInvalidValue;
    return launch(qkv_i32{acc, ld, sx, sw}, qkv, ld, T, nq, nk, nk, D, qw, kw, eps, pos,
                  inv_freq, (cudaStream_t)st);
}
