/* test_runtime.c — the scoring API beyond single-pair parity: a request of N documents gives
 * the same scores as N requests of one, with and without the shared prefix and across chunk
 * boundaries; id input equals text input; bad arguments give their status and a message;
 * a context describes where it computes; one-document requests reuse the prompt head. */
#include <jansson.h>
#include <math.h>

#include "qrr.h"
#include "qrr_test_util.h"

static char tmp[256], path[1024];
static qrr_model *model;

static void setup(void)
{
    tu_tmpdir(tmp, sizeof tmp);
    tu_convert("tiny-tied", "f32", tmp, path, sizeof path);
    cr_assert_eq(qrr_model_open(path, qrr_model_default_params(), &model), QRR_OK, "%s",
                 qrr_last_error());
}

static void teardown(void)
{
    qrr_model_close(model);
    tu_system("rm -rf '%s'", tmp);
}

static qrr_ctx *make_ctx(int share, int max_batch_tokens)
{
    qrr_ctx_params cp = qrr_ctx_default_params();
    cp.n_threads = 2;
    cp.share_prefix = share;
    cp.max_batch_tokens = max_batch_tokens;
    qrr_ctx *c = NULL;
    cr_assert_eq(qrr_ctx_create(model, cp, &c), QRR_OK, "%s", qrr_last_error());
    return c;
}

/* Documents of very different lengths: a few words up to ~1500 tokens (with the smaller
 * workload, tu_small_workload, up to ~200 tokens: attention over 1500 tokens costs minutes
 * under an emulator; docs[2] stays longer than truncation_keeps_suffix's 120). */
#define N_DOCS 7
static char *docs[N_DOCS];
static void make_docs(void)
{
    const char *seeds[N_DOCS] = {"Beijing.", "The capital of China is Beijing.",
                                 "Gravity is a force that attracts two bodies towards each other. ",
                                 "北京是中国的首都。", "x", "Numbers 1 22 333 and more. ",
                                 "Seoul is the capital of Korea. "};
    const int full[N_DOCS] = {1, 1, 100, 30, 1, 3, 250}, small[N_DOCS] = {1, 1, 12, 4, 1, 3, 25};
    const int *repeats = tu_small_workload() ? small : full;
    for (int i = 0; i < N_DOCS; i++) {
        size_t n = strlen(seeds[i]);
        docs[i] = malloc(n * (size_t)repeats[i] + 1);
        for (int r = 0; r < repeats[i]; r++) memcpy(docs[i] + n * (size_t)r, seeds[i], n);
        docs[i][n * (size_t)repeats[i]] = '\0';
    }
}

TestSuite(runtime, .init = setup, .fini = teardown);

Test(runtime, batch_equals_one_at_a_time)
{
    make_docs();
    const char *q = "What is the capital of China?";
    float one[N_DOCS], logit_one[N_DOCS];
    qrr_ctx *single = make_ctx(0, 0);
    for (int i = 0; i < N_DOCS; i++)
        cr_assert_eq(qrr_ctx_score(single, q, (const char **)&docs[i], 1,
                                   qrr_score_default_params(), &one[i], &logit_one[i]), QRR_OK);
    /* shared prefix on/off, one chunk or many small ones */
    const int shares[] = {1, 0, 1}, chunks[] = {0, 0, 64};
    for (int v = 0; v < 3; v++) {
        qrr_ctx *c = make_ctx(shares[v], chunks[v]);
        float s[N_DOCS], l[N_DOCS];
        cr_assert_eq(qrr_ctx_score(c, q, (const char *const *)docs, N_DOCS,
                                   qrr_score_default_params(), s, l), QRR_OK, "%s",
                     qrr_last_error());
        qrr_stats st = qrr_ctx_last_stats(c);
        if (shares[v]) cr_expect_lt(st.tokens_computed, st.tokens, "the shared prefix was not shared");
        else cr_expect_eq(st.tokens_computed, st.tokens);
        for (int i = 0; i < N_DOCS; i++) {
            cr_expect_leq(fabsf(s[i] - one[i]), 1e-5f, "variant %d doc %d: %g vs %g", v, i, s[i], one[i]);
            cr_expect_leq(fabsf(l[i] - logit_one[i]), 1e-4f, "variant %d doc %d logit", v, i);
        }
        qrr_ctx_free(c);
    }
    qrr_ctx_free(single);
}

Test(runtime, ids_equal_text)
{
    make_docs();
    const char *q = "What is the capital of China?";
    qrr_ctx *c = make_ctx(1, 0);
    int32_t *ids[N_DOCS];
    size_t lens[N_DOCS];
    float by_text[N_DOCS], by_ids[N_DOCS];
    cr_assert_eq(qrr_ctx_score(c, q, (const char *const *)docs, N_DOCS,
                               qrr_score_default_params(), by_text, NULL), QRR_OK);
    for (int i = 0; i < N_DOCS; i++) {
        size_t n = 0;
        cr_assert_eq(qrr_model_prompt_ids(model, q, docs[i], qrr_score_default_params(), NULL, 0, &n),
                     QRR_ERR_BUFFER_TOO_SMALL);
        ids[i] = malloc(n * sizeof *ids[i]);
        cr_assert_eq(qrr_model_prompt_ids(model, q, docs[i], qrr_score_default_params(), ids[i], n,
                                          &lens[i]), QRR_OK);
    }
    cr_assert_eq(qrr_ctx_score_ids(c, (const int32_t *const *)ids, lens, N_DOCS, by_ids, NULL), QRR_OK);
    for (int i = 0; i < N_DOCS; i++) cr_expect_leq(fabsf(by_ids[i] - by_text[i]), 1e-6f);
    for (int i = 0; i < N_DOCS; i++) free(ids[i]);
    qrr_ctx_free(c);
}

Test(runtime, truncation_keeps_suffix)
{
    make_docs();
    qrr_score_params sp = qrr_score_default_params();
    sp.max_length = 120;
    int32_t ids[200];
    size_t n = 0;
    cr_assert_eq(qrr_model_prompt_ids(model, "q", docs[2], sp, ids, 200, &n), QRR_OK);
    cr_expect_eq(n, 120);
    /* The suffix "<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n" ends the prompt. */
    cr_expect_eq(ids[n - 1], 271);
    cr_expect_eq(ids[n - 2], 151668);
    sp.max_length = 20; /* not even room for prefix and suffix */
    cr_expect_eq(qrr_model_prompt_ids(model, "q", docs[2], sp, ids, 200, &n), QRR_ERR_INVALID_ARG);
    cr_expect(strstr(qrr_last_error(), "max_length") != NULL, "%s", qrr_last_error());
}

Test(runtime, bad_arguments)
{
    qrr_ctx *c = make_ctx(1, 0);
    float s;
    const char *bad_utf8 = "caf\xc3 au lait";
    cr_expect_eq(qrr_ctx_score(c, "q", &bad_utf8, 1, qrr_score_default_params(), &s, NULL),
                 QRR_ERR_UTF8);
    cr_expect(strstr(qrr_last_error(), "document 0") != NULL, "%s", qrr_last_error());
    cr_expect_eq(qrr_ctx_score(c, NULL, &bad_utf8, 1, qrr_score_default_params(), &s, NULL),
                 QRR_ERR_INVALID_ARG);
    int32_t too_big[] = {1, 2, 999999999};
    const int32_t *p = too_big;
    size_t len = 3;
    cr_expect_eq(qrr_ctx_score_ids(c, &p, &len, 1, &s, NULL), QRR_ERR_INVALID_ARG);
    cr_expect(strstr(qrr_last_error(), "vocabulary") != NULL, "%s", qrr_last_error());
    len = 0;
    cr_expect_eq(qrr_ctx_score_ids(c, &p, &len, 1, &s, NULL), QRR_ERR_INVALID_ARG);
    qrr_ctx_free(c);

    qrr_ctx_params cp = qrr_ctx_default_params();
    cp.n_threads = -1;
    cr_expect_eq(qrr_ctx_create(model, cp, &c), QRR_ERR_INVALID_ARG);

    qrr_model *m2 = NULL;
    cr_expect_eq(qrr_model_open("/nonexistent/model.qrr", qrr_model_default_params(), &m2), QRR_ERR_IO);
    cr_expect(strstr(qrr_last_error(), "/nonexistent/model.qrr") != NULL);
    cr_expect_null(m2);
}

/* A FIFO, a directory or a device in place of the file is refused at once: opening a FIFO
 * must not wait for a writer. */
Test(runtime, a_path_that_is_not_a_regular_file_is_refused_without_waiting, .timeout = 30)
{
    char dir[256], fifo[300];
    tu_tmpdir(dir, sizeof dir);
    snprintf(fifo, sizeof fifo, "%s/model.qrr", dir);
    cr_assert_eq(mkfifo(fifo, 0600), 0);
    const char *paths[] = {fifo, dir, "/dev/null"};
    for (int i = 0; i < 3; i++) {
        qrr_model *m2 = NULL;
        cr_expect_eq(qrr_model_open(paths[i], qrr_model_default_params(), &m2), QRR_ERR_IO,
                     "%s", paths[i]);
        cr_expect(strstr(qrr_last_error(), "not a regular file"), "%s", qrr_last_error());
        cr_expect_null(m2);
    }
    tu_system("rm -rf '%s'", dir);
}

/* Device cuda with the module at QRR_CUDA_MODULE=module: the status, and the error's text
 * (or "" for a context, which is freed). */
static int cuda_ctx_with(const char *module, char *err, size_t n)
{
    cr_assert_eq(setenv("QRR_CUDA_MODULE", module, 1), 0);
    qrr_ctx_params cp = qrr_ctx_default_params();
    cp.device = QRR_DEVICE_CUDA;
    qrr_ctx *c = NULL;
    int rc = qrr_ctx_create(model, cp, &c);
    snprintf(err, n, "%s", rc == QRR_OK ? "" : qrr_last_error());
    if (rc == QRR_OK) qrr_ctx_free(c);
    else cr_expect_null(c);
    unsetenv("QRR_CUDA_MODULE");
    return rc;
}

Test(runtime, device_cuda_loads_the_cuda_module_of_this_build_or_says_why, .timeout = 120)
{
    char err[600], p[1400];
    /* No module there: unsupported, naming where it looked and how to get one. */
    snprintf(p, sizeof p, "%s/no/libqrr_cuda.so.0", tmp);
    cr_expect_eq(cuda_ctx_with(p, err, sizeof err), QRR_ERR_UNSUPPORTED);
    cr_expect(strstr(err, p) && strstr(err, "QRR_CUDA_MODULE") && strstr(err, "nvcc"), "%s", err);

    /* A shared library that is no module (libqrr itself). */
    snprintf(p, sizeof p, "%s/libqrr.so", tu_build());
    cr_expect_eq(cuda_ctx_with(p, err, sizeof err), QRR_ERR_UNSUPPORTED);
    cr_expect(strstr(err, "not a qrr CUDA module"), "%s", err);

    /* Modules of other builds, refused by their ABI number or their version, never called. */
    const struct { const char *name, *fields, *says; } other[] = {
        {"other_abi", ".abi = QRR_CUDA_MODULE_ABI + 1", "has module ABI"},
        {"other_version", ".abi = QRR_CUDA_MODULE_ABI, .version = \"0.0.1\"", "is from qrr 0.0.1"}};
    for (size_t i = 0; i < sizeof other / sizeof other[0]; i++) {
        char src[600], so[600];
        snprintf(src, sizeof src, "%s/%s.c", tmp, other[i].name);
        snprintf(so, sizeof so, "%s/%s.so", tmp, other[i].name);
        FILE *f = fopen(src, "w");
        cr_assert_not_null(f);
        fprintf(f, "#include \"cuda_model.h\"\n"
                   "const qrr_cuda_module *qrr_cuda_module_v1(void)\n"
                   "{\n"
                   "    static const qrr_cuda_module t = {%s};\n"
                   "    return &t;\n"
                   "}\n", other[i].fields);
        fclose(f);
        cr_assert_eq(tu_system("cc -shared -fPIC -Iinclude -Iformat -Ikernels/cpu -Iruntime -o '%s' '%s'",
                               so, src), 0, "could not build the stand-in module %s", so);
        cr_expect_eq(cuda_ctx_with(so, err, sizeof err), QRR_ERR_UNSUPPORTED);
        cr_expect(strstr(err, other[i].says) && strstr(err, "use the module built with this libqrr"),
                  "%s", err);
    }

    /* A CUDA build's own module loads: a context on a GPU machine, else the module's own
     * "no CUDA device" (QRR_ERR_DEVICE), which only the loaded module can say. */
    snprintf(p, sizeof p, "%s/libqrr_cuda.so.0", tu_build());
    if (access(p, F_OK) != 0) {
        cr_log_info("%s: none in this build (CUDA=0); its loading is not tried", p);
        return;
    }
    int rc = cuda_ctx_with(p, err, sizeof err);
    cr_expect(rc == QRR_OK || (rc == QRR_ERR_DEVICE && strstr(err, "no CUDA device")), "%s: %s",
              qrr_status_str(rc), err);
}

Test(runtime, open_from_memory_scores_the_same)
{
    FILE *f = fopen(path, "rb");
    cr_assert_not_null(f);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    void *buf = aligned_alloc(4096, ((size_t)n + 4095) / 4096 * 4096);
    cr_assert_eq(fread(buf, 1, (size_t)n, f), (size_t)n);
    fclose(f);
    qrr_model *m2 = NULL;
    cr_assert_eq(qrr_model_open_memory(buf, (size_t)n, qrr_model_default_params(), &m2), QRR_OK,
                 "%s", qrr_last_error());
    qrr_ctx_params cp = qrr_ctx_default_params();
    cp.n_threads = 1;
    qrr_ctx *a = NULL, *b = NULL;
    cr_assert_eq(qrr_ctx_create(m2, cp, &a), QRR_OK);
    cr_assert_eq(qrr_ctx_create(model, cp, &b), QRR_OK);
    const char *doc = "The capital of China is Beijing.";
    float sa, sb;
    cr_assert_eq(qrr_ctx_score(a, "capital?", &doc, 1, qrr_score_default_params(), &sa, NULL), QRR_OK);
    cr_assert_eq(qrr_ctx_score(b, "capital?", &doc, 1, qrr_score_default_params(), &sb, NULL), QRR_OK);
    cr_expect_eq(sa, sb);
    qrr_ctx_free(a);
    qrr_ctx_free(b);
    qrr_model_close(m2);

    /* a buffer off the 64-byte boundary would misalign every tensor: refused, by name */
    unsigned char *shifted = aligned_alloc(4096, ((size_t)n + 16 + 4095) / 4096 * 4096);
    cr_assert_not_null(shifted);
    memcpy(shifted + 16, buf, (size_t)n);
    m2 = NULL;
    cr_expect_eq(qrr_model_open_memory(shifted + 16, (size_t)n, qrr_model_default_params(), &m2),
                 QRR_ERR_ALIGNMENT);
    cr_expect(strstr(qrr_last_error(), "aligned to 64 bytes"), "%s", qrr_last_error());
    cr_expect_null(m2);
    free(shifted);
    free(buf);
}

/* The prompt ids of (q, doc) (malloc'ed). */
static int32_t *prompt_of(const char *q, const char *doc, size_t *n)
{
    cr_assert_eq(qrr_model_prompt_ids(model, q, doc, qrr_score_default_params(), NULL, 0, n),
                 QRR_ERR_BUFFER_TOO_SMALL);
    int32_t *ids = malloc(*n * sizeof *ids);
    cr_assert_eq(qrr_model_prompt_ids(model, q, doc, qrr_score_default_params(), ids, *n, n),
                 QRR_OK);
    return ids;
}

Test(runtime, groups_score_as_each_group_alone)
{
    /* 12 requests of 1 to 7 documents with different queries: more groups than prefix slots
     * fit in one chunk, so slots are reused; chunk sizes from tiny to default. */
    make_docs();
    enum { G = 12 };
    const char *queries[] = {"What is the capital of China?", "gravity", "Numbers?", "北京"};
    int32_t *ids[G][N_DOCS];
    size_t lens[G][N_DOCS], n_docs[G];
    float alone[G][N_DOCS], got[G][N_DOCS], logits[G][N_DOCS];
    qrr_group groups[G];
    qrr_ctx *single = make_ctx(1, 0);
    for (int g = 0; g < G; g++) {
        n_docs[g] = 1 + (size_t)(g * 5 % N_DOCS);
        for (size_t i = 0; i < n_docs[g]; i++)
            ids[g][i] = prompt_of(queries[g % 4], docs[(g + i) % N_DOCS], &lens[g][i]);
        cr_assert_eq(qrr_ctx_score_ids(single, (const int32_t *const *)ids[g], lens[g], n_docs[g],
                                       alone[g], NULL), QRR_OK, "%s", qrr_last_error());
        groups[g] = (qrr_group){(const int32_t *const *)ids[g], lens[g], n_docs[g], got[g],
                                logits[g]};
    }
    const int chunks[] = {0, 64, 512, 100000};
    for (int v = 0; v < 4; v++) {
        qrr_ctx *c = make_ctx(1, chunks[v]);
        cr_assert_eq(qrr_ctx_score_groups(c, groups, G), QRR_OK, "%s", qrr_last_error());
        qrr_stats st = qrr_ctx_last_stats(c);
        cr_expect_lt(st.tokens_computed, st.tokens, "no prefix was shared");
        for (int g = 0; g < G; g++)
            for (size_t i = 0; i < n_docs[g]; i++) {
                cr_expect_leq(fabsf(got[g][i] - alone[g][i]), 1e-5f, "chunk %d, group %d doc %zu: "
                              "%g in the batch, %g alone", chunks[v], g, i, got[g][i], alone[g][i]);
                cr_expect_leq(fabsf(got[g][i] - 1.0f / (1.0f + expf(-logits[g][i]))), 1e-6f);
            }
        qrr_ctx_free(c);
    }
    /* a bad sequence in the last group: refused, named, and nothing computed */
    const int32_t *bad_ids[] = {ids[0][0], NULL};
    size_t bad_lens[] = {lens[0][0], 3};
    qrr_group bad[] = {groups[0], groups[1], {bad_ids, bad_lens, 2, got[2], NULL}};
    cr_expect_eq(qrr_ctx_score_groups(single, bad, 3), QRR_ERR_INVALID_ARG);
    cr_expect(strstr(qrr_last_error(), "group 2, sequence 1") != NULL, "%s", qrr_last_error());
    cr_expect_eq(qrr_ctx_last_stats(single).tokens_computed, 0);
    cr_expect_eq(qrr_ctx_score_groups(single, NULL, 2), QRR_ERR_INVALID_ARG);
    cr_expect_eq(qrr_ctx_score_groups(single, groups, 0), QRR_OK);
    qrr_ctx_free(single);
    for (int g = 0; g < G; g++)
        for (size_t i = 0; i < n_docs[g]; i++) free(ids[g][i]);
}

Test(runtime, describe_names_the_device)
{
    qrr_ctx *c = make_ctx(1, 0);
    char buf[256], small[8];
    cr_assert_eq(qrr_ctx_describe(c, buf, sizeof buf), QRR_OK, "%s", qrr_last_error());
    cr_expect(strncmp(buf, "cpu, 2 threads, ", 16) == 0, "%s", buf);
    cr_expect(strstr(buf, "GEMM kernels") != NULL, "%s", buf);
    /* the model's dtype and the kernels for it, as qrr_cpu_kernels() names them */
    char dtype[16], impl[32], want[64];
    cr_assert_eq(sscanf(buf, "cpu, 2 threads, %15s %31s GEMM kernels", dtype, impl), 2, "%s", buf);
    snprintf(want, sizeof want, "GEMM %s,", impl);
    cr_expect(strstr(qrr_cpu_kernels(), want) != NULL, "'%s' vs '%s'", buf, qrr_cpu_kernels());
    cr_expect(strstr(buf, " attention") != NULL, "%s", buf);
    cr_expect_eq(qrr_ctx_describe(c, small, sizeof small), QRR_ERR_BUFFER_TOO_SMALL);
    cr_expect_eq(strlen(small), sizeof small - 1, "cut short, still terminated");
    cr_expect_eq(qrr_ctx_describe(NULL, buf, sizeof buf), QRR_ERR_INVALID_ARG);
    qrr_ctx_free(c);
}

/* One-document requests, each with its own query: after the first, every request attends to
 * the context's prompt head instead of computing the system turn and instruction again, and
 * scores as with no sharing at all; a custom instruction shares the system turn only; ids
 * that do not start like a prompt, and a context with sharing off, compute every token. */
Test(runtime, one_document_requests_reuse_the_prompt_head)
{
    make_docs();
    const char *queries[] = {"What is the capital of China?", "Who wrote Hamlet?",
                             "How far is the Moon?", "北京在哪里?"};
    qrr_ctx *shared = make_ctx(1, 0), *whole = make_ctx(0, 0);
    qrr_score_params sp = qrr_score_default_params(), custom = sp;
    custom.instruction = "Judge whether the passage answers the question.";
    for (int r = 0; r < 8; r++) {
        const char *doc = docs[r % N_DOCS];
        qrr_score_params p = r == 5 ? custom : sp;
        float s1, l1, s0, l0;
        cr_assert_eq(qrr_ctx_score(shared, queries[r % 4], &doc, 1, p, &s1, &l1), QRR_OK, "%s",
                     qrr_last_error());
        cr_assert_eq(qrr_ctx_score(whole, queries[r % 4], &doc, 1, p, &s0, &l0), QRR_OK);
        qrr_stats st = qrr_ctx_last_stats(shared), st0 = qrr_ctx_last_stats(whole);
        cr_expect_eq(st.tokens, st0.tokens);
        cr_expect_eq(st0.tokens_computed, st0.tokens, "sharing off computes every token");
        /* the system turn alone is 39 tokens; with the default instruction the head runs on
         * to "<Query>:" */
        if (r > 0)
            cr_expect_leq(st.tokens_computed + (r == 5 ? 39 : 50), st.tokens,
                          "request %d: %zu of %zu tokens computed", r, st.tokens_computed,
                          st.tokens);
        cr_expect_leq(fabsf(s1 - s0), 1e-5f, "request %d: %g with the head, %g without", r, s1, s0);
        cr_expect_leq(fabsf(l1 - l0), 1e-4f, "request %d logit", r);
    }
    const int32_t odd[] = {9693, 2152, 151644, 8948, 198, 1, 2, 3, 4, 5, 6, 7, 8};
    const int32_t *ids = odd;
    size_t n = sizeof odd / sizeof odd[0];
    float s;
    cr_assert_eq(qrr_ctx_score_ids(shared, &ids, &n, 1, &s, NULL), QRR_OK, "%s", qrr_last_error());
    cr_expect_eq(qrr_ctx_last_stats(shared).tokens_computed, n);
    qrr_ctx_free(shared);
    qrr_ctx_free(whole);
}
