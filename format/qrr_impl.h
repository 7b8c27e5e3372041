/* qrr_impl.h — small helpers every part of qrr shares, each with one definition
 * (qrr_impl.c): the text of a tensor shape. The clock is public (qrr_time_seconds in
 * qrr.h) because the tools time with it too. Private to the library and its programs. */
#ifndef QRR_IMPL_H
#define QRR_IMPL_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Write "[d0, d1, ...]" into buf (cap bytes, always NUL-terminated when cap > 0, cut to fit);
 * returns buf so that it can stand in a printf argument list. */
char *qrr_shape_format(char *buf, size_t cap, uint32_t ndim, const uint64_t *dims);

#ifdef __cplusplus
}
#endif
#endif
