/* score.c — scoring requests given as text or as token ids: check every argument, build
 * each document's prompt (256 documents at a time, so memory stays bounded), and hand the
 * prompts to the batch scheduler (batch.c) as one group. Also the prompt, tokenize and
 * decode entry points. Results come back in input order. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "context.h"

qrr_score_params qrr_score_default_params(void)
{
    qrr_score_params p = {.instruction = NULL, .max_length = 0, .instruction_len = 0,
                          .truncate = 1};
    return p;
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

/* A byte whose address tells this thread from the others. */
static _Thread_local char thread_tag;

/* A context serves one thread at a time: a call that finds another running is refused
 * rather than left to overwrite its scratch (and both calls' scores); the message says
 * whether that call is this thread's own (made from its abort callback). */
static int ctx_enter(qrr_ctx *c, const char *fn)
{
    if (atomic_exchange(&c->busy, 1) == 0) {
        atomic_store(&c->scoring_thread, (const void *)&thread_tag);
        return QRR_OK;
    }
    if (atomic_load(&c->scoring_thread) == (const void *)&thread_tag)
        return qrr__errorf(QRR_ERR_INVALID_ARG, "%s: the context is scoring already, in this "
                           "thread (a call from its abort callback?): use another context",
                           fn);
    return qrr__errorf(QRR_ERR_INVALID_ARG, "%s: the context is in use by another thread (a "
                       "context serves one thread at a time: create one per thread)", fn);
}

static void ctx_leave(qrr_ctx *c)
{
    atomic_store(&c->scoring_thread, NULL);
    atomic_store(&c->busy, 0);
}

int qrr_ctx_score_ids(qrr_ctx *c, const int32_t *const *ids, const size_t *lens, size_t n,
                      float *scores, float *logits)
{
    if (!c || (n && (!ids || !lens)) || (!scores && !logits && n))
        return qrr__errorf(QRR_ERR_INVALID_ARG, "qrr_ctx_score_ids: NULL argument");
    qrr_group g = {ids, lens, n, scores, logits};
    return qrr_ctx_score_groups(c, &g, 1);
}

int qrr_ctx_score_groups(qrr_ctx *c, const qrr_group *groups, size_t n_groups)
{
    if (!c || (n_groups && !groups))
        return qrr__errorf(QRR_ERR_INVALID_ARG, "qrr_ctx_score_groups: NULL argument");
    if (ctx_enter(c, "qrr_ctx_score_groups") != QRR_OK) return QRR_ERR_INVALID_ARG;
    qrr_diag d;
    qrr_diag_clear(&d);
    c->stats = (qrr_stats){0, 0};
    int rc = qrr__score_groups(c, groups, n_groups, -1, &d);
    qrr__ctx_release_large(c);
    ctx_leave(c);
    return rc == QRR_OK ? QRR_OK : qrr__set_error(&d);
}

/* Documents are scored in groups so memory stays bounded for any number of documents. */
#define DOCS_PER_GROUP 256

static size_t doc_len(const char *const *docs, const size_t *lens, size_t i)
{
    return lens ? lens[i] : docs[i] ? strlen(docs[i]) : 0;
}

/* Prefix a failure's message with the document it concerns. */
static int blame_document(qrr_diag *d, size_t i)
{
    char msg[sizeof d->msg];
    snprintf(msg, sizeof msg, "%s", d->msg);
    return qrr_fail(d, d->status, "document %zu: %s", i, msg);
}

/* Every check that can fail on the arguments, before any compute: each document is present
 * and valid UTF-8, and, with truncation off, fits max_length (which takes tokenizing it; the
 * tokenizer is some thousand times faster than the forward pass). */
static int check_documents(qrr_ctx *c, const qrr_prompt_spec *spec, const char *const *docs,
                           const size_t *lens, size_t n, qrr_diag *d)
{
    /* a query that leaves no room is the request's fault: said once, blaming no document */
    int rc = n && !spec->truncate ? qrr__prompt_check_head(c->m, spec, d) : QRR_OK;
    char what[48];
    for (size_t i = 0; rc == QRR_OK && i < n; i++) {
        size_t len = doc_len(docs, lens, i);
        if (!docs[i] && (!lens || len))
            return qrr_fail(d, QRR_ERR_INVALID_ARG, "document %zu is NULL", i);
        snprintf(what, sizeof what, "document %zu", i);
        rc = qrr__check_text(what, docs[i], len, d);
        if (rc == QRR_OK && !spec->truncate) {
            rc = qrr__prompt_build(c->m, spec, docs[i], len, &c->prompts[0], d);
            if (rc != QRR_OK) rc = blame_document(d, i);
        }
    }
    return rc;
}

/* qrr_ctx_score and qrr_ctx_score_len; lens NULL = NUL-terminated documents. */
static int score_texts(qrr_ctx *c, const char *query, size_t query_len, const char *const *docs,
                       const size_t *doc_lens, size_t n_docs, const qrr_score_params *params,
                       float *scores, float *logits)
{
    qrr_diag d;
    qrr_diag_clear(&d);
    c->stats = (qrr_stats){0, 0};
    qrr_prompt_spec spec;
    int rc = qrr__prompt_spec(c->m, query, query_len, params, &spec, &d);
    if (rc == QRR_OK)
        rc = reserve_prompts(c, n_docs < DOCS_PER_GROUP ? n_docs : DOCS_PER_GROUP, &d);
    if (rc == QRR_OK) rc = check_documents(c, &spec, docs, doc_lens, n_docs, &d);
    const int32_t *ptrs[DOCS_PER_GROUP];
    size_t lens[DOCS_PER_GROUP];
    for (size_t g = 0; rc == QRR_OK && g < n_docs; g += DOCS_PER_GROUP) {
        size_t n = n_docs - g < DOCS_PER_GROUP ? n_docs - g : DOCS_PER_GROUP;
        for (size_t i = 0; rc == QRR_OK && i < n; i++) {
            rc = qrr__prompt_build(c->m, &spec, docs[g + i], doc_len(docs, doc_lens, g + i),
                                   &c->prompts[i], &d);
            if (rc != QRR_OK) rc = blame_document(&d, g + i);
            ptrs[i] = c->prompts[i].ids;
            lens[i] = c->prompts[i].n;
        }
        qrr_group group = {ptrs, lens, n, scores ? scores + g : NULL, logits ? logits + g : NULL};
        if (rc == QRR_OK) rc = qrr__score_groups(c, &group, 1, (ptrdiff_t)g, &d);
    }
    qrr__ctx_release_large(c);
    return rc == QRR_OK ? QRR_OK : qrr__set_error(&d);
}

int qrr_ctx_score(qrr_ctx *c, const char *query, const char *const *docs, size_t n_docs,
                  qrr_score_params params, float *scores, float *logits)
{
    if (!c || !query || (n_docs && !docs) || (!scores && !logits && n_docs))
        return qrr__errorf(QRR_ERR_INVALID_ARG, "qrr_ctx_score: NULL argument");
    if (ctx_enter(c, "qrr_ctx_score") != QRR_OK) return QRR_ERR_INVALID_ARG;
    int rc = score_texts(c, query, strlen(query), docs, NULL, n_docs, &params, scores, logits);
    ctx_leave(c);
    return rc;
}

int qrr_ctx_score_len(qrr_ctx *c, const char *query, size_t query_len, const char *const *docs,
                      const size_t *doc_lens, size_t n_docs, qrr_score_params params,
                      float *scores, float *logits)
{
    if (!c || (!query && query_len) || (n_docs && (!docs || !doc_lens)) ||
        (!scores && !logits && n_docs))
        return qrr__errorf(QRR_ERR_INVALID_ARG, "qrr_ctx_score_len: NULL argument");
    if (ctx_enter(c, "qrr_ctx_score_len") != QRR_OK) return QRR_ERR_INVALID_ARG;
    int rc = score_texts(c, query, query_len, docs, doc_lens, n_docs, &params, scores, logits);
    ctx_leave(c);
    return rc;
}

static int prompt_ids(const qrr_model *m, const char *query, size_t query_len,
                      const char *doc, size_t doc_len, const qrr_score_params *params,
                      int32_t *ids, size_t cap, size_t *n_ids)
{
    qrr_diag d;
    qrr_diag_clear(&d);
    qrr_ids v = {0};
    qrr_prompt_spec spec;
    int rc = qrr__prompt_spec(m, query, query_len, params, &spec, &d);
    if (rc == QRR_OK) rc = qrr__check_text("document", doc, doc_len, &d);
    if (rc == QRR_OK) rc = qrr__prompt_build(m, &spec, doc, doc_len, &v, &d);
    if (rc == QRR_OK) {
        *n_ids = v.n;
        if (cap) memcpy(ids, v.ids, (v.n < cap ? v.n : cap) * sizeof *ids); /* ids may be NULL */
        if (v.n > cap) rc = qrr_fail(&d, QRR_ERR_BUFFER_TOO_SMALL, "prompt has %zu tokens, "
                                     "buffer holds %zu", v.n, cap);
    }
    qrr__ids_free(&v);
    return rc == QRR_OK ? QRR_OK : qrr__set_error(&d);
}

int qrr_model_prompt_ids(const qrr_model *m, const char *query, const char *doc,
                         qrr_score_params params, int32_t *ids, size_t cap, size_t *n_ids)
{
    if (!m || !query || !doc || !n_ids || (cap && !ids))
        return qrr__errorf(QRR_ERR_INVALID_ARG, "qrr_model_prompt_ids: NULL argument");
    return prompt_ids(m, query, strlen(query), doc, strlen(doc), &params, ids, cap, n_ids);
}

int qrr_model_prompt_ids_len(const qrr_model *m, const char *query, size_t query_len,
                             const char *doc, size_t doc_len, qrr_score_params params,
                             int32_t *ids, size_t cap, size_t *n_ids)
{
    if (!m || (!query && query_len) || (!doc && doc_len) || !n_ids || (cap && !ids))
        return qrr__errorf(QRR_ERR_INVALID_ARG, "qrr_model_prompt_ids_len: NULL argument");
    return prompt_ids(m, query, query_len, doc, doc_len, &params, ids, cap, n_ids);
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
