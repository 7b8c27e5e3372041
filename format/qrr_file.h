/* qrr_file.h — open and check a .qrr image held in memory (a mapping or a buffer).
 * Every check of docs/format.md happens in qrr_file_load; afterwards the views it hands
 * out can be trusted. No model semantics beyond the schema check (qrr_schema.h). */
#ifndef QRR_FILE_H
#define QRR_FILE_H

#include <stddef.h>
#include <stdint.h>
#include "qrr_format.h"
#include "qrr_meta.h"
#include "qrr_diag.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct qrr_file qrr_file;

typedef struct qrr_tensor_view {
    const char *name;        /* NUL-terminated, points into the image */
    uint32_t dtype;          /* qrr_dtype */
    uint32_t ndim;
    uint64_t dims[QRR_MAX_DIMS];
    const void *data;        /* inside the image; at a multiple of QRR_ALIGN from its start
                                (so aligned when the image is, as a mapping is) */
    uint64_t size;           /* bytes */
} qrr_tensor_view;

enum {
    QRR_LOAD_SKIP_WEIGHT_CHECKSUMS = 1u << 0, /* header, sections and scales still checked */
};

/* Check the whole image and build the views. bytes must stay valid and unchanged until
 * qrr_file_free. Timing of the checksum pass is reported in *verify_seconds if non-NULL. */
int qrr_file_load(const void *bytes, size_t len, unsigned flags, qrr_file **out,
                  double *verify_seconds, qrr_diag *d);
void qrr_file_free(qrr_file *f);

const qrr_header_disk *qrr_file_header(const qrr_file *f);
const qrr_meta *qrr_file_meta(const qrr_file *f);
/* The decompressed tokenizer blob (owned by f). */
const uint8_t *qrr_file_tokenizer(const qrr_file *f, size_t *len);
size_t qrr_file_tensor_count(const qrr_file *f);
const qrr_tensor_view *qrr_file_tensor(const qrr_file *f, size_t i);
/* NULL when there is no tensor of that name. */
const qrr_tensor_view *qrr_file_find(const qrr_file *f, const char *name);

#ifdef __cplusplus
}
#endif
#endif
