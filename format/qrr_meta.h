/* qrr_meta.h — the model description both programs share, in memory: the fixed
 * hyper-parameters and the metadata strings. Serialising it is qrr_meta.c's job; the
 * on-disk form is qrr_meta_disk plus length-prefixed strings (qrr_format.h). */
#ifndef QRR_META_H
#define QRR_META_H

#include <stddef.h>
#include <stdint.h>
#include "qrr_format.h"
#include "qrr_diag.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct qrr_str {
    const char *ptr; /* not NUL-terminated when it points into a file; may be NULL if len 0 */
    size_t len;
} qrr_str;

typedef struct qrr_meta {
    qrr_meta_disk fixed;                     /* host copy of the fixed part */
    qrr_str strings[QRR_META_STRING_COUNT];  /* indexed by qrr_meta_string */
} qrr_meta;

/* Check every fixed field (enums in range, sizes within caps, Q % K == 0, D even, eps and
 * theta finite and > 0, yes/no ids < vocab or both QRR_NO_TOKEN for single-logit, int8
 * quant_block dividing every input width, reserved zero) and every string (length cap,
 * NUL-free UTF-8). Returns QRR_OK, or QRR_ERR_BAD_META / QRR_ERR_BAD_LABEL (ids, head kind)
 * / QRR_ERR_PADDING (reserved bytes) with the detail in d. */
int qrr_meta_validate(const qrr_meta *m, qrr_diag *d);

/* Serialise m (fixed part then strings) into a malloc'ed buffer. */
int qrr_meta_encode(const qrr_meta *m, uint8_t **out, size_t *out_len, qrr_diag *d);

/* Parse a decompressed META section in place: out->strings point into bytes, which must
 * outlive out. Every length is checked against the bytes that remain and the caps;
 * trailing bytes are an error. Calls qrr_meta_validate. */
int qrr_meta_decode(const uint8_t *bytes, size_t len, qrr_meta *out, qrr_diag *d);

#ifdef __cplusplus
}
#endif
#endif
