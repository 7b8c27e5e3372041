/* prompt.c — prompt assembly, the recipe of docs/reference.md:
 * ids(prefix) + ids(body)[:budget] + ids(suffix),
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

/* Append tmpl with every "{instruction}" replaced by the instruction's bytes. */
static int add_template(text_buf *b, const char *tmpl, const qrr_prompt_spec *spec, qrr_diag *d)
{
    static const char key[] = "{instruction}";
    const char *at;
    int rc = QRR_OK;
    while (rc == QRR_OK && (at = strstr(tmpl, key)) != NULL) {
        rc = text_add(b, tmpl, (size_t)(at - tmpl), d);
        if (rc == QRR_OK) rc = text_add(b, spec->instruction, spec->instruction_len, d);
        tmpl = at + sizeof key - 1;
    }
    return rc == QRR_OK ? text_add(b, tmpl, strlen(tmpl), d) : rc;
}

int qrr__check_text(const char *what, const char *text, size_t len, qrr_diag *d)
{
    size_t bad = qrr__utf8_check((const uint8_t *)text, len);
    if (bad == len) return QRR_OK;
    return qrr_fail(d, QRR_ERR_UTF8, "%s is not valid UTF-8 at byte offset %zu (0x%02X)", what,
                    bad, (unsigned char)text[bad]);
}

int qrr__prompt_spec(const qrr_model *m, const char *query, size_t query_len,
                     const qrr_score_params *params, qrr_prompt_spec *spec, qrr_diag *d)
{
    size_t max_pos = m->meta->fixed.max_position;
    if (params->max_length < 0)
        return qrr_fail(d, QRR_ERR_INVALID_ARG, "max_length %d is negative", params->max_length);
    size_t limit = params->max_length > 0 ? (size_t)params->max_length : (size_t)m->max_length;
    size_t fixed = m->n_prefix_ids + m->n_suffix_ids;
    if (limit <= fixed)
        return qrr_fail(d, QRR_ERR_INVALID_ARG,
                        "max_length %zu leaves no room for the document: prefix and suffix "
                        "alone take %zu tokens", limit, fixed);
    if (limit > max_pos)
        return qrr_fail(d, QRR_ERR_INVALID_ARG, "max_length %zu is more than the model's %zu "
                        "positions", limit, max_pos);
    if (!params->instruction && params->instruction_len)
        return qrr_fail(d, QRR_ERR_INVALID_ARG, "instruction is NULL but instruction_len is %zu",
                        params->instruction_len);
    *spec = (qrr_prompt_spec){.query = query ? query : "", .query_len = query_len,
                              .limit = limit, .truncate = params->truncate};
    if (params->instruction && !strstr(m->query_template, "{instruction}") &&
        !strstr(m->document_template, "{instruction}"))
        /* Scoring without it would ignore the caller's instruction without a word. */
        return qrr_fail(d, QRR_ERR_INVALID_ARG, "this model's prompts have no {instruction} "
                        "to replace: its instruction is fixed (a request cannot give one)");
    if (params->instruction) {
        spec->instruction = params->instruction;
        spec->instruction_len = params->instruction_len ? params->instruction_len
                                                        : strlen(params->instruction);
    } else {
        spec->instruction = m->default_instruction;
        spec->instruction_len = strlen(m->default_instruction);
    }
    int rc = qrr__check_text("query", spec->query, spec->query_len, d);
    if (rc == QRR_OK) rc = qrr__check_text("instruction", spec->instruction,
                                           spec->instruction_len, d);
    return rc;
}

/* The body's text up to the document: the query template (instruction filled in), the
 * query and the document template. */
static int add_head(text_buf *b, const qrr_model *m, const qrr_prompt_spec *spec, qrr_diag *d)
{
    int rc = add_template(b, m->query_template, spec, d);
    if (rc == QRR_OK) rc = text_add(b, spec->query, spec->query_len, d);
    if (rc == QRR_OK) rc = add_template(b, m->document_template, spec, d);
    return rc;
}

/* With truncation off: QRR_ERR_TOO_LONG when the part before the document overflows
 * max_length alone, whichever document comes with it (the fault is the query's or the
 * instruction's), else QRR_OK. A head that fills it exactly still takes an empty document,
 * and a short one whose first token merges with the head's last. */
int qrr__prompt_check_head(const qrr_model *m, const qrr_prompt_spec *spec, qrr_diag *d)
{
    size_t fixed = m->n_prefix_ids + m->n_suffix_ids, n_head = 0;
    text_buf head = {0};
    int rc = add_head(&head, m, spec, d);
    if (rc == QRR_OK) rc = qrr_tokenizer_encode(m->tok, head.p, head.n, NULL, 0, &n_head, d);
    free(head.p);
    if (rc == QRR_ERR_BUFFER_TOO_SMALL) rc = QRR_OK; /* counted, not written */
    if (rc == QRR_OK && spec->truncate == 0 && n_head > spec->limit - fixed)
        return qrr_fail(d, QRR_ERR_TOO_LONG, "the query and instruction alone take %zu tokens "
                        "with the prompt's frame, more than max_length %zu: no document fits, "
                        "and truncation is off", fixed + n_head, spec->limit);
    return rc;
}

/* The refusal of a prompt over max_length with truncation off, naming the query when the
 * part before the document is what fills it. */
static int too_long(const qrr_model *m, const qrr_prompt_spec *spec, size_t n_body,
                    qrr_diag *d)
{
    int rc = qrr__prompt_check_head(m, spec, d);
    if (rc != QRR_OK) return rc;
    size_t fixed = m->n_prefix_ids + m->n_suffix_ids;
    return qrr_fail(d, QRR_ERR_TOO_LONG, "the prompt needs %zu tokens, more than max_length "
                    "%zu, and truncation is off", fixed + n_body, spec->limit);
}

int qrr__prompt_build(const qrr_model *m, const qrr_prompt_spec *spec, const char *doc,
                      size_t doc_len, qrr_ids *out, qrr_diag *d)
{
    size_t fixed = m->n_prefix_ids + m->n_suffix_ids;
    size_t budget = spec->limit - fixed; /* > 0: qrr__prompt_spec checked it */

    text_buf body = {0};
    int rc = add_head(&body, m, spec, d);
    if (rc == QRR_OK) rc = text_add(&body, doc ? doc : "", doc_len, d);

    /* Encode straight into place with room for at most the budget: the tokenizer writes the
     * first ids that fit and counts them all, so a long body costs no memory beyond the
     * budget. A body has no more tokens than bytes, which bounds the first guess. */
    size_t n_body = 0, room = body.n + 1 < budget ? body.n + 1 : budget;
    if (rc == QRR_OK) rc = ids_reserve(out, fixed + room, d);
    if (rc == QRR_OK)
        rc = qrr_tokenizer_encode(m->tok, body.p, body.n, out->ids + m->n_prefix_ids, room,
                                  &n_body, d);
    if (rc == QRR_ERR_BUFFER_TOO_SMALL && n_body <= budget) { /* the guess was short */
        room = n_body;
        rc = ids_reserve(out, fixed + room, d);
        if (rc == QRR_OK)
            rc = qrr_tokenizer_encode(m->tok, body.p, body.n, out->ids + m->n_prefix_ids,
                                      room, &n_body, d);
    }
    free(body.p);
    if (rc == QRR_ERR_BUFFER_TOO_SMALL) { /* n_body > budget: the body must be cut */
        if (!spec->truncate) return too_long(m, spec, n_body, d);
        n_body = budget; /* truncate the body at its end */
        rc = QRR_OK;
    }
    if (rc != QRR_OK) return rc;
    memcpy(out->ids, m->prefix_ids, m->n_prefix_ids * sizeof *out->ids);
    memcpy(out->ids + m->n_prefix_ids + n_body, m->suffix_ids,
           m->n_suffix_ids * sizeof *out->ids);
    out->n = m->n_prefix_ids + n_body + m->n_suffix_ids;
    return QRR_OK;
}
