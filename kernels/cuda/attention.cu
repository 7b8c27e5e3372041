/* attention.cu — causal grouped-query attention over packed variable-length sequences that
 * also attend to a shared prefix's cached keys/values. Two versions: a simple one (fp32
 * FMA, one lane per key of a 32-key tile, online softmax) and a tensor-core one (WMMA
 * 16x16x16 f16 products, fp32 accumulation, online softmax in fp32 over shared memory).
 *
 * Virtual key index j of a sequence: j < P is prefix row j, j >= P own token j - P. Query
 * token i (own index) sees keys 0 .. P + i. */
#include <mma.h>

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
/* Tensor-core version (D = 128). Block = (sequence, query tile of 64, head); 4 warps, each
 * owning 16 query rows. Per 64-key tile: S = Q·K^T with WMMA into shared fp32; each warp
 * turns its 16 rows into probabilities (online softmax, 2 lanes per row), rescales its fp32
 * output rows in shared memory, then O += P·V with WMMA (accumulators loaded from and stored
 * back to shared memory). Dynamic shared memory: about 104 KB. */

namespace wmma = nvcuda::wmma;

#define T_BQ 64
#define T_TK 64
#define T_D 128
#define T_WARPS 4
#define T_LDH (T_D + 8)   /* f16 rows of q, k, v (halves) */
#define T_LDS (T_TK + 4)  /* fp32 rows of scores (floats) */
#define T_LDP (T_TK + 8)  /* f16 rows of probabilities (halves) */
#define T_LDO (T_D + 4)   /* fp32 rows of the output (floats) */

struct attn_tc_smem {
    __half q[T_BQ][T_LDH];
    __half k[T_TK][T_LDH];
    __half v[T_TK][T_LDH];
    __half p[T_BQ][T_LDP];
    float s[T_BQ][T_LDS];
    float o[T_BQ][T_LDO];
    float m[T_BQ], l[T_BQ];
};

static __global__ void __launch_bounds__(T_WARPS * QRR_WARP)
attn_tc_kernel(const uint16_t *q, int ldq, const uint16_t *k, const uint16_t *v, int ldkv,
               const uint16_t *pk, const uint16_t *pv, int P, const int *starts,
               const int *lens, int n_qtiles, int nq, int nk, uint16_t *out, int ldo)
{
    extern __shared__ __align__(128) unsigned char smem_raw[];
    attn_tc_smem &sm = *(attn_tc_smem *)smem_raw;
    const int s = blockIdx.x / n_qtiles, tile = blockIdx.x % n_qtiles;
    const int h = blockIdx.y, kvh = h / (nq / nk);
    const int len = lens[s], base = starts[s];
    const int q0 = tile * T_BQ;
    const int nqs = min(T_BQ, len - q0);
    if (nqs <= 0) return;
    const int warp = threadIdx.x / QRR_WARP, lane = threadIdx.x % QRR_WARP;
    const float scale = rsqrtf((float)T_D);
    constexpr int CH = T_D / 8;

    for (int i = threadIdx.x; i < T_BQ * CH; i += blockDim.x) {
        const int r = i / CH, c = (i % CH) * 8;
        const uint16_t *src = q;
        if (r < nqs) src = q + (size_t)(base + q0 + r) * ldq + (size_t)h * T_D + c;
        qrr__cp_async16(&sm.q[r][c], src, r < nqs);
    }
    /* waited for with the first key tile's copies */
    for (int i = threadIdx.x; i < T_BQ * T_D; i += blockDim.x) sm.o[i / T_D][i % T_D] = 0.0f;
    for (int i = threadIdx.x; i < T_BQ; i += blockDim.x) {
        sm.m[i] = -INFINITY;
        sm.l[i] = 0.0f;
    }

    const int r0 = warp * 16; /* this warp's first query row in the tile */
    const int n_keys = P + q0 + nqs;
    for (int t0 = 0; t0 < n_keys; t0 += T_TK) {
        __syncthreads(); /* previous tile's k/v consumed; first time: q, o, m, l written */
        stage_kv<T_TK, T_D>((uint16_t *)&sm.k[0][0], (uint16_t *)&sm.v[0][0], T_LDH, t0, n_keys,
                            k, v, ldkv, pk, pv, P, nk, base, kvh);
        __syncthreads();
        /* Rows of this warp that see any key of this tile: row r sees keys <= P + q0 + r. */
        const bool active = r0 < nqs && t0 <= P + q0 + r0 + 15;
        if (active) {
            /* S[r0 .. r0+15][0 .. 63] = Q · K^T */
            wmma::fragment<wmma::accumulator, 16, 16, 16, float> sf[T_TK / 16];
#pragma unroll
            for (int n = 0; n < T_TK / 16; n++) wmma::fill_fragment(sf[n], 0.0f);
#pragma unroll
            for (int kk = 0; kk < T_D; kk += 16) {
                wmma::fragment<wmma::matrix_a, 16, 16, 16, __half, wmma::row_major> af;
                wmma::load_matrix_sync(af, &sm.q[r0][kk], T_LDH);
#pragma unroll
                for (int n = 0; n < T_TK / 16; n++) {
                    wmma::fragment<wmma::matrix_b, 16, 16, 16, __half, wmma::col_major> bf;
                    wmma::load_matrix_sync(bf, &sm.k[n * 16][kk], T_LDH);
                    wmma::mma_sync(sf[n], af, bf, sf[n]);
                }
            }
#pragma unroll
            for (int n = 0; n < T_TK / 16; n++)
                wmma::store_matrix_sync(&sm.s[r0][n * 16], sf[n], T_LDS, wmma::mem_row_major);
            __syncwarp();
            /* Online softmax: lanes 2i and 2i+1 share row r0 + i, 32 columns each. */
            const int r = r0 + lane / 2, half = lane % 2;
            const int limit = P + q0 + r; /* last key row r sees */
            float mx = -INFINITY;
            for (int c = half * 32; c < half * 32 + 32; c++)
                if (t0 + c <= limit && t0 + c < n_keys) mx = fmaxf(mx, sm.s[r][c] * scale);
            mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 1));
            const float m_old = sm.m[r];
            const float m_new = fmaxf(m_old, mx);
            /* A row with no visible key here (m_new = -inf) keeps its state: p = 0, alpha = 1. */
            const float alpha = m_new == -INFINITY ? 1.0f : __expf(m_old - m_new);
            float sum = 0.0f;
            for (int c = half * 32; c < half * 32 + 32; c++) {
                float p = 0.0f;
                if (t0 + c <= limit && t0 + c < n_keys) p = __expf(sm.s[r][c] * scale - m_new);
                sum += p;
                sm.p[r][c] = __float2half_rn(p);
            }
            sum += __shfl_xor_sync(0xffffffffu, sum, 1);
            for (int c = half * 64; c < half * 64 + 64; c++) sm.o[r][c] *= alpha;
            __syncwarp();
            if (half == 0) {
                sm.m[r] = m_new;
                sm.l[r] = sm.l[r] * alpha + sum;
            }
            __syncwarp();
            /* O[r0 .. r0+15][:] += P · V */
#pragma unroll
            for (int n = 0; n < T_D / 16; n++) {
                wmma::fragment<wmma::accumulator, 16, 16, 16, float> of;
                wmma::load_matrix_sync(of, &sm.o[r0][n * 16], T_LDO, wmma::mem_row_major);
#pragma unroll
                for (int kk = 0; kk < T_TK; kk += 16) {
                    wmma::fragment<wmma::matrix_a, 16, 16, 16, __half, wmma::row_major> pf;
                    wmma::fragment<wmma::matrix_b, 16, 16, 16, __half, wmma::row_major> vf;
                    wmma::load_matrix_sync(pf, &sm.p[r0][kk], T_LDP);
                    wmma::load_matrix_sync(vf, &sm.v[kk][n * 16], T_LDH);
                    wmma::mma_sync(of, pf, vf, of);
                }
                wmma::store_matrix_sync(&sm.o[r0][n * 16], of, T_LDO, wmma::mem_row_major);
            }
        }
    }
    __syncthreads();
    for (int i = threadIdx.x; i < T_BQ * T_D; i += blockDim.x) {
        int r = i / T_D, c = i % T_D;
        if (r >= nqs) continue;
        out[(size_t)(base + q0 + r) * ldo + (size_t)h * T_D + c] = qrr__f2h(sm.o[r][c] / sm.l[r]);
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

static int launch_tc(const uint16_t *q, int ldq, const uint16_t *k, const uint16_t *v, int ldkv,
                     const uint16_t *pk, const uint16_t *pv, int P, const int *starts,
                     const int *lens, int S, int max_len, int nq, int nk, uint16_t *out, int ldo,
                     cudaStream_t st)
{
    const size_t smem = sizeof(attn_tc_smem);
    const int n_qtiles = (max_len + T_BQ - 1) / T_BQ;
    dim3 grid((unsigned)(S * n_qtiles), (unsigned)nq);
    attn_tc_kernel<<<grid, T_WARPS * QRR_WARP, smem, st>>>(q, ldq, k, v, ldkv, pk, pv, P, starts,
                                                           lens, n_qtiles, nq, nk, out, ldo);
    return qrr__launched();
}

/* Raised once per context rather than at each launch, so that no launch makes a call that
 * is not stream work (a forward may be captured into a CUDA graph). */
extern "C" int qrr_cuda_attention_setup(void)
{
    return (int)cudaFuncSetAttribute(attn_tc_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                     (int)sizeof(attn_tc_smem));
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
