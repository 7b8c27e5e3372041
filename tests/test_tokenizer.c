/* test_tokenizer.c — the tokenizer against Hugging Face's ids for every reference string,
 * round-trip properties over seeded random Unicode, invalid UTF-8 and buffer handling,
 * added-token flags, the importer's refusals, and malformed blobs (every truncation,
 * bad counts, bad ids), which must fail with QRR_ERR_BAD_TOKENIZER and never crash. */
#include <criterion/criterion.h>
#include <jansson.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>

#include "qrr_test_util.h"
#include "qrr_tok_blob.h"
#include "tok_internal.h"
#include "tokenizer.h"
#include "tokenizer_import.h"

/* ---- helpers ---------------------------------------------------------------------------- */

static qrr_tokenizer *load_reference(void)
{
    char tj[1024], tc[1024];
    snprintf(tj, sizeof tj, "%s/tokenizer/tokenizer.json", tu_reference());
    snprintf(tc, sizeof tc, "%s/tokenizer/tokenizer_config.json", tu_reference());
    qrr_diag d;
    qrr_diag_clear(&d);
    uint8_t *blob = NULL;
    size_t len = 0;
    int rc = qrr_tokenizer_import(tj, tc, &blob, &len, &d);
    cr_assert_eq(rc, QRR_OK, "import %s: %s", tj, d.msg);
    qrr_tokenizer *t = NULL;
    rc = qrr_tokenizer_load(blob, len, &t, &d);
    cr_assert_eq(rc, QRR_OK, "load: %s", d.msg);
    free(blob);
    return t;
}

/* Encode into a fresh array (caller frees); asserts success. */
static int32_t *encode(const qrr_tokenizer *t, const char *s, size_t len, size_t *n)
{
    qrr_diag d;
    size_t need = 0;
    int rc = qrr_tokenizer_encode(t, s, len, NULL, 0, &need, &d);
    cr_assert(rc == QRR_OK || rc == QRR_ERR_BUFFER_TOO_SMALL, "encode: %s", d.msg);
    int32_t *ids = malloc((need ? need : 1) * sizeof *ids);
    rc = qrr_tokenizer_encode(t, s, len, ids, need, n, &d);
    cr_assert_eq(rc, QRR_OK, "encode: %s", d.msg);
    cr_assert_eq(*n, need);
    return ids;
}

static char *decode(const qrr_tokenizer *t, const int32_t *ids, size_t n, size_t *len)
{
    qrr_diag d;
    int rc = qrr_tokenizer_decode(t, ids, n, NULL, 0, len, &d);
    cr_assert(rc == QRR_OK || rc == QRR_ERR_BUFFER_TOO_SMALL, "decode: %s", d.msg);
    char *out = malloc(*len + 1);
    size_t got;
    rc = qrr_tokenizer_decode(t, ids, n, out, *len + 1, &got, &d);
    cr_assert_eq(rc, QRR_OK, "decode: %s", d.msg);
    cr_assert_eq(got, *len);
    return out;
}

/* ---- 1. every reference string, ids identical ------------------------------------------ */

Test(tokenizer, reference_strings_match_hugging_face)
{
    qrr_tokenizer *t = load_reference();
    char path[1024];
    snprintf(path, sizeof path, "%s/tokenizer_public.jsonl", tu_reference());
    FILE *f = fopen(path, "r");
    cr_assert_not_null(f, "cannot open %s", path);
    char *line = NULL;
    size_t cap = 0, n_lines = 0, n_bad = 0;
    while (getline(&line, &cap, f) > 0) {
        json_error_t err;
        json_t *o = json_loads(line, JSON_ALLOW_NUL, &err);
        cr_assert_not_null(o, "%s line %zu: %s", path, n_lines + 1, err.text);
        const json_t *text = json_object_get(o, "text"), *want = json_object_get(o, "ids");
        size_t n;
        int32_t *ids = encode(t, json_string_value(text), json_string_length(text), &n);
        bool same = n == json_array_size(want);
        for (size_t i = 0; same && i < n; i++)
            same = ids[i] == json_integer_value(json_array_get(want, i));
        if (!same) {
            n_bad++;
            cr_log_error("string %zu differs (%zu ids, expected %zu): \"%s\"", n_lines, n,
                         json_array_size(want), json_string_value(text));
        }
        /* a one-token string already in NFC is also found by its text */
        size_t back_len = 0;
        char *back = decode(t, ids, n, &back_len);
        if (json_array_size(want) == 1 && back_len == json_string_length(text) &&
            !memcmp(back, json_string_value(text), back_len))
            cr_expect_eq(qrr_tokenizer_find(t, json_string_value(text), json_string_length(text)),
                         json_integer_value(json_array_get(want, 0)), "find(\"%s\")",
                         json_string_value(text));
        free(back);
        free(ids);
        json_decref(o);
        n_lines++;
    }
    free(line);
    fclose(f);
    cr_assert_eq(n_lines, 536, "expected the 536 reference strings, read %zu", n_lines);
    cr_assert_eq(n_bad, 0, "%zu of %zu strings differ from Hugging Face", n_bad, n_lines);
    cr_assert_eq(qrr_tokenizer_vocab_size(t), 151669);
    cr_assert_eq(qrr_tokenizer_merge_count(t), 151387);
    cr_assert_eq(qrr_tokenizer_added_count(t), 26);
    qrr_tokenizer_free(t);
}

/* ---- 2. properties over seeded random Unicode ------------------------------------------ */

static uint64_t rng_next(uint64_t *s)
{
    uint64_t x = *s;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return *s = x;
}

static size_t put_cp(char *out, uint32_t cp)
{
    return (size_t)utf8proc_encode_char((utf8proc_int32_t)cp, (utf8proc_uint8_t *)out);
}

/* A random code point from a mix of ranges: ASCII, Latin with marks, scripts, whitespace,
 * CJK, Hangul jamo, emoji and every plane. Skips surrogates and the code points whose NFC
 * Hugging Face does differently from utf8proc (tested apart below). */
static uint32_t random_cp(uint64_t *s)
{
    static const uint32_t picks[] = {
        ' ', ' ', '\t', '\n', '\r', 0x0B, 0x0C, 0x85, 0xA0, 0x1680, 0x2000, 0x2009, 0x2028,
        0x2029, 0x202F, 0x205F, 0x3000, 0x180E, 0x200B, 0xFEFF, '\'', '\'', 's', 't', 'l', 'd',
        'S', 'T', 0x17F, '0', '7', 0x0661, 0x0966, 0x1D7D8, 0x0301, 0x0300, 0x0308, 0x0327,
        0x0323, 0x0334, 0x093C, 0x094D, 0x0E31, 0x200D, 0xFE0F, 0x1F3FD, 0x1F468, 0x1F469,
        0x1F467, 0x1F44D, 0x1F1EF, 0x1F1F5, 0x1100, 0x1161, 0x11A8, 0xAC00, 0x212B, 0x2126,
        0x0958, 0x0344, 0xF900, '<', '>', '|', '_'};
    for (;;) {
        uint64_t r = rng_next(s);
        uint32_t k = (uint32_t)(r % 100), cp;
        r >>= 8;
        if (k < 30) cp = 0x20 + (uint32_t)(r % 0x5F);
        else if (k < 55) cp = picks[r % (sizeof picks / sizeof picks[0])];
        else if (k < 70) cp = 0xC0 + (uint32_t)(r % 0x200);
        else if (k < 80) cp = 0x4E00 + (uint32_t)(r % 0x5000);
        else if (k < 88) cp = 0x0370 + (uint32_t)(r % 0x1000);
        else if (k < 94) cp = (uint32_t)(r % 0x10000);
        else cp = 0x10000 + (uint32_t)(r % 0x100000);
        if (cp == 0 || (cp >= 0xD800 && cp <= 0xDFFF) || qrr__nfc_hf_starter(cp)) continue;
        return cp;
    }
}

/* NFC by utf8proc of s[0, n), appended to out. */
static size_t append_nfc(char *out, const char *s, size_t n)
{
    if (!n) return 0;
    utf8proc_uint8_t *nfc = NULL;
    utf8proc_ssize_t m = utf8proc_map((const utf8proc_uint8_t *)s, (utf8proc_ssize_t)n, &nfc,
                                      UTF8PROC_STABLE | UTF8PROC_COMPOSE);
    cr_assert_geq(m, 0, "utf8proc_map failed");
    memcpy(out, nfc, (size_t)m);
    free(nfc);
    return (size_t)m;
}

Test(tokenizer, random_unicode_round_trips_to_nfc)
{
    qrr_tokenizer *t = load_reference();
    static const char *const added[] = {"<|im_start|>", "<|im_end|>", "<|endoftext|>",
                                        "<think>", "</think>", "<tool_call>"};
    uint64_t seed = 0x9E3779B97F4A7C15ull;
    char text[4096], want[8192], run[4096];
    for (int iter = 0; iter < 3000; iter++) {
        /* text = runs of random code points and added tokens; want = each run's NFC and
         * each added token's text, since added tokens are matched before normalization */
        size_t n = 0, w = 0, r = 0;
        int parts = 1 + (int)(rng_next(&seed) % 12);
        for (int p = 0; p < parts; p++) {
            if (rng_next(&seed) % 6 == 0) {
                const char *a = added[rng_next(&seed) % (sizeof added / sizeof added[0])];
                w += append_nfc(want + w, run, r);
                r = 0;
                memcpy(text + n, a, strlen(a));
                memcpy(want + w, a, strlen(a));
                n += strlen(a);
                w += strlen(a);
            } else {
                int len = (int)(rng_next(&seed) % 24);
                for (int i = 0; i < len; i++) {
                    char u[4];
                    size_t k = put_cp(u, random_cp(&seed));
                    memcpy(text + n, u, k);
                    memcpy(run + r, u, k);
                    n += k;
                    r += k;
                }
            }
        }
        w += append_nfc(want + w, run, r);
        size_t n_ids, got_len;
        int32_t *ids = encode(t, text, n, &n_ids);
        char *got = decode(t, ids, n_ids, &got_len);
        cr_assert(got_len == w && !memcmp(got, want, w),
                  "iteration %d: decode(encode(s)) != NFC(s) for s = \"%.*s\"", iter, (int)n, text);
        /* the same ids again: encoding is deterministic and needs no state */
        size_t n2;
        int32_t *ids2 = encode(t, text, n, &n2);
        cr_assert(n2 == n_ids && !memcmp(ids, ids2, n2 * sizeof *ids2));
        free(ids);
        free(ids2);
        free(got);
    }
    qrr_tokenizer_free(t);
}

/* Hugging Face's NFC predates these marks: it leaves U+07FD (class 220 since Unicode 11)
 * where it is, and does not compose U+11935 U+11930 (Unicode 13); qrr does the same. */
Test(tokenizer, nfc_keeps_marks_hugging_face_does_not_know)
{
    qrr_tokenizer *t = load_reference();
    static const char *const keep[] = {"a\xDF\xBD\xCC\xB4", "\xF0\x91\xA4\xB5\xF0\x91\xA4\xB0"};
    for (size_t i = 0; i < 2; i++) {
        size_t n, len;
        int32_t *ids = encode(t, keep[i], strlen(keep[i]), &n);
        char *s = decode(t, ids, n, &len);
        cr_expect(len == strlen(keep[i]) && !memcmp(s, keep[i], len), "case %zu changed", i);
        free(ids);
        free(s);
    }
    /* while marks both know are reordered: U+0301 (class 230) after U+0334 (class 1) */
    size_t n, len;
    int32_t *ids = encode(t, "x\xCC\x81\xCC\xB4", 5, &n);
    char *s = decode(t, ids, n, &len);
    cr_expect(len == 5 && !memcmp(s, "x\xCC\xB4\xCC\x81", 5), "canonical order not applied");
    free(ids);
    free(s);
    qrr_tokenizer_free(t);
}

/* Long pieces take the heap path; they must round-trip and not depend on the path. */
Test(tokenizer, long_pieces_round_trip)
{
    qrr_tokenizer *t = load_reference();
    size_t big = 200000;
    char *s = malloc(big);
    uint64_t seed = 42;
    const char *alpha = "abcdefghijklmnopqrstuvwxyz";
    for (int kind = 0; kind < 3; kind++) {
        for (size_t i = 0; i < big; i++)
            s[i] = kind == 0 ? alpha[rng_next(&seed) % 26] : kind == 1 ? ' ' : 'a';
        size_t n, len;
        int32_t *ids = encode(t, s, big, &n);
        char *back = decode(t, ids, n, &len);
        cr_assert(len == big && !memcmp(back, s, big), "kind %d does not round-trip", kind);
        cr_assert_lt(n, big, "kind %d: no merge happened", kind);
        free(ids);
        free(back);
    }
    /* a word just below and just above the short-piece limit, as a prefix of one another:
     * the short word's ids are a BPE of its own, both decode to themselves */
    for (size_t len = 40; len < 60; len++) {
        size_t n, bl;
        int32_t *ids = encode(t, s, len, &n); /* s is all 'a' now */
        char *back = decode(t, ids, n, &bl);
        cr_expect(bl == len && !memcmp(back, s, len));
        free(ids);
        free(back);
    }
    free(s);
    qrr_tokenizer_free(t);
}

static void *encode_thread(void *arg)
{
    const qrr_tokenizer *t = arg;
    const char *s = "Hello <|im_start|>world, caf\xC3\xA9 \xE4\xB8\xAD\xE6\x96\x87 123 it's  ";
    size_t ref_n;
    qrr_diag d;
    int32_t ref[64], ids[64];
    if (qrr_tokenizer_encode(t, s, strlen(s), ref, 64, &ref_n, &d)) return (void *)1;
    for (int i = 0; i < 2000; i++) {
        size_t n;
        if (qrr_tokenizer_encode(t, s, strlen(s), ids, 64, &n, &d) || n != ref_n ||
            memcmp(ids, ref, n * sizeof *ids))
            return (void *)1;
    }
    return NULL;
}

Test(tokenizer, shared_across_threads)
{
    qrr_tokenizer *t = load_reference();
    pthread_t th[4];
    for (int i = 0; i < 4; i++) cr_assert_eq(pthread_create(&th[i], NULL, encode_thread, t), 0);
    for (int i = 0; i < 4; i++) {
        void *r;
        pthread_join(th[i], &r);
        cr_expect_null(r, "thread %d saw different ids", i);
    }
    qrr_tokenizer_free(t);
}

/* ---- 3. invalid UTF-8, buffers, decode errors ------------------------------------------ */

Test(tokenizer, invalid_utf8_is_refused_with_its_offset)
{
    qrr_tokenizer *t = load_reference();
    static const struct {
        const char *bytes;
        size_t n;
    } bad[] = {
        {"\xC3", 1},             /* truncated 2-byte */
        {"\xE4\xB8", 2},         /* truncated 3-byte */
        {"\xF0\x9F\x98", 3},     /* truncated 4-byte */
        {"\xC0\x80", 2},         /* overlong NUL */
        {"\xC1\xBF", 2},         /* overlong */
        {"\xE0\x80\x80", 3},     /* overlong 3-byte */
        {"\xF0\x80\x80\x80", 4}, /* overlong 4-byte */
        {"\xED\xA0\x80", 3},     /* surrogate U+D800 */
        {"\xED\xBF\xBF", 3},     /* surrogate U+DFFF */
        {"\xF4\x90\x80\x80", 4}, /* past U+10FFFF */
        {"\xF5\x80\x80\x80", 4},
        {"\xFF", 1},
        {"\xFE", 1},
        {"\x80", 1},             /* lone continuation */
        {"\xC3\x28", 2},         /* bad continuation */
        {"\xE4\xB8\x28", 3},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char text[32] = "ab<|im_end|>";
        size_t pre = strlen(text);
        memcpy(text + pre, bad[i].bytes, bad[i].n);
        memcpy(text + pre + bad[i].n, "cd", 2);
        qrr_diag d;
        qrr_diag_clear(&d);
        int32_t ids[32];
        size_t n = 99;
        int rc = qrr_tokenizer_encode(t, text, pre + bad[i].n + 2, ids, 32, &n, &d);
        cr_expect_eq(rc, QRR_ERR_UTF8, "case %zu: status %d", i, rc);
        char want[64];
        snprintf(want, sizeof want, "byte offset %zu", pre);
        cr_expect_not_null(strstr(d.msg, want), "case %zu: message \"%s\"", i, d.msg);
        /* the invalid sequence at the very end of the buffer: no read past it */
        char *exact = malloc(bad[i].n);
        memcpy(exact, bad[i].bytes, bad[i].n);
        rc = qrr_tokenizer_encode(t, exact, bad[i].n, ids, 32, &n, &d);
        cr_expect_eq(rc, QRR_ERR_UTF8, "case %zu at end: status %d", i, rc);
        free(exact);
    }
    /* valid text whose bytes end exactly at a malloc'ed buffer's end */
    char *s = malloc(3);
    memcpy(s, "\xE4\xB8\xAD", 3);
    size_t n;
    int32_t ids[8];
    cr_expect_eq(qrr_tokenizer_encode(t, s, 3, ids, 8, &n, NULL), QRR_OK);
    free(s);
    qrr_tokenizer_free(t);
}

Test(tokenizer, buffers_too_small_report_the_size)
{
    qrr_tokenizer *t = load_reference();
    const char *s = "The capital of China is Beijing. <|im_end|> \xE4\xB8\xAD\xE6\x96\x87!";
    size_t full_n;
    int32_t *full = encode(t, s, strlen(s), &full_n);
    cr_assert_gt(full_n, 4);
    qrr_diag d;
    int32_t part[4];
    size_t n = 0;
    cr_expect_eq(qrr_tokenizer_encode(t, s, strlen(s), part, 3, &n, &d), QRR_ERR_BUFFER_TOO_SMALL);
    cr_expect_eq(n, full_n);
    cr_expect_arr_eq(part, full, 3 * sizeof *part);
    cr_expect_eq(qrr_tokenizer_encode(t, s, strlen(s), NULL, 0, &n, &d), QRR_ERR_BUFFER_TOO_SMALL);
    cr_expect_eq(n, full_n);
    cr_expect_eq(qrr_tokenizer_encode(t, "", 0, NULL, 0, &n, &d), QRR_OK);
    cr_expect_eq(n, 0);
    cr_expect_eq(qrr_tokenizer_encode(t, NULL, 3, NULL, 0, &n, &d), QRR_ERR_INVALID_ARG);

    size_t len;
    cr_expect_eq(qrr_tokenizer_decode(t, full, full_n, NULL, 0, &len, &d),
                 QRR_ERR_BUFFER_TOO_SMALL);
    cr_expect_eq(len, strlen(s));
    char out[8];
    cr_expect_eq(qrr_tokenizer_decode(t, full, full_n, out, 5, &len, &d),
                 QRR_ERR_BUFFER_TOO_SMALL);
    cr_expect_eq(len, strlen(s));
    cr_expect_arr_eq(out, s, 5);
    free(full);
    qrr_tokenizer_free(t);
}

Test(tokenizer, decode_refuses_unknown_ids_and_replaces_broken_bytes)
{
    qrr_tokenizer *t = load_reference();
    qrr_diag d;
    char out[64];
    size_t len;
    int32_t bad[] = {-1, (int32_t)qrr_tokenizer_vocab_size(t), INT32_MAX};
    for (size_t i = 0; i < 3; i++) {
        qrr_diag_clear(&d);
        cr_expect_eq(qrr_tokenizer_decode(t, &bad[i], 1, out, sizeof out, &len, &d),
                     QRR_ERR_INVALID_ARG, "id %d", bad[i]);
        cr_expect_neq(d.msg[0], 0);
    }
    /* the token of the lone byte 0xE4 (the first byte of U+4E2D) decodes to U+FFFD, as
     * Hugging Face's lossy decode does; followed by the rest it forms the character */
    int32_t e4 = qrr_tokenizer_find(t, "\xE4", 1), b8 = qrr_tokenizer_find(t, "\xB8", 1),
            ad = qrr_tokenizer_find(t, "\xAD", 1);
    cr_assert(e4 >= 0 && b8 >= 0 && ad >= 0);
    cr_expect_eq(qrr_tokenizer_decode(t, &e4, 1, out, sizeof out, &len, &d), QRR_OK);
    cr_expect(len == 3 && !memcmp(out, "\xEF\xBF\xBD", 3));
    int32_t seq[] = {e4, b8, ad};
    cr_expect_eq(qrr_tokenizer_decode(t, seq, 3, out, sizeof out, &len, &d), QRR_OK);
    cr_expect(len == 3 && !memcmp(out, "\xE4\xB8\xAD", 3));
    int32_t seq2[] = {e4, b8, e4};
    cr_expect_eq(qrr_tokenizer_decode(t, seq2, 3, out, sizeof out, &len, &d), QRR_OK);
    cr_expect(len == 6 && !memcmp(out, "\xEF\xBF\xBD\xEF\xBF\xBD", 6), "one U+FFFD per subpart");
    cr_expect_eq(qrr_tokenizer_find(t, "<|im_end|>", 10) >= 0, true);
    cr_expect_eq(qrr_tokenizer_find(t, "no such token at all", 20), -1);
    qrr_tokenizer_free(t);
}

/* ---- a small handmade tokenizer.json ---------------------------------------------------- */

/* GPT-2's byte symbols as UTF-8 strings. */
static void byte_symbol(int b, char out[4])
{
    static int cp_of[256];
    static bool init;
    if (!init) {
        int extra = 0;
        for (int i = 0; i < 256; i++) {
            bool pr = (i >= '!' && i <= '~') || (i >= 0xA1 && i <= 0xAC) || i >= 0xAE;
            cp_of[i] = pr ? i : 256 + extra++;
        }
        init = true;
    }
    size_t k = put_cp(out, (uint32_t)cp_of[b]);
    out[k] = 0;
}

/* The small tokenizer: 256 byte tokens, "ab", "abc", "Ġa" (" a"), "cd"; added tokens "<|x|>"
 * (special), "<y>" (lstrip, rstrip), "zz" (single_word), "é!" (normalized, so matched after
 * NFC). Returns the JSON object; mutate() may change it before it is written. */
static json_t *small_tokenizer(void)
{
    json_t *vocab = json_object();
    for (int b = 0; b < 256; b++) {
        char s[4];
        byte_symbol(b, s);
        json_object_set_new(vocab, s, json_integer(b));
    }
    json_object_set_new(vocab, "ab", json_integer(256));
    json_object_set_new(vocab, "abc", json_integer(257));
    json_object_set_new(vocab, "\xC4\xA0" "a", json_integer(258));
    json_object_set_new(vocab, "cd", json_integer(259));
    json_t *merges = json_pack("[[s,s],[s,s],[s,s],[s,s]]", "a", "b", "ab", "c", "\xC4\xA0", "a",
                               "c", "d");
    json_t *model = json_pack("{s:s,s:n,s:n,s:s,s:s,s:b,s:b,s:b,s:o,s:o}", "type", "BPE",
                              "dropout", "unk_token", "continuing_subword_prefix", "",
                              "end_of_word_suffix", "", "fuse_unk", 0, "byte_fallback", 0,
                              "ignore_merges", 0, "vocab", vocab, "merges", merges);
    json_t *added = json_array();
    struct { int id; const char *c; int sw, l, r, norm, sp; } a[] = {
        {260, "<|x|>", 0, 0, 0, 0, 1}, {261, "<y>", 0, 1, 1, 0, 0}, {262, "zz", 1, 0, 0, 0, 0},
        {263, "\xC3\xA9!", 0, 0, 0, 1, 0}};
    for (size_t i = 0; i < 4; i++)
        json_array_append_new(added, json_pack("{s:i,s:s,s:b,s:b,s:b,s:b,s:b}", "id", a[i].id,
                                               "content", a[i].c, "single_word", a[i].sw,
                                               "lstrip", a[i].l, "rstrip", a[i].r, "normalized",
                                               a[i].norm, "special", a[i].sp));
    const char *re = "(?i:'s|'t)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}"
                     "| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*"
                     "|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
    json_t *pre = json_pack("{s:s,s:[{s:s,s:{s:s},s:s,s:b},{s:s,s:b,s:b,s:b}]}", "type",
                            "Sequence", "pretokenizers", "type", "Split", "pattern", "Regex", re,
                            "behavior", "Isolated", "invert", 0, "type", "ByteLevel",
                            "add_prefix_space", 0, "trim_offsets", 0, "use_regex", 0);
    return json_pack("{s:s,s:n,s:n,s:o,s:{s:s},s:o,s:n,s:{s:s},s:o}", "version", "1.0",
                     "truncation", "padding", "added_tokens", added, "normalizer", "type", "NFC",
                     "pre_tokenizer", pre, "post_processor", "decoder", "type", "ByteLevel",
                     "model", model);
}

/* Write j to dir/name, import it; returns the status (blob/len filled on success). */
static int import_json(json_t *j, const char *dir, uint8_t **blob, size_t *len, qrr_diag *d)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/tokenizer.json", dir);
    cr_assert_eq(json_dump_file(j, path, JSON_INDENT(1)), 0);
    qrr_diag_clear(d);
    return qrr_tokenizer_import(path, NULL, blob, len, d);
}

static qrr_tokenizer *load_small(uint8_t **blob_out, size_t *len_out)
{
    char dir[256];
    tu_tmpdir(dir, sizeof dir);
    json_t *j = small_tokenizer();
    uint8_t *blob;
    size_t len;
    qrr_diag d;
    cr_assert_eq(import_json(j, dir, &blob, &len, &d), QRR_OK, "small import: %s", d.msg);
    json_decref(j);
    qrr_tokenizer *t;
    cr_assert_eq(qrr_tokenizer_load(blob, len, &t, &d), QRR_OK, "small load: %s", d.msg);
    if (blob_out) {
        *blob_out = blob;
        *len_out = len;
    } else {
        free(blob);
    }
    tu_system("rm -rf '%s'", dir);
    return t;
}

/* ids of s, compared with the texts of the expected tokens */
static void expect_tokens(const qrr_tokenizer *t, const char *s, const char *const *want,
                          size_t n_want)
{
    size_t n;
    int32_t *ids = encode(t, s, strlen(s), &n);
    cr_expect_eq(n, n_want, "\"%s\": %zu ids, expected %zu", s, n, n_want);
    for (size_t i = 0; i < n && i < n_want; i++)
        cr_expect_eq(ids[i], qrr_tokenizer_find(t, want[i], strlen(want[i])),
                     "\"%s\": token %zu is not \"%s\"", s, i, want[i]);
    free(ids);
}

Test(tokenizer, added_token_flags_as_hugging_face)
{
    qrr_tokenizer *t = load_small(NULL, NULL);
    /* merges by rank, and the space joins the letter after it */
    expect_tokens(t, "abc", (const char *const[]){"abc"}, 1);
    expect_tokens(t, "abcd a", (const char *const[]){"abc", "d", " a"}, 3);
    /* a special token inside text is matched as itself */
    expect_tokens(t, "ab<|x|>ab", (const char *const[]){"ab", "<|x|>", "ab"}, 3);
    /* lstrip and rstrip swallow the white space around "<y>" */
    expect_tokens(t, "ab  <y>\t ab", (const char *const[]){"ab", "<y>", "ab"}, 3);
    /* single_word: "zz" inside a word is not the added token */
    expect_tokens(t, "a zz b", (const char *const[]){"a", " ", "zz", " ", "b"}, 5);
    size_t n;
    int32_t *ids = encode(t, "azz", 3, &n);
    int32_t zz = qrr_tokenizer_find(t, "zz", 2);
    for (size_t i = 0; i < n; i++) cr_expect_neq(ids[i], zz, "single_word matched inside a word");
    free(ids);
    /* normalized: "e" + U+0301 + "!" is NFC "é!", then matched */
    expect_tokens(t, "e\xCC\x81!", (const char *const[]){"\xC3\xA9!"}, 1);
    qrr_tokenizer_free(t);
}

/* The older merge form, "left right" strings, gives the same blob. */
Test(tokenizer, import_reads_string_merges)
{
    char dir[256];
    tu_tmpdir(dir, sizeof dir);
    json_t *j = small_tokenizer();
    uint8_t *b1, *b2;
    size_t l1, l2;
    qrr_diag d;
    cr_assert_eq(import_json(j, dir, &b1, &l1, &d), QRR_OK, "%s", d.msg);
    json_t *merges = json_object_get(json_object_get(j, "model"), "merges");
    for (size_t i = 0; i < json_array_size(merges); i++) {
        json_t *m = json_array_get(merges, i);
        char s[64];
        snprintf(s, sizeof s, "%s %s", json_string_value(json_array_get(m, 0)),
                 json_string_value(json_array_get(m, 1)));
        json_array_set_new(merges, i, json_string(s));
    }
    cr_assert_eq(import_json(j, dir, &b2, &l2, &d), QRR_OK, "%s", d.msg);
    cr_expect(l1 == l2 && !memcmp(b1, b2, l1), "string merges give another blob");
    free(b1);
    free(b2);
    json_decref(j);
    tu_system("rm -rf '%s'", dir);
}

/* ---- 4. the importer's refusals -------------------------------------------------------- */

typedef void (*mutator)(json_t *j);
static json_t *model(json_t *j) { return json_object_get(j, "model"); }
static json_t *merges(json_t *j) { return json_object_get(model(j), "merges"); }
static json_t *added0(json_t *j) { return json_array_get(json_object_get(j, "added_tokens"), 0); }
static json_t *split(json_t *j)
{
    return json_array_get(json_object_get(json_object_get(j, "pre_tokenizer"), "pretokenizers"),
                          0);
}
static void m_wordpiece(json_t *j)
{
    json_object_set_new(model(j), "type", json_string("WordPiece"));
}
static void m_byte_fallback(json_t *j)
{
    json_object_set_new(model(j), "byte_fallback", json_true());
}
static void m_dropout(json_t *j) { json_object_set_new(model(j), "dropout", json_real(0.1)); }
static void m_suffix(json_t *j)
{
    json_object_set_new(model(j), "end_of_word_suffix", json_string("</w>"));
}
static void m_lowercase(json_t *j)
{
    json_object_set_new(j, "normalizer", json_pack("{s:s}", "type", "Lowercase"));
}
static void m_whitespace(json_t *j)
{
    json_object_set_new(j, "pre_tokenizer", json_pack("{s:s}", "type", "Whitespace"));
}
static void m_prefix_space(json_t *j)
{
    json_object_set_new(j, "pre_tokenizer", json_pack("{s:s,s:b}", "type", "ByteLevel",
                                                      "add_prefix_space", 1));
}
static void m_added_key(json_t *j) { json_object_set_new(added0(j), "colour", json_true()); }
static void m_added_flag(json_t *j) { json_object_del(added0(j), "lstrip"); }
static void m_merge_unknown(json_t *j)
{
    json_array_append_new(merges(j), json_pack("[s,s]", "q", "nope"));
}
static void m_merge_result(json_t *j)
{
    json_array_append_new(merges(j), json_pack("[s,s]", "x", "y"));
}
static void m_merge_twice(json_t *j)
{
    json_array_append_new(merges(j), json_pack("[s,s]", "a", "b"));
}
static void m_non_byte(json_t *j)
{
    json_object_set_new(json_object_get(model(j), "vocab"), "\xE2\x82\xAC", json_integer(300));
}
static void m_decoder(json_t *j)
{
    json_object_set_new(j, "decoder", json_pack("{s:s}", "type", "WordPiece"));
}
static void m_regex(json_t *j)
{
    json_object_set_new(split(j), "pattern", json_pack("{s:s}", "Regex", "\\w+"));
}
static void m_behavior(json_t *j)
{
    json_object_set_new(split(j), "behavior", json_string("Removed"));
}
static void m_bad_regex(json_t *j)
{
    json_object_set_new(split(j), "pattern", json_pack("{s:s}", "Regex", "(ab"));
}

Test(tokenizer, import_refuses_what_it_cannot_reproduce)
{
    static const struct { mutator m; const char *key; } cases[] = {
        {m_wordpiece, "model.type"}, {m_byte_fallback, "model.byte_fallback"},
        {m_dropout, "model.dropout"}, {m_suffix, "model.end_of_word_suffix"},
        {m_lowercase, "normalizer"}, {m_whitespace, "pre_tokenizer"},
        {m_prefix_space, "add_prefix_space"}, {m_added_key, "colour"},
        {m_added_flag, "lstrip"}, {m_merge_unknown, "model.merges[4]"},
        {m_merge_result, "model.merges[4]"}, {m_merge_twice, "model.merges[4]"},
        {m_non_byte, "model.vocab"}, {m_decoder, "decoder"}, {m_regex, "\\w"},
        {m_behavior, "behavior"}, {m_bad_regex, "does not compile"},
    };
    char dir[256];
    tu_tmpdir(dir, sizeof dir);
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        json_t *j = small_tokenizer();
        cases[i].m(j);
        uint8_t *blob = NULL;
        size_t len = 0;
        qrr_diag d;
        int rc = import_json(j, dir, &blob, &len, &d);
        cr_expect_eq(rc, QRR_ERR_UNSUPPORTED, "case %zu (%s): status %d: %s", i, cases[i].key,
                     rc, d.msg);
        cr_expect_not_null(strstr(d.msg, "tokenizer.json"), "case %zu: no file in \"%s\"", i,
                           d.msg);
        cr_expect_not_null(strstr(d.msg, cases[i].key), "case %zu: \"%s\" lacks \"%s\"", i,
                           d.msg, cases[i].key);
        cr_expect_null(blob);
        json_decref(j);
    }
    /* malformed JSON and a missing file */
    char path[512];
    snprintf(path, sizeof path, "%s/tokenizer.json", dir);
    FILE *f = fopen(path, "w");
    fputs("{\"model\": {\"type\": \"BPE\", ", f);
    fclose(f);
    uint8_t *blob = NULL;
    size_t len;
    qrr_diag d;
    cr_expect_eq(qrr_tokenizer_import(path, NULL, &blob, &len, &d), QRR_ERR_JSON, "%s", d.msg);
    snprintf(path, sizeof path, "%s/absent.json", dir);
    cr_expect_eq(qrr_tokenizer_import(path, NULL, &blob, &len, &d), QRR_ERR_IO, "%s", d.msg);
    /* tokenizer_config.json: split_special_tokens changes encoding */
    json_t *j = small_tokenizer();
    cr_assert_eq(import_json(j, dir, &blob, &len, &d), QRR_OK, "%s", d.msg);
    free(blob);
    json_decref(j);
    char tj[512], tc[512];
    snprintf(tj, sizeof tj, "%s/tokenizer.json", dir);
    snprintf(tc, sizeof tc, "%s/tokenizer_config.json", dir);
    f = fopen(tc, "w");
    fputs("{\"split_special_tokens\": true}", f);
    fclose(f);
    cr_expect_eq(qrr_tokenizer_import(tj, tc, &blob, &len, &d), QRR_ERR_UNSUPPORTED, "%s", d.msg);
    cr_expect_not_null(strstr(d.msg, "split_special_tokens"));
    f = fopen(tc, "w");
    fputs("{\"added_tokens_decoder\": {\"260\": {\"content\": \"<|z|>\", \"lstrip\": false, "
          "\"rstrip\": false, \"normalized\": false, \"single_word\": false, \"special\": true}}}",
          f);
    fclose(f);
    cr_expect_eq(qrr_tokenizer_import(tj, tc, &blob, &len, &d), QRR_ERR_UNSUPPORTED, "%s", d.msg);
    cr_expect_not_null(strstr(d.msg, "added_tokens_decoder"));
    tu_system("rm -rf '%s'", dir);
}

/* ---- 5. malformed blobs ------------------------------------------------------------------ */

static int try_load(const uint8_t *b, size_t len, qrr_diag *d)
{
    qrr_tokenizer *t = NULL;
    qrr_diag_clear(d);
    /* a copy of exactly len bytes, so that a read past the end is a real overrun */
    uint8_t *copy = malloc(len ? len : 1);
    if (len) memcpy(copy, b, len);
    int rc = qrr_tokenizer_load(copy, len, &t, d);
    free(copy);
    if (rc == QRR_OK) cr_assert_not_null(t);
    else cr_assert_null(t);
    qrr_tokenizer_free(t);
    return rc;
}

static void wr32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
    p[2] = (uint8_t)(v >> 16);
    p[3] = (uint8_t)(v >> 24);
}

static uint32_t rd32le(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

Test(tokenizer, every_truncation_is_refused)
{
    uint8_t *blob;
    size_t len;
    qrr_tokenizer_free(load_small(&blob, &len));
    qrr_diag d;
    cr_assert_eq(try_load(blob, len, &d), QRR_OK, "%s", d.msg);
    for (size_t l = 0; l < len; l++)
        cr_assert_eq(try_load(blob, l, &d), QRR_ERR_BAD_TOKENIZER, "length %zu of %zu", l, len);
    uint8_t *longer = malloc(len + 1);
    memcpy(longer, blob, len);
    longer[len] = 0;
    cr_expect_eq(try_load(longer, len + 1, &d), QRR_ERR_BAD_TOKENIZER);
    cr_expect_not_null(strstr(d.msg, "trailing"), "%s", d.msg);
    free(longer);
    free(blob);
}

Test(tokenizer, bad_fields_are_refused)
{
    uint8_t *blob;
    size_t len;
    qrr_tokenizer_free(load_small(&blob, &len));
    uint8_t *b = malloc(len);
    uint32_t n_ids = rd32le(blob + QRR_TOK_H_N_IDS), n_merges = rd32le(blob + QRR_TOK_H_N_MERGES);
    uint32_t vocab_bytes = rd32le(blob + QRR_TOK_H_VOCAB_BYTES);
    size_t vocab_end = QRR_TOK_HEADER_SIZE, vocab = vocab_end + 4 * (size_t)n_ids;
    size_t merges = vocab + vocab_bytes, added = merges + 8 * (size_t)n_merges;
    struct { size_t off; uint32_t val; const char *what; } cases[] = {
        {0, 0x4B4F5451, "magic"},
        {QRR_TOK_H_VERSION, 2, "version"},
        {QRR_TOK_H_FLAGS, 0x80, "flags"},
        {QRR_TOK_H_N_IDS, 0xFFFFFFFF, "n_ids huge"},
        {QRR_TOK_H_N_IDS, n_ids + 1, "n_ids + 1"},
        {QRR_TOK_H_N_IDS, 100, "n_ids below 256"},
        {QRR_TOK_H_N_MERGES, 0x40000000, "n_merges huge"},
        {QRR_TOK_H_N_MERGES, n_merges - 1, "n_merges - 1"},
        {QRR_TOK_H_N_ADDED, 0xFFFFFFFF, "n_added huge"},
        {QRR_TOK_H_VOCAB_BYTES, 0xFFFFFFF0, "vocab_bytes huge"},
        {QRR_TOK_H_VOCAB_BYTES, vocab_bytes + 1, "vocab_bytes + 1"},
        {QRR_TOK_H_REGEX_BYTES, 0xFFFFFFFF, "regex_bytes huge"},
        {QRR_TOK_H_RESERVED0, 1, "reserved"},
        {vocab_end + 4, 0, "vocab_end goes backwards"},
        {vocab_end + 4 * 10, 0xFFFFFF, "vocab_end past the bytes"},
        {vocab_end + 4 * 255, rd32le(blob + vocab_end + 4 * 254), "byte 255 has no token"},
        {merges, n_ids, "merge left id out of range"},
        {merges + 4, 0xFFFFFFFF, "merge right id out of range"},
        {merges + 4, 'z', "merge result not in vocab"},
        {merges + 8, rd32le(blob + merges), "merge repeated"},
        {added, n_ids, "added id out of range"},
        {added + 4, 0x100, "added flags"},
        {added + 8, 0, "added empty content"},
        {added + 12, 'a', "added id twice / vocab clash"},
    };
    qrr_diag d;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        memcpy(b, blob, len);
        wr32(b + cases[i].off, cases[i].val);
        int rc = try_load(b, len, &d);
        cr_expect_eq(rc, QRR_ERR_BAD_TOKENIZER, "%s: status %d", cases[i].what, rc);
        cr_expect_neq(d.msg[0], 0, "%s: no message", cases[i].what);
    }
    /* two vocabulary tokens with the same bytes: make "cd" (259) read "ab" */
    memcpy(b, blob, len);
    uint32_t beg = rd32le(b + vocab_end + 4 * 258);
    memcpy(b + vocab + beg, "ab", 2);
    cr_expect_eq(try_load(b, len, &d), QRR_ERR_BAD_TOKENIZER, "duplicate vocab");
    /* a pattern that does not compile, and one that is not UTF-8: the last bytes */
    memcpy(b, blob, len);
    b[len - 1] = '(';
    cr_expect_eq(try_load(b, len, &d), QRR_ERR_BAD_TOKENIZER, "bad regex: %s", d.msg);
    b[len - 1] = 0xFF;
    cr_expect_eq(try_load(b, len, &d), QRR_ERR_BAD_TOKENIZER, "regex not UTF-8: %s", d.msg);
    /* random single-byte corruption: any status, never a crash */
    uint64_t seed = 7;
    for (int i = 0; i < 3000; i++) {
        memcpy(b, blob, len);
        size_t at = (size_t)(rng_next(&seed) % len);
        b[at] = (uint8_t)rng_next(&seed);
        int rc = try_load(b, len, &d);
        cr_expect(rc == QRR_OK || rc == QRR_ERR_BAD_TOKENIZER, "byte %zu: status %d", at, rc);
    }
    free(b);
    free(blob);
}
