/* attention.c — causal grouped-query attention over a sequence that may follow a cached
 * prefix: the double-precision reference, a scalar streaming version (online softmax, O(d)
 * memory per query), and the driver that splits the work among the pool's threads and picks
 * the version for the CPU level. The vector versions live in attention_avx2.c,
 * attention_avx512.c (x86-64) and attention_neon.c (AArch64). Nothing here allocates but
 * the reference. */
#include <stdlib.h>
#include <string.h>
#include "cpu_internal.h"

#define QB 64 /* query rows per task of the scalar, AVX2 and NEON versions */

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
                const float *kj = qrr__key_row(&a, pk, k, j, g);
                double dot = 0.0;
                for (int e = 0; e < d; e++) dot += (double)qi[e] * kj[e];
                s[j] = dot * sc;
                if (s[j] > mx) mx = s[j];
            }
            for (int e = 0; e < d; e++) o[e] = 0.0;
            for (int j = 0; j < nk; j++) {
                double p = exp(s[j] - mx);
                sum += p;
                const float *vj = qrr__key_row(&a, pv, v, j, g);
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
    float sc = qrr__attn_scale(d);
    float acc[QRR_MAX_HEAD_DIM_CPU];
    for (int h = h0; h < h1; h++) {
        int g = h / group;
        for (int i = r0; i < r1; i++) {
            const float *qi = a->q + ((size_t)i * a->nq + h) * d;
            int nk = a->n_prefix + i + 1;
            float mx = -INFINITY, l = 0.0f;
            for (int e = 0; e < d; e++) acc[e] = 0.0f;
            for (int j = 0; j < nk; j++) {
                const float *kj = qrr__key_row(a, a->pk, a->k, j, g);
                float dot = 0.0f;
                for (int e = 0; e < d; e++) dot += qi[e] * kj[e];
                float s = dot * sc;
                const float *vj = qrr__key_row(a, a->pv, a->v, j, g);
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

/* ------------------------------------------------------------------ driver */

typedef struct attn_task {
    qrr__attn_args a;
    int isa;
} attn_task;

void qrr__attention_tile(int d, int group, int *heads, int *rows)
{
    int tm = d <= 128 ? QRR__ATTN_TILE_LANES : QRR__ATTN_TILE_LANES / 2;
    *heads = group < tm ? group : tm;
    *rows = tm / *heads;
}

void qrr__attention_tiles(const qrr__attn_args *a, int h0, int h1, int r0, int r1,
                          qrr__attn_tile_fn tile)
{
    int group = a->nq / a->nkv, th, tr;
    qrr__attention_tile(a->d, group, &th, &tr);
    for (int h = h0; h < h1;) {
        int g = h / group, hh0 = h % group;
        int nh = group - hh0 < th ? group - hh0 : th;
        if (nh > h1 - h) nh = h1 - h;
        for (int i = r0; i < r1; i += tr) tile(a, g, hh0, nh, i, i + tr < r1 ? i + tr : r1);
        h += nh;
    }
}

#define PACK_AHEAD 6 /* rows */
void qrr__attn_pack_rows(const qrr__attn_args *a, const float *pre, const float *own, int g,
                         int j0, int n, int nk_max, float *buf, const float **ptr)
{
    const size_t row_bytes = (size_t)a->d * sizeof(float);
    for (int kk = 0; kk < n; kk++) {
        if (j0 + kk + PACK_AHEAD < nk_max) {
            const char *next = (const char *)qrr__key_row(a, pre, own, j0 + kk + PACK_AHEAD, g);
            for (size_t e = 0; e < row_bytes; e += 64) __builtin_prefetch(next + e, 0, 3);
        }
        float *dst = buf + (size_t)kk * a->d;
        memcpy(dst, qrr__key_row(a, pre, own, j0 + kk, g), row_bytes);
        if (ptr) ptr[kk] = dst;
    }
}

/* Tasks: for the tiled versions (AVX-512, AVX2) one per (kv head, chunk of its query heads,
 * block of rows), else one per (query head, block of QB rows); per head the heaviest (last)
 * row blocks first, dealt round-robin over the threads. */
static void attn_part(void *v, int ti, int nt)
{
    attn_task *t = v;
    const qrr__attn_args *a = &t->a;
    int heads = 1, rows = QB, vec = 0;
#if defined(QRR__X86)
    /* AVX2: a tile of fewer rows x heads than its 8 lanes computes more than it keeps, so
     * such short sequences (a handful of tokens after a cached prefix) stream row by row */
    vec = a->d <= QRR__ATTN_TILE_MAX_D &&
          ((t->isa >= QRR__ISA_AVX512 && a->d % 16 == 0) ||
           (t->isa >= QRR__ISA_AVX2 && a->d % 8 == 0 && a->t * (a->nq / a->nkv) >= 8));
    if (vec) qrr__attention_tile(a->d, a->nq / a->nkv, &heads, &rows);
#endif
    int nhc = (a->nq / a->nkv + heads - 1) / heads; /* head chunks per kv head */
    int hunits = vec ? a->nkv * nhc : a->nq;
    int nb = (a->t + rows - 1) / rows, tasks = nb * hunits;
    for (int x = ti; x < tasks; x += nt) {
        /* all row blocks of one head unit in a row: its keys and values stay in cache */
        int b = nb - 1 - x % nb, u = x / nb;
        int r0 = b * rows, r1 = r0 + rows < a->t ? r0 + rows : a->t;
#if defined(QRR__X86)
        if (vec) {
            int group = a->nq / a->nkv, g = u / nhc, hh0 = u % nhc * heads;
            int h0 = g * group + hh0, h1 = h0 + heads < (g + 1) * group ? h0 + heads : (g + 1) * group;
            if (t->isa >= QRR__ISA_AVX512 && a->d % 16 == 0)
                qrr__attention_avx512(a, h0, h1, r0, r1);
            else
                qrr__attention_avx2(a, h0, h1, r0, r1);
            continue;
        }
        if (t->isa >= QRR__ISA_AVX2) {
            qrr__attention_avx2_rows(a, u, u + 1, r0, r1);
            continue;
        }
#elif defined(QRR__ARM64)
        if (t->isa >= QRR__ISA_NEON) {
            qrr__attention_neon(a, u, u + 1, r0, r1);
            continue;
        }
#endif
        qrr__attention_scalar(a, u, u + 1, r0, r1);
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
