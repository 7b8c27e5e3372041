/* attention_avx512.c — the AVX-512 flash-style attention: blocks of keys scored against
 * tiles of (query row, query head) lanes sharing one kv head with register-blocked FMAs, a
 * lane-wise online softmax, and P·V in register tiles. Keeps ~125 KiB of tiles on the stack;
 * allocates nothing. The driver (attention.c) splits the work. */
#include <immintrin.h>
#include "cpu_internal.h"
#include "avx512_transpose.h"
#include "vec_exp.h"

#define ALWAYS_INLINE inline __attribute__((always_inline))

/* ------------------------------------------------------------------ AVX-512
 * One tile is a kv head g, nh of its query heads and the query rows [r0, r1): M = nh * rows
 * "lanes" (lane m = row r0 + m / nh, head m % nh of the chunk), at most TM. The queries are
 * transposed once into qt[e][lane], so scores come out as S^T[key][lane]: each key row (the
 * block's rows copied together, never transposed) is broadcast element by element against
 * 16 lanes, a tile of KR keys x up to 4 lane vectors in registers. The online softmax then runs lane-wise (no horizontal
 * reductions), and P·V accumulates 4 lanes x 64 output columns per register tile, each V
 * row load shared by the nh query heads of the group. Keys go KB at a time. */

#define TM QRR__ATTN_TILE_LANES /* lanes per tile at most (32 when d > 128) */
#define TM_ELEMS QRR__ATTN_TILE_ELEMS /* TM * d, for both d ranges: stack buffers stay 32 KiB */
#define KB 48       /* keys per block */
#define KR 6        /* keys per score register tile */

/* S^T[kk][16 c0 ..] for KR keys (kp) against NC lane vectors of qt (row stride ldq). */
static ALWAYS_INLINE QRR__AVX512 void score_tile(int NC, const float *qt, int ldq,
                                                 const float *const *kp, int d, float *s,
                                                 int lds)
{
    __m512 acc[KR][4];
#pragma GCC unroll 6
    for (int r = 0; r < KR; r++)
#pragma GCC unroll 4
        for (int c = 0; c < NC; c++) acc[r][c] = _mm512_setzero_ps();
    const float *k0 = kp[0], *k1 = kp[1], *k2 = kp[2], *k3 = kp[3], *k4 = kp[4], *k5 = kp[5];
    for (int e = 0; e < d; e++) {
        __m512 qv[4];
#pragma GCC unroll 4
        for (int c = 0; c < NC; c++) qv[c] = _mm512_load_ps(qt + (size_t)e * ldq + 16 * c);
        __m512 kb[KR] = {_mm512_set1_ps(k0[e]), _mm512_set1_ps(k1[e]), _mm512_set1_ps(k2[e]),
                         _mm512_set1_ps(k3[e]), _mm512_set1_ps(k4[e]), _mm512_set1_ps(k5[e])};
#pragma GCC unroll 6
        for (int r = 0; r < KR; r++)
#pragma GCC unroll 4
            for (int c = 0; c < NC; c++) acc[r][c] = _mm512_fmadd_ps(kb[r], qv[c], acc[r][c]);
    }
#pragma GCC unroll 6
    for (int r = 0; r < KR; r++)
#pragma GCC unroll 4
        for (int c = 0; c < NC; c++) _mm512_store_ps(s + (size_t)r * lds + 16 * c, acc[r][c]);
}

/* O[4 lanes][NZ*16 columns] = O * corr + sum over nk keys of P^T[kk][lane] * V[kk]. The
 * register tile is spelled out (named variables, not arrays, so that they stay in registers). */
#define PV_ROW(r)                                                                            \
    do {                                                                                     \
        __m512 pb = _mm512_set1_ps(pr[r]);                                                   \
        a##r##0 = _mm512_fmadd_ps(pb, v0, a##r##0);                                          \
        if (NZ > 1) a##r##1 = _mm512_fmadd_ps(pb, v1, a##r##1);                              \
        if (NZ > 2) a##r##2 = _mm512_fmadd_ps(pb, v2, a##r##2);                              \
        if (NZ > 3) a##r##3 = _mm512_fmadd_ps(pb, v3, a##r##3);                              \
    } while (0)
#define PV_LOAD(r)                                                                           \
    do {                                                                                     \
        __m512 cr = _mm512_set1_ps(corr[r]);                                                 \
        const float *orow = o + (size_t)(r) * d;                                             \
        a##r##0 = _mm512_mul_ps(_mm512_load_ps(orow), cr);                                   \
        if (NZ > 1) a##r##1 = _mm512_mul_ps(_mm512_load_ps(orow + 16), cr);                  \
        if (NZ > 2) a##r##2 = _mm512_mul_ps(_mm512_load_ps(orow + 32), cr);                  \
        if (NZ > 3) a##r##3 = _mm512_mul_ps(_mm512_load_ps(orow + 48), cr);                  \
    } while (0)
#define PV_STORE(r)                                                                          \
    do {                                                                                     \
        float *orow = o + (size_t)(r) * d;                                                   \
        _mm512_store_ps(orow, a##r##0);                                                      \
        if (NZ > 1) _mm512_store_ps(orow + 16, a##r##1);                                     \
        if (NZ > 2) _mm512_store_ps(orow + 32, a##r##2);                                     \
        if (NZ > 3) _mm512_store_ps(orow + 48, a##r##3);                                     \
    } while (0)

static ALWAYS_INLINE QRR__AVX512 void pv_tile(const int NZ, float *o, int d, const float *corr,
                                              const float *p, int ldp,
                                              const float *const *vp, int z0, int nk)
{
    __m512 z = _mm512_setzero_ps();
    __m512 a00 = z, a01 = z, a02 = z, a03 = z, a10 = z, a11 = z, a12 = z, a13 = z;
    __m512 a20 = z, a21 = z, a22 = z, a23 = z, a30 = z, a31 = z, a32 = z, a33 = z;
    PV_LOAD(0);
    PV_LOAD(1);
    PV_LOAD(2);
    PV_LOAD(3);
    for (int kk = 0; kk < nk; kk++) {
        const float *vr = vp[kk] + z0;
        const float *pr = p + (size_t)kk * ldp;
        __m512 v0 = _mm512_loadu_ps(vr), v1 = z, v2 = z, v3 = z;
        if (NZ > 1) v1 = _mm512_loadu_ps(vr + 16);
        if (NZ > 2) v2 = _mm512_loadu_ps(vr + 32);
        if (NZ > 3) v3 = _mm512_loadu_ps(vr + 48);
        PV_ROW(0);
        PV_ROW(1);
        PV_ROW(2);
        PV_ROW(3);
    }
    PV_STORE(0);
    PV_STORE(1);
    PV_STORE(2);
    PV_STORE(3);
}

static __attribute__((noinline)) QRR__AVX512 void score_any(int nc, const float *qt, int ldq, const float *const *kp,
                                  int d, float *s, int lds)
{
    switch (nc) {
    case 4: score_tile(4, qt, ldq, kp, d, s, lds); break;
    case 3: score_tile(3, qt, ldq, kp, d, s, lds); break;
    case 2: score_tile(2, qt, ldq, kp, d, s, lds); break;
    default: score_tile(1, qt, ldq, kp, d, s, lds); break;
    }
}

static __attribute__((noinline)) QRR__AVX512 void pv_any(int nz, float *o, int d, const float *corr, const float *p,
                               int ldp, const float *const *vp, int z0, int nk)
{
    switch (nz) {
    case 4: pv_tile(4, o, d, corr, p, ldp, vp, z0, nk); break;
    case 3: pv_tile(3, o, d, corr, p, ldp, vp, z0, nk); break;
    case 2: pv_tile(2, o, d, corr, p, ldp, vp, z0, nk); break;
    default: pv_tile(1, o, d, corr, p, ldp, vp, z0, nk); break;
    }
}

/* The tile (g, query heads g*group + hh0 .. + nh, rows r0..r1); nh * (r1 - r0) <= TM and
 * d * that rounded up to 16 <= TM_ELEMS. */
static QRR__AVX512 void attn_tile(const qrr__attn_args *a, int g, int hh0, int nh, int r0,
                                  int r1)
{
    const int d = a->d, group = a->nq / a->nkv, P = a->n_prefix;
    const int M = nh * (r1 - r0), nc = (M + 15) / 16, ldm = 16 * nc;
    const float sc = qrr__attn_scale(d);
    _Alignas(64) float qt[TM_ELEMS];  /* [d][ldm] */
    _Alignas(64) float o[TM_ELEMS];   /* [ldm][d] */
    _Alignas(64) float sp[KB * TM];   /* scores, then probabilities: [KB][ldm] */
    _Alignas(64) float corr[TM];
    _Alignas(64) float kvb[KB * QRR__ATTN_TILE_MAX_D]; /* this block's keys, then values, packed [KB][d] */
    const float *vp[KB];
    __m512i irow[TM / 16];
    __m512 mrun[TM / 16], lrun[TM / 16];

    /* lanes -> query rows; padding lanes read a zero row and see every key */
    for (int c = 0; c < nc; c++) {
        _Alignas(64) int rows[16];
        const float *qp[16];
        for (int x = 0; x < 16; x++) {
            int m = 16 * c + x;
            if (m < M) {
                int i = r0 + m / nh, h = g * group + hh0 + m % nh;
                rows[x] = i;
                qp[x] = a->q + ((size_t)i * a->nq + h) * d;
            } else {
                rows[x] = 1 << 30;
                qp[x] = NULL;
            }
        }
        irow[c] = _mm512_load_si512(rows);
        mrun[c] = _mm512_set1_ps(-INFINITY);
        lrun[c] = _mm512_setzero_ps();
        for (int e0 = 0; e0 < d; e0 += 16) {
            __m512 rr[16];
            for (int x = 0; x < 16; x++)
                rr[x] = qp[x] ? _mm512_loadu_ps(qp[x] + e0) : _mm512_setzero_ps();
            qrr__transpose16x16(rr);
            for (int x = 0; x < 16; x++) _mm512_store_ps(qt + (size_t)(e0 + x) * ldm + 16 * c, rr[x]);
        }
    }
    memset(o, 0, sizeof(float) * (size_t)ldm * d);

    const int nk_max = P + r1; /* keys the last row sees */
    const __m512 scv = _mm512_set1_ps(sc);
    for (int j0 = 0; j0 < nk_max; j0 += KB) {
        const int nkb = nk_max - j0 < KB ? nk_max - j0 : KB;
        /* first lane that sees key j0 (lanes are ordered by row) */
        int ifirst = j0 - P > r0 ? j0 - P : r0;
        int mfirst = (ifirst - r0) * nh;
        /* pack the block's key rows (rows some KiB apart fight over a few L1 sets) */
        qrr__attn_pack_rows(a, a->pk, a->k, g, j0, nkb, nk_max, kvb, NULL);

        /* scores, KR keys at a time; lane vectors that see none of these keys are skipped */
        for (int k0 = 0; k0 < nkb; k0 += KR) {
            const float *kp[KR];
            for (int r = 0; r < KR; r++) {
                int kk = k0 + r < nkb ? k0 + r : nkb - 1;
                kp[r] = kvb + (size_t)kk * d;
            }
            int i_need = j0 + k0 - P; /* a lane sees key j0 + k0 iff its row >= this */
            int m_need = i_need > r0 ? (i_need - r0) * nh : 0;
            int c0 = m_need / 16;
            if (c0 >= nc) continue;
            score_any(nc - c0, qt + 16 * c0, ldm, kp, d, sp + (size_t)k0 * ldm + 16 * c0, ldm);
        }

        /* now the values, in the same buffer */
        qrr__attn_pack_rows(a, a->pv, a->v, g, j0, nkb, nk_max, kvb, vp);

        /* online softmax, lane-wise */
        for (int c = 0; c < nc; c++) {
            __m512 mx = _mm512_set1_ps(-INFINITY);
            int kend = 0;
            for (int kk = 0; kk < nkb; kk++) {
                __mmask16 vis = _mm512_cmp_epi32_mask(_mm512_set1_epi32(j0 + kk - P), irow[c], _MM_CMPINT_LE);
                if (!vis) break;
                kend = kk + 1;
                __m512 s = _mm512_mul_ps(_mm512_load_ps(sp + (size_t)kk * ldm + 16 * c), scv);
                mx = _mm512_mask_max_ps(mx, vis, mx, s);
            }
            __m512 mnew = _mm512_max_ps(mrun[c], mx);
            __m512 cr = qrr__exp512(_mm512_sub_ps(mrun[c], mnew)); /* 0 on the first block */
            __m512 l = _mm512_mul_ps(lrun[c], cr);
            for (int kk = 0; kk < kend; kk++) {
                __mmask16 vis = _mm512_cmp_epi32_mask(_mm512_set1_epi32(j0 + kk - P), irow[c], _MM_CMPINT_LE);
                float *sk = sp + (size_t)kk * ldm + 16 * c;
                __m512 s = _mm512_mul_ps(_mm512_load_ps(sk), scv);
                __m512 p = _mm512_maskz_mov_ps(vis, qrr__exp512(_mm512_sub_ps(s, mnew)));
                l = _mm512_add_ps(l, p);
                _mm512_store_ps(sk, p);
            }
            mrun[c] = mnew;
            lrun[c] = l;
            _mm512_store_ps(corr + 16 * c, cr);
        }

        /* O = O * corr + P^T · V, 4 lanes at a time from the first lane that sees j0 */
        for (int m = mfirst / 4 * 4; m < ldm; m += 4) {
            int mlast = m + 3 < M ? m + 3 : M - 1;
            int ilast = r0 + mlast / nh;
            int nk = P + ilast + 1 - j0;
            if (nk > nkb) nk = nkb;
            for (int z0 = 0; z0 < d; z0 += 64) {
                int nz = (d - z0) / 16 < 4 ? (d - z0) / 16 : 4;
                pv_any(nz, o + (size_t)m * d + z0, d, corr + m, sp + m, ldm, vp, z0, nk);
            }
        }
    }

    /* out = O / l */
    _Alignas(64) float lsum[TM];
    for (int c = 0; c < nc; c++) _mm512_store_ps(lsum + 16 * c, lrun[c]);
    for (int m = 0; m < M; m++) {
        int i = r0 + m / nh, h = g * group + hh0 + m % nh;
        float *oi = a->out + ((size_t)i * a->nq + h) * d;
        __m512 inv = _mm512_set1_ps(1.0f / lsum[m]);
        for (int e = 0; e < d; e += 16)
            _mm512_storeu_ps(oi + e, _mm512_mul_ps(_mm512_load_ps(o + (size_t)m * d + e), inv));
    }
}

void QRR__AVX512 qrr__attention_avx512(const qrr__attn_args *a, int h0, int h1, int r0, int r1)
{
    int d = a->d;
    if (d % 16 != 0 || d > QRR__ATTN_TILE_MAX_D) {
        qrr__attention_scalar(a, h0, h1, r0, r1);
        return;
    }
    qrr__attention_tiles(a, h0, h1, r0, r1, attn_tile);
}
