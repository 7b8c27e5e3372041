/* test_check.c — `qrr check`: the reference scores pass for every tiny reference model at f32
 * and f16 with the default tolerances; a perturbed score, an altered token id and
 * malformed reference lines are caught, with the right exit code and the line named. */
#include <jansson.h>

#include "qrr_test_util.h"

#define MAX_REF_LINES 256

/* The reference file, one parsed object per line (line numbers from 1). */
typedef struct ref_file {
    json_t *lines[MAX_REF_LINES];
    size_t n;
} ref_file;

static void ref_load(ref_file *r)
{
    char path[1024], line[65536];
    snprintf(path, sizeof path, "%s/scores_public.jsonl", tu_reference());
    FILE *f = fopen(path, "r");
    cr_assert_not_null(f, "cannot open %s", path);
    r->n = 0;
    while (fgets(line, sizeof line, f)) {
        cr_assert_lt(r->n, MAX_REF_LINES);
        json_error_t je;
        r->lines[r->n] = json_loads(line, 0, &je);
        cr_assert_not_null(r->lines[r->n], "reference line %zu: %s", r->n + 1, je.text);
        r->n++;
    }
    fclose(f);
}

static void ref_free(ref_file *r)
{
    for (size_t i = 0; i < r->n; i++) json_decref(r->lines[i]);
}

/* Lines of model `name`, and the 1-based number of its k-th line (k from 0). */
static size_t ref_count(const ref_file *r, const char *name)
{
    size_t n = 0;
    for (size_t i = 0; i < r->n; i++)
        n += !strcmp(json_string_value(json_object_get(r->lines[i], "model")), name);
    return n;
}

static long ref_lineno(const ref_file *r, const char *name, size_t k)
{
    for (size_t i = 0; i < r->n; i++)
        if (!strcmp(json_string_value(json_object_get(r->lines[i], "model")), name) && k-- == 0)
            return (long)i + 1;
    cr_assert_fail("model %s has too few reference lines", name);
    return -1;
}

/* Write r to path; line `raw_at` (1-based, 0 = none) is written as raw_text instead. */
static void ref_write(const ref_file *r, const char *path, long raw_at, const char *raw_text)
{
    FILE *f = fopen(path, "w");
    cr_assert_not_null(f);
    for (size_t i = 0; i < r->n; i++) {
        if ((long)i + 1 == raw_at) {
            fputs(raw_text, f);
            continue;
        }
        char *s = json_dumps(r->lines[i], JSON_COMPACT | JSON_REAL_PRECISION(17));
        cr_assert_not_null(s);
        fprintf(f, "%s\n", s);
        free(s);
    }
    fclose(f);
}

/* Run `qrr check MODEL REF ARGS`; stdout in tmp/out.txt, stderr in tmp/err.txt. */
static int run_check(const char *tmp, const char *model, const char *ref, const char *args)
{
    return tu_system("'%s/qrr' check '%s' '%s' %s > '%s/out.txt' 2> '%s/err.txt'", tu_build(),
                     model, ref, args, tmp, tmp);
}

static char *output(const char *tmp, const char *which)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/%s.txt", tmp, which);
    return tu_slurp(path, NULL);
}

/* Convert `name` at `dtype` and check it against the public reference, its lines only. */
static void check_passes(const char *name, const char *dtype)
{
    char tmp[256], model[1024], ref[1024], args[256];
    tu_tmpdir(tmp, sizeof tmp);
    tu_convert(name, dtype, tmp, model, sizeof model);
    snprintf(ref, sizeof ref, "%s/scores_public.jsonl", tu_reference());
    snprintf(args, sizeof args, "--model %s --json --show 100", name);
    int rc = run_check(tmp, model, ref, args);
    char *out = output(tmp, "out"), *err = output(tmp, "err");
    cr_assert_eq(rc, 0, "qrr check %s %s exited %d\n%s%s", name, dtype, rc, out, err);
    json_t *o = json_loads(out, 0, NULL);
    cr_assert_not_null(o, "--json output is not JSON:\n%s", out);
    ref_file r;
    ref_load(&r);
    size_t want = ref_count(&r, name);
    cr_assert_gt(want, 0);
    cr_assert_eq(json_integer_value(json_object_get(o, "lines")), (json_int_t)want);
    cr_assert_eq(json_integer_value(json_object_get(o, "passed")), (json_int_t)want);
    cr_assert_eq(json_integer_value(json_object_get(o, "id_mismatches")), 0);
    cr_assert_eq(json_integer_value(json_object_get(o, "skipped")), (json_int_t)(r.n - want));
    cr_assert(json_is_true(json_object_get(o, "pass")));
    /* Every line carried ids, and every line was compared with its fp64 values. */
    json_t *worst = json_object_get(o, "worst");
    cr_assert_eq(json_array_size(worst), want);
    for (size_t i = 0; i < want; i++) {
        json_t *l = json_array_get(worst, i);
        cr_assert(json_is_true(json_object_get(l, "ids_match")));
        cr_assert_str_eq(json_string_value(json_object_get(l, "truth")), "fp64");
    }
    json_decref(o);
    ref_free(&r);
    free(out);
    free(err);
    tu_system("rm -rf '%s'", tmp);
}

Test(check, tiny_tied_f32, .timeout = 120) { check_passes("tiny-tied", "f32"); }
Test(check, tiny_tied_f16, .timeout = 120) { check_passes("tiny-tied", "f16"); }
Test(check, tiny_untied_f32, .timeout = 120) { check_passes("tiny-untied", "f32"); }
Test(check, tiny_untied_f16, .timeout = 120) { check_passes("tiny-untied", "f16"); }
Test(check, tiny_seqcls_f32, .timeout = 120) { check_passes("tiny-seqcls", "f32"); }
Test(check, tiny_seqcls_f16, .timeout = 120) { check_passes("tiny-seqcls", "f16"); }

/* A fixture: tiny-tied at f32 and the reference, for the tests on edited copies below. */
static char tmp[256], model[1024], ref_copy[1200];
static ref_file ref;

static void setup(void)
{
    tu_tmpdir(tmp, sizeof tmp);
    tu_convert("tiny-tied", "f32", tmp, model, sizeof model);
    ref_load(&ref);
    snprintf(ref_copy, sizeof ref_copy, "%s/ref.jsonl", tmp);
}

static void teardown(void)
{
    ref_free(&ref);
    tu_system("rm -rf '%s'", tmp);
}

TestSuite(check_edits, .init = setup, .fini = teardown, .timeout = 120);

Test(check_edits, perturbed_score_names_the_line)
{
    long at = ref_lineno(&ref, "tiny-tied", 3);
    json_t *fp64 = json_object_get(ref.lines[at - 1], "fp64");
    double s = json_number_value(json_object_get(fp64, "score"));
    json_object_set_new(fp64, "score", json_real(s + 0.1));
    ref_write(&ref, ref_copy, 0, NULL);

    int rc = run_check(tmp, model, ref_copy, "--model tiny-tied");
    char *out = output(tmp, "out");
    cr_assert_eq(rc, 1, "exit %d, expected 1:\n%s", rc, out);
    char want[64];
    snprintf(want, sizeof want, "line %-5ld FAIL", at);
    cr_assert_not_null(strstr(out, want), "the report does not name line %ld as failing:\n%s", at, out);
    cr_assert_not_null(strstr(out, "1 out of tolerance"), "%s", out);
    free(out);

    /* The same as JSON: the failing line comes first among the worst. */
    rc = run_check(tmp, model, ref_copy, "--model tiny-tied --json --show 1");
    out = output(tmp, "out");
    cr_assert_eq(rc, 1);
    json_t *o = json_loads(out, 0, NULL);
    cr_assert_not_null(o, "%s", out);
    json_t *w = json_array_get(json_object_get(o, "worst"), 0);
    cr_assert_eq(json_integer_value(json_object_get(w, "line")), at);
    cr_assert(json_is_false(json_object_get(w, "pass")));
    cr_assert_float_eq(json_number_value(json_object_get(w, "score_error")), 0.1, 1e-3);
    cr_assert_eq(json_integer_value(json_object_get(o, "passed")),
                 (json_int_t)ref_count(&ref, "tiny-tied") - 1);
    json_decref(o);
    free(out);

    /* A loose enough tolerance given on the command line lets it pass. */
    cr_assert_eq(run_check(tmp, model, ref_copy, "--model tiny-tied --tol-score 0.2"), 0);
}

Test(check_edits, perturbed_logit_fails)
{
    long at = ref_lineno(&ref, "tiny-tied", 5);
    json_t *fp64 = json_object_get(ref.lines[at - 1], "fp64");
    double v = json_number_value(json_object_get(fp64, "logit_no"));
    json_object_set_new(fp64, "logit_no", json_real(v + 1e-3)); /* delta moves by 1e-3 */
    ref_write(&ref, ref_copy, 0, NULL);
    cr_assert_eq(run_check(tmp, model, ref_copy, "--model tiny-tied --tol-score 1"), 1);
    char *out = output(tmp, "out"), want[64];
    snprintf(want, sizeof want, "line %-5ld FAIL", at);
    cr_assert_not_null(strstr(out, want), "%s", out);
    free(out);
}

Test(check_edits, id_mismatch_detected)
{
    long at = ref_lineno(&ref, "tiny-tied", 1);
    json_t *ids = json_object_get(ref.lines[at - 1], "ids");
    size_t pos = json_array_size(ids) / 2;
    json_int_t old = json_integer_value(json_array_get(ids, pos));
    json_array_set_new(ids, pos, json_integer(old + 1));
    ref_write(&ref, ref_copy, 0, NULL);

    int rc = run_check(tmp, model, ref_copy, "--model tiny-tied");
    char *out = output(tmp, "out"), want[160];
    cr_assert_eq(rc, 1, "exit %d, expected 1:\n%s", rc, out);
    snprintf(want, sizeof want, "line %-5ld FAIL  token ids differ at position %zu: %lld, expected %lld",
             at, pos, (long long)old, (long long)old + 1);
    cr_assert_not_null(strstr(out, want), "expected '%s' in:\n%s", want, out);
    cr_assert_not_null(strstr(out, "1 token-id mismatches"), "%s", out);
    free(out);

    /* A shorter expected sequence is a mismatch too, at the end of it. */
    json_array_remove(ids, json_array_size(ids) - 1);
    json_array_set_new(ids, pos, json_integer(old));
    ref_write(&ref, ref_copy, 0, NULL);
    cr_assert_eq(run_check(tmp, model, ref_copy, "--model tiny-tied --json"), 1);
    out = output(tmp, "out");
    json_t *o = json_loads(out, 0, NULL);
    cr_assert_not_null(o);
    json_t *diff = json_object_get(json_array_get(json_object_get(o, "worst"), 0), "ids_first_difference");
    cr_assert_not_null(diff, "%s", out);
    cr_assert_eq(json_integer_value(json_object_get(diff, "position")),
                 (json_int_t)json_array_size(ids));
    cr_assert_eq(json_integer_value(json_object_get(diff, "expected")), -1);
    json_decref(o);
    free(out);
}

Test(check_edits, fp32_values_when_no_fp64)
{
    for (size_t i = 0; i < ref.n; i++) json_object_del(ref.lines[i], "fp64");
    ref_write(&ref, ref_copy, 0, NULL);
    int rc = run_check(tmp, model, ref_copy, "--model tiny-tied --json --show 1");
    char *out = output(tmp, "out");
    cr_assert_eq(rc, 0, "exit %d:\n%s", rc, out);
    json_t *o = json_loads(out, 0, NULL);
    cr_assert_not_null(o, "%s", out);
    json_t *w = json_array_get(json_object_get(o, "worst"), 0);
    cr_assert_str_eq(json_string_value(json_object_get(w, "truth")), "fp32");
    json_decref(o);
    free(out);
}

/* Replace line `at` by text and expect exit 2 with a message naming the line and `what`. */
static void expect_malformed(long at, const char *text, const char *what)
{
    ref_write(&ref, ref_copy, at, text);
    int rc = run_check(tmp, model, ref_copy, "--model tiny-tied");
    char *err = output(tmp, "err"), where[64];
    cr_assert_eq(rc, 2, "'%s': exit %d, expected 2:\n%s", text, rc, err);
    snprintf(where, sizeof where, "ref.jsonl:%ld:", at);
    cr_assert_not_null(strstr(err, where), "'%s': message does not name line %ld:\n%s", text, at, err);
    cr_assert_not_null(strstr(err, what), "'%s': message lacks '%s':\n%s", text, what, err);
    free(err);
}

Test(check_edits, malformed_reference_names_the_line)
{
    expect_malformed(4, "{\"model\": \"tiny-tied\", \"query\": \n", "not valid JSON");
    expect_malformed(7, "{\"model\": \"tiny-tied\", \"query\": \"q\", \"fp64\": {\"logit\": 1, \"score\": 0.7}}\n",
                     "\"document\"");
    expect_malformed(2, "{\"model\": \"tiny-tied\", \"query\": \"q\", \"document\": \"d\"}\n", "fp64");
    expect_malformed(9, "{\"query\": \"q\", \"document\": \"d\", \"fp64\": {\"logit_yes\": 1, \"score\": 0.7}}\n",
                     "logit_no");
    expect_malformed(3, "{\"query\": 3, \"document\": \"d\", \"fp64\": {\"logit\": 1, \"score\": 0.7}}\n",
                     "\"query\"");
    expect_malformed(5, "{\"query\": \"q\", \"document\": \"d\", \"ids\": [1, -2], \"fp64\": {\"logit\": 1, \"score\": 0.7}}\n",
                     "ids");
    expect_malformed(6, "{\"query\": \"q\", \"document\": \"d\", \"fp64\": {\"logit\": 1, \"score\": 2.0}}\n",
                     "not a probability");
    /* A malformed line of another model is still a malformed file. */
    long other = ref_lineno(&ref, "tiny-seqcls", 0);
    expect_malformed(other, "[]\n", "object");
}

Test(check_edits, usage_errors)
{
    char ref_path[1024];
    snprintf(ref_path, sizeof ref_path, "%s/scores_public.jsonl", tu_reference());
    cr_assert_eq(run_check(tmp, model, ref_path, "--tol-logit abc"), 2);
    cr_assert_eq(run_check(tmp, model, ref_path, "--tol-logit 0x10"), 2);
    cr_assert_eq(run_check(tmp, model, ref_path, "--bogus"), 2);
    cr_assert_eq(run_check(tmp, model, ref_path, "--model no-such-model"), 2);
    char *err = output(tmp, "err");
    cr_assert_not_null(strstr(err, "tiny-seqcls"), "should list the models there:\n%s", err);
    free(err);
    cr_assert_eq(run_check(tmp, model, "/nonexistent/ref.jsonl", ""), 2);
    cr_assert_eq(tu_system("'%s/qrr' check '%s' 2>/dev/null", tu_build(), model), 2);
    /* All three models' lines against one model: the other models' lines fail. */
    cr_assert_eq(run_check(tmp, model, ref_path, ""), 1);
}

Test(check_edits, a_reference_of_the_other_head_kind_fails_and_says_why)
{
    char ref_path[1024];
    snprintf(ref_path, sizeof ref_path, "%s/scores_public.jsonl", tu_reference());
    /* the sequence-classification model's lines against the yes/no model */
    int rc = run_check(tmp, model, ref_path, "--model tiny-seqcls");
    char *out = output(tmp, "out");
    cr_assert_eq(rc, 1, "exit %d:\n%s", rc, out);
    cr_expect(strstr(out, "the reference is of a single-logit head and the model has a yes/no "
                          "head"), "%s", out);
    free(out);
}
