/* tokenizer.h — Hugging Face byte-level BPE (the Qwen3 pipeline) over the tokenizer blob
 * of a .qrr file: added tokens first, NFC, the Split pre-tokenizer regex, byte-level
 * mapping, BPE merges by rank. Immutable after load and safe to share across threads.
 * The blob layout is docs/format-tokenizer.md. */
#ifndef QRR_TOKENIZER_H
#define QRR_TOKENIZER_H

#include <stddef.h>
#include <stdint.h>
#include "qrr_diag.h"

typedef struct qrr_tokenizer qrr_tokenizer;

/* Parse and check a blob (every count, length and id); the tokenizer copies what it needs,
 * so blob may be freed afterwards. */
int qrr_tokenizer_load(const uint8_t *blob, size_t len, qrr_tokenizer **out, qrr_diag *d);
void qrr_tokenizer_free(qrr_tokenizer *t);

/* Encode text (len bytes, UTF-8, need not be NUL-terminated) without BOS/EOS, matching added
 * tokens inside the text as Transformers does by default. Writes at most cap ids; *n_ids
 * receives the full count. Returns QRR_ERR_BUFFER_TOO_SMALL when cap < *n_ids (ids holds
 * the first cap), QRR_ERR_UTF8 on invalid UTF-8 (the message gives the byte offset). */
int qrr_tokenizer_encode(const qrr_tokenizer *t, const char *text, size_t len,
                         int32_t *ids, size_t cap, size_t *n_ids, qrr_diag *d);

/* Decode ids to UTF-8 text (bytes, no NUL written unless room); *n_bytes receives the full
 * length. Special tokens are written as their text. Unknown ids: QRR_ERR_INVALID_ARG. */
int qrr_tokenizer_decode(const qrr_tokenizer *t, const int32_t *ids, size_t n,
                         char *out, size_t cap, size_t *n_bytes, qrr_diag *d);

/* Offset of the first byte of s[0, n) that is not part of valid UTF-8 (RFC 3629: no
 * overlongs, no surrogates, nothing past U+10FFFF), or n when all of it is valid. */
size_t qrr__utf8_check(const uint8_t *s, size_t n);

/* Id of the token whose text is exactly s (vocabulary or added token), -1 if none. */
int32_t qrr_tokenizer_find(const qrr_tokenizer *t, const char *s, size_t len);
/* Number of ids (largest id + 1). */
size_t qrr_tokenizer_vocab_size(const qrr_tokenizer *t);
/* Counts for `qrr info`. */
size_t qrr_tokenizer_merge_count(const qrr_tokenizer *t);
size_t qrr_tokenizer_added_count(const qrr_tokenizer *t);

#endif
