/* cmd_score.c — `qrr score`: JSON lines in, one {"score","logit"} line out per input line,
 * in order. Consecutive lines with the same query, instruction and max_length form one
 * request (their shared prompt prefix is computed once); so do consecutive {"ids"} lines.
 * A bad line gets {"error"} naming it, and the lines around it are still scored. */
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "qrr.h"

typedef enum { ITEM_TEXT, ITEM_IDS, ITEM_ERROR } item_kind;

typedef struct item {
    item_kind kind;
    long lineno;
    char *query, *document, *instruction; /* instruction NULL = the model's default */
    int max_length;                       /* 0 = the model's default */
    int32_t *ids;
    size_t n_ids;
    char error[600];
    float score, logit;
} item;

static void item_clear(item *it)
{
    free(it->query);
    free(it->document);
    free(it->instruction);
    free(it->ids);
    memset(it, 0, sizeof *it);
}

static int set_error(item *it, const char *fmt, const char *detail)
{
    it->kind = ITEM_ERROR;
    snprintf(it->error, sizeof it->error, fmt, it->lineno, detail);
    return -1;
}

static int parse_ids(item *it, json_t *ids)
{
    if (!json_is_array(ids)) return set_error(it, "line %ld: %s", "\"ids\" must be an array");
    size_t n = json_array_size(ids);
    if (n == 0) return set_error(it, "line %ld: %s", "\"ids\" is empty");
    it->ids = malloc(n * sizeof *it->ids);
    if (!it->ids) return set_error(it, "line %ld: %s", "out of memory");
    for (size_t i = 0; i < n; i++) {
        json_t *v = json_array_get(ids, i);
        if (!json_is_integer(v) || json_integer_value(v) < 0 || json_integer_value(v) > INT32_MAX)
            return set_error(it, "line %ld: %s", "\"ids\" must hold non-negative integers");
        it->ids[i] = (int32_t)json_integer_value(v);
    }
    it->n_ids = n;
    it->kind = ITEM_IDS;
    return 0;
}

static char *dup_string(json_t *v) { return strdup(json_string_value(v)); }

/* Fill it from one input line. */
static void parse_item(item *it, const char *line, size_t len)
{
    char err[300];
    json_t *o = cli_parse_object(line, len, err, sizeof err);
    if (!o) {
        set_error(it, "line %ld: %s", err);
        return;
    }
    json_t *q = json_object_get(o, "query"), *doc = json_object_get(o, "document");
    json_t *ins = json_object_get(o, "instruction"), *ml = json_object_get(o, "max_length");
    json_t *ids = json_object_get(o, "ids");
    if (!q && !doc && ids) {
        parse_ids(it, ids);
    } else if (!json_is_string(q) || !json_is_string(doc)) {
        set_error(it, "line %ld: %s", "needs string fields \"query\" and \"document\" (or \"ids\")");
    } else if (ins && !json_is_null(ins) && !json_is_string(ins)) {
        set_error(it, "line %ld: %s", "\"instruction\" must be a string or null");
    } else if (ml && !json_is_null(ml) &&
               (!json_is_integer(ml) || json_integer_value(ml) < 1 ||
                json_integer_value(ml) > 1000000)) {
        set_error(it, "line %ld: %s", "\"max_length\" must be an integer in [1, 1000000]");
    } else {
        it->kind = ITEM_TEXT;
        it->query = dup_string(q);
        it->document = dup_string(doc);
        it->instruction = json_is_string(ins) ? dup_string(ins) : NULL;
        it->max_length = json_is_integer(ml) ? (int)json_integer_value(ml) : 0;
        if (!it->query || !it->document || (json_is_string(ins) && !it->instruction))
            set_error(it, "line %ld: %s", "out of memory");
    }
    json_decref(o);
}

static int same_request(const item *a, const item *b)
{
    if (a->kind != b->kind) return 0;
    if (a->kind == ITEM_IDS) return 1;
    if (a->kind != ITEM_TEXT) return 0;
    if (strcmp(a->query, b->query) || a->max_length != b->max_length) return 0;
    if (!a->instruction || !b->instruction) return a->instruction == b->instruction;
    return !strcmp(a->instruction, b->instruction);
}

/* Score items[0..n) (one request); 0 on success. */
static int score_group(qrr_ctx *ctx, item *items, size_t n)
{
    float *scores = malloc(n * sizeof *scores), *logits = malloc(n * sizeof *logits);
    int rc = QRR_ERR_NOMEM;
    if (scores && logits) {
        if (items[0].kind == ITEM_IDS) {
            const int32_t **ids = malloc(n * sizeof *ids);
            size_t *lens = malloc(n * sizeof *lens);
            if (ids && lens) {
                for (size_t i = 0; i < n; i++) ids[i] = items[i].ids, lens[i] = items[i].n_ids;
                rc = qrr_ctx_score_ids(ctx, ids, lens, n, scores, logits);
            }
            free(ids);
            free(lens);
        } else {
            const char **docs = malloc(n * sizeof *docs);
            if (docs) {
                for (size_t i = 0; i < n; i++) docs[i] = items[i].document;
                qrr_score_params p = qrr_score_default_params();
                p.instruction = items[0].instruction;
                p.max_length = items[0].max_length;
                rc = qrr_ctx_score(ctx, items[0].query, docs, n, p, scores, logits);
            }
            free(docs);
        }
    }
    if (rc == QRR_OK)
        for (size_t i = 0; i < n; i++) items[i].score = scores[i], items[i].logit = logits[i];
    free(scores);
    free(logits);
    return rc;
}

/* Score a group; if it fails, score its lines one by one so one bad line spoils none. */
static void flush(qrr_ctx *ctx, item *items, size_t n, int *failures)
{
    if (n && items[0].kind != ITEM_ERROR && score_group(ctx, items, n) != QRR_OK) {
        for (size_t i = 0; i < n; i++)
            if (n == 1 || score_group(ctx, &items[i], 1) != QRR_OK)
                set_error(&items[i], "line %ld: %s", qrr_last_error());
    }
    for (size_t i = 0; i < n; i++) {
        json_t *o;
        if (items[i].kind == ITEM_ERROR) {
            fprintf(stderr, "qrr score: %s\n", items[i].error);
            o = json_pack("{s:s}", "error", items[i].error);
            (*failures)++;
        } else {
            o = json_pack("{s:f,s:f}", "score", (double)items[i].score, "logit",
                          (double)items[i].logit);
        }
        cli_print_json(o);
        json_decref(o);
        item_clear(&items[i]);
    }
    fflush(stdout);
}

static void help(void)
{
    printf("usage: qrr score MODEL.qrr [--threads N] [--device cpu|cuda] [--batch N]\n"
           "                 [--max-batch-tokens N] [--no-verify] [--no-share-prefix]\n\n"
           "Reads JSON lines on stdin, each {\"query\": ..., \"document\": ...,\n"
           "\"instruction\": ... (optional, null = the model's default), \"max_length\": N\n"
           "(optional)} or {\"ids\": [...]} (a complete prompt as token ids), and writes one\n"
           "line per input line, in order: {\"score\": P(yes), \"logit\": logit_yes - logit_no}\n"
           "(the single logit for a sequence-classification model), or {\"error\": ...}.\n"
           "Consecutive lines with the same query, instruction and max_length are scored as\n"
           "one request of up to --batch lines (default 64); their common prompt prefix is\n"
           "computed once. Exit: 0 all lines scored, 1 some line failed, 2 usage.\n");
}

int qrr_cmd_score(int argc, char **argv)
{
    const char *path = NULL;
    qrr_ctx_params cp = qrr_ctx_default_params();
    long batch = 64, v;
    int verify = 1;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            help();
            return QRR_EXIT_OK;
        } else if (!strcmp(a, "--threads") && i + 1 < argc) {
            if (cli_parse_int(argv[++i], 0, 1024, &v)) return cli_usage_error("score", "--threads must be 0..1024");
            cp.n_threads = (int)v;
        } else if (!strcmp(a, "--batch") && i + 1 < argc) {
            if (cli_parse_int(argv[++i], 1, 100000, &batch)) return cli_usage_error("score", "--batch must be 1..100000");
        } else if (!strcmp(a, "--max-batch-tokens") && i + 1 < argc) {
            if (cli_parse_int(argv[++i], 1, 1 << 20, &v)) return cli_usage_error("score", "--max-batch-tokens must be 1..1048576");
            cp.max_batch_tokens = (int)v;
        } else if (!strcmp(a, "--device") && i + 1 < argc) {
            const char *dev = argv[++i];
            if (!strcmp(dev, "cpu")) cp.device = QRR_DEVICE_CPU;
            else if (!strcmp(dev, "cuda")) cp.device = QRR_DEVICE_CUDA;
            else return cli_usage_error("score", "--device must be cpu or cuda, not '%s'", dev);
        } else if (!strcmp(a, "--no-verify")) {
            verify = 0;
        } else if (!strcmp(a, "--no-share-prefix")) {
            cp.share_prefix = 0;
        } else if (a[0] == '-') {
            return cli_usage_error("score", "unknown or incomplete option '%s'", a);
        } else if (!path) {
            path = a;
        } else {
            return cli_usage_error("score", "unexpected argument '%s'", a);
        }
    }
    if (!path) return cli_usage_error("score", "missing MODEL.qrr");
    qrr_model *m = cli_open_model("score", path, verify);
    if (!m) return QRR_EXIT_FAIL;
    qrr_ctx *ctx = NULL;
    if (qrr_ctx_create(m, cp, &ctx) != QRR_OK) {
        fprintf(stderr, "qrr score: %s\n", qrr_last_error());
        qrr_model_close(m);
        return QRR_EXIT_FAIL;
    }
    item *items = calloc((size_t)batch, sizeof *items);
    int failures = 0;
    size_t n = 0, len;
    cli_lines in = {.in = stdin};
    const char *line;
    while (items && (line = cli_next_line(&in, &len)) != NULL) {
        item it = {.lineno = in.lineno};
        parse_item(&it, line, len);
        if (n && (n == (size_t)batch || !same_request(&items[0], &it))) {
            flush(ctx, items, n, &failures);
            n = 0;
        }
        items[n++] = it;
    }
    if (items) flush(ctx, items, n, &failures);
    else fprintf(stderr, "qrr score: out of memory\n"), failures++;
    free(items);
    free(in.buf);
    qrr_ctx_free(ctx);
    qrr_model_close(m);
    return failures ? QRR_EXIT_FAIL : QRR_EXIT_OK;
}
