/* test_cli.c — the qrr command and the example program as a user runs them: info (text and
 * JSON), tokenize, score with a bad line among good ones, exit codes, the reranking example. */
#include <jansson.h>
#include <math.h>

#include "qrr_test_util.h"

static char tmp[256], model[1024];

static void setup(void)
{
    tu_tmpdir(tmp, sizeof tmp);
    tu_convert("tiny-tied", "f16", tmp, model, sizeof model);
}

static void teardown(void) { tu_system("rm -rf '%s'", tmp); }

TestSuite(cli, .init = setup, .fini = teardown);

Test(cli, info_text_and_json)
{
    cr_assert_eq(tu_system("'%s/qrr' info '%s' > '%s/info.txt'", tu_build(), model, tmp), 0);
    char p[1100];
    snprintf(p, sizeof p, "%s/info.txt", tmp);
    char *text = tu_slurp(p, NULL);
    cr_expect(strstr(text, "inferred") != NULL, "labels not shown as inferred:\n%s", text);
    cr_expect(strstr(text, "model.layers.2.mlp.down_proj.weight") != NULL);
    free(text);
    cr_assert_eq(tu_system("'%s/qrr' info --json '%s' > '%s/info.json'", tu_build(), model, tmp), 0);
    snprintf(p, sizeof p, "%s/info.json", tmp);
    json_t *j = json_load_file(p, 0, NULL);
    cr_assert_not_null(j, "qrr info --json is not JSON");
    cr_expect_eq(json_integer_value(json_object_get(json_object_get(j, "model"), "layers")), 3);
    cr_expect_eq(json_integer_value(json_object_get(json_object_get(j, "head"), "yes_id")), 9693);
    json_decref(j);
    cr_expect_eq(tu_system("'%s/qrr' info /nonexistent.qrr 2>/dev/null", tu_build()), 1);
    cr_expect_eq(tu_system("'%s/qrr' info 2>/dev/null", tu_build()), 2);
    cr_expect_eq(tu_system("'%s/qrr' frobnicate 2>/dev/null", tu_build()), 2);
}

Test(cli, tokenize_matches_reference)
{
    char ref[1024];
    snprintf(ref, sizeof ref, "%s/tokenizer_public.jsonl", tu_reference());
    cr_assert_eq(tu_system("head -n 60 '%s' > '%s/in.jsonl' && '%s/qrr' tokenize '%s' < '%s/in.jsonl' > '%s/out.jsonl'",
                           ref, tmp, tu_build(), model, tmp, tmp), 0);
    char in[1100], out[1100];
    snprintf(in, sizeof in, "%s/in.jsonl", tmp);
    snprintf(out, sizeof out, "%s/out.jsonl", tmp);
    FILE *a = fopen(in, "r"), *b = fopen(out, "r");
    char *la = NULL, *lb = NULL;
    size_t ca = 0, cb = 0;
    int lines = 0;
    while (getline(&la, &ca, a) > 0) {
        cr_assert(getline(&lb, &cb, b) > 0, "output ends early at line %d", lines + 1);
        json_t *x = json_loads(la, 0, NULL), *y = json_loads(lb, 0, NULL);
        cr_expect(json_equal(json_object_get(x, "ids"), json_object_get(y, "ids")),
                  "line %d differs", lines + 1);
        json_decref(x);
        json_decref(y);
        lines++;
    }
    cr_expect_eq(lines, 60);
    free(la);
    free(lb);
    fclose(a);
    fclose(b);
}

Test(cli, score_bad_line_among_good_ones)
{
    char in[1100], out[1100];
    snprintf(in, sizeof in, "%s/score.jsonl", tmp);
    snprintf(out, sizeof out, "%s/scores.jsonl", tmp);
    FILE *f = fopen(in, "w");
    fprintf(f, "{\"query\": \"What is the capital of China?\", \"document\": \"The capital of China is Beijing.\"}\n");
    fprintf(f, "{\"query\": \"What is the capital of China?\", \"document\": 42}\n");
    fprintf(f, "not json\n");
    fprintf(f, "{\"query\": \"What is the capital of China?\", \"document\": \"Gravity is a force.\", \"instruction\": null}\n");
    fprintf(f, "{\"ids\": [151644, 8948, 198]}\n");
    fclose(f);
    cr_expect_eq(tu_system("'%s/qrr' score '%s' --threads 2 < '%s' > '%s' 2>/dev/null", tu_build(),
                           model, in, out), 1, "a bad line must make the exit status 1");
    FILE *r = fopen(out, "r");
    char *line = NULL;
    size_t cap = 0;
    const char *expect[] = {"score", "error", "error", "score", "score"};
    for (int i = 0; i < 5; i++) {
        cr_assert(getline(&line, &cap, r) > 0, "missing output line %d", i + 1);
        json_t *o = json_loads(line, 0, NULL);
        cr_assert_not_null(o);
        cr_expect_not_null(json_object_get(o, expect[i]), "line %d: %s", i + 1, line);
        if (i == 1) cr_expect(strstr(json_string_value(json_object_get(o, "error")), "line 2") != NULL);
        if (i == 0) {
            double s = json_number_value(json_object_get(o, "score"));
            double l = json_number_value(json_object_get(o, "logit"));
            cr_expect(fabs(s - 1.0 / (1.0 + exp(-l))) < 1e-6, "score is not sigmoid(logit)");
        }
        json_decref(o);
    }
    cr_expect(getline(&line, &cap, r) < 0, "extra output lines");
    free(line);
    fclose(r);
    cr_expect_eq(tu_system("'%s/qrr' score '%s' --threads -3 </dev/null 2>/dev/null", tu_build(), model), 2);
    cr_expect_eq(tu_system("'%s/qrr' score '%s' --device tpu </dev/null 2>/dev/null", tu_build(), model), 2);
}

Test(cli, example_prints_sorted)
{
    char out[1100];
    snprintf(out, sizeof out, "%s/example.txt", tmp);
    cr_assert_eq(tu_system("'%s/examples/rerank' '%s' 'What is the capital of China?' "
                           "'Gravity is a force.' 'The capital of China is Beijing.' 'Seoul.' > '%s'",
                           tu_build(), model, out), 0);
    FILE *f = fopen(out, "r");
    double prev = 2.0, s;
    char doc[256];
    int n = 0;
    while (fscanf(f, "%lf\t%255[^\n]\n", &s, doc) == 2) {
        cr_expect_leq(s, prev, "not sorted best first");
        cr_expect(s >= 0.0 && s <= 1.0);
        prev = s;
        n++;
    }
    fclose(f);
    cr_expect_eq(n, 3);
}
