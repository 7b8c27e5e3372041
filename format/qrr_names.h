/* qrr_names.h — tensor-name rules and a small open-addressing name index, shared by the
 * writer (duplicate check while declaring) and the loader (duplicates, lookup by name).
 * No allocation here: the caller owns the slot array (power-of-two size, zeroed). */
#ifndef QRR_NAMES_H
#define QRR_NAMES_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

/* Name characters are visible ASCII, 0x21..0x7E. */
static inline int qrr__name_char_ok(unsigned char c) { return c >= 0x21 && c <= 0x7E; }

static inline uint64_t qrr__name_hash(const char *s)
{
    uint64_t h = 0xcbf29ce484222325ull; /* FNV-1a */
    for (; *s; s++) h = (h ^ (unsigned char)*s) * 0x100000001b3ull;
    return h;
}

/* slots[i] holds 0 (empty) or index+1; names(ctx, index) gives the name of an index.
 * Returns the slot where name lives or would go. mask = slot count - 1; the table is
 * never more than half full, so the probe ends. */
static inline size_t qrr__name_probe(const uint32_t *slots, size_t mask, const char *name,
                                     const char *(*names)(const void *, uint32_t),
                                     const void *ctx)
{
    size_t i = (size_t)qrr__name_hash(name) & mask;
    while (slots[i] && strcmp(names(ctx, slots[i] - 1), name) != 0) i = (i + 1) & mask;
    return i;
}

#endif
