/* prompt.h — the official Qwen3-Reranker prompt as token ids: prefix, body and suffix
 * tokenized separately, only the body truncated (at its end) so the suffix survives. */
#ifndef QRR_PROMPT_H
#define QRR_PROMPT_H

#include <stddef.h>
#include <stdint.h>
#include "model.h"

typedef struct qrr_ids {
    int32_t *ids;
    size_t n, cap;
} qrr_ids;

/* Build the prompt of (query, doc) into out (grown as needed; reuse it across calls).
 * instruction NULL = the model's default; max_length <= 0 = the model's default. */
int qrr__prompt_build(const qrr_model *m, const char *query, const char *doc,
                      const char *instruction, int max_length, qrr_ids *out, qrr_diag *d);
void qrr__ids_free(qrr_ids *v);

#endif
