/* tokenizer.c — load and check the tokenizer blob, and the encode pipeline of Hugging Face
 * tokenizers for byte-level BPE: added tokens in the raw text, NFC, added tokens marked
 * normalized, the Split regex, BPE (tok_text.c, tok_regex.c, tok_bpe.c hold the parts).
 * Also decode and lookups. The blob layout is docs/format-tokenizer.md. */
#include <stdlib.h>
#include <string.h>

#include "tok_internal.h"

static inline uint32_t rd32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

void qrr_tokenizer_free(qrr_tokenizer *t)
{
    if (!t) return;
    qrr__regex_free(t);
    free(t->text);
    free(t->str_off);
    free(t->str_len);
    free(t->vocab_slot);
    free(t->merge);
    free(t->added);
    free(t->raw.tok);
    free(t->norm.tok);
    free(t->norm_text);
    free(t);
}

/* ---- load ------------------------------------------------------------------------------ */

typedef struct {
    uint32_t n_ids, n_merges, n_added, flags, vocab_bytes, added_bytes, regex_bytes;
    const uint8_t *vocab_end, *vocab, *merges, *added, *added_text, *regex;
} blob_view;

#define BAD(...) qrr_fail(d, QRR_ERR_BAD_TOKENIZER, "tokenizer blob: " __VA_ARGS__)

/* Check the header and the section sizes against len; fill v. */
static int parse_header(const uint8_t *b, size_t len, blob_view *v, qrr_diag *d)
{
    if (len < QRR_TOK_HEADER_SIZE)
        return BAD("%zu byte%s, shorter than the %d-byte header", len, len == 1 ? "" : "s",
                   QRR_TOK_HEADER_SIZE);
    if (memcmp(b, QRR_TOK_MAGIC, 8)) return BAD("bad magic (expected \"%s\")", QRR_TOK_MAGIC);
    uint32_t version = rd32(b + QRR_TOK_H_VERSION);
    if (version != QRR_TOK_VERSION)
        return BAD("version %u, this build reads version %u", version, QRR_TOK_VERSION);
    v->flags = rd32(b + QRR_TOK_H_FLAGS);
    v->n_ids = rd32(b + QRR_TOK_H_N_IDS);
    v->n_merges = rd32(b + QRR_TOK_H_N_MERGES);
    v->n_added = rd32(b + QRR_TOK_H_N_ADDED);
    v->vocab_bytes = rd32(b + QRR_TOK_H_VOCAB_BYTES);
    v->added_bytes = rd32(b + QRR_TOK_H_ADDED_BYTES);
    v->regex_bytes = rd32(b + QRR_TOK_H_REGEX_BYTES);
    if (v->flags & ~QRR_TOK_FLAGS_KNOWN) return BAD("unknown flags 0x%08X", v->flags);
    if (rd32(b + QRR_TOK_H_RESERVED0) || rd32(b + QRR_TOK_H_RESERVED1))
        return BAD("reserved header fields are not zero");
    if (v->n_ids < 256 || v->n_ids > QRR_TOK_MAX_IDS)
        return BAD("n_ids %u outside [256, %u]", v->n_ids, QRR_TOK_MAX_IDS);
    if (v->n_merges > QRR_TOK_MAX_MERGES)
        return BAD("n_merges %u above the cap %u", v->n_merges, QRR_TOK_MAX_MERGES);
    if (v->n_added > QRR_TOK_MAX_ADDED)
        return BAD("n_added %u above the cap %u", v->n_added, QRR_TOK_MAX_ADDED);
    if (v->vocab_bytes > QRR_TOK_MAX_VOCAB_BYTES)
        return BAD("vocab_bytes %u above the cap %u", v->vocab_bytes, QRR_TOK_MAX_VOCAB_BYTES);
    if (v->added_bytes > QRR_TOK_MAX_ADDED_BYTES)
        return BAD("added_bytes %u above the cap %u", v->added_bytes, QRR_TOK_MAX_ADDED_BYTES);
    if (v->regex_bytes > QRR_TOK_MAX_REGEX_BYTES)
        return BAD("regex_bytes %u above the cap %u", v->regex_bytes, QRR_TOK_MAX_REGEX_BYTES);
    /* section sizes; each product and sum is checked although the caps keep them small */
    uint64_t sz[6], total = QRR_TOK_HEADER_SIZE;
    int of = __builtin_mul_overflow((uint64_t)v->n_ids, 4u, &sz[0]);
    sz[1] = v->vocab_bytes;
    of |= __builtin_mul_overflow((uint64_t)v->n_merges, 8u, &sz[2]);
    of |= __builtin_mul_overflow((uint64_t)v->n_added, 12u, &sz[3]);
    sz[4] = v->added_bytes;
    sz[5] = v->regex_bytes;
    const uint8_t *at[6];
    for (int i = 0; i < 6; i++) {
        at[i] = b + total; /* only used when total <= len, checked below */
        of |= __builtin_add_overflow(total, sz[i], &total);
    }
    if (of) return BAD("section sizes overflow");
    if (total > len)
        return BAD("truncated: the header declares %llu bytes, the blob has %zu",
                   (unsigned long long)total, len);
    if (total < len)
        return BAD("%llu trailing bytes after the declared end", (unsigned long long)(len - total));
    v->vocab_end = at[0];
    v->vocab = at[1];
    v->merges = at[2];
    v->added = at[3];
    v->added_text = at[4];
    v->regex = at[5];
    return QRR_OK;
}

static int cmp_added(const void *pa, const void *pb)
{
    const qrr__tok_added *a = pa, *b = pb;
    if (a->text[0] != b->text[0]) return a->text[0] < b->text[0] ? -1 : 1;
    if (a->len != b->len) return a->len > b->len ? -1 : 1; /* longest first */
    return memcmp(a->text, b->text, a->len);
}

/* Group the added tokens with (flags & NORMALIZED) == want into set. */
static int build_set(qrr_tokenizer *t, qrr__tok_added_set *set, bool normalized, qrr_diag *d)
{
    uint32_t n = 0;
    for (uint32_t i = 0; i < t->n_added; i++)
        n += !!(t->added[i].flags & QRR_TOK_ADDED_NORMALIZED) == normalized;
    set->n = n;
    memset(set->first, 0, sizeof set->first);
    if (!n) return QRR_OK;
    set->tok = malloc(n * sizeof *set->tok);
    if (!set->tok) return qrr_fail(d, QRR_ERR_NOMEM, "out of memory loading the tokenizer");
    n = 0;
    for (uint32_t i = 0; i < t->n_added; i++)
        if (!!(t->added[i].flags & QRR_TOK_ADDED_NORMALIZED) == normalized)
            set->tok[n++] = t->added[i];
    qsort(set->tok, n, sizeof *set->tok, cmp_added);
    for (uint32_t i = 0; i + 1 < n; i++)
        if (set->tok[i].len == set->tok[i + 1].len &&
            !memcmp(set->tok[i].text, set->tok[i + 1].text, set->tok[i].len))
            return BAD("added tokens %u and %u match the same text", set->tok[i].id,
                       set->tok[i + 1].id);
    /* first[b] = index of the first token starting with a byte >= b */
    uint32_t k = 0;
    for (int b = 0; b <= 256; b++) {
        while (k < n && set->tok[k].text[0] < b) k++;
        set->first[b] = k;
    }
    set->n_first = 0;
    for (int b = 0; b < 256; b++)
        if (set->first[b + 1] > set->first[b]) set->only_first = (uint8_t)b, set->n_first++;
    return QRR_OK;
}

static int load_added(qrr_tokenizer *t, const blob_view *v, qrr_diag *d)
{
    t->added = calloc(v->n_added ? v->n_added : 1, sizeof *t->added);
    uint8_t *seen = calloc(v->n_ids / 8 + 1, 1); /* added-token ids so far */
    if (!t->added || !seen) {
        free(seen);
        return qrr_fail(d, QRR_ERR_NOMEM, "out of memory loading the tokenizer");
    }
    int rc = QRR_OK;
    uint32_t prev_end = 0;
    size_t norm_bytes = 0;
    for (uint32_t i = 0; i < v->n_added && rc == QRR_OK; i++) {
        const uint8_t *r = v->added + 12 * (size_t)i;
        uint32_t id = rd32(r), flags = rd32(r + 4), end = rd32(r + 8);
        if (id >= v->n_ids) rc = BAD("added token %u: id %u >= n_ids %u", i, id, v->n_ids);
        else if (flags & ~QRR_TOK_ADDED_KNOWN)
            rc = BAD("added token %u: unknown flags 0x%08X", i, flags);
        else if (end < prev_end || end > v->added_bytes || end - prev_end == 0 ||
                 end - prev_end > QRR_TOK_MAX_TOKEN_BYTES)
            rc = BAD("added token %u: end offset %u (previous %u, added_bytes %u, length 1..%u)",
                     i, end, prev_end, v->added_bytes, QRR_TOK_MAX_TOKEN_BYTES);
        else if (seen[id / 8] & (1u << (id % 8)))
            rc = BAD("added token %u: id %u given twice", i, id);
        if (rc) break;
        seen[id / 8] |= (uint8_t)(1u << (id % 8));
        uint32_t off = (uint32_t)v->vocab_bytes + prev_end, len = end - prev_end;
        const uint8_t *content = t->text + off;
        if (qrr__utf8_check(content, len) != len)
            rc = BAD("added token %u (id %u): content is not valid UTF-8", i, id);
        else if (qrr__is_vocab(t, id)) {
            if (t->str_len[id] != len || memcmp(t->text + t->str_off[id], content, len))
                rc = BAD("added token %u: id %u is a vocabulary token with other bytes", i, id);
        } else {
            t->str_off[id] = off;
            t->str_len[id] = len;
        }
        t->added[i] = (qrr__tok_added){id, flags, content, len};
        if ((flags & QRR_TOK_ADDED_NORMALIZED) && (v->flags & QRR_TOK_FLAG_NFC))
            norm_bytes += 4 * (size_t)len; /* NFC grows text at most 3-fold */
        prev_end = end;
    }
    free(seen);
    if (rc == QRR_OK && prev_end != v->added_bytes)
        rc = BAD("added tokens use %u of the %u added bytes", prev_end, v->added_bytes);
    t->n_added = v->n_added;
    /* normalized added tokens are matched in normalized text: match their NFC form */
    if (rc == QRR_OK && norm_bytes) {
        t->norm_text = malloc(norm_bytes);
        if (!t->norm_text) return qrr_fail(d, QRR_ERR_NOMEM, "out of memory");
        size_t used = 0;
        for (uint32_t i = 0; i < t->n_added && rc == QRR_OK; i++) {
            qrr__tok_added *a = &t->added[i];
            if (!(a->flags & QRR_TOK_ADDED_NORMALIZED)) continue;
            uint8_t *nfc = NULL;
            size_t m = 0;
            rc = qrr__nfc_alloc(a->text, a->len, &nfc, &m);
            if (rc) return qrr_fail(d, rc, "added token %u: NFC failed", a->id);
            if (m == 0 || m > QRR_TOK_MAX_TOKEN_BYTES || used + m > norm_bytes)
                rc = BAD("added token %u: NFC form is empty or too long", a->id);
            else {
                memcpy(t->norm_text + used, nfc, m);
                a->text = t->norm_text + used;
                a->len = (uint32_t)m;
                used += m;
            }
            free(nfc);
        }
    }
    if (rc == QRR_OK) rc = build_set(t, &t->raw, false, d);
    if (rc == QRR_OK) rc = build_set(t, &t->norm, true, d);
    return rc;
}

int qrr_tokenizer_load(const uint8_t *blob, size_t len, qrr_tokenizer **out, qrr_diag *d)
{
    if (!out) return qrr_fail(d, QRR_ERR_INVALID_ARG, "qrr_tokenizer_load: NULL out");
    *out = NULL;
    if (!blob && len) return qrr_fail(d, QRR_ERR_INVALID_ARG, "qrr_tokenizer_load: NULL blob");
    blob_view v = {0};
    int rc = parse_header(blob ? blob : (const uint8_t *)"", len, &v, d);
    if (rc) return rc;
    qrr_tokenizer *t = calloc(1, sizeof *t);
    if (!t) return qrr_fail(d, QRR_ERR_NOMEM, "out of memory loading the tokenizer");
    t->n_ids = v.n_ids;
    t->n_merges = v.n_merges;
    t->flags = v.flags;
    t->vocab_bytes = v.vocab_bytes;
    size_t text_n = (size_t)v.vocab_bytes + v.added_bytes;
    t->text = malloc(text_n ? text_n : 1);
    t->str_off = malloc((size_t)v.n_ids * sizeof *t->str_off);
    t->str_len = calloc(v.n_ids, sizeof *t->str_len);
    if (!t->text || !t->str_off || !t->str_len) {
        qrr_tokenizer_free(t);
        return qrr_fail(d, QRR_ERR_NOMEM, "out of memory loading the tokenizer");
    }
    memcpy(t->text, v.vocab, v.vocab_bytes);
    memcpy(t->text + v.vocab_bytes, v.added_text, v.added_bytes);
    uint32_t prev = 0;
    for (uint32_t id = 0; id < v.n_ids && rc == QRR_OK; id++) {
        uint32_t end = rd32(v.vocab_end + 4 * (size_t)id);
        if (end < prev || end > v.vocab_bytes || end - prev > QRR_TOK_MAX_TOKEN_BYTES)
            rc = BAD("vocab_end[%u] = %u (previous %u, vocab_bytes %u, at most %u per token)",
                     id, end, prev, v.vocab_bytes, QRR_TOK_MAX_TOKEN_BYTES);
        t->str_off[id] = prev;
        t->str_len[id] = end - prev;
        prev = end;
    }
    if (rc == QRR_OK && prev != v.vocab_bytes)
        rc = BAD("vocabulary tokens use %u of the %u vocab bytes", prev, v.vocab_bytes);
    if (rc == QRR_OK) rc = qrr__bpe_build(t, v.merges, d);
    if (rc == QRR_OK) rc = load_added(t, &v, d);
    if (rc == QRR_OK && qrr__utf8_check(v.regex, v.regex_bytes) != v.regex_bytes)
        rc = BAD("the pre-tokenizer pattern is not valid UTF-8");
    if (rc == QRR_OK) rc = qrr__regex_compile(t, v.regex, v.regex_bytes, d);
    if (rc == QRR_OK && (t->flags & QRR_TOK_FLAG_NFC)) qrr__nfc_init();
    if (rc) {
        qrr_tokenizer_free(t);
        return rc;
    }
    *out = t;
    return QRR_OK;
}

/* ---- encode ---------------------------------------------------------------------------- */

typedef struct {
    const qrr_tokenizer *t;
    qrr__tok_sink *out;
    qrr__tok_scratch *sc;
    qrr_diag *d;
} enc_ctx;

typedef int (*segment_fn)(enc_ctx *c, const uint8_t *s, size_t n);

/* The code point that ends at s[end) (end > 0, valid UTF-8). */
static uint32_t cp_before(const uint8_t *s, size_t end, size_t *start)
{
    size_t i = end - 1;
    while (i > 0 && (s[i] & 0xC0) == 0x80) i--;
    size_t l;
    *start = i;
    return qrr__utf8_next(s + i, &l);
}

/* The leftmost, then longest, added token of set in s[from, n); NULL if none. */
static const qrr__tok_added *find_added(const qrr__tok_added_set *set, const uint8_t *s,
                                        size_t n, size_t from, size_t *at)
{
    for (size_t i = from; i < n; i++) {
        if (set->n_first == 1) {
            const uint8_t *p = memchr(s + i, set->only_first, n - i);
            if (!p) return NULL;
            i = (size_t)(p - s);
        }
        uint8_t c = s[i];
        for (uint32_t k = set->first[c]; k < set->first[c + 1]; k++) {
            const qrr__tok_added *a = &set->tok[k];
            if (a->len <= n - i && !memcmp(s + i, a->text, a->len)) {
                *at = i;
                return a;
            }
        }
    }
    return NULL;
}

/* Hugging Face's AddedVocabulary::find_matches: cut s at the added tokens of set, honouring
 * single_word, lstrip and rstrip; the text between them goes to next. */
static int split_added(enc_ctx *c, const qrr__tok_added_set *set, const uint8_t *s, size_t n,
                       segment_fn next)
{
    size_t done = 0, from = 0; /* text before done is handled; search resumes at from */
    size_t start;
    const qrr__tok_added *a;
    while (from < n && (a = find_added(set, s, n, from, &start)) != NULL) {
        size_t stop = start + a->len;
        from = stop;
        if (a->flags & QRR_TOK_ADDED_SINGLE_WORD) {
            size_t l, b;
            bool word_before = start > 0 && qrr__is_alnum(cp_before(s, start, &b));
            bool word_after = stop < n && qrr__is_alnum(qrr__utf8_next(s + stop, &l));
            if (word_before || word_after) continue;
        }
        if (a->flags & QRR_TOK_ADDED_LSTRIP) {
            size_t ns = start, b;
            while (ns > 0 && qrr__is_white_space(cp_before(s, ns, &b))) ns = b;
            start = ns > done ? ns : done;
        }
        if (a->flags & QRR_TOK_ADDED_RSTRIP) {
            size_t l;
            while (stop < n && qrr__is_white_space(qrr__utf8_next(s + stop, &l))) stop += l;
        }
        if (done < start) {
            int rc = next(c, s + done, start - done);
            if (rc) return rc;
        }
        qrr__tok_push(c->out, (int32_t)a->id);
        if (stop > done) done = stop;
    }
    return done < n ? next(c, s + done, n - done) : QRR_OK;
}

static int after_norm_added(enc_ctx *c, const uint8_t *s, size_t n)
{
    return qrr__regex_split_encode(c->t, s, n, c->out, c->sc, c->d);
}

/* A stretch of raw text between added tokens: normalize, then the normalized added tokens,
 * then the regex. */
static int raw_segment(enc_ctx *c, const uint8_t *s, size_t n)
{
    const uint8_t *ns = s;
    size_t nn = n;
    if (c->t->flags & QRR_TOK_FLAG_NFC) {
        int rc = qrr__nfc(s, n, c->sc, &ns, &nn);
        if (rc) return qrr_fail(c->d, rc, "out of memory normalizing the text");
    }
    if (c->t->norm.n) return split_added(c, &c->t->norm, ns, nn, after_norm_added);
    return after_norm_added(c, ns, nn);
}

int qrr_tokenizer_encode(const qrr_tokenizer *t, const char *text, size_t len, int32_t *ids,
                         size_t cap, size_t *n_ids, qrr_diag *d)
{
    if (n_ids) *n_ids = 0;
    if (!t || (!text && len) || !n_ids || (!ids && cap))
        return qrr_fail(d, QRR_ERR_INVALID_ARG, "qrr_tokenizer_encode: NULL argument");
    const uint8_t *s = (const uint8_t *)text;
    size_t bad = qrr__utf8_check(s, len);
    if (bad != len)
        return qrr_fail(d, QRR_ERR_UTF8, "text is not valid UTF-8 at byte offset %zu (0x%02X)",
                        bad, s[bad]);
    qrr__tok_sink out = {ids, cap, 0};
    qrr__tok_scratch sc = {0};
    enc_ctx c = {t, &out, &sc, d};
    int rc = len ? split_added(&c, &t->raw, s, len, raw_segment) : QRR_OK;
    qrr__tok_scratch_free(&sc);
    if (rc) return rc;
    *n_ids = out.n;
    if (out.n > cap)
        return qrr_fail(d, QRR_ERR_BUFFER_TOO_SMALL, "%zu token ids do not fit in %zu", out.n,
                        cap);
    return QRR_OK;
}

/* ---- decode and lookups ---------------------------------------------------------------- */

/* Append s[0, n) to out (up to cap), counting everything in *k. */
static void put(char *out, size_t cap, size_t *k, const void *s, size_t n)
{
    if (*k < cap) memcpy(out + *k, s, n < cap - *k ? n : cap - *k);
    *k += n;
}

/* Length of the maximal subpart of an ill-formed sequence at p[0, n) (Unicode's "maximal
 * subpart" practice, which Rust's String::from_utf8_lossy follows): the lead byte and the
 * continuation bytes that could still complete it. */
static size_t maximal_subpart(const uint8_t *p, size_t n)
{
    uint8_t c0 = p[0];
    if (c0 < 0xC2 || c0 > 0xF4 || n < 2) return 1;
    size_t need = c0 >= 0xF0 ? 4 : c0 >= 0xE0 ? 3 : 2;
    uint8_t lo = c0 == 0xE0 ? 0xA0 : c0 == 0xF0 ? 0x90 : 0x80;
    uint8_t hi = c0 == 0xED ? 0x9F : c0 == 0xF4 ? 0x8F : 0xBF;
    if (p[1] < lo || p[1] > hi) return 1;
    size_t k = 2;
    while (k < n && k < need && (p[k] & 0xC0) == 0x80) k++;
    return k;
}

int qrr_tokenizer_decode(const qrr_tokenizer *t, const int32_t *ids, size_t n, char *out,
                         size_t cap, size_t *n_bytes, qrr_diag *d)
{
    if (n_bytes) *n_bytes = 0;
    if (!t || (!ids && n) || !n_bytes || (!out && cap))
        return qrr_fail(d, QRR_ERR_INVALID_ARG, "qrr_tokenizer_decode: NULL argument");
    size_t total = 0;
    for (size_t i = 0; i < n; i++) {
        if (ids[i] < 0 || (uint32_t)ids[i] >= t->n_ids || !t->str_len[ids[i]])
            return qrr_fail(d, QRR_ERR_INVALID_ARG, "id %d at position %zu is not a token",
                            ids[i], i);
        if (__builtin_add_overflow(total, (size_t)t->str_len[ids[i]], &total))
            return qrr_fail(d, QRR_ERR_INVALID_ARG, "decoded text too long");
    }
    uint8_t *raw = malloc(total ? total : 1);
    if (!raw) return qrr_fail(d, QRR_ERR_NOMEM, "out of memory decoding %zu ids", n);
    size_t r = 0;
    for (size_t i = 0; i < n; i++) {
        memcpy(raw + r, t->text + t->str_off[ids[i]], t->str_len[ids[i]]);
        r += t->str_len[ids[i]];
    }
    /* A token may end inside a character: ill-formed stretches become U+FFFD, one per
     * maximal subpart, as Hugging Face's decode (String::from_utf8_lossy) does. */
    static const uint8_t fffd[3] = {0xEF, 0xBF, 0xBD};
    size_t k = 0;
    for (size_t i = 0; i < total;) {
        size_t ok = qrr__utf8_check(raw + i, total - i);
        put(out, cap, &k, raw + i, ok);
        i += ok;
        if (i < total) {
            put(out, cap, &k, fffd, 3);
            i += maximal_subpart(raw + i, total - i);
        }
    }
    free(raw);
    *n_bytes = k;
    if (k < cap) out[k] = 0;
    if (k > cap)
        return qrr_fail(d, QRR_ERR_BUFFER_TOO_SMALL, "%zu decoded bytes do not fit in %zu", k,
                        cap);
    return QRR_OK;
}

int32_t qrr_tokenizer_find(const qrr_tokenizer *t, const char *s, size_t len)
{
    if (!t || (!s && len) || len == 0 || len > QRR_TOK_MAX_TOKEN_BYTES) return -1;
    for (uint32_t i = 0; i < t->n_added; i++) {
        const qrr__tok_added *a = &t->added[i];
        if (t->str_len[a->id] == len && !memcmp(t->text + t->str_off[a->id], s, len))
            return (int32_t)a->id;
    }
    return qrr__vocab_find(t, (const uint8_t *)s, len);
}

size_t qrr_tokenizer_vocab_size(const qrr_tokenizer *t) { return t ? t->n_ids : 0; }
size_t qrr_tokenizer_merge_count(const qrr_tokenizer *t) { return t ? t->n_merges : 0; }
size_t qrr_tokenizer_added_count(const qrr_tokenizer *t) { return t ? t->n_added : 0; }

