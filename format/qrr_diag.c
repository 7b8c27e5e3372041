/* qrr_diag.c — filling and clearing the error-detail buffer (qrr_diag.h). */
#include "qrr_diag.h"

#include <stdarg.h>
#include <stdio.h>

int qrr_vfail(qrr_diag *d, int status, const char *fmt, va_list ap)
{
    if (d) {
        vsnprintf(d->msg, sizeof d->msg, fmt, ap);
        d->status = status;
    }
    return status;
}

int qrr_fail(qrr_diag *d, int status, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    qrr_vfail(d, status, fmt, ap);
    va_end(ap);
    return status;
}

void qrr_diag_clear(qrr_diag *d)
{
    if (d) {
        d->status = QRR_OK;
        d->msg[0] = '\0';
    }
}
