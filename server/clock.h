/* clock.h — the one monotonic clock of the server, in seconds. */
#ifndef QRR_SERVER_CLOCK_H
#define QRR_SERVER_CLOCK_H

#include <time.h>

static inline double now_seconds(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

#endif
