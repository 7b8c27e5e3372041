/* score.c — contexts and scoring requests: build each prompt, find the token prefix all
 * prompts of a request share, run it once, then pack the rest into chunks of bounded size
 * for the forward pass. Results come back in input order. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "model.h"
#include "prompt.h"
#include "qwen3.h"
#ifdef QRR_WITH_CUDA
#include "cuda_model.h"
#endif

#define DEFAULT_BATCH_TOKENS 2048
#define MIN_SHARED_PREFIX 8 /* below this, sharing saves less than its bookkeeping */

struct qrr_ctx {
    const qrr_model *m;
    qrr_pool *pool;
    qrr_ctx_params params;
    qrr_scratch scratch;
    qrr_prefix_kv prefix;
    qrr_ids *prompts;     /* [cap_prompts] built prompts of the current request */
    size_t cap_prompts;
    qrr_stats stats;      /* of the last request */
#ifdef QRR_WITH_CUDA
    qrr_cuda_state *cuda; /* device state when params.device is QRR_DEVICE_CUDA */
#endif
};

qrr_ctx_params qrr_ctx_default_params(void)
{
    qrr_ctx_params p = {.n_threads = 0, .device = QRR_DEVICE_CPU, .max_batch_tokens = 0,
                          .share_prefix = 1};
    return p;
}

qrr_score_params qrr_score_default_params(void)
{
    qrr_score_params p = {.instruction = NULL, .max_length = 0};
    return p;
}

int qrr_ctx_create(const qrr_model *m, qrr_ctx_params params, qrr_ctx **out)
{
    if (!m || !out) return qrr__errorf(QRR_ERR_INVALID_ARG, "qrr_ctx_create: NULL argument");
    *out = NULL;
#ifndef QRR_WITH_CUDA
    if (params.device == QRR_DEVICE_CUDA)
        return qrr__errorf(QRR_ERR_UNSUPPORTED,
                           "device cuda: this build of libqrr has no CUDA support");
#endif
    if (params.device != QRR_DEVICE_CPU && params.device != QRR_DEVICE_CUDA)
        return qrr__errorf(QRR_ERR_INVALID_ARG, "unknown device %d", (int)params.device);
    if (params.n_threads < 0 || params.n_threads > 1024)
        return qrr__errorf(QRR_ERR_INVALID_ARG, "n_threads %d out of range [0, 1024]",
                           params.n_threads);
    if (params.max_batch_tokens < 0)
        return qrr__errorf(QRR_ERR_INVALID_ARG, "max_batch_tokens %d is negative",
                           params.max_batch_tokens);
    if (params.n_threads == 0) {
        long n = sysconf(_SC_NPROCESSORS_ONLN);
        params.n_threads = n > 0 && n <= 1024 ? (int)n : 1;
    }
    if (params.max_batch_tokens == 0) params.max_batch_tokens = DEFAULT_BATCH_TOKENS;
    qrr_ctx *c = calloc(1, sizeof *c);
    if (!c) return qrr__errorf(QRR_ERR_NOMEM, "out of memory");
    c->m = m;
    c->params = params;
    c->pool = qrr_pool_create(params.n_threads);
    if (!c->pool) {
        free(c);
        return qrr__errorf(QRR_ERR_NOMEM, "could not start %d threads", params.n_threads);
    }
#ifdef QRR_WITH_CUDA
    if (params.device == QRR_DEVICE_CUDA) {
        qrr_diag d;
        qrr_diag_clear(&d);
        if (qrr__cuda_ctx_create(m, &c->cuda, &d) != QRR_OK) {
            qrr_ctx_free(c);
            return qrr__set_error(&d);
        }
    }
#endif
    *out = c;
    return QRR_OK;
}

void qrr_ctx_free(qrr_ctx *c)
{
    if (!c) return;
#ifdef QRR_WITH_CUDA
    qrr__cuda_ctx_free(c->cuda);
#endif
    qrr_pool_free(c->pool);
    qrr__scratch_free(&c->scratch);
    qrr__prefix_free(&c->prefix);
    for (size_t i = 0; i < c->cap_prompts; i++) qrr__ids_free(&c->prompts[i]);
    free(c->prompts);
    free(c);
}

static int reserve_prompts(qrr_ctx *c, size_t n, qrr_diag *d)
{
    if (n <= c->cap_prompts) return QRR_OK;
    qrr_ids *p = realloc(c->prompts, n * sizeof *p);
    if (!p) return qrr_fail(d, QRR_ERR_NOMEM, "out of memory for %zu prompts", n);
    memset(p + c->cap_prompts, 0, (n - c->cap_prompts) * sizeof *p);
    c->prompts = p;
    c->cap_prompts = n;
    return QRR_OK;
}

/* Longest common prefix of all sequences, leaving every sequence at least one token. */
static size_t common_prefix(const int32_t *const *ids, const size_t *lens, size_t n)
{
    size_t p = lens[0] - 1;
    for (size_t i = 1; i < n && p > 0; i++) {
        size_t lim = lens[i] - 1 < p ? lens[i] - 1 : p;
        size_t j = 0;
        while (j < lim && ids[i][j] == ids[0][j]) j++;
        p = j;
    }
    return p;
}

static void write_results(const double *delta, size_t n, float *scores, float *logits)
{
    for (size_t i = 0; i < n; i++) {
        if (scores) scores[i] = (float)(1.0 / (1.0 + exp(-delta[i])));
        if (logits) logits[i] = (float)delta[i];
    }
}

/* Score n id sequences (each non-empty, within the model's positions). */
static int score_sequences(qrr_ctx *c, const int32_t *const *ids, const size_t *lens, size_t n,
                           double *delta, qrr_diag *d)
{
    const qrr_model *m = c->m;
    size_t max_pos = m->meta->fixed.max_position;
    size_t total = 0;
    for (size_t i = 0; i < n; i++) {
        if (lens[i] == 0) return qrr_fail(d, QRR_ERR_INVALID_ARG, "sequence %zu is empty", i);
        if (lens[i] > max_pos)
            return qrr_fail(d, QRR_ERR_INVALID_ARG, "sequence %zu has %zu tokens; the model "
                            "supports %zu positions", i, lens[i], max_pos);
        for (size_t j = 0; j < lens[i]; j++)
            if (ids[i][j] < 0 || ids[i][j] >= m->V)
                return qrr_fail(d, QRR_ERR_INVALID_ARG, "sequence %zu, token %zu: id %d "
                                "outside the vocabulary [0, %d)", i, j, (int)ids[i][j], m->V);
        total += lens[i];
    }
    size_t P = c->params.share_prefix && n > 1 ? common_prefix(ids, lens, n) : 0;
    if (P < MIN_SHARED_PREFIX) P = 0;
    int rc = QRR_OK;
    c->prefix.n = 0;
#ifdef QRR_WITH_CUDA
    if (P && c->cuda) rc = qrr__cuda_forward_prefix(m, c->cuda, ids[0], (int)P, d);
    else
#endif
    if (P) rc = qrr__forward_prefix(m, &c->scratch, c->pool, ids[0], (int)P, &c->prefix, d);
    c->stats.tokens += total;
    c->stats.tokens_computed += total - (P ? (n - 1) * P : 0);

    /* Pack whole sequences into chunks of at most max_batch_tokens (a longer sequence
     * forms a chunk of its own) and at most 4096 sequences. */
    const int32_t **chunk_ids = malloc(n * sizeof *chunk_ids);
    int *chunk_lens = malloc(n * sizeof *chunk_lens);
    if (!chunk_ids || !chunk_lens) rc = qrr_fail(d, QRR_ERR_NOMEM, "out of memory");
    size_t i = 0;
    while (rc == QRR_OK && i < n) {
        size_t tokens = 0, s = 0;
        while (i + s < n && s < 4096) {
            size_t len = lens[i + s] - P;
            if (s > 0 && tokens + len > (size_t)c->params.max_batch_tokens) break;
            chunk_ids[s] = ids[i + s] + P;
            chunk_lens[s] = (int)len;
            tokens += len;
            s++;
        }
#ifdef QRR_WITH_CUDA
        if (c->cuda)
            rc = qrr__cuda_forward_score(m, c->cuda, chunk_ids, chunk_lens, (int)s, (int)P,
                                         delta + i, d);
        else
#endif
        rc = qrr__forward_score(m, &c->scratch, c->pool, chunk_ids, chunk_lens, (int)s,
                                &c->prefix, delta + i, d);
        i += s;
    }
    free(chunk_ids);
    free(chunk_lens);
    for (size_t k = 0; rc == QRR_OK && k < n; k++)
        if (!isfinite(delta[k]))
            rc = qrr_fail(d, QRR_ERR_NUMERIC, "sequence %zu: the logit is not finite (%g); "
                          "the model's weights or activations overflowed", k, delta[k]);
    return rc;
}

int qrr_ctx_score_ids(qrr_ctx *c, const int32_t *const *ids, const size_t *lens, size_t n,
                      float *scores, float *logits)
{
    if (!c || (n && (!ids || !lens)) || (!scores && !logits && n))
        return qrr__errorf(QRR_ERR_INVALID_ARG, "qrr_ctx_score_ids: NULL argument");
    if (n == 0) return QRR_OK;
    qrr_diag d;
    qrr_diag_clear(&d);
    c->stats = (qrr_stats){0, 0};
    double *delta = malloc(n * sizeof *delta);
    if (!delta) return qrr__errorf(QRR_ERR_NOMEM, "out of memory");
    int rc = score_sequences(c, ids, lens, n, delta, &d);
    if (rc == QRR_OK) write_results(delta, n, scores, logits);
    free(delta);
    return rc == QRR_OK ? QRR_OK : qrr__set_error(&d);
}

/* Documents are scored in groups so memory stays bounded for any number of documents. */
#define DOCS_PER_GROUP 256

int qrr_ctx_score(qrr_ctx *c, const char *query, const char *const *docs, size_t n_docs,
                  qrr_score_params params, float *scores, float *logits)
{
    if (!c || !query || (n_docs && !docs) || (!scores && !logits && n_docs))
        return qrr__errorf(QRR_ERR_INVALID_ARG, "qrr_ctx_score: NULL argument");
    if (params.max_length < 0)
        return qrr__errorf(QRR_ERR_INVALID_ARG, "max_length %d is negative", params.max_length);
    qrr_diag d;
    qrr_diag_clear(&d);
    c->stats = (qrr_stats){0, 0};
    int rc = reserve_prompts(c, n_docs < DOCS_PER_GROUP ? n_docs : DOCS_PER_GROUP, &d);
    const int32_t *ptrs[DOCS_PER_GROUP];
    size_t lens[DOCS_PER_GROUP];
    double delta[DOCS_PER_GROUP];
    for (size_t g = 0; rc == QRR_OK && g < n_docs; g += DOCS_PER_GROUP) {
        size_t n = n_docs - g < DOCS_PER_GROUP ? n_docs - g : DOCS_PER_GROUP;
        for (size_t i = 0; rc == QRR_OK && i < n; i++) {
            if (!docs[g + i]) {
                rc = qrr_fail(&d, QRR_ERR_INVALID_ARG, "document %zu is NULL", g + i);
                break;
            }
            rc = qrr__prompt_build(c->m, query, docs[g + i], params.instruction,
                                   params.max_length, &c->prompts[i], &d);
            if (rc != QRR_OK) {
                char msg[sizeof d.msg];
                snprintf(msg, sizeof msg, "%s", d.msg);
                qrr_fail(&d, rc, "document %zu: %s", g + i, msg);
                break;
            }
            ptrs[i] = c->prompts[i].ids;
            lens[i] = c->prompts[i].n;
        }
        if (rc == QRR_OK) rc = score_sequences(c, ptrs, lens, n, delta, &d);
        if (rc == QRR_OK)
            write_results(delta, n, scores ? scores + g : NULL, logits ? logits + g : NULL);
    }
    return rc == QRR_OK ? QRR_OK : qrr__set_error(&d);
}

qrr_stats qrr_ctx_last_stats(const qrr_ctx *c)
{
    qrr_stats none = {0, 0};
    return c ? c->stats : none;
}

int qrr_ctx_describe(const qrr_ctx *c, char *buf, size_t cap)
{
    if (!c || !buf || !cap) return qrr__errorf(QRR_ERR_INVALID_ARG, "qrr_ctx_describe: NULL argument");
    int n;
#ifdef QRR_WITH_CUDA
    if (c->cuda) {
        qrr_cuda_info i;
        qrr__cuda_info(c->cuda, &i);
        n = snprintf(buf, cap, "cuda: %s; int8 %s (%d of %d int8 weights on cuBLASLt, %d refused "
                     "by it); attention %s; %.1f MiB of weights uploaded in %.2f s; %.1f MiB of "
                     "scratch%s", i.device, i.int8_mode, i.w8a8_weights, i.int8_weights,
                     i.int8_refused, i.attention, (double)i.weight_bytes / 1048576.0,
                     i.upload_seconds, (double)i.scratch_bytes / 1048576.0,
                     i.sync ? "; QRR_CUDA_SYNC=1" : "");
    } else
#endif
        n = snprintf(buf, cap, "cpu, %d threads, %s GEMM kernels", c->params.n_threads,
                     qrr_cpu_gemm_impl(c->m->meta->fixed.weight_dtype));
    if (n < 0 || (size_t)n >= cap)
        return qrr__errorf(QRR_ERR_BUFFER_TOO_SMALL, "qrr_ctx_describe: %d bytes needed", n + 1);
    return QRR_OK;
}

int qrr_model_prompt_ids(const qrr_model *m, const char *query, const char *doc,
                         qrr_score_params params, int32_t *ids, size_t cap, size_t *n_ids)
{
    if (!m || !n_ids || (cap && !ids))
        return qrr__errorf(QRR_ERR_INVALID_ARG, "qrr_model_prompt_ids: NULL argument");
    qrr_diag d;
    qrr_diag_clear(&d);
    qrr_ids v = {0};
    int rc = qrr__prompt_build(m, query, doc, params.instruction, params.max_length, &v, &d);
    if (rc == QRR_OK) {
        *n_ids = v.n;
        if (cap) memcpy(ids, v.ids, (v.n < cap ? v.n : cap) * sizeof *ids); /* ids may be NULL */
        if (v.n > cap) rc = qrr_fail(&d, QRR_ERR_BUFFER_TOO_SMALL, "prompt has %zu tokens, "
                                     "buffer holds %zu", v.n, cap);
    }
    qrr__ids_free(&v);
    return rc == QRR_OK ? QRR_OK : qrr__set_error(&d);
}

int qrr_model_tokenize(const qrr_model *m, const char *text, size_t len, int32_t *ids,
                       size_t cap, size_t *n_ids)
{
    if (!m || (!text && len) || !n_ids || (cap && !ids))
        return qrr__errorf(QRR_ERR_INVALID_ARG, "qrr_model_tokenize: NULL argument");
    qrr_diag d;
    qrr_diag_clear(&d);
    int rc = qrr_tokenizer_encode(m->tok, text ? text : "", len, ids, cap, n_ids, &d);
    return rc == QRR_OK ? QRR_OK : qrr__set_error(&d);
}

int qrr_model_decode(const qrr_model *m, const int32_t *ids, size_t n, char *out, size_t cap,
                     size_t *n_bytes)
{
    if (!m || (!ids && n) || !n_bytes || (cap && !out))
        return qrr__errorf(QRR_ERR_INVALID_ARG, "qrr_model_decode: NULL argument");
    qrr_diag d;
    qrr_diag_clear(&d);
    int rc = qrr_tokenizer_decode(m->tok, ids, n, out, cap, n_bytes, &d);
    return rc == QRR_OK ? QRR_OK : qrr__set_error(&d);
}
