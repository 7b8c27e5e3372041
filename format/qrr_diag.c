/* qrr_diag.c — filling and clearing the error-detail buffer (qrr_diag.h). */
#include "qrr_diag.h"

#include <stdarg.h>
#include <stdio.h>

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
