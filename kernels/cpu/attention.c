/* attention.c — causal grouped-query attention over a sequence that may follow a cached
 * prefix: the double-precision reference, a scalar streaming version (online softmax, O(d)
 * memory per query) and an AVX-512 version that takes keys 16 at a time (K block transposed
 * once, scores as vectors, vector exp) for 4 query rows together. The driver splits heads x
 * query blocks among the pool's threads. Nothing here allocates O(t^2). */
#include <immintrin.h>
#include <stdlib.h>
#include "cpu_internal.h"

#define QB 64     /* query rows per task */
#define VEC_MAX_D 256 /* head_dim limit of the vector version (stack buffers) */
#define ALWAYS_INLINE inline __attribute__((always_inline))

static float attn_scale(int d)
{
    return (float)(1.0 / sqrt((double)d));
}

/* Key j of kv head g: prefix keys first, then the sequence's own. */
static const float *key_row(const qrr__attn_args *a, const float *pre, const float *own, int j,
                            int g)
{
    size_t kd = (size_t)a->nkv * a->d;
    if (j < a->n_prefix) return pre + (size_t)j * kd + (size_t)g * a->d;
    return own + (size_t)(j - a->n_prefix) * kd + (size_t)g * a->d;
}

void qrr_cpu_ref_attention(const float *q, const float *k, const float *v, const float *pk,
                           const float *pv, int n_prefix, int t, int nq, int nkv, int d,
                           float *out)
{
    qrr__attn_args a = {q, k, v, pk, pv, n_prefix, t, nq, nkv, d, out};
    double *s = malloc(sizeof(double) * ((size_t)n_prefix + (size_t)t));
    double *o = malloc(sizeof(double) * (size_t)d);
    if (!s || !o) {
        for (size_t i = 0; i < (size_t)t * nq * d; i++) out[i] = NAN;
        free(s);
        free(o);
        return;
    }
    double sc = 1.0 / sqrt((double)d);
    int group = nq / nkv;
    for (int h = 0; h < nq; h++) {
        int g = h / group;
        for (int i = 0; i < t; i++) {
            const float *qi = q + ((size_t)i * nq + h) * d;
            int nk = n_prefix + i + 1;
            double mx = -INFINITY, sum = 0.0;
            for (int j = 0; j < nk; j++) {
                const float *kj = key_row(&a, pk, k, j, g);
                double dot = 0.0;
                for (int e = 0; e < d; e++) dot += (double)qi[e] * kj[e];
                s[j] = dot * sc;
                if (s[j] > mx) mx = s[j];
            }
            for (int e = 0; e < d; e++) o[e] = 0.0;
            for (int j = 0; j < nk; j++) {
                double p = exp(s[j] - mx);
                sum += p;
                const float *vj = key_row(&a, pv, v, j, g);
                for (int e = 0; e < d; e++) o[e] += p * vj[e];
            }
            float *oi = out + ((size_t)i * nq + h) * d;
            for (int e = 0; e < d; e++) oi[e] = (float)(o[e] / sum);
        }
    }
    free(s);
    free(o);
}

/* Scalar streaming version: one query row at a time, online softmax in fp32. */
void qrr__attention_scalar(const qrr__attn_args *a, int h0, int h1, int r0, int r1)
{
    int d = a->d, group = a->nq / a->nkv;
    float sc = attn_scale(d);
    float acc[QRR_MAX_HEAD_DIM_CPU];
    for (int h = h0; h < h1; h++) {
        int g = h / group;
        for (int i = r0; i < r1; i++) {
            const float *qi = a->q + ((size_t)i * a->nq + h) * d;
            int nk = a->n_prefix + i + 1;
            float mx = -INFINITY, l = 0.0f;
            for (int e = 0; e < d; e++) acc[e] = 0.0f;
            for (int j = 0; j < nk; j++) {
                const float *kj = key_row(a, a->pk, a->k, j, g);
                float dot = 0.0f;
                for (int e = 0; e < d; e++) dot += qi[e] * kj[e];
                float s = dot * sc;
                const float *vj = key_row(a, a->pv, a->v, j, g);
                if (s > mx) {
                    float corr = expf(mx - s); /* 0 on the first key */
                    l = l * corr + 1.0f;
                    for (int e = 0; e < d; e++) acc[e] = acc[e] * corr + vj[e];
                    mx = s;
                } else {
                    float p = expf(s - mx);
                    l += p;
                    for (int e = 0; e < d; e++) acc[e] += p * vj[e];
                }
            }
            float *oi = a->out + ((size_t)i * a->nq + h) * d;
            float inv = 1.0f / l;
            for (int e = 0; e < d; e++) oi[e] = acc[e] * inv;
        }
    }
}

/* AVX2: the scalar algorithm with the d-long dot products and updates 8 lanes wide. */
QRR__AVX2 void qrr__attention_avx2(const qrr__attn_args *a, int h0, int h1, int r0, int r1)
{
    int d = a->d, group = a->nq / a->nkv;
    if (d % 8 != 0) {
        qrr__attention_scalar(a, h0, h1, r0, r1);
        return;
    }
    float sc = attn_scale(d);
    _Alignas(32) float acc[QRR_MAX_HEAD_DIM_CPU];
    for (int h = h0; h < h1; h++) {
        int g = h / group;
        for (int i = r0; i < r1; i++) {
            const float *qi = a->q + ((size_t)i * a->nq + h) * d;
            int nk = a->n_prefix + i + 1;
            float mx = -INFINITY, l = 0.0f;
            for (int e = 0; e < d; e++) acc[e] = 0.0f;
            for (int j = 0; j < nk; j++) {
                const float *kj = key_row(a, a->pk, a->k, j, g);
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
                const float *vj = key_row(a, a->pv, a->v, j, g);
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

/* ------------------------------------------------------------------ AVX-512 */

/* e^x for x <= 0 (larger x is not needed here); x below -104 gives 0. Max error ~2 ulp. */
static ALWAYS_INLINE QRR__AVX512 __m512 exp512(__m512 x)
{
    x = _mm512_max_ps(x, _mm512_set1_ps(-104.0f));
    __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504088896341f)),
                                    _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693145751953125f), x);
    r = _mm512_fnmadd_ps(n, _mm512_set1_ps(1.428606765330187045e-06f), r);
    __m512 p = _mm512_set1_ps(1.0f / 5040.0f);
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 720.0f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 120.0f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 24.0f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 6.0f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(0.5f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f));
    return _mm512_scalef_ps(p, n);
}

static ALWAYS_INLINE QRR__AVX512 void transpose16x16(__m512 r[16])
{
    __m512 a[16], b[16];
    for (int i = 0; i < 8; i++) {
        a[2 * i] = _mm512_unpacklo_ps(r[2 * i], r[2 * i + 1]);
        a[2 * i + 1] = _mm512_unpackhi_ps(r[2 * i], r[2 * i + 1]);
    }
    for (int i = 0; i < 4; i++) {
        __m512d a0 = _mm512_castps_pd(a[4 * i]), a1 = _mm512_castps_pd(a[4 * i + 1]);
        __m512d a2 = _mm512_castps_pd(a[4 * i + 2]), a3 = _mm512_castps_pd(a[4 * i + 3]);
        b[4 * i + 0] = _mm512_castpd_ps(_mm512_unpacklo_pd(a0, a2));
        b[4 * i + 1] = _mm512_castpd_ps(_mm512_unpackhi_pd(a0, a2));
        b[4 * i + 2] = _mm512_castpd_ps(_mm512_unpacklo_pd(a1, a3));
        b[4 * i + 3] = _mm512_castpd_ps(_mm512_unpackhi_pd(a1, a3));
    }
    for (int c = 0; c < 4; c++) {
        __m512 u0 = _mm512_shuffle_f32x4(b[c], b[4 + c], 0x44);
        __m512 u1 = _mm512_shuffle_f32x4(b[c], b[4 + c], 0xEE);
        __m512 u2 = _mm512_shuffle_f32x4(b[8 + c], b[12 + c], 0x44);
        __m512 u3 = _mm512_shuffle_f32x4(b[8 + c], b[12 + c], 0xEE);
        r[0 + c] = _mm512_shuffle_f32x4(u0, u2, 0x88);
        r[4 + c] = _mm512_shuffle_f32x4(u0, u2, 0xDD);
        r[8 + c] = _mm512_shuffle_f32x4(u1, u3, 0x88);
        r[12 + c] = _mm512_shuffle_f32x4(u1, u3, 0xDD);
    }
}

/* Rows of one task: running max, sum and output accumulator. */
typedef struct row_state {
    float m, l;
} row_state;

/* Scores of R query rows against 16 keys (kt: [d][16]), scaled; 2 chains per row. */
static ALWAYS_INLINE QRR__AVX512 void scores(int R, const float *const *qr, const float *kt,
                                             int d, float sc, __m512 *s)
{
    __m512 s0[4], s1[4];
#pragma GCC unroll 4
    for (int r = 0; r < R; r++) s0[r] = s1[r] = _mm512_setzero_ps();
    for (int e = 0; e < d; e += 2) {
        __m512 k0 = _mm512_load_ps(kt + (size_t)e * 16), k1 = _mm512_load_ps(kt + (size_t)(e + 1) * 16);
#pragma GCC unroll 4
        for (int r = 0; r < R; r++) {
            s0[r] = _mm512_fmadd_ps(_mm512_set1_ps(qr[r][e]), k0, s0[r]);
            s1[r] = _mm512_fmadd_ps(_mm512_set1_ps(qr[r][e + 1]), k1, s1[r]);
        }
    }
#pragma GCC unroll 4
    for (int r = 0; r < R; r++) s[r] = _mm512_mul_ps(_mm512_add_ps(s0[r], s1[r]), _mm512_set1_ps(sc));
}

void QRR__AVX512 qrr__attention_avx512(const qrr__attn_args *a, int h0, int h1, int r0, int r1)
{
    int d = a->d;
    if (d % 16 != 0 || d > VEC_MAX_D || r1 - r0 > QB) {
        qrr__attention_scalar(a, h0, h1, r0, r1);
        return;
    }
    int group = a->nq / a->nkv, nv = d / 16;
    float sc = attn_scale(d);
    _Alignas(64) float kt[VEC_MAX_D * 16];
    _Alignas(64) float acc[QB * VEC_MAX_D];
    _Alignas(64) float pbuf[16];
    row_state st[QB];
    for (int h = h0; h < h1; h++) {
        int g = h / group;
        int nrows = r1 - r0;
        for (int r = 0; r < nrows; r++) {
            st[r].m = -INFINITY;
            st[r].l = 0.0f;
            for (int e = 0; e < d; e++) acc[r * d + e] = 0.0f;
        }
        int nk_max = a->n_prefix + r1; /* keys the last row sees */
        for (int j0 = 0; j0 < nk_max; j0 += 16) {
            int nkb = nk_max - j0 < 16 ? nk_max - j0 : 16;
            /* transpose this key block: kt[e][jj] */
            for (int e0 = 0; e0 < d; e0 += 16) {
                __m512 rr[16];
                for (int jj = 0; jj < 16; jj++)
                    rr[jj] = jj < nkb ? _mm512_loadu_ps(key_row(a, a->pk, a->k, j0 + jj, g) + e0)
                                      : _mm512_setzero_ps();
                transpose16x16(rr);
                for (int e = 0; e < 16; e++) _mm512_store_ps(kt + (size_t)(e0 + e) * 16, rr[e]);
            }
            /* rows whose window reaches this block: row i sees keys < n_prefix + i + 1 */
            int rfirst = j0 - a->n_prefix; /* first row that sees key j0 */
            int rb = rfirst > r0 ? rfirst : r0;
            for (int i = rb; i < r1; i += 4) {
                int R = r1 - i < 4 ? r1 - i : 4;
                const float *qr[4];
                __m512 s[4];
                for (int r = 0; r < R; r++) qr[r] = a->q + ((size_t)(i + r) * a->nq + h) * d;
                switch (R) {
                case 4: scores(4, qr, kt, d, sc, s); break;
                case 3: scores(3, qr, kt, d, sc, s); break;
                case 2: scores(2, qr, kt, d, sc, s); break;
                default: scores(1, qr, kt, d, sc, s); break;
                }
                for (int r = 0; r < R; r++) {
                    int row = i + r;
                    int lim = a->n_prefix + row + 1 - j0; /* keys of this block the row sees */
                    if (lim > nkb) lim = nkb;
                    __mmask16 mk = lim >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << lim) - 1u);
                    row_state *rs = &st[row - r0];
                    float bmax = _mm512_mask_reduce_max_ps(mk, s[r]);
                    float mnew = bmax > rs->m ? bmax : rs->m;
                    __m512 p = _mm512_maskz_mov_ps(mk, exp512(_mm512_sub_ps(s[r], _mm512_set1_ps(mnew))));
                    /* the running max moved: rescale what was summed so far */
                    float corr = mnew == rs->m ? 1.0f : rs->m == -INFINITY ? 0.0f : expf(rs->m - mnew);
                    rs->l = rs->l * corr + _mm512_reduce_add_ps(p);
                    rs->m = mnew;
                    _mm512_store_ps(pbuf, p);
                    float *ac = acc + (size_t)(row - r0) * d;
                    __m512 cv = _mm512_set1_ps(corr);
                    for (int vv = 0; vv < nv; vv += 8) { /* 8 independent chains */
                        int nvv = nv - vv < 8 ? nv - vv : 8;
                        __m512 o[8];
                        for (int u = 0; u < nvv; u++) o[u] = _mm512_load_ps(ac + (vv + u) * 16);
                        if (corr != 1.0f)
                            for (int u = 0; u < nvv; u++) o[u] = _mm512_mul_ps(o[u], cv);
                        for (int jj = 0; jj < lim; jj++) {
                            const float *vj = key_row(a, a->pv, a->v, j0 + jj, g) + vv * 16;
                            __m512 pj = _mm512_set1_ps(pbuf[jj]);
                            if (nvv == 8) {
#pragma GCC unroll 8
                                for (int u = 0; u < 8; u++)
                                    o[u] = _mm512_fmadd_ps(pj, _mm512_loadu_ps(vj + u * 16), o[u]);
                            } else {
                                for (int u = 0; u < nvv; u++)
                                    o[u] = _mm512_fmadd_ps(pj, _mm512_loadu_ps(vj + u * 16), o[u]);
                            }
                        }
                        for (int u = 0; u < nvv; u++) _mm512_store_ps(ac + (vv + u) * 16, o[u]);
                    }
                }
            }
        }
        for (int r = 0; r < nrows; r++) {
            float inv = 1.0f / st[r].l;
            float *oi = a->out + ((size_t)(r0 + r) * a->nq + h) * d;
            for (int e = 0; e < d; e++) oi[e] = acc[r * d + e] * inv;
        }
    }
}

/* ------------------------------------------------------------------ driver */

typedef struct attn_task {
    qrr__attn_args a;
    int isa;
} attn_task;

static void attn_part(void *v, int ti, int nt)
{
    attn_task *t = v;
    int nb = (t->a.t + QB - 1) / QB, tasks = nb * t->a.nq;
    /* heaviest (last) query blocks first, spread round-robin over the threads */
    for (int x = ti; x < tasks; x += nt) {
        int b = nb - 1 - x / t->a.nq, h = x % t->a.nq;
        int r0 = b * QB, r1 = r0 + QB < t->a.t ? r0 + QB : t->a.t;
        if (t->isa >= QRR__ISA_AVX512) qrr__attention_avx512(&t->a, h, h + 1, r0, r1);
        else if (t->isa >= QRR__ISA_AVX2) qrr__attention_avx2(&t->a, h, h + 1, r0, r1);
        else qrr__attention_scalar(&t->a, h, h + 1, r0, r1);
    }
}

void qrr_cpu_attention_isa(int isa, const float *q, const float *k, const float *v,
                           const float *pk, const float *pv, int n_prefix, int t, int nq,
                           int nkv, int d, float *out, qrr_pool *pool)
{
    if (t <= 0 || nq <= 0 || d <= 0) return;
    if (nkv <= 0 || nq % nkv != 0 || d > QRR_MAX_HEAD_DIM_CPU || n_prefix < 0) {
        for (size_t i = 0; i < (size_t)t * nq * d; i++) out[i] = NAN; /* not a valid shape */
        return;
    }
    if (isa > (int)qrr__cpu_isa_max()) isa = (int)qrr__cpu_isa_max();
    attn_task task = {{q, k, v, pk, pv, n_prefix, t, nq, nkv, d, out}, isa};
    qrr_pool_run(pool, attn_part, &task);
}

void qrr_cpu_attention(const float *q, const float *k, const float *v, const float *pk,
                       const float *pv, int n_prefix, int t, int nq, int nkv, int d, float *out,
                       qrr_pool *pool)
{
    qrr_cpu_attention_isa((int)qrr__cpu_isa(), q, k, v, pk, pv, n_prefix, t, nq, nkv, d, out,
                          pool);
}
