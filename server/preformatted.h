/* preformatted.h — pairs whose texts already hold the model's prompt template. vLLM's recipe
 * for Qwen3-Reranker has a client write the template into what it sends to /score: text_1 =
 * the prompt's prefix, instruction and query, text_2 = the document and the prompt's suffix,
 * scored as tokenize(text_1) + tokenize(text_2). Such a pair is scored as written, not
 * wrapped in the template a second time. */
#ifndef QRR_SERVER_PREFORMATTED_H
#define QRR_SERVER_PREFORMATTED_H

#include <stddef.h>
#include <stdint.h>
#include "qrr.h"

/* The model's fixed prompt prefix and suffix, as text (the model's own strings) and as
 * token ids. */
typedef struct prompt_frame {
    const char *prefix_text, *suffix_text;
    size_t prefix_len, suffix_len;
    int32_t *prefix_ids, *suffix_ids;
    size_t n_prefix, n_suffix;
    size_t max_length; /* the model's default prompt length limit */
} prompt_frame;

/* QRR_OK, or a status (qrr_last_error says why, but for QRR_ERR_NOMEM). Made once, when
 * the model is loaded. */
int prompt_frame_get(const qrr_model *m, prompt_frame *f);
void prompt_frame_free(prompt_frame *f);

/* A query's side of such pairs, tokenized once for every document it is paired with:
 * framed (1) when its ids begin with the prompt's prefix; its text is not tokenized when its
 * bytes do not begin with the prefix's (the common case). */
typedef struct preformatted_query {
    int32_t *ids;
    size_t n;
    int framed;
} preformatted_query;
/* QRR_OK (*pq filled, to free with preformatted_query_free), or a status. */
int preformatted_query_get(const qrr_model *m, const prompt_frame *f, const char *query,
                           size_t query_len, preformatted_query *pq);
void preformatted_query_free(preformatted_query *pq);

/* 1 when the query is framed and the document's ids end with the suffix: *ids (malloc'ed)
 * and *n then hold the two, cut to max_length (0: the model's) before the suffix, which
 * stays whole. max_length must be 0 or one the library takes for this model (more than the
 * prefix and suffix: a qrr_model_prompt_ids_len call with it checks that;
 * QRR_ERR_INVALID_ARG, without a message of its own, if not). 0 when the pair is plain
 * text; a negative status on error. */
int preformatted_ids(const qrr_model *m, const prompt_frame *f, const preformatted_query *pq,
                     const char *doc, size_t doc_len, size_t max_length, int32_t **ids,
                     size_t *n);

#endif
