/* qrr_diag.h — the error-detail buffer every part of qrr fills on failure (a status and a
 * message), private to the library and its programs: callers of the public API read the
 * same detail through qrr_last_error(). Status codes are public (qrr_status.h). */
#ifndef QRR_DIAG_H
#define QRR_DIAG_H

#include <stdarg.h>
#include "qrr_status.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Where functions that can fail write the detail of the failure. */
typedef struct qrr_diag {
    int status;
    char msg[512];
} qrr_diag;

/* Record status and a printf-style message in d (d may be NULL); returns status, so that
 * `return qrr_fail(d, QRR_ERR_SHAPE, "layer %d ...", l);` reads as one step. */
int qrr_fail(qrr_diag *d, int status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* The same with a va_list, for functions that add their own steps around the record. */
int qrr_vfail(qrr_diag *d, int status, const char *fmt, va_list ap)
    __attribute__((format(printf, 3, 0)));

/* Clear d to QRR_OK and an empty message. */
void qrr_diag_clear(qrr_diag *d);

#ifdef __cplusplus
}
#endif
#endif
