/* qrr_checked.h — overflow-checked size arithmetic and alignment helpers for format code.
 * Each returns 0 on success and 1 when the result does not fit; no I/O, no policy. */
#ifndef QRR_CHECKED_H
#define QRR_CHECKED_H

#include <stddef.h>
#include <stdint.h>

static inline int qrr__add_u64(uint64_t a, uint64_t b, uint64_t *out)
{
    return __builtin_add_overflow(a, b, out);
}

static inline int qrr__mul_u64(uint64_t a, uint64_t b, uint64_t *out)
{
    return __builtin_mul_overflow(a, b, out);
}

static inline int qrr__add_size(size_t a, size_t b, size_t *out)
{
    return __builtin_add_overflow(a, b, out);
}

static inline int qrr__mul_size(size_t a, size_t b, size_t *out)
{
    return __builtin_mul_overflow(a, b, out);
}

/* Round x up to a multiple of align (a power of two); 1 when that overflows. */
static inline int qrr__align_up_u64(uint64_t x, uint64_t align, uint64_t *out)
{
    uint64_t t;
    if (__builtin_add_overflow(x, align - 1, &t)) return 1;
    *out = t & ~(align - 1);
    return 0;
}

/* 1 when every byte of p[0, n) is zero. */
static inline int qrr__all_zero(const void *p, size_t n)
{
    const uint8_t *b = (const uint8_t *)p;
    for (size_t i = 0; i < n; i++)
        if (b[i]) return 0;
    return 1;
}

#endif
