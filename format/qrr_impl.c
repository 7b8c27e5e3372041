/* qrr_impl.c — the shared small helpers of qrr_impl.h, and the monotonic clock that qrr.h
 * exports as qrr_time_seconds (the library, the converter and the tools all time with it). */
#include "qrr_impl.h"
#include "qrr.h"

#include <stdio.h>
#include <time.h>

char *qrr_shape_format(char *buf, size_t cap, uint32_t ndim, const uint64_t *dims)
{
    if (cap == 0) return buf;
    size_t pos = (size_t)snprintf(buf, cap, "[");
    for (uint32_t k = 0; k < ndim && pos < cap; k++)
        pos += (size_t)snprintf(buf + pos, cap - pos, "%s%llu", k ? ", " : "",
                                (unsigned long long)dims[k]);
    if (pos < cap) snprintf(buf + pos, cap - pos, "]");
    return buf;
}

double qrr_time_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}
