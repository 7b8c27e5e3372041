/* cmd_score.c — `qrr score`: JSON lines in, one {"score","logit"} line out per input line,
 * in order. Each line is turned into its prompt's token ids as it arrives (so a long
 * document costs at most max_length ids, never its whole text); consecutive lines with the
 * same query, instruction, max_length and truncate form one request whose shared prompt prefix is
 * computed once, and so do consecutive {"ids"} lines. A request is answered as soon as it is
 * full or no further input is waiting. A bad line gets {"error"} naming it, and the lines
 * around it are still scored. */
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "jsonl_cases.h"
#include "qrr.h"

typedef enum { ITEM_TEXT, ITEM_IDS, ITEM_ERROR } item_kind;

typedef struct item {
    item_kind kind;
    long lineno;
    int32_t *ids; /* the prompt (ITEM_TEXT) or the ids given (ITEM_IDS) */
    size_t n_ids;
    char error[600];
    float score, logit;
} item;

static void item_clear(item *it)
{
    free(it->ids);
    memset(it, 0, sizeof *it);
}

static void set_error(item *it, const char *detail)
{
    it->kind = ITEM_ERROR;
    snprintf(it->error, sizeof it->error, "line %ld: %s", it->lineno, detail);
}

static void parse_ids(item *it, json_t *o)
{
    char err[JSONL_ERR_LEN];
    if (jsonl_get_ids(o, "ids", &it->ids, &it->n_ids, err, sizeof err)) set_error(it, err);
    else it->kind = ITEM_IDS;
}

/* A buffer for one prompt's ids, grown to the longest prompt seen (at most max_length). */
typedef struct prompt_buf {
    int32_t *ids;
    size_t cap;
} prompt_buf;

/* The prompt ids of (req, document) into it. */
static void build_prompt(const qrr_model *m, prompt_buf *b, item *it, const jsonl_request *req,
                         const jsonl_text *doc)
{
    qrr_score_params p = jsonl_request_params(req);
    size_t n = 0;
    int rc = qrr_model_prompt_ids_len(m, req->query.s, req->query.len, doc->s, doc->len, p,
                                      b->ids, b->cap, &n);
    if (rc == QRR_ERR_BUFFER_TOO_SMALL) { /* n is the size needed */
        int32_t *ids = realloc(b->ids, n * sizeof *ids);
        if (ids) {
            b->ids = ids;
            b->cap = n;
        }
        rc = ids ? qrr_model_prompt_ids_len(m, req->query.s, req->query.len, doc->s, doc->len,
                                            p, b->ids, b->cap, &n)
                 : QRR_ERR_NOMEM;
    }
    if (rc == QRR_OK && !(it->ids = malloc(n * sizeof *it->ids))) rc = QRR_ERR_NOMEM;
    if (rc != QRR_OK) {
        set_error(it, rc == QRR_ERR_NOMEM ? "out of memory" : qrr_last_error());
        return;
    }
    memcpy(it->ids, b->ids, n * sizeof *it->ids);
    it->n_ids = n;
    it->kind = ITEM_TEXT;
}

/* Fill it from one input line; *req receives the line's request (to group lines by). */
static void parse_item(const qrr_model *m, prompt_buf *b, item *it, jsonl_request *req,
                       const char *line, size_t len)
{
    char err[JSONL_ERR_LEN + 64];
    json_t *o = cli_parse_object(line, len, err, sizeof err);
    if (!o) {
        set_error(it, err);
        return;
    }
    json_t *ids = json_object_get(o, "ids");
    int has_text = json_object_get(o, "query") || json_object_get(o, "document");
    jsonl_text doc = {0};
    if (ids && has_text) {
        set_error(it, "a line holds either \"ids\" or \"query\" and \"document\", not both");
    } else if (ids) {
        parse_ids(it, o);
    } else if (jsonl_get_request(o, req, err, sizeof err) ||
               jsonl_get_string(o, "document", &doc, err, sizeof err)) {
        set_error(it, err);
    } else {
        build_prompt(m, b, it, req, &doc);
    }
    free(doc.s);
    json_decref(o);
}

/* Score items[0..n) (one request); 0 on success. */
static int score_group(qrr_ctx *ctx, item *items, size_t n)
{
    float *scores = malloc(n * sizeof *scores), *logits = malloc(n * sizeof *logits);
    const int32_t **ids = calloc(n, sizeof *ids);
    size_t *lens = calloc(n, sizeof *lens);
    int rc = QRR_ERR_NOMEM;
    if (scores && logits && ids && lens) {
        for (size_t i = 0; i < n; i++) ids[i] = items[i].ids, lens[i] = items[i].n_ids;
        rc = qrr_ctx_score_ids(ctx, ids, lens, n, scores, logits);
    }
    if (rc == QRR_OK)
        for (size_t i = 0; i < n; i++) items[i].score = scores[i], items[i].logit = logits[i];
    free(scores);
    free(logits);
    free(ids);
    free(lens);
    return rc;
}

/* Score a group; if it fails, score its lines one by one so one bad line spoils none. */
static void flush(qrr_ctx *ctx, item *items, size_t n, int *failures)
{
    if (n && items[0].kind != ITEM_ERROR && score_group(ctx, items, n) != QRR_OK) {
        for (size_t i = 0; i < n; i++)
            if (n == 1 || score_group(ctx, &items[i], 1) != QRR_OK)
                set_error(&items[i], qrr_last_error());
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
    cli_flush();
}

/* Whether a line of kind k with request r joins the group whose first line had kind
 * group_kind and request group_req. */
static int same_request(item_kind group_kind, const jsonl_request *group_req, item_kind k,
                        const jsonl_request *r)
{
    if (group_kind != k || k == ITEM_ERROR) return 0;
    return k == ITEM_IDS || jsonl_same_request(group_req, r);
}

static void help(void)
{
    printf("usage: qrr score MODEL.qrr [--threads N] [--device cpu|cuda] [--batch N]\n"
           "                 [--max-batch-tokens N] [--no-verify] [--no-share-prefix]\n"
           "                 [--describe]\n\n"
           "Reads JSON lines on stdin, each {\"query\": ..., \"document\": ...,\n"
           "\"instruction\": ... (optional, null = the model's default), \"max_length\": N\n"
           "(optional, 0 or null = the model's default), \"truncate\": false (optional)} or\n"
           "{\"ids\": [...]} (a complete prompt as token ids), and writes one line per input\n"
           "line, in order: {\"score\": P(yes), \"logit\": logit_yes - logit_no} (the single\n"
           "logit for a sequence-classification model), or {\"error\": ...}. Blank lines are\n"
           "skipped. A prompt over max_length tokens is cut, as the model's recipe does: its\n"
           "body (instruction, query, document, in that order) loses its end, so the document\n"
           "goes first; with \"truncate\": false the line gets an error instead.\n"
           "Consecutive lines with the same query, instruction, max_length and truncate are\n"
           "scored as one request of up to --batch lines (default 64); their common prompt\n"
           "prefix is computed once. A request is answered as soon as it is full or no more\n"
           "input is waiting, so a program may write one line and wait for its answer.\n"
           "\n"
           "  --threads N             CPU threads (default 0: one per CPU; 0..1024)\n"
           "  --device cpu|cuda       where to compute (default cpu)\n"
           "  --batch N               lines per request at most (default 64)\n"
           "  --max-batch-tokens N    tokens per forward chunk: bounds scratch memory\n"
           "                          (default 0: %d on the CPU, %d on cuda)\n"
           "  --no-verify             skip the weights' checksums at open\n"
           "  --no-share-prefix       compute each prompt whole, the shared prefix too\n"
           "  --describe              write the context's description (device, kernels, CUDA\n"
           "                          graphs captured and replayed) to standard error once\n"
           "                          the input has ended\n\n"
           "Exit: 0 all lines scored, 1 some line failed, 2 usage.\n",
           qrr_default_max_batch_tokens(QRR_DEVICE_CPU), qrr_default_max_batch_tokens(QRR_DEVICE_CUDA));
}

int qrr_cmd_score(int argc, char **argv)
{
    const char *path = NULL;
    cli_model_opts mo = cli_model_opts_default();
    qrr_ctx_params *cp = &mo.ctx;
    long batch = 64, v;
    int describe = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        int r = cli_common_option("score", CLI_OPT_THREADS | CLI_OPT_DEVICE | CLI_OPT_VERIFY, help, argc, argv, &i, &mo);
        if (r == CLI_OPT_TAKEN) continue;
        if (r != CLI_OPT_OTHER) return r;
        if (!strcmp(a, "--batch") && i + 1 < argc) {
            if (cli_parse_int(argv[++i], 1, 100000, &batch)) return cli_usage_error("score", "--batch must be 1..100000");
        } else if (!strcmp(a, "--max-batch-tokens") && i + 1 < argc) {
            if (cli_parse_int(argv[++i], 0, 1 << 20, &v))
                return cli_usage_error("score", "--max-batch-tokens must be 0..1048576 (0 = the device's default)");
            cp->max_batch_tokens = (int)v;
        } else if (!strcmp(a, "--no-share-prefix")) {
            cp->share_prefix = 0;
        } else if (!strcmp(a, "--describe")) {
            describe = 1;
        } else if (a[0] == '-') {
            return cli_usage_error("score", "unknown or incomplete option '%s'", a);
        } else if (!path && !cli_is_split_value(a)) {
            path = a;
        } else {
            return cli_unexpected_argument("score", argv, i);
        }
    }
    if (!path) return cli_usage_error("score", "missing MODEL.qrr");
    qrr_model *m = cli_open_model("score", path, mo.verify);
    if (!m) return QRR_EXIT_FAIL;
    qrr_ctx *ctx = NULL;
    if (qrr_ctx_create(m, *cp, &ctx) != QRR_OK) {
        fprintf(stderr, "qrr score: %s\n", qrr_last_error());
        qrr_model_close(m);
        return QRR_EXIT_FAIL;
    }
    item *items = calloc((size_t)batch, sizeof *items);
    jsonl_request group_req = {0}; /* the request of items[0] */
    prompt_buf prompt = {0};
    int failures = 0;
    size_t n = 0, len;
    cli_lines in = {.fd = 0};
    const char *line;
    for (;;) {
        if (n && !cli_input_waiting(&in)) { /* answer now rather than wait for more */
            flush(ctx, items, n, &failures);
            n = 0;
        }
        if (!items || ferror(stdout) || !(line = cli_next_line(&in, &len))) break;
        if (cli_is_blank(line, len)) continue;
        item it = {.lineno = in.lineno};
        jsonl_request req = {0};
        parse_item(m, &prompt, &it, &req, line, len);
        if (n && (n == (size_t)batch || !same_request(items[0].kind, &group_req, it.kind, &req))) {
            flush(ctx, items, n, &failures);
            n = 0;
        }
        if (n == 0) {
            jsonl_request_free(&group_req);
            group_req = req;
        } else {
            jsonl_request_free(&req);
        }
        items[n++] = it;
    }
    if (items) flush(ctx, items, n, &failures);
    else fprintf(stderr, "qrr score: out of memory\n"), failures++;
    if (in.error) fprintf(stderr, "qrr score: error reading standard input: %s\n", strerror(in.error)), failures++;
    char what[512];
    if (describe && qrr_ctx_describe(ctx, what, sizeof what) != QRR_ERR_INVALID_ARG)
        fprintf(stderr, "qrr score: context: %s\n", what); /* cut short at worst */
    jsonl_request_free(&group_req);
    free(prompt.ids);
    free(items);
    cli_lines_free(&in);
    qrr_ctx_free(ctx);
    qrr_model_close(m);
    return failures ? QRR_EXIT_FAIL : QRR_EXIT_OK;
}
