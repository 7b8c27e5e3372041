/* test_eval.c — `qrr eval`: the ranking metrics against a case worked by hand, then the
 * command end to end on tests/data/eval_small.jsonl with a converted tiny reference model
 * (metrics in range, the query count, the same metrics at any concurrency and as the
 * library's own scores give, malformed data refused with the line named). */
#include <jansson.h>
#include <math.h>

#include "qrr.h"
#include "qrr_test_util.h"
/* The metric functions are pure and live in the qrr tool; compile them in here. */
#include "../tools/qrr/metrics.c"

#define EVAL_DATA "tests/data/eval_small.jsonl"

/* Labels in ranked order: 0, 2, 1, 0, 3 (gain 2^l - 1: 0, 3, 1, 0, 7).
 *   DCG@1 = 0
 *   DCG@3 = 0/log2(2) + 3/log2(3) + 1/log2(4) = 0 + 3/1.5849625 + 0.5 = 2.3927893
 *   DCG@5 = DCG@3 + 0/log2(5) + 7/log2(6) = 2.3927893 + 7/2.5849625 = 5.1007589
 * Ideal order 3, 2, 1, 0, 0:
 *   IDCG@1 = 7
 *   IDCG@3 = 7/1 + 3/log2(3) + 1/log2(4) = 7 + 1.8927893 + 0.5 = 9.3927893
 *   IDCG@5 = IDCG@3 (the last two gains are 0)
 * NDCG@1 = 0, NDCG@3 = 2.3927893 / 9.3927893 = 0.2547475,
 * NDCG@5 = NDCG@10 = 5.1007589 / 9.3927893 = 0.5430505.
 * MRR@10 = 1/2 (first relevant at rank 2); MRR@1 = 0. */
static const int hand_labels[] = {0, 2, 1, 0, 3};

Test(metrics, dcg_by_hand)
{
    cr_assert_float_eq(metric_dcg_at_k(hand_labels, 5, 1), 0.0, 1e-12);
    cr_assert_float_eq(metric_dcg_at_k(hand_labels, 5, 3), 3.0 / log2(3.0) + 0.5, 1e-12);
    cr_assert_float_eq(metric_dcg_at_k(hand_labels, 5, 3), 2.3927893, 1e-7);
    cr_assert_float_eq(metric_dcg_at_k(hand_labels, 5, 5), 5.1007589, 1e-7);
    cr_assert_float_eq(metric_ideal_dcg_at_k(hand_labels, 5, 1), 7.0, 1e-12);
    cr_assert_float_eq(metric_ideal_dcg_at_k(hand_labels, 5, 3), 9.3927893, 1e-7);
    cr_assert_float_eq(metric_ideal_dcg_at_k(hand_labels, 5, 10), 9.3927893, 1e-7);
}

Test(metrics, ndcg_and_mrr_by_hand)
{
    cr_assert_float_eq(metric_ndcg_at_k(hand_labels, 5, 1), 0.0, 1e-12);
    cr_assert_float_eq(metric_ndcg_at_k(hand_labels, 5, 3), 0.2547475, 1e-7);
    cr_assert_float_eq(metric_ndcg_at_k(hand_labels, 5, 5), 0.5430505, 1e-7);
    cr_assert_float_eq(metric_ndcg_at_k(hand_labels, 5, 10), 0.5430505, 1e-7);
    cr_assert_float_eq(metric_mrr_at_k(hand_labels, 5, 10), 0.5, 1e-12);
    cr_assert_float_eq(metric_mrr_at_k(hand_labels, 5, 1), 0.0, 1e-12);
}

Test(metrics, perfect_and_empty_rankings)
{
    const int ideal[] = {3, 2, 1, 0, 0}, none[] = {0, 0, 0};
    for (size_t k = 1; k <= 10; k++) cr_assert_float_eq(metric_ndcg_at_k(ideal, 5, k), 1.0, 1e-12);
    cr_assert_float_eq(metric_mrr_at_k(ideal, 5, 10), 1.0, 1e-12);
    cr_assert_eq(metric_has_relevant(none, 3), 0);
    cr_assert_eq(metric_has_relevant(hand_labels, 5), 1);
    cr_assert_float_eq(metric_ndcg_at_k(none, 3, 10), 0.0, 1e-12, "no relevant document counts as 0");
    cr_assert_float_eq(metric_mrr_at_k(none, 3, 10), 0.0, 1e-12);
}

Test(metrics, rank_by_score)
{
    /* Highest first; equal scores keep input order; NaN last. */
    const float scores[] = {0.2f, 0.9f, NAN, 0.5f, 0.9f, -1.0f};
    const size_t want[] = {1, 4, 3, 0, 5, 2};
    size_t order[6];
    metric_rank(scores, 6, order);
    for (size_t i = 0; i < 6; i++) cr_assert_eq(order[i], want[i], "rank %zu: %zu, expected %zu", i, order[i], want[i]);
    /* A longer list: every rank holds a score no lower than the next. */
    float many[257];
    size_t ord[257];
    for (size_t i = 0; i < 257; i++) many[i] = (float)((i * 7919) % 101);
    metric_rank(many, 257, ord);
    for (size_t i = 0; i + 1 < 257; i++) {
        cr_assert_geq(many[ord[i]], many[ord[i + 1]]);
        if (many[ord[i]] == many[ord[i + 1]]) cr_assert_lt(ord[i], ord[i + 1]);
    }
}

Test(metrics, percentiles)
{
    double v[] = {4, 1, 3, 2};
    metric_sort(v, 4);
    cr_assert_float_eq(v[0], 1.0, 0);
    cr_assert_float_eq(v[3], 4.0, 0);
    cr_assert_float_eq(metric_percentile(v, 4, 50), 2.5, 1e-12); /* median of an even count */
    cr_assert_float_eq(metric_percentile(v, 4, 0), 1.0, 1e-12);
    cr_assert_float_eq(metric_percentile(v, 4, 100), 4.0, 1e-12);
    /* position 0.95 * 3 = 2.85: 3 + 0.85 * (4 - 3) */
    cr_assert_float_eq(metric_percentile(v, 4, 95), 3.85, 1e-12);
    double one = 7;
    cr_assert_float_eq(metric_percentile(&one, 1, 99), 7.0, 1e-12);
}

/* ---- end to end ----------------------------------------------------------------------- */

/* Run `qrr eval MODEL DATA ARGS --json`; returns the parsed output (asserting exit 0). */
static json_t *run_eval(const char *tmp, const char *model, const char *args)
{
    char out[1200];
    snprintf(out, sizeof out, "%s/eval.json", tmp);
    int rc = tu_system("'%s/qrr' eval '%s' '%s' %s --json > '%s'", tu_build(), model, EVAL_DATA,
                       args, out);
    cr_assert_eq(rc, 0, "qrr eval %s exited %d", args, rc);
    json_error_t je;
    json_t *o = json_load_file(out, 0, &je);
    cr_assert_not_null(o, "qrr eval --json printed no JSON: %s", je.text);
    return o;
}

static double metric_of(json_t *o, const char *name)
{
    json_t *v = json_object_get(json_object_get(o, "metrics"), name);
    cr_assert(json_is_number(v), "metric %s missing", name);
    return json_number_value(v);
}

static const char *metric_names[] = {"ndcg@1", "ndcg@3", "ndcg@5", "ndcg@10", "mrr@10"};

/* The data file read independently: queries, documents, labels, and the queries with no
 * relevant document. */
typedef struct data_file {
    json_t *lines[64];
    size_t n, no_relevant;
} data_file;

static void load_data(data_file *d)
{
    memset(d, 0, sizeof *d);
    FILE *f = fopen(EVAL_DATA, "r");
    cr_assert_not_null(f, "cannot open %s (run the tests from the repository root)", EVAL_DATA);
    char line[16384];
    while (fgets(line, sizeof line, f)) {
        if (line[0] == '\n') continue;
        cr_assert_lt(d->n, 64);
        json_t *o = json_loads(line, 0, NULL);
        cr_assert_not_null(o);
        json_t *docs = json_object_get(o, "documents");
        int relevant = 0;
        for (size_t i = 0; i < json_array_size(docs); i++)
            relevant |= json_integer_value(json_object_get(json_array_get(docs, i), "label")) > 0;
        d->no_relevant += !relevant;
        d->lines[d->n++] = o;
    }
    fclose(f);
}

static void free_data(data_file *d)
{
    for (size_t i = 0; i < d->n; i++) json_decref(d->lines[i]);
}

Test(eval, end_to_end_on_small_set, .timeout = 120)
{
    char tmp[256], model[1024];
    tu_tmpdir(tmp, sizeof tmp);
    tu_convert("tiny-tied", "f32", tmp, model, sizeof model);
    data_file d;
    load_data(&d);
    cr_assert_gt(d.no_relevant, 0, "the small set should hold a query with no relevant document");

    json_t *one = run_eval(tmp, model, "--threads 1");
    cr_assert_eq(json_integer_value(json_object_get(one, "queries")), (json_int_t)d.n);
    cr_assert_eq(json_integer_value(json_object_get(one, "failed")), 0);
    cr_assert_eq(json_integer_value(json_object_get(one, "no_relevant")), (json_int_t)d.no_relevant);
    for (size_t i = 0; i < sizeof metric_names / sizeof *metric_names; i++) {
        double v = metric_of(one, metric_names[i]);
        cr_assert(v >= 0.0 && v <= 1.0, "%s = %g is outside [0, 1]", metric_names[i], v);
    }
    json_t *lat = json_object_get(one, "latency_ms");
    double p50 = json_number_value(json_object_get(lat, "p50"));
    double p99 = json_number_value(json_object_get(lat, "p99"));
    cr_assert(p50 > 0 && p99 >= p50, "latency p50 %g, p99 %g", p50, p99);
    cr_assert_gt(json_number_value(json_object_get(one, "requests_per_s")), 0);

    cr_assert_eq(json_integer_value(json_object_get(one, "threads")), 1);
    /* threads not given: the count in use, one per CPU, not the 0 that asks for it */
    json_t *any = run_eval(tmp, model, "");
    cr_expect_eq(json_integer_value(json_object_get(any, "threads")),
                 (json_int_t)sysconf(_SC_NPROCESSORS_ONLN));
    json_decref(any);

    /* Two contexts on one model, each single-threaded: the same scores, the same metrics. */
    json_t *two = run_eval(tmp, model, "--threads 1 --concurrency 2");
    cr_assert_eq(json_integer_value(json_object_get(two, "concurrency")), 2);
    cr_assert_eq(json_integer_value(json_object_get(two, "queries")), (json_int_t)d.n);
    for (size_t i = 0; i < sizeof metric_names / sizeof *metric_names; i++)
        cr_assert_eq(metric_of(one, metric_names[i]), metric_of(two, metric_names[i]),
                     "%s differs between concurrency 1 and 2", metric_names[i]);
    /* more workers than queries: the figures name the concurrency that ran */
    char many[64];
    snprintf(many, sizeof many, "--threads 1 --concurrency %zu", d.n + 5);
    json_t *capped = run_eval(tmp, model, many);
    cr_expect_eq(json_integer_value(json_object_get(capped, "concurrency")), (json_int_t)d.n);
    json_decref(capped);

    /* The same metrics from the library's scores, ranked here: the command pairs each
     * score with its label, passes instruction and max_length, and averages over all. */
    qrr_model *m;
    cr_assert_eq(qrr_model_open(model, qrr_model_default_params(), &m), QRR_OK, "%s", qrr_last_error());
    qrr_ctx_params cp = qrr_ctx_default_params();
    cp.n_threads = 1;
    qrr_ctx *ctx;
    cr_assert_eq(qrr_ctx_create(m, cp, &ctx), QRR_OK);
    double ndcg3 = 0, mrr = 0;
    for (size_t q = 0; q < d.n; q++) {
        json_t *docs = json_object_get(d.lines[q], "documents");
        json_t *ins = json_object_get(d.lines[q], "instruction");
        json_t *ml = json_object_get(d.lines[q], "max_length");
        size_t n = json_array_size(docs);
        const char *texts[32];
        int labels[32], ranked[32];
        float scores[32];
        size_t order[32];
        cr_assert_leq(n, 32);
        for (size_t i = 0; i < n; i++) {
            texts[i] = json_string_value(json_object_get(json_array_get(docs, i), "text"));
            labels[i] = (int)json_integer_value(json_object_get(json_array_get(docs, i), "label"));
        }
        qrr_score_params sp = qrr_score_default_params();
        sp.instruction = json_is_string(ins) ? json_string_value(ins) : NULL;
        sp.max_length = json_is_integer(ml) ? (int)json_integer_value(ml) : 0;
        cr_assert_eq(qrr_ctx_score(ctx, json_string_value(json_object_get(d.lines[q], "query")),
                                   texts, n, sp, scores, NULL), QRR_OK, "%s", qrr_last_error());
        metric_rank(scores, n, order);
        for (size_t i = 0; i < n; i++) ranked[i] = labels[order[i]];
        ndcg3 += metric_ndcg_at_k(ranked, n, 3);
        mrr += metric_mrr_at_k(ranked, n, 10);
    }
    qrr_ctx_free(ctx);
    qrr_model_close(m);
    /* (--json prints 10 significant digits) */
    cr_assert_float_eq(metric_of(one, "ndcg@3"), ndcg3 / (double)d.n, 1e-9, "ndcg@3 %.12g, here %.12g",
                       metric_of(one, "ndcg@3"), ndcg3 / (double)d.n);
    cr_assert_float_eq(metric_of(one, "mrr@10"), mrr / (double)d.n, 1e-9, "mrr@10 %.12g, here %.12g",
                       metric_of(one, "mrr@10"), mrr / (double)d.n);

    /* The text report names the same count and the lines with no relevant document. */
    char out[1200];
    snprintf(out, sizeof out, "%s/eval.txt", tmp);
    cr_assert_eq(tu_system("'%s/qrr' eval '%s' '%s' --threads 1 > '%s'", tu_build(), model,
                           EVAL_DATA, out), 0);
    char *text = tu_slurp(out, NULL), want[64];
    snprintf(want, sizeof want, "queries      %zu ", d.n);
    cr_assert_not_null(strstr(text, want), "text report lacks '%s':\n%s", want, text);
    cr_assert_not_null(strstr(text, "NDCG@10"), "%s", text);
    cr_assert_not_null(strstr(text, "no relevant document"), "%s", text);
    free(text);
    json_decref(one);
    json_decref(two);
    free_data(&d);
    tu_system("rm -rf '%s'", tmp);
}

/* Run eval on a data file whose line `bad` is replaced by `text`; returns the exit code
 * and leaves stderr in tmp/err.txt. */
static int eval_with_bad_line(const char *tmp, const char *model, int bad, const char *text)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/bad.jsonl", tmp);
    FILE *out = fopen(path, "w"), *in = fopen(EVAL_DATA, "r");
    cr_assert(out && in);
    char line[16384];
    for (int n = 1; fgets(line, sizeof line, in); n++) fputs(n == bad ? text : line, out);
    fclose(in);
    fclose(out);
    return tu_system("'%s/qrr' eval '%s' '%s' > /dev/null 2> '%s/err.txt'", tu_build(), model,
                     path, tmp);
}

Test(eval, malformed_data_names_the_line, .timeout = 120)
{
    char tmp[256], model[1024], err[1200];
    tu_tmpdir(tmp, sizeof tmp);
    tu_convert("tiny-seqcls", "f32", tmp, model, sizeof model);
    snprintf(err, sizeof err, "%s/err.txt", tmp);
    static const struct {
        const char *line, *what;
    } cases[] = {
        {"{\"query\": \"q\", \"documents\": [\n", ":3:"},                 /* not JSON */
        {"{\"query\": \"q\"}\n", "documents"},                             /* no documents */
        {"{\"documents\": [{\"text\": \"d\", \"label\": 1}]}\n", "query"}, /* no query */
        {"{\"query\": \"q\", \"documents\": [{\"text\": \"d\"}]}\n", "label"},
        {"{\"query\": \"q\", \"documents\": [{\"text\": \"d\", \"label\": -1}]}\n", "label"},
        {"{\"query\": \"q\", \"documents\": [{\"text\": 5, \"label\": 0}]}\n", "text"},
        {"{\"query\": \"q\", \"documents\": []}\n", "documents"},
        {"[1, 2]\n", "object"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        int rc = eval_with_bad_line(tmp, model, 3, cases[i].line);
        cr_assert_eq(rc, 2, "case %zu: exit %d, expected 2", i, rc);
        char *msg = tu_slurp(err, NULL);
        cr_assert_not_null(strstr(msg, ":3:"), "case %zu: message does not name line 3: %s", i, msg);
        cr_assert_not_null(strstr(msg, cases[i].what), "case %zu: message lacks '%s': %s", i,
                           cases[i].what, msg);
        free(msg);
    }
    /* Usage errors: a missing argument, a bad option value. */
    cr_assert_eq(tu_system("'%s/qrr' eval '%s' 2>/dev/null", tu_build(), model), 2);
    cr_assert_eq(tu_system("'%s/qrr' eval '%s' '%s' --concurrency 0 2>/dev/null", tu_build(),
                           model, EVAL_DATA), 2);
    /* A model that cannot be opened is a failure (1), not a usage error. */
    cr_assert_eq(tu_system("'%s/qrr' eval '%s/none.qrr' '%s' 2>/dev/null", tu_build(), tmp,
                           EVAL_DATA), 1);
    tu_system("rm -rf '%s'", tmp);
}

/* A query that cannot be scored (here: a max_length with no room for its documents) fails
 * the run (exit 1) and is left out of every figure: the metrics are those of the same file
 * without it, not its mean with a 0 added; a file none of whose queries is scored has no
 * figures (null), not a throughput. */
Test(eval, a_query_that_fails_is_left_out_of_the_figures, .timeout = 120)
{
    char tmp[256], model[1024], with[1200], without[1200], out[1300];
    tu_tmpdir(tmp, sizeof tmp);
    tu_convert("tiny-tied", "f32", tmp, model, sizeof model);
    snprintf(with, sizeof with, "%s/with.jsonl", tmp);
    snprintf(without, sizeof without, "%s/without.jsonl", tmp);
    cr_assert_eq(tu_system("cp '%s' '%s' && { cat '%s'; echo '{\"query\": \"q\", \"max_length\": 5, "
                           "\"documents\": [{\"text\": \"d\", \"label\": 1}]}'; } > '%s'",
                           EVAL_DATA, without, EVAL_DATA, with), 0);
    json_t *base = run_eval(tmp, model, "--threads 1");
    snprintf(out, sizeof out, "%s/with.json", tmp);
    cr_assert_eq(tu_system("'%s/qrr' eval '%s' '%s' --threads 1 --json > '%s' 2> /dev/null",
                           tu_build(), model, with, out), 1);
    json_t *o = json_load_file(out, 0, NULL);
    cr_assert_not_null(o);
    cr_expect_eq(json_integer_value(json_object_get(o, "failed")), 1);
    /* which line, and why, as the text output says on stderr */
    json_t *failed = json_array_get(json_object_get(o, "failed_lines"), 0);
    cr_expect_eq(json_integer_value(json_object_get(failed, "line")),
                 json_integer_value(json_object_get(base, "queries")) + 1);
    cr_expect(strstr(json_string_value(json_object_get(failed, "error")), "max_length"), "%s",
              json_string_value(json_object_get(failed, "error")));
    cr_expect_eq(json_integer_value(json_object_get(o, "queries")),
                 json_integer_value(json_object_get(base, "queries")) + 1);
    cr_expect_eq(json_integer_value(json_object_get(o, "documents")),
                 json_integer_value(json_object_get(base, "documents")));
    for (size_t i = 0; i < sizeof metric_names / sizeof *metric_names; i++)
        cr_expect_float_eq(metric_of(o, metric_names[i]), metric_of(base, metric_names[i]), 1e-9,
                           "%s: %g with the failed query, %g without", metric_names[i],
                           metric_of(o, metric_names[i]), metric_of(base, metric_names[i]));
    json_decref(o);
    json_decref(base);

    cr_assert_eq(tu_system("tail -n 1 '%s' > '%s' && '%s/qrr' eval '%s' '%s' --json > '%s' "
                           "2> /dev/null", with, without, tu_build(), model, without, out), 1);
    o = json_load_file(out, 0, NULL);
    cr_assert_not_null(o);
    cr_expect(json_is_null(json_object_get(json_object_get(o, "metrics"), "ndcg@10")));
    cr_expect(json_is_null(json_object_get(json_object_get(o, "latency_ms"), "p50")));
    cr_expect_eq(json_number_value(json_object_get(o, "requests_per_s")), 0.0);
    json_decref(o);
    tu_system("rm -rf '%s'", tmp);
}
