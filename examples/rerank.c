/* rerank.c — a complete use of the libqrr API: open a model, score documents against a
 * query, print them best first. Build with `make examples`; run:
 *     build/examples/rerank model.qrr "query" "document one" "document two" ...        */
#include <stdio.h>
#include <stdlib.h>

#include "qrr.h"

typedef struct ranked {
    const char *doc;
    float score;
} ranked;

static int by_score_desc(const void *a, const void *b)
{
    float x = ((const ranked *)a)->score, y = ((const ranked *)b)->score;
    return (x < y) - (x > y);
}

int main(int argc, char **argv)
{
    if (argc < 4) {
        fprintf(stderr, "usage: %s MODEL.qrr QUERY DOCUMENT [DOCUMENT ...]\n", argv[0]);
        return 2;
    }
    qrr_model *model = NULL;
    if (qrr_model_open(argv[1], qrr_model_default_params(), &model) != QRR_OK) {
        fprintf(stderr, "%s\n", qrr_last_error()); /* names the file */
        return 1;
    }
    qrr_ctx *ctx = NULL;
    if (qrr_ctx_create(model, qrr_ctx_default_params(), &ctx) != QRR_OK) {
        fprintf(stderr, "%s\n", qrr_last_error());
        qrr_model_close(model);
        return 1;
    }
    size_t n = (size_t)argc - 3;
    const char *const *docs = (const char *const *)argv + 3;
    float *scores = malloc(n * sizeof *scores);
    ranked *order = malloc(n * sizeof *order);
    int rc = scores && order ? qrr_ctx_score(ctx, argv[2], docs, n, qrr_score_default_params(),
                                             scores, NULL)
                             : QRR_ERR_NOMEM;
    if (rc == QRR_OK) {
        for (size_t i = 0; i < n; i++) order[i] = (ranked){docs[i], scores[i]};
        qsort(order, n, sizeof *order, by_score_desc);
        for (size_t i = 0; i < n; i++) printf("%.6f\t%s\n", order[i].score, order[i].doc);
    } else {
        fprintf(stderr, "scoring failed: %s (%s)\n", qrr_last_error(), qrr_status_str(rc));
    }
    free(scores);
    free(order);
    qrr_ctx_free(ctx);
    qrr_model_close(model);
    return rc == QRR_OK ? 0 : 1;
}
