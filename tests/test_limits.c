/* test_limits.c — scoring at the edges of its inputs (docs/security.md): a 1 MB document is
 * truncated to max_length with the suffix kept; empty query, documents and instruction are
 * scored; 10,000 documents in one request keep memory bounded; max_length outside what the
 * prompt or the model allows is refused; a model whose weights overflow fp32 makes scoring
 * fail with QRR_ERR_NUMERIC instead of returning NaN. Uses the tiny-tied reference model. */
#include <math.h>
#include <sys/resource.h>
#include <time.h>

#include "hf_config.h"
#include "qrr.h"
#include "qrr_file.h"
#include "qrr_test_util.h"
#include "qrr_writer.h"

static tu_tiny fx;
static qrr_model *model;
static qrr_ctx *ctx;
static const char *tmp, *path;

static void setup(void)
{
    tu_tiny_open(&fx);
    model = fx.model, ctx = fx.ctx, tmp = fx.tmp, path = fx.path;
}

static void teardown(void) { tu_tiny_close(&fx); }

TestSuite(limits, .init = setup, .fini = teardown, .timeout = 120);

/* Token ids of text through the model's tokenizer (malloc'ed). */
static int32_t *tokenize(const char *text, size_t *n)
{
    int rc = qrr_model_tokenize(model, text, strlen(text), NULL, 0, n);
    cr_assert(rc == QRR_ERR_BUFFER_TOO_SMALL || (rc == QRR_OK && *n == 0), "%s", qrr_last_error());
    int32_t *ids = malloc((*n + 1) * sizeof *ids);
    cr_assert_eq(qrr_model_tokenize(model, text, strlen(text), ids, *n, n), QRR_OK);
    return ids;
}

/* The prompt of (query, doc) as ids (malloc'ed). */
static int32_t *prompt(const char *query, const char *doc, qrr_score_params sp, size_t *n)
{
    int rc = qrr_model_prompt_ids(model, query, doc, sp, NULL, 0, n);
    cr_assert(rc == QRR_ERR_BUFFER_TOO_SMALL, "prompt_ids sizing: %s", qrr_last_error());
    int32_t *ids = malloc(*n * sizeof *ids);
    cr_assert_eq(qrr_model_prompt_ids(model, query, doc, sp, ids, *n, n), QRR_OK, "%s",
                 qrr_last_error());
    return ids;
}

/* The prompt starts with the prefix's ids and ends with the suffix's ids. */
static void assert_framed(const int32_t *ids, size_t n)
{
    size_t np, ns;
    int32_t *pre = tokenize(QRR_DEFAULT_PREFIX, &np), *suf = tokenize(QRR_DEFAULT_SUFFIX, &ns);
    cr_assert_gt(n, np + ns);
    cr_assert_arr_eq(ids, pre, np * sizeof *ids, "the prompt does not start with the prefix");
    cr_assert_arr_eq(ids + n - ns, suf, ns * sizeof *ids, "the prompt does not end with the suffix");
    free(pre);
    free(suf);
}

/* n bytes of varied text: words, digits, punctuation, CJK and an emoji. */
static char *big_text(size_t n)
{
    static const char piece[] = "The river runs 1234 km; 北京是中国的首都。 Émile's café 😀 — "
                                "and\tthen\n some   spaces. ";
    char *s = malloc(n + 1);
    size_t k = sizeof piece - 1;
    for (size_t i = 0; i < n; i += k) memcpy(s + i, piece, n - i < k ? n - i : k);
    /* Cut back to a whole UTF-8 character. */
    while (n > 0 && ((unsigned char)s[n] & 0xC0) == 0x80) n--;
    s[n] = '\0';
    return s;
}

Test(limits, one_megabyte_document)
{
    char *doc = big_text(1u << 20);
    const char *q = "Which river is the longest?";
    double t0 = tu_now();
    size_t n;
    int32_t *ids = prompt(q, doc, qrr_score_default_params(), &n);
    double t_prompt = tu_now() - t0;
    /* Default max_length: the converter's default, 8192 tokens (docs/qconvert.md). */
    cr_assert_eq(n, 8192, "a 1 MB document gives a prompt of %zu tokens", n);
    assert_framed(ids, n);
    free(ids);

    /* Scored at a smaller max_length to stay fast; equal to scoring its prompt ids. */
    qrr_score_params sp = qrr_score_default_params();
    sp.max_length = 512;
    ids = prompt(q, doc, sp, &n);
    cr_assert_eq(n, 512);
    assert_framed(ids, n);
    float s = -1, l = NAN, s_ids = -1, l_ids = NAN;
    const char *docs[] = {doc};
    t0 = tu_now();
    cr_assert_eq(qrr_ctx_score(ctx, q, docs, 1, sp, &s, &l), QRR_OK, "%s", qrr_last_error());
    double t_score = tu_now() - t0;
    cr_assert(isfinite(s) && isfinite(l) && s >= 0 && s <= 1, "score %g logit %g", s, l);
    const int32_t *pid = ids;
    cr_assert_eq(qrr_ctx_score_ids(ctx, &pid, &n, 1, &s_ids, &l_ids), QRR_OK);
    cr_assert(s == s_ids && l == l_ids, "text %g/%g vs ids %g/%g", s, l, s_ids, l_ids);
    free(ids);
    fprintf(stderr, "limits: 1 MiB document: prompt (tokenize + truncate) %.2f s, "
                    "scored at max_length 512 in %.2f s\n", t_prompt, t_score);

    /* A max_length past the model's positions is refused by scoring, not computed. */
    sp.max_length = 1000000;
    cr_assert_eq(qrr_ctx_score(ctx, q, docs, 1, sp, &s, &l), QRR_ERR_INVALID_ARG);
    cr_assert(strstr(qrr_last_error(), "positions"), "message: %s", qrr_last_error());
    free(doc);
}

Test(limits, empty_query_documents_and_instruction)
{
    const char *docs[] = {"", "", "A document.", ""};
    float s[4], l[4];
    cr_assert_eq(qrr_ctx_score(ctx, "", docs, 4, qrr_score_default_params(), s, l), QRR_OK, "%s",
                 qrr_last_error());
    for (int i = 0; i < 4; i++)
        cr_assert(isfinite(s[i]) && isfinite(l[i]) && s[i] >= 0 && s[i] <= 1, "doc %d: %g", i, s[i]);
    cr_assert(s[0] == s[1] && s[1] == s[3], "equal empty documents scored differently");

    qrr_score_params sp = qrr_score_default_params();
    sp.instruction = "";
    cr_assert_eq(qrr_ctx_score(ctx, "", docs, 1, sp, s, l), QRR_OK, "%s", qrr_last_error());
    cr_assert(isfinite(s[0]) && isfinite(l[0]));
    size_t n;
    int32_t *ids = prompt("", "", sp, &n);
    assert_framed(ids, n);
    free(ids);

    /* No documents: nothing to do, nothing written. */
    s[0] = -7;
    cr_assert_eq(qrr_ctx_score(ctx, "", docs, 0, sp, s, l), QRR_OK);
    cr_assert_eq(s[0], -7);
}

Test(limits, max_length_edges)
{
    size_t np, ns;
    free(tokenize(QRR_DEFAULT_PREFIX, &np));
    free(tokenize(QRR_DEFAULT_SUFFIX, &ns));
    const char *docs[] = {"some document text"};
    float s, l;
    qrr_score_params sp = qrr_score_default_params();
    sp.max_length = (int)(np + ns); /* no room for a single body token */
    cr_assert_eq(qrr_ctx_score(ctx, "q", docs, 1, sp, &s, &l), QRR_ERR_INVALID_ARG);
    cr_assert(strstr(qrr_last_error(), "max_length"), "message: %s", qrr_last_error());
    sp.max_length = (int)(np + ns + 1);
    size_t n;
    int32_t *ids = prompt("q", docs[0], sp, &n);
    cr_assert_eq(n, np + ns + 1);
    assert_framed(ids, n);
    free(ids);
    cr_assert_eq(qrr_ctx_score(ctx, "q", docs, 1, sp, &s, &l), QRR_OK, "%s", qrr_last_error());
    cr_assert(isfinite(s));
    sp.max_length = -1;
    cr_assert_eq(qrr_ctx_score(ctx, "q", docs, 1, sp, &s, &l), QRR_ERR_INVALID_ARG);
}

static long peak_rss_kib(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_maxrss;
}

Test(limits, ten_thousand_documents_bounded_memory)
{
    /* With the smaller workload (tu_small_workload) 600 documents after 300 (three groups of
     * 256, after two): 10,000 take about ten minutes under an emulator. */
    const int N = tu_small_workload() ? 600 : 10000, WARM = tu_small_workload() ? 300 : 512;
    char **docs = malloc(N * sizeof *docs);
    for (int i = 0; i < N; i++) {
        char buf[160];
        snprintf(buf, sizeof buf, "Document %d: topic %d, %s.", i, i % 97, i % 3 ? "yes" : "no");
        docs[i] = strdup(buf);
    }
    float *s = malloc(N * sizeof *s), *l = malloc(N * sizeof *l);
    const char *q = "Which documents are about topic 42?";
    /* Everything but the request itself is in place; a request of WARM documents sets the
     * context's buffers up. */
    cr_assert_eq(qrr_ctx_score(ctx, q, (const char *const *)docs, WARM, qrr_score_default_params(),
                               s, l), QRR_OK, "%s", qrr_last_error());
    long before = peak_rss_kib();
    double t0 = tu_now();
    cr_assert_eq(qrr_ctx_score(ctx, q, (const char *const *)docs, N, qrr_score_default_params(),
                               s, l), QRR_OK, "%s", qrr_last_error());
    double t = tu_now() - t0;
    long after = peak_rss_kib();
    qrr_stats st = qrr_ctx_last_stats(ctx);
    for (int i = 0; i < N; i++)
        cr_assert(isfinite(s[i]) && isfinite(l[i]) && s[i] >= 0 && s[i] <= 1, "doc %d: %g", i, s[i]);
    /* A few documents rescored alone agree (same tolerance as test_runtime's batch check). */
    const int probe[] = {0, 255, 256, N / 2, N - 1};
    for (size_t k = 0; k < sizeof probe / sizeof *probe; k++) {
        float one, lone;
        const char *d1[] = {docs[probe[k]]};
        cr_assert_eq(qrr_ctx_score(ctx, q, d1, 1, qrr_score_default_params(), &one, &lone), QRR_OK);
        cr_expect_leq(fabsf(one - s[probe[k]]), 1e-5f, "doc %d: %g alone, %g in the request",
                      probe[k], one, s[probe[k]]);
    }
    fprintf(stderr, "limits: %d documents (%zu prompt tokens, %zu computed) in %.2f s; peak RSS "
                    "%.1f MiB, %.1f MiB above the %d-document request%s\n", N, st.tokens,
            st.tokens_computed, t, after / 1024.0, (after - before) / 1024.0, WARM,
#ifdef TU_SANITIZED
            " (sanitizer build: bound not checked)"
#else
            ""
#endif
    );
#ifndef TU_SANITIZED
    /* Work is grouped (256 documents) and chunked (max_batch_tokens): 10,000 documents may not
     * need more memory than 512 beyond a few MiB of slack. A sanitizer's allocator keeps
     * freed memory in quarantine, so there the figure says nothing about qrr. */
    cr_assert_lt(after - before, 8 * 1024, "peak RSS grew by %ld KiB for %d documents",
                 after - before, N);
#endif
    for (int i = 0; i < N; i++) free(docs[i]);
    free(docs);
    free(s);
    free(l);
}

/* ---- weights that overflow ------------------------------------------------------------ */

typedef void (*edit_fn)(const qrr_tensor_view *v, float *data, size_t n);

/* Copy the f32 model at src into dst through qrr_writer, letting edit change each f32
 * tensor's values (the loader checks scales only, so any weight value loads). */
static void rewrite(const char *src, const char *dst, edit_fn edit)
{
    FILE *f = fopen(src, "rb");
    cr_assert_not_null(f);
    fseek(f, 0, SEEK_END);
    size_t len = (size_t)ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t *img = malloc(len);
    cr_assert_eq(fread(img, 1, len, f), len);
    fclose(f);
    qrr_file *qf = NULL;
    qrr_diag d;
    qrr_diag_clear(&d);
    cr_assert_eq(qrr_file_load(img, len, 0, &qf, NULL, &d), QRR_OK, "%s", d.msg);
    qrr_writer *w = NULL;
    cr_assert_eq(qrr_writer_open(dst, &w, &d), QRR_OK, "%s", d.msg);
    size_t tok_len;
    const uint8_t *tok = qrr_file_tokenizer(qf, &tok_len);
    cr_assert_eq(qrr_writer_set_meta(w, qrr_file_meta(qf), &d), QRR_OK, "%s", d.msg);
    cr_assert_eq(qrr_writer_set_tokenizer(w, tok, tok_len, &d), QRR_OK, "%s", d.msg);
    size_t n = qrr_file_tensor_count(qf);
    for (size_t i = 0; i < n; i++) {
        const qrr_tensor_view *v = qrr_file_tensor(qf, i);
        cr_assert_eq(qrr_writer_add_tensor(w, v->name, v->dtype, v->ndim, v->dims, NULL, &d),
                     QRR_OK, "%s", d.msg);
    }
    for (size_t i = 0; i < n; i++) {
        const qrr_tensor_view *v = qrr_file_tensor(qf, i);
        void *copy = malloc(v->size ? v->size : 1);
        memcpy(copy, v->data, v->size);
        if (v->dtype == QRR_DTYPE_F32) edit(v, copy, v->size / sizeof(float));
        cr_assert_eq(qrr_writer_write(w, i, copy, v->size, &d), QRR_OK, "%s", d.msg);
        free(copy);
    }
    cr_assert_eq(qrr_writer_finish(w, &d), QRR_OK, "%s", d.msg);
    qrr_file_free(qf);
    free(img);
}

static int is_linear(const char *name)
{
    return strstr(name, "_proj.weight") != NULL;
}

/* Every linear layer's weights 1e30: the attention output overflows fp32 to Inf in the first
 * layer, and the next norm turns it into NaN. */
static void huge_linear(const qrr_tensor_view *v, float *x, size_t n)
{
    if (is_linear(v->name))
        for (size_t i = 0; i < n; i++) x[i] = i % 2 ? 1e30f : -1e30f;
}

/* One NaN in the "yes" head row: the last step alone goes wrong. */
static void nan_head(const qrr_tensor_view *v, float *x, size_t n)
{
    if (!strcmp(v->name, "head.weight")) x[n - 1] = NAN;
}

/* The model rewritten with edit into tmp/bad-<what>.qrr, opened (weights are not checked,
 * so it loads), with a one-thread context. */
static void open_edited(edit_fn edit, const char *what, qrr_model **m, qrr_ctx **c)
{
    char bad[1100];
    snprintf(bad, sizeof bad, "%s/bad-%s.qrr", tmp, what);
    rewrite(path, bad, edit);
    cr_assert_eq(qrr_model_open(bad, qrr_model_default_params(), m), QRR_OK,
                 "%s: weights are not checked, the file must load: %s", what, qrr_last_error());
    qrr_ctx_params cp = qrr_ctx_default_params();
    cp.n_threads = 1;
    cr_assert_eq(qrr_ctx_create(*m, cp, c), QRR_OK);
}

static void assert_numeric_error(edit_fn edit, const char *what)
{
    qrr_model *m = NULL;
    qrr_ctx *c = NULL;
    open_edited(edit, what, &m, &c);
    const char *docs[] = {"first", "second document", "third"};
    float s[3] = {-1, -1, -1}, l[3] = {-1, -1, -1};
    int rc = qrr_ctx_score(c, "query", docs, 3, qrr_score_default_params(), s, l);
    cr_assert_eq(rc, QRR_ERR_NUMERIC, "%s: scoring returned %s (scores %g %g %g)", what,
                 qrr_status_str(rc), s[0], s[1], s[2]);
    cr_assert(strstr(qrr_last_error(), "not finite"), "%s: message: %s", what, qrr_last_error());
    for (int i = 0; i < 3; i++)
        cr_assert(!isnan(s[i]) && !isnan(l[i]), "%s: a NaN reached output %d", what, i);
    /* The same through token ids. */
    size_t n;
    int32_t ids[] = {1, 2, 3, 4, 5};
    const int32_t *p = ids;
    n = 5;
    float s1 = -1, l1 = -1;
    cr_assert_eq(qrr_ctx_score_ids(c, &p, &n, 1, &s1, &l1), QRR_ERR_NUMERIC, "%s (ids)", what);
    cr_assert(!isnan(s1) && !isnan(l1));
    qrr_ctx_free(c);
    qrr_model_close(m);
}

Test(limits, overflowing_weights_give_numeric_error)
{
    assert_numeric_error(huge_linear, "huge-linear");
}

Test(limits, nan_head_gives_numeric_error)
{
    assert_numeric_error(nan_head, "nan-head");
}

/* The embedding rows of these token ids NaN: only a prompt holding one of them goes wrong. */
static const int32_t *nan_ids;
static size_t n_nan_ids;

static void nan_embedding_rows(const qrr_tensor_view *v, float *x, size_t n)
{
    if (strcmp(v->name, "model.embed_tokens.weight") != 0) return;
    size_t h = (size_t)v->dims[1];
    for (size_t i = 0; i < n_nan_ids; i++)
        for (size_t e = 0; e < h && ((size_t)nan_ids[i] + 1) * h <= n; e++)
            x[(size_t)nan_ids[i] * h + e] = NAN;
}

/* A text call of more documents than one block of the scheduler (256) names the document
 * whose logit is not finite by its index in the call, not by its place in the block. */
Test(limits, a_numeric_error_names_the_document_in_the_call)
{
    size_t n_rare, n_plain;
    int32_t *rare = tokenize(" xylophone", &n_rare);
    int32_t *plain = prompt("query", "first", qrr_score_default_params(), &n_plain);
    for (size_t i = 0; i < n_rare; i++)
        for (size_t j = 0; j < n_plain; j++)
            cr_assert_neq(rare[i], plain[j], "token %d is in every prompt too", rare[i]);
    nan_ids = rare, n_nan_ids = n_rare;
    qrr_model *m = NULL;
    qrr_ctx *c = NULL;
    open_edited(nan_embedding_rows, "nan-rows", &m, &c);
    enum { N = 300 };
    const char *docs[N];
    for (int i = 0; i < N; i++) docs[i] = i == 290 ? "xylophone" : "first";
    float s[N];
    cr_assert_eq(qrr_ctx_score(c, "query", docs, N, qrr_score_default_params(), s, NULL),
                 QRR_ERR_NUMERIC, "%s", qrr_last_error());
    cr_assert(strstr(qrr_last_error(), "document 290: the logit is not finite"), "message: %s",
              qrr_last_error());
    qrr_ctx_free(c);
    qrr_model_close(m);
    free(rare);
    free(plain);
}

/* Resident memory now, from /proc (peak RSS cannot show memory being given back). */
static long rss_kib(void)
{
    FILE *f = fopen("/proc/self/statm", "r");
    long pages = 0, resident = 0;
    cr_assert_not_null(f);
    cr_assert_eq(fscanf(f, "%ld %ld", &pages, &resident), 2);
    fclose(f);
    return resident * (sysconf(_SC_PAGESIZE) / 1024);
}

Test(limits, long_documents_keep_only_what_truncation_keeps)
{
    /* 48 documents of 1 MiB (~200,000 tokens each): the context may hold at most max_length
     * ids per prompt while scoring, and gives request-sized scratch back afterwards. With the
     * smaller workload (tu_small_workload) 24 of them at max_length 256 (full token lists would still be ~19 MiB): 48
     * prompts of 8192 tokens take hours under an emulator. */
    enum { N_FULL = 48 };
    const int N = tu_small_workload() ? 24 : N_FULL;
    qrr_score_params sp = qrr_score_default_params();
    if (tu_small_workload()) sp.max_length = 256;
    char *doc = big_text(1 << 20);
    const char *docs[N_FULL];
    for (int i = 0; i < N; i++) docs[i] = doc;
    float s[N_FULL];
    const char *q = "What is the capital of China?";
    const char *short_docs[] = {"Beijing.", "Seoul."};
    cr_assert_eq(qrr_ctx_score(ctx, q, short_docs, 2, qrr_score_default_params(), s, NULL),
                 QRR_OK);
    long before = rss_kib();
    cr_assert_eq(qrr_ctx_score(ctx, q, docs, (size_t)N, sp, s, NULL), QRR_OK, "%s",
                 qrr_last_error());
    long after_long = rss_kib();
    cr_assert_eq(qrr_ctx_score(ctx, q, short_docs, 2, qrr_score_default_params(), s, NULL),
                 QRR_OK);
    long after_short = rss_kib();
    fprintf(stderr, "limits: %d x 1 MiB documents: RSS %.1f MiB before, %.1f after, %.1f after "
            "a short request\n", N, before / 1024.0, after_long / 1024.0, after_short / 1024.0);
#ifndef TU_SANITIZED
    /* Full token lists would be N x ~0.8 MiB = ~38 MiB; truncated prompts are 32 KiB each. */
    cr_expect_lt(after_long - before, 12 * 1024, "RSS grew by %ld KiB and stayed",
                 after_long - before);
    cr_expect_lt(after_short - before, 12 * 1024, "RSS is %ld KiB above its start after a "
                 "short request", after_short - before);
#endif
    free(doc);
}
