/* attention_avx2.c — the AVX2 attention (x86-64 without AVX-512): the tiles of the AVX-512
 * version (attention_avx512.c says how they work) with 8-lane vectors and the 16 registers
 * AVX2 has: KR keys x up to NCS lane vectors per score tile, PVL lanes x 16 columns per P·V
 * tile, lane masks as compare results. Keeps ~125 KiB of tiles on the stack; allocates
 * nothing. Head sizes that are not a multiple of 8 or above QRR__ATTN_TILE_MAX_D take the
 * scalar streaming version; sequences too short for a tile, qrr__attention_avx2_rows. */
#include <immintrin.h>
#include "cpu_internal.h"
#include "avx2_transpose.h"
#include "vec_exp.h"

#define ALWAYS_INLINE inline __attribute__((always_inline))

#define KB 48  /* keys per block */
#define KR 4   /* keys per score register tile */
#define NCS 3  /* lane vectors per score register tile (12 accumulators) */
#define PVL 4  /* lanes per P·V register tile (4 x 2 accumulators) */

/* S^T[kk][8 c0 ..] for KR keys (kp) against NC lane vectors of qt (row stride ldq). */
static ALWAYS_INLINE QRR__AVX2 void score_tile(int NC, const float *qt, int ldq,
                                               const float *const *kp, int d, float *s, int lds)
{
    __m256 acc[KR][NCS];
#pragma GCC unroll 4
    for (int r = 0; r < KR; r++)
#pragma GCC unroll 3
        for (int c = 0; c < NC; c++) acc[r][c] = _mm256_setzero_ps();
    const float *k0 = kp[0], *k1 = kp[1], *k2 = kp[2], *k3 = kp[3];
    for (int e = 0; e < d; e++) {
        __m256 qv[NCS];
#pragma GCC unroll 3
        for (int c = 0; c < NC; c++) qv[c] = _mm256_load_ps(qt + (size_t)e * ldq + 8 * c);
        __m256 kb[KR] = {_mm256_broadcast_ss(k0 + e), _mm256_broadcast_ss(k1 + e),
                         _mm256_broadcast_ss(k2 + e), _mm256_broadcast_ss(k3 + e)};
#pragma GCC unroll 4
        for (int r = 0; r < KR; r++)
#pragma GCC unroll 3
            for (int c = 0; c < NC; c++) acc[r][c] = _mm256_fmadd_ps(kb[r], qv[c], acc[r][c]);
    }
#pragma GCC unroll 4
    for (int r = 0; r < KR; r++)
#pragma GCC unroll 3
        for (int c = 0; c < NC; c++) _mm256_store_ps(s + (size_t)r * lds + 8 * c, acc[r][c]);
}

static __attribute__((noinline)) QRR__AVX2 void score_any(int nc, const float *qt, int ldq,
                                                          const float *const *kp, int d,
                                                          float *s, int lds)
{
    switch (nc) {
    case 3: score_tile(3, qt, ldq, kp, d, s, lds); break;
    case 2: score_tile(2, qt, ldq, kp, d, s, lds); break;
    default: score_tile(1, qt, ldq, kp, d, s, lds); break;
    }
}

/* O[PVL lanes][NZ*8 columns] = O * corr + sum over nk keys of P^T[kk][lane] * V[kk]. */
static ALWAYS_INLINE QRR__AVX2 void pv_tile(int NZ, float *o, int d, const float *corr,
                                            const float *p, int ldp, const float *const *vp,
                                            int z0, int nk)
{
    __m256 a[PVL][2];
#pragma GCC unroll 4
    for (int r = 0; r < PVL; r++) {
        __m256 cr = _mm256_broadcast_ss(corr + r);
#pragma GCC unroll 2
        for (int z = 0; z < NZ; z++)
            a[r][z] = _mm256_mul_ps(_mm256_load_ps(o + (size_t)r * d + 8 * z), cr);
    }
    for (int kk = 0; kk < nk; kk++) {
        const float *vr = vp[kk] + z0, *pr = p + (size_t)kk * ldp;
        __m256 v[2];
#pragma GCC unroll 2
        for (int z = 0; z < NZ; z++) v[z] = _mm256_loadu_ps(vr + 8 * z);
#pragma GCC unroll 4
        for (int r = 0; r < PVL; r++) {
            __m256 pb = _mm256_broadcast_ss(pr + r);
#pragma GCC unroll 2
            for (int z = 0; z < NZ; z++) a[r][z] = _mm256_fmadd_ps(pb, v[z], a[r][z]);
        }
    }
#pragma GCC unroll 4
    for (int r = 0; r < PVL; r++)
#pragma GCC unroll 2
        for (int z = 0; z < NZ; z++) _mm256_store_ps(o + (size_t)r * d + 8 * z, a[r][z]);
}

/* Lanes of vector c that see key position `key` (row >= key), as a compare mask. */
static ALWAYS_INLINE QRR__AVX2 __m256 visible(__m256i irow, int key)
{
    return _mm256_castsi256_ps(_mm256_cmpgt_epi32(irow, _mm256_set1_epi32(key - 1)));
}

/* The tile (g, query heads g*group + hh0 .. + nh, rows r0..r1); nh * (r1 - r0) <= the
 * lanes qrr__attention_tile gives for d. */
static QRR__AVX2 void attn_tile(const qrr__attn_args *a, int g, int hh0, int nh, int r0, int r1)
{
    const int d = a->d, group = a->nq / a->nkv, P = a->n_prefix;
    const int M = nh * (r1 - r0), nc = (M + 7) / 8, ldm = 8 * nc;
    const float sc = qrr__attn_scale(d);
    _Alignas(32) float qt[QRR__ATTN_TILE_ELEMS]; /* [d][ldm] */
    _Alignas(32) float o[QRR__ATTN_TILE_ELEMS];  /* [ldm][d] */
    _Alignas(32) float sp[KB * QRR__ATTN_TILE_LANES]; /* scores, then probabilities: [KB][ldm] */
    _Alignas(32) float corr[QRR__ATTN_TILE_LANES];
    _Alignas(32) float kvb[KB * QRR__ATTN_TILE_MAX_D]; /* this block's keys, then values */
    const float *vp[KB];
    __m256i irow[QRR__ATTN_TILE_LANES / 8];
    __m256 mrun[QRR__ATTN_TILE_LANES / 8], lrun[QRR__ATTN_TILE_LANES / 8];

    /* lanes -> query rows, queries transposed into qt; padding lanes read zeros and see
     * every key (finite scores, never written out) */
    for (int c = 0; c < nc; c++) {
        _Alignas(32) int rows[8];
        const float *qp[8];
        for (int x = 0; x < 8; x++) {
            int m = 8 * c + x;
            rows[x] = m < M ? r0 + m / nh : 1 << 30;
            qp[x] = m < M ? a->q + ((size_t)(r0 + m / nh) * a->nq +
                                    (size_t)(g * group + hh0 + m % nh)) * d
                          : NULL;
        }
        irow[c] = _mm256_load_si256((const __m256i *)rows);
        mrun[c] = _mm256_set1_ps(-INFINITY);
        lrun[c] = _mm256_setzero_ps();
        for (int e0 = 0; e0 < d; e0 += 8) { /* d is a multiple of 8 here */
            __m256 rr[8];
            for (int x = 0; x < 8; x++)
                rr[x] = qp[x] ? _mm256_loadu_ps(qp[x] + e0) : _mm256_setzero_ps();
            qrr__transpose8x8(rr);
            for (int x = 0; x < 8; x++) _mm256_store_ps(qt + (size_t)(e0 + x) * ldm + 8 * c, rr[x]);
        }
    }
    memset(o, 0, sizeof(float) * (size_t)ldm * d);

    const int nk_max = P + r1; /* keys the last row sees */
    const __m256 scv = _mm256_set1_ps(sc);
    for (int j0 = 0; j0 < nk_max; j0 += KB) {
        const int nkb = nk_max - j0 < KB ? nk_max - j0 : KB;
        int ifirst = j0 - P > r0 ? j0 - P : r0; /* first row that sees key j0 */
        int mfirst = (ifirst - r0) * nh;
        qrr__attn_pack_rows(a, a->pk, a->k, g, j0, nkb, nk_max, kvb, NULL);

        /* scores, KR keys at a time, from the first lane vector that sees them */
        for (int k0 = 0; k0 < nkb; k0 += KR) {
            const float *kp[KR];
            for (int r = 0; r < KR; r++) kp[r] = kvb + (size_t)(k0 + r < nkb ? k0 + r : nkb - 1) * d;
            int i_need = j0 + k0 - P;
            int c0 = (i_need > r0 ? (i_need - r0) * nh : 0) / 8;
            for (; c0 < nc; c0 += NCS)
                score_any(nc - c0 < NCS ? nc - c0 : NCS, qt + 8 * c0, ldm, kp, d,
                          sp + (size_t)k0 * ldm + 8 * c0, ldm);
        }

        qrr__attn_pack_rows(a, a->pv, a->v, g, j0, nkb, nk_max, kvb, vp);

        /* online softmax, lane-wise */
        for (int c = 0; c < nc; c++) {
            __m256 mx = _mm256_set1_ps(-INFINITY);
            int kend = 0;
            for (int kk = 0; kk < nkb; kk++) {
                __m256 vis = visible(irow[c], j0 + kk - P);
                if (!_mm256_movemask_ps(vis)) break;
                kend = kk + 1;
                __m256 s = _mm256_mul_ps(_mm256_load_ps(sp + (size_t)kk * ldm + 8 * c), scv);
                mx = _mm256_blendv_ps(mx, _mm256_max_ps(mx, s), vis);
            }
            __m256 mnew = _mm256_max_ps(mrun[c], mx);
            __m256 cr = qrr__exp256(_mm256_sub_ps(mrun[c], mnew)); /* 0 on the first block */
            __m256 l = _mm256_mul_ps(lrun[c], cr);
            for (int kk = 0; kk < kend; kk++) {
                __m256 vis = visible(irow[c], j0 + kk - P);
                float *sk = sp + (size_t)kk * ldm + 8 * c;
                __m256 s = _mm256_mul_ps(_mm256_load_ps(sk), scv);
                __m256 p = _mm256_and_ps(vis, qrr__exp256(_mm256_sub_ps(s, mnew)));
                l = _mm256_add_ps(l, p);
                _mm256_store_ps(sk, p);
            }
            mrun[c] = mnew;
            lrun[c] = l;
            _mm256_store_ps(corr + 8 * c, cr);
        }

        /* O = O * corr + P^T · V, PVL lanes at a time from the first lane that sees j0 */
        for (int m = mfirst / PVL * PVL; m < ldm; m += PVL) {
            int mlast = m + PVL - 1 < M ? m + PVL - 1 : M - 1;
            int nk = P + r0 + mlast / nh + 1 - j0;
            if (nk > nkb) nk = nkb;
            for (int z0 = 0; z0 < d; z0 += 16) {
                if (d - z0 >= 16)
                    pv_tile(2, o + (size_t)m * d + z0, d, corr + m, sp + m, ldm, vp, z0, nk);
                else
                    pv_tile(1, o + (size_t)m * d + z0, d, corr + m, sp + m, ldm, vp, z0, nk);
            }
        }
    }

    /* out = O / l */
    _Alignas(32) float lsum[QRR__ATTN_TILE_LANES];
    for (int c = 0; c < nc; c++) _mm256_store_ps(lsum + 8 * c, lrun[c]);
    for (int m = 0; m < M; m++) {
        int i = r0 + m / nh, h = g * group + hh0 + m % nh;
        float *oi = a->out + ((size_t)i * a->nq + h) * d;
        __m256 inv = _mm256_set1_ps(1.0f / lsum[m]);
        for (int e = 0; e < d; e += 8)
            _mm256_storeu_ps(oi + e, _mm256_mul_ps(_mm256_load_ps(o + (size_t)m * d + e), inv));
    }
}

QRR__AVX2 void qrr__attention_avx2(const qrr__attn_args *a, int h0, int h1, int r0, int r1)
{
    int d = a->d;
    if (d % 8 != 0 || d > QRR__ATTN_TILE_MAX_D) {
        qrr__attention_scalar(a, h0, h1, r0, r1);
        return;
    }
    qrr__attention_tiles(a, h0, h1, r0, r1, attn_tile);
}

/* The streaming algorithm of attention.c, one query row at a time, with the d-long dot
 * products and updates 8 lanes wide: for sequences too short to fill a tile's lanes. */
QRR__AVX2 void qrr__attention_avx2_rows(const qrr__attn_args *a, int h0, int h1, int r0, int r1)
{
    int d = a->d, group = a->nq / a->nkv;
    if (d % 8 != 0) {
        qrr__attention_scalar(a, h0, h1, r0, r1);
        return;
    }
    float sc = qrr__attn_scale(d);
    _Alignas(32) float acc[QRR_MAX_HEAD_DIM_CPU];
    for (int h = h0; h < h1; h++) {
        int g = h / group;
        for (int i = r0; i < r1; i++) {
            const float *qi = a->q + ((size_t)i * a->nq + h) * d;
            int nk = a->n_prefix + i + 1;
            float mx = -INFINITY, l = 0.0f;
            for (int e = 0; e < d; e++) acc[e] = 0.0f;
            for (int j = 0; j < nk; j++) {
                const float *kj = qrr__key_row(a, a->pk, a->k, j, g);
                __m256 s0 = _mm256_setzero_ps(), s1 = _mm256_setzero_ps();
                int e = 0;
                for (; e + 16 <= d; e += 16) {
                    s0 = _mm256_fmadd_ps(_mm256_loadu_ps(qi + e), _mm256_loadu_ps(kj + e), s0);
                    s1 = _mm256_fmadd_ps(_mm256_loadu_ps(qi + e + 8), _mm256_loadu_ps(kj + e + 8), s1);
                }
                if (e < d) s0 = _mm256_fmadd_ps(_mm256_loadu_ps(qi + e), _mm256_loadu_ps(kj + e), s0);
                s0 = _mm256_add_ps(s0, s1);
                __m128 h4 = _mm_add_ps(_mm256_castps256_ps128(s0), _mm256_extractf128_ps(s0, 1));
                h4 = _mm_add_ps(h4, _mm_movehl_ps(h4, h4));
                h4 = _mm_add_ss(h4, _mm_movehdup_ps(h4));
                float s = _mm_cvtss_f32(h4) * sc;
                const float *vj = qrr__key_row(a, a->pv, a->v, j, g);
                float p = 1.0f, corr = 1.0f;
                if (s > mx) {
                    corr = expf(mx - s); /* 0 on the first key */
                    mx = s;
                } else {
                    p = expf(s - mx);
                }
                l = l * corr + p;
                __m256 pv = _mm256_set1_ps(p), cv = _mm256_set1_ps(corr);
                for (e = 0; e < d; e += 8) {
                    __m256 o = _mm256_loadu_ps(acc + e);
                    if (corr != 1.0f) o = _mm256_mul_ps(o, cv);
                    _mm256_storeu_ps(acc + e, _mm256_fmadd_ps(pv, _mm256_loadu_ps(vj + e), o));
                }
            }
            float *oi = a->out + ((size_t)i * a->nq + h) * d;
            float inv = 1.0f / l;
            for (int e = 0; e < d; e++) oi[e] = acc[e] * inv;
        }
    }
}
