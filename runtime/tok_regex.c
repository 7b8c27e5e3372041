/* tok_regex.c — the Split pre-tokenizer: the pattern from tokenizer.json (written for
 * Oniguruma, which tokenizers uses) compiled by PCRE2 with JIT, UTF and UCP, and the loop
 * that cuts a normalized segment into matches and gaps and hands each to BPE.
 * PCRE2 differs from Oniguruma in a few escapes; those are rewritten or refused here. */
#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>
#include <stdlib.h>
#include <string.h>

#include "tok_internal.h"

/* The letters and numbers Unicode 15.0 and 16.0 added. tokenizers' Oniguruma carries
 * Unicode 16.0 data and PCRE2 10.42 carries 14.0, so \p{L} and \p{N} get these ranges
 * appended (harmless where PCRE2 already knows them). They are exactly the code points whose
 * general category is L or N in UnicodeData 16.0 but not in 14.0 (docs/tokenizer.md says
 * how to regenerate them); no category shrank between the two versions. */
static const char extra_L[] =
    "\\x{1C89}-\\x{1C8A}\\x{A7CB}-\\x{A7CD}\\x{A7DA}-\\x{A7DC}\\x{105C0}-\\x{105F3}"
    "\\x{10D4A}-\\x{10D65}\\x{10D6F}-\\x{10D85}\\x{10EC2}-\\x{10EC4}"
    "\\x{1123F}-\\x{11240}\\x{11380}-\\x{11389}\\x{1138B}\\x{1138E}"
    "\\x{11390}-\\x{113B5}\\x{113B7}\\x{113D1}\\x{113D3}\\x{11BC0}-\\x{11BE0}"
    "\\x{11F02}\\x{11F04}-\\x{11F10}\\x{11F12}-\\x{11F33}\\x{1342F}"
    "\\x{13441}-\\x{13446}\\x{13460}-\\x{143FA}\\x{16100}-\\x{1611D}"
    "\\x{16D40}-\\x{16D6C}\\x{18CFF}\\x{1B132}\\x{1B155}\\x{1DF25}-\\x{1DF2A}"
    "\\x{1E030}-\\x{1E06D}\\x{1E4D0}-\\x{1E4EB}\\x{1E5D0}-\\x{1E5ED}\\x{1E5F0}"
    "\\x{2B739}\\x{2EBF0}-\\x{2EE5D}\\x{31350}-\\x{323AF}";
static const char extra_N[] =
    "\\x{10D40}-\\x{10D49}\\x{116D0}-\\x{116E3}\\x{11BF0}-\\x{11BF9}"
    "\\x{11F50}-\\x{11F59}\\x{16130}-\\x{16139}\\x{16D70}-\\x{16D79}"
    "\\x{1CCF0}-\\x{1CCF9}\\x{1D2C0}-\\x{1D2D3}\\x{1E4F0}-\\x{1E4F9}"
    "\\x{1E5F1}-\\x{1E5FA}";

/* Rewrite pat into PCRE2 syntax with Oniguruma's meaning:
 *  \s, \S  Oniguruma: the White_Space property; PCRE2 with UCP also takes U+180E, so they
 *          become \p{White_Space} and \P{White_Space} (inside classes too).
 *  \p{L}, \p{N}, \P{L}, \P{N}  with the Unicode 16.0 additions above (\P only outside classes).
 *  \w \W \b \B \h \H \v \V \R \X \K \N \G, ^ and $ (line anchors in Oniguruma), and nested
 *          classes: their meanings differ between the two engines; refused. */
static int translate(const uint8_t *pat, size_t n, char *out, size_t cap, size_t *out_n,
                     qrr_diag *d)
{
    size_t k = 0;
    bool in_class = false;
#define PUT(str)                                                                            \
    do {                                                                                    \
        size_t l_ = strlen(str);                                                            \
        if (k + l_ >= cap) return qrr_fail(d, QRR_ERR_BAD_TOKENIZER, "tokenizer blob: the " \
                                           "pre-tokenizer pattern is too long");            \
        memcpy(out + k, str, l_);                                                           \
        k += l_;                                                                            \
    } while (0)
    for (size_t i = 0; i < n; i++) {
        uint8_t c = pat[i];
        if (c == 0)
            return qrr_fail(d, QRR_ERR_BAD_TOKENIZER, "tokenizer blob: NUL in the pattern");
        if (c == '\\') {
            if (i + 1 >= n)
                return qrr_fail(d, QRR_ERR_BAD_TOKENIZER, "tokenizer blob: the pattern ends "
                                "with a backslash");
            uint8_t e = pat[++i];
            if (e == 0)
                return qrr_fail(d, QRR_ERR_BAD_TOKENIZER, "tokenizer blob: NUL in the pattern");
            if ((e == 'p' || e == 'P') && i + 3 < n && pat[i + 1] == '{' &&
                (pat[i + 2] == 'L' || pat[i + 2] == 'N') && pat[i + 3] == '}') {
                const char *extra = pat[i + 2] == 'L' ? extra_L : extra_N;
                const char *prop = pat[i + 2] == 'L' ? "\\p{L}" : "\\p{N}";
                if (in_class && e == 'P')
                    return qrr_fail(d, QRR_ERR_BAD_TOKENIZER, "tokenizer blob: the pattern "
                                    "uses \\P{%c} inside a class at byte %zu", pat[i + 2], i - 1);
                if (!in_class) PUT(e == 'P' ? "[^" : "[");
                PUT(prop);
                PUT(extra);
                if (!in_class) PUT("]");
                i += 3;
            } else if (e == 's') PUT("\\p{White_Space}");
            else if (e == 'S') PUT("\\P{White_Space}");
            else if (strchr("wWbBhHvVRXKNG", e))
                return qrr_fail(d, QRR_ERR_BAD_TOKENIZER, "tokenizer blob: the pattern uses "
                                "\\%c at byte %zu, whose meaning differs between Oniguruma "
                                "and PCRE2", e, i - 1);
            else {
                char two[3] = {'\\', (char)e, 0};
                PUT(two);
            }
            continue;
        }
        if (in_class) {
            if (c == ']') in_class = false;
            else if (c == '[' || (c == '&' && i + 1 < n && pat[i + 1] == '&'))
                return qrr_fail(d, QRR_ERR_BAD_TOKENIZER, "tokenizer blob: the pattern nests "
                                "character classes at byte %zu", i);
        } else if (c == '[') {
            in_class = true;
            char one[2] = {(char)c, 0};
            PUT(one);
            /* a ']' right after '[' or '[^' is a literal */
            if (i + 1 < n && pat[i + 1] == '^') {
                PUT("^");
                i++;
            }
            if (i + 1 < n && pat[i + 1] == ']') {
                PUT("]");
                i++;
            }
            continue;
        } else if (c == '^' || c == '$') {
            return qrr_fail(d, QRR_ERR_BAD_TOKENIZER, "tokenizer blob: the pattern uses the "
                            "anchor '%c' at byte %zu (a line anchor in Oniguruma)", c, i);
        }
        char one[2] = {(char)c, 0};
        PUT(one);
    }
#undef PUT
    out[k] = 0;
    *out_n = k;
    return QRR_OK;
}

int qrr__regex_compile(qrr_tokenizer *t, const uint8_t *pat, size_t n, qrr_diag *d)
{
    t->re = NULL;
    t->re_jit = false;
    if (n == 0) return QRR_OK;
    /* \s grows 7-fold, \p{L} by the ranges above */
    size_t cap = (16 + sizeof extra_L) * n + 16, tn = 0;
    char *tr = malloc(cap);
    if (!tr) return qrr_fail(d, QRR_ERR_NOMEM, "out of memory");
    int rc = translate(pat, n, tr, cap, &tn, d);
    if (rc) {
        free(tr);
        return rc;
    }
    pcre2_compile_context *cc = pcre2_compile_context_create(NULL);
    if (!cc) {
        free(tr);
        return qrr_fail(d, QRR_ERR_NOMEM, "out of memory");
    }
    pcre2_set_newline(cc, PCRE2_NEWLINE_LF);
    int err = 0;
    PCRE2_SIZE off = 0;
    pcre2_code *re = pcre2_compile((PCRE2_SPTR)tr, tn, PCRE2_UTF | PCRE2_UCP, &err, &off, cc);
    pcre2_compile_context_free(cc);
    free(tr);
    if (!re) {
        PCRE2_UCHAR msg[160];
        pcre2_get_error_message(err, msg, sizeof msg);
        return qrr_fail(d, QRR_ERR_BAD_TOKENIZER, "tokenizer blob: the pre-tokenizer pattern "
                        "does not compile: %s (near byte %zu of the rewritten pattern)",
                        (const char *)msg, (size_t)off);
    }
    t->re = re;
    t->re_jit = pcre2_jit_compile(re, PCRE2_JIT_COMPLETE) == 0;
    return QRR_OK;
}

void qrr__regex_free(qrr_tokenizer *t)
{
    pcre2_code_free((pcre2_code *)t->re);
    t->re = NULL;
}

/* One match at or after off: 1 and [*b, *e), 0 when none, or an error status. */
static int next_match(const qrr_tokenizer *t, const uint8_t *s, size_t n, size_t off,
                      qrr__tok_scratch *sc, size_t *b, size_t *e, qrr_diag *d)
{
    pcre2_match_data *md = sc->match_data;
    int r;
    if (t->re_jit) {
        r = pcre2_jit_match(t->re, s, n, off, 0, md, NULL);
        if (r == PCRE2_ERROR_JIT_STACKLIMIT) {
            /* a deep backtrack: retry once with a large private stack */
            if (!sc->jit_stack) sc->jit_stack = pcre2_jit_stack_create(1 << 16, 64 << 20, NULL);
            pcre2_match_context *mc = sc->jit_stack ? pcre2_match_context_create(NULL) : NULL;
            if (!mc) return qrr_fail(d, QRR_ERR_NOMEM, "out of memory for the regex stack");
            pcre2_jit_stack_assign(mc, NULL, sc->jit_stack);
            r = pcre2_jit_match(t->re, s, n, off, 0, md, mc);
            pcre2_match_context_free(mc);
        }
    } else {
        r = pcre2_match(t->re, s, n, off, PCRE2_NO_UTF_CHECK, md, NULL);
    }
    if (r == PCRE2_ERROR_NOMATCH) return 0;
    if (r < 0) {
        PCRE2_UCHAR msg[160];
        pcre2_get_error_message(r, msg, sizeof msg);
        return qrr_fail(d, r == PCRE2_ERROR_NOMEMORY ? QRR_ERR_NOMEM : QRR_ERR_UNSUPPORTED,
                        "pre-tokenizer regex failed at byte %zu: %s", off, (const char *)msg);
    }
    PCRE2_SIZE *ov = pcre2_get_ovector_pointer(md);
    *b = ov[0];
    *e = ov[1];
    return 1;
}

int qrr__regex_split_encode(const qrr_tokenizer *t, const uint8_t *s, size_t n,
                            qrr__tok_sink *out, qrr__tok_scratch *sc, qrr_diag *d)
{
    if (!t->re) return n ? qrr__bpe_piece(t, s, n, out, sc) : QRR_OK;
    if (!sc->match_data) {
        sc->match_data = pcre2_match_data_create(1, NULL);
        if (!sc->match_data) return qrr_fail(d, QRR_ERR_NOMEM, "out of memory");
    }
    size_t off = 0, gap = 0; /* search from off; text since gap not yet emitted */
    while (off < n) {
        size_t b = 0, e = 0;
        int r = next_match(t, s, n, off, sc, &b, &e, d);
        if (r < 0) return r;
        if (r == 0) break;
        if (e == b) { /* an empty match cuts nothing: step over one code point */
            if (b >= n) break;
            size_t l;
            qrr__utf8_next(s + b, &l);
            off = b + l;
            continue;
        }
        int rc = QRR_OK;
        if (b > gap) rc = qrr__bpe_piece(t, s + gap, b - gap, out, sc);
        if (rc == QRR_OK) rc = qrr__bpe_piece(t, s + b, e - b, out, sc);
        if (rc) return rc == QRR_ERR_NOMEM ? qrr_fail(d, rc, "out of memory in BPE") : rc;
        gap = off = e;
    }
    if (n > gap) {
        int rc = qrr__bpe_piece(t, s + gap, n - gap, out, sc);
        if (rc) return qrr_fail(d, rc, "out of memory in BPE");
    }
    return QRR_OK;
}

void qrr__tok_scratch_free(qrr__tok_scratch *s)
{
    free(s->norm);
    free(s->sym);
    free(s->heap);
    pcre2_match_data_free((pcre2_match_data *)s->match_data);
    pcre2_jit_stack_free((pcre2_jit_stack *)s->jit_stack);
}
