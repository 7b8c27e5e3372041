/* tokenizer_import.c — turn a Hugging Face tokenizer.json (+ tokenizer_config.json) into the
 * tokenizer blob of docs/format-tokenizer.md, refusing every setting the runtime cannot
 * reproduce exactly. JSON lives here only; the runtime reads the blob. */
#include "tokenizer_import.h"

#include <errno.h>
#include <jansson.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hf_config.h"
#include "qrr_tok_blob.h"
#include "tokenizer.h"

/* The pattern Hugging Face's ByteLevel pre-tokenizer applies when use_regex is true. */
static const char gpt2_pattern[] =
    "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+";

typedef struct {
    uint8_t *p;
    size_t n, cap;
} buf;

static int buf_put(buf *b, const void *src, size_t n)
{
    size_t need;
    if (__builtin_add_overflow(b->n, n, &need)) return -1;
    if (need > b->cap) {
        size_t cap = b->cap ? b->cap : 4096;
        while (cap < need) {
            if (__builtin_mul_overflow(cap, 2, &cap)) return -1;
        }
        uint8_t *p = realloc(b->p, cap);
        if (!p) return -1;
        b->p = p;
        b->cap = cap;
    }
    if (n) memcpy(b->p + b->n, src, n);
    b->n = need;
    return 0;
}

static int buf_u32(buf *b, uint32_t v)
{
    uint8_t le[4] = {(uint8_t)v, (uint8_t)(v >> 8), (uint8_t)(v >> 16), (uint8_t)(v >> 24)};
    return buf_put(b, le, 4);
}

static void put_u32_at(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
    p[2] = (uint8_t)(v >> 16);
    p[3] = (uint8_t)(v >> 24);
}

/* GPT-2's byte <-> printable code point map: printable Latin-1 bytes stand for themselves,
 * the other 68 bytes take U+0100.. in byte order. byte_of[cp] = byte + 1, 0 = not a symbol. */
#define BL_CP_LIMIT 324
static void byte_level_inverse(uint16_t byte_of[BL_CP_LIMIT])
{
    memset(byte_of, 0, BL_CP_LIMIT * sizeof byte_of[0]);
    unsigned extra = 0;
    for (unsigned b = 0; b < 256; b++) {
        bool printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || b >= 0xAE;
        unsigned cp = printable ? b : 256 + extra++;
        byte_of[cp] = (uint16_t)(b + 1);
    }
}

/* Undo the byte-level mapping of s (valid UTF-8 from jansson) into out; -1 if a code point
 * is not one of the 256 symbols or the result exceeds the cap. */
static int byte_level_decode(const uint16_t byte_of[BL_CP_LIMIT], const char *s, size_t n,
                             uint8_t *out, size_t *out_n)
{
    size_t k = 0;
    const uint8_t *u = (const uint8_t *)s;
    for (size_t i = 0; i < n;) {
        uint32_t cp;
        if (u[i] < 0x80) cp = u[i++];
        else if ((u[i] & 0xE0) == 0xC0 && i + 1 < n) {
            cp = ((uint32_t)(u[i] & 0x1F) << 6) | (u[i + 1] & 0x3F);
            i += 2;
        } else return -1; /* every symbol is below U+0800 */
        if (cp >= BL_CP_LIMIT || !byte_of[cp] || k >= QRR_TOK_MAX_TOKEN_BYTES) return -1;
        out[k++] = (uint8_t)(byte_of[cp] - 1);
    }
    *out_n = k;
    return 0;
}

/* A set of u64 keys (merge pairs), open addressing; only for duplicate detection. */
typedef struct {
    uint64_t *slot; /* key + 1; 0 = empty */
    size_t mask;
} pair_set;

static int pair_set_init(pair_set *s, size_t n)
{
    size_t cap = 16;
    while (cap < 2 * n) cap *= 2;
    s->slot = calloc(cap, sizeof *s->slot);
    s->mask = cap - 1;
    return s->slot ? 0 : -1;
}

/* 1 if key was already there. */
static int pair_set_add(pair_set *s, uint64_t key)
{
    size_t i = (size_t)((key * 0x9E3779B97F4A7C15ull) >> 20) & s->mask;
    for (;; i = (i + 1) & s->mask) {
        if (s->slot[i] == key + 1) return 1;
        if (!s->slot[i]) {
            s->slot[i] = key + 1;
            return 0;
        }
    }
}

typedef struct {
    const char *path;      /* tokenizer.json, for messages */
    uint16_t byte_of[BL_CP_LIMIT];
    json_t *vocab;         /* model.vocab */
    uint32_t n_vocab_ids;  /* max vocab id + 1 */
    uint32_t *vocab_end;   /* [n_ids] */
    buf vocab_bytes, merges, added, added_bytes;
    uint32_t n_ids, n_merges, n_added, flags;
    const char *regex;
} import_state;

static int read_json(const char *path, json_t **out, qrr_diag *d)
{
    int rc = qrr_hf_load_json(path, JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL, out, d);
    if (rc == QRR_OK && !json_is_object(*out))
        return qrr_fail(d, QRR_ERR_JSON, "%s: the top level is not a JSON object", path);
    return rc;
}

/* A boolean that may be absent (default) or null (default). -1 if another type. */
static int opt_bool(const json_t *obj, const char *key, bool dflt, bool *out)
{
    const json_t *v = json_object_get(obj, key);
    if (!v || json_is_null(v)) *out = dflt;
    else if (json_is_boolean(v)) *out = json_is_true(v);
    else return -1;
    return 0;
}

/* true when key is absent, null or the empty string. */
static bool empty_or_null(const json_t *obj, const char *key)
{
    const json_t *v = json_object_get(obj, key);
    return !v || json_is_null(v) || (json_is_string(v) && json_string_length(v) == 0);
}

static const char *type_of(const json_t *obj)
{
    const json_t *t = json_object_get(obj, "type");
    return json_is_string(t) ? json_string_value(t) : NULL;
}

static int check_normalizer(import_state *st, const json_t *root, qrr_diag *d)
{
    const json_t *n = json_object_get(root, "normalizer");
    if (!n || json_is_null(n)) return QRR_OK;
    const char *t = type_of(n);
    if (t && !strcmp(t, "NFC")) {
        st->flags |= QRR_TOK_FLAG_NFC;
        return QRR_OK;
    }
    if (t && !strcmp(t, "Sequence")) {
        const json_t *list = json_object_get(n, "normalizers");
        if (!json_is_array(list))
            return qrr_fail(d, QRR_ERR_UNSUPPORTED, "%s: normalizer.normalizers is not an array",
                            st->path);
        for (size_t i = 0; i < json_array_size(list); i++) {
            const char *ti = type_of(json_array_get(list, i));
            if (!ti || strcmp(ti, "NFC"))
                return qrr_fail(d, QRR_ERR_UNSUPPORTED,
                                "%s: normalizer.normalizers[%zu] is %s; only NFC is supported",
                                st->path, i, ti ? ti : "(no type)");
            st->flags |= QRR_TOK_FLAG_NFC; /* NFC twice is NFC once */
        }
        return QRR_OK;
    }
    return qrr_fail(d, QRR_ERR_UNSUPPORTED, "%s: normalizer type %s is not supported (only NFC "
                    "or none)", st->path, t ? t : "(missing)");
}

static int check_byte_level(import_state *st, const json_t *bl, const char *where, qrr_diag *d)
{
    bool aps;
    if (opt_bool(bl, "add_prefix_space", false, &aps) || aps)
        return qrr_fail(d, QRR_ERR_UNSUPPORTED, "%s: %s.add_prefix_space must be false",
                        st->path, where);
    return QRR_OK;
}

static int check_pre_tokenizer(import_state *st, const json_t *root, qrr_diag *d)
{
    const json_t *p = json_object_get(root, "pre_tokenizer");
    const char *t = p ? type_of(p) : NULL;
    if (t && !strcmp(t, "ByteLevel")) {
        int rc = check_byte_level(st, p, "pre_tokenizer", d);
        if (rc) return rc;
        bool use_regex;
        if (opt_bool(p, "use_regex", true, &use_regex))
            return qrr_fail(d, QRR_ERR_UNSUPPORTED, "%s: pre_tokenizer.use_regex is not a boolean",
                            st->path);
        st->regex = use_regex ? gpt2_pattern : "";
        return QRR_OK;
    }
    if (!t || strcmp(t, "Sequence"))
        return qrr_fail(d, QRR_ERR_UNSUPPORTED, "%s: pre_tokenizer %s is not supported (expected "
                        "Sequence[Split(Regex), ByteLevel] or ByteLevel)", st->path,
                        t ? t : "(missing)");
    const json_t *list = json_object_get(p, "pretokenizers");
    const json_t *split = json_array_get(list, 0), *bl = json_array_get(list, 1);
    const char *ts = split ? type_of(split) : NULL, *tb = bl ? type_of(bl) : NULL;
    if (json_array_size(list) != 2 || !ts || strcmp(ts, "Split") || !tb || strcmp(tb, "ByteLevel"))
        return qrr_fail(d, QRR_ERR_UNSUPPORTED, "%s: pre_tokenizer.pretokenizers must be exactly "
                        "[Split, ByteLevel]", st->path);
    const json_t *pat = json_object_get(split, "pattern");
    const json_t *re = json_is_object(pat) ? json_object_get(pat, "Regex") : NULL;
    if (!json_is_string(re))
        return qrr_fail(d, QRR_ERR_UNSUPPORTED, "%s: pre_tokenizer.pretokenizers[0].pattern must "
                        "be {\"Regex\": ...}", st->path);
    const json_t *beh = json_object_get(split, "behavior");
    if (!json_is_string(beh) || strcmp(json_string_value(beh), "Isolated"))
        return qrr_fail(d, QRR_ERR_UNSUPPORTED, "%s: pre_tokenizer.pretokenizers[0].behavior must "
                        "be Isolated", st->path);
    bool invert;
    if (opt_bool(split, "invert", false, &invert) || invert)
        return qrr_fail(d, QRR_ERR_UNSUPPORTED, "%s: pre_tokenizer.pretokenizers[0].invert must "
                        "be false", st->path);
    int rc = check_byte_level(st, bl, "pre_tokenizer.pretokenizers[1]", d);
    if (rc) return rc;
    bool use_regex;
    if (opt_bool(bl, "use_regex", true, &use_regex) || use_regex)
        return qrr_fail(d, QRR_ERR_UNSUPPORTED, "%s: pre_tokenizer.pretokenizers[1].use_regex "
                        "must be false after a Split", st->path);
    if (json_string_length(re) > QRR_TOK_MAX_REGEX_BYTES ||
        strlen(json_string_value(re)) != json_string_length(re))
        return qrr_fail(d, QRR_ERR_UNSUPPORTED, "%s: pre_tokenizer.pretokenizers[0].pattern.Regex "
                        "is longer than %u bytes or holds a NUL", st->path,
                        QRR_TOK_MAX_REGEX_BYTES);
    st->regex = json_string_value(re);
    return QRR_OK;
}

static int check_model(import_state *st, const json_t *root, qrr_diag *d)
{
    const json_t *m = json_object_get(root, "model");
    if (!json_is_object(m))
        return qrr_fail(d, QRR_ERR_UNSUPPORTED, "%s: no \"model\" object", st->path);
    const char *t = type_of(m);
    if (t ? strcmp(t, "BPE") != 0 : !json_object_get(m, "merges"))
        return qrr_fail(d, QRR_ERR_UNSUPPORTED, "%s: model.type %s is not supported (only BPE)",
                        st->path, t ? t : "(missing)");
    const json_t *dropout = json_object_get(m, "dropout");
    if (dropout && !json_is_null(dropout))
        return qrr_fail(d, QRR_ERR_UNSUPPORTED, "%s: model.dropout must be null", st->path);
    bool b;
    if (opt_bool(m, "byte_fallback", false, &b) || b)
        return qrr_fail(d, QRR_ERR_UNSUPPORTED, "%s: model.byte_fallback must be false", st->path);
    if (!empty_or_null(m, "continuing_subword_prefix"))
        return qrr_fail(d, QRR_ERR_UNSUPPORTED, "%s: model.continuing_subword_prefix must be "
                        "empty", st->path);
    if (!empty_or_null(m, "end_of_word_suffix"))
        return qrr_fail(d, QRR_ERR_UNSUPPORTED, "%s: model.end_of_word_suffix must be empty",
                        st->path);
    if (opt_bool(m, "ignore_merges", false, &b))
        return qrr_fail(d, QRR_ERR_UNSUPPORTED, "%s: model.ignore_merges is not a boolean",
                        st->path);
    if (b) st->flags |= QRR_TOK_FLAG_IGNORE_MERGES;
    /* unk_token and fuse_unk never act: every byte is a vocabulary token (checked at load). */
    const json_t *dec = json_object_get(root, "decoder");
    const char *td = dec ? type_of(dec) : NULL;
    if (dec && !json_is_null(dec) && (!td || strcmp(td, "ByteLevel")))
        return qrr_fail(d, QRR_ERR_UNSUPPORTED, "%s: decoder %s is not supported (only "
                        "ByteLevel)", st->path, td ? td : "(no type)");
    return QRR_OK;
}

static int import_vocab(import_state *st, const json_t *root, qrr_diag *d)
{
    const json_t *vocab = json_object_get(json_object_get(root, "model"), "vocab");
    if (!json_is_object(vocab))
        return qrr_fail(d, QRR_ERR_UNSUPPORTED, "%s: model.vocab is not an object", st->path);
    st->vocab = (json_t *)vocab;
    size_t n = json_object_size(vocab);
    if (n == 0 || n > QRR_TOK_MAX_IDS)
        return qrr_fail(d, QRR_ERR_UNSUPPORTED, "%s: model.vocab has %zu entries (1..%u allowed)",
                        st->path, n, QRR_TOK_MAX_IDS);
    /* First pass: the largest id. */
    const char *key;
    json_t *v;
    uint32_t max_id = 0;
    json_object_foreach((json_t *)vocab, key, v) {
        json_int_t id = json_is_integer(v) ? json_integer_value(v) : -1;
        if (id < 0 || id >= (json_int_t)QRR_TOK_MAX_IDS)
            return qrr_fail(d, QRR_ERR_UNSUPPORTED, "%s: model.vocab[\"%s\"]: id is not an "
                            "integer in [0, %u)", st->path, key, QRR_TOK_MAX_IDS);
        if ((uint32_t)id > max_id) max_id = (uint32_t)id;
    }
    st->n_vocab_ids = max_id + 1;
    st->n_ids = st->n_vocab_ids;
    /* Second pass: raw bytes per id; laid out in id order below. */
    uint32_t *len = calloc(st->n_vocab_ids, sizeof *len);
    uint64_t *where = calloc(st->n_vocab_ids, sizeof *where); /* offset into raw */
    buf raw = {0};
    int rc = QRR_OK;
    if (!len || !where) rc = qrr_fail(d, QRR_ERR_NOMEM, "out of memory reading the vocab");
    json_object_foreach((json_t *)vocab, key, v) {
        if (rc) break;
        uint32_t id = (uint32_t)json_integer_value(v);
        uint8_t tmp[QRR_TOK_MAX_TOKEN_BYTES];
        size_t tn = 0;
        if (len[id]) {
            rc = qrr_fail(d, QRR_ERR_UNSUPPORTED, "%s: model.vocab: id %u appears twice", st->path,
                          id);
        } else if (byte_level_decode(st->byte_of, key, strlen(key), tmp, &tn) || tn == 0) {
            rc = qrr_fail(d, QRR_ERR_UNSUPPORTED, "%s: model.vocab[\"%s\"] (id %u) is empty, "
                          "longer than %u bytes, or not made of byte-level symbols", st->path,
                          key, id, QRR_TOK_MAX_TOKEN_BYTES);
        } else if (raw.n + tn > QRR_TOK_MAX_VOCAB_BYTES) {
            rc = qrr_fail(d, QRR_ERR_UNSUPPORTED, "%s: model.vocab holds more than %u bytes",
                          st->path, QRR_TOK_MAX_VOCAB_BYTES);
        } else {
            where[id] = raw.n;
            len[id] = (uint32_t)tn;
            if (buf_put(&raw, tmp, tn)) rc = qrr_fail(d, QRR_ERR_NOMEM, "out of memory");
        }
    }
    if (rc == QRR_OK) {
        st->vocab_end = malloc((size_t)st->n_vocab_ids * sizeof *st->vocab_end);
        if (!st->vocab_end) rc = qrr_fail(d, QRR_ERR_NOMEM, "out of memory");
    }
    for (uint32_t id = 0; rc == QRR_OK && id < st->n_vocab_ids; id++) {
        if (buf_put(&st->vocab_bytes, raw.p + where[id], len[id]))
            rc = qrr_fail(d, QRR_ERR_NOMEM, "out of memory");
        else st->vocab_end[id] = (uint32_t)st->vocab_bytes.n;
    }
    free(len);
    free(raw.p);
    free(where);
    return rc;
}

/* The id of byte-level token string s (NUL-terminated), -1 if absent. */
static int64_t vocab_id(const import_state *st, const char *s)
{
    const json_t *v = json_object_get(st->vocab, s);
    return json_is_integer(v) ? (int64_t)json_integer_value(v) : -1;
}

static int import_merges(import_state *st, const json_t *root, qrr_diag *d)
{
    const json_t *merges = json_object_get(json_object_get(root, "model"), "merges");
    if (!json_is_array(merges))
        return qrr_fail(d, QRR_ERR_UNSUPPORTED, "%s: model.merges is not an array", st->path);
    size_t n = json_array_size(merges);
    if (n > QRR_TOK_MAX_MERGES)
        return qrr_fail(d, QRR_ERR_UNSUPPORTED, "%s: model.merges has %zu entries (cap %u)",
                        st->path, n, QRR_TOK_MAX_MERGES);
    pair_set seen;
    if (pair_set_init(&seen, n)) return qrr_fail(d, QRR_ERR_NOMEM, "out of memory");
    int rc = QRR_OK;
    char a[2 * QRR_TOK_MAX_TOKEN_BYTES + 1], b[2 * QRR_TOK_MAX_TOKEN_BYTES + 1];
    char ab[4 * QRR_TOK_MAX_TOKEN_BYTES + 1];
    for (size_t i = 0; i < n && rc == QRR_OK; i++) {
        const json_t *m = json_array_get(merges, i);
        const char *sa = NULL, *sb = NULL;
        size_t la = 0, lb = 0;
        if (json_is_array(m) && json_array_size(m) == 2 && json_is_string(json_array_get(m, 0)) &&
            json_is_string(json_array_get(m, 1))) {
            sa = json_string_value(json_array_get(m, 0));
            la = json_string_length(json_array_get(m, 0));
            sb = json_string_value(json_array_get(m, 1));
            lb = json_string_length(json_array_get(m, 1));
        } else if (json_is_string(m)) { /* the older "left right" form */
            const char *s = json_string_value(m), *sp = strchr(s, ' ');
            if (sp && !strchr(sp + 1, ' ')) {
                sa = s;
                la = (size_t)(sp - s);
                sb = sp + 1;
                lb = strlen(sb);
            }
        }
        if (!sa || la == 0 || lb == 0 || la >= sizeof a || lb >= sizeof b) {
            rc = qrr_fail(d, QRR_ERR_UNSUPPORTED, "%s: model.merges[%zu] is not a pair of "
                          "non-empty token strings", st->path, i);
            break;
        }
        memcpy(a, sa, la);
        a[la] = 0;
        memcpy(b, sb, lb);
        b[lb] = 0;
        memcpy(ab, a, la);
        memcpy(ab + la, b, lb + 1);
        int64_t ia = vocab_id(st, a), ib = vocab_id(st, b), iab = vocab_id(st, ab);
        if (ia < 0 || ib < 0)
            rc = qrr_fail(d, QRR_ERR_UNSUPPORTED, "%s: model.merges[%zu] names \"%s\", which is "
                          "not in model.vocab", st->path, i, ia < 0 ? a : b);
        else if (iab < 0)
            rc = qrr_fail(d, QRR_ERR_UNSUPPORTED, "%s: model.merges[%zu]: the merged token \"%s\" "
                          "is not in model.vocab", st->path, i, ab);
        else if (pair_set_add(&seen, ((uint64_t)ia << 32) | (uint64_t)ib))
            rc = qrr_fail(d, QRR_ERR_UNSUPPORTED, "%s: model.merges[%zu] (\"%s\" \"%s\") repeats "
                          "an earlier merge", st->path, i, a, b);
        else if (buf_u32(&st->merges, (uint32_t)ia) || buf_u32(&st->merges, (uint32_t)ib))
            rc = qrr_fail(d, QRR_ERR_NOMEM, "out of memory");
    }
    free(seen.slot);
    st->n_merges = (uint32_t)n;
    return rc;
}

static const char *const added_keys[] = {"id", "content", "single_word", "lstrip", "rstrip",
                                         "normalized", "special"};
static const uint32_t added_flag[] = {0, 0, QRR_TOK_ADDED_SINGLE_WORD, QRR_TOK_ADDED_LSTRIP,
                                      QRR_TOK_ADDED_RSTRIP, QRR_TOK_ADDED_NORMALIZED,
                                      QRR_TOK_ADDED_SPECIAL};
#define N_ADDED_KEYS (sizeof added_keys / sizeof added_keys[0])

/* Read one added token (from tokenizer.json or tokenizer_config.json's added_tokens_decoder,
 * where the id is the key: id_in_obj false). */
static int parse_added(const char *path, const char *where, const json_t *a, bool id_in_obj,
                       uint32_t *id, const char **content, size_t *clen, uint32_t *flags,
                       qrr_diag *d)
{
    if (!json_is_object(a))
        return qrr_fail(d, QRR_ERR_UNSUPPORTED, "%s: %s is not an object", path, where);
    const char *key;
    json_t *v;
    json_object_foreach((json_t *)a, key, v) {
        size_t k = 0;
        if (!id_in_obj && !strcmp(key, "__type")) continue; /* older configs tag the class */
        while (k < N_ADDED_KEYS && strcmp(key, added_keys[k])) k++;
        if (k == N_ADDED_KEYS || (k == 0 && !id_in_obj))
            return qrr_fail(d, QRR_ERR_UNSUPPORTED, "%s: %s has the unknown key \"%s\"", path,
                            where, key);
    }
    *flags = 0;
    for (size_t k = 2; k < N_ADDED_KEYS; k++) {
        const json_t *f = json_object_get(a, added_keys[k]);
        if (!json_is_boolean(f))
            return qrr_fail(d, QRR_ERR_UNSUPPORTED, "%s: %s.%s is missing or not a boolean",
                            path, where, added_keys[k]);
        if (json_is_true(f)) *flags |= added_flag[k];
    }
    const json_t *c = json_object_get(a, "content");
    if (!json_is_string(c) || json_string_length(c) == 0 ||
        json_string_length(c) > QRR_TOK_MAX_TOKEN_BYTES)
        return qrr_fail(d, QRR_ERR_UNSUPPORTED, "%s: %s.content is not a string of 1..%u bytes",
                        path, where, QRR_TOK_MAX_TOKEN_BYTES);
    *content = json_string_value(c);
    *clen = json_string_length(c);
    if (id_in_obj) {
        const json_t *j = json_object_get(a, "id");
        json_int_t x = json_is_integer(j) ? json_integer_value(j) : -1;
        if (x < 0 || x >= (json_int_t)QRR_TOK_MAX_IDS)
            return qrr_fail(d, QRR_ERR_UNSUPPORTED, "%s: %s.id is not an integer in [0, %u)",
                            path, where, QRR_TOK_MAX_IDS);
        *id = (uint32_t)x;
    }
    return QRR_OK;
}

static int import_added(import_state *st, const json_t *root, qrr_diag *d)
{
    const json_t *list = json_object_get(root, "added_tokens");
    if (!list || json_is_null(list)) return QRR_OK;
    if (!json_is_array(list))
        return qrr_fail(d, QRR_ERR_UNSUPPORTED, "%s: added_tokens is not an array", st->path);
    size_t n = json_array_size(list);
    if (n > QRR_TOK_MAX_ADDED)
        return qrr_fail(d, QRR_ERR_UNSUPPORTED, "%s: %zu added tokens (cap %u)", st->path, n,
                        QRR_TOK_MAX_ADDED);
    for (size_t i = 0; i < n; i++) {
        char where[64];
        snprintf(where, sizeof where, "added_tokens[%zu]", i);
        uint32_t id, flags;
        const char *c;
        size_t cl;
        int rc = parse_added(st->path, where, json_array_get(list, i), true, &id, &c, &cl, &flags,
                             d);
        if (rc) return rc;
        if (id < st->n_vocab_ids) {
            uint32_t beg = id ? st->vocab_end[id - 1] : 0, end = st->vocab_end[id];
            if (end != beg && (end - beg != cl || memcmp(st->vocab_bytes.p + beg, c, cl)))
                return qrr_fail(d, QRR_ERR_UNSUPPORTED, "%s: %s: id %u is the vocabulary token "
                                "of another text", st->path, where, id);
        }
        if (id >= st->n_ids) st->n_ids = id + 1;
        if (buf_put(&st->added_bytes, c, cl) || buf_u32(&st->added, id) ||
            buf_u32(&st->added, flags) || buf_u32(&st->added, (uint32_t)st->added_bytes.n))
            return qrr_fail(d, QRR_ERR_NOMEM, "out of memory");
    }
    st->n_added = (uint32_t)n;
    return QRR_OK;
}

/* tokenizer_config.json: refuse what changes encoding and disagrees with tokenizer.json. */
static int check_config(import_state *st, const json_t *root, const char *cfg_path, qrr_diag *d)
{
    json_t *cfg = NULL;
    int rc = read_json(cfg_path, &cfg, d);
    if (rc) return rc;
    bool b;
    if (opt_bool(cfg, "split_special_tokens", false, &b) || b)
        rc = qrr_fail(d, QRR_ERR_UNSUPPORTED, "%s: split_special_tokens must be false", cfg_path);
    else if (opt_bool(cfg, "add_prefix_space", false, &b) || b)
        rc = qrr_fail(d, QRR_ERR_UNSUPPORTED, "%s: add_prefix_space must be false", cfg_path);
    const json_t *dec = json_object_get(cfg, "added_tokens_decoder");
    if (rc == QRR_OK && dec && !json_is_object(dec))
        rc = qrr_fail(d, QRR_ERR_UNSUPPORTED, "%s: added_tokens_decoder is not an object",
                      cfg_path);
    const json_t *list = json_object_get(root, "added_tokens");
    const char *key;
    json_t *v;
    if (rc == QRR_OK && dec) json_object_foreach((json_t *)dec, key, v) {
        char where[96];
        snprintf(where, sizeof where, "added_tokens_decoder[\"%.40s\"]", key);
        char *end = NULL;
        errno = 0;
        unsigned long id = strtoul(key, &end, 10);
        if (!*key || *end || errno || id >= QRR_TOK_MAX_IDS) {
            rc = qrr_fail(d, QRR_ERR_UNSUPPORTED, "%s: %s: the key is not a token id", cfg_path,
                          where);
            break;
        }
        uint32_t flags, tid, tflags;
        const char *c, *tc;
        size_t cl, tcl;
        rc = parse_added(cfg_path, where, v, false, NULL, &c, &cl, &flags, d);
        if (rc) break;
        bool found = false;
        for (size_t i = 0; i < json_array_size(list) && !found; i++) {
            if (parse_added(st->path, "added_tokens", json_array_get(list, i), true, &tid, &tc,
                            &tcl, &tflags, NULL) == QRR_OK && tid == id) {
                found = true;
                if (tcl != cl || memcmp(tc, c, cl) || tflags != flags)
                    rc = qrr_fail(d, QRR_ERR_UNSUPPORTED, "%s: %s disagrees with %s's added "
                                  "token %lu", cfg_path, where, st->path, id);
            }
        }
        if (rc) break;
        if (!found) {
            rc = qrr_fail(d, QRR_ERR_UNSUPPORTED, "%s: %s is not among %s's added_tokens",
                          cfg_path, where, st->path);
            break;
        }
    }
    json_decref(cfg);
    return rc;
}

static int assemble(import_state *st, uint8_t **blob, size_t *len, qrr_diag *d)
{
    size_t regex_len = strlen(st->regex);
    buf out = {0};
    uint8_t head[QRR_TOK_HEADER_SIZE] = {0};
    memcpy(head, QRR_TOK_MAGIC, 8);
    put_u32_at(head + QRR_TOK_H_VERSION, QRR_TOK_VERSION);
    put_u32_at(head + QRR_TOK_H_FLAGS, st->flags);
    put_u32_at(head + QRR_TOK_H_N_IDS, st->n_ids);
    put_u32_at(head + QRR_TOK_H_N_MERGES, st->n_merges);
    put_u32_at(head + QRR_TOK_H_N_ADDED, st->n_added);
    put_u32_at(head + QRR_TOK_H_VOCAB_BYTES, (uint32_t)st->vocab_bytes.n);
    put_u32_at(head + QRR_TOK_H_ADDED_BYTES, (uint32_t)st->added_bytes.n);
    put_u32_at(head + QRR_TOK_H_REGEX_BYTES, (uint32_t)regex_len);
    int bad = buf_put(&out, head, sizeof head);
    /* ids past the last vocabulary id (added tokens only) end where the vocab bytes end */
    for (uint32_t id = 0; id < st->n_ids && !bad; id++)
        bad = buf_u32(&out, id < st->n_vocab_ids ? st->vocab_end[id]
                                                 : (uint32_t)st->vocab_bytes.n);
    bad = bad || buf_put(&out, st->vocab_bytes.p, st->vocab_bytes.n) ||
          buf_put(&out, st->merges.p, st->merges.n) || buf_put(&out, st->added.p, st->added.n) ||
          buf_put(&out, st->added_bytes.p, st->added_bytes.n) ||
          buf_put(&out, st->regex, regex_len);
    if (bad) {
        free(out.p);
        return qrr_fail(d, QRR_ERR_NOMEM, "out of memory assembling the tokenizer blob");
    }
    *blob = out.p;
    *len = out.n;
    return QRR_OK;
}

int qrr_tokenizer_read_json(const char *tokenizer_json_path, json_t **root, qrr_diag *d)
{
    *root = NULL;
    if (!tokenizer_json_path)
        return qrr_fail(d, QRR_ERR_INVALID_ARG, "qrr_tokenizer_read_json: NULL argument");
    int rc = read_json(tokenizer_json_path, root, d);
    if (rc != QRR_OK) {
        json_decref(*root);
        *root = NULL;
    }
    return rc;
}

int qrr_tokenizer_import(const char *tokenizer_json_path, const char *tokenizer_config_path,
                         uint8_t **blob, size_t *len, qrr_diag *d)
{
    if (!tokenizer_json_path || !blob || !len)
        return qrr_fail(d, QRR_ERR_INVALID_ARG, "qrr_tokenizer_import: NULL argument");
    *blob = NULL;
    *len = 0;
    json_t *root;
    int rc = qrr_tokenizer_read_json(tokenizer_json_path, &root, d);
    if (rc == QRR_OK)
        rc = qrr_tokenizer_import_json(root, tokenizer_json_path, tokenizer_config_path, blob,
                                       len, d);
    json_decref(root);
    return rc;
}

int qrr_tokenizer_import_json(const json_t *root, const char *tokenizer_json_path,
                              const char *tokenizer_config_path, uint8_t **blob, size_t *len,
                              qrr_diag *d)
{
    if (!root || !tokenizer_json_path || !blob || !len)
        return qrr_fail(d, QRR_ERR_INVALID_ARG, "qrr_tokenizer_import_json: NULL argument");
    *blob = NULL;
    *len = 0;
    import_state st = {.path = tokenizer_json_path};
    byte_level_inverse(st.byte_of);
    int rc = check_model(&st, root, d);
    if (rc == QRR_OK) rc = check_normalizer(&st, root, d);
    if (rc == QRR_OK) rc = check_pre_tokenizer(&st, root, d);
    if (rc == QRR_OK) rc = import_vocab(&st, root, d);
    if (rc == QRR_OK) rc = import_merges(&st, root, d);
    if (rc == QRR_OK) rc = import_added(&st, root, d);
    if (rc == QRR_OK && tokenizer_config_path)
        rc = check_config(&st, root, tokenizer_config_path, d);
    if (rc == QRR_OK) rc = assemble(&st, blob, len, d);
    if (rc == QRR_OK) {
        /* What we write must load: the runtime's own checks (every byte a token, the regex
         * compiles) run here too, so a refusal names the source file. */
        qrr_tokenizer *t = NULL;
        qrr_diag ld;
        qrr_diag_clear(&ld);
        rc = qrr_tokenizer_load(*blob, *len, &t, &ld);
        qrr_tokenizer_free(t);
        if (rc != QRR_OK) {
            rc = qrr_fail(d, QRR_ERR_UNSUPPORTED, "%s: the runtime cannot use this tokenizer: %s",
                          tokenizer_json_path, ld.msg);
            free(*blob);
            *blob = NULL;
            *len = 0;
        }
    }
    free(st.vocab_end);
    free(st.vocab_bytes.p);
    free(st.merges.p);
    free(st.added.p);
    free(st.added_bytes.p);
    return rc;
}
