/* test_server.c — `qrr serve` over real HTTP on a free loopback port: every route and field
 * of the TEI, Cohere and Jina formats, the instruction extension, every error code, the API
 * key, 64 concurrent clients whose scores equal `qrr score`'s, a stalled client while others
 * are served, SIGTERM with requests in flight (none lost, exit 0), and the drain's bounds:
 * its timeout and a second signal drop what is still running (exit 1). */
#include <math.h>
#include <pthread.h>
#include <sys/resource.h>

#include "server_client.h"

static char tmp[256], model[1024];

static void setup(void)
{
    curl_global_init(CURL_GLOBAL_DEFAULT);
    tu_tmpdir(tmp, sizeof tmp);
    tu_convert("tiny-tied", "f32", tmp, model, sizeof model);
}

static void teardown(void)
{
    tu_system("rm -rf '%s'", tmp);
    curl_global_cleanup();
}

TestSuite(server, .init = setup, .fini = teardown, .timeout = 120);
/* The drain test's own suite for its longer bound: a per-test .timeout beside the suite's
 * makes Criterion 2.4's runner leak 48 bytes when jobs run in parallel (LeakSanitizer) */
TestSuite(server_drain, .init = setup, .fini = teardown, .timeout = 300);

static json_t *parse(const http_result *r)
{
    json_t *j = json_loads(r->body, 0, NULL);
    cr_assert_not_null(j, "not JSON (status %ld): %s", r->status, r->body);
    return j;
}

/* Logits that `qrr score` gives each (query, document[i]) with instruction (NULL = none). */
/* The logits `qrr score` gives the pairs, cut to max_length tokens (0: the model's). */
static void cli_logits_cut(const char *query, const char *const *docs, size_t n,
                           const char *instruction, int max_length, double *out)
{
    char in[1100], res[1100];
    snprintf(in, sizeof in, "%s/cli-in.jsonl", tmp);
    snprintf(res, sizeof res, "%s/cli-out.jsonl", tmp);
    FILE *f = fopen(in, "w");
    for (size_t i = 0; i < n; i++) {
        json_t *o = json_pack("{s:s,s:s}", "query", query, "document", docs[i]);
        if (instruction) json_object_set_new(o, "instruction", json_string(instruction));
        if (max_length) json_object_set_new(o, "max_length", json_integer(max_length));
        char *s = json_dumps(o, JSON_COMPACT);
        fprintf(f, "%s\n", s);
        free(s);
        json_decref(o);
    }
    fclose(f);
    cr_assert_eq(tu_system("'%s/qrr' score '%s' --threads 2 < '%s' > '%s'", tu_build(), model,
                           in, res), 0);
    f = fopen(res, "r");
    char line[512];
    for (size_t i = 0; i < n; i++) {
        cr_assert_not_null(fgets(line, sizeof line, f));
        json_t *o = json_loads(line, 0, NULL);
        out[i] = json_number_value(json_object_get(o, "logit"));
        json_decref(o);
    }
    fclose(f);
}

static void cli_logits(const char *query, const char *const *docs, size_t n,
                       const char *instruction, double *out)
{
    cli_logits_cut(query, docs, n, instruction, 0, out);
}

static const char *Q = "What is the capital of China?";
static const char *DOCS[] = {"Gravity is a force.", "The capital of China is Beijing.",
                             "Seoul is the capital of Korea.", "北京是中国的首都。"};
#define N_DOCS 4

static char *tei_body(const char *extra)
{
    static char b[2048];
    snprintf(b, sizeof b, "{\"query\": \"%s\", \"texts\": [\"%s\", \"%s\", \"%s\", \"%s\"]%s}", Q,
             DOCS[0], DOCS[1], DOCS[2], DOCS[3], extra);
    return b;
}

static int has_header(const http_result *r, const char *name)
{
    return strcasestr(r->headers, name) != NULL;
}

Test(server, tei_rerank)
{
    served s = serve_start(tmp, model, NULL);
    double want[N_DOCS];
    cli_logits(Q, DOCS, N_DOCS, NULL, want);

    http_result r = http(s.port, "/rerank", tei_body(""));
    cr_assert_eq(r.status, 200, "%s", r.body);
    for (const char *const *h = (const char *const[]){"x-compute-time", "x-compute-tokens",
                                                       "x-queue-time", "x-inference-time", NULL};
         *h; h++)
        cr_expect(has_header(&r, *h), "missing header %s:\n%s", *h, r.headers);
    json_t *a = parse(&r);
    cr_assert(json_is_array(a) && json_array_size(a) == N_DOCS, "%s", r.body);
    double prev = 2;
    int seen[N_DOCS] = {0};
    for (size_t k = 0; k < N_DOCS; k++) {
        json_t *e = json_array_get(a, k);
        int i = (int)json_integer_value(json_object_get(e, "index"));
        double score = json_number_value(json_object_get(e, "score"));
        cr_assert(i >= 0 && i < N_DOCS && !seen[i]++, "bad index %d", i);
        cr_expect_leq(score, prev, "not sorted best first: %s", r.body);
        cr_expect_leq(fabs(score - 1 / (1 + exp(-want[i]))), 1e-5, "doc %d: %g", i, score);
        cr_expect_null(json_object_get(e, "text"), "text without return_text");
        prev = score;
    }
    json_decref(a);
    free(r.body);

    r = http(s.port, "/rerank", tei_body(", \"raw_scores\": true, \"return_text\": true, "
                                         "\"truncate\": null, \"truncation_direction\": \"Right\""));
    cr_assert_eq(r.status, 200, "%s", r.body);
    a = parse(&r);
    for (size_t k = 0; k < N_DOCS; k++) {
        json_t *e = json_array_get(a, k);
        int i = (int)json_integer_value(json_object_get(e, "index"));
        cr_expect_leq(fabs(json_number_value(json_object_get(e, "score")) - want[i]), 1e-4,
                      "raw_scores must be the logit");
        cr_expect_str_eq(json_string_value(json_object_get(e, "text")), DOCS[i]);
    }
    json_decref(a);
    free(r.body);
    cr_expect_eq(serve_stop(&s), 0);
}

Test(server, cohere_and_jina_rerank)
{
    served s = serve_start(tmp, model, NULL);
    double want[N_DOCS];
    cli_logits(Q, DOCS, N_DOCS, NULL, want);
    char body[2048];
    /* documents as strings and as {"text"}, unknown fields ignored, top_n cuts */
    snprintf(body, sizeof body, "{\"model\": \"rerank-v3.5\", \"query\": \"%s\", \"documents\": "
             "[\"%s\", {\"text\": \"%s\"}, \"%s\", {\"text\": \"%s\", \"id\": 7}], \"top_n\": 2, "
             "\"return_documents\": true, \"max_tokens_per_doc\": 4096, \"rank_fields\": null}",
             Q, DOCS[0], DOCS[1], DOCS[2], DOCS[3]);
    const char *routes[] = {"/v1/rerank", "/v2/rerank"};
    for (int v = 0; v < 2; v++) {
        http_result r = http(s.port, routes[v], body);
        cr_assert_eq(r.status, 200, "%s: %s", routes[v], r.body);
        json_t *o = parse(&r);
        cr_expect_eq(strlen(json_string_value(json_object_get(o, "id"))), 32);
        cr_expect_str_eq(json_string_value(json_object_get(o, "model")), "rerank-v3.5");
        json_t *res = json_object_get(o, "results"), *usage = json_object_get(o, "usage");
        cr_assert_eq(json_array_size(res), 2, "top_n 2: %s", r.body);
        cr_expect_gt(json_integer_value(json_object_get(usage, "prompt_tokens")), 40);
        cr_expect_eq(json_integer_value(json_object_get(usage, "total_tokens")),
                     json_integer_value(json_object_get(usage, "prompt_tokens")));
        /* the two best of the four, best first */
        int best = 0;
        for (int i = 1; i < N_DOCS; i++) if (want[i] > want[best]) best = i;
        json_t *first = json_array_get(res, 0);
        cr_expect_eq(json_integer_value(json_object_get(first, "index")), best);
        cr_expect_leq(fabs(json_number_value(json_object_get(first, "relevance_score")) -
                           1 / (1 + exp(-want[best]))), 1e-5);
        cr_expect_str_eq(json_string_value(json_object_get(json_object_get(first, "document"),
                                                           "text")), DOCS[best]);
        json_decref(o);
        free(r.body);
    }
    /* without top_n and return_documents: every document, no text */
    snprintf(body, sizeof body, "{\"query\": \"%s\", \"documents\": [\"%s\", \"%s\"]}", Q,
             DOCS[0], DOCS[1]);
    http_result r = http(s.port, "/v1/rerank", body);
    json_t *o = parse(&r);
    json_t *res = json_object_get(o, "results");
    cr_expect_eq(json_array_size(res), 2);
    cr_expect_null(json_object_get(json_array_get(res, 0), "document"));
    cr_expect_str_eq(json_string_value(json_object_get(o, "model")), "tiny-tied-f32");
    json_decref(o);
    free(r.body);
    /* a document sent as an object comes back whole, its other fields too; rank_fields of
     * ["text"] is what is ranked on, any other field is refused, not ignored */
    snprintf(body, sizeof body, "{\"query\": \"%s\", \"documents\": [{\"text\": \"%s\", "
             "\"title\": \"t\", \"id\": 7}], \"return_documents\": true, \"rank_fields\": "
             "[\"text\"]}", Q, DOCS[0]);
    r = http(s.port, "/v1/rerank", body);
    cr_assert_eq(r.status, 200, "%s", r.body);
    o = parse(&r);
    json_t *doc = json_object_get(json_array_get(json_object_get(o, "results"), 0), "document");
    cr_expect_str_eq(json_string_value(json_object_get(doc, "title")), "t");
    cr_expect_eq(json_integer_value(json_object_get(doc, "id")), 7);
    cr_expect_str_eq(json_string_value(json_object_get(doc, "text")), DOCS[0]);
    json_decref(o);
    free(r.body);
    snprintf(body, sizeof body, "{\"query\": \"q\", \"documents\": [{\"text\": \"a\", "
             "\"title\": \"t\"}], \"rank_fields\": [\"title\"]}");
    r = http(s.port, "/v1/rerank", body);
    cr_expect_eq(r.status, 422, "%s", r.body);
    cr_expect(strstr(r.body, "rank_fields"), "%s", r.body);
    free(r.body);
    cr_expect_eq(serve_stop(&s), 0);
}

Test(server, instruction_replaces_the_default)
{
    served s = serve_start(tmp, model, NULL);
    const char *ins = "Judge whether the passage names a city";
    double want[N_DOCS], plain[N_DOCS];
    cli_logits(Q, DOCS, N_DOCS, ins, want);
    cli_logits(Q, DOCS, N_DOCS, NULL, plain);
    char extra[256];
    snprintf(extra, sizeof extra, ", \"raw_scores\": true, \"instruction\": \"%s\"", ins);
    http_result r = http(s.port, "/rerank", tei_body(extra));
    cr_assert_eq(r.status, 200, "%s", r.body);
    json_t *a = parse(&r);
    for (size_t k = 0; k < N_DOCS; k++) {
        json_t *e = json_array_get(a, k);
        int i = (int)json_integer_value(json_object_get(e, "index"));
        double got = json_number_value(json_object_get(e, "score"));
        cr_expect_leq(fabs(got - want[i]), 1e-4, "doc %d: %g, qrr score %g", i, got, want[i]);
        cr_expect_gt(fabs(got - plain[i]), 1e-4, "doc %d: the instruction changed nothing", i);
    }
    json_decref(a);
    free(r.body);
    /* the same on /v2 */
    char body[1024];
    snprintf(body, sizeof body, "{\"query\": \"%s\", \"documents\": [\"%s\"], \"instruction\": "
             "\"%s\"}", Q, DOCS[1], ins);
    r = http(s.port, "/v2/rerank", body);
    json_t *o = parse(&r);
    double score = json_number_value(json_object_get(json_array_get(json_object_get(o, "results"),
                                                                    0), "relevance_score"));
    cr_expect_leq(fabs(score - 1 / (1 + exp(-want[1]))), 1e-5);
    json_decref(o);
    free(r.body);
    cr_expect_eq(serve_stop(&s), 0);
}

/* status and, for TEI routes, error_type; for /v1 /v2 the nested error object. */
static void expect_error(int port, const char *path, const char *body, size_t len, long status,
                         const char *type, const char *needle)
{
    http_result r = http_on(NULL, port, path, body, len, NULL);
    cr_expect_eq(r.status, status, "%s %.80s: got %ld %s", path, body ? body : "", r.status,
                 r.body);
    json_t *o = json_loads(r.body, 0, NULL);
    cr_assert_not_null(o, "error body is not JSON: %s", r.body);
    const char *msg, *got_type;
    if (strstr(path, "/v") || strstr(path, "/score")) { /* Cohere's, Jina's and vLLM's shape */
        json_t *e = json_object_get(o, "error");
        msg = json_string_value(json_object_get(e, "message"));
        got_type = json_string_value(json_object_get(e, "type"));
        cr_expect_not_null(json_object_get(e, "code"), "%s", r.body);
        /* where Cohere's and Jina's own clients read the message */
        cr_expect(msg && json_is_string(json_object_get(o, "message")) &&
                  !strcmp(json_string_value(json_object_get(o, "message")), msg), "%s", r.body);
        cr_expect(msg && json_is_string(json_object_get(o, "detail")) &&
                  !strcmp(json_string_value(json_object_get(o, "detail")), msg), "%s", r.body);
    } else {
        msg = json_string_value(json_object_get(o, "error"));
        got_type = json_string_value(json_object_get(o, "error_type"));
    }
    cr_expect(msg && got_type, "%s", r.body);
    if (type && got_type) cr_expect_str_eq(got_type, type, "%s", r.body);
    if (needle && msg) cr_expect(strstr(msg, needle) != NULL, "'%s' lacks '%s'", msg, needle);
    json_decref(o);
    free(r.body);
}

#define EXPECT_ERROR(path, body, status, type, needle) \
    expect_error(s.port, path, body, strlen(body), status, type, needle)
#define EXPECT_ERROR_AT(port, path, body, status, type, needle) \
    expect_error(port, path, body, strlen(body), status, type, needle)

/* vLLM's requests: /score and /v1/score (one query for every document, or one per
 * document, under any of vLLM's field names) answer each pair's score in input order; a
 * {"query", "documents"} body posted to /rerank is answered as vLLM answers it. */
Test(server, vllm_score_and_rerank_requests)
{
    served s = serve_start(tmp, model, NULL);
    double want[N_DOCS];
    cli_logits(Q, DOCS, N_DOCS, NULL, want);
    char body[2048];
    snprintf(body, sizeof body, "{\"model\": \"m\", \"text_1\": \"%s\", \"text_2\": [\"%s\", "
             "\"%s\", \"%s\"]}", Q, DOCS[0], DOCS[1], DOCS[2]);
    http_result r = http(s.port, "/score", body);
    cr_assert_eq(r.status, 200, "%s", r.body);
    json_t *o = parse(&r);
    cr_expect(!strncmp(json_string_value(json_object_get(o, "id")), "score-", 6), "%s", r.body);
    cr_expect_str_eq(json_string_value(json_object_get(o, "object")), "list");
    cr_expect_str_eq(json_string_value(json_object_get(o, "model")), "m");
    cr_expect_gt(json_integer_value(json_object_get(o, "created")), 1700000000);
    json_t *data = json_object_get(o, "data");
    cr_assert_eq(json_array_size(data), 3, "%s", r.body);
    for (int i = 0; i < 3; i++) { /* input order, not best first */
        json_t *e = json_array_get(data, (size_t)i);
        cr_expect_eq(json_integer_value(json_object_get(e, "index")), i);
        cr_expect_str_eq(json_string_value(json_object_get(e, "object")), "score");
        cr_expect_leq(fabs(json_number_value(json_object_get(e, "score")) -
                           1 / (1 + exp(-want[i]))), 1e-5, "pair %d: %s", i, r.body);
    }
    cr_expect_gt(json_integer_value(json_object_get(json_object_get(o, "usage"), "prompt_tokens")),
                 60);
    json_decref(o);
    free(r.body);

    /* a query per document, paired in order */
    const char *q2 = "What is gravity?";
    double other[1];
    cli_logits(q2, DOCS, 1, NULL, other);
    snprintf(body, sizeof body, "{\"queries\": [\"%s\", \"%s\"], \"documents\": [\"%s\", "
             "\"%s\"]}", q2, Q, DOCS[0], DOCS[1]);
    r = http(s.port, "/v1/score", body);
    cr_assert_eq(r.status, 200, "%s", r.body);
    o = parse(&r);
    data = json_object_get(o, "data");
    cr_expect_leq(fabs(json_number_value(json_object_get(json_array_get(data, 0), "score")) -
                       1 / (1 + exp(-other[0]))), 1e-5, "%s", r.body);
    cr_expect_leq(fabs(json_number_value(json_object_get(json_array_get(data, 1), "score")) -
                       1 / (1 + exp(-want[1]))), 1e-5, "%s", r.body);
    json_decref(o);
    free(r.body);

    /* vLLM answers a request it cannot take with 400, where the other APIs say 422 */
    EXPECT_ERROR_AT(s.port, "/v1/score", "{\"text_1\": [\"a\", \"b\"], \"text_2\": [\"c\", \"d\", "
                    "\"e\"]}", 400, "invalid_request_error", "one per document");
    EXPECT_ERROR_AT(s.port, "/score", "{\"text_1\": \"a\"}", 400, "invalid_request_error",
                    "text_2");
    EXPECT_ERROR_AT(s.port, "/score", "{\"text_1\": \"a\", \"text_2\": []}", 400,
                    "invalid_request_error", "empty");
    EXPECT_ERROR_AT(s.port, "/score", "{\"text_1\": \"a\", \"text_2\": [\"b\", 5]}", 400,
                    "invalid_request_error", "\"text_2\"[1]");
    EXPECT_ERROR_AT(s.port, "/score", "{\"text_1\": \"a\", \"text_2\": \"b\", "
                    "\"truncate_prompt_tokens\": 0}", 400, "invalid_request_error",
                    "truncate_prompt_tokens");
    EXPECT_ERROR_AT(s.port, "/score", "{\"text_1\": \"a\", \"text_2\": \"b\", "
                    "\"truncate_prompt_tokens\": 9223372036854775807}", 400,
                    "invalid_request_error", "from 1 to 1000000");

    /* use_activation false: the logits */
    snprintf(body, sizeof body, "{\"text_1\": \"%s\", \"text_2\": [\"%s\", \"%s\"], "
             "\"use_activation\": false}", Q, DOCS[0], DOCS[1]);
    r = http(s.port, "/score", body);
    o = parse(&r);
    data = json_object_get(o, "data");
    for (int i = 0; i < 2; i++)
        cr_expect_leq(fabs(json_number_value(json_object_get(json_array_get(data, (size_t)i),
                                                             "score")) - want[i]), 1e-4,
                      "logit %d: %s", i, r.body);
    json_decref(o);
    free(r.body);

    /* vLLM's recipe for this model writes the template into the texts: the pair is scored
     * as written (the same prompt ids, so the same score and tokens), not wrapped again */
    const char *pre = "<|im_start|>system\\nJudge whether the Document meets the requirements "
                      "based on the Query and the Instruct provided. Note that the answer can "
                      "only be \\\"yes\\\" or \\\"no\\\".<|im_end|>\\n<|im_start|>user\\n";
    const char *suf = "<|im_end|>\\n<|im_start|>assistant\\n<think>\\n\\n</think>\\n\\n";
    const char *ins = "Given a web search query, retrieve relevant passages that answer the query";
    snprintf(body, sizeof body, "{\"text_1\": \"%s<Instruct>: %s\\n<Query>: %s\\n\", \"text_2\": "
             "[\"<Document>: %s%s\", \"<Document>: %s%s\"]}", pre, ins, Q, DOCS[0], suf, DOCS[1],
             suf);
    r = http(s.port, "/score", body);
    cr_assert_eq(r.status, 200, "%s", r.body);
    o = parse(&r);
    data = json_object_get(o, "data");
    for (int i = 0; i < 2; i++)
        cr_expect_leq(fabs(json_number_value(json_object_get(json_array_get(data, (size_t)i),
                                                             "score")) - 1 / (1 + exp(-want[i]))),
                      1e-5, "pair %d written with the template: %s", i, r.body);
    json_t *usage = json_object_get(o, "usage");
    snprintf(body, sizeof body, "{\"text_1\": \"%s\", \"text_2\": [\"%s\", \"%s\"]}", Q,
             DOCS[0], DOCS[1]);
    http_result plain = http(s.port, "/score", body);
    json_t *p = parse(&plain);
    cr_expect_eq(json_integer_value(json_object_get(usage, "prompt_tokens")),
                 json_integer_value(json_object_get(json_object_get(p, "usage"), "prompt_tokens")),
                 "not wrapped twice: %s", r.body);
    json_decref(p);
    free(plain.body);
    json_decref(o);
    free(r.body);

    /* the same with a query per pair, cut by truncate_prompt_tokens: the prompts of the plain
     * pairs cut so (the body's end goes, the suffix stays), so the same scores; a length the
     * model cannot take is refused as it is for plain pairs */
    char written[1200];
    snprintf(written, sizeof written, "{\"text_1\": [\"%s<Instruct>: %s\\n<Query>: %s\\n\", "
             "\"%s<Instruct>: %s\\n<Query>: %s\\n\"], \"text_2\": [\"<Document>: %s%s\", "
             "\"<Document>: %s%s\"]", pre, ins, Q, pre, ins, Q, DOCS[0], suf, DOCS[1], suf);
    snprintf(body, sizeof body, "%s, \"truncate_prompt_tokens\": 82}", written);
    r = http(s.port, "/score", body);
    cr_assert_eq(r.status, 200, "%s", r.body);
    o = parse(&r);
    snprintf(body, sizeof body, "{\"text_1\": [\"%s\", \"%s\"], \"text_2\": [\"%s\", \"%s\"], "
             "\"truncate_prompt_tokens\": 82}", Q, Q, DOCS[0], DOCS[1]);
    plain = http(s.port, "/score", body);
    cr_assert_eq(plain.status, 200, "%s", plain.body);
    p = parse(&plain);
    cr_expect_eq(json_integer_value(json_object_get(json_object_get(o, "usage"),
                                                    "prompt_tokens")), 2 * 82, "%s", r.body);
    cr_expect_eq(json_integer_value(json_object_get(json_object_get(p, "usage"),
                                                    "prompt_tokens")), 2 * 82, "%s", plain.body);
    /* 82 keeps the first tokens of each document (79 for an empty one): the pairs differ */
    json_t *data_o = json_object_get(o, "data");
    cr_expect_neq(json_number_value(json_object_get(json_array_get(data_o, 0), "score")),
                  json_number_value(json_object_get(json_array_get(data_o, 1), "score")),
                  "the cut left no token of either document: %s", r.body);
    for (size_t i = 0; i < 2; i++)
        cr_expect_leq(fabs(json_number_value(json_object_get(json_array_get(json_object_get(o,
                      "data"), i), "score")) - json_number_value(json_object_get(
                      json_array_get(json_object_get(p, "data"), i), "score"))), 1e-6,
                      "pair %zu cut to 82 tokens: %s against %s", i, r.body, plain.body);
    json_decref(p);
    free(plain.body);
    json_decref(o);
    free(r.body);
    snprintf(body, sizeof body, "%s, \"truncate_prompt_tokens\": 5}", written);
    EXPECT_ERROR_AT(s.port, "/score", body, 400, "invalid_request_error", "no room");
    snprintf(body, sizeof body, "%s, \"truncate_prompt_tokens\": 45000}", written);
    EXPECT_ERROR_AT(s.port, "/score", body, 400, "invalid_request_error", "positions");

    /* vLLM's /rerank body: sorted best first, documents returned, top_n 0 = all */
    snprintf(body, sizeof body, "{\"model\": \"m\", \"query\": \"%s\", \"documents\": [\"%s\", "
             "\"%s\", \"%s\", \"%s\"], \"top_n\": 0}", Q, DOCS[0], DOCS[1], DOCS[2], DOCS[3]);
    r = http(s.port, "/rerank", body);
    cr_assert_eq(r.status, 200, "%s", r.body);
    o = parse(&r);
    json_t *res = json_object_get(o, "results");
    cr_assert_eq(json_array_size(res), N_DOCS, "%s", r.body);
    int best = 0;
    for (int i = 1; i < N_DOCS; i++) if (want[i] > want[best]) best = i;
    cr_expect_eq(json_integer_value(json_object_get(json_array_get(res, 0), "index")), best);
    cr_expect_str_eq(json_string_value(json_object_get(json_object_get(json_array_get(res, 0),
                                                                       "document"), "text")),
                     DOCS[best]);
    json_decref(o);
    free(r.body);
    /* written with the template there too: taken as written; use_activation false: logits */
    snprintf(body, sizeof body, "{\"query\": \"%s<Instruct>: %s\\n<Query>: %s\\n\", \"documents\": "
             "[\"<Document>: %s%s\"], \"use_activation\": false}", pre, ins, Q, DOCS[1], suf);
    r = http(s.port, "/rerank", body);
    cr_assert_eq(r.status, 200, "%s", r.body);
    o = parse(&r);
    cr_expect_leq(fabs(json_number_value(json_object_get(json_array_get(json_object_get(o,
                  "results"), 0), "relevance_score")) - want[1]), 1e-4, "%s", r.body);
    json_decref(o);
    free(r.body);
    /* its errors take vLLM's shape, though the route is TEI's */
    r = http(s.port, "/rerank", "{\"query\": \"q\", \"documents\": [1]}");
    cr_expect_eq(r.status, 400);
    o = parse(&r);
    cr_expect(json_is_object(json_object_get(o, "error")), "%s", r.body);
    json_decref(o);
    free(r.body);
    cr_expect_eq(serve_stop(&s), 0);
}

/* Cohere's max_tokens_per_doc: each document is scored as the text of its first N tokens
 * (a character split by the last of them left out), and returned as sent. */
Test(server, cohere_max_tokens_per_doc_cuts_each_document)
{
    served s = serve_start(tmp, model, NULL);
    /* one token a word; "\u16a0" (runic) takes 2 tokens, "\U00013000" 3; "\U0001D160" (4
     * bytes) is 3 characters of 2 tokens each in NFC, the form the tokenizer reads */
    enum { N = 4 };
    const char *sent[N] = {"The capital of China is Beijing.", "\u16a0\u16a0", "\U00013000x",
                           "\U0001D160"};
    const char *cut3[N] = {"The capital of", "\u16a0", "\U00013000", "\U0001D158"};
    const char *cut1[N] = {"The", "", "", ""};
    const char *cut4[N] = {"The capital of China", "\u16a0\u16a0", "\U00013000x",
                           "\U0001D158\U0001D165"};
    const char *const *want_docs[] = {cut3, cut1, cut4};
    const int max[] = {3, 1, 4};
    for (int c = 0; c < 3; c++) {
        double want[N];
        cli_logits(Q, want_docs[c], N, NULL, want);
        char body[1024];
        snprintf(body, sizeof body, "{\"model\": \"m\", \"query\": \"%s\", \"documents\": "
                 "[\"%s\", \"%s\", \"%s\", \"%s\"], \"max_tokens_per_doc\": %d, "
                 "\"return_documents\": true}", Q, sent[0], sent[1], sent[2], sent[3], max[c]);
        http_result r = http(s.port, "/v2/rerank", body);
        cr_assert_eq(r.status, 200, "%s", r.body);
        json_t *o = parse(&r), *res = json_object_get(o, "results");
        cr_assert_eq(json_array_size(res), N, "%s", r.body);
        for (size_t k = 0; k < N; k++) {
            json_t *x = json_array_get(res, k);
            size_t i = (size_t)json_integer_value(json_object_get(x, "index"));
            cr_assert_lt(i, N);
            cr_expect_leq(fabs(json_number_value(json_object_get(x, "relevance_score")) -
                               1 / (1 + exp(-want[i]))), 1e-5, "max %d, document %zu: %s",
                          max[c], i, r.body);
            cr_expect_str_eq(json_string_value(json_object_get(json_object_get(x, "document"),
                                                               "text")), sent[i]);
        }
        json_decref(o);
        free(r.body);
    }
    EXPECT_ERROR_AT(s.port, "/v2/rerank", "{\"query\": \"q\", \"documents\": [\"a\"], "
                    "\"max_tokens_per_doc\": 0}", 422, "invalid_request_error",
                    "max_tokens_per_doc");
    EXPECT_ERROR_AT(s.port, "/v1/rerank", "{\"query\": \"q\", \"documents\": [\"a\"], "
                    "\"max_tokens_per_doc\": \"8\"}", 422, "invalid_request_error",
                    "positive integer");
    cr_expect_eq(serve_stop(&s), 0);
}

/* vLLM serves /rerank, /v1/rerank and /v2/rerank with truncate_prompt_tokens and
 * use_activation, and Cohere's max_tokens_per_doc may come to any of them: each is taken on
 * every rerank route but TEI's. */
/* The relevance_score of document i in a Cohere-shaped answer's results (NAN if absent). */
static double score_of_document(json_t *results, size_t i)
{
    size_t k;
    json_t *x;
    json_array_foreach(results, k, x)
        if (json_integer_value(json_object_get(x, "index")) == (json_int_t)i)
            return json_number_value(json_object_get(x, "relevance_score"));
    return NAN;
}

Test(server, vllm_and_cohere_fields_on_every_rerank_route)
{
    served s = serve_start(tmp, model, NULL);
    /* case 0: the test's documents, prompts cut to 82 tokens; case 1: documents whose first 3
     * tokens are known (as in cohere_max_tokens_per_doc_cuts_each_document), cut to them */
    const char *sent[N_DOCS] = {"The capital of China is Beijing.", "\u16a0\u16a0",
                                "\U00013000x", "\U0001D160"};
    const char *cut3[N_DOCS] = {"The capital of", "\u16a0", "\U00013000", "\U0001D158"};
    const char *const *docs[2] = {DOCS, sent};
    const char *field[2] = {"\"truncate_prompt_tokens\": 82", "\"max_tokens_per_doc\": 3"};
    double want[2][N_DOCS];
    cli_logits_cut(Q, DOCS, N_DOCS, NULL, 82, want[0]);
    cli_logits(Q, cut3, N_DOCS, NULL, want[1]);
    const char *routes[] = {"/rerank", "/v1/rerank", "/v2/rerank"};
    for (int k = 0; k < 3; k++) {
        for (int c = 0; c < 2; c++) {
            char body[1024];
            snprintf(body, sizeof body, "{\"query\": \"%s\", \"documents\": [\"%s\", \"%s\", "
                     "\"%s\", \"%s\"], \"use_activation\": false, %s}", Q, docs[c][0],
                     docs[c][1], docs[c][2], docs[c][3], field[c]);
            http_result r = http(s.port, routes[k], body);
            cr_assert_eq(r.status, 200, "%s %s: %s", routes[k], body, r.body);
            json_t *o = parse(&r), *res = json_object_get(o, "results");
            cr_assert_eq(json_array_size(res), N_DOCS, "%s", r.body);
            for (size_t i = 0; i < N_DOCS; i++)
                cr_expect_leq(fabs(score_of_document(res, i) - want[c][i]), 1e-4,
                              "%s, %s, document %zu: %s", routes[k], field[c], i, r.body);
            json_decref(o);
            free(r.body);
        }
    }
    EXPECT_ERROR_AT(s.port, "/v2/rerank", "{\"query\": \"q\", \"documents\": [\"a\"], "
                    "\"truncate_prompt_tokens\": 0}", 422, "invalid_request_error",
                    "truncate_prompt_tokens");
    /* on /rerank, in vLLM's shape (a nested error object) with its 400 */
    const char *bad[][2] = {{"\"truncate_prompt_tokens\": 5", "no room"},
                            {"\"max_tokens_per_doc\": -3", "max_tokens_per_doc"}};
    for (int b = 0; b < 2; b++) {
        char body[256];
        snprintf(body, sizeof body, "{\"query\": \"q\", \"documents\": [\"a\"], %s}", bad[b][0]);
        http_result r = http(s.port, "/rerank", body);
        cr_expect_eq(r.status, 400, "%s: %s", body, r.body);
        json_t *o = parse(&r);
        const char *msg = json_string_value(json_object_get(json_object_get(o, "error"), "message"));
        cr_expect(msg && strstr(msg, bad[b][1]), "%s: %s", body, r.body);
        json_decref(o);
        free(r.body);
    }
    cr_expect_eq(serve_stop(&s), 0);
}

Test(server, errors)
{
    const char *extra[] = {"--payload-limit", "4096", "--max-client-batch-size", "3",
                           "--max-documents", "4", "--max-request-tokens", "400", NULL};
    served s = serve_start(tmp, model, extra);
    EXPECT_ERROR("/rerank", "{\"query\": \"q\", \"texts\": []}", 400, "empty", "texts");
    EXPECT_ERROR("/rerank", "{\"query\": \"q\", \"texts\": [\"a\", \"b\", \"c\", \"d\"]}", 422,
                 "validation", "--max-client-batch-size");
    /* the Cohere and Jina routes have their own limit */
    EXPECT_ERROR("/v2/rerank", "{\"query\": \"q\", \"documents\": [\"a\", \"b\", \"c\", \"d\", "
                 "\"e\"]}", 422, "invalid_request_error", "at most 4 per request (--max-documents)");
    http_result four = http(s.port, "/v1/rerank", "{\"query\": \"q\", \"documents\": [\"a\", "
                            "\"b\", \"c\", \"d\"]}");
    cr_expect_eq(four.status, 200, "%s", four.body);
    free(four.body);
    /* every prompt repeats the query: a long one with a few documents is over the prompt
     * tokens a request may hold, though its body is small */
    char long_query[1000];
    int k = snprintf(long_query, sizeof long_query, "{\"query\": \"");
    for (int i = 0; i < 100; i++)
        k += snprintf(long_query + k, sizeof long_query - (size_t)k, "word ");
    snprintf(long_query + k, sizeof long_query - (size_t)k, "\", \"documents\": [\"a\", \"b\", \"c\"]}");
    EXPECT_ERROR("/v2/rerank", long_query, 413, "invalid_request_error",
                 "over the limit of 400 a request (--max-request-tokens)");
    EXPECT_ERROR("/rerank", "{\"query\": \"q\", \"texts\": [\"a\"", 400, "validation", "JSON");
    EXPECT_ERROR("/rerank", "[1, 2]", 422, "validation", "object");
    EXPECT_ERROR("/rerank", "null", 422, "validation", "object"); /* JSON, not an object */
    EXPECT_ERROR("/rerank", "5", 422, "validation", "object");
    EXPECT_ERROR("/rerank", "\"x\"", 422, "validation", "object");
    EXPECT_ERROR("/rerank", "{\"texts\": [\"a\"]}", 422, "validation", "query");
    EXPECT_ERROR("/rerank", "{\"query\": 5, \"texts\": [\"a\"]}", 422, "validation", "query");
    EXPECT_ERROR("/rerank", "{\"query\": \"q\", \"texts\": \"a\"}", 422, "validation", "texts");
    EXPECT_ERROR("/rerank", "{\"query\": \"q\", \"texts\": [\"a\", 3]}", 422, "validation",
                 "\"texts\"[1]");
    EXPECT_ERROR("/rerank", "{\"query\": \"q\", \"texts\": [\"a\"], \"raw_scores\": \"yes\"}", 422,
                 "validation", "raw_scores");
    EXPECT_ERROR("/rerank", "{\"query\": \"q\", \"texts\": [\"a\"], \"instruction\": 1}", 422,
                 "validation", "instruction");
    EXPECT_ERROR("/rerank", "{\"query\": \"q\", \"texts\": [\"a\"], \"truncation_direction\": "
                 "\"left\"}", 422, "validation", "truncation_direction");
    EXPECT_ERROR("/rerank", "{\"query\": \"q\", \"texts\": [\"a\"], \"truncation_direction\": "
                 "\"right\\u0000x\"}", 422, "validation", "NUL");
    EXPECT_ERROR("/v1/rerank", "{\"query\": \"q\", \"documents\": [\"a\"], \"model\": "
                 "\"m\\u0000hidden\"}", 422, "invalid_request_error", "\"model\"");
    /* invalid UTF-8 inside a JSON string */
    const char bad_utf8[] = "{\"query\": \"q\xff\", \"texts\": [\"a\"]}";
    expect_error(s.port, "/rerank", bad_utf8, sizeof bad_utf8 - 1, 400, "validation", "UTF-8");
    /* the payload limit (4096 bytes here): by Content-Length and by the bytes sent */
    char *big = malloc(6000);
    snprintf(big, 6000, "{\"query\": \"q\", \"texts\": [\"%0*d\"]}", 5000, 1);
    EXPECT_ERROR("/rerank", big, 413, "validation", "--payload-limit");
    /* a body of many tiny values (which a parsed tree would make tens of times larger) is
     * refused unparsed: here over 4 documents x 16 + 1024 values; commas inside a string
     * are text, not values */
    size_t at = (size_t)snprintf(big, 6000, "{\"query\": \"q\", \"texts\": [\"a\"], \"x\": [");
    for (int i = 0; i < 1100; i++) at += (size_t)snprintf(big + at, 6000 - at, "%s[]", i ? "," : "");
    snprintf(big + at, 6000 - at, "]}");
    EXPECT_ERROR("/rerank", big, 413, "validation", "JSON values");
    at = (size_t)snprintf(big, 6000, "{\"query\": \"q\", \"texts\": [\"");
    for (int i = 0; i < 2000; i++) big[at++] = ',';
    snprintf(big + at, 6000 - at, "\\\"\"]}");
    http_result commas = http(s.port, "/rerank", big);
    cr_expect_eq(commas.status, 200, "%ld %s", commas.status, commas.body);
    free(commas.body);
    free(big);
    EXPECT_ERROR("/rerank", "{\"query\": \"q\", \"query\": \"r\", \"texts\": [\"a\"]}", 400,
                 "validation", "duplicate");
    /* a wrong method gets the route's own error shape */
    expect_error(s.port, "/rerank", NULL, 0, 405, "not_found", "POST");
    expect_error(s.port, "/v1/rerank", NULL, 0, 405, "not_found_error", "POST");
    EXPECT_ERROR("/v1/rerank", "{\"query\": \"q\", \"documents\": []}", 400, NULL, "documents");
    EXPECT_ERROR("/v2/rerank", "{\"query\": \"q\", \"documents\": [{\"txt\": \"a\"}]}", 422,
                 "invalid_request_error", "\"documents\"[0]");
    EXPECT_ERROR("/v2/rerank", "{\"query\": \"q\", \"documents\": [\"a\"], \"top_n\": 0}", 422,
                 "invalid_request_error", "top_n");
    EXPECT_ERROR("/v1/rerank", "{\"query\": \"q\", \"documents\": [\"a\"], \"return_documents\": 1}",
                 422, NULL, "return_documents");
    http_result r = http(s.port, "/nowhere", NULL);
    cr_expect_eq(r.status, 404);
    free(r.body);
    expect_error(s.port, "/v2/rerank/x", NULL, 0, 404, "not_found_error", "no such route");
    /* a number past 64 bits is valid JSON: said so, even in a field no route reads */
    EXPECT_ERROR("/rerank", "{\"query\": \"q\", \"texts\": [\"a\"], \"x\": 1e400}", 400, NULL,
                 "number out of range");
    EXPECT_ERROR("/rerank", "{\"query\": \"q\", \"texts\": [\"a\"], \"x\": [}", 400, NULL,
                 "not valid JSON");
    /* a byte-order mark before the JSON is skipped, as qrr score skips it */
    r = http(s.port, "/rerank", "\xef\xbb\xbf{\"query\": \"q\", \"texts\": [\"a\"]}");
    cr_expect_eq(r.status, 200, "%s", r.body);
    free(r.body);
    /* an escaped NUL does not end the path early: "/health%00x" is no "/health" */
    r = http(s.port, "/health%00x", NULL);
    cr_expect_eq(r.status, 404, "%ld %s", r.status, r.body);
    free(r.body);
    r = http(s.port, "/he%61lth", NULL); /* other escapes are decoded as before */
    cr_expect_eq(r.status, 200, "%ld %s", r.status, r.body);
    free(r.body);
    r = http(s.port, "/metrics", NULL);
    cr_expect(strstr(r.body, "qrr_request_failure{route=\"/rerank\",reason=\"too_large\"} 2"),
              "%s", r.body);
    cr_expect(strstr(r.body, "qrr_request_failure{route=\"/v1/rerank\",reason=\"not_found\"} 1"),
              "%s", r.body);
    cr_expect(strstr(r.body, "qrr_request_failure{route=\"/rerank\",reason=\"empty\"} 1"));
    free(r.body);
    cr_expect_eq(serve_stop(&s), 0);
}

/* POST a body of `total` bytes in chunks of 1,000 (no Content-Length) on a raw connection;
 * what the server answers until it closes or 5 s pass. */
static char *post_chunked(int port, size_t total, int *closed)
{
    int fd = raw_connect(port);
    raw_send(fd, "POST /rerank HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
                 "Transfer-Encoding: chunked\r\n\r\n");
    char chunk[1008];
    memcpy(chunk, "3e8\r\n", 5);
    memset(chunk + 5, 'a', 1000);
    memcpy(chunk + 1005, "\r\n", 2);
    /* the server may close before the end: later sends then fail, which is fine */
    for (size_t sent = 0; sent < total; sent += 1000)
        if (send(fd, chunk, 1007, MSG_NOSIGNAL) != 1007) break;
    send(fd, "0\r\n\r\n", 5, MSG_NOSIGNAL);
    char *got = raw_read_all(fd, 5.0, closed);
    close(fd);
    return got;
}

Test(server, chunked_body_over_the_limit)
{
    const char *extra[] = {"--payload-limit", "4096", NULL};
    served s = serve_start(tmp, model, extra);
    int closed;
    /* over the limit, ended soon after: a 413 with the JSON error once the body has ended */
    char *got = post_chunked(s.port, 6000, &closed);
    cr_expect(!strncmp(got, "HTTP/1.1 413", 12), "%.300s", got);
    cr_expect(strstr(got, "\"error_type\":\"validation\"") && strstr(got, "--payload-limit"),
              "%.600s", got);
    free(got);
    /* far over it: the connection is closed once 4 times the limit has come */
    got = post_chunked(s.port, 200000, &closed);
    cr_expect(closed, "the connection stayed open");
    cr_expect(!strstr(got, "HTTP/1.1 200"), "%.300s", got);
    free(got);
    http_result r = http(s.port, "/rerank", tei_body(""));
    cr_expect_eq(r.status, 200, "served after them: %s", r.body);
    free(r.body);
    r = http(s.port, "/metrics", NULL);
    cr_expect(strstr(r.body, "qrr_request_failure{route=\"/rerank\",reason=\"too_large\"} 2"),
              "%s", r.body);
    free(r.body);
    cr_expect_eq(serve_stop(&s), 0);
}

/* `method path` with no body: the status, the headers and what body came back. */
static http_result request_method(int port, const char *method, const char *path)
{
    http_result r = {0};
    char url[256];
    snprintf(url, sizeof url, "http://127.0.0.1:%d%s", port, path);
    CURL *c = curl_easy_init();
    curl_easy_setopt(c, CURLOPT_URL, url);
    if (!strcmp(method, "HEAD")) curl_easy_setopt(c, CURLOPT_NOBODY, 1L);
    else curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, collect_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &r);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, collect_header);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, &r);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, 10L);
    cr_expect_eq(curl_easy_perform(c), CURLE_OK, "%s %s", method, path);
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r.status);
    curl_easy_cleanup(c);
    if (!r.body) r.body = strdup("");
    return r;
}

Test(server, methods)
{
    served s = serve_start(tmp, model, NULL);
    static const struct {
        const char *method, *path;
        long status;
        const char *allow;
    } cases[] = {{"GET", "/rerank", 405, "Allow: POST"},
                 {"PUT", "/v2/rerank", 405, "Allow: POST"},
                 {"POST", "/health", 405, "Allow: GET, HEAD"},
                 {"DELETE", "/metrics", 405, "Allow: GET, HEAD"},
                 {"HEAD", "/health", 200, NULL},
                 {"HEAD", "/info", 200, NULL},
                 {"HEAD", "/rerank", 405, "Allow: POST"}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        http_result r = request_method(s.port, cases[i].method, cases[i].path);
        cr_expect_eq(r.status, cases[i].status, "%s %s: %ld", cases[i].method, cases[i].path,
                     r.status);
        if (cases[i].allow)
            cr_expect(has_header(&r, cases[i].allow), "%s %s lacks '%s': %s", cases[i].method,
                      cases[i].path, cases[i].allow, r.headers);
        if (!strcmp(cases[i].method, "HEAD")) cr_expect_eq(r.len, 0, "HEAD got a body");
        free(r.body);
    }
    cr_expect_eq(serve_stop(&s), 0);
}

/* One whole POST /rerank on a new connection with the extra header lines; the answer. */
static char *post_with_headers(int port, const char *headers, const char *body)
{
    char head[512];
    snprintf(head, sizeof head, "POST /rerank HTTP/1.1\r\nHost: x\r\nConnection: close\r\n%s"
             "Content-Length: %zu\r\n\r\n", headers, strlen(body));
    int fd = raw_connect(port);
    raw_send(fd, head);
    raw_send(fd, body);
    int closed;
    char *answer = raw_read_all(fd, 10.0, &closed);
    close(fd);
    return answer;
}

Test(server, an_encoded_body_is_refused_and_any_content_type_is_read_as_json)
{
    served s = serve_start(tmp, model, NULL);
    char *a = post_with_headers(s.port, "Content-Encoding: gzip\r\n", tei_body(""));
    cr_expect(!strncmp(a, "HTTP/1.1 415 ", 13) && strstr(a, "Content-Encoding \\\"gzip\\\""),
              "%s", a);
    free(a);
    const char *types[] = {"Content-Type: text/plain\r\n",
                           "Content-Type: application/x-www-form-urlencoded\r\n", "",
                           "Content-Encoding: identity\r\n", "Content-Encoding:\r\n"};
    for (size_t i = 0; i < sizeof types / sizeof *types; i++) {
        a = post_with_headers(s.port, types[i], tei_body(""));
        cr_expect(!strncmp(a, "HTTP/1.1 200 ", 13), "%s: %s", types[i], a);
        free(a);
    }
    cr_expect_eq(serve_stop(&s), 0);
}

/* Framing a proxy in front could read otherwise: Content-Length headers that disagree are a
 * 400, a transfer coding other than chunked a 501, each answered at once; the same length
 * twice and chunked alone are read as usual. */
Test(server, framing_that_could_be_read_two_ways_is_refused)
{
    served s = serve_start(tmp, model, NULL);
    char *a = post_with_headers(s.port, "Content-Length: 5\r\n", tei_body(""));
    cr_expect(!strncmp(a, "HTTP/1.1 400 ", 13) && strstr(a, "disagree"), "%s", a);
    free(a);
    /* a first length of 0 (no body for libmicrohttpd) and a second that holds a request:
     * one answer, the refusal, and the connection closed, so the hidden request is never
     * served */
    {
        const char *hidden = "GET /info HTTP/1.1\r\nHost: x\r\n\r\n";
        char req[512];
        snprintf(req, sizeof req, "POST /rerank HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n"
                 "Content-Length: %zu\r\n\r\n%s", strlen(hidden), hidden);
        int fd = raw_connect(s.port), closed;
        raw_send(fd, req);
        a = raw_read_all(fd, 10.0, &closed);
        close(fd);
        cr_expect(!strncmp(a, "HTTP/1.1 400 ", 13) && closed, "%s", a);
        cr_expect(!strstr(a + 13, "HTTP/1.1 "), "a second answer: %s", a);
        free(a);
    }
    a = post_with_headers(s.port, "Transfer-Encoding: chunked\r\n", tei_body(""));
    cr_expect(!strncmp(a, "HTTP/1.1 400 ", 13) && strstr(a, "both"), "%s", a);
    free(a);
    char twice[64];
    snprintf(twice, sizeof twice, "Content-Length: %zu\r\n", strlen(tei_body("")));
    a = post_with_headers(s.port, twice, tei_body(""));
    cr_expect(!strncmp(a, "HTTP/1.1 200 ", 13), "%s", a);
    free(a);
    const char *codings[] = {"gzip, chunked", "chunked", "identity"};
    const char *want[] = {"HTTP/1.1 501 ", "HTTP/1.1 200 ", "HTTP/1.1 501 "};
    for (int i = 0; i < 3; i++) {
        char req[4096];
        const char *body = tei_body("");
        snprintf(req, sizeof req, "POST /rerank HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
                 "Transfer-Encoding: %s\r\n\r\n%zx\r\n%s\r\n0\r\n\r\n", codings[i],
                 strlen(body), body);
        int fd = raw_connect(s.port), closed;
        raw_send(fd, req);
        a = raw_read_all(fd, 10.0, &closed);
        close(fd);
        cr_expect(!strncmp(a, want[i], 13), "%s: %s", codings[i], a);
        free(a);
    }
    cr_expect_eq(serve_stop(&s), 0);
}

/* A raw request of method to path with the extra header lines and no body; the answer. */
static char *raw_request(int port, const char *method, const char *path, const char *headers)
{
    char req[1024];
    snprintf(req, sizeof req, "%s %s HTTP/1.1\r\nHost: x\r\nConnection: close\r\n%s\r\n",
             method, path, headers);
    int fd = raw_connect(port), closed;
    raw_send(fd, req);
    char *answer = raw_read_all(fd, 10.0, &closed);
    close(fd);
    return answer;
}

/* A request target in absolute form, as a forward proxy sends it, is routed by its path. */
Test(server, a_target_in_absolute_form_is_routed_by_its_path)
{
    served s = serve_start(tmp, model, NULL);
    char url[64];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/health", s.port);
    char *a = raw_request(s.port, "GET", url, "");
    cr_expect(!strncmp(a, "HTTP/1.1 200 ", 13), "%s", a);
    free(a);
    a = raw_request(s.port, "GET", "HTTPS://x/v1/nowhere", ""); /* the /v1 404 shape */
    cr_expect(!strncmp(a, "HTTP/1.1 404 ", 13) && strstr(a, "not_found_error"), "%s", a);
    free(a);
    a = raw_request(s.port, "GET", "http://x", ""); /* no path: "/", no route */
    cr_expect(!strncmp(a, "HTTP/1.1 404 ", 13), "%s", a);
    free(a);
    cr_expect_eq(serve_stop(&s), 0);
}

/* --cors-allow-origin: a preflight from an allowed origin is answered (before the API key,
 * which a browser does not send with it), answers carry Access-Control-Allow-Origin for an
 * allowed origin only; without the option, nothing changes (OPTIONS is a 405). */
Test(server, cross_origin_requests_from_the_allowed_origins_only)
{
    const char *extra[] = {"--cors-allow-origin", "https://a.example, https://b.example:8443",
                           "--api-key", "sesame", NULL};
    served s = serve_start(tmp, model, extra);
    char *a = raw_request(s.port, "OPTIONS", "/v1/rerank", "Origin: https://a.example\r\n"
                          "Access-Control-Request-Method: POST\r\n");
    cr_expect(!strncmp(a, "HTTP/1.1 204 ", 13), "%s", a);
    cr_expect(strstr(a, "Access-Control-Allow-Origin: https://a.example\r\n") &&
              strstr(a, "Access-Control-Allow-Methods: POST, OPTIONS") &&
              strstr(a, "authorization, content-type") && strstr(a, "Vary: Origin"), "%s", a);
    free(a);
    /* the headers a browser client asks to send are allowed (a list of names only) */
    a = raw_request(s.port, "OPTIONS", "/v2/rerank", "Origin: https://a.example\r\n"
                    "Access-Control-Request-Headers: authorization, x-client-name\r\n");
    cr_expect(strstr(a, "Access-Control-Allow-Headers: authorization, x-client-name\r\n"), "%s", a);
    free(a);
    a = raw_request(s.port, "OPTIONS", "/health", "Origin: https://b.example:8443\r\n");
    cr_expect(strstr(a, "Access-Control-Allow-Methods: GET, HEAD, OPTIONS"), "%s", a);
    free(a);
    /* another origin's preflight gets no allowance; nor does a route that does not exist */
    a = raw_request(s.port, "OPTIONS", "/rerank", "Origin: https://evil.example\r\n");
    cr_expect(!strncmp(a, "HTTP/1.1 204 ", 13) && !strstr(a, "Access-Control-Allow-Origin"),
              "%s", a);
    free(a);
    a = raw_request(s.port, "OPTIONS", "/nowhere", "Origin: https://a.example\r\n");
    cr_expect(!strncmp(a, "HTTP/1.1 404 ", 13), "%s", a);
    free(a);
    /* the answers themselves: the allowed origin named, another not */
    char head[256];
    snprintf(head, sizeof head, "Authorization: Bearer sesame\r\nOrigin: https://b.example:8443\r\n");
    a = post_with_headers(s.port, head, tei_body(""));
    cr_expect(!strncmp(a, "HTTP/1.1 200 ", 13) &&
              strstr(a, "Access-Control-Allow-Origin: https://b.example:8443\r\n"), "%s", a);
    free(a);
    a = post_with_headers(s.port, "Origin: https://a.example\r\n", tei_body("")); /* no key */
    cr_expect(!strncmp(a, "HTTP/1.1 401 ", 13) && strstr(a, "Access-Control-Allow-Origin"),
              "the browser must be able to read the refusal: %s", a);
    free(a);
    a = post_with_headers(s.port, "Authorization: Bearer sesame\r\nOrigin: https://c.example\r\n",
                          tei_body(""));
    cr_expect(!strncmp(a, "HTTP/1.1 200 ", 13) && !strstr(a, "Access-Control-Allow-Origin"),
              "%s", a);
    cr_expect(strstr(a, "Vary: Origin"), "a cache must not give it to another origin: %s", a);
    free(a);
    cr_expect_eq(serve_stop(&s), 0);

    const char *any[] = {"--cors-allow-origin", "*", NULL};
    s = serve_start(tmp, model, any);
    a = post_with_headers(s.port, "Origin: https://c.example\r\n", tei_body(""));
    cr_expect(strstr(a, "Access-Control-Allow-Origin: *\r\n") && !strstr(a, "Vary: Origin"),
              "%s", a);
    free(a);
    cr_expect_eq(serve_stop(&s), 0);

    s = serve_start(tmp, model, NULL);
    a = raw_request(s.port, "OPTIONS", "/rerank", "Origin: https://a.example\r\n");
    cr_expect(!strncmp(a, "HTTP/1.1 405 ", 13) && !strstr(a, "Access-Control"), "%s", a);
    free(a);
    cr_expect_eq(serve_stop(&s), 0);
    /* a value no browser's Origin could match is a usage error */
    const char *bad[] = {"a.example", "https://a.example/", "https://a https://b", "https://",
                         "https://a.example:443", "https://a,"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
        cr_expect_eq(tu_system("'%s/qrr' serve '%s' --cors-allow-origin '%s' 2>/dev/null",
                               tu_build(), model, bad[i]), 2, "%s", bad[i]);
}

Test(server, a_refused_request_without_a_body_keeps_its_connection)
{
    const char *extra[] = {"--api-key", "sesame", NULL};
    served s = serve_start(tmp, model, extra);
    CURL *keep = curl_easy_init();
    static const struct {
        const char *path, *body;
        long status;
        long connects; /* new connections the request needed */
    } steps[] = {{"/health", NULL, 200, 1}, {"/nope", NULL, 404, 0}, {"/info", NULL, 401, 0},
                 {"/rerank", NULL, 405, 0}, {"/health", NULL, 200, 0},
                 /* a refusal before an unread body closes the connection; the next request
                  * opens another */
                 {"/rerank", "{\"query\":\"q\",\"texts\":[\"d\"]}", 401, 0},
                 {"/health", NULL, 200, 1}};
    for (size_t i = 0; i < sizeof steps / sizeof steps[0]; i++) {
        const char *b = steps[i].body;
        http_result r = http_on(keep, s.port, steps[i].path, b, b ? strlen(b) : 0, NULL);
        long connects = -1;
        curl_easy_getinfo(keep, CURLINFO_NUM_CONNECTS, &connects);
        cr_expect_eq(r.status, steps[i].status, "step %zu: %s %ld", i, steps[i].path, r.status);
        cr_expect_eq(connects, steps[i].connects, "step %zu: %s opened %ld connections", i,
                     steps[i].path, connects);
        free(r.body);
    }
    curl_easy_cleanup(keep);
    cr_expect_eq(serve_stop(&s), 0);
}

/* Whether this machine can listen on IPv6's loopback. */
static int have_ipv6_loopback(void)
{
    int fd = socket(AF_INET6, SOCK_STREAM, 0);
    struct sockaddr_in6 a = {.sin6_family = AF_INET6, .sin6_addr = IN6ADDR_LOOPBACK_INIT};
    int ok = fd >= 0 && bind(fd, (struct sockaddr *)&a, sizeof a) == 0;
    if (fd >= 0) close(fd);
    return ok;
}

Test(server, ipv6_address_in_brackets)
{
    if (!have_ipv6_loopback()) cr_skip_test("no IPv6 loopback here");
    const char *extra[] = {"--host", "::1", NULL};
    served s = serve_start(tmp, model, extra);
    char *text = tu_slurp(s.log, NULL);
    char want[64], url[64];
    snprintf(want, sizeof want, "listening on http://[::1]:%d ", s.port);
    cr_expect(strstr(text, want), "'%s' not in: %s", want, text);
    free(text);
    snprintf(url, sizeof url, "http://[::1]:%d/health", s.port);
    CURL *c = curl_easy_init();
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_NOBODY, 1L);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, 10L);
    long status = 0;
    cr_expect_eq(curl_easy_perform(c), CURLE_OK);
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
    curl_easy_cleanup(c);
    cr_expect_eq(status, 200, "GET %s: %ld", url, status);
    cr_expect_eq(serve_stop(&s), 0);
}

Test(server, truncate_false_refuses_what_does_not_fit)
{
    /* a copy of the model whose default max_length is 120 tokens */
    char sub[512], dir[1100], small[1100];
    snprintf(sub, sizeof sub, "%s/small", tmp);
    cr_assert_eq(mkdir(sub, 0755), 0);
    tu_model_dir("tiny-tied", sub, dir, sizeof dir);
    snprintf(small, sizeof small, "%s/small.qrr", tmp);
    cr_assert_eq(tu_system("'%s/qconvert' '%s' -o '%s' --dtype f32 --max-length 120 --quiet",
                           tu_build(), dir, small), 0);
    served s = serve_start(tmp, small, NULL);
    char body[4096] = "{\"query\": \"q\", \"texts\": [\"short\", \"";
    for (int i = 0; i < 100; i++) strcat(body, "word ");
    strcat(body, "\"]");
    char refused[4200];
    snprintf(refused, sizeof refused, "%s, \"truncate\": false}", body);
    EXPECT_ERROR("/rerank", refused, 422, "validation", "\"texts\"[1]");
    strcat(body, "}");
    http_result r = http(s.port, "/rerank", body);
    cr_expect_eq(r.status, 200, "truncate defaults to cutting the document: %s", r.body);
    free(r.body);
    /* a query that alone does not fit (not cut) is the query's fault, not "texts"[0]'s */
    char longq[4200] = "{\"query\": \"";
    for (int i = 0; i < 100; i++) strcat(longq, "word ");
    strcat(longq, "\", \"texts\": [\"a\", \"b\"], \"truncate\": false}");
    r = http(s.port, "/rerank", longq);
    cr_expect_eq(r.status, 422, "%s", r.body);
    cr_expect(strstr(r.body, "query") && !strstr(r.body, "texts"), "%s", r.body);
    free(r.body);
    cr_expect_eq(serve_stop(&s), 0);
}

Test(server, api_key)
{
    const char *extra[] = {"--api-key", "s3cret", NULL};
    served s = serve_start(tmp, model, extra);
    const char *body = "{\"query\": \"q\", \"texts\": [\"a\"]}";
    http_result r = http(s.port, "/rerank", body);
    cr_expect_eq(r.status, 401, "%s", r.body);
    free(r.body);
    r = http_on(NULL, s.port, "/rerank", body, strlen(body), "Bearer wrong");
    cr_expect_eq(r.status, 401);
    free(r.body);
    r = http_on(NULL, s.port, "/rerank", body, strlen(body), "Bearer s3cret");
    cr_expect_eq(r.status, 200, "%s", r.body);
    free(r.body);
    r = http_on(NULL, s.port, "/rerank", body, strlen(body), "bearer  s3cret");
    cr_expect_eq(r.status, 200, "the scheme's name has no case: %s", r.body);
    free(r.body);
    /* blanks around the key are not part of it; anything else is */
    const char *right[] = {"Bearer s3cret ", "Bearer\ts3cret\t", "BEARER \t s3cret \t "};
    const char *wrong[] = {"Bearers3cret", "Bearer s3cre", "Bearer s3crett", "Bearer s3cret x",
                           "Basic s3cret", "Bearer ", "s3cret"};
    for (size_t i = 0; i < sizeof right / sizeof right[0]; i++) {
        r = http_on(NULL, s.port, "/rerank", body, strlen(body), right[i]);
        cr_expect_eq(r.status, 200, "\"%s\": %ld", right[i], r.status);
        free(r.body);
    }
    for (size_t i = 0; i < sizeof wrong / sizeof wrong[0]; i++) {
        r = http_on(NULL, s.port, "/rerank", body, strlen(body), wrong[i]);
        cr_expect_eq(r.status, 401, "\"%s\": %ld", wrong[i], r.status);
        free(r.body);
    }
    r = http_on(NULL, s.port, "/info", NULL, 0, NULL);
    cr_expect_eq(r.status, 401);
    free(r.body);
    r = http(s.port, "/health", NULL);
    cr_expect_eq(r.status, 200, "/health needs no key");
    free(r.body);
    r = http(s.port, "/metrics", NULL);
    cr_expect_eq(r.status, 200, "/metrics needs no key");
    free(r.body);
    cr_expect_eq(serve_stop(&s), 0);
}

Test(server, health_info_metrics)
{
    served s = serve_start(tmp, model, NULL);
    http_result r = http(s.port, "/health", NULL);
    cr_expect_eq(r.status, 200);
    free(r.body);
    r = http(s.port, "/info", NULL);
    cr_expect_eq(r.status, 200);
    json_t *o = parse(&r);
    cr_expect_str_eq(json_string_value(json_object_get(o, "model_id")), "tiny-tied-f32");
    cr_expect_not_null(json_object_get(o, "version"));
    cr_expect_str_eq(json_string_value(json_object_get(o, "model_dtype")), "f32");
    cr_expect_eq(json_integer_value(json_object_get(o, "layers")), 3);
    cr_expect_eq(json_integer_value(json_object_get(o, "max_input_length")), 8192);
    cr_expect_eq(json_integer_value(json_object_get(json_object_get(o, "limits"),
                                                    "max_client_batch_size")), 32);
    cr_expect_eq(json_integer_value(json_object_get(json_object_get(o, "limits"),
                                                    "max_documents")), 1000);
    /* text-embeddings-inference's keys, which its clients read to tell a reranker */
    cr_expect(json_is_object(json_object_get(json_object_get(o, "model_type"), "reranker")),
              "%s", r.body);
    cr_expect_eq(json_integer_value(json_object_get(o, "max_client_batch_size")), 32);
    cr_expect_eq(json_integer_value(json_object_get(o, "max_concurrent_requests")), 512);
    cr_expect_eq(json_integer_value(json_object_get(o, "max_batch_tokens")),
                 qrr_default_max_batch_tokens(QRR_DEVICE_CPU));
    cr_expect(json_is_true(json_object_get(o, "auto_truncate")), "%s", r.body);
    cr_expect_eq(json_integer_value(json_object_get(json_object_get(o, "limits"),
                                                    "max_batch_tokens")),
                 qrr_default_max_batch_tokens(QRR_DEVICE_CPU), "the CPU's default, resolved");
    json_decref(o);
    free(r.body);
    r = http(s.port, "/rerank", tei_body(""));
    free(r.body);
    r = http(s.port, "/metrics", NULL);
    cr_expect_eq(r.status, 200);
    const char *must[] = {"qrr_request_count{route=\"/rerank\"} 1",
                          "qrr_request_success{route=\"/rerank\"} 1",
                          /* the rerank request alone: not /health, /info or /metrics */
                          "qrr_request_duration_seconds_count 1\n",
                          "qrr_queue_duration_seconds_bucket",
                          "qrr_tokenization_duration_seconds_sum",
                          "qrr_inference_duration_seconds_count 1",
                          "qrr_batch_size_sum 4", "qrr_batch_tokens_count 1", "qrr_queue_size 0"};
    for (size_t i = 0; i < sizeof must / sizeof *must; i++)
        cr_expect(strstr(r.body, must[i]) != NULL, "/metrics lacks '%s'", must[i]);
    free(r.body);
    cr_expect_eq(serve_stop(&s), 0);
}

/* ---- many clients at once ------------------------------------------------------------ */

#define CLIENTS 64
typedef struct client {
    int port, id;
    double want[3];  /* qrr score's logits for its three documents */
    double got[3];
    long status;
} client;

static void client_docs(int id, const char *docs[3], char storage[3][96])
{
    for (int d = 0; d < 3; d++) {
        snprintf(storage[d], 96, "Document %d of client %d: %s", d, id, DOCS[(id + d) % N_DOCS]);
        docs[d] = storage[d];
    }
}

static void client_query(int id, char *q, size_t n)
{
    snprintf(q, n, "Question %d: which city is a capital?", id % 5);
}

static void *client_run(void *arg)
{
    client *c = arg;
    char storage[3][96], q[96], body[1024];
    const char *docs[3];
    client_docs(c->id, docs, storage);
    client_query(c->id, q, sizeof q);
    snprintf(body, sizeof body, "{\"query\": \"%s\", \"texts\": [\"%s\", \"%s\", \"%s\"], "
             "\"raw_scores\": true}", q, docs[0], docs[1], docs[2]);
    http_result r = http(c->port, "/rerank", body);
    c->status = r.status;
    json_t *a = json_loads(r.body, 0, NULL);
    for (size_t k = 0; a && k < json_array_size(a); k++) {
        json_t *e = json_array_get(a, k);
        int i = (int)json_integer_value(json_object_get(e, "index"));
        if (i >= 0 && i < 3) c->got[i] = json_number_value(json_object_get(e, "score"));
    }
    json_decref(a);
    free(r.body);
    return NULL;
}

Test(server, sixty_four_clients_get_qrr_score_results)
{
    served s = serve_start(tmp, model, NULL);
    static client cl[CLIENTS];
    pthread_t th[CLIENTS];
    for (int i = 0; i < CLIENTS; i++) {
        char storage[3][96], q[96];
        const char *docs[3];
        client_docs(i, docs, storage);
        client_query(i, q, sizeof q);
        cl[i] = (client){.port = s.port, .id = i};
        cli_logits(q, docs, 3, NULL, cl[i].want);
    }
    for (int i = 0; i < CLIENTS; i++) pthread_create(&th[i], NULL, client_run, &cl[i]);
    for (int i = 0; i < CLIENTS; i++) pthread_join(th[i], NULL);
    for (int i = 0; i < CLIENTS; i++) {
        cr_expect_eq(cl[i].status, 200, "client %d: %ld", i, cl[i].status);
        for (int d = 0; d < 3; d++)
            cr_expect_leq(fabs(cl[i].got[d] - cl[i].want[d]), 1e-5, "client %d doc %d: %g, qrr "
                          "score %g", i, d, cl[i].got[d], cl[i].want[d]);
    }
    http_result r = http(s.port, "/metrics", NULL);
    const char *c = strstr(r.body, "qrr_inference_duration_seconds_count ");
    cr_assert_not_null(c);
    fprintf(stderr, "server: %d requests in %ld scheduler turns\n", CLIENTS,
            atol(c + strlen("qrr_inference_duration_seconds_count ")));
    free(r.body);
    cr_expect_eq(serve_stop(&s), 0);
}

/* The status line of an answer on a kept-alive connection (read up to its blank line). */
static long raw_status(int fd)
{
    struct timeval tv = {.tv_sec = 10};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    char buf[1024];
    size_t len = 0;
    while (len < sizeof buf - 1) {
        ssize_t k = recv(fd, buf + len, sizeof buf - 1 - len, 0);
        if (k <= 0) break;
        len += (size_t)k;
        buf[len] = '\0';
        if (strstr(buf, "\r\n\r\n")) break;
    }
    buf[len] = '\0';
    long status = 0;
    return sscanf(buf, "HTTP/1.1 %ld", &status) == 1 ? status : -1;
}

/* The most connections --max-concurrent-requests allows (900 + 64) are all served: they
 * stay below descriptor 1024, which the HTTP library's select() cannot watch past; one
 * more is a usage error. */
Test(server, the_most_connections_allowed_are_all_served)
{
    enum { CONNS = 900 + 64 };
    struct rlimit rl, was;
    cr_assert_eq(getrlimit(RLIMIT_NOFILE, &was), 0);
    if (was.rlim_max != RLIM_INFINITY && was.rlim_max < CONNS + 256)
        cr_skip_test("the hard descriptor limit (%llu) is below %d",
                     (unsigned long long)was.rlim_max, CONNS + 256);
    rl = was;
    rl.rlim_cur = 1024; /* the server starts under the common default */
    cr_assert_eq(setrlimit(RLIMIT_NOFILE, &rl), 0);
    const char *extra[] = {"--max-concurrent-requests", "900", NULL};
    served s = serve_start(tmp, model, extra);
    rl.rlim_cur = CONNS + 256; /* this side holds its ends of the connections */
    cr_assert_eq(setrlimit(RLIMIT_NOFILE, &rl), 0);
    static int fd[CONNS];
    for (int i = 0; i < CONNS; i++) {
        fd[i] = raw_connect(s.port);
        raw_send(fd[i], "GET /health HTTP/1.1\r\nHost: x\r\n\r\n");
    }
    int ok = 0;
    for (int i = 0; i < CONNS; i++) ok += raw_status(fd[i]) == 200;
    cr_expect_eq(ok, CONNS, "%d of %d connections answered 200", ok, CONNS);
    for (int i = 0; i < CONNS; i++) close(fd[i]);
    cr_expect_eq(serve_stop(&s), 0);
    setrlimit(RLIMIT_NOFILE, &was);
    char log[1100];
    snprintf(log, sizeof log, "%s/serve-901.log", tmp);
    cr_expect_eq(tu_system("'%s/qrr' serve '%s' --max-concurrent-requests 901 2> '%s'",
                           tu_build(), model, log), 2);
    char *text = tu_slurp(log, NULL);
    cr_expect(strstr(text, "--max-concurrent-requests must be 1..900"), "%s", text);
    free(text);
}

/* ---- clients that misbehave, and the drain ---------------------------------------------- */

static const char *HALF_REQUEST = "POST /rerank HTTP/1.1\r\nHost: x\r\nContent-Type: "
                                  "application/json\r\nContent-Length: 60\r\n\r\n{\"query\": ";

Test(server, stalled_client_does_not_stop_others)
{
    const char *extra[] = {"--read-timeout", "2", NULL};
    served s = serve_start(tmp, model, extra);
    int stalled = raw_connect(s.port);
    raw_send(stalled, HALF_REQUEST);
    /* others are served at once meanwhile */
    for (int i = 0; i < 5; i++) {
        http_result r = http(s.port, "/rerank", tei_body(""));
        cr_expect_eq(r.status, 200);
        cr_expect_lt(r.seconds, 1.0, "a request took %.2f s beside a stalled client", r.seconds);
        free(r.body);
    }
    /* and the stalled connection is closed by the read timeout */
    int closed;
    char *got = raw_read_all(stalled, 6.0, &closed);
    cr_expect(closed, "the stalled connection was not closed within 6 s");
    free(got);
    close(stalled);
    cr_expect_eq(serve_stop(&s), 0);
}

Test(server, trickling_clients_are_cut_off)
{
    /* 70 clients that send a header line now and then, never the whole request: more than
     * the 65 connections allowed here (--max-concurrent-requests 1, plus 64). The read
     * timeout never fires on them; the request timeout closes them, and a normal client
     * gets in after at most about that long. */
    const char *extra[] = {"--request-timeout", "2", "--read-timeout", "60",
                           "--max-concurrent-requests", "1", NULL};
    served s = serve_start(tmp, model, extra);
    enum { SLOW = 70 };
    int fds[SLOW];
    for (int i = 0; i < SLOW; i++) {
        fds[i] = raw_connect(s.port);
        raw_send(fds[i], "GET /health HTTP/1.1\r\nHost: x\r\n");
    }
    for (int round = 0; round < 4; round++) { /* one header line a client every 0.25 s */
        usleep(250000);
        for (int i = 0; i < SLOW; i++) /* fails once the server has cut it: fine */
            send(fds[i], "X: y\r\n", strlen("X: y\r\n"), MSG_NOSIGNAL);
    }
    http_result r = http(s.port, "/rerank", tei_body(""));
    cr_expect_eq(r.status, 200, "%ld %s", r.status, r.body);
    cr_expect_lt(r.seconds, 8.0, "a normal request waited %.1f s behind trickling clients",
                 r.seconds);
    free(r.body);
    int open_left = 0;
    for (int i = 0; i < SLOW; i++) {
        int closed;
        free(raw_read_all(fds[i], 6.0, &closed)); /* cut at 2 s after its accept */
        open_left += !closed;
        close(fds[i]);
    }
    cr_expect_eq(open_left, 0, "%d trickling connections still open", open_left);
    cr_expect_eq(serve_stop(&s), 0);
    char *log = tu_slurp(s.log, NULL);
    cr_expect(strstr(log, "did not send its request within 2 s (--request-timeout)"), "%s", log);
    free(log);
}

Test(server, an_idle_kept_alive_connection_outlives_the_request_timeout)
{
    /* idle between requests is the read timeout's business: the request timeout (1 s)
     * starts once the read timeout's idle allowance (5 s) is over */
    const char *extra[] = {"--request-timeout", "1", "--read-timeout", "5", NULL};
    served s = serve_start(tmp, model, extra);
    CURL *keep = curl_easy_init();
    http_result r = http_on(keep, s.port, "/health", NULL, 0, NULL);
    cr_expect_eq(r.status, 200);
    free(r.body);
    usleep(2500000);
    r = http_on(keep, s.port, "/health", NULL, 0, NULL);
    cr_expect_eq(r.status, 200);
    free(r.body);
    long connects = -1;
    curl_easy_getinfo(keep, CURLINFO_NUM_CONNECTS, &connects);
    cr_expect_eq(connects, 0, "the kept-alive connection was closed while idle");
    curl_easy_cleanup(keep);
    cr_expect_eq(serve_stop(&s), 0);
}

Test(server, too_many_concurrent_requests_get_429)
{
    const char *extra[] = {"--max-concurrent-requests", "1", "--read-timeout", "5", NULL};
    served s = serve_start(tmp, model, extra);
    int held = raw_connect(s.port); /* holds the one slot: headers in, body not yet */
    raw_send(held, HALF_REQUEST);
    usleep(200000);
    http_result r = http(s.port, "/rerank", tei_body(""));
    cr_expect_eq(r.status, 429, "%s", r.body);
    cr_expect(strstr(r.body, "overloaded") != NULL, "%s", r.body);
    cr_expect(has_header(&r, "Retry-After: 1"), "%s", r.headers);
    free(r.body);
    close(held);
    usleep(300000);
    r = http(s.port, "/rerank", tei_body(""));
    cr_expect_eq(r.status, 200, "the slot was not given back: %s", r.body);
    free(r.body);
    cr_expect_eq(serve_stop(&s), 0);
}

typedef struct inflight {
    int port;
    long status;
    int results;
    char *body; /* busy_run's */
} inflight;

/* A /rerank body of n documents of `words` words each (about 3 tokens a word); free it. */
static char *long_body(int n, int words)
{
    char *body = malloc((size_t)n * (words * 4 + 4) + 64), *p = body;
    p += sprintf(p, "{\"query\": \"q\", \"texts\": [");
    for (int d = 0; d < n; d++) {
        p += sprintf(p, "%s\"", d ? ", " : "");
        for (int w = 0; w < words; w++) p += sprintf(p, "w%d ", (w * 7 + d) % 100);
        p += sprintf(p, "\"");
    }
    sprintf(p, "]}");
    return body;
}

static void *inflight_run(void *arg)
{
    inflight *f = arg;
    /* 32 documents of 200 words: long enough to be in flight when SIGTERM comes (under an
     * emulator, where scoring is some 200 times slower, 20 words are) */
    char *body = long_body(32, tu_emulated() ? 20 : 200);
    http_result r = http(f->port, "/rerank", body);
    f->status = r.status;
    json_t *a = json_loads(r.body, 0, NULL);
    f->results = a ? (int)json_array_size(a) : -1;
    json_decref(a);
    free(r.body);
    free(body);
    return NULL;
}

Test(server_drain, sigterm_drains_requests_in_flight)
{
    /* generous bounds: under emulation on a loaded machine the held request, scored after
     * the four in flight, took over 30 s; the test is about completion, not speed */
    const char *extra[] = {"--max-client-batch-size", "64", "--drain-timeout", "250", NULL};
    served s = serve_start(tmp, model, extra);
    /* a kept-alive connection made before the drain, to see /health turn 503 */
    CURL *keep = curl_easy_init();
    http_result r = http_on(keep, s.port, "/health", NULL, 0, NULL);
    cr_assert_eq(r.status, 200);
    free(r.body);
    /* one request certainly in flight: its headers are in, its body not yet */
    int held = raw_connect(s.port);
    const char *body = "{\"query\": \"q\", \"texts\": [\"a\", \"b\"]}";
    char head[256];
    snprintf(head, sizeof head, "POST /rerank HTTP/1.1\r\nHost: x\r\nContent-Length: %zu\r\n\r\n",
             strlen(body));
    raw_send(held, head);
    enum { N = 4 };
    inflight f[N];
    pthread_t th[N];
    for (int i = 0; i < N; i++) {
        f[i] = (inflight){.port = s.port};
        pthread_create(&th[i], NULL, inflight_run, &f[i]);
    }
    usleep(300000);
    kill(s.pid, SIGTERM);
    usleep(200000);
    r = http_on(keep, s.port, "/health", NULL, 0, NULL);
    cr_expect_eq(r.status, 503, "/health during the drain: %ld", r.status);
    free(r.body);
    curl_easy_cleanup(keep);
    r = http(s.port, "/health", NULL);
    cr_expect_lt(r.status, 0, "a new connection was accepted during the drain (%ld)", r.status);
    free(r.body);
    raw_send(held, body); /* the held request completes after SIGTERM */
    int closed;
    char *answer = raw_read_all(held, 200.0, &closed);
    cr_expect(strncmp(answer, "HTTP/1.1 200", 12) == 0, "the held request: %.200s", answer);
    free(answer);
    close(held);
    for (int i = 0; i < N; i++) {
        pthread_join(th[i], NULL);
        cr_expect_eq(f[i].status, 200, "request %d in flight was lost: %ld", i, f[i].status);
        cr_expect_eq(f[i].results, 32);
    }
    int st;
    cr_assert_eq(waitpid(s.pid, &st, 0), s.pid);
    cr_expect(WIFEXITED(st) && WEXITSTATUS(st) == 0, "exit status %d", st);
    char *log = tu_slurp(s.log, NULL);
    cr_expect(strstr(log, "draining") && strstr(log, "stopped"), "%s", log);
    free(log);
}

/* A connection accepted before SIGTERM whose request is not yet read when the signal comes
 * (its headers finish just after) gets an answer, not a closed connection: 503 as the server
 * is draining (or 200 if the headers won the race with the signal). */
Test(server_drain, a_request_read_just_after_sigterm_is_answered)
{
    served s = serve_start(tmp, model, NULL);
    int fd = raw_connect(s.port);
    raw_send(fd, "POST /rerank HTTP/1.1\r\nHost: x\r\n");
    usleep(100000); /* accepted and partly read */
    const char *body = "{\"query\": \"q\", \"texts\": [\"a\"]}";
    char rest[256];
    snprintf(rest, sizeof rest, "Content-Length: %zu\r\n\r\n%s", strlen(body), body);
    kill(s.pid, SIGTERM);
    usleep(30000);
    raw_send(fd, rest);
    int closed;
    char *answer = raw_read_all(fd, 30.0, &closed);
    cr_expect(!strncmp(answer, "HTTP/1.1 503", 12) || !strncmp(answer, "HTTP/1.1 200", 12),
              "the request read after SIGTERM: '%.200s'", answer);
    free(answer);
    close(fd);
    int st;
    cr_assert_eq(waitpid(s.pid, &st, 0), s.pid);
    cr_expect(WIFEXITED(st) && WEXITSTATUS(st) == 0, "exit status %d", st);
}

/* A request sent on a brand-new connection at the moment SIGTERM is sent: the connection may
 * not even be accepted yet (it waits in the listening socket's queue), and still gets an
 * answer. The race goes either way, so it is run 8 times; each must be answered. */
Test(server_drain, a_request_on_a_new_connection_at_sigterm_is_answered)
{
    const char *body = "{\"query\": \"q\", \"texts\": [\"a\"]}";
    char request[256];
    snprintf(request, sizeof request, "POST /rerank HTTP/1.1\r\nHost: x\r\nContent-Length: "
             "%zu\r\n\r\n%s", strlen(body), body);
    for (int k = 0; k < 8; k++) {
        served s = serve_start(tmp, model, NULL);
        int fd = raw_connect(s.port);
        raw_send(fd, request);
        kill(s.pid, SIGTERM);
        int closed;
        char *answer = raw_read_all(fd, 30.0, &closed);
        cr_expect(!strncmp(answer, "HTTP/1.1 503", 12) || !strncmp(answer, "HTTP/1.1 200", 12),
                  "try %d: '%.200s'", k, answer);
        free(answer);
        close(fd);
        int st;
        cr_assert_eq(waitpid(s.pid, &st, 0), s.pid);
        cr_expect(WIFEXITED(st) && WEXITSTATUS(st) == 0, "try %d: exit status %d", k, st);
    }
}

/* Wait up to `seconds` for pid to exit; its wait status, or -1 if it is still running. */
static int exit_within(pid_t pid, double seconds)
{
    int st;
    for (double t = 0; t < seconds; t += 0.02) {
        if (waitpid(pid, &st, WNOHANG) == pid) return st;
        usleep(20000);
    }
    return -1;
}

static void *long_request_run(void *arg)
{
    inflight *f = arg;
    /* 64 prompts of 8192 tokens: about 5 s of scoring on 2 CPUs, 200 times more emulated */
    char *body = long_body(64, 3000);
    http_result r = http(f->port, "/rerank", body);
    f->status = r.status;
    free(r.body);
    free(body);
    return NULL;
}

Test(server, drain_timeout_drops_what_is_still_running)
{
    const char *extra[] = {"--drain-timeout", "1", "--max-client-batch-size", "64",
                           "--max-request-tokens", "1000000", NULL};
    served s = serve_start(tmp, model, extra);
    inflight f = {.port = s.port};
    pthread_t th;
    pthread_create(&th, NULL, long_request_run, &f);
    usleep(500000); /* the request is in, its scoring under way */
    kill(s.pid, SIGTERM);
    /* out at the drain timeout, not when the scoring ends */
    int st = exit_within(s.pid, 3.0);
    cr_expect_neq(st, -1, "still running 3 s after SIGTERM with --drain-timeout 1");
    if (st == -1) waitpid(s.pid, &st, 0);
    cr_expect(WIFEXITED(st) && WEXITSTATUS(st) == 1, "wait status 0x%x", st);
    pthread_join(th, NULL);
    cr_expect_lt(f.status, 0, "the dropped request was answered %ld", f.status);
    char *log = tu_slurp(s.log, NULL);
    cr_expect(strstr(log, "1 request(s) still running after 1 s"), "%s", log);
    cr_expect(!strstr(log, "POST /rerank 200"), "a dropped request logged as answered:\n%s", log);
    free(log);
}

Test(server, a_second_signal_ends_the_drain)
{
    const char *extra[] = {"--drain-timeout", "250", "--read-timeout", "60", NULL};
    served s = serve_start(tmp, model, extra);
    int held = raw_connect(s.port); /* in flight: its headers are in, its body never comes */
    raw_send(held, HALF_REQUEST);
    usleep(200000);
    kill(s.pid, SIGTERM);
    cr_expect_eq(exit_within(s.pid, 0.5), -1, "the drain did not wait for the held request");
    kill(s.pid, SIGINT); /* Ctrl-C again */
    int st = exit_within(s.pid, 3.0);
    cr_expect_neq(st, -1, "still running 3 s after the second signal");
    if (st == -1) waitpid(s.pid, &st, 0);
    cr_expect(WIFEXITED(st) && WEXITSTATUS(st) == 1, "wait status 0x%x", st);
    close(held);
    char *log = tu_slurp(s.log, NULL);
    cr_expect(strstr(log, "stopping now; 1 request(s) dropped"), "%s", log);
    free(log);
}

/* A connection that has sent a whole POST /rerank with body, not waiting for the answer. */
static int raw_post(int port, const char *body)
{
    char head[256];
    snprintf(head, sizeof head, "POST /rerank HTTP/1.1\r\nHost: x\r\nContent-Length: %zu\r\n\r\n",
             strlen(body));
    int fd = raw_connect(port);
    raw_send(fd, head);
    raw_send(fd, body);
    return fd;
}

/* A request the server takes at least about `seconds` to score, however fast this build is
 * (a sanitizer or an emulator slows it tens of times): as many documents of 200 words as a
 * timed request of 8 of them says, or 1000 longer ones (--max-client-batch-size 1000) of at
 * most max_words words (a word is about 3 tokens). */
static char *busy_body(int port, double seconds, int max_words)
{
    char *probe = long_body(8, 200);
    http_result r = http(port, "/rerank", probe);
    cr_assert_eq(r.status, 200, "%ld %s", r.status, r.body);
    free(r.body);
    free(probe);
    double n = 8 * seconds / (r.seconds > 1e-3 ? r.seconds : 1e-3);
    if (n <= 1000) return long_body(n < 8 ? 8 : (int)n, 200);
    double words = 200 * n / 1000; /* attention makes longer documents cost a bit more */
    return long_body(1000, words > max_words ? max_words : (int)words);
}

static const char *BUSY_ARGS[] = {"--max-client-batch-size", "1000", "--max-request-tokens",
                                  "100000000", "--payload-limit", "16000000", NULL};

static void *busy_run(void *arg)
{
    inflight *f = arg;
    http_result r = http(f->port, "/rerank", f->body);
    f->status = r.status;
    free(r.body);
    return NULL;
}

/* After one client left: /metrics counts it once as client_closed (and shows metric, when
 * given), the server stops cleanly, and its log has log_line (and also_logged, when given)
 * but no "not delivered" line. */
static void expect_one_client_gone(served *s, const char *metric, const char *log_line,
                                   const char *also_logged)
{
    http_result r = http(s->port, "/metrics", NULL);
    cr_expect(strstr(r.body, "qrr_request_failure{route=\"/rerank\",reason=\"client_closed\"} "
                             "1\n"), "%s", r.body);
    cr_expect(!metric || strstr(r.body, metric), "no %s in %s", metric, r.body);
    free(r.body);
    cr_expect_eq(serve_stop(s), 0);
    char *log = tu_slurp(s->log, NULL);
    cr_expect(strstr(log, log_line), "%s", log);
    cr_expect(!also_logged || strstr(log, also_logged), "%s", log);
    cr_expect(!strstr(log, "not delivered"), "%s", log);
    free(log);
}

/* Wait (up to 60 s) until /metrics shows `tokenized` requests tokenized and `queued`
 * waiting for the scheduler: where a request is (queued, or taken for scoring) is then
 * known, however slow the machine (a sanitizer, an emulator, a loaded host). */
static void wait_for_requests(int port, int tokenized, int queued)
{
    char a[96], b[64];
    snprintf(a, sizeof a, "qrr_tokenization_duration_seconds_count %d\n", tokenized);
    snprintf(b, sizeof b, "qrr_queue_size %d\n", queued);
    for (int tries = 0; tries < 3000; tries++) {
        http_result r = http(port, "/metrics", NULL);
        int there = r.body && strstr(r.body, a) && strstr(r.body, b);
        free(r.body);
        if (there) return;
        usleep(20000);
    }
    cr_assert_fail("never %d requests tokenized with %d queued", tokenized, queued);
}

Test(server, a_client_that_leaves_before_its_turn_is_not_scored)
{
    served s = serve_start(tmp, model, BUSY_ARGS);
    inflight busy = {.port = s.port, .body = busy_body(s.port, 3.0, 3000)};
    pthread_t th;
    pthread_create(&th, NULL, busy_run, &busy);
    wait_for_requests(s.port, 2, 0); /* busy_body's probe, then the busy one taken */
    /* a whole request, then the client closes without waiting for the answer */
    char *body = tei_body("");
    int gone = raw_post(s.port, body);
    wait_for_requests(s.port, 3, 1); /* it waits in the queue */
    close(gone);
    pthread_join(th, NULL);
    free(busy.body);
    cr_expect_eq(busy.status, 200);
    wait_for_requests(s.port, 3, 0); /* dropped, the one that left is no longer queued */
    http_result r = http(s.port, "/rerank", body); /* the server goes on as before */
    cr_expect_eq(r.status, 200, "%ld %s", r.status, r.body);
    free(r.body);
    /* three turns scored (the probe, the busy request, the last); the one that left is a
     * failure, not scored */
    expect_one_client_gone(&s, "qrr_inference_duration_seconds_count 3\n",
                           "POST /rerank 499 pairs=4 ", " inference_ms=0.0 ");
}

Test(server, a_turn_whose_clients_all_left_stops_at_the_next_chunk)
{
    /* chunks of 512 tokens: a stop comes soon after the client leaves, even emulated */
    const char *args[] = {"--max-client-batch-size", "1000", "--max-request-tokens",
                          "100000000", "--payload-limit", "16000000",
                          "--max-batch-tokens", "512", NULL};
    served s = serve_start(tmp, model, args);
    char *body = busy_body(s.port, 3.0, 3000);
    double t0 = tu_now();
    http_result r = http(s.port, "/rerank", body); /* once whole: how long it takes */
    double whole = tu_now() - t0;
    cr_assert_eq(r.status, 200, "%ld %s", r.status, r.body);
    free(r.body);
    int fd = raw_post(s.port, body);
    free(body);
    wait_for_requests(s.port, 3, 0); /* read, tokenized, taken for scoring */
    usleep((useconds_t)(whole * 0.1 * 1e6)); /* its scoring under way */
    double left = tu_now();
    close(fd);
    r = http(s.port, "/rerank", tei_body("")); /* waits for the turn before it */
    double waited = tu_now() - left;
    cr_expect_eq(r.status, 200, "%ld %s", r.status, r.body);
    free(r.body);
    cr_expect_lt(waited, whole / 2, "the next request waited %.2f s: the request whose client "
                 "left was scored to its end (%.2f s)", waited, whole);
    expect_one_client_gone(&s, NULL, "POST /rerank 499 ", NULL);
    char *log = tu_slurp(s.log, NULL), *gone = strstr(log, "POST /rerank 499 ");
    char *inference = gone ? strstr(gone, "inference_ms=") : NULL;
    cr_expect(inference && strtod(inference + strlen("inference_ms="), NULL) > 0,
              "it left before its scoring began, not during it: %s", log);
    free(log);
}

Test(server, a_client_that_left_during_its_only_chunk_is_counted_as_gone_not_as_answered)
{
    /* one forward chunk for the whole request: nothing stops it once it started */
    const char *args[] = {"--max-client-batch-size", "1000", "--max-request-tokens",
                          "100000000", "--payload-limit", "16000000",
                          "--max-batch-tokens", "1048576", NULL};
    served s = serve_start(tmp, model, args);
    char *body = busy_body(s.port, 3.0, 300); /* under 1048576 tokens: one chunk */
    int fd = raw_post(s.port, body);
    free(body);
    wait_for_requests(s.port, 2, 0); /* taken for scoring: scored, its client gone at the end */
    usleep(100000);
    close(fd);      /* as a client-side timeout does: an orderly close */
    http_result r = http(s.port, "/rerank", tei_body("")); /* queued behind it */
    cr_expect_eq(r.status, 200, "%ld %s", r.status, r.body);
    free(r.body);
    /* busy_body's probe and the last request succeeded; the one whose client left did not,
     * though it was scored to its end: three turns in the inference histogram */
    r = http(s.port, "/metrics", NULL);
    cr_expect(strstr(r.body, "qrr_inference_duration_seconds_count 3\n"), "%s", r.body);
    free(r.body);
    expect_one_client_gone(&s, "qrr_request_success{route=\"/rerank\"} 2\n",
                           "POST /rerank 499 ", NULL);
}

/* A client that closes with half its body sent is counted in /metrics as one that left. */
Test(server, a_client_that_leaves_mid_body_is_counted)
{
    served s = serve_start(tmp, model, NULL);
    int gone = raw_connect(s.port);
    raw_send(gone, HALF_REQUEST);
    usleep(200000); /* the headers are in: the request has begun */
    close(gone);
    const char *want = "qrr_request_failure{route=\"/rerank\",reason=\"client_closed\"} 1\n";
    int seen = 0;
    for (int tries = 0; tries < 500 && !seen; tries++) { /* up to 10 s */
        http_result r = http(s.port, "/metrics", NULL);
        seen = r.body && strstr(r.body, want) &&
               strstr(r.body, "qrr_request_count{route=\"/rerank\"} 1\n");
        free(r.body);
        if (!seen) usleep(20000);
    }
    cr_expect(seen, "no %s", want);
    cr_expect_eq(serve_stop(&s), 0);
    char *log = tu_slurp(s.log, NULL);
    cr_expect(strstr(log, "qrr serve: POST /rerank closed before the request was in: the "
                          "client closed the connection\n"), "%s", log);
    free(log);
}

Test(server, a_stalled_request_closed_by_the_read_timeout_is_logged)
{
    const char *extra[] = {"--read-timeout", "1", NULL};
    served s = serve_start(tmp, model, extra);
    int stalled = raw_connect(s.port);
    raw_send(stalled, HALF_REQUEST);
    int closed;
    free(raw_read_all(stalled, 6.0, &closed));
    cr_expect(closed, "the stalled connection was not closed within 6 s");
    close(stalled);
    cr_expect_eq(serve_stop(&s), 0);
    char *log = tu_slurp(s.log, NULL);
    cr_expect(strstr(log, "qrr serve: POST /rerank closed before the request was in: nothing "
                          "came for 1 s (--read-timeout)\n"), "%s", log);
    free(log);
}

Test(server, missing_model_exits_1)
{
    char cmd[1200];
    snprintf(cmd, sizeof cmd, "'%s/qrr' serve /nonexistent/model.qrr --port 0 2>'%s/err.txt'",
             tu_build(), tmp);
    cr_expect_eq(tu_system("%s", cmd), 1);
    char p[1100];
    snprintf(p, sizeof p, "%s/err.txt", tmp);
    char *err = tu_slurp(p, NULL);
    cr_expect(strstr(err, "/nonexistent/model.qrr") != NULL, "%s", err);
    free(err);
    cr_expect_eq(tu_system("'%s/qrr' serve 2>/dev/null", tu_build()), 2);
    /* an empty key (an unset variable, most likely) would lock every client out */
    cr_expect_eq(tu_system("'%s/qrr' serve '%s' --port 0 --api-key '' 2>/dev/null", tu_build(),
                           model), 2);
}

Test(server, a_url_cannot_forge_a_log_line)
{
    served s = serve_start(tmp, model, NULL);
    http_result r = http(s.port, "/x%0Aqrr%20serve:%20FORGED%1b%5b31m", NULL);
    cr_expect_eq(r.status, 404);
    free(r.body);
    /* U+0085 and U+2028 end a line for some log tools */
    r = http(s.port, "/y%C2%85z%E2%80%A8", NULL);
    cr_expect_eq(r.status, 404);
    free(r.body);
    cr_expect_eq(serve_stop(&s), 0);
    char *log = tu_slurp(s.log, NULL);
    cr_expect(strstr(log, "GET /x\\x0aqrr serve: FORGED\\x1b[31m 404 "), "%s", log);
    cr_expect(strstr(log, "GET /y\\xc2\\x85z\\xe2\\x80\\xa8 404 "), "%s", log);
    cr_expect(!strstr(log, "\nqrr serve: FORGED"), "%s", log);
    free(log);
}

Test(server, oversized_headers_get_431_and_a_log_line_of_ours)
{
    served s = serve_start(tmp, model, NULL);
    /* 48 KiB of one header: more than the HTTP library's per-connection memory */
    size_t big = 48 * 1024;
    char *req = malloc(big + 128);
    int k = snprintf(req, 128, "GET /health HTTP/1.1\r\nHost: localhost\r\nX-Big: ");
    memset(req + k, 'a', big);
    memcpy(req + k + big, "\r\n\r\n", 5);
    int fd = raw_connect(s.port);
    send(fd, req, (size_t)k + big + 4, MSG_NOSIGNAL); /* it may close before the end */
    free(req);
    int closed;
    char *got = raw_read_all(fd, 10.0, &closed);
    close(fd);
    cr_expect(!strncmp(got, "HTTP/1.1 431 ", 13), "answered: %.200s", got);
    free(got);
    /* and everyone else is still served */
    http_result r = http(s.port, "/rerank", tei_body(""));
    cr_expect_eq(r.status, 200, "%ld %s", r.status, r.body);
    free(r.body);
    cr_expect_eq(serve_stop(&s), 0);
    /* the library's message about it is a line of this log, like every other line */
    char *log = tu_slurp(s.log, NULL);
    cr_expect(strstr(log, "\nqrr serve: http: "), "no message from the HTTP library: %s", log);
    for (const char *line = log; *line; line = strchr(line, '\n') + 1) {
        cr_expect(!strncmp(line, "qrr serve: ", 11), "a line of another shape: %.200s", line);
        if (!strchr(line, '\n')) break;
    }
    free(log);
}

/* A library preloaded into the server that holds the open of any path ending in
 * "slow.qrr" until "<path>.go" exists: the server stays "loading" for as long as the test
 * likes, with nothing in qrr itself made for the test. */
static const char *HOLD_OPEN_SRC =
    "#define _GNU_SOURCE\n"
    "#include <dlfcn.h>\n#include <fcntl.h>\n#include <stdarg.h>\n#include <stdio.h>\n"
    "#include <string.h>\n#include <sys/types.h>\n#include <unistd.h>\n"
    "static void hold(const char *p)\n"
    "{\n"
    "    size_t n = strlen(p);\n"
    "    char go[4200];\n"
    "    if (n < 8 || strcmp(p + n - 8, \"slow.qrr\") || n > 4000) return;\n"
    "    snprintf(go, sizeof go, \"%s.go\", p);\n"
    "    while (access(go, F_OK) != 0) usleep(10000);\n"
    "}\n"
    "#define HOLD_OPEN(name)                                                  \\\n"
    "    int name(const char *p, int flags, ...)                              \\\n"
    "    {                                                                    \\\n"
    "        mode_t mode = 0;                                                 \\\n"
    "        if (flags & O_CREAT) {                                           \\\n"
    "            va_list ap;                                                  \\\n"
    "            va_start(ap, flags);                                         \\\n"
    "            mode = va_arg(ap, mode_t);                                   \\\n"
    "            va_end(ap);                                                  \\\n"
    "        }                                                                \\\n"
    "        hold(p);                                                         \\\n"
    "        int (*real)(const char *, int, ...) = dlsym(RTLD_NEXT, #name);   \\\n"
    "        return real(p, flags, mode);                                     \\\n"
    "    }\n"
    "HOLD_OPEN(open)\nHOLD_OPEN(open64)\n";

Test(server, loading_answers_503_until_the_model_is_in)
{
    char src[1100], so[1100], slow[1100], go[1100], log[1100], prog[1100];
    snprintf(src, sizeof src, "%s/hold_open.c", tmp);
    snprintf(so, sizeof so, "%s/hold_open.so", tmp);
    snprintf(slow, sizeof slow, "%s/slow.qrr", tmp);
    snprintf(go, sizeof go, "%s/slow.qrr.go", tmp);
    snprintf(log, sizeof log, "%s/loading.log", tmp);
    snprintf(prog, sizeof prog, "%s/qrr", tu_build());
    FILE *f = fopen(src, "w");
    cr_assert_not_null(f);
    fputs(HOLD_OPEN_SRC, f);
    fclose(f);
    cr_assert_eq(tu_system("cc -shared -fPIC -o '%s' '%s' -ldl", so, src), 0);
    cr_assert_eq(tu_system("cp '%s' '%s'", model, slow), 0);
    int fd = open(log, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    pid_t pid = fork();
    cr_assert_geq(pid, 0);
    if (pid == 0) {
        dup2(fd, 2);
        setenv("LD_PRELOAD", so, 1);
        /* a sanitizer build wants its runtime first among the libraries */
        const char *asan = getenv("ASAN_OPTIONS");
        char opts[1200];
        snprintf(opts, sizeof opts, "%s%sverify_asan_link_order=0", asan ? asan : "",
                 asan && *asan ? ":" : "");
        setenv("ASAN_OPTIONS", opts, 1);
        execl(prog, "qrr", "serve", slow, "--port", "0", "--threads", "1", (char *)NULL);
        _exit(127);
    }
    close(fd);
    int port = 0;
    for (int tries = 0; tries < 500 && !port; tries++) {
        char *text = tu_slurp(log, NULL);
        const char *at = strstr(text, "http://127.0.0.1:");
        if (at) port = atoi(at + strlen("http://127.0.0.1:"));
        free(text);
        usleep(20000);
    }
    cr_assert_gt(port, 0, "the server did not start listening");
    expect_error(port, "/health", NULL, 0, 503, "unhealthy", "loading");
    const char *body = "{\"query\": \"q\", \"texts\": [\"a\"]}";
    expect_error(port, "/rerank", body, strlen(body), 503, "unhealthy", "loading");
    cr_assert_eq(tu_system("touch '%s'", go), 0); /* the open goes on: the model loads */
    http_result r = {0};
    for (int tries = 0; tries < 1000; tries++) { /* up to 20 s */
        r = http(port, "/health", NULL);
        if (r.status == 200) break;
        free(r.body);
        usleep(20000);
    }
    cr_expect_eq(r.status, 200, "not ready after the model came in: %s", r.body);
    free(r.body);
    r = http(port, "/rerank", body);
    cr_expect_eq(r.status, 200, "%s", r.body);
    free(r.body);
    served s = {.pid = pid, .port = port};
    cr_expect_eq(serve_stop(&s), 0);
}
