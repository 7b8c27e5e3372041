/* test_parity.c — end-to-end parity with Transformers: each reference checkpoint converted
 * at f32, f16 and int8, every reference case's prompt ids identical and its logit
 * difference and score within the tolerances (docs/ci.md) of the fp64 reference (on the CPU,
 * one case at a time, so that all but the first attend to the context's prompt head). */
#include <jansson.h>
#include <math.h>

#include "qrr.h"
#include "qrr_test_util.h"

typedef struct tolerance {
    double delta, score;
} tolerance;

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Truth from a reference line: Δ (logit_yes − logit_no, or the single logit) and score. */
static void truth(json_t *line, const char *precision, double *delta, double *score)
{
    json_t *p = json_object_get(line, precision);
    json_t *logit = json_object_get(p, "logit");
    *delta = logit ? json_number_value(logit)
                   : json_number_value(json_object_get(p, "logit_yes")) -
                         json_number_value(json_object_get(p, "logit_no"));
    *score = json_number_value(json_object_get(p, "score"));
}

static const tolerance fp16_compute = {0.05, 5e-3}; /* CUDA: fp16 GEMMs */

static void check_model(const char *name, const char *dtype, tolerance tol)
{
    char tmp[256], path[1024], ref[1024];
    tu_tmpdir(tmp, sizeof tmp);
    tu_convert(name, dtype, tmp, path, sizeof path);
    qrr_model *m = NULL;
    cr_assert_eq(qrr_model_open(path, qrr_model_default_params(), &m), QRR_OK, "%s",
                 qrr_last_error());
    qrr_ctx *ctx = NULL;
    qrr_ctx_params cp = qrr_ctx_default_params();
    cp.n_threads = 2;
    /* QRR_TEST_DEVICE=cuda runs the same cases on the GPU, with fp16 compute's tolerance,
     * and the CUDA module of the build under test (this program lives in its tests/). */
    const char *dev = getenv("QRR_TEST_DEVICE");
    if (dev && !strcmp(dev, "cuda")) {
        cp.device = QRR_DEVICE_CUDA;
        if (tol.delta < fp16_compute.delta) tol = fp16_compute;
        char module[1100];
        snprintf(module, sizeof module, "%s/libqrr_cuda.so.0", tu_build());
        setenv("QRR_CUDA_MODULE", module, 0);
    }
    cr_assert_eq(qrr_ctx_create(m, cp, &ctx), QRR_OK, "%s", qrr_last_error());

    snprintf(ref, sizeof ref, "%s/scores_public.jsonl", tu_reference());
    FILE *f = fopen(ref, "r");
    cr_assert_not_null(f, "cannot read %s", ref);
    char *buf = NULL;
    size_t cap = 0;
    double errs[64];
    int cases = 0, on_head = 0;
    double worst_delta = 0, worst_score = 0;
    while (getline(&buf, &cap, f) > 0) {
        json_t *line = json_loads(buf, 0, NULL);
        cr_assert_not_null(line);
        if (strcmp(json_string_value(json_object_get(line, "model")), name)) {
            json_decref(line);
            continue;
        }
        const char *query = json_string_value(json_object_get(line, "query"));
        const char *doc = json_string_value(json_object_get(line, "document"));
        json_t *ins = json_object_get(line, "instruction");
        json_t *ml = json_object_get(line, "max_length");
        qrr_score_params sp = qrr_score_default_params();
        sp.instruction = json_is_string(ins) ? json_string_value(ins) : NULL;
        sp.max_length = json_is_integer(ml) ? (int)json_integer_value(ml) : 0;

        /* Prompt ids identical to the reference. */
        json_t *want = json_object_get(line, "ids");
        int32_t ids[16384];
        size_t n = 0;
        cr_assert_eq(qrr_model_prompt_ids(m, query, doc, sp, ids, 16384, &n), QRR_OK, "%s",
                     qrr_last_error());
        cr_assert_eq(n, json_array_size(want), "%s case %d: %zu prompt ids, reference has %zu",
                     name, cases, n, json_array_size(want));
        for (size_t i = 0; i < n; i++)
            cr_assert_eq(ids[i], json_integer_value(json_array_get(want, i)),
                         "%s case %d: id %zu differs", name, cases, i);

        float score, logit;
        cr_assert_eq(qrr_ctx_score(ctx, query, &doc, 1, sp, &score, &logit), QRR_OK, "%s",
                     qrr_last_error());
        qrr_stats st = qrr_ctx_last_stats(ctx);
        on_head += st.tokens_computed < st.tokens;
        double d64, s64;
        truth(line, "fp64", &d64, &s64);
        double ed = fabs(logit - d64), es = fabs(score - s64);
        cr_expect_leq(ed, tol.delta, "%s %s case %d: |Δ − Δ64| = %.3g > %.3g (Δ %.6f, ref %.6f)",
                      name, dtype, cases, ed, tol.delta, logit, d64);
        cr_expect_leq(es, tol.score, "%s %s case %d: |score − score64| = %.3g > %.3g", name,
                      dtype, cases, es, tol.score);
        errs[cases++] = ed;
        if (ed > worst_delta) worst_delta = ed;
        if (es > worst_score) worst_score = es;
        json_decref(line);
    }
    free(buf);
    fclose(f);
    cr_assert_eq(cases, 15, "%s: expected 15 reference cases, found %d", name, cases);
    /* On the CPU every case after the first attended to the context's prompt head, so the
     * tolerances above hold for that path too. */
    if (cp.device == QRR_DEVICE_CPU)
        cr_expect_geq(on_head, cases - 1, "%s: %d of %d cases used the prompt head", name,
                      on_head, cases);
    qsort(errs, (size_t)cases, sizeof *errs, cmp_double);
    cr_log_info("parity %-11s %-4s: 15 cases, Δ error max %.3g median %.3g, score error max %.3g",
                name, dtype, worst_delta, errs[cases / 2], worst_score);
    qrr_ctx_free(ctx);
    qrr_model_close(m);
    tu_system("rm -rf '%s'", tmp);
}

static const tolerance exact = {1e-4, 1e-5};      /* f32 file, or f16 from bf16 (lossless) */
static const tolerance f16_of_f32 = {1e-2, 3e-3}; /* f16 rounding of an fp32 checkpoint */
static const tolerance int8 = {0.25, 0.06};

Test(parity, tiny_tied_f32) { check_model("tiny-tied", "f32", exact); }
Test(parity, tiny_tied_f16) { check_model("tiny-tied", "f16", exact); }
Test(parity, tiny_tied_int8) { check_model("tiny-tied", "int8", int8); }
Test(parity, tiny_untied_f32) { check_model("tiny-untied", "f32", exact); }
Test(parity, tiny_untied_f16) { check_model("tiny-untied", "f16", exact); }
Test(parity, tiny_untied_int8) { check_model("tiny-untied", "int8", int8); }
Test(parity, tiny_seqcls_f32) { check_model("tiny-seqcls", "f32", exact); }
Test(parity, tiny_seqcls_f16) { check_model("tiny-seqcls", "f16", f16_of_f32); }
Test(parity, tiny_seqcls_int8) { check_model("tiny-seqcls", "int8", int8); }
