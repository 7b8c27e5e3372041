/* cmd_check.c — `qrr check`: rescore a reference file (made with Transformers, e.g. by
 * tools/reference_scores.py) and hold every line to a tolerance: prompt token ids must be
 * identical, Δ and score within bounds set by the file's weights. The regression gate. */
#include <ctype.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "jsonl_cases.h"
#include "metrics.h"

#define MAX_GROUP 64       /* documents per request */
#define MAX_MODEL_NAMES 8  /* distinct "model" names remembered for messages */

typedef enum { LINE_PENDING, LINE_SCORED, LINE_ERROR } line_state;

typedef struct ref_line {
    long lineno;
    jsonl_request req;
    jsonl_text document;
    int32_t *ids;          /* expected prompt token ids; NULL when the line has none */
    size_t n_ids;
    const char *truth;     /* "fp64" or "fp32": the values compared against */
    double delta_ref;      /* logit_yes - logit_no, or the single logit */
    double score_ref;
    int single_logit;      /* the reference is of a single-logit (sequence-classification) head */

    line_state state;
    char error[300];
    double delta, score;   /* what this build computes */
    double delta_err, score_err;
    long id_pos;           /* first position where the ids differ; -1 if none (or no ids) */
    long id_got, id_want;  /* the ids there; -1 = past the end of that sequence */
    size_t n_ids_got;
    int within;            /* delta and score within tolerance */
    int pass;              /* within, and the ids (if given) identical */
    double badness;        /* for ordering the worst lines: error/tolerance, inf for failures */
} ref_line;

typedef struct ref_set {
    const char *model;     /* --model filter, or NULL */
    ref_line *v;
    size_t n, cap;
    size_t skipped;        /* well-formed lines of other models */
    char *names[MAX_MODEL_NAMES];
    size_t n_names;
} ref_set;

typedef struct tolerance {
    double delta, score;
    char why[200];
} tolerance;

static void line_free(ref_line *l)
{
    jsonl_request_free(&l->req);
    free(l->document.s);
    free(l->ids);
}

static void remember_name(ref_set *s, const char *name)
{
    for (size_t i = 0; i < s->n_names; i++)
        if (!strcmp(s->names[i], name)) return;
    if (s->n_names < MAX_MODEL_NAMES) s->names[s->n_names++] = strdup(name);
}

/* The reference values of one line: "fp64" if present, else "fp32"; each either
 * {logit_yes, logit_no, score} or {logit, score}. */
static int parse_truth(json_t *o, ref_line *l, char *err, size_t errlen)
{
    json_t *t = json_object_get(o, "fp64");
    l->truth = "fp64";
    if (!t) {
        t = json_object_get(o, "fp32");
        l->truth = "fp32";
    }
    if (!t) {
        snprintf(err, errlen, "missing field \"fp64\" (or \"fp32\") with the reference values");
        return -1;
    }
    if (!json_is_object(t)) {
        snprintf(err, errlen, "field \"%s\" must be an object", l->truth);
        return -1;
    }
    char sub[JSONL_ERR_LEN];
    int rc;
    l->single_logit = json_object_get(t, "logit") != NULL;
    if (l->single_logit) {
        rc = jsonl_get_number(t, "logit", &l->delta_ref, sub, sizeof sub);
    } else {
        double yes = 0, no = 0;
        rc = jsonl_get_number(t, "logit_yes", &yes, sub, sizeof sub);
        if (!rc) rc = jsonl_get_number(t, "logit_no", &no, sub, sizeof sub);
        l->delta_ref = yes - no;
    }
    if (!rc) rc = jsonl_get_number(t, "score", &l->score_ref, sub, sizeof sub);
    if (!rc && !(l->score_ref >= 0.0 && l->score_ref <= 1.0)) {
        snprintf(sub, sizeof sub, "\"score\" %g is not a probability in [0, 1]", l->score_ref);
        rc = -1;
    }
    if (rc) snprintf(err, errlen, "in \"%s\": %s", l->truth, sub);
    return rc;
}

static int parse_line(void *ctx, long lineno, json_t *o, char *err, size_t errlen)
{
    ref_set *s = ctx;
    ref_line l = {.lineno = lineno, .id_pos = -1};
    json_t *model = json_object_get(o, "model");
    if (model && !json_is_string(model)) {
        snprintf(err, errlen, "field \"model\" must be a string");
        return -1;
    }
    int rc = jsonl_get_request(o, &l.req, err, errlen);
    if (!rc) rc = jsonl_get_string(o, "document", &l.document, err, errlen);
    if (!rc && json_object_get(o, "ids")) rc = jsonl_get_ids(o, "ids", &l.ids, &l.n_ids, err, errlen);
    if (!rc) rc = parse_truth(o, &l, err, errlen);
    if (rc) {
        line_free(&l);
        return -1;
    }
    if (model) remember_name(s, json_string_value(model));
    if (s->model && (!model || strcmp(json_string_value(model), s->model))) {
        s->skipped++;
        line_free(&l);
        return 0;
    }
    if (s->n == s->cap) {
        size_t cap = s->cap ? 2 * s->cap : 64;
        ref_line *v = realloc(s->v, cap * sizeof *v);
        if (!v) {
            line_free(&l);
            snprintf(err, errlen, "out of memory");
            return -1;
        }
        s->v = v, s->cap = cap;
    }
    s->v[s->n++] = l;
    return 0;
}

/* ---- tolerances -------------------------------------------------------------------- */

/* The checkpoint's weight dtype as qconvert records it in the provenance ("source_dtype":
 * "bf16", "f16", "f32" or "mixed", any case), lower-cased into out; "" when absent. */
static void source_dtype(const qrr_model *m, char *out, size_t n)
{
    out[0] = '\0';
    size_t len = 0;
    const char *p = qrr_model_meta_str(m, "provenance", &len);
    json_t *prov = p ? json_loadb(p, len, 0, NULL) : NULL;
    json_t *v = json_object_get(prov, "source_dtype");
    if (json_is_string(v)) snprintf(out, n, "%s", json_string_value(v));
    json_decref(prov);
    for (char *c = out; *c; c++) *c = (char)tolower((unsigned char)*c); /* "BF16" = "bf16" */
}

/* The tolerance table (docs/ci.md): what a correct build reaches against the fp64 reference. */
static tolerance default_tolerance(const qrr_model *m, qrr_device device)
{
    tolerance t = {1e-4, 1e-5, ""};
    qrr_model_info info;
    qrr_model_get_info(m, &info);
    const char *w = info.weight_dtype;
    char src[32];
    source_dtype(m, src, sizeof src);
    /* f16 holds every bf16 value the converter accepts (it refuses overflow). */
    int lossless = !strcmp(src, w) || (!strcmp(w, "f16") && !strcmp(src, "bf16"));
    if (!strcmp(w, "int8")) {
        t.delta = 0.25, t.score = 0.06;
        snprintf(t.why, sizeof t.why, "int8 weights");
    } else if (!strcmp(w, "f32")) {
        snprintf(t.why, sizeof t.why, "f32 weights (exact from any checkpoint)");
    } else if (!src[0]) {
        snprintf(t.why, sizeof t.why, "%s weights; the file records no source dtype, so the "
                 "strict bound", w);
    } else if (lossless) {
        snprintf(t.why, sizeof t.why, "%s weights from %s checkpoint weights (lossless)", w, src);
    } else if (!strcmp(w, "f16")) {
        t.delta = 1e-2, t.score = 3e-3;
        snprintf(t.why, sizeof t.why, "f16 weights rounded from %s checkpoint weights", src);
    } else {
        /* bf16 rounded from wider weights. bf16 keeps 3 mantissa bits
         * fewer than f16, so its rounding error is 8x larger: 8x the f16 row. */
        t.delta = 8e-2, t.score = 2.4e-2;
        snprintf(t.why, sizeof t.why, "%s weights rounded from %s checkpoint weights", w, src);
    }
    if (device == QRR_DEVICE_CUDA) {
        if (t.delta < 0.05) t.delta = 0.05;
        if (t.score < 5e-3) t.score = 5e-3;
        size_t used = strlen(t.why);
        snprintf(t.why + used, sizeof t.why - used, ", fp16 compute (CUDA)");
    }
    return t;
}

/* ---- checking ---------------------------------------------------------------------- */

/* A line of the other head kind cannot be held to this model: it is a failed line. */
static void check_head(const qrr_model_info *mi, ref_line *l)
{
    const int single = mi->yes_id < 0;
    if (l->single_logit == single) return;
    l->state = LINE_ERROR;
    snprintf(l->error, sizeof l->error, "the reference is of a %s head and the model has a %s "
             "head: a reference of another model? (--model NAME picks its lines)",
             l->single_logit ? "single-logit" : "yes/no", mi->head_kind);
}

static void check_ids(const qrr_model *m, ref_line *l)
{
    if (!l->ids) return;
    size_t cap = l->n_ids + 64, n = 0;
    int32_t *got = malloc(cap * sizeof *got);
    qrr_score_params p = jsonl_request_params(&l->req);
    const jsonl_text *q = &l->req.query, *doc = &l->document;
    int rc = got ? qrr_model_prompt_ids_len(m, q->s, q->len, doc->s, doc->len, p, got, cap, &n)
                 : QRR_ERR_NOMEM;
    if (rc == QRR_ERR_BUFFER_TOO_SMALL) {
        int32_t *bigger = realloc(got, n * sizeof *got);
        if (bigger) got = bigger, cap = n;
        rc = bigger ? qrr_model_prompt_ids_len(m, q->s, q->len, doc->s, doc->len, p, got, cap, &n)
                    : QRR_ERR_NOMEM;
    }
    if (rc != QRR_OK) {
        l->state = LINE_ERROR;
        snprintf(l->error, sizeof l->error, "cannot build the prompt ids: %s",
                 rc == QRR_ERR_NOMEM ? "out of memory" : qrr_last_error());
        free(got);
        return;
    }
    l->n_ids_got = n;
    size_t common = n < l->n_ids ? n : l->n_ids, i = 0;
    while (i < common && got[i] == l->ids[i]) i++;
    if (i < common || n != l->n_ids) {
        l->id_pos = (long)i;
        l->id_got = i < n ? got[i] : -1;
        l->id_want = i < l->n_ids ? l->ids[i] : -1;
    }
    free(got);
}

/* Score lines[0..n) (one request); QRR_OK or the library's status. */
static int score_group(qrr_ctx *ctx, ref_line **lines, size_t n)
{
    const char **docs = malloc(n * sizeof *docs);
    size_t *lens = malloc(n * sizeof *lens);
    float *scores = malloc(n * sizeof *scores), *logits = malloc(n * sizeof *logits);
    int rc = QRR_ERR_NOMEM;
    if (docs && lens && scores && logits) {
        for (size_t i = 0; i < n; i++) docs[i] = lines[i]->document.s, lens[i] = lines[i]->document.len;
        const jsonl_request *r = &lines[0]->req;
        rc = qrr_ctx_score_len(ctx, r->query.s, r->query.len, docs, lens, n,
                               jsonl_request_params(r), scores, logits);
    }
    if (rc == QRR_OK) {
        for (size_t i = 0; i < n; i++) {
            if (lines[i]->state == LINE_ERROR) continue;
            lines[i]->state = LINE_SCORED;
            lines[i]->score = scores[i];
            lines[i]->delta = logits[i];
        }
    }
    free(docs);
    free(lens);
    free(scores);
    free(logits);
    return rc;
}

static int cmp_by_request(const void *a, const void *b)
{
    const ref_line *x = *(ref_line *const *)a, *y = *(ref_line *const *)b;
    int c = jsonl_request_cmp(&x->req, &y->req);
    return c ? c : (x->lineno > y->lineno) - (x->lineno < y->lineno);
}

/* Score every line, lines of one request together; a failing request is retried line by
 * line so that one bad line spoils no other. */
static int score_all(qrr_ctx *ctx, ref_set *s)
{
    ref_line **order = malloc(s->n * sizeof *order);
    if (!order) return -1;
    for (size_t i = 0; i < s->n; i++) order[i] = &s->v[i];
    qsort(order, s->n, sizeof *order, cmp_by_request);
    for (size_t a = 0; a < s->n;) {
        size_t b = a + 1;
        while (b < s->n && b - a < MAX_GROUP && jsonl_same_request(&order[a]->req, &order[b]->req)) b++;
        if (score_group(ctx, order + a, b - a) != QRR_OK) {
            for (size_t i = a; i < b; i++) {
                if (order[i]->state == LINE_ERROR) continue; /* its prompt already failed */
                if (b - a > 1 && score_group(ctx, order + i, 1) == QRR_OK) continue;
                order[i]->state = LINE_ERROR;
                snprintf(order[i]->error, sizeof order[i]->error, "scoring failed: %s",
                         qrr_last_error());
            }
        }
        a = b;
    }
    free(order);
    return 0;
}

static void judge(ref_line *l, const tolerance *t)
{
    if (l->state != LINE_SCORED) {
        l->pass = 0;
        l->badness = INFINITY;
        return;
    }
    l->delta_err = fabs(l->delta - l->delta_ref);
    l->score_err = fabs(l->score - l->score_ref);
    if (isnan(l->delta_err)) l->delta_err = INFINITY;
    if (isnan(l->score_err)) l->score_err = INFINITY;
    l->within = l->delta_err <= t->delta && l->score_err <= t->score;
    l->pass = l->within && l->id_pos < 0;
    double rd = t->delta > 0 ? l->delta_err / t->delta : (l->delta_err > 0 ? INFINITY : 0);
    double rs = t->score > 0 ? l->score_err / t->score : (l->score_err > 0 ? INFINITY : 0);
    l->badness = l->id_pos >= 0 ? INFINITY : rd > rs ? rd : rs;
}

static int cmp_worst_first(const void *a, const void *b)
{
    const ref_line *x = *(ref_line *const *)a, *y = *(ref_line *const *)b;
    if (x->pass != y->pass) return x->pass - y->pass;
    if (x->badness != y->badness) return x->badness < y->badness ? 1 : -1;
    return (x->lineno > y->lineno) - (x->lineno < y->lineno);
}

/* ---- report ------------------------------------------------------------------------ */

typedef struct summary {
    size_t lines, passed, out_of_tolerance, id_mismatches, errors;
    double delta_worst, delta_median, score_worst, score_median;
    long delta_worst_line, score_worst_line;
} summary;

static int summarize(const ref_set *s, summary *out)
{
    summary r = {.lines = s->n, .delta_worst_line = -1, .score_worst_line = -1};
    double *de = malloc((s->n + 1) * sizeof *de), *se = malloc((s->n + 1) * sizeof *se);
    if (!de || !se) {
        free(de);
        free(se);
        return -1;
    }
    size_t k = 0;
    for (size_t i = 0; i < s->n; i++) {
        const ref_line *l = &s->v[i];
        r.passed += l->pass;
        r.id_mismatches += l->id_pos >= 0;
        if (l->state != LINE_SCORED) {
            r.errors++;
            continue;
        }
        if (r.delta_worst_line < 0 || l->delta_err > r.delta_worst)
            r.delta_worst = l->delta_err, r.delta_worst_line = l->lineno;
        if (r.score_worst_line < 0 || l->score_err > r.score_worst)
            r.score_worst = l->score_err, r.score_worst_line = l->lineno;
        r.out_of_tolerance += !l->within;
        de[k] = l->delta_err, se[k] = l->score_err, k++;
    }
    metric_sort(de, k);
    metric_sort(se, k);
    r.delta_median = metric_percentile(de, k, 50);
    r.score_median = metric_percentile(se, k, 50);
    free(de);
    free(se);
    *out = r;
    return 0;
}

/* One line of the worst-lines list, as text. */
static void describe_line(const ref_line *l, char *buf, size_t n)
{
    if (l->state == LINE_ERROR) {
        snprintf(buf, n, "%s", l->error);
        return;
    }
    size_t used = 0;
    if (l->id_pos >= 0) {
        char got[24] = "end", want[24] = "end";
        if (l->id_got >= 0) snprintf(got, sizeof got, "%ld", l->id_got);
        if (l->id_want >= 0) snprintf(want, sizeof want, "%ld", l->id_want);
        used = (size_t)snprintf(buf, n, "token ids differ at position %ld: %s, expected %s "
                                "(%zu ids, expected %zu); ", l->id_pos, got, want, l->n_ids_got,
                                l->n_ids);
        if (used >= n) return;
    }
    snprintf(buf + used, n - used, "delta %.7g vs %s %.7g (err %.2e), score %.7g vs %.7g (err %.2e)",
             l->delta, l->truth, l->delta_ref, l->delta_err, l->score, l->score_ref, l->score_err);
}

static void print_text(const char *qrr_path, const char *ref_path, const ref_set *s,
                       const tolerance *t, const char *device, const summary *r,
                       ref_line **worst, size_t show)
{
    printf("qrr check: %s against %s", qrr_path, ref_path);
    if (s->model) printf(", model %s (%zu lines of other models skipped)", s->model, s->skipped);
    printf("\n  tolerance      |delta| <= %g, |score| <= %g: %s\n", t->delta, t->score, t->why);
    printf("  device         %s\n", device);
    printf("  lines          %zu checked, %zu within tolerance, %zu out of tolerance, "
           "%zu token-id mismatches, %zu not scored\n",
           r->lines, r->passed, r->out_of_tolerance, r->id_mismatches, r->errors);
    if (r->delta_worst_line >= 0) {
        printf("  delta error    worst %.3g (line %ld), median %.3g\n", r->delta_worst,
               r->delta_worst_line, r->delta_median);
        printf("  score error    worst %.3g (line %ld), median %.3g\n", r->score_worst,
               r->score_worst_line, r->score_median);
    }
    if (show) printf("  worst lines\n");
    for (size_t i = 0; i < show; i++) {
        char what[700];
        describe_line(worst[i], what, sizeof what);
        printf("    line %-5ld %s  %s\n", worst[i]->lineno, worst[i]->pass ? "ok  " : "FAIL", what);
    }
    size_t failed = r->lines - r->passed, shown_failed = 0;
    for (size_t i = 0; i < show; i++) shown_failed += !worst[i]->pass;
    if (failed > shown_failed)
        printf("  (%zu more failing lines not shown; --show N lists more)\n", failed - shown_failed);
    printf("%s\n", failed ? "FAIL" : "PASS");
}

static json_t *line_json(const ref_line *l)
{
    json_t *o = json_pack("{s:I,s:b}", "line", (json_int_t)l->lineno, "pass", l->pass);
    if (l->state == LINE_ERROR) {
        json_object_set_new(o, "error", json_string(l->error));
        return o;
    }
    json_object_set_new(o, "truth", json_string(l->truth));
    json_object_set_new(o, "delta", json_real(l->delta));
    json_object_set_new(o, "delta_ref", json_real(l->delta_ref));
    json_object_set_new(o, "delta_error", json_real(l->delta_err));
    json_object_set_new(o, "score", json_real(l->score));
    json_object_set_new(o, "score_ref", json_real(l->score_ref));
    json_object_set_new(o, "score_error", json_real(l->score_err));
    if (l->ids)
        json_object_set_new(o, "ids_match", json_boolean(l->id_pos < 0));
    if (l->id_pos >= 0) {
        json_object_set_new(o, "ids_first_difference",
                            json_pack("{s:I,s:I,s:I,s:I,s:I}", "position", (json_int_t)l->id_pos,
                                      "got", (json_int_t)l->id_got, "expected",
                                      (json_int_t)l->id_want, "n_ids", (json_int_t)l->n_ids_got,
                                      "n_ids_expected", (json_int_t)l->n_ids));
    }
    return o;
}

static void print_json(const char *qrr_path, const char *ref_path, const ref_set *s,
                       const tolerance *t, const char *device, const summary *r,
                       ref_line **worst, size_t show)
{
    json_t *w = json_array();
    for (size_t i = 0; i < show; i++) json_array_append_new(w, line_json(worst[i]));
    json_t *o = json_pack("{s:s,s:s,s:o,s:I,s:{s:f,s:f,s:s},s:I,s:I,s:I,s:I,s:I,s:b,s:o}",
                          "file", qrr_path, "reference", ref_path,
                          "model", s->model ? json_string(s->model) : json_null(),
                          "skipped", (json_int_t)s->skipped,
                          "tolerance", "delta", t->delta, "score", t->score, "why", t->why,
                          "lines", (json_int_t)r->lines, "passed", (json_int_t)r->passed,
                          "out_of_tolerance", (json_int_t)r->out_of_tolerance,
                          "id_mismatches", (json_int_t)r->id_mismatches,
                          "not_scored", (json_int_t)r->errors, "pass", r->passed == r->lines,
                          "worst", w);
    json_object_set_new(o, "device", json_string(device));
    if (r->delta_worst_line >= 0) {
        json_object_set_new(o, "delta_error",
                            json_pack("{s:f,s:I,s:f}", "worst", r->delta_worst, "worst_line",
                                      (json_int_t)r->delta_worst_line, "median", r->delta_median));
        json_object_set_new(o, "score_error",
                            json_pack("{s:f,s:I,s:f}", "worst", r->score_worst, "worst_line",
                                      (json_int_t)r->score_worst_line, "median", r->score_median));
    }
    char *text = json_dumps(o, JSON_INDENT(2) | JSON_REAL_PRECISION(9));
    if (text) puts(text);
    free(text);
    json_decref(o);
}

/* ---- command ----------------------------------------------------------------------- */

static void help(void)
{
    printf("usage: qrr check MODEL.qrr REFERENCE.jsonl [--model NAME] [--tol-logit X]\n"
           "                 [--tol-score Y] [--show N] [--json] [--threads N]\n"
           "                 [--device cpu|cuda] [--no-verify]\n\n"
           "Rescores every line of REFERENCE.jsonl (the schema of scores_public.jsonl: \"query\",\n"
           "\"document\", \"instruction\" (null = the model's default), optional \"max_length\",\n"
           "optional \"truncate\" (false: refuse a prompt over max_length, not cut it),\n"
           "optional \"ids\" (the expected prompt token ids), optional \"model\", and \"fp64\" or\n"
           "\"fp32\": {\"logit_yes\", \"logit_no\", \"score\"} or {\"logit\", \"score\"}) and compares:\n"
           "the prompt token ids must be identical; delta (logit_yes - logit_no, or the single\n"
           "logit) and score must be within tolerance of the \"fp64\" values (\"fp32\" if absent).\n\n"
           "  --model NAME     check only the lines whose \"model\" is NAME (default: all lines)\n"
           "  --tol-logit X    tolerance on |delta error| (default: by the file's weights)\n"
           "  --tol-score Y    tolerance on |score error|\n"
           "                   defaults: f32, or f16 from a bf16/f16 checkpoint: 1e-4 / 1e-5;\n"
           "                   f16 from an f32 checkpoint: 1e-2 / 3e-3; bf16 from an f32\n"
           "                   checkpoint: 8e-2 / 2.4e-2; int8: 0.25 / 0.06;\n"
           "                   CUDA (fp16 compute): at least 0.05 / 5e-3\n"
           "  --show N         list the N worst lines (default 5; failing lines come first)\n"
           "  --json           print the summary as one JSON document\n"
           "  --threads N      CPU threads (0 = one per CPU)\n"
           "  --device D       cpu (default) or cuda\n"
           "  --no-verify      skip the weights' checksums at open\n\n"
           "Exit: 0 every line within tolerance, 1 a line out of tolerance, a token-id mismatch,\n"
           "a line that could not be scored or a model that cannot be opened, 2 usage error or a\n"
           "missing or malformed reference file (the message names the line).\n");
}

static int parse_tol(const char *s, double *out)
{
    if (strspn(s, "0123456789.eE+-") != strlen(s)) return -1; /* decimal only: no "0x10", " 1" */
    char *end;
    double v = strtod(s, &end);
    if (!*s || *end || !isfinite(v) || v < 0) return -1;
    *out = v;
    return 0;
}

int qrr_cmd_check(int argc, char **argv)
{
    const char *paths[2] = {NULL, NULL};
    size_t n_paths = 0;
    cli_model_opts mo = cli_model_opts_default();
    double tol_delta = -1, tol_score = -1;
    long show = 5;
    int as_json = 0;
    ref_set set = {0};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        int r = cli_common_option("check", CLI_OPT_THREADS | CLI_OPT_DEVICE | CLI_OPT_VERIFY, help, argc, argv, &i, &mo);
        if (r == CLI_OPT_TAKEN) continue;
        if (r != CLI_OPT_OTHER) return r;
        if (!strcmp(a, "--tol-logit") && i + 1 < argc) {
            if (parse_tol(argv[++i], &tol_delta)) return cli_usage_error("check", "--tol-logit must be a number >= 0");
        } else if (!strcmp(a, "--tol-score") && i + 1 < argc) {
            if (parse_tol(argv[++i], &tol_score)) return cli_usage_error("check", "--tol-score must be a number >= 0");
        } else if (!strcmp(a, "--show") && i + 1 < argc) {
            if (cli_parse_int(argv[++i], 0, 1000000, &show)) return cli_usage_error("check", "--show must be 0..1000000");
        } else if (!strcmp(a, "--model") && i + 1 < argc) {
            set.model = argv[++i];
        } else if (!strcmp(a, "--json")) {
            as_json = 1;
        } else if (a[0] == '-' && a[1]) {
            return cli_usage_error("check", "unknown or incomplete option '%s'", a);
        } else if (n_paths < 2 && !cli_is_split_value(a)) {
            paths[n_paths++] = a;
        } else {
            return cli_unexpected_argument("check", argv, i);
        }
    }
    if (n_paths < 2) return cli_usage_error("check", "needs MODEL.qrr and REFERENCE.jsonl");

    int exit_code = QRR_EXIT_USAGE;
    qrr_model *m = NULL;
    qrr_ctx *ctx = NULL;
    ref_line **worst = NULL;
    long bad = jsonl_read("check", paths[1], parse_line, &set);
    if (bad != 0) {
        if (bad > 0)
            fprintf(stderr, "qrr check: %s is not a valid reference file (%ld malformed line%s)\n",
                    paths[1], bad, bad == 1 ? "" : "s");
        goto done;
    }
    if (set.n == 0) {
        fprintf(stderr, "qrr check: %s has no line to check", paths[1]);
        if (set.model) {
            fprintf(stderr, " for model '%s' (models there:", set.model);
            for (size_t i = 0; i < set.n_names; i++) fprintf(stderr, " %s", set.names[i]);
            fprintf(stderr, ")");
        }
        fprintf(stderr, "\n");
        goto done;
    }

    exit_code = QRR_EXIT_FAIL;
    if (!(m = cli_open_model("check", paths[0], mo.verify))) goto done;
    if (qrr_ctx_create(m, mo.ctx, &ctx) != QRR_OK) {
        fprintf(stderr, "qrr check: %s\n", qrr_last_error());
        goto done;
    }
    qrr_model_info mi;
    qrr_model_get_info(m, &mi);
    tolerance tol = default_tolerance(m, mo.ctx.device);
    if (tol_delta >= 0 || tol_score >= 0) {
        if (tol_delta >= 0) tol.delta = tol_delta;
        if (tol_score >= 0) tol.score = tol_score;
        snprintf(tol.why, sizeof tol.why, "set on the command line (%s weights)", mi.weight_dtype);
    }
    for (size_t i = 0; i < set.n; i++) check_head(&mi, &set.v[i]);
    for (size_t i = 0; i < set.n; i++) check_ids(m, &set.v[i]);
    worst = malloc(set.n * sizeof *worst);
    summary r;
    if (!worst || score_all(ctx, &set) != 0) {
        fprintf(stderr, "qrr check: out of memory\n");
        goto done;
    }
    for (size_t i = 0; i < set.n; i++) judge(&set.v[i], &tol);
    if (summarize(&set, &r) != 0) {
        fprintf(stderr, "qrr check: out of memory\n");
        goto done;
    }
    for (size_t i = 0; i < set.n; i++) worst[i] = &set.v[i];
    qsort(worst, set.n, sizeof *worst, cmp_worst_first);
    size_t n_show = (size_t)show < set.n ? (size_t)show : set.n;
    char device[512];
    qrr_ctx_describe(ctx, device, sizeof device); /* cut short at worst */
    if (as_json) print_json(paths[0], paths[1], &set, &tol, device, &r, worst, n_show);
    else print_text(paths[0], paths[1], &set, &tol, device, &r, worst, n_show);
    exit_code = r.passed == r.lines ? QRR_EXIT_OK : QRR_EXIT_FAIL;

done:
    free(worst);
    for (size_t i = 0; i < set.n; i++) line_free(&set.v[i]);
    free(set.v);
    for (size_t i = 0; i < set.n_names; i++) free(set.names[i]);
    qrr_ctx_free(ctx);
    qrr_model_close(m);
    return exit_code;
}
