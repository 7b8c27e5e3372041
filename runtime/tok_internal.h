/* tok_internal.h — the tokenizer's private structure and the helpers its files share
 * (tokenizer.c: load, added tokens, the pipeline; tok_text.c: UTF-8 and NFC; tok_bpe.c:
 * merges; tok_regex.c: the pre-tokenizer pattern). Not part of the library's interface. */
#ifndef QRR_TOK_INTERNAL_H
#define QRR_TOK_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "qrr_tok_blob.h"
#include "tokenizer.h"

/* One merge rule: the pair (left, right) becomes id, with priority rank (lower first). */
typedef struct {
    uint64_t key; /* left << 32 | right; QRR__TOK_EMPTY when the slot is free */
    uint32_t rank;
    uint32_t id;
} qrr__tok_merge;
#define QRR__TOK_EMPTY UINT64_MAX

/* One added token. Its text (for matching) is content or, when normalized, its NFC form. */
typedef struct {
    uint32_t id, flags;
    const uint8_t *text; /* what is matched */
    uint32_t len;
} qrr__tok_added;

/* Added tokens grouped by the first byte of their text, longest first within a group. */
typedef struct {
    qrr__tok_added *tok; /* sorted by (first byte, length descending) */
    uint32_t n;
    uint32_t first[257]; /* tok[first[b] .. first[b+1]) start with byte b */
    uint32_t n_first;    /* how many distinct first bytes */
    uint8_t only_first;  /* the first byte when n_first == 1 */
} qrr__tok_added_set;

struct qrr_tokenizer {
    uint32_t n_ids, n_merges, n_added, flags;

    /* Every token's text: vocabulary bytes, then added contents, then NFC'd contents. */
    uint8_t *text;
    size_t vocab_bytes; /* text[0, vocab_bytes) holds the vocabulary tokens */
    uint32_t *str_off;  /* [n_ids] offset in text */
    uint32_t *str_len;  /* [n_ids] 0 = no such id */

    uint32_t *vocab_slot; /* vocabulary hash: id + 1, 0 = empty; vocab_mask + 1 slots */
    size_t vocab_mask;
    int32_t byte_id[256]; /* the token of each single byte */

    qrr__tok_merge *merge; /* merge_mask + 1 slots */
    size_t merge_mask;

    qrr__tok_added *added;   /* [n_added], blob order */
    qrr__tok_added_set raw;  /* tokens matched in the raw text (normalized = false) */
    qrr__tok_added_set norm; /* tokens matched after NFC (normalized = true) */
    uint8_t *norm_text;      /* the NFC forms of normalized added tokens */

    void *re;        /* pcre2_code_8 *, NULL = no split */
    bool re_jit;     /* JIT compiled */
};

/* Whether id (< n_ids) is a vocabulary token (not only an added token). */
static inline bool qrr__is_vocab(const qrr_tokenizer *t, uint32_t id)
{
    return t->str_len[id] && t->str_off[id] < t->vocab_bytes;
}

/* Where encoded ids go: the caller's array while room lasts, then only counted. */
typedef struct {
    int32_t *ids;
    size_t cap, n;
} qrr__tok_sink;

static inline void qrr__tok_push(qrr__tok_sink *s, int32_t id)
{
    if (s->n < s->cap) s->ids[s->n] = id;
    s->n++;
}

/* Per-call scratch memory: grown on demand, freed at the end of one encode. */
typedef struct {
    uint8_t *norm;     /* NFC output */
    size_t norm_cap;
    uint32_t *sym;     /* BPE symbols: 4 arrays of sym_cap entries */
    size_t sym_cap;
    uint64_t *heap;    /* BPE queue for long pieces */
    size_t heap_cap;
    void *match_data;  /* pcre2_match_data_8 * */
    void *jit_stack;   /* pcre2_jit_stack_8 *, only after the default stack was too small */
} qrr__tok_scratch;

void qrr__tok_scratch_free(qrr__tok_scratch *s);

/* tok_text.c (qrr__utf8_check is declared in tokenizer.h) */
/* Decode the code point at s (valid UTF-8, at least one byte); *len receives its length. */
uint32_t qrr__utf8_next(const uint8_t *s, size_t *len);
/* Rust's char::is_whitespace (the White_Space property) and an approximation of
 * char::is_alphanumeric (letters and numbers by general category). */
bool qrr__is_white_space(uint32_t cp);
bool qrr__is_alnum(uint32_t cp);
/* NFC of s[0, n) (valid UTF-8): *out points at s itself when it is already NFC by the quick
 * check, else at scratch->norm. QRR_ERR_NOMEM on allocation failure. */
int qrr__nfc(const uint8_t *s, size_t n, qrr__tok_scratch *scratch, const uint8_t **out,
             size_t *out_n);
/* Build the process-wide NFC quick-check table (once; thread-safe). */
void qrr__nfc_init(void);
/* Code points Hugging Face's NFC (Unicode 9.0 data) treats as plain starters although
 * utf8proc gives them a combining class or a composition; NFC leaves them in place. */
bool qrr__nfc_hf_starter(uint32_t cp);
/* The NFC form of s as a fresh malloc'ed buffer (load time). */
int qrr__nfc_alloc(const uint8_t *s, size_t n, uint8_t **out, size_t *out_n);

/* tok_bpe.c */
/* Build the merge table from the blob's pairs (le32 left, right), checking each against the
 * vocabulary. */
int qrr__bpe_build(qrr_tokenizer *t, const uint8_t *pairs, qrr_diag *d);
/* The vocabulary id of bytes s[0, n), -1 if none (added tokens not included). */
int32_t qrr__vocab_find(const qrr_tokenizer *t, const uint8_t *s, size_t n);
/* Encode one pre-tokenized piece (n >= 1 bytes) by byte-level BPE. */
int qrr__bpe_piece(const qrr_tokenizer *t, const uint8_t *p, size_t n, qrr__tok_sink *out,
                   qrr__tok_scratch *scratch);

/* tok_regex.c */
/* Compile the pattern (Oniguruma syntax as tokenizers uses it) into t->re. */
int qrr__regex_compile(qrr_tokenizer *t, const uint8_t *pat, size_t n, qrr_diag *d);
void qrr__regex_free(qrr_tokenizer *t);
/* Split s[0, n) (valid UTF-8) into the matches and the gaps between them and BPE-encode each
 * piece, in order. */
int qrr__regex_split_encode(const qrr_tokenizer *t, const uint8_t *s, size_t n,
                            qrr__tok_sink *out, qrr__tok_scratch *scratch, qrr_diag *d);

#endif
