/* tokenizer_import.h — read a Hugging Face tokenizer.json (+ tokenizer_config.json) and
 * produce the compact tokenizer blob stored in a .qrr (docs/format-tokenizer.md). Only
 * qconvert links this; the runtime reads the blob without any JSON code. */
#ifndef QRR_TOKENIZER_IMPORT_H
#define QRR_TOKENIZER_IMPORT_H

#include <stddef.h>
#include <stdint.h>
#include <jansson.h>
#include "qrr_diag.h"

/* tokenizer_config_path may be NULL. On success *blob is malloc'ed. Refuses (with a message
 * naming the file and key) anything the runtime cannot reproduce exactly: another model
 * type than BPE, another normalizer than NFC (or none), pre-tokenizers other than
 * Split(regex)+ByteLevel, byte_fallback, etc. */
int qrr_tokenizer_import(const char *tokenizer_json_path, const char *tokenizer_config_path,
                         uint8_t **blob, size_t *len, qrr_diag *d);

/* The same in two steps, for a caller that reads tokenizer.json for more than the blob (the
 * converter looks up the label tokens in it): the file parsed once, as the import reads it
 * (duplicate keys refused, NUL allowed in strings); *root is NULL on failure, else the
 * caller's to json_decref. Then the blob from that document; messages name path. */
int qrr_tokenizer_read_json(const char *tokenizer_json_path, json_t **root, qrr_diag *d);
int qrr_tokenizer_import_json(const json_t *root, const char *tokenizer_json_path,
                              const char *tokenizer_config_path, uint8_t **blob, size_t *len,
                              qrr_diag *d);

#endif
