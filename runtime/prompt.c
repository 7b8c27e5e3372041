/* prompt.c — prompt assembly per DESIGN.md: ids(prefix) + ids(body)[:budget] + ids(suffix),
 * body = query_template(instruction) + query + document_template + document. */
#include "prompt.h"

#include <stdlib.h>
#include <string.h>

void qrr__ids_free(qrr_ids *v)
{
    free(v->ids);
    v->ids = NULL;
    v->n = v->cap = 0;
}

static int ids_reserve(qrr_ids *v, size_t n, qrr_diag *d)
{
    if (n <= v->cap) return QRR_OK;
    size_t cap = v->cap ? v->cap : 256;
    while (cap < n) cap *= 2;
    int32_t *p = realloc(v->ids, cap * sizeof *p);
    if (!p) return qrr_fail(d, QRR_ERR_NOMEM, "out of memory building a prompt");
    v->ids = p;
    v->cap = cap;
    return QRR_OK;
}

/* A growable byte string, for the body text. */
typedef struct { char *p; size_t n, cap; } text_buf;

static int text_add(text_buf *b, const char *s, size_t n, qrr_diag *d)
{
    if (n > SIZE_MAX - b->n - 1) return qrr_fail(d, QRR_ERR_NOMEM, "prompt too long");
    if (b->n + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 1024;
        while (cap < b->n + n + 1) cap *= 2;
        char *p = realloc(b->p, cap);
        if (!p) return qrr_fail(d, QRR_ERR_NOMEM, "out of memory building a prompt");
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->n, s, n);
    b->n += n;
    b->p[b->n] = '\0';
    return QRR_OK;
}

/* Append tmpl with every "{instruction}" replaced by instruction. */
static int add_template(text_buf *b, const char *tmpl, const char *instruction, qrr_diag *d)
{
    static const char key[] = "{instruction}";
    const char *at;
    int rc = QRR_OK;
    while (rc == QRR_OK && (at = strstr(tmpl, key)) != NULL) {
        rc = text_add(b, tmpl, (size_t)(at - tmpl), d);
        if (rc == QRR_OK) rc = text_add(b, instruction, strlen(instruction), d);
        tmpl = at + sizeof key - 1;
    }
    return rc == QRR_OK ? text_add(b, tmpl, strlen(tmpl), d) : rc;
}

int qrr__prompt_build(const qrr_model *m, const char *query, const char *doc,
                      const char *instruction, int max_length, qrr_ids *out, qrr_diag *d)
{
    if (!query || !doc) return qrr_fail(d, QRR_ERR_INVALID_ARG, "query and document must not be NULL");
    if (!instruction) instruction = m->default_instruction;
    size_t limit = max_length > 0 ? (size_t)max_length : (size_t)m->max_length;
    size_t fixed = m->n_prefix_ids + m->n_suffix_ids;
    if (limit <= fixed)
        return qrr_fail(d, QRR_ERR_INVALID_ARG,
                        "max_length %zu leaves no room for the document: prefix and suffix "
                        "alone take %zu tokens", limit, fixed);
    size_t budget = limit - fixed;

    text_buf body = {0};
    int rc = add_template(&body, m->query_template, instruction, d);
    if (rc == QRR_OK) rc = text_add(&body, query, strlen(query), d);
    if (rc == QRR_OK) rc = add_template(&body, m->document_template, instruction, d);
    if (rc == QRR_OK) rc = text_add(&body, doc, strlen(doc), d);

    size_t n_body = 0;
    if (rc == QRR_OK) {
        /* First try the room we have; on BUFFER_TOO_SMALL grow once to the reported count. */
        rc = ids_reserve(out, fixed + body.n / 2 + 16, d);
        size_t room = out->cap - m->n_prefix_ids;
        if (rc == QRR_OK)
            rc = qrr_tokenizer_encode(m->tok, body.p, body.n, out->ids + m->n_prefix_ids, room,
                                      &n_body, d);
        if (rc == QRR_ERR_BUFFER_TOO_SMALL) {
            rc = ids_reserve(out, m->n_prefix_ids + n_body + m->n_suffix_ids, d);
            if (rc == QRR_OK)
                rc = qrr_tokenizer_encode(m->tok, body.p, body.n, out->ids + m->n_prefix_ids,
                                          n_body, &n_body, d);
        }
    }
    free(body.p);
    if (rc != QRR_OK) return rc;

    if (n_body > budget) n_body = budget; /* truncate the body at its end */
    rc = ids_reserve(out, m->n_prefix_ids + n_body + m->n_suffix_ids, d);
    if (rc != QRR_OK) return rc;
    memcpy(out->ids, m->prefix_ids, m->n_prefix_ids * sizeof *out->ids);
    memcpy(out->ids + m->n_prefix_ids + n_body, m->suffix_ids,
           m->n_suffix_ids * sizeof *out->ids);
    out->n = m->n_prefix_ids + n_body + m->n_suffix_ids;
    return QRR_OK;
}
