/* qrr_writer.h — write a .qrr file in one pass of tensor data: metadata and tokenizer
 * first, then every tensor declared, then the data streamed in declaration order. The
 * file is built under a temporary name beside the target and renamed only by
 * qrr_writer_finish, so a failed or aborted run leaves no output file. */
#ifndef QRR_WRITER_H
#define QRR_WRITER_H

#include <stddef.h>
#include <stdint.h>
#include "qrr_meta.h"
#include "qrr_diag.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct qrr_writer qrr_writer;

/* Creates "<path>.tmp.XXXXXX" beside path (mode 0644). Any failing call after this removes
 * the temporary file at once and makes the writer dead: every later call returns that
 * error; qrr_writer_finish or qrr_writer_abort still frees it. */
int qrr_writer_open(const char *path, qrr_writer **out, qrr_diag *d);
/* Both must be called once, before the first qrr_writer_add_tensor. set_meta validates
 * (qrr_meta_validate) and encodes; the tokenizer blob is 1..QRR_MAX_TOKENIZER_BYTES. */
int qrr_writer_set_meta(qrr_writer *w, const qrr_meta *m, qrr_diag *d);
int qrr_writer_set_tokenizer(qrr_writer *w, const void *blob, size_t len, qrr_diag *d);
/* Declare a tensor; returns its index in *index (may be NULL). All declarations precede
 * any data. Checks the name (1..63 visible ASCII bytes, unique), dtype, ndim (1..4), dims
 * (>= 1) and that the byte size fits 64 bits; the tensor list against the schema is the
 * caller's business (the loader checks it). */
int qrr_writer_add_tensor(qrr_writer *w, const char *name, uint32_t dtype, uint32_t ndim,
                          const uint64_t *dims, size_t *index, qrr_diag *d);
/* Append bytes of the tensors in declaration order; a tensor may come in several calls
 * (streaming). index must be the first tensor not yet complete; writing more than a
 * tensor's declared size is an error. The first call fixes the layout. */
int qrr_writer_write(qrr_writer *w, size_t index, const void *data, size_t len, qrr_diag *d);
/* Check every tensor is complete, write table and header, fsync, rename into place.
 * Frees w whether it succeeds or not (on failure the temporary file is removed). */
int qrr_writer_finish(qrr_writer *w, qrr_diag *d);
/* Remove the temporary file and free w; safe on NULL and after a failed call. */
void qrr_writer_abort(qrr_writer *w);
/* The temporary file's path while it exists (NULL after a failed call), for a program that
 * must remove it when a signal ends the process before qrr_writer_finish. */
const char *qrr_writer_tmp_path(const qrr_writer *w);

#ifdef __cplusplus
}
#endif
#endif
