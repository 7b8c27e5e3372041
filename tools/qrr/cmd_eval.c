/* cmd_eval.c — `qrr eval`: ranking quality of a model on a labelled set (NDCG@1/3/5/10,
 * MRR@10) and, with --concurrency N, throughput and per-query latency with N contexts
 * sharing one model. The metric arithmetic is in metrics.c; this file reads and schedules. */
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "jsonl_cases.h"
#include "metrics.h"
#include "qrr.h"

#define MAX_DOCS 100000  /* documents of one query */
#define MAX_CONCURRENCY 256

static const size_t ndcg_k[] = {1, 3, 5, 10};
#define N_NDCG (sizeof ndcg_k / sizeof ndcg_k[0])
#define MRR_K 10

typedef struct eval_query {
    long lineno;
    jsonl_request req;
    char **docs;     /* [n] */
    size_t *lens;    /* [n] bytes of each document (they may hold NUL) */
    int *labels;     /* [n] graded relevance */
    size_t n;
    float *scores;   /* [n] filled by scoring */
    double seconds;  /* how long its request took */
    int failed;
    char error[400];
} eval_query;

typedef struct eval_set {
    eval_query *v;
    size_t n, cap;
} eval_set;

static void query_free(eval_query *q)
{
    jsonl_request_free(&q->req);
    for (size_t i = 0; q->docs && i < q->n; i++) free(q->docs[i]);
    free(q->docs);
    free(q->lens);
    free(q->labels);
    free(q->scores);
}

static int parse_documents(json_t *o, eval_query *q, char *err, size_t errlen)
{
    json_t *docs = json_object_get(o, "documents");
    if (!json_is_array(docs)) {
        snprintf(err, errlen, "%s field \"documents\" (an array of {\"text\", \"label\"})",
                 docs ? "wrong type for" : "missing");
        return -1;
    }
    size_t n = json_array_size(docs);
    if (n == 0 || n > MAX_DOCS) {
        snprintf(err, errlen, "\"documents\" must hold 1 to %d documents, not %zu", MAX_DOCS, n);
        return -1;
    }
    q->docs = calloc(n, sizeof *q->docs);
    q->lens = calloc(n, sizeof *q->lens);
    q->labels = calloc(n, sizeof *q->labels);
    q->scores = calloc(n, sizeof *q->scores);
    if (!q->docs || !q->lens || !q->labels || !q->scores) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    q->n = n;
    for (size_t i = 0; i < n; i++) {
        json_t *d = json_array_get(docs, i), *label = json_object_get(d, "label");
        char sub[JSONL_ERR_LEN];
        if (!json_is_object(d)) {
            snprintf(err, errlen, "\"documents\"[%zu] must be an object {\"text\", \"label\"}", i);
            return -1;
        }
        jsonl_text text;
        int bad = jsonl_get_string(d, "text", &text, sub, sizeof sub);
        q->docs[i] = text.s;
        q->lens[i] = text.len;
        if (bad) {
            snprintf(err, errlen, "\"documents\"[%zu]: %s", i, sub);
            return -1;
        }
        if (!json_is_integer(label) || json_integer_value(label) < 0 ||
            json_integer_value(label) > METRIC_MAX_LABEL) {
            snprintf(err, errlen, "\"documents\"[%zu]: %s field \"label\" (an integer in [0, %d])",
                     i, label ? "wrong type or range for" : "missing", METRIC_MAX_LABEL);
            return -1;
        }
        q->labels[i] = (int)json_integer_value(label);
    }
    return 0;
}

static int parse_line(void *ctx, long lineno, json_t *o, char *err, size_t errlen)
{
    eval_set *s = ctx;
    eval_query q = {.lineno = lineno};
    if (jsonl_get_request(o, &q.req, err, errlen) || parse_documents(o, &q, err, errlen)) {
        query_free(&q);
        return -1;
    }
    if (s->n == s->cap) {
        size_t cap = s->cap ? 2 * s->cap : 64;
        eval_query *v = realloc(s->v, cap * sizeof *v);
        if (!v) {
            query_free(&q);
            snprintf(err, errlen, "out of memory");
            return -1;
        }
        s->v = v, s->cap = cap;
    }
    s->v[s->n++] = q;
    return 0;
}

/* ---- scoring: N workers, each with its own context, take queries in turn ------------ */

typedef struct worker_shared {
    eval_set *set;
    atomic_size_t next;
} worker_shared;

typedef struct worker {
    worker_shared *shared;
    qrr_ctx *ctx;
    pthread_t thread;
} worker;

static void score_query(qrr_ctx *ctx, eval_query *q)
{
    double t0 = qrr_time_seconds();
    int rc = qrr_ctx_score_len(ctx, q->req.query.s, q->req.query.len, (const char *const *)q->docs,
                               q->lens, q->n, jsonl_request_params(&q->req), q->scores, NULL);
    q->seconds = qrr_time_seconds() - t0;
    if (rc != QRR_OK) {
        q->failed = 1;
        snprintf(q->error, sizeof q->error, "%s (%s)", qrr_last_error(), qrr_status_str(rc));
    }
}

static void *worker_run(void *arg)
{
    worker *w = arg;
    eval_set *s = w->shared->set;
    for (;;) {
        size_t i = atomic_fetch_add(&w->shared->next, 1);
        if (i >= s->n) break;
        score_query(w->ctx, &s->v[i]);
    }
    return NULL;
}

/* Score every query with n_workers contexts; wall time in *wall, each context's threads in
 * *threads. 0, or -1 if a context or thread could not be made (printed). */
static int score_all(const qrr_model *m, qrr_ctx_params cp, int n_workers, eval_set *s,
                     double *wall, int *threads)
{
    worker *w = calloc((size_t)n_workers, sizeof *w);
    worker_shared shared = {.set = s};
    atomic_init(&shared.next, 0);
    int rc = w ? 0 : -1, started = 0;
    if (!w) fprintf(stderr, "qrr eval: out of memory\n");
    for (int i = 0; rc == 0 && i < n_workers; i++) {
        w[i].shared = &shared;
        if (qrr_ctx_create(m, cp, &w[i].ctx) != QRR_OK) {
            fprintf(stderr, "qrr eval: %s\n", qrr_last_error());
            rc = -1;
        }
    }
    if (rc == 0) *threads = qrr_ctx_threads(w[0].ctx);
    double t0 = qrr_time_seconds();
    if (rc == 0 && n_workers == 1) {
        worker_run(&w[0]);
    } else {
        for (; rc == 0 && started < n_workers; started++)
            if (pthread_create(&w[started].thread, NULL, worker_run, &w[started]) != 0) {
                fprintf(stderr, "qrr eval: cannot start thread %d\n", started + 1);
                rc = -1;
                break;
            }
        /* Threads already started finish the queue on their own; wait for them. */
        for (int i = 0; i < started; i++) pthread_join(w[i].thread, NULL);
    }
    *wall = qrr_time_seconds() - t0;
    for (int i = 0; w && i < n_workers; i++) qrr_ctx_free(w[i].ctx);
    free(w);
    return rc;
}

/* ---- metrics and report ------------------------------------------------------------- */

/* Every figure but the counts of queries and failures is over the queries that were scored:
 * a query that failed has no ranking, and its time is not a scoring time. */
typedef struct eval_result {
    size_t queries, documents, failed, no_relevant; /* documents: of the scored queries */
    double ndcg[N_NDCG], mrr;
    double p50, p95, p99;   /* per-query latency, seconds */
    double wall;
} eval_result;

static int compute(const eval_set *s, double wall, eval_result *r)
{
    memset(r, 0, sizeof *r);
    size_t max_n = 1;
    for (size_t i = 0; i < s->n; i++) max_n = s->v[i].n > max_n ? s->v[i].n : max_n;
    size_t *order = malloc(max_n * sizeof *order);
    int *ranked = malloc(max_n * sizeof *ranked);
    double *lat = malloc((s->n + 1) * sizeof *lat);
    if (!order || !ranked || !lat) {
        free(order);
        free(ranked);
        free(lat);
        return -1;
    }
    r->queries = s->n;
    size_t scored = 0;
    for (size_t i = 0; i < s->n; i++) {
        const eval_query *q = &s->v[i];
        if (q->failed) {
            r->failed++;
            continue;
        }
        r->documents += q->n;
        lat[scored++] = q->seconds;
        if (!metric_has_relevant(q->labels, q->n)) r->no_relevant++;
        metric_rank(q->scores, q->n, order);
        for (size_t j = 0; j < q->n; j++) ranked[j] = q->labels[order[j]];
        for (size_t k = 0; k < N_NDCG; k++) r->ndcg[k] += metric_ndcg_at_k(ranked, q->n, ndcg_k[k]);
        r->mrr += metric_mrr_at_k(ranked, q->n, MRR_K);
    }
    /* The mean runs over every scored query: one with no relevant document adds 0. None
     * scored: no figure (NaN, printed as such). */
    for (size_t k = 0; k < N_NDCG; k++) r->ndcg[k] = scored ? r->ndcg[k] / (double)scored : NAN;
    r->mrr = scored ? r->mrr / (double)scored : NAN;
    metric_sort(lat, scored);
    r->p50 = scored ? metric_percentile(lat, scored, 50) : NAN;
    r->p95 = scored ? metric_percentile(lat, scored, 95) : NAN;
    r->p99 = scored ? metric_percentile(lat, scored, 99) : NAN;
    r->wall = wall;
    free(order);
    free(ranked);
    free(lat);
    return 0;
}

static void print_text(const char *qrr_path, const char *data_path, const eval_set *s,
                       const eval_result *r, int concurrency, int threads)
{
    printf("qrr eval: %s on %s\n", qrr_path, data_path);
    printf("  queries      %zu (%zu documents scored)", r->queries, r->documents);
    if (r->no_relevant) {
        printf(", %zu with no relevant document (count as 0): line", r->no_relevant);
        for (size_t i = 0; i < s->n; i++)
            if (!s->v[i].failed && !metric_has_relevant(s->v[i].labels, s->v[i].n))
                printf(" %ld", s->v[i].lineno);
    }
    printf("\n");
    if (r->failed == r->queries) { /* nothing scored: no figure to print */
        printf("  FAILED       no query could be scored\n");
        return;
    }
    for (size_t k = 0; k < N_NDCG; k++) printf("  NDCG@%-2zu      %.4f\n", ndcg_k[k], r->ndcg[k]);
    printf("  MRR@%-2d       %.4f\n", MRR_K, r->mrr);
    printf("  latency      p50 %.2f ms, p95 %.2f ms, p99 %.2f ms per query\n", 1e3 * r->p50,
           1e3 * r->p95, 1e3 * r->p99);
    printf("  throughput   %.2f requests/s, %.1f pairs/s (concurrency %d, ",
           r->wall > 0 ? (double)(r->queries - r->failed) / r->wall : 0.0,
           r->wall > 0 ? (double)r->documents / r->wall : 0.0, concurrency);
    printf("%d thread%s each)\n", threads, threads == 1 ? "" : "s");
    if (r->failed)
        printf("  FAILED       %zu quer%s could not be scored; every figure above is over the "
               "%zu scored\n", r->failed, r->failed == 1 ? "y" : "ies", r->queries - r->failed);
}

/* A figure, or null where there is none (NaN: no query was scored). */
static json_t *real_or_null(double x)
{
    return isnan(x) ? json_null() : json_real(x);
}

static void print_json(const char *qrr_path, const char *data_path, const eval_set *s,
                       const eval_result *r, int concurrency, int threads)
{
    json_t *metrics = json_object(), *nrl = json_array(), *failed = json_array();
    char key[16];
    for (size_t k = 0; k < N_NDCG; k++) {
        snprintf(key, sizeof key, "ndcg@%zu", ndcg_k[k]);
        json_object_set_new(metrics, key, real_or_null(r->ndcg[k]));
    }
    snprintf(key, sizeof key, "mrr@%d", MRR_K);
    json_object_set_new(metrics, key, real_or_null(r->mrr));
    for (size_t i = 0; i < s->n; i++)
        if (s->v[i].failed)
            json_array_append_new(failed, json_pack("{s:I,s:s}", "line",
                                                    (json_int_t)s->v[i].lineno, "error",
                                                    s->v[i].error));
        else if (!metric_has_relevant(s->v[i].labels, s->v[i].n))
            json_array_append_new(nrl, json_integer(s->v[i].lineno));
    json_t *o = json_pack("{s:s,s:s,s:I,s:I,s:I,s:o,s:I,s:o,s:o,s:{s:o,s:o,s:o},s:f,s:f,s:f,s:i,s:i}",
                          "file", qrr_path, "data", data_path, "queries", (json_int_t)r->queries,
                          "documents", (json_int_t)r->documents, "failed", (json_int_t)r->failed,
                          "failed_lines", failed,
                          "no_relevant", (json_int_t)r->no_relevant, "no_relevant_lines", nrl,
                          "metrics", metrics, "latency_ms", "p50", real_or_null(1e3 * r->p50),
                          "p95", real_or_null(1e3 * r->p95), "p99", real_or_null(1e3 * r->p99),
                          "requests_per_s",
                          r->wall > 0 ? (double)(r->queries - r->failed) / r->wall : 0.0,
                          "pairs_per_s", r->wall > 0 ? (double)r->documents / r->wall : 0.0,
                          "wall_s", r->wall, "concurrency", concurrency, "threads", threads);
    char *text = json_dumps(o, JSON_INDENT(2) | JSON_REAL_PRECISION(10));
    if (text) puts(text);
    free(text);
    json_decref(o);
}

static void help(void)
{
    printf("usage: qrr eval MODEL.qrr DATA.jsonl [--concurrency N] [--threads N] [--json]\n"
           "                [--no-verify]\n\n"
           "Ranks the documents of every query in DATA.jsonl by score and reports NDCG@1/3/5/10\n"
           "(gain 2^label - 1, log2 discount, ideal order from the labels; a query with no\n"
           "relevant document counts as 0 and is listed), MRR@10 (first document with label > 0),\n"
           "the number of queries, per-query latency (p50/p95/p99) and requests/s. A query that\n"
           "cannot be scored is reported (FAILED, exit 1) and left out of every figure.\n\n"
           "DATA.jsonl: one line per query,\n"
           "  {\"query\": \"...\", \"instruction\": \"...\" (optional; null or absent = the model's\n"
           "   default), \"max_length\": N (optional), \"truncate\": false (optional: refuse\n"
           "   a prompt over max_length instead of cutting it),\n"
           "   \"documents\": [{\"text\": \"...\", \"label\": 0..%d (graded relevance)}, ...]}\n"
           "Equal scores keep the documents' order in the file.\n\n"
           "  --concurrency N  N threads, each with its own context on the one model, score\n"
           "                   queries in parallel (default 1; at most one per query)\n"
           "  --threads N      CPU threads per context (default: one per CPU divided by N;\n"
           "                   0 = one per CPU)\n"
           "  --json           print the results as one JSON document\n"
           "  --no-verify      skip the weights' checksums at open\n\n"
           "Exit: 0 ok, 1 the model cannot be opened or a query cannot be scored, 2 usage error or\n"
           "a missing or malformed data file (the message names the line).\n", METRIC_MAX_LABEL);
}

int qrr_cmd_eval(int argc, char **argv)
{
    const char *paths[2] = {NULL, NULL};
    size_t n_paths = 0;
    cli_model_opts mo = cli_model_opts_default();
    long concurrency = 1;
    int as_json = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        int r = cli_common_option("eval", CLI_OPT_THREADS | CLI_OPT_VERIFY, help, argc, argv, &i, &mo);
        if (r == CLI_OPT_TAKEN) continue;
        if (r != CLI_OPT_OTHER) return r;
        if (!strcmp(a, "--concurrency") && i + 1 < argc) {
            if (cli_parse_int(argv[++i], 1, MAX_CONCURRENCY, &concurrency))
                return cli_usage_error("eval", "--concurrency must be 1..%d", MAX_CONCURRENCY);
        } else if (!strcmp(a, "--json")) {
            as_json = 1;
        } else if (a[0] == '-' && a[1]) {
            return cli_usage_error("eval", "unknown or incomplete option '%s'", a);
        } else if (n_paths < 2 && !cli_is_split_value(a)) {
            paths[n_paths++] = a;
        } else {
            return cli_unexpected_argument("eval", argv, i);
        }
    }
    if (n_paths < 2) return cli_usage_error("eval", "needs MODEL.qrr and DATA.jsonl");
    eval_set set = {0};
    int exit_code = QRR_EXIT_USAGE;
    qrr_model *m = NULL;
    long bad = jsonl_read("eval", paths[1], parse_line, &set);
    if (bad != 0) {
        if (bad > 0)
            fprintf(stderr, "qrr eval: %s is not a valid data file (%ld malformed line%s)\n",
                    paths[1], bad, bad == 1 ? "" : "s");
        goto done;
    }
    if (set.n == 0) {
        fprintf(stderr, "qrr eval: %s holds no query\n", paths[1]);
        goto done;
    }
    /* more workers than queries would idle: the figures name the concurrency that ran */
    if ((size_t)concurrency > set.n) concurrency = (long)set.n;
    qrr_ctx_params cp = mo.ctx;
    if (!mo.threads_set && concurrency > 1) {
        long cpus = sysconf(_SC_NPROCESSORS_ONLN);
        cp.n_threads = cpus > concurrency ? (int)(cpus / concurrency) : 1;
    }
    exit_code = QRR_EXIT_FAIL;
    if (!(m = cli_open_model("eval", paths[0], mo.verify))) goto done;
    double wall = 0;
    int threads = 0;
    if (score_all(m, cp, (int)concurrency, &set, &wall, &threads) != 0) goto done;
    eval_result r;
    if (compute(&set, wall, &r) != 0) {
        fprintf(stderr, "qrr eval: out of memory\n");
        goto done;
    }
    for (size_t i = 0; i < set.n; i++)
        if (set.v[i].failed)
            fprintf(stderr, "qrr eval: %s:%ld: %s\n", paths[1], set.v[i].lineno, set.v[i].error);
    if (as_json) print_json(paths[0], paths[1], &set, &r, (int)concurrency, threads);
    else print_text(paths[0], paths[1], &set, &r, (int)concurrency, threads);
    exit_code = r.failed ? QRR_EXIT_FAIL : QRR_EXIT_OK;

done:
    for (size_t i = 0; i < set.n; i++) query_free(&set.v[i]);
    free(set.v);
    qrr_model_close(m);
    return exit_code;
}
