/* preformatted.c — see preformatted.h. */
#include "preformatted.h"

#include <stdlib.h>
#include <string.h>

/* text's ids, malloc'ed into *ids (at least one element), their count in *n. */
static int tokenize(const qrr_model *m, const char *text, size_t len, int32_t **ids, size_t *n)
{
    *ids = NULL;
    int rc = qrr_model_tokenize(m, text, len, NULL, 0, n);
    if (rc != QRR_OK && rc != QRR_ERR_BUFFER_TOO_SMALL) return rc;
    if (!(*ids = malloc((*n ? *n : 1) * sizeof **ids))) return QRR_ERR_NOMEM;
    return *n ? qrr_model_tokenize(m, text, len, *ids, *n, n) : QRR_OK;
}

int prompt_frame_get(const qrr_model *m, prompt_frame *f)
{
    memset(f, 0, sizeof *f);
    qrr_model_info info;
    int rc = qrr_model_get_info(m, &info);
    if (rc != QRR_OK) return rc;
    f->max_length = (size_t)info.max_length;
    /* the texts the model's own prompt ids are made from */
    f->prefix_text = qrr_model_meta_str(m, "prefix", &f->prefix_len);
    f->suffix_text = qrr_model_meta_str(m, "suffix", &f->suffix_len);
    if (!f->prefix_text || !f->suffix_text) return QRR_ERR_INVALID_ARG;
    rc = tokenize(m, f->prefix_text, f->prefix_len, &f->prefix_ids, &f->n_prefix);
    if (rc == QRR_OK) rc = tokenize(m, f->suffix_text, f->suffix_len, &f->suffix_ids, &f->n_suffix);
    if (rc != QRR_OK) prompt_frame_free(f);
    return rc;
}

void prompt_frame_free(prompt_frame *f)
{
    free(f->prefix_ids);
    free(f->suffix_ids);
    memset(f, 0, sizeof *f);
}

int preformatted_query_get(const qrr_model *m, const prompt_frame *f, const char *query,
                           size_t query_len, preformatted_query *pq)
{
    memset(pq, 0, sizeof *pq);
    if (!f->n_prefix || query_len < f->prefix_len || memcmp(query, f->prefix_text, f->prefix_len))
        return QRR_OK; /* plain text: told by its bytes, without tokenizing it */
    int rc = tokenize(m, query, query_len, &pq->ids, &pq->n);
    pq->framed = rc == QRR_OK && pq->n >= f->n_prefix &&
                 !memcmp(pq->ids, f->prefix_ids, f->n_prefix * sizeof *pq->ids);
    return rc;
}

void preformatted_query_free(preformatted_query *pq)
{
    free(pq->ids);
    memset(pq, 0, sizeof *pq);
}

int preformatted_ids(const qrr_model *m, const prompt_frame *f, const preformatted_query *pq,
                     const char *doc, size_t doc_len, size_t max_length, int32_t **ids,
                     size_t *n)
{
    *ids = NULL;
    *n = 0;
    if (!pq->framed || !f->n_suffix || doc_len < f->suffix_len ||
        memcmp(doc + doc_len - f->suffix_len, f->suffix_text, f->suffix_len))
        return 0; /* plain text: the common case costs a comparison */
    const int32_t *a = pq->ids;
    size_t na = pq->n, nb = 0;
    int32_t *b = NULL;
    int rc = tokenize(m, doc, doc_len, &b, &nb);
    int framed = rc == QRR_OK && nb >= f->n_suffix &&
                 !memcmp(b + nb - f->n_suffix, f->suffix_ids, f->n_suffix * sizeof *b);
    size_t limit = max_length ? max_length : f->max_length, total = na + nb;
    if (framed && limit <= f->n_prefix + f->n_suffix) { /* the caller checked max_length */
        rc = QRR_ERR_INVALID_ARG;
        framed = 0;
    }
    if (framed) {
        size_t keep = total > limit ? limit - f->n_suffix : total - f->n_suffix;
        int32_t *out = malloc((keep + f->n_suffix) * sizeof *out);
        if (!out) {
            rc = QRR_ERR_NOMEM;
        } else { /* the first `keep` ids of a + b, then the suffix */
            size_t from_a = keep < na ? keep : na;
            memcpy(out, a, from_a * sizeof *out);
            memcpy(out + from_a, b, (keep - from_a) * sizeof *out);
            memcpy(out + keep, f->suffix_ids, f->n_suffix * sizeof *out);
            *ids = out;
            *n = keep + f->n_suffix;
        }
    }
    free(b);
    if (rc != QRR_OK) return rc;
    return framed;
}
