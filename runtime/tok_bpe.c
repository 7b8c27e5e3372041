/* tok_bpe.c — byte-level BPE: the vocabulary and merge hash tables built at load, and the
 * merge loop over one pre-tokenized piece (lowest rank first, leftmost among equals, as
 * Hugging Face's BPE does). Short pieces use a plain array; long ones a linked list and a
 * binary heap, so no piece costs more than O(n log n). */
#include <stdlib.h>
#include <string.h>

#include "tok_internal.h"

static inline uint64_t hash_bytes(const uint8_t *s, size_t n)
{
    uint64_t h = 0xCBF29CE484222325ull; /* FNV-1a */
    for (size_t i = 0; i < n; i++) h = (h ^ s[i]) * 0x100000001B3ull;
    return h ^ (h >> 29);
}

static inline size_t hash_pair(uint64_t key, size_t mask)
{
    return (size_t)((key * 0x9E3779B97F4A7C15ull) >> 32) & mask;
}

int32_t qrr__vocab_find(const qrr_tokenizer *t, const uint8_t *s, size_t n)
{
    if (n == 0 || n > QRR_TOK_MAX_TOKEN_BYTES) return -1;
    for (size_t i = (size_t)hash_bytes(s, n) & t->vocab_mask;; i = (i + 1) & t->vocab_mask) {
        uint32_t v = t->vocab_slot[i];
        if (!v) return -1;
        uint32_t id = v - 1;
        if (t->str_len[id] == n && !memcmp(t->text + t->str_off[id], s, n)) return (int32_t)id;
    }
}

/* Insert vocabulary id (its text already in place); QRR_ERR_BAD_TOKENIZER on a duplicate. */
static int vocab_insert(qrr_tokenizer *t, uint32_t id, qrr_diag *d)
{
    const uint8_t *s = t->text + t->str_off[id];
    size_t n = t->str_len[id];
    for (size_t i = (size_t)hash_bytes(s, n) & t->vocab_mask;; i = (i + 1) & t->vocab_mask) {
        uint32_t v = t->vocab_slot[i];
        if (!v) {
            t->vocab_slot[i] = id + 1;
            return QRR_OK;
        }
        if (t->str_len[v - 1] == n && !memcmp(t->text + t->str_off[v - 1], s, n))
            return qrr_fail(d, QRR_ERR_BAD_TOKENIZER, "tokenizer blob: vocabulary ids %u and %u "
                            "have the same bytes", v - 1, id);
    }
}

static inline uint32_t rd32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static inline const qrr__tok_merge *merge_find(const qrr_tokenizer *t, uint32_t l, uint32_t r)
{
    uint64_t key = (uint64_t)l << 32 | r;
    for (size_t i = hash_pair(key, t->merge_mask);; i = (i + 1) & t->merge_mask) {
        const qrr__tok_merge *m = &t->merge[i];
        if (m->key == key) return m;
        if (m->key == QRR__TOK_EMPTY) return NULL;
    }
}

int qrr__bpe_build(qrr_tokenizer *t, const uint8_t *pairs, qrr_diag *d)
{
    /* vocabulary table: ids with text (vocabulary entries only), at most half full */
    size_t n_vocab = 0;
    for (uint32_t id = 0; id < t->n_ids; id++) n_vocab += qrr__is_vocab(t, id);
    size_t cap = 64;
    while (cap < 2 * n_vocab) cap *= 2;
    t->vocab_slot = calloc(cap, sizeof *t->vocab_slot);
    if (!t->vocab_slot) return qrr_fail(d, QRR_ERR_NOMEM, "out of memory loading the tokenizer");
    t->vocab_mask = cap - 1;
    for (uint32_t id = 0; id < t->n_ids; id++) {
        if (!qrr__is_vocab(t, id)) continue;
        int rc = vocab_insert(t, id, d);
        if (rc) return rc;
    }
    for (int b = 0; b < 256; b++) {
        uint8_t c = (uint8_t)b;
        t->byte_id[b] = qrr__vocab_find(t, &c, 1);
        if (t->byte_id[b] < 0)
            return qrr_fail(d, QRR_ERR_BAD_TOKENIZER, "tokenizer blob: byte 0x%02X has no "
                            "vocabulary token (byte-level BPE needs all 256)", b);
    }

    /* merge table: pair -> (rank, merged id), at most ~2/3 full */
    cap = 64;
    while (cap < t->n_merges + t->n_merges / 2) cap *= 2;
    t->merge = malloc(cap * sizeof *t->merge);
    if (!t->merge) return qrr_fail(d, QRR_ERR_NOMEM, "out of memory loading the tokenizer");
    for (size_t i = 0; i < cap; i++) t->merge[i].key = QRR__TOK_EMPTY;
    t->merge_mask = cap - 1;
    uint8_t cat[2 * QRR_TOK_MAX_TOKEN_BYTES];
    for (uint32_t r = 0; r < t->n_merges; r++) {
        uint32_t a = rd32(pairs + 8 * (size_t)r), b = rd32(pairs + 8 * (size_t)r + 4);
        if (a >= t->n_ids || b >= t->n_ids || !qrr__is_vocab(t, a) || !qrr__is_vocab(t, b))
            return qrr_fail(d, QRR_ERR_BAD_TOKENIZER, "tokenizer blob: merge %u names id %u, "
                            "which is not a vocabulary token", r,
                            a >= t->n_ids || !qrr__is_vocab(t, a) ? a : b);
        size_t la = t->str_len[a], lb = t->str_len[b];
        memcpy(cat, t->text + t->str_off[a], la);
        memcpy(cat + la, t->text + t->str_off[b], lb);
        int32_t ab = qrr__vocab_find(t, cat, la + lb);
        if (ab < 0)
            return qrr_fail(d, QRR_ERR_BAD_TOKENIZER, "tokenizer blob: merge %u (%u, %u): the "
                            "merged bytes are not a vocabulary token", r, a, b);
        uint64_t key = (uint64_t)a << 32 | b;
        size_t i = hash_pair(key, t->merge_mask);
        while (t->merge[i].key != QRR__TOK_EMPTY) {
            if (t->merge[i].key == key)
                return qrr_fail(d, QRR_ERR_BAD_TOKENIZER, "tokenizer blob: merge %u repeats "
                                "merge %u (%u, %u)", r, t->merge[i].rank, a, b);
            i = (i + 1) & t->merge_mask;
        }
        t->merge[i] = (qrr__tok_merge){key, r, (uint32_t)ab};
    }
    return QRR_OK;
}

/* ---- the merge loop ---------------------------------------------------------------- */

#define SMALL_PIECE 48 /* up to this many bytes: arrays on the stack, linear scans */
#define NO_RANK UINT32_MAX

static int bpe_small(const qrr_tokenizer *t, const uint8_t *p, size_t n, qrr__tok_sink *out)
{
    uint32_t sym[SMALL_PIECE], rank[SMALL_PIECE], nid[SMALL_PIECE];
    for (size_t i = 0; i < n; i++) sym[i] = (uint32_t)t->byte_id[p[i]];
    size_t m = n;
    for (size_t i = 0; i + 1 < m; i++) {
        const qrr__tok_merge *mg = merge_find(t, sym[i], sym[i + 1]);
        rank[i] = mg ? mg->rank : NO_RANK;
        nid[i] = mg ? mg->id : 0;
    }
    while (m > 1) {
        uint32_t best = NO_RANK;
        size_t bi = 0;
        for (size_t i = 0; i + 1 < m; i++)
            if (rank[i] < best) best = rank[i], bi = i;
        if (best == NO_RANK) break;
        sym[bi] = nid[bi];
        /* drop symbol bi+1 */
        for (size_t i = bi + 1; i + 1 < m; i++) {
            sym[i] = sym[i + 1];
            rank[i] = rank[i + 1];
            nid[i] = nid[i + 1];
        }
        m--;
        if (bi > 0) {
            const qrr__tok_merge *mg = merge_find(t, sym[bi - 1], sym[bi]);
            rank[bi - 1] = mg ? mg->rank : NO_RANK;
            nid[bi - 1] = mg ? mg->id : 0;
        }
        if (bi + 1 < m) {
            const qrr__tok_merge *mg = merge_find(t, sym[bi], sym[bi + 1]);
            rank[bi] = mg ? mg->rank : NO_RANK;
            nid[bi] = mg ? mg->id : 0;
        }
    }
    for (size_t i = 0; i < m; i++) qrr__tok_push(out, (int32_t)sym[i]);
    return QRR_OK;
}

/* Min-heap of (rank << 32 | position): lowest rank first, then leftmost. */
static void heap_push(uint64_t *h, size_t *n, uint64_t v)
{
    size_t i = (*n)++;
    while (i > 0) {
        size_t parent = (i - 1) / 2;
        if (h[parent] <= v) break;
        h[i] = h[parent];
        i = parent;
    }
    h[i] = v;
}

static uint64_t heap_pop(uint64_t *h, size_t *n)
{
    uint64_t top = h[0], v = h[--*n];
    size_t i = 0, len = *n;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= len) break;
        if (c + 1 < len && h[c + 1] < h[c]) c++;
        if (h[c] >= v) break;
        h[i] = h[c];
        i = c;
    }
    if (len) h[i] = v;
    return top;
}

static int bpe_large(const qrr_tokenizer *t, const uint8_t *p, size_t n, qrr__tok_sink *out,
                     qrr__tok_scratch *sc)
{
    if (n > sc->sym_cap) {
        size_t bytes;
        if (__builtin_mul_overflow(n, 3 * sizeof(uint32_t), &bytes)) return QRR_ERR_NOMEM;
        uint32_t *s = realloc(sc->sym, bytes);
        if (!s) return QRR_ERR_NOMEM;
        sc->sym = s;
        sc->sym_cap = n;
    }
    /* Each merge pushes at most two entries and there are at most n - 1 merges. */
    size_t heap_need;
    if (__builtin_mul_overflow(n, 3, &heap_need)) return QRR_ERR_NOMEM;
    if (heap_need > sc->heap_cap) {
        uint64_t *h = realloc(sc->heap, heap_need * sizeof *h);
        if (!h) return QRR_ERR_NOMEM;
        sc->heap = h;
        sc->heap_cap = heap_need;
    }
    uint32_t *sym = sc->sym, *prev = sym + n, *next = prev + n; /* next == n: none */
    uint64_t *heap = sc->heap;
    size_t hn = 0;
    for (size_t i = 0; i < n; i++) {
        sym[i] = (uint32_t)t->byte_id[p[i]];
        prev[i] = i ? (uint32_t)(i - 1) : UINT32_MAX;
        next[i] = (uint32_t)(i + 1);
    }
    for (size_t i = 0; i + 1 < n; i++) {
        const qrr__tok_merge *mg = merge_find(t, sym[i], sym[i + 1]);
        if (mg) heap_push(heap, &hn, (uint64_t)mg->rank << 32 | i);
    }
    while (hn) {
        uint64_t top = heap_pop(heap, &hn);
        uint32_t pos = (uint32_t)top, rank = (uint32_t)(top >> 32);
        uint32_t nx = next[pos];
        if (sym[pos] == UINT32_MAX || nx >= n) continue; /* removed, or now last */
        const qrr__tok_merge *mg = merge_find(t, sym[pos], sym[nx]);
        if (!mg || mg->rank != rank) continue;            /* the pair changed since */
        sym[pos] = mg->id;
        sym[nx] = UINT32_MAX;
        next[pos] = next[nx];
        if (next[nx] < n) prev[next[nx]] = pos;
        if (prev[pos] != UINT32_MAX) {
            const qrr__tok_merge *a = merge_find(t, sym[prev[pos]], sym[pos]);
            if (a) heap_push(heap, &hn, (uint64_t)a->rank << 32 | prev[pos]);
        }
        if (next[pos] < n) {
            const qrr__tok_merge *b = merge_find(t, sym[pos], sym[next[pos]]);
            if (b) heap_push(heap, &hn, (uint64_t)b->rank << 32 | pos);
        }
    }
    for (size_t i = 0; i < n; i = next[i]) qrr__tok_push(out, (int32_t)sym[i]);
    return QRR_OK;
}

int qrr__bpe_piece(const qrr_tokenizer *t, const uint8_t *p, size_t n, qrr__tok_sink *out,
                   qrr__tok_scratch *sc)
{
    if (n == 1) {
        qrr__tok_push(out, t->byte_id[p[0]]);
        return QRR_OK;
    }
    if (t->flags & QRR_TOK_FLAG_IGNORE_MERGES) {
        int32_t id = qrr__vocab_find(t, p, n);
        if (id >= 0) {
            qrr__tok_push(out, id);
            return QRR_OK;
        }
    }
    return n <= SMALL_PIECE ? bpe_small(t, p, n, out) : bpe_large(t, p, n, out, sc);
}
