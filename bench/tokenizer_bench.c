/* tokenizer_bench.c — single-thread tokenizer throughput: imports tokenizer.json, builds a
 * few MB of mixed-script documents from the reference strings and cases, encodes each
 * document once per round and prints MB/s and tokens/s (best round), plus the load time.
 * With --corpus FILE it also writes the documents (JSON lines) for tokenizer_bench.py.
 * A benchmark program, not a test: it checks nothing against Hugging Face itself. */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "qrr.h"
#include "tokenizer.h"
#include "tokenizer_import.h"

static void die(const char *what, const qrr_diag *d)
{
    fprintf(stderr, "tokenizer_bench: %s: %s\n", what, d ? d->msg : "");
    exit(1);
}

typedef struct {
    char *p;
    size_t n;
} doc;

/* Documents of about doc_bytes each, made by joining the reference texts in a fixed
 * pseudo-random order (xorshift, seed 1) until total_bytes are reached. */
static doc *build_corpus(const char *ref, size_t total_bytes, size_t doc_bytes, size_t *n_docs)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/inputs.json", ref);
    json_error_t err;
    json_t *in = json_load_file(path, JSON_ALLOW_NUL, &err);
    if (!in) {
        fprintf(stderr, "tokenizer_bench: %s: %s\n", path, err.text);
        exit(1);
    }
    /* the pool: tokenizer strings, then each case's query and document */
    size_t n_pool = 0, cap_pool = 1024;
    const json_t **pool = malloc(cap_pool * sizeof *pool);
    json_t *strs = json_object_get(in, "tokenizer_strings"), *cases = json_object_get(in, "cases");
    for (size_t i = 0; i < json_array_size(strs); i++)
        if (json_string_length(json_array_get(strs, i))) pool[n_pool++] = json_array_get(strs, i);
    for (size_t i = 0; i < json_array_size(cases) && n_pool + 2 <= cap_pool; i++) {
        const json_t *c = json_array_get(cases, i);
        if (json_is_string(json_object_get(c, "query")))
            pool[n_pool++] = json_object_get(c, "query");
        if (json_is_string(json_object_get(c, "document")))
            pool[n_pool++] = json_object_get(c, "document");
    }
    size_t cap = total_bytes / doc_bytes + 2, nd = 0, total = 0;
    doc *docs = calloc(cap, sizeof *docs);
    uint64_t x = 1;
    while (total < total_bytes && nd < cap) {
        char *p = malloc(doc_bytes + 4096);
        size_t n = 0;
        while (n < doc_bytes) {
            x ^= x << 13, x ^= x >> 7, x ^= x << 17;
            const json_t *s = pool[x % n_pool];
            size_t l = json_string_length(s);
            if (n + l + 1 > doc_bytes + 4096) break;
            memcpy(p + n, json_string_value(s), l);
            n += l;
            p[n++] = (x >> 32) % 4 ? ' ' : '\n';
        }
        docs[nd++] = (doc){p, n};
        total += n;
    }
    free(pool);
    json_decref(in);
    *n_docs = nd;
    return docs;
}

int main(int argc, char **argv)
{
    const char *ref = getenv("QRR_REFERENCE");
    if (!ref || !*ref) ref = "../shared/reference";
    const char *corpus_out = NULL;
    size_t mb = 4, rounds = 5;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--corpus") && i + 1 < argc) corpus_out = argv[++i];
        else if (!strcmp(argv[i], "--mb") && i + 1 < argc) mb = strtoul(argv[++i], NULL, 10);
        else if (!strcmp(argv[i], "--rounds") && i + 1 < argc)
            rounds = strtoul(argv[++i], NULL, 10);
        else {
            fprintf(stderr, "usage: tokenizer_bench [--mb N] [--rounds N] [--corpus FILE]\n"
                            "  reads $QRR_REFERENCE/tokenizer/tokenizer.json and inputs.json\n");
            return 2;
        }
    }
    char tj[4096], tc[4096];
    snprintf(tj, sizeof tj, "%s/tokenizer/tokenizer.json", ref);
    snprintf(tc, sizeof tc, "%s/tokenizer/tokenizer_config.json", ref);
    qrr_diag d;
    qrr_diag_clear(&d);
    uint8_t *blob;
    size_t blob_len;
    if (qrr_tokenizer_import(tj, tc, &blob, &blob_len, &d)) die("import", &d);
    double t0 = qrr_time_seconds();
    qrr_tokenizer *tok;
    if (qrr_tokenizer_load(blob, blob_len, &tok, &d)) die("load", &d);
    double load_ms = 1e3 * (qrr_time_seconds() - t0);

    size_t n_docs;
    doc *docs = build_corpus(ref, mb << 20, 4096, &n_docs);
    size_t bytes = 0;
    for (size_t i = 0; i < n_docs; i++) bytes += docs[i].n;
    if (corpus_out) {
        FILE *f = fopen(corpus_out, "w");
        if (!f) die("cannot write the corpus file", NULL);
        for (size_t i = 0; i < n_docs; i++) {
            json_t *s = json_stringn(docs[i].p, docs[i].n);
            char *line = json_dumps(s, JSON_ENCODE_ANY | JSON_ENSURE_ASCII);
            fprintf(f, "%s\n", line);
            free(line);
            json_decref(s);
        }
        fclose(f);
    }

    size_t cap = 1 << 16, tokens = 0;
    int32_t *ids = malloc(cap * sizeof *ids);
    double best = 1e30;
    for (size_t r = 0; r < rounds; r++) {
        tokens = 0;
        t0 = qrr_time_seconds();
        for (size_t i = 0; i < n_docs; i++) {
            size_t n;
            if (qrr_tokenizer_encode(tok, docs[i].p, docs[i].n, ids, cap, &n, &d))
                die("encode", &d);
            tokens += n;
        }
        double t = qrr_time_seconds() - t0;
        if (t < best) best = t;
    }
    printf("qrr          %7.2f MB/s  %10.0f tokens/s  (%zu docs, %.2f MB, %zu tokens, best of "
           "%zu, load %.1f ms)\n",
           (double)bytes / best / 1e6, (double)tokens / best, n_docs, (double)bytes / 1e6, tokens,
           rounds, load_ms);
    for (size_t i = 0; i < n_docs; i++) free(docs[i].p);
    free(docs);
    free(ids);
    free(blob);
    qrr_tokenizer_free(tok);
    return 0;
}
