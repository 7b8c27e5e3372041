/* attention.cu — causal grouped-query attention over packed variable-length sequences that
 * also attend to a shared prefix's cached keys/values. Two versions: a simple one (fp32
 * FMA, one lane per key of a 32-key tile, online softmax; any head size, and the last
 * layer's one query per sequence) and a tensor-core one for head size 128 (mma.sync f16
 * products with fp32 accumulation, scores and output held in registers).
 *
 * Virtual key index j of a sequence: j < P is prefix row j, j >= P own token j - P. Query
 * token i (own index) sees keys 0 .. P + i. */
#include "cuda_common.cuh"

/* ------------------------------------------------------------------------------------- */
/* Stages keys and values t0 .. t0 + ROWS - 1 of sequence (base, P) for kv head kvh into
 * shared rows of ld halves, rows at or past n_keys as zeros. All of a thread's copies are
 * in flight at once; the caller's __syncthreads makes the tile visible. */
template <int ROWS, int D>
static __device__ __forceinline__ void stage_kv(uint16_t *ks, uint16_t *vs, int ld, int t0,
                                                int n_keys, const uint16_t *k,
                                                const uint16_t *v, int ldkv,
                                                const uint16_t *pk, const uint16_t *pv, int P,
                                                int nk, int base, int kvh)
{
    constexpr int CH = D / 8; /* 16-byte chunks per row */
    for (int i = threadIdx.x; i < ROWS * CH; i += blockDim.x) {
        const int r = i / CH, c = (i % CH) * 8, j = t0 + r;
        const uint16_t *kr = k, *vr = v; /* mapped addresses for the zero fill */
        if (j < n_keys) {
            if (j < P) {
                kr = pk + (size_t)j * nk * D + (size_t)kvh * D + c;
                vr = pv + (size_t)j * nk * D + (size_t)kvh * D + c;
            } else {
                kr = k + (size_t)(base + j - P) * ldkv + (size_t)kvh * D + c;
                vr = v + (size_t)(base + j - P) * ldkv + (size_t)kvh * D + c;
            }
        }
        qrr__cp_async16(ks + r * ld + c, kr, j < n_keys);
        qrr__cp_async16(vs + r * ld + c, vr, j < n_keys);
    }
    qrr__cp_async_wait_all();
}

/* ------------------------------------------------------------------------------------- */
/* Simple version. Block = (sequence, query tile of BQ, head); 4 warps, each warp owns BQ/4
 * queries; a tile of 32 keys and values is staged in shared memory and shared by them. */

#define S_BQ 16
#define S_WARPS 4
#define S_TK 32
#define S_QPW (S_BQ / S_WARPS)

template <int D>
static __global__ void __launch_bounds__(S_WARPS * QRR_WARP)
attn_simple_kernel(const uint16_t *q, int ldq, const uint16_t *k, const uint16_t *v, int ldkv,
                   const uint16_t *pk, const uint16_t *pv, int P, const int *starts,
                   const int *lens, int n_qtiles, int last_only, int nq, int nk, uint16_t *out,
                   int ldo)
{
    constexpr int KP = D + 8;        /* padded shared row, in halves: 16-byte loads spread */
    constexpr int PER = D / QRR_WARP; /* output dims per lane */
    __shared__ __align__(16) uint16_t ks[S_TK][KP];
    __shared__ __align__(16) uint16_t vs[S_TK][KP];
    __shared__ __align__(16) float qs[S_BQ][D];

    const int s = blockIdx.x / n_qtiles, tile = blockIdx.x % n_qtiles;
    const int h = blockIdx.y, kvh = h / (nq / nk);
    const int len = lens[s], base = starts[s];
    const int q0 = last_only ? len - 1 : tile * S_BQ;
    const int nqs = last_only ? (tile == 0 ? 1 : 0) : min(S_BQ, len - q0);
    if (nqs <= 0) return;
    const int warp = threadIdx.x / QRR_WARP, lane = threadIdx.x % QRR_WARP;
    const float scale = rsqrtf((float)D);

    for (int i = threadIdx.x; i < S_BQ * D; i += blockDim.x) {
        int r = i / D, c = i % D;
        qs[r][c] = r < nqs ? qrr__h2f(q[(size_t)(base + q0 + r) * ldq + (size_t)h * D + c]) * scale
                           : 0.0f;
    }

    float m[S_QPW], l[S_QPW], acc[S_QPW][PER];
#pragma unroll
    for (int a = 0; a < S_QPW; a++) {
        m[a] = -INFINITY;
        l[a] = 0.0f;
#pragma unroll
        for (int e = 0; e < PER; e++) acc[a][e] = 0.0f;
    }

    const int n_keys = P + q0 + nqs; /* keys the last query of the tile sees */
    for (int t0 = 0; t0 < n_keys; t0 += S_TK) {
        __syncthreads(); /* previous tile consumed (and qs written, the first time) */
        stage_kv<S_TK, D>(&ks[0][0], &vs[0][0], KP, t0, n_keys, k, v, ldkv, pk, pv, P, nk, base,
                          kvh);
        __syncthreads();
#pragma unroll
        for (int a = 0; a < S_QPW; a++) {
            const int qi = warp + a * S_WARPS; /* row in the tile */
            if (qi >= nqs) continue;
            const int limit = P + q0 + qi; /* last key this query sees */
            if (t0 > limit) continue;
            const int nvalid = min(S_TK, limit + 1 - t0);
            float sc = -INFINITY;
            if (lane < nvalid) {
                float dot = 0.0f;
#pragma unroll
                for (int c = 0; c < D; c += 8) {
                    uint4 raw = *(const uint4 *)&ks[lane][c];
                    const __half2 *h2 = (const __half2 *)&raw;
#pragma unroll
                    for (int e = 0; e < 4; e++) {
                        float2 f = __half22float2(h2[e]);
                        dot += f.x * qs[qi][c + 2 * e] + f.y * qs[qi][c + 2 * e + 1];
                    }
                }
                sc = dot;
            }
            const float m_new = fmaxf(m[a], qrr__warp_max(sc));
            const float alpha = __expf(m[a] - m_new); /* 0 on the first tile (m = -inf) */
            const float p = lane < nvalid ? __expf(sc - m_new) : 0.0f;
            l[a] = l[a] * alpha + qrr__warp_sum(p);
#pragma unroll
            for (int e = 0; e < PER; e++) acc[a][e] *= alpha;
            for (int jj = 0; jj < nvalid; jj++) {
                const float pj = __shfl_sync(0xffffffffu, p, jj);
#pragma unroll
                for (int e = 0; e < PER; e++) acc[a][e] += pj * qrr__h2f(vs[jj][lane * PER + e]);
            }
            m[a] = m_new;
        }
    }
#pragma unroll
    for (int a = 0; a < S_QPW; a++) {
        const int qi = warp + a * S_WARPS;
        if (qi >= nqs) continue;
        const size_t row = last_only ? (size_t)s : (size_t)(base + q0 + qi);
        const float inv = 1.0f / l[a];
#pragma unroll
        for (int e = 0; e < PER; e++)
            out[row * ldo + (size_t)h * D + lane * PER + e] = qrr__f2h(acc[a][e] * inv);
    }
}

/* ------------------------------------------------------------------------------------- */
/* Tensor-core version (D = 128): mma.sync m16n8k16 with the scores, probabilities and output
 * kept in registers, FlashAttention-2 style. Block = (sequence, query tile of 16 * WARPS,
 * head); each warp owns 16 query rows, whose q fragments it reads once from global memory.
 * Per 64-key tile staged in shared memory: S = Q·K^T (8 column blocks of 8 keys), masked
 * online softmax across each quad of lanes (a row's 16 values of the tile are spread over
 * 4 lanes), then O += P·V with P's accumulators reused as the A operand and V read with
 * ldmatrix.trans. Fragment layouts are PTX's for m16n8k16: lane = 4 g + t holds rows g and
 * g + 8, columns 2t, 2t + 1 (and + 8 for A). */

#define T_D 128
#define T_TK 64
#define T_LD (T_D + 8) /* halves per shared row: 8 rows of an ldmatrix hit distinct banks */

static __device__ __forceinline__ void mma16816(float c[4], const uint32_t a[4], uint32_t b0,
                                                uint32_t b1)
{
    asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, "
                 "{%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};\n"
                 : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

/* The B fragment (16 keys x 8 dims) of row-major V at p: lanes 0-15 address rows 0-15. */
static __device__ __forceinline__ void ldmatrix_x2_trans(uint32_t &b0, uint32_t &b1,
                                                         const uint16_t *p)
{
    const unsigned a = (unsigned)__cvta_generic_to_shared(p);
    asm volatile("ldmatrix.sync.aligned.m8n8.x2.trans.shared.b16 {%0,%1}, [%2];\n"
                 : "=r"(b0), "=r"(b1)
                 : "r"(a));
}

static __device__ __forceinline__ uint32_t pack_half2(float lo, float hi)
{
    const __half2 h = __floats2half2_rn(lo, hi); /* lo in the low 16 bits: the lower column */
    return *(const uint32_t *)&h;
}

/* max (max_op 1) or sum over the 4 lanes of a quad, which share a row */
static __device__ __forceinline__ float quad_reduce(float v, int max_op)
{
    for (int o = 1; o < 4; o <<= 1) {
        const float w = __shfl_xor_sync(0xffffffffu, v, o);
        v = max_op ? fmaxf(v, w) : v + w;
    }
    return v;
}

template <int WARPS>
static __global__ void __launch_bounds__(WARPS * QRR_WARP)
attn_tc_kernel(const uint16_t *q, int ldq, const uint16_t *k, const uint16_t *v, int ldkv,
               const uint16_t *pk, const uint16_t *pv, int P, const int *starts, const int *lens,
               int n_qtiles, int nq, int nk, uint16_t *out, int ldo)
{
    __shared__ __align__(16) uint16_t ks[T_TK * T_LD];
    __shared__ __align__(16) uint16_t vs[T_TK * T_LD];
    constexpr int BQ = 16 * WARPS;
    const int s = blockIdx.x / n_qtiles, tile = blockIdx.x % n_qtiles;
    const int h = blockIdx.y, kvh = h / (nq / nk);
    const int len = lens[s], base = starts[s];
    const int q0 = tile * BQ;
    const int nqs = min(BQ, len - q0);
    if (nqs <= 0) return;
    const int warp = threadIdx.x / QRR_WARP, lane = threadIdx.x % QRR_WARP;
    const int g = lane / 4, t = lane % 4;
    const int r0 = warp * 16;                 /* the warp's first row in the tile */
    const int ra = r0 + g, rb = r0 + g + 8;   /* this lane's two rows */
    const float scale = rsqrtf((float)T_D);

    /* q fragments for the 8 steps of 16 dims; rows past the sequence are zeros */
    uint32_t qa[T_D / 16][4];
    {
        const uint16_t *qh = q + (size_t)h * T_D;
        const uint32_t *qra = (const uint32_t *)(qh + (size_t)(base + q0 + ra) * ldq);
        const uint32_t *qrb = (const uint32_t *)(qh + (size_t)(base + q0 + rb) * ldq);
#pragma unroll
        for (int kk = 0; kk < T_D / 16; kk++) {
            const int c = kk * 8 + t; /* in half2 words: dims 16 kk + 2t */
            qa[kk][0] = ra < nqs ? qra[c] : 0u;
            qa[kk][1] = rb < nqs ? qrb[c] : 0u;
            qa[kk][2] = ra < nqs ? qra[c + 4] : 0u;
            qa[kk][3] = rb < nqs ? qrb[c + 4] : 0u;
        }
    }
    float o[T_D / 8][4];
#pragma unroll
    for (int n = 0; n < T_D / 8; n++) o[n][0] = o[n][1] = o[n][2] = o[n][3] = 0.0f;
    float ma = -INFINITY, mb = -INFINITY, la = 0.0f, lb = 0.0f;
    const int lim_a = P + q0 + ra, lim_b = P + q0 + rb; /* last key each row sees */

    const int n_keys = P + q0 + nqs;
    for (int t0 = 0; t0 < n_keys; t0 += T_TK) {
        __syncthreads(); /* previous tile consumed */
        stage_kv<T_TK, T_D>(ks, vs, T_LD, t0, n_keys, k, v, ldkv, pk, pv, P, nk, base, kvh);
        __syncthreads();
        if (r0 >= nqs || t0 > P + q0 + r0 + 15) continue; /* no row of this warp sees it */
        float sc[T_TK / 8][4];
#pragma unroll
        for (int n = 0; n < T_TK / 8; n++) sc[n][0] = sc[n][1] = sc[n][2] = sc[n][3] = 0.0f;
#pragma unroll
        for (int kk = 0; kk < T_D / 16; kk++) {
#pragma unroll
            for (int n = 0; n < T_TK / 8; n++) {
                const uint16_t *kr = ks + (n * 8 + g) * T_LD + kk * 16 + 2 * t;
                mma16816(sc[n], qa[kk], *(const uint32_t *)kr, *(const uint32_t *)(kr + 8));
            }
        }
        /* mask, scale and the rows' new maxima */
        float mxa = -INFINITY, mxb = -INFINITY;
#pragma unroll
        for (int n = 0; n < T_TK / 8; n++) {
#pragma unroll
            for (int e = 0; e < 2; e++) {
                const int j = t0 + n * 8 + 2 * t + e;
                sc[n][e] = j <= lim_a && j < n_keys ? sc[n][e] * scale : -INFINITY;
                sc[n][2 + e] = j <= lim_b && j < n_keys ? sc[n][2 + e] * scale : -INFINITY;
                mxa = fmaxf(mxa, sc[n][e]);
                mxb = fmaxf(mxb, sc[n][2 + e]);
            }
        }
        const float na = fmaxf(ma, quad_reduce(mxa, 1)), nb = fmaxf(mb, quad_reduce(mxb, 1));
        /* a row with no visible key yet (new max -inf) keeps its state: p = 0, alpha = 1 */
        const float alpha_a = na == -INFINITY ? 1.0f : __expf(ma - na);
        const float alpha_b = nb == -INFINITY ? 1.0f : __expf(mb - nb);
        float sa = 0.0f, sb = 0.0f;
#pragma unroll
        for (int n = 0; n < T_TK / 8; n++) {
#pragma unroll
            for (int e = 0; e < 2; e++) {
                sc[n][e] = na == -INFINITY ? 0.0f : __expf(sc[n][e] - na);
                sc[n][2 + e] = nb == -INFINITY ? 0.0f : __expf(sc[n][2 + e] - nb);
                sa += sc[n][e];
                sb += sc[n][2 + e];
            }
        }
        la = la * alpha_a + quad_reduce(sa, 0);
        lb = lb * alpha_b + quad_reduce(sb, 0);
        ma = na;
        mb = nb;
#pragma unroll
        for (int n = 0; n < T_D / 8; n++) {
            o[n][0] *= alpha_a;
            o[n][1] *= alpha_a;
            o[n][2] *= alpha_b;
            o[n][3] *= alpha_b;
        }
        /* O += P · V, 16 keys a step: P's A fragment is two adjacent score blocks */
#pragma unroll
        for (int kj = 0; kj < T_TK / 16; kj++) {
            const uint32_t pa[4] = {pack_half2(sc[2 * kj][0], sc[2 * kj][1]),
                                    pack_half2(sc[2 * kj][2], sc[2 * kj][3]),
                                    pack_half2(sc[2 * kj + 1][0], sc[2 * kj + 1][1]),
                                    pack_half2(sc[2 * kj + 1][2], sc[2 * kj + 1][3])};
            const uint16_t *vr = vs + (kj * 16 + lane % 16) * T_LD;
#pragma unroll
            for (int n = 0; n < T_D / 8; n++) {
                uint32_t b0, b1;
                ldmatrix_x2_trans(b0, b1, vr + n * 8);
                mma16816(o[n], pa, b0, b1);
            }
        }
    }
    const float ia = ra < nqs ? 1.0f / la : 0.0f, ib = rb < nqs ? 1.0f / lb : 0.0f;
    uint32_t *oa = (uint32_t *)(out + (size_t)(base + q0 + ra) * ldo + (size_t)h * T_D);
    uint32_t *ob = (uint32_t *)(out + (size_t)(base + q0 + rb) * ldo + (size_t)h * T_D);
#pragma unroll
    for (int n = 0; n < T_D / 8; n++) {
        if (ra < nqs) oa[n * 4 + t] = pack_half2(o[n][0] * ia, o[n][1] * ia);
        if (rb < nqs) ob[n * 4 + t] = pack_half2(o[n][2] * ib, o[n][3] * ib);
    }
}

/* ------------------------------------------------------------------------------------- */

template <int D>
static int launch_simple(const uint16_t *q, int ldq, const uint16_t *k, const uint16_t *v,
                         int ldkv, const uint16_t *pk, const uint16_t *pv, int P,
                         const int *starts, const int *lens, int S, int max_len, int last_only,
                         int nq, int nk, uint16_t *out, int ldo, cudaStream_t st)
{
    const int n_qtiles = last_only ? 1 : (max_len + S_BQ - 1) / S_BQ;
    dim3 grid((unsigned)(S * n_qtiles), (unsigned)nq);
    attn_simple_kernel<D><<<grid, S_WARPS * QRR_WARP, 0, st>>>(
        q, ldq, k, v, ldkv, pk, pv, P, starts, lens, n_qtiles, last_only, nq, nk, out, ldo);
    return qrr__launched();
}

/* The current device's multiprocessors, read at context creation (a hint only). */
static int attn_sm_count = 132;

/* One launch of the tensor-core kernel with WARPS warps (16 query rows each) a block. */
template <int WARPS>
static void launch_tc_warps(const uint16_t *q, int ldq, const uint16_t *k, const uint16_t *v,
                            int ldkv, const uint16_t *pk, const uint16_t *pv, int P,
                            const int *starts, const int *lens, int S, int max_len, int nq,
                            int nk, uint16_t *out, int ldo, cudaStream_t st)
{
    const int n_qtiles = (max_len + 16 * WARPS - 1) / (16 * WARPS);
    dim3 grid((unsigned)(S * n_qtiles), (unsigned)nq);
    attn_tc_kernel<WARPS><<<grid, WARPS * QRR_WARP, 0, st>>>(q, ldq, k, v, ldkv, pk, pv, P, starts,
                                                             lens, n_qtiles, nq, nk, out, ldo);
}

/* Four warps (64 query rows) a block, or two when four would leave the card's
 * multiprocessors idle (one short sequence: more, smaller blocks). */
static int launch_tc(const uint16_t *q, int ldq, const uint16_t *k, const uint16_t *v,
                     int ldkv, const uint16_t *pk, const uint16_t *pv, int P, const int *starts,
                     const int *lens, int S, int max_len, int nq, int nk, uint16_t *out, int ldo,
                     cudaStream_t st)
{
    const long long blocks4 = (long long)S * ((max_len + 63) / 64) * nq;
    if (blocks4 >= 2LL * attn_sm_count)
        launch_tc_warps<4>(q, ldq, k, v, ldkv, pk, pv, P, starts, lens, S, max_len, nq, nk, out,
                           ldo, st);
    else
        launch_tc_warps<2>(q, ldq, k, v, ldkv, pk, pv, P, starts, lens, S, max_len, nq, nk, out,
                           ldo, st);
    return qrr__launched();
}

/* Read once per context rather than at each launch, so that no launch makes a call that
 * is not stream work (a forward may be captured into a CUDA graph). */
extern "C" int qrr_cuda_attention_setup(void)
{
    int dev = 0, sms = 0;
    cudaError_t e = cudaGetDevice(&dev);
    if (e == cudaSuccess) e = cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, dev);
    if (e == cudaSuccess && sms > 0) attn_sm_count = sms;
    return (int)e;
}

extern "C" int qrr_cuda_attention(const uint16_t *q, int ldq, const uint16_t *k,
                                  const uint16_t *v, int ldkv, const uint16_t *pk,
                                  const uint16_t *pv, int P, const int *starts, const int *lens,
                                  int S, int max_len, int last_only, int nq, int nk, int D,
                                  uint16_t *out, int ldo, int impl, qrr_cuda_stream st)
{
    if (S <= 0) return 0;
    if (nk <= 0 || nq % nk || max_len <= 0 || (P > 0 && (!pk || !pv)) ||
        S > 65535 * 8 || nq > 65535)
        return (int)cudaErrorInvalidValue;
    /* 16-byte loads of rows: strides and head offsets must keep 8-half alignment. */
    if (ldq % 8 || ldkv % 8 || D % 8) return (int)cudaErrorMisalignedAddress;
    cudaStream_t s = (cudaStream_t)st;
    if (D == 128 && !last_only && impl != 1)
        return launch_tc(q, ldq, k, v, ldkv, pk, pv, P, starts, lens, S, max_len, nq, nk, out,
                         ldo, s);
    if (D == 128)
        return launch_simple<128>(q, ldq, k, v, ldkv, pk, pv, P, starts, lens, S, max_len,
                                  last_only, nq, nk, out, ldo, s);
    if (D == 64)
        return launch_simple<64>(q, ldq, k, v, ldkv, pk, pv, P, starts, lens, S, max_len,
                                 last_only, nq, nk, out, ldo, s);
    return (int)cudaErrorInvalidValue;
}
