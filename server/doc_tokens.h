/* doc_tokens.h — a document cut to its first tokens, for Cohere's "max_tokens_per_doc". */
#ifndef QRR_SERVER_DOC_TOKENS_H
#define QRR_SERVER_DOC_TOKENS_H

#include <stddef.h>
#include "qrr.h"

/* QRR_OK with *cut NULL when doc (len bytes) has at most max tokens of its own: it is used
 * whole. Else QRR_OK with *cut (malloc'ed, *cut_len bytes) the text of its first max tokens,
 * less a character the last of them splits. A status on error (qrr_last_error says why,
 * but for QRR_ERR_NOMEM). */
int doc_first_tokens(const qrr_model *m, const char *doc, size_t len, size_t max, char **cut,
                     size_t *cut_len);

#endif
