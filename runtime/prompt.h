/* prompt.h — the official Qwen3-Reranker prompt as token ids: prefix, body and suffix
 * tokenized separately, only the body truncated (at its end) so the suffix survives.
 * Texts are bytes and lengths (they may hold NUL bytes). */
#ifndef QRR_PROMPT_H
#define QRR_PROMPT_H

#include <stddef.h>
#include <stdint.h>
#include "model.h"

typedef struct qrr_ids {
    int32_t *ids;
    size_t n, cap;
} qrr_ids;

/* What every prompt of one request shares, checked once: the query, the instruction (the
 * model's default when none was given) and the length limit. */
typedef struct qrr_prompt_spec {
    const char *query;
    size_t query_len;
    const char *instruction;
    size_t instruction_len;
    size_t limit;  /* max_length in tokens, resolved */
    int truncate;  /* 0: a body that does not fit is QRR_ERR_TOO_LONG */
} qrr_prompt_spec;

/* Check the request-wide arguments (UTF-8 of query and instruction, max_length against the
 * prompt's fixed parts and the model's positions) and resolve them into spec. */
int qrr__prompt_spec(const qrr_model *m, const char *query, size_t query_len,
                     const qrr_score_params *params, qrr_prompt_spec *spec, qrr_diag *d);

/* QRR_ERR_UTF8 naming `what` (e.g. "document 3") and the offset within text, or QRR_OK. */
int qrr__check_text(const char *what, const char *text, size_t len, qrr_diag *d);

/* With spec->truncate 0: QRR_ERR_TOO_LONG when the query and instruction alone overflow
 * max_length (a fault of the request, not of a document: no document fits); else QRR_OK. */
int qrr__prompt_check_head(const qrr_model *m, const qrr_prompt_spec *spec, qrr_diag *d);

/* Build the prompt of one document (already checked) into out (grown as needed, reused
 * across calls; it never holds more than spec->limit ids). */
int qrr__prompt_build(const qrr_model *m, const qrr_prompt_spec *spec, const char *doc,
                      size_t doc_len, qrr_ids *out, qrr_diag *d);
void qrr__ids_free(qrr_ids *v);

#endif
