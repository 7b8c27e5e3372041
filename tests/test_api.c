/* test_api.c — the public API's promises about its arguments: every entry point refuses NULLs
 * with QRR_ERR_INVALID_ARG and a message naming the function; every argument of a request is
 * checked before any compute; invalid UTF-8 is blamed on the right string at the right byte;
 * texts with NUL bytes are scored; truncation can be turned off. */
#include <math.h>

#include "qrr.h"
#include "qrr_test_util.h"

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

TestSuite(api, .init = setup, .fini = teardown);

/* The call returned QRR_ERR_INVALID_ARG and said which function refused. */
#define EXPECT_REFUSED(call, fn)                                                              \
    do {                                                                                      \
        int rc_ = (call);                                                                     \
        cr_expect_eq(rc_, QRR_ERR_INVALID_ARG, "%s: got %s (%s)", #call, qrr_status_str(rc_), \
                     qrr_last_error());                                                       \
        cr_expect(strstr(qrr_last_error(), fn) != NULL, "%s: message '%s' does not name %s",  \
                  #call, qrr_last_error(), fn);                                               \
    } while (0)

Test(api, every_entry_point_refuses_nulls)
{
    qrr_model_params mp = qrr_model_default_params();
    qrr_ctx_params cp = qrr_ctx_default_params();
    qrr_score_params sp = qrr_score_default_params();
    qrr_model *m = (qrr_model *)1;
    qrr_ctx *c = (qrr_ctx *)1;
    EXPECT_REFUSED(qrr_model_open(NULL, mp, &m), "qrr_model_open");
    EXPECT_REFUSED(qrr_model_open(path, mp, NULL), "qrr_model_open");
    EXPECT_REFUSED(qrr_model_open_memory(NULL, 16, mp, &m), "qrr_model_open_memory");
    EXPECT_REFUSED(qrr_model_open_memory("x", 1, mp, NULL), "qrr_model_open_memory");
    EXPECT_REFUSED(qrr_ctx_create(NULL, cp, &c), "qrr_ctx_create");
    EXPECT_REFUSED(qrr_ctx_create(model, cp, NULL), "qrr_ctx_create");
    qrr_model_close(NULL);
    qrr_ctx_free(NULL);

    const char *docs[] = {"a", "b"};
    const char *docs_null[] = {"a", NULL};
    float s[2], l[2];
    EXPECT_REFUSED(qrr_ctx_score(NULL, "q", docs, 2, sp, s, l), "qrr_ctx_score");
    EXPECT_REFUSED(qrr_ctx_score(ctx, NULL, docs, 2, sp, s, l), "qrr_ctx_score");
    EXPECT_REFUSED(qrr_ctx_score(ctx, "q", NULL, 2, sp, s, l), "qrr_ctx_score");
    EXPECT_REFUSED(qrr_ctx_score(ctx, "q", docs, 2, sp, NULL, NULL), "qrr_ctx_score");
    EXPECT_REFUSED(qrr_ctx_score(ctx, "q", docs_null, 2, sp, s, l), "document 1");

    const size_t lens[] = {1, 1};
    EXPECT_REFUSED(qrr_ctx_score_len(NULL, "q", 1, docs, lens, 2, sp, s, l), "qrr_ctx_score_len");
    EXPECT_REFUSED(qrr_ctx_score_len(ctx, NULL, 1, docs, lens, 2, sp, s, l), "qrr_ctx_score_len");
    EXPECT_REFUSED(qrr_ctx_score_len(ctx, "q", 1, docs, NULL, 2, sp, s, l), "qrr_ctx_score_len");
    EXPECT_REFUSED(qrr_ctx_score_len(ctx, "q", 1, docs_null, lens, 2, sp, s, l), "document 1");
    /* NULL with length 0 is an empty text, as in qrr_model_tokenize */
    const size_t zero[] = {0, 0};
    cr_expect_eq(qrr_ctx_score_len(ctx, NULL, 0, docs_null, zero, 2, sp, s, l), QRR_OK, "%s",
                 qrr_last_error());
    qrr_score_params bad_ins = sp;
    bad_ins.instruction_len = 4;
    EXPECT_REFUSED(qrr_ctx_score(ctx, "q", docs, 2, bad_ins, s, l), "instruction");

    int32_t seq[] = {151644, 8948, 198};
    const int32_t *ids[] = {seq, NULL};
    const size_t ids_lens[] = {3, 3};
    EXPECT_REFUSED(qrr_ctx_score_ids(NULL, ids, ids_lens, 1, s, l), "qrr_ctx_score_ids");
    EXPECT_REFUSED(qrr_ctx_score_ids(ctx, NULL, ids_lens, 1, s, l), "qrr_ctx_score_ids");
    EXPECT_REFUSED(qrr_ctx_score_ids(ctx, ids, NULL, 1, s, l), "qrr_ctx_score_ids");
    EXPECT_REFUSED(qrr_ctx_score_ids(ctx, ids, ids_lens, 1, NULL, NULL), "qrr_ctx_score_ids");
    EXPECT_REFUSED(qrr_ctx_score_ids(ctx, ids, ids_lens, 2, s, l), "sequence 1");
    const int32_t *first_null[] = {NULL};
    EXPECT_REFUSED(qrr_ctx_score_ids(ctx, first_null, ids_lens, 1, s, l), "sequence 0");

    qrr_stats st = qrr_ctx_last_stats(NULL);
    cr_expect_eq(st.tokens, 0);
    cr_expect_eq(qrr_ctx_threads(NULL), 0);
    cr_expect_eq(qrr_ctx_threads(ctx), 2); /* the fixture's */

    int32_t out[64];
    size_t n;
    EXPECT_REFUSED(qrr_model_prompt_ids(NULL, "q", "d", sp, out, 64, &n), "qrr_model_prompt_ids");
    EXPECT_REFUSED(qrr_model_prompt_ids(model, NULL, "d", sp, out, 64, &n), "qrr_model_prompt_ids");
    EXPECT_REFUSED(qrr_model_prompt_ids(model, "q", NULL, sp, out, 64, &n), "qrr_model_prompt_ids");
    EXPECT_REFUSED(qrr_model_prompt_ids(model, "q", "d", sp, NULL, 64, &n), "qrr_model_prompt_ids");
    EXPECT_REFUSED(qrr_model_prompt_ids(model, "q", "d", sp, out, 64, NULL), "qrr_model_prompt_ids");
    EXPECT_REFUSED(qrr_model_prompt_ids_len(model, NULL, 2, "d", 1, sp, out, 64, &n),
                   "qrr_model_prompt_ids_len");
    EXPECT_REFUSED(qrr_model_prompt_ids_len(model, "q", 1, NULL, 1, sp, out, 64, &n),
                   "qrr_model_prompt_ids_len");
    EXPECT_REFUSED(qrr_model_tokenize(NULL, "t", 1, out, 64, &n), "qrr_model_tokenize");
    EXPECT_REFUSED(qrr_model_tokenize(model, NULL, 1, out, 64, &n), "qrr_model_tokenize");
    EXPECT_REFUSED(qrr_model_tokenize(model, "t", 1, NULL, 64, &n), "qrr_model_tokenize");
    EXPECT_REFUSED(qrr_model_tokenize(model, "t", 1, out, 64, NULL), "qrr_model_tokenize");
    char text[64];
    EXPECT_REFUSED(qrr_model_decode(NULL, seq, 3, text, 64, &n), "qrr_model_decode");
    EXPECT_REFUSED(qrr_model_decode(model, NULL, 3, text, 64, &n), "qrr_model_decode");
    EXPECT_REFUSED(qrr_model_decode(model, seq, 3, NULL, 64, &n), "qrr_model_decode");
    EXPECT_REFUSED(qrr_model_decode(model, seq, 3, text, 64, NULL), "qrr_model_decode");
    cr_expect_not_null(qrr_status_str(12345));
    cr_expect_not_null(qrr_version());
}

/* 300 documents: the bad argument is in the second group of 256, and nothing may be computed
 * before it is found. */
static void expect_refused_before_compute(const char *last_doc, int status, const char *needle)
{
    enum { N = 300 };
    static const char *docs[N];
    for (int i = 0; i < N - 1; i++) docs[i] = "The capital of China is Beijing.";
    docs[N - 1] = last_doc;
    float s[N];
    int rc = qrr_ctx_score(ctx, "What is the capital of China?", docs, N,
                           qrr_score_default_params(), s, NULL);
    cr_expect_eq(rc, status, "got %s: %s", qrr_status_str(rc), qrr_last_error());
    cr_expect(strstr(qrr_last_error(), needle) != NULL, "message '%s' lacks '%s'",
              qrr_last_error(), needle);
    qrr_stats st = qrr_ctx_last_stats(ctx);
    cr_expect_eq(st.tokens_computed, 0, "%zu tokens were computed before the bad argument was "
                 "found", st.tokens_computed);
}

Test(api, default_chunk_size_depends_on_the_device)
{
    cr_expect_eq(qrr_default_max_batch_tokens(QRR_DEVICE_CPU), 2048);
    cr_expect_eq(qrr_default_max_batch_tokens(QRR_DEVICE_CUDA), 8192);
    cr_expect_eq(qrr_default_max_batch_tokens(QRR_DEVICE_COUNT), 0);
    cr_expect_eq(qrr_default_max_batch_tokens((qrr_device)-1), 0);
    cr_expect_eq(qrr_ctx_default_params().max_batch_tokens, 0, "0 = the device's default");
}

Test(api, arguments_checked_before_any_compute)
{
    expect_refused_before_compute(NULL, QRR_ERR_INVALID_ARG, "document 299");
    expect_refused_before_compute("bad \xff", QRR_ERR_UTF8, "document 299");
    /* max_length beyond the model's positions, found before compute too */
    const char *docs[] = {"a"};
    float s[1];
    qrr_score_params p = qrr_score_default_params();
    p.max_length = 1 << 30;
    cr_expect_eq(qrr_ctx_score(ctx, "q", docs, 1, p, s, NULL), QRR_ERR_INVALID_ARG);
    cr_expect(strstr(qrr_last_error(), "max_length") != NULL, "%s", qrr_last_error());
}

static void expect_utf8_error(const char *query, const char *doc, const char *instruction,
                              const char *who, size_t offset)
{
    const char *docs[] = {"fine", "also fine", doc};
    qrr_score_params p = qrr_score_default_params();
    p.instruction = instruction;
    float s[3];
    int rc = qrr_ctx_score(ctx, query, docs, 3, p, s, NULL);
    cr_expect_eq(rc, QRR_ERR_UTF8, "got %s", qrr_status_str(rc));
    char want[128];
    snprintf(want, sizeof want, "byte offset %zu", offset);
    const char *msg = qrr_last_error();
    cr_expect(strncmp(msg, who, strlen(who)) == 0, "message '%s' does not start with '%s'", msg, who);
    cr_expect(strstr(msg, want) != NULL, "message '%s' lacks '%s'", msg, want);
}

Test(api, invalid_utf8_names_the_string_and_its_own_offset)
{
    expect_utf8_error("q\xff", "d", NULL, "query", 1);
    expect_utf8_error("q", "bad \xff utf8", NULL, "document 2", 4);
    expect_utf8_error("q", "d", "in\xffst", "instruction", 2);
    /* prompt_ids and tokenize say the same */
    int32_t ids[256];
    size_t n;
    cr_expect_eq(qrr_model_prompt_ids(model, "ok", "x\xc3", qrr_score_default_params(), ids,
                                      256, &n), QRR_ERR_UTF8);
    cr_expect(strstr(qrr_last_error(), "document") && strstr(qrr_last_error(), "byte offset 1"),
              "%s", qrr_last_error());
}

Test(api, text_with_nul_bytes_is_scored)
{
    /* "a\0b" differs from "a": the bytes after the NUL are part of the document */
    const char *docs[] = {"Beijing\0 is the capital.", "Beijing"};
    const size_t lens[] = {24, 7};
    float s[2], l[2];
    cr_assert_eq(qrr_ctx_score_len(ctx, "capital?\0!", 10, docs, lens, 2,
                                   qrr_score_default_params(), s, l), QRR_OK, "%s",
                 qrr_last_error());
    cr_expect(isfinite(l[0]) && isfinite(l[1]));
    /* the prompt holds the NUL as a token of its own and differs from the cut-off text */
    int32_t a[256], b[256];
    size_t na, nb;
    qrr_score_params p = qrr_score_default_params();
    cr_assert_eq(qrr_model_prompt_ids_len(model, "q", 1, docs[0], lens[0], p, a, 256, &na), QRR_OK);
    cr_assert_eq(qrr_model_prompt_ids(model, "q", docs[0], p, b, 256, &nb), QRR_OK);
    cr_expect_gt(na, nb, "the bytes after the NUL were dropped");
    /* and scoring with lengths equals scoring its own prompt ids */
    const int32_t *seqs[] = {a};
    float s_ids;
    float s_len;
    cr_assert_eq(qrr_ctx_score_ids(ctx, seqs, &na, 1, &s_ids, NULL), QRR_OK);
    const char *one[] = {docs[0]};
    cr_assert_eq(qrr_ctx_score_len(ctx, "q", 1, one, &lens[0], 1, p, &s_len, NULL), QRR_OK);
    cr_expect_leq(fabsf(s_ids - s_len), 1e-6f);
    /* an instruction with a NUL, given by length */
    p.instruction = "judge\0this";
    p.instruction_len = 10;
    cr_expect_eq(qrr_model_prompt_ids(model, "q", "d", p, a, 256, &na), QRR_OK, "%s",
                 qrr_last_error());
    p.instruction_len = 0;
    cr_expect_eq(qrr_model_prompt_ids(model, "q", "d", p, b, 256, &nb), QRR_OK);
    cr_expect_gt(na, nb);
}

Test(api, truncate_off_refuses_long_prompts)
{
    int32_t ids[512];
    size_t n_full;
    qrr_score_params p = qrr_score_default_params();
    cr_assert_eq(qrr_model_prompt_ids(model, "q", "one two three four five", p, ids, 512, &n_full),
                 QRR_OK);
    p.max_length = (int)n_full - 2;
    size_t n;
    cr_expect_eq(qrr_model_prompt_ids(model, "q", "one two three four five", p, ids, 512, &n), QRR_OK);
    cr_expect_eq(n, n_full - 2, "truncation on: the prompt is cut to max_length");
    p.truncate = 0;
    cr_expect_eq(qrr_model_prompt_ids(model, "q", "one two three four five", p, ids, 512, &n),
                 QRR_ERR_TOO_LONG);
    cr_expect(strstr(qrr_last_error(), "max_length") != NULL, "%s", qrr_last_error());
    const char *docs[] = {"short", "one two three four five"};
    float s[2];
    cr_expect_eq(qrr_ctx_score(ctx, "q", docs, 2, p, s, NULL), QRR_ERR_TOO_LONG);
    cr_expect(strstr(qrr_last_error(), "document 1") != NULL, "%s", qrr_last_error());
    cr_expect(strstr(qrr_last_error(), "the prompt needs") != NULL, "%s", qrr_last_error());
    p.max_length = (int)n_full;
    cr_expect_eq(qrr_ctx_score(ctx, "q", docs, 2, p, s, NULL), QRR_OK, "%s", qrr_last_error());
    /* a query that fills max_length alone: the message blames the query, not the document */
    cr_expect_eq(qrr_model_prompt_ids(model, "one two three four five six seven eight", "d", p,
                                      ids, 512, &n), QRR_ERR_TOO_LONG);
    cr_expect(strstr(qrr_last_error(), "the query and instruction alone") != NULL, "%s",
              qrr_last_error());
    /* a head that fills max_length exactly still takes an empty document (and a word that
     * merges with the head's last token): no refusal of the query then */
    size_t n_head;
    p.max_length = 0;
    cr_assert_eq(qrr_model_prompt_ids(model, "q", "", p, ids, 512, &n_head), QRR_OK);
    p.max_length = (int)n_head;
    const char *empty[] = {""};
    cr_expect_eq(qrr_ctx_score(ctx, "q", empty, 1, p, s, NULL), QRR_OK, "%s", qrr_last_error());
    cr_expect_eq(qrr_model_prompt_ids(model, "q", "", p, ids, 512, &n), QRR_OK);
    cr_expect_eq(qrr_ctx_score(ctx, "q", docs + 1, 1, p, s, NULL), QRR_ERR_TOO_LONG);
    cr_expect(strstr(qrr_last_error(), "document 0") && strstr(qrr_last_error(), "the prompt needs"),
              "a document too long for the room left is the document's fault: %s", qrr_last_error());
    p.max_length = (int)n_full;
    /* so does scoring: the request's fault, said once, no document blamed */
    cr_expect_eq(qrr_ctx_score(ctx, "one two three four five six seven eight", docs, 2, p, s,
                               NULL), QRR_ERR_TOO_LONG);
    cr_expect(!strncmp(qrr_last_error(), "the query and instruction alone", 31), "%s",
              qrr_last_error());
}

Test(api, accessors_describe_the_model)
{
    /* tiny-tied: 3 layers, hidden 32, 2/1 heads, head_dim 128, intermediate 96, labels
     * inferred from a causal LM whose tokenizer has "yes" (9693) and "no" (2152). */
    qrr_model_info info;
    EXPECT_REFUSED(qrr_model_get_info(NULL, &info), "qrr_model_get_info");
    EXPECT_REFUSED(qrr_model_get_info(model, NULL), "qrr_model_get_info");
    cr_assert_eq(qrr_model_get_info(model, &info), QRR_OK, "%s", qrr_last_error());
    cr_expect_eq(info.n_layers, 3);
    cr_expect_eq(info.hidden, 32);
    cr_expect_eq(info.n_heads, 2);
    cr_expect_eq(info.n_kv_heads, 1);
    cr_expect_eq(info.head_dim, 128);
    cr_expect_eq(info.intermediate, 96);
    cr_expect_eq(info.vocab_size, 151669);
    cr_expect_eq(info.max_length, 8192);
    cr_expect_eq(info.tied, 1);
    cr_expect_str_eq(info.weight_dtype, "f32");
    cr_expect_str_eq(info.head_kind, "yes/no");
    cr_expect_str_eq(info.label_source, "inferred");
    cr_expect_eq(info.yes_id, 9693);
    cr_expect_eq(info.no_id, 2152);
    cr_expect_eq(info.tokenizer_ids, 151669);
    cr_expect_eq(info.n_tensors, 3 * 11 + 3); /* 11 per layer, embedding, final norm, head */

    /* The prompt's fixed parts are what qrr_model_prompt_ids puts around the body. */
    int32_t ids[512];
    size_t n = 0;
    cr_assert_eq(qrr_model_prompt_ids(model, "q", "d", qrr_score_default_params(), ids, 512, &n),
                 QRR_OK);
    cr_expect(n > info.n_prefix_ids + info.n_suffix_ids);

    uint64_t bytes = 0;
    for (size_t i = 0; i < info.n_tensors; i++) {
        qrr_tensor_info t;
        cr_assert_eq(qrr_model_tensor(model, i, &t), QRR_OK, "%s", qrr_last_error());
        cr_expect(t.ndim >= 1 && t.ndim <= 4);
        bytes += t.bytes;
        if (!strcmp(t.name, "model.embed_tokens.weight")) {
            cr_expect_str_eq(t.dtype, "f32");
            cr_expect(t.ndim == 2 && t.dims[0] == 151669 && t.dims[1] == 32 && t.dims[2] == 0);
            cr_expect_eq(t.bytes, 151669ull * 32 * 4);
        }
    }
    cr_expect_eq(bytes, info.tensor_bytes);
    qrr_tensor_info t;
    EXPECT_REFUSED(qrr_model_tensor(model, info.n_tensors, &t), "qrr_model_tensor");
}

Test(api, metadata_strings_by_key)
{
    size_t len = 0, n_keys = 0;
    const char *s = qrr_model_meta_str(model, "instruction", &len);
    cr_assert_not_null(s, "%s", qrr_last_error());
    cr_expect_str_eq(s, "Given a web search query, retrieve relevant passages that answer the query");
    cr_expect_eq(len, strlen(s));
    cr_expect_str_eq(qrr_model_meta_str(model, "label_yes", NULL), "yes");
    cr_expect_str_eq(qrr_model_meta_str(model, "document_template", NULL), "\n<Document>: ");
    cr_expect(strstr(qrr_model_meta_str(model, "label_reason", NULL), "inferred") != NULL);
    for (const char *key; (key = qrr_model_meta_key(n_keys)) != NULL; n_keys++)
        cr_expect_not_null(qrr_model_meta_str(model, key, NULL), "key %s", key);
    cr_expect_eq(n_keys, 9);
    cr_expect_null(qrr_model_meta_str(model, "no-such-key", NULL));
    cr_expect(strstr(qrr_last_error(), "no-such-key") != NULL, "%s", qrr_last_error());
    cr_expect_null(qrr_model_meta_str(NULL, "prefix", NULL));
}

/* Counts its calls; asks to stop at call number stop_at (0: never). */
typedef struct stop_counter {
    int calls, stop_at;
} stop_counter;

static int count_and_stop(void *arg)
{
    stop_counter *sc = arg;
    sc->calls++;
    return sc->stop_at && sc->calls >= sc->stop_at;
}

Test(api, an_abort_callback_stops_a_call_between_chunks_and_nothing_is_written)
{
    enum { N = 6 };
    const char *docs[N] = {
        "The capital of China is Beijing, a city of more than twenty million people.",
        "Gravity is a force that attracts two bodies towards each other with a strength.",
        "Beijing has been the capital of several dynasties over many hundreds of years.",
        "Photosynthesis turns light, water and carbon dioxide into sugar and oxygen.",
        "Shanghai is the largest city of China by population, but it is not the capital.",
        "The Forbidden City in Beijing was the palace of the emperors of China for ages.",
    };
    qrr_ctx_params cp = qrr_ctx_default_params();
    cp.n_threads = 2;
    cp.max_batch_tokens = 16; /* about one document's own tokens a chunk */
    qrr_ctx *c;
    cr_assert_eq(qrr_ctx_create(model, cp, &c), QRR_OK, "%s", qrr_last_error());
    const char *q = "What is the capital of China?";
    qrr_score_params sp = qrr_score_default_params();

    stop_counter never = {0, 0};
    qrr_ctx_set_abort(c, count_and_stop, &never);
    float want[N];
    cr_assert_eq(qrr_ctx_score(c, q, docs, N, sp, want, NULL), QRR_OK, "%s", qrr_last_error());
    cr_assert_geq(never.calls, 3, "asked %d times: the request must span several chunks",
                  never.calls);

    stop_counter third = {0, 3};
    qrr_ctx_set_abort(c, count_and_stop, &third);
    float got[N];
    for (int i = 0; i < N; i++) got[i] = -1.0f;
    int rc = qrr_ctx_score(c, q, docs, N, sp, got, NULL);
    cr_expect_eq(rc, QRR_ERR_ABORTED, "got %s: %s", qrr_status_str(rc), qrr_last_error());
    cr_expect_eq(third.calls, 3, "asked %d times after it said stop", third.calls);
    cr_expect(strstr(qrr_last_error(), "after 2 forward passes") != NULL, "%s",
              qrr_last_error());
    for (int i = 0; i < N; i++) cr_expect_eq(got[i], -1.0f, "score %d was written", i);
    cr_expect_str_eq(qrr_status_str(QRR_ERR_ABORTED), "QRR_ERR_ABORTED");

    /* Removed, the context scores as before: the stopped call left no state behind. */
    qrr_ctx_set_abort(c, NULL, NULL);
    cr_assert_eq(qrr_ctx_score(c, q, docs, N, sp, got, NULL), QRR_OK, "%s", qrr_last_error());
    for (int i = 0; i < N; i++) cr_expect_float_eq(got[i], want[i], 1e-6, "document %d", i);
    qrr_ctx_set_abort(NULL, count_and_stop, &never); /* no context: nothing happens */
    qrr_ctx_free(c);
}

/* An abort callback that scores on the context it was given: refused, and said so. */
typedef struct reentry {
    qrr_ctx *ctx;
    int rc;
    char msg[512];
} reentry;

static int score_from_callback(void *arg)
{
    reentry *r = arg;
    const char *doc[] = {"a document"};
    float s;
    r->rc = qrr_ctx_score(r->ctx, "a query", doc, 1, qrr_score_default_params(), &s, NULL);
    snprintf(r->msg, sizeof r->msg, "%s", qrr_last_error());
    return 0;
}

Test(api, scoring_from_its_own_abort_callback_is_refused_as_such)
{
    qrr_ctx *c;
    cr_assert_eq(qrr_ctx_create(model, qrr_ctx_default_params(), &c), QRR_OK, "%s", qrr_last_error());
    reentry r = {c, QRR_OK, ""};
    qrr_ctx_set_abort(c, score_from_callback, &r);
    const char *docs[] = {"The capital of China is Beijing."};
    float s = -1;
    cr_assert_eq(qrr_ctx_score(c, "What is the capital of China?", docs, 1,
                               qrr_score_default_params(), &s, NULL), QRR_OK, "%s", qrr_last_error());
    cr_expect(s >= 0 && s <= 1);
    cr_expect_eq(r.rc, QRR_ERR_INVALID_ARG, "%s", qrr_status_str(r.rc));
    cr_expect(strstr(r.msg, "scoring already, in this thread") != NULL, "%s", r.msg);
    qrr_ctx_free(c);
}
