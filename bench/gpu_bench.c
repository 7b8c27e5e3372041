/* gpu_bench.c — times libqrr on the same workload file the Transformers peer reads: one
 * request of all pairs (throughput), one pair alone (latency), the context's upload time and
 * device memory. Public API only, plus cudaMemGetInfo for the memory figure. Built by
 * mk/cuda.mk in CUDA builds; bench/gpu_check.sh runs it. */
#include <cuda_runtime_api.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "qrr.h"

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static int die(const char *what)
{
    fprintf(stderr, "gpu_bench: %s: %s\n", what, qrr_last_error());
    return 1;
}

/* Median seconds of repeat runs of one request of n docs; tokens of the last run. */
static int timed(qrr_ctx *ctx, const char *query, const char **docs, int n, int repeat,
                 qrr_score_params sp, float *scores, double *med, size_t *tokens,
                 size_t *computed)
{
    double t[1000];
    for (int r = 0; r < repeat + 2; r++) { /* two warm-ups */
        double a = qrr_time_seconds();
        int rc = qrr_ctx_score(ctx, query, docs, (size_t)n, sp, scores, NULL);
        if (rc != QRR_OK) return rc;
        if (r >= 2) t[r - 2] = qrr_time_seconds() - a;
    }
    qsort(t, (size_t)repeat, sizeof t[0], cmp_double);
    *med = t[repeat / 2];
    *tokens = qrr_ctx_last_stats(ctx).tokens;
    *computed = qrr_ctx_last_stats(ctx).tokens_computed;
    return QRR_OK;
}

int main(int argc, char **argv)
{
    if (argc < 3 || !strcmp(argv[1], "--help")) {
        fprintf(stderr, "usage: gpu_bench MODEL.qrr WORKLOAD.jsonl [--pairs N] [--repeat N] "
                        "[--max-length N] [--device cpu|cuda] [--no-share-prefix] "
                        "[--max-batch-tokens N]\n"
                        "Prints one JSON line: tokens/s, pairs/s, one-pair latency, upload "
                        "time, device memory of the context.\n");
        return argc > 1 && !strcmp(argv[1], "--help") ? 0 : 2;
    }
    int pairs = 0, repeat = 5, max_length = 0, share = 1, batch_tokens = 0;
    qrr_device dev = QRR_DEVICE_CUDA;
    for (int i = 3; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--pairs") && v) pairs = atoi(argv[++i]);
        else if (!strcmp(a, "--repeat") && v) repeat = atoi(argv[++i]);
        else if (!strcmp(a, "--max-length") && v) max_length = atoi(argv[++i]);
        else if (!strcmp(a, "--device") && v) dev = !strcmp(argv[++i], "cpu") ? QRR_DEVICE_CPU : QRR_DEVICE_CUDA;
        else if (!strcmp(a, "--no-share-prefix")) share = 0;
        else if (!strcmp(a, "--max-batch-tokens") && v) batch_tokens = atoi(argv[++i]);
        else { fprintf(stderr, "gpu_bench: unknown option %s\n", a); return 2; }
    }
    if (repeat < 1 || repeat > 1000) repeat = 5;

    FILE *f = fopen(argv[2], "r");
    if (!f) { perror(argv[2]); return 1; }
    const char **docs = NULL;
    char *query = NULL, *line = NULL;
    size_t cap = 0;
    int n = 0;
    while (getline(&line, &cap, f) > 0 && (!pairs || n < pairs)) {
        json_t *o = json_loads(line, 0, NULL);
        const char *q = json_string_value(json_object_get(o, "query"));
        const char *doc = json_string_value(json_object_get(o, "document"));
        if (!q || !doc) { fprintf(stderr, "gpu_bench: bad workload line %d\n", n + 1); return 1; }
        if (!query) query = strdup(q);
        const char **nd = realloc(docs, (size_t)(n + 1) * sizeof *nd);
        if (!nd) return 1;
        docs = nd;
        docs[n++] = strdup(doc);
        json_decref(o);
    }
    free(line);
    fclose(f);
    if (!n) { fprintf(stderr, "gpu_bench: no pairs in %s\n", argv[2]); return 1; }

    qrr_model_params mp = qrr_model_default_params();
    mp.verify_weights = 0; /* timing the upload, not the checksums (qrr_model_open checks the rest) */
    qrr_model *m;
    if (qrr_model_open(argv[1], mp, &m) != QRR_OK) return die("open");
    size_t free0 = 0, free1 = 0, total = 0;
    if (dev == QRR_DEVICE_CUDA) cudaMemGetInfo(&free0, &total);
    qrr_ctx_params cp = qrr_ctx_default_params();
    cp.device = dev;
    cp.share_prefix = share;
    cp.max_batch_tokens = batch_tokens; /* 0: the library's default */
    qrr_ctx *ctx;
    double t0 = qrr_time_seconds();
    if (qrr_ctx_create(m, cp, &ctx) != QRR_OK) return die("context");
    double create_s = qrr_time_seconds() - t0;
    qrr_score_params sp = qrr_score_default_params();
    sp.max_length = max_length;
    float *scores = malloc((size_t)n * sizeof *scores);
    double t_all, t_one;
    size_t tok_all, tok_one, comp_all, comp_one;
    if (timed(ctx, query, docs, n, repeat, sp, scores, &t_all, &tok_all, &comp_all) != QRR_OK)
        return die("score");
    float first = scores[0];
    if (timed(ctx, query, docs, 1, repeat, sp, scores, &t_one, &tok_one, &comp_one) != QRR_OK)
        return die("score one");
    if (dev == QRR_DEVICE_CUDA) cudaMemGetInfo(&free1, &total);
    char desc[1024];
    qrr_ctx_describe(ctx, desc, sizeof desc); /* cut short at worst; no quotes in it */
    printf("{\"model\":\"%s\",\"device\":\"%s\",\"context\":\"%s\",\"pairs\":%d,\"tokens\":%zu,\"tokens_computed\":%zu,\"seconds\":%.6f,"
           "\"tokens_per_s\":%.1f,\"pairs_per_s\":%.2f,\"latency_one_pair_s\":%.6f,"
           "\"latency_pair_tokens\":%zu,\"ctx_create_s\":%.3f,\"ctx_device_mib\":%.1f,"
           "\"first_score\":%.6f,\"max_batch_tokens\":%d}\n",
           argv[1], dev == QRR_DEVICE_CUDA ? "cuda" : "cpu", desc, n, tok_all, comp_all, t_all,
           (double)tok_all / t_all, n / t_all, t_one, tok_one, create_s,
           (double)(free0 > free1 ? free0 - free1 : 0) / 1048576.0, first,
           batch_tokens ? batch_tokens : qrr_default_max_batch_tokens(dev));
    qrr_ctx_free(ctx);
    qrr_model_close(m);
    for (int i = 0; i < n; i++) free((void *)docs[i]);
    free(docs);
    free(query);
    free(scores);
    return 0;
}
