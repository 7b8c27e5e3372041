/* tok_text.c — the tokenizer's text primitives: strict UTF-8 validation and decoding, the
 * White_Space and alphanumeric predicates added tokens need, and NFC through utf8proc with
 * a quick check that skips text NFC cannot change. No tokens, no regex. */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>

#include "tok_internal.h"

size_t qrr__utf8_check(const uint8_t *s, size_t n)
{
    size_t i = 0;
    while (i < n) {
        /* ASCII runs, eight bytes at a time */
        while (i + 8 <= n) {
            uint64_t w;
            memcpy(&w, s + i, 8);
            if (w & 0x8080808080808080ull) break;
            i += 8;
        }
        if (i >= n) break;
        uint8_t c = s[i];
        if (c < 0x80) {
            i++;
            continue;
        }
        size_t need;
        uint8_t lo = 0x80, hi = 0xBF; /* allowed range of the second byte */
        if (c >= 0xC2 && c <= 0xDF) need = 1;
        else if (c >= 0xE0 && c <= 0xEF) {
            need = 2;
            if (c == 0xE0) lo = 0xA0;      /* overlong */
            else if (c == 0xED) hi = 0x9F; /* surrogates */
        } else if (c >= 0xF0 && c <= 0xF4) {
            need = 3;
            if (c == 0xF0) lo = 0x90;      /* overlong */
            else if (c == 0xF4) hi = 0x8F; /* past U+10FFFF */
        } else return i;
        if (n - i <= need) return i;
        if (s[i + 1] < lo || s[i + 1] > hi) return i;
        for (size_t k = 2; k <= need; k++)
            if ((s[i + k] & 0xC0) != 0x80) return i;
        i += need + 1;
    }
    return n;
}

uint32_t qrr__utf8_next(const uint8_t *s, size_t *len)
{
    uint8_t c = s[0];
    if (c < 0x80) {
        *len = 1;
        return c;
    }
    if (c < 0xE0) {
        *len = 2;
        return ((uint32_t)(c & 0x1F) << 6) | (s[1] & 0x3Fu);
    }
    if (c < 0xF0) {
        *len = 3;
        return ((uint32_t)(c & 0x0F) << 12) | ((uint32_t)(s[1] & 0x3F) << 6) | (s[2] & 0x3Fu);
    }
    *len = 4;
    return ((uint32_t)(c & 0x07) << 18) | ((uint32_t)(s[1] & 0x3F) << 12) |
           ((uint32_t)(s[2] & 0x3F) << 6) | (s[3] & 0x3Fu);
}

bool qrr__is_white_space(uint32_t cp)
{
    if (cp <= 0x20) return cp == 0x20 || (cp >= 0x09 && cp <= 0x0D);
    if (cp < 0x85) return false;
    return cp == 0x85 || cp == 0xA0 || cp == 0x1680 || (cp >= 0x2000 && cp <= 0x200A) ||
           cp == 0x2028 || cp == 0x2029 || cp == 0x202F || cp == 0x205F || cp == 0x3000;
}

bool qrr__is_alnum(uint32_t cp)
{
    if (cp < 0x80)
        return (cp >= '0' && cp <= '9') || ((cp | 0x20) >= 'a' && (cp | 0x20) <= 'z');
    utf8proc_category_t c = utf8proc_category((utf8proc_int32_t)cp);
    return (c >= UTF8PROC_CATEGORY_LU && c <= UTF8PROC_CATEGORY_LO) ||
           (c >= UTF8PROC_CATEGORY_ND && c <= UTF8PROC_CATEGORY_NO);
}

/* ---- NFC ------------------------------------------------------------------------------
 * A code point is "inert" when NFC leaves it alone whatever surrounds it: combining class
 * 0, NFC maps it to itself, and it is never a non-first element of a canonical
 * decomposition (so it cannot compose with what precedes it). NFC never acts across an
 * inert code point, so text is normalized chunk by chunk between inert code points, and
 * text made only of them is already NFC. The table is built once per process. */
#define CP_LIMIT 0x110000u
static uint8_t g_not_inert[CP_LIMIT / 8];

/* Hugging Face's NFC (the unicode-normalization-alignments crate) carries Unicode 9.0 data:
 * the combining marks assigned since have class 0 there and compose with nothing, and it
 * does not compose U+11935 U+11930. utf8proc (Unicode 15) knows better; to give the same
 * text as tokenizers these code points are left exactly where they are: they are inert,
 * and a chunk handed to utf8proc never contains them. (Found by comparing both on every
 * code point, alone, after "a" and before U+0334, and on every canonical pair.) */
static const uint32_t g_hf_starter[][2] = {
    {0x07FD, 0x07FD}, {0x0898, 0x089F}, {0x08CA, 0x08D3}, {0x09FE, 0x09FE},
    {0x0C3C, 0x0C3C}, {0x0D3B, 0x0D3C}, {0x0EBA, 0x0EBA}, {0x1715, 0x1715},
    {0x1ABF, 0x1ACE}, {0x1DF6, 0x1DFA}, {0xA82C, 0xA82C}, {0x10D24, 0x10D27},
    {0x10EAB, 0x10EAC}, {0x10EFD, 0x10EFF}, {0x10F46, 0x10F50}, {0x10F82, 0x10F85},
    {0x11070, 0x11070}, {0x1133B, 0x1133B}, {0x1145E, 0x1145E}, {0x11839, 0x1183A},
    {0x11930, 0x11930}, {0x1193D, 0x1193E}, {0x11943, 0x11943}, {0x119E0, 0x119E0},
    {0x11A34, 0x11A34}, {0x11A47, 0x11A47}, {0x11A99, 0x11A99}, {0x11D42, 0x11D42},
    {0x11D44, 0x11D45}, {0x11D97, 0x11D97}, {0x11F41, 0x11F42}, {0x16FF0, 0x16FF1},
    {0x1E08F, 0x1E08F}, {0x1E130, 0x1E136}, {0x1E2AE, 0x1E2AE}, {0x1E2EC, 0x1E2EF},
    {0x1E4EC, 0x1E4EF},
};

bool qrr__nfc_hf_starter(uint32_t cp)
{
    if (cp < 0x07FD || cp > 0x1E4EF) return false;
    for (size_t i = 0; i < sizeof g_hf_starter / sizeof g_hf_starter[0]; i++)
        if (cp >= g_hf_starter[i][0] && cp <= g_hf_starter[i][1]) return true;
    return false;
}
static pthread_once_t g_inert_once = PTHREAD_ONCE_INIT;

static void mark(uint32_t cp) { g_not_inert[cp >> 3] |= (uint8_t)(1u << (cp & 7)); }

static void build_inert_table(void)
{
    for (uint32_t cp = 0x300; cp < CP_LIMIT; cp++) {
        if (cp >= 0xD800 && cp <= 0xDFFF) continue;
        if (cp >= 0xAC00 && cp <= 0xD7A3) continue; /* Hangul syllables: NFC; see below */
        const utf8proc_property_t *p = utf8proc_get_property((utf8proc_int32_t)cp);
        if (p->combining_class) mark(cp);
        if (p->decomp_seqindex == UINT16_MAX) continue;
        utf8proc_int32_t dst[32];
        int bc = 0;
        utf8proc_ssize_t k = utf8proc_decompose_char((utf8proc_int32_t)cp, dst, 32,
                                                     UTF8PROC_DECOMPOSE, &bc);
        if (k <= 0 || k > 32 || (k == 1 && dst[0] == (utf8proc_int32_t)cp))
            continue; /* no canonical decomposition (compatibility only) */
        for (utf8proc_ssize_t i = 1; i < k; i++) mark((uint32_t)dst[i]);
        uint8_t u8[4], *nfc = NULL;
        utf8proc_ssize_t n8 = utf8proc_encode_char((utf8proc_int32_t)cp, u8);
        utf8proc_ssize_t m = utf8proc_map(u8, n8, &nfc, UTF8PROC_STABLE | UTF8PROC_COMPOSE);
        if (m != n8 || memcmp(nfc, u8, (size_t)n8)) mark(cp);
        free(nfc);
    }
    /* Hangul: vowel and trailing jamo compose with what precedes them. */
    for (uint32_t cp = 0x1161; cp <= 0x1175; cp++) mark(cp);
    for (uint32_t cp = 0x11A8; cp <= 0x11C2; cp++) mark(cp);
    for (size_t i = 0; i < sizeof g_hf_starter / sizeof g_hf_starter[0]; i++)
        for (uint32_t cp = g_hf_starter[i][0]; cp <= g_hf_starter[i][1]; cp++)
            g_not_inert[cp >> 3] &= (uint8_t)~(1u << (cp & 7));
}

static inline bool inert(uint32_t cp)
{
    return cp < 0x300 || !(g_not_inert[cp >> 3] & (1u << (cp & 7)));
}

static int norm_reserve(qrr__tok_scratch *sc, size_t need)
{
    if (need <= sc->norm_cap) return 0;
    size_t cap = sc->norm_cap ? sc->norm_cap : 256;
    while (cap < need) {
        if (__builtin_mul_overflow(cap, 2, &cap)) return -1;
    }
    uint8_t *p = realloc(sc->norm, cap);
    if (!p) return -1;
    sc->norm = p;
    sc->norm_cap = cap;
    return 0;
}

void qrr__nfc_init(void) { pthread_once(&g_inert_once, build_inert_table); }

int qrr__nfc(const uint8_t *s, size_t n, qrr__tok_scratch *sc, const uint8_t **out,
             size_t *out_n)
{
    qrr__nfc_init();
    /* Quick check: the first code point that is not inert. */
    size_t i = 0, last_inert = 0; /* start of the last inert code point before i */
    bool seen_inert = false;
    for (;;) {
        while (i < n && s[i] < 0x80) last_inert = i++, seen_inert = true;
        if (i >= n) {
            *out = s;
            *out_n = n;
            return QRR_OK;
        }
        size_t l;
        uint32_t cp = qrr__utf8_next(s + i, &l);
        if (!inert(cp)) break;
        /* a chunk may start at an inert code point, but after one utf8proc must not see */
        last_inert = qrr__nfc_hf_starter(cp) ? i + l : i;
        seen_inert = true;
        i += l;
    }
    size_t done = 0, used = 0; /* input consumed, output written */
    size_t chunk = seen_inert ? last_inert : 0;
    for (;;) {
        /* s[chunk, i) starts the chunk; extend it to the next inert code point. */
        while (i < n) {
            size_t l;
            uint32_t cp = qrr__utf8_next(s + i, &l);
            if (inert(cp) && (i > chunk || qrr__nfc_hf_starter(cp))) break;
            i += l;
        }
        /* copy s[done, chunk) verbatim, then the chunk's NFC */
        uint8_t *nfc = NULL;
        utf8proc_ssize_t m = utf8proc_map(s + chunk, (utf8proc_ssize_t)(i - chunk), &nfc,
                                          UTF8PROC_STABLE | UTF8PROC_COMPOSE);
        if (m < 0) return QRR_ERR_NOMEM; /* input is valid UTF-8: only allocation fails */
        size_t need = used + (chunk - done) + (size_t)m;
        if (norm_reserve(sc, need)) {
            free(nfc);
            return QRR_ERR_NOMEM;
        }
        memcpy(sc->norm + used, s + done, chunk - done);
        used += chunk - done;
        memcpy(sc->norm + used, nfc, (size_t)m);
        used += (size_t)m;
        free(nfc);
        done = i;
        /* the next code point that is not inert, remembering the inert one before it */
        bool found = false;
        while (i < n) {
            size_t l;
            uint32_t cp = qrr__utf8_next(s + i, &l);
            if (!inert(cp)) {
                found = true;
                break;
            }
            last_inert = qrr__nfc_hf_starter(cp) ? i + l : i;
            i += l;
        }
        if (!found) break;
        chunk = last_inert >= done ? last_inert : done;
    }
    if (norm_reserve(sc, used + (n - done))) return QRR_ERR_NOMEM;
    memcpy(sc->norm + used, s + done, n - done);
    used += n - done;
    *out = sc->norm;
    *out_n = used;
    return QRR_OK;
}

int qrr__nfc_alloc(const uint8_t *s, size_t n, uint8_t **out, size_t *out_n)
{
    uint8_t *nfc = NULL;
    utf8proc_ssize_t m = utf8proc_map(s, (utf8proc_ssize_t)n, &nfc,
                                      UTF8PROC_STABLE | UTF8PROC_COMPOSE);
    if (m < 0) return m == UTF8PROC_ERROR_NOMEM ? QRR_ERR_NOMEM : QRR_ERR_UTF8;
    *out = nfc;
    *out_n = (size_t)m;
    return QRR_OK;
}
