/* qrr_status.c — names of status codes and the diag formatter. */
#include "qrr_status.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

const char *qrr_status_str(int status)
{
    switch (status) {
#define NAME(c) case c: return #c;
    NAME(QRR_OK)
    NAME(QRR_ERR_IO) NAME(QRR_ERR_NOMEM) NAME(QRR_ERR_INVALID_ARG) NAME(QRR_ERR_BUFFER_TOO_SMALL)
    NAME(QRR_ERR_UNSUPPORTED) NAME(QRR_ERR_DEVICE) NAME(QRR_ERR_UTF8) NAME(QRR_ERR_NUMERIC)
    NAME(QRR_ERR_TOO_LONG)
    NAME(QRR_ERR_TRUNCATED) NAME(QRR_ERR_BAD_MAGIC) NAME(QRR_ERR_VERSION) NAME(QRR_ERR_CHECKSUM)
    NAME(QRR_ERR_BAD_SECTION) NAME(QRR_ERR_DECOMPRESS) NAME(QRR_ERR_BAD_META) NAME(QRR_ERR_BAD_TENSOR)
    NAME(QRR_ERR_TENSOR_BOUNDS) NAME(QRR_ERR_ALIGNMENT) NAME(QRR_ERR_OVERLAP) NAME(QRR_ERR_HOLE)
    NAME(QRR_ERR_TRAILING) NAME(QRR_ERR_PADDING) NAME(QRR_ERR_DUPLICATE) NAME(QRR_ERR_SHAPE)
    NAME(QRR_ERR_MISSING_TENSOR) NAME(QRR_ERR_BAD_LABEL) NAME(QRR_ERR_BAD_SCALE)
    NAME(QRR_ERR_BAD_TOKENIZER) NAME(QRR_ERR_UNEXPECTED_TENSOR)
    NAME(QRR_ERR_SAFETENSORS) NAME(QRR_ERR_CONFIG) NAME(QRR_ERR_NOT_RERANKER)
    NAME(QRR_ERR_OVERFLOW) NAME(QRR_ERR_JSON)
#undef NAME
    default: return "QRR_ERR_UNKNOWN";
    }
}

int qrr_fail(qrr_diag *d, int status, const char *fmt, ...)
{
    if (d) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(d->msg, sizeof d->msg, fmt, ap);
        va_end(ap);
        d->status = status;
    }
    return status;
}

void qrr_diag_clear(qrr_diag *d)
{
    if (d) {
        d->status = QRR_OK;
        d->msg[0] = '\0';
    }
}
