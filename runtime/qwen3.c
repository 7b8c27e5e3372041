/* qwen3.c — the Qwen3 forward pass on the CPU: embedding, per layer RMSNorm → q/k/v →
 * q/k RMSNorm → RoPE → causal grouped-query attention → o_proj (+ residual) → RMSNorm →
 * SwiGLU MLP (+ residual), then the final norm and the yes/no head on last positions only.
 * Sequences are packed without padding; a shared prompt prefix's keys/values are computed
 * once (qrr__forward_prefix) and attended to by every sequence. Residual stream in fp32.
 *
 * Shapes: T = tokens in the chunk, S = sequences, P = prefix tokens, H = hidden,
 *         Q = q heads, K = kv heads, D = head_dim, I = intermediate, V = vocab.
 */
#include "qwen3.h"
#include "qrr_cpu_ops.h"

#include <stdlib.h>
#include <string.h>

void qrr__scratch_free(qrr_scratch *s)
{
    free(s->x); free(s->xn); free(s->q); free(s->k); free(s->v);
    free(s->att); free(s->gu); free(s->act); free(s->kv_tmp); free(s->starts);
    memset(s, 0, sizeof *s);
}

int qrr__scratch_trim(qrr_scratch *s, size_t keep_tokens)
{
    if (s->cap_tokens <= keep_tokens && s->kv_tmp_tokens <= 2 * keep_tokens) return 0;
    qrr__scratch_free(s);
    return 1;
}

void qrr__prefix_free(qrr_prefix_kv *p)
{
    free(p->k);
    free(p->v);
    memset(p, 0, sizeof *p);
}

static int grow(float **p, size_t n, qrr_diag *d)
{
    float *q = realloc(*p, (n ? n : 1) * sizeof *q);
    if (!q) return qrr_fail(d, QRR_ERR_NOMEM, "out of memory: %zu floats of scratch", n);
    *p = q;
    return QRR_OK;
}

/* Make room for T tokens and S sequences. */
static int scratch_reserve(const qrr_model *m, qrr_scratch *s, size_t T, size_t S, qrr_diag *d)
{
    int rc = QRR_OK;
    if (T > s->cap_tokens) {
        size_t H = m->H, QD = (size_t)m->Q * m->D, KD = (size_t)m->K * m->D, I = m->I;
        if (rc == QRR_OK) rc = grow(&s->x, T * H, d);
        if (rc == QRR_OK) rc = grow(&s->xn, T * H, d);
        if (rc == QRR_OK) rc = grow(&s->q, T * QD, d);
        if (rc == QRR_OK) rc = grow(&s->k, T * KD, d);
        if (rc == QRR_OK) rc = grow(&s->v, T * KD, d);
        if (rc == QRR_OK) rc = grow(&s->att, T * QD, d);
        if (rc == QRR_OK) rc = grow(&s->gu, T * 2 * I, d);
        if (rc == QRR_OK) rc = grow(&s->act, T * I, d);
        if (rc != QRR_OK) return rc;
        s->cap_tokens = T;
    }
    if (S > s->cap_seqs) {
        int *p = realloc(s->starts, S * sizeof *p);
        if (!p) return qrr_fail(d, QRR_ERR_NOMEM, "out of memory");
        s->starts = p;
        s->cap_seqs = S;
    }
    return QRR_OK;
}

/* x [T, H] = embedding rows of ids. */
static void embed(const qrr_model *m, const int32_t *const *ids, const int *lens, int S, float *x)
{
    size_t t = 0;
    for (int i = 0; i < S; i++)
        for (int j = 0; j < lens[i]; j++, t++)
            qrr_cpu_embed_row(&m->embed, ids[i][j], x + t * m->H);
}

/* q [rows, Q*D], k [rows, K*D] from xn [rows, H]: projections, per-head RMSNorm. RoPE is
 * applied by the caller, which knows the positions. */
static void project_qkv(const qrr_model *m, const qrr_layer *L, const float *xn, int rows,
                        float *q, float *k, float *v, qrr_pool *pool)
{
    if (q) {
        qrr_cpu_gemm(xn, m->H, rows, &L->q, q, m->Q * m->D, 0, pool);
        qrr_cpu_rmsnorm_pool(q, L->q_norm, q, rows * m->Q, m->D, m->rms_eps, pool);
    }
    qrr_cpu_gemm(xn, m->H, rows, &L->k, k, m->K * m->D, 0, pool);
    qrr_cpu_rmsnorm_pool(k, L->k_norm, k, rows * m->K, m->D, m->rms_eps, pool);
    qrr_cpu_gemm(xn, m->H, rows, &L->v, v, m->K * m->D, 0, pool);
}

/* x [rows, H] += MLP(RMSNorm(x)); uses xn, gu, act as scratch. */
static void mlp_block(const qrr_model *m, const qrr_layer *L, float *x, int rows,
                      qrr_scratch *s, qrr_pool *pool)
{
    int I = m->I;
    qrr_cpu_rmsnorm_pool(x, L->mlp_norm, s->xn, rows, m->H, m->rms_eps, pool);
    qrr_cpu_gemm(s->xn, m->H, rows, &L->gate, s->gu, 2 * I, 0, pool);
    qrr_cpu_gemm(s->xn, m->H, rows, &L->up, s->gu + I, 2 * I, 0, pool);
    qrr_cpu_silu_mul_pool(s->gu, s->act, rows, I, pool);
    qrr_cpu_gemm(s->act, I, rows, &L->down, x, m->H, 1, pool);
}

int qrr__forward_prefix(const qrr_model *m, qrr_scratch *s, qrr_pool *pool,
                        const int32_t *ids, int n, const qrr_prefix_kv *from,
                        qrr_prefix_kv *out, qrr_diag *d)
{
    const size_t KD = (size_t)m->K * m->D;
    const int h = from ? from->n : 0, t = n - h; /* t tokens computed, at positions h.. */
    if (h < 0 || t < 1 || from == out)
        return qrr_fail(d, QRR_ERR_INVALID_ARG, "prefix of %d tokens from %d", n, h);
    int rc = scratch_reserve(m, s, (size_t)t, 1, d);
    if (rc != QRR_OK) return rc;
    if (n > out->cap) {
        size_t per = (size_t)m->n_layers * (size_t)n * KD;
        if ((rc = grow(&out->k, per, d)) != QRR_OK || (rc = grow(&out->v, per, d)) != QRR_OK)
            return rc;
        out->cap = n;
    }
    out->n = n;
    const int32_t *rest = ids + h;
    embed(m, &rest, &t, 1, s->x);
    for (int l = 0; l < m->n_layers; l++) {
        const qrr_layer *L = &m->layers[l];
        const int last = l == m->n_layers - 1;
        float *pk = out->k + (size_t)l * out->cap * KD; /* [n, K*D] */
        float *pv = out->v + (size_t)l * out->cap * KD;
        if (h) {
            memcpy(pk, from->k + (size_t)l * from->cap * KD, (size_t)h * KD * sizeof *pk);
            memcpy(pv, from->v + (size_t)l * from->cap * KD, (size_t)h * KD * sizeof *pv);
        }
        float *ok = pk + (size_t)h * KD, *ov = pv + (size_t)h * KD; /* this call's rows */
        qrr_cpu_rmsnorm(s->x, L->attn_norm, s->xn, t, m->H, m->rms_eps);
        /* Later tokens only need this layer's keys/values; the last layer needs no more. */
        project_qkv(m, L, s->xn, t, last ? NULL : s->q, ok, ov, pool);
        qrr_cpu_rope(ok, t, m->K, m->D, h, m->inv_freq);
        if (last) break;
        qrr_cpu_rope(s->q, t, m->Q, m->D, h, m->inv_freq);
        qrr_cpu_attention(s->q, ok, ov, h ? pk : NULL, h ? pv : NULL, h, t, m->Q, m->K, m->D,
                          s->att, pool);
        qrr_cpu_gemm(s->att, m->Q * m->D, t, &L->o, s->x, m->H, 1, pool);
        mlp_block(m, L, s->x, t, s, pool);
    }
    return QRR_OK;
}

/* Keys or values of the last layer for a last-position query: [P + t - 1] tokens of
 * "context" (the prefix then the sequence's own tokens but the last) in dst. */
static void concat_context(const float *prefix, int P, const float *own, int t, size_t KD,
                           float *dst)
{
    if (P) memcpy(dst, prefix, (size_t)P * KD * sizeof *dst);
    if (t > 1) memcpy(dst + (size_t)P * KD, own, (size_t)(t - 1) * KD * sizeof *dst);
}

int qrr__forward_score(const qrr_model *m, qrr_scratch *s, qrr_pool *pool,
                       const int32_t *const *ids, const int *lens, int S,
                       const qrr_prefix_kv *const *prefix, double *delta, qrr_diag *d)
{
    const size_t H = m->H, QD = (size_t)m->Q * m->D, KD = (size_t)m->K * m->D;
    size_t T = 0, ctx_max = 0; /* ctx_max: the longest prefix + sequence */
    for (int i = 0; i < S; i++) {
        if (lens[i] < 1) return qrr_fail(d, QRR_ERR_INVALID_ARG, "sequence %d is empty", i);
        T += (size_t)lens[i];
        size_t c = (size_t)(prefix[i] ? prefix[i]->n : 0) + (size_t)lens[i];
        if (c > ctx_max) ctx_max = c;
    }
    int rc = scratch_reserve(m, s, T, (size_t)S, d);
    if (rc != QRR_OK) return rc;
    if (ctx_max > s->kv_tmp_tokens) {
        if ((rc = grow(&s->kv_tmp, 2 * ctx_max * KD, d)) != QRR_OK) return rc;
        s->kv_tmp_tokens = ctx_max;
    }
    for (int i = 0, t = 0; i < S; t += lens[i], i++) s->starts[i] = t;

    embed(m, ids, lens, S, s->x);
    for (int l = 0; l < m->n_layers - 1; l++) {
        const qrr_layer *L = &m->layers[l];
        qrr_cpu_rmsnorm_pool(s->x, L->attn_norm, s->xn, (int)T, m->H, m->rms_eps, pool);
        project_qkv(m, L, s->xn, (int)T, s->q, s->k, s->v, pool);
        for (int i = 0; i < S; i++) {
            size_t t0 = (size_t)s->starts[i];
            const int P = prefix[i] ? prefix[i]->n : 0;
            const float *pk = P ? prefix[i]->k + (size_t)l * prefix[i]->cap * KD : NULL;
            const float *pv = P ? prefix[i]->v + (size_t)l * prefix[i]->cap * KD : NULL;
            qrr_cpu_rope(s->q + t0 * QD, lens[i], m->Q, m->D, P, m->inv_freq);
            qrr_cpu_rope(s->k + t0 * KD, lens[i], m->K, m->D, P, m->inv_freq);
            qrr_cpu_attention(s->q + t0 * QD, s->k + t0 * KD, s->v + t0 * KD, pk, pv, P,
                              lens[i], m->Q, m->K, m->D, s->att + t0 * QD, pool);
        }
        qrr_cpu_gemm(s->att, (int)QD, (int)T, &L->o, s->x, m->H, 1, pool);
        mlp_block(m, L, s->x, (int)T, s, pool);
    }

    /* Last layer: every token's keys/values, but queries, attention, MLP and head only at
     * each sequence's last position. Rows 0..S-1 of q/att/x are reused for those. */
    const int l = m->n_layers - 1;
    const qrr_layer *L = &m->layers[l];
    qrr_cpu_rmsnorm_pool(s->x, L->attn_norm, s->xn, (int)T, m->H, m->rms_eps, pool);
    project_qkv(m, L, s->xn, (int)T, NULL, s->k, s->v, pool);
    for (int i = 0; i < S; i++) {
        size_t t_last = (size_t)s->starts[i] + (size_t)lens[i] - 1;
        /* Row i < t_last always (earlier sequences are at least one token each), so the
         * gathers below never overwrite a row still to be read. */
        memmove(s->xn + (size_t)i * H, s->xn + t_last * H, H * sizeof *s->xn);
        memmove(s->x + (size_t)i * H, s->x + t_last * H, H * sizeof *s->x);
    }
    qrr_cpu_gemm(s->xn, m->H, S, &L->q, s->q, (int)QD, 0, pool);
    qrr_cpu_rmsnorm(s->q, L->q_norm, s->q, S * m->Q, m->D, m->rms_eps);
    float *ck = s->kv_tmp, *cv = s->kv_tmp + ctx_max * KD;
    for (int i = 0; i < S; i++) {
        size_t t0 = (size_t)s->starts[i];
        int t = lens[i];
        const int P = prefix[i] ? prefix[i]->n : 0;
        const float *pk = P ? prefix[i]->k + (size_t)l * prefix[i]->cap * KD : NULL;
        const float *pv = P ? prefix[i]->v + (size_t)l * prefix[i]->cap * KD : NULL;
        qrr_cpu_rope(s->k + t0 * KD, t, m->K, m->D, P, m->inv_freq);
        qrr_cpu_rope(s->q + (size_t)i * QD, 1, m->Q, m->D, P + t - 1, m->inv_freq);
        concat_context(pk, P, s->k + t0 * KD, t, KD, ck);
        concat_context(pv, P, s->v + t0 * KD, t, KD, cv);
        const float *own_k = s->k + (t0 + (size_t)t - 1) * KD;
        const float *own_v = s->v + (t0 + (size_t)t - 1) * KD;
        qrr_cpu_attention(s->q + (size_t)i * QD, own_k, own_v, ck, cv, P + t - 1, 1,
                          m->Q, m->K, m->D, s->att + (size_t)i * QD, pool);
    }
    qrr_cpu_gemm(s->att, (int)QD, S, &L->o, s->x, m->H, 1, pool);
    mlp_block(m, L, s->x, S, s, pool);
    qrr_cpu_rmsnorm(s->x, m->final_norm, s->xn, S, m->H, m->rms_eps);

    /* Head in double: Δ = h·w_yes − h·w_no (rows: no, yes), or h·w for a single logit. */
    for (int i = 0; i < S; i++) {
        const float *h = s->xn + (size_t)i * H;
        double dot[2] = {0, 0};
        for (int r = 0; r < m->head_rows; r++)
            for (size_t j = 0; j < H; j++) dot[r] += (double)h[j] * m->head[(size_t)r * H + j];
        delta[i] = m->head_rows == 2 ? dot[1] - dot[0] : dot[0];
    }
    return QRR_OK;
}
