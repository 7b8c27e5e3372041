/* routes.c — what each route answers. POST /rerank takes TEI's request and answers TEI's
 * bare array (or, given vLLM's {"query", "documents"} body, answers as /v1 does); POST
 * /v1/rerank and /v2/rerank take the Cohere/Jina request and answer {id, model, results,
 * usage}, sorted best first; POST /score and /v1/score take vLLM's score request and answer
 * its {data} in input order. All: check every field (messages name it), build each pair's
 * prompt ids here on the client's thread, queue the request for the scheduler. GET
 * /health, /info and /metrics report the server. */
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <time.h>

#include "doc_tokens.h"
#include "preformatted.h"
#include "state.h"

/* A rerank request in either API's shape, its strings pointing into the parsed JSON. */
typedef struct rerank_request {
    const char *docs_field;   /* "texts" (TEI) or "documents" (Cohere, Jina): for messages */
    int cohere;               /* the Cohere/Jina request and answer (/v1, /v2, vLLM's /rerank) */
    int score_api;            /* vLLM's score request: answered in input order */
    const char *query;
    size_t query_len;
    const char **queries;     /* /score: each pair's query; NULL = query for every pair */
    size_t *query_lens;
    const char **docs;
    size_t *doc_lens;
    size_t n;
    const char *instruction;  /* NULL = the model's default */
    size_t instruction_len;
    int raw_scores, return_text, truncate;
    int max_length;           /* vLLM's truncate_prompt_tokens; 0 = the model's */
    size_t max_doc_tokens;    /* Cohere's max_tokens_per_doc: documents cut; 0 = not cut */
    size_t top_n;             /* results kept, best first */
    const char *model;        /* the name a Cohere/Jina client sent, echoed back */
    json_t *documents;        /* the request's array (borrowed): objects are echoed whole */
} rerank_request;

/* An optional boolean field: absent or null keeps *out. */
static int get_bool(json_t *o, const char *key, int *out, reply *r)
{
    json_t *v = json_object_get(o, key);
    if (!v || json_is_null(v)) return 0;
    if (!json_is_boolean(v)) {
        reply_error(r, 422, FAIL_VALIDATION, "\"%s\" must be true or false", key);
        return -1;
    }
    *out = json_is_true(v);
    return 0;
}

/* A string field; required unless out may stay NULL (then absent or null is fine). len
 * NULL: the caller reads it as a C string, so an embedded NUL ("\u0000") is refused. */
static int get_string(json_t *o, const char *key, int required, const char **out, size_t *len,
                      reply *r)
{
    json_t *v = json_object_get(o, key);
    if ((!v || json_is_null(v)) && !required) return 0;
    if (!json_is_string(v)) {
        reply_error(r, 422, FAIL_VALIDATION, v ? "\"%s\" must be a string" :
                    "missing field \"%s\"", key);
        return -1;
    }
    *out = json_string_value(v);
    if (len) {
        *len = json_string_length(v);
    } else if (strlen(*out) != json_string_length(v)) {
        reply_error(r, 422, FAIL_VALIDATION, "\"%s\" cannot hold a NUL character", key);
        return -1;
    }
    return 0;
}

/* The documents: strings (both APIs) or, for Cohere/Jina, objects with a string "text". */
static int get_documents(json_t *o, int cohere, const qrr_server_config *cfg,
                         rerank_request *q, reply *r)
{
    json_t *arr = json_object_get(o, q->docs_field);
    if (!json_is_array(arr)) {
        reply_error(r, 422, FAIL_VALIDATION, arr ? "\"%s\" must be an array of strings" :
                    "missing field \"%s\"", q->docs_field);
        return -1;
    }
    q->n = json_array_size(arr);
    if (q->n == 0) {
        reply_error(r, 400, FAIL_EMPTY, "\"%s\" cannot be empty", q->docs_field);
        return -1;
    }
    const int limit = cohere ? cfg->max_documents : cfg->max_client_batch_size;
    if (q->n > (size_t)limit) {
        reply_error(r, 422, FAIL_VALIDATION, "\"%s\" holds %zu items; this server takes at "
                    "most %d per request (%s)", q->docs_field, q->n, limit,
                    cohere ? "--max-documents" : "--max-client-batch-size");
        return -1;
    }
    q->documents = arr;
    q->docs = calloc(q->n, sizeof *q->docs);
    q->doc_lens = calloc(q->n, sizeof *q->doc_lens);
    if (!q->docs || !q->doc_lens) {
        reply_error(r, 500, FAIL_BACKEND, "out of memory");
        return -1;
    }
    for (size_t i = 0; i < q->n; i++) {
        json_t *d = json_array_get(arr, i);
        if (cohere && json_is_object(d)) d = json_object_get(d, "text");
        if (!json_is_string(d)) {
            reply_error(r, 422, FAIL_VALIDATION, cohere ?
                        "\"%s\"[%zu] must be a string or an object with a string \"text\"" :
                        "\"%s\"[%zu] must be a string", q->docs_field, i);
            return -1;
        }
        q->docs[i] = json_string_value(d);
        q->doc_lens[i] = json_string_length(d);
    }
    return 0;
}

/* Cohere's "rank_fields" (which fields of a document object to rank on): absent, null or
 * ["text"], the one field ranked here; any other is refused rather than ignored, since the
 * client would be told of a ranking on fields that were never read. */
static int check_rank_fields(json_t *o, reply *r)
{
    json_t *v = json_object_get(o, "rank_fields");
    if (!v || json_is_null(v)) return 0;
    json_t *only = json_array_size(v) == 1 ? json_array_get(v, 0) : NULL;
    if (json_is_string(only) && !strcmp(json_string_value(only), "text")) return 0;
    reply_error(r, 422, FAIL_VALIDATION, "\"rank_fields\" other than [\"text\"] is not "
                "supported: documents are ranked on their \"text\"");
    return -1;
}

/* A /score field: a string, or an array of strings (at least one, at most limit). */
static int get_texts(json_t *o, const char *key, int limit, const char ***out, size_t **lens,
                     size_t *n, reply *r)
{
    json_t *v = json_object_get(o, key);
    int one = json_is_string(v);
    *n = one ? 1 : json_array_size(v);
    if (!one && !json_is_array(v)) {
        reply_error(r, 422, FAIL_VALIDATION, "\"%s\" must be a string or an array of strings",
                    key);
        return -1;
    }
    if (*n == 0) {
        reply_error(r, 400, FAIL_EMPTY, "\"%s\" cannot be empty", key);
        return -1;
    }
    if (*n > (size_t)limit) {
        reply_error(r, 422, FAIL_VALIDATION, "\"%s\" holds %zu items; this server takes at "
                    "most %d per request (--max-documents)", key, *n, limit);
        return -1;
    }
    *out = calloc(*n, sizeof **out);
    *lens = calloc(*n, sizeof **lens);
    if (!*out || !*lens) {
        reply_error(r, 500, FAIL_BACKEND, "out of memory");
        return -1;
    }
    for (size_t i = 0; i < *n; i++) {
        json_t *s = one ? v : json_array_get(v, i);
        if (!json_is_string(s)) {
            reply_error(r, 422, FAIL_VALIDATION, "\"%s\"[%zu] must be a string", key, i);
            return -1;
        }
        (*out)[i] = json_string_value(s);
        (*lens)[i] = json_string_length(s);
    }
    return 0;
}

/* Cohere's max_tokens_per_doc: absent or null, documents as long as the prompt allows (the
 * Cohere service cuts at 4096 by default); a positive integer N, each document cut to its
 * first N tokens. */
static int get_max_doc_tokens(json_t *o, rerank_request *q, reply *r)
{
    json_t *v = json_object_get(o, "max_tokens_per_doc");
    if (!v || json_is_null(v)) return 0;
    if (!json_is_integer(v) || json_integer_value(v) < 1) {
        reply_error(r, 422, FAIL_VALIDATION, "\"max_tokens_per_doc\" must be a positive integer");
        return -1;
    }
    q->max_doc_tokens = (size_t)json_integer_value(v);
    return 0;
}

/* vLLM's use_activation (and its older name, activation): false asks for the logit. */
static int get_activation(json_t *o, rerank_request *q, reply *r)
{
    int activation = 1;
    if (get_bool(o, "use_activation", &activation, r) || get_bool(o, "activation", &activation, r))
        return -1;
    q->raw_scores = !activation;
    return 0;
}

/* vLLM's truncate_prompt_tokens: absent, null or -1, the model's length; k, prompts of at
 * most k tokens (the model must take k as a max_length: build_prompts checks). */
static int get_prompt_limit(json_t *o, rerank_request *q, reply *r)
{
    json_t *v = json_object_get(o, "truncate_prompt_tokens");
    if (!v || json_is_null(v)) return 0;
    json_int_t k = json_is_integer(v) ? json_integer_value(v) : 0;
    if (k < -1 || k == 0 || k > 1000000) {
        reply_error(r, 422, FAIL_VALIDATION, "\"truncate_prompt_tokens\" must be -1 (the "
                    "model's length) or an integer from 1 to 1000000");
        return -1;
    }
    q->max_length = k > 0 ? (int)k : 0;
    return 0;
}

/* vLLM's score request: the queries and the documents under one of its pairs of names,
 * each a string or an array of strings; one query for every document, or one per
 * document, paired in order. */
static int parse_score(json_t *o, const qrr_server_config *cfg, rerank_request *q, reply *r)
{
    static const char *const names[][2] = {{"queries", "documents"}, {"queries", "items"},
                                           {"text_1", "text_2"}, {"data_1", "data_2"}};
    size_t k = 0, nq = 0;
    while (k < 4 && !(json_object_get(o, names[k][0]) && json_object_get(o, names[k][1]))) k++;
    if (k == 4) {
        reply_error(r, 422, FAIL_VALIDATION, "missing fields: \"text_1\" and \"text_2\" (or "
                    "\"queries\" and \"documents\"): the queries and the documents to score");
        return -1;
    }
    q->score_api = 1;
    q->docs_field = names[k][1];
    q->truncate = 1;
    if (get_texts(o, names[k][1], cfg->max_documents, &q->docs, &q->doc_lens, &q->n, r) ||
        get_texts(o, names[k][0], cfg->max_documents, &q->queries, &q->query_lens, &nq, r) ||
        get_string(o, "instruction", 0, &q->instruction, &q->instruction_len, r) ||
        get_string(o, "model", 0, &q->model, NULL, r))
        return -1;
    if (nq != 1 && nq != q->n) {
        reply_error(r, 422, FAIL_VALIDATION, "%zu items in \"%s\" for %zu in \"%s\": give one "
                    "query for all the documents, or one per document", nq, names[k][0], q->n,
                    names[k][1]);
        return -1;
    }
    if (get_activation(o, q, r) || get_prompt_limit(o, q, r)) return -1;
    if (nq == 1) { /* one query: its prompts share their prefix */
        q->query = q->queries[0];
        q->query_len = q->query_lens[0];
        free(q->queries);
        free(q->query_lens);
        q->queries = NULL;
        q->query_lens = NULL;
    }
    q->top_n = q->n;
    return 0;
}

static int parse_request(json_t *o, route_id route, const qrr_server_config *cfg,
                         rerank_request *q, reply *r)
{
    if (route == ROUTE_SCORE || route == ROUTE_V1_SCORE) return parse_score(o, cfg, q, r);
    /* vLLM serves /rerank with Jina's body: "documents", no "texts" */
    int vllm = route == ROUTE_RERANK && !json_object_get(o, "texts") &&
               json_object_get(o, "documents");
    int cohere = q->cohere = route != ROUTE_RERANK || vllm;
    r->api_errors = r->vllm = vllm;
    q->docs_field = cohere ? "documents" : "texts";
    q->truncate = 1;
    if (get_string(o, "query", 1, &q->query, &q->query_len, r) ||
        get_string(o, "instruction", 0, &q->instruction, &q->instruction_len, r) ||
        get_documents(o, cohere, cfg, q, r))
        return -1;
    q->top_n = q->n;
    if (cohere) {
        int ret_docs = vllm; /* vLLM's /rerank (and Jina's service) return them */
        json_t *top = json_object_get(o, "top_n");
        if (top && !json_is_null(top)) {
            /* vLLM's /rerank takes 0 for all */
            if (!json_is_integer(top) || json_integer_value(top) < !vllm) {
                reply_error(r, 422, FAIL_VALIDATION, vllm ? "\"top_n\" must be 0 (all) or a "
                            "positive integer" : "\"top_n\" must be a positive integer");
                return -1;
            }
            json_int_t t = json_integer_value(top);
            if (t > 0 && (size_t)t < q->n) q->top_n = (size_t)t;
        }
        if (get_string(o, "model", 0, &q->model, NULL, r) ||
            get_bool(o, "return_documents", &ret_docs, r) || check_rank_fields(o, r) ||
            /* vLLM serves /v1/rerank and /v2/rerank too, with its own two fields; each API's
             * fields are taken on every one of these routes, whichever client sends them */
            get_activation(o, q, r) || get_prompt_limit(o, q, r) ||
            get_max_doc_tokens(o, q, r))
            return -1;
        q->return_text = ret_docs;
        return 0;
    }
    const char *dir = NULL;
    if (get_bool(o, "raw_scores", &q->raw_scores, r) ||
        get_bool(o, "return_text", &q->return_text, r) ||
        get_bool(o, "truncate", &q->truncate, r) ||
        get_string(o, "truncation_direction", 0, &dir, NULL, r))
        return -1;
    if (dir && strcasecmp(dir, "right") != 0) {
        reply_error(r, 422, FAIL_VALIDATION, strcasecmp(dir, "left") == 0 ?
                    "\"truncation_direction\": \"left\" is not supported: the recipe keeps the "
                    "instruction and query and cuts the end of the document" :
                    "\"truncation_direction\" must be \"right\" or \"left\"");
        return -1;
    }
    return 0;
}

/* Pair i's query (*len bytes): its own with a query per pair, else the request's. */
static const char *pair_query(const rerank_request *q, size_t i, size_t *len)
{
    *len = q->queries ? q->query_lens[i] : q->query_len;
    return q->queries ? q->queries[i] : q->query;
}

/* Pair i's prompt ids into *out (malloc'ed), built from the template, through the buffer
 * *buf of *cap ids (grown as needed); its document cut to max_tokens_per_doc first. A
 * status; qrr_last_error says why. */
static int template_ids(server *srv, const rerank_request *q, const qrr_score_params *p,
                        size_t i, int32_t **buf, size_t *cap, int32_t **out, size_t *n)
{
    size_t query_len, doc_len = q->doc_lens[i];
    const char *query = pair_query(q, i, &query_len), *doc = q->docs[i];
    char *cut = NULL;
    size_t cut_len = 0;
    int rc = q->max_doc_tokens ? doc_first_tokens(srv->model, doc, doc_len, q->max_doc_tokens,
                                                  &cut, &cut_len)
                               : QRR_OK;
    if (cut) doc = cut, doc_len = cut_len;
    if (rc == QRR_OK)
        rc = qrr_model_prompt_ids_len(srv->model, query, query_len, doc, doc_len, *p, *buf,
                                      *cap, n);
    if (rc == QRR_ERR_BUFFER_TOO_SMALL) {
        int32_t *bigger = realloc(*buf, *n * sizeof *bigger);
        rc = bigger ? QRR_OK : QRR_ERR_NOMEM;
        if (bigger) *buf = bigger, *cap = *n;
        if (rc == QRR_OK)
            rc = qrr_model_prompt_ids_len(srv->model, query, query_len, doc, doc_len, *p, *buf,
                                          *cap, n);
    }
    free(cut);
    if (rc == QRR_OK && !(*out = malloc(*n * sizeof **out))) rc = QRR_ERR_NOMEM;
    if (rc == QRR_OK) memcpy(*out, *buf, *n * sizeof **out);
    return rc;
}

/* Every document's prompt ids into job (one malloc'ed array each). */
static int build_prompts(server *srv, const rerank_request *q, sched_job *job, reply *r)
{
    qrr_score_params p = qrr_score_default_params();
    p.instruction = q->instruction;
    p.instruction_len = q->instruction_len;
    p.truncate = q->truncate;
    p.max_length = q->max_length;
    int32_t **ids = (int32_t **)job->group.ids;
    size_t *lens = (size_t *)job->group.lens;
    int32_t *buf = NULL;
    size_t cap = 0;
    /* What fails with an empty document is the request's fault (a max_length this model
     * cannot take, an instruction too long, not UTF-8 or not allowed; the query, when there
     * is one for all): said so, not of "texts"[0]. A prompt written with the template
     * (preformatted_ids) relies on this check of max_length. With a query per pair, a
     * query's fault names its pair below. */
    size_t n0 = 0;
    int rc0 = qrr_model_prompt_ids_len(srv->model, q->queries ? "" : q->query,
                                       q->queries ? 0 : q->query_len, "", 0, p, NULL, 0, &n0);
    if (rc0 == QRR_ERR_TOO_LONG || rc0 == QRR_ERR_UTF8 || rc0 == QRR_ERR_INVALID_ARG) {
        reply_error(r, 422, FAIL_VALIDATION, "%s", qrr_last_error());
        return -1;
    }
    int rc = QRR_OK;
    preformatted_query pq = {0}; /* the query's side: once for all the documents when one */
    for (size_t i = 0; rc == QRR_OK && i < q->n; i++) {
        size_t n = 0;
        int written = 0;
        if (r->vllm) {
            /* vLLM's clients may write the template into the texts: taken as they are */
            if (i == 0 || q->queries) {
                size_t query_len;
                const char *query = pair_query(q, i, &query_len);
                preformatted_query_free(&pq);
                rc = preformatted_query_get(srv->model, &srv->frame, query, query_len, &pq);
            }
            written = rc != QRR_OK ? rc
                    : preformatted_ids(srv->model, &srv->frame, &pq, q->docs[i], q->doc_lens[i],
                                       (size_t)q->max_length, &ids[i], &n);
        }
        rc = written < 0 ? written
           : written ? QRR_OK : template_ids(srv, q, &p, i, &buf, &cap, &ids[i], &n);
        if (rc != QRR_OK) {
            if (rc == QRR_ERR_TOO_LONG || rc == QRR_ERR_UTF8 || rc == QRR_ERR_INVALID_ARG) {
                if (q->queries) /* a query per pair: the pair's fault */
                    reply_error(r, 422, FAIL_VALIDATION, "pair %zu: %s", i, qrr_last_error());
                else
                    reply_error(r, 422, FAIL_VALIDATION, "\"%s\"[%zu]: %s", q->docs_field, i,
                                qrr_last_error());
            } else {
                reply_error(r, 500, FAIL_BACKEND, "%s", rc == QRR_ERR_NOMEM ? "out of memory"
                                                                           : qrr_last_error());
            }
            break;
        }
        lens[i] = n;
        job->tokens += n;
        /* every prompt repeats the query: bounded here, not by the body's size */
        if (job->tokens > (size_t)srv->cfg->max_request_tokens) {
            reply_error(r, 413, FAIL_TOO_LARGE, "the prompts of the first %zu of %zu documents "
                        "hold %zu tokens, over the limit of %d a request "
                        "(--max-request-tokens): send fewer or shorter documents", i + 1, q->n,
                        job->tokens, srv->cfg->max_request_tokens);
            rc = QRR_ERR_TOO_LONG;
        }
    }
    preformatted_query_free(&pq);
    free(buf);
    return rc == QRR_OK ? 0 : -1;
}

/* qsort_r order of indices by score (arg), best first; equal scores keep input order. */
static int by_score(const void *a, const void *b, void *arg)
{
    const float *score = arg;
    size_t i = *(const size_t *)a, j = *(const size_t *)b;
    if (score[i] != score[j]) return score[i] > score[j] ? -1 : 1;
    return (i > j) - (i < j);
}

static json_t *document_text(const rerank_request *q, size_t i)
{
    return json_stringn(q->docs[i], q->doc_lens[i]);
}

/* 32 random hex digits for a Cohere/Jina response id. */
static void random_id(char out[33])
{
    unsigned char b[16] = {0};
    if (getrandom(b, sizeof b, 0) != (ssize_t)sizeof b)
        for (size_t i = 0; i < sizeof b; i++) b[i] = (unsigned char)(rand() & 0xFF);
    for (int i = 0; i < 16; i++) snprintf(out + 2 * i, 3, "%02x", b[i]);
}

/* vLLM's score answer: every pair's score in input order. */
static json_t *score_response(server *srv, const rerank_request *q, const float *scores,
                              const float *logits, size_t tokens)
{
    json_t *data = json_array();
    for (size_t i = 0; data && i < q->n; i++)
        if (json_array_append_new(data, json_pack("{s:I,s:s,s:f}", "index", (json_int_t)i,
                                                  "object", "score", "score",
                                                  (double)(q->raw_scores ? logits[i]
                                                                         : scores[i])))) {
            json_decref(data);
            data = NULL;
        }
    char id[33], name[40];
    random_id(id);
    snprintf(name, sizeof name, "score-%s", id);
    return data ? json_pack("{s:s,s:s,s:I,s:s,s:o,s:{s:I,s:I,s:i,s:n}}", "id", name, "object",
                            "list", "created", (json_int_t)time(NULL), "model",
                            q->model ? q->model : srv->model_name, "data", data, "usage",
                            "prompt_tokens", (json_int_t)tokens, "total_tokens",
                            (json_int_t)tokens, "completion_tokens", 0,
                            "prompt_tokens_details")
                : NULL;
}

static json_t *build_response(server *srv, const rerank_request *q, const size_t *order,
                              const float *scores, const float *logits, size_t tokens)
{
    if (q->score_api) return score_response(srv, q, scores, logits, tokens);
    json_t *results = json_array();
    for (size_t k = 0; results && k < q->top_n; k++) {
        size_t i = order[k];
        json_t *item;
        if (!q->cohere) {
            item = json_pack("{s:I,s:f}", "index", (json_int_t)i, "score",
                             (double)(q->raw_scores ? logits[i] : scores[i]));
            if (item && q->return_text) json_object_set_new(item, "text", document_text(q, i));
        } else {
            item = json_pack("{s:I,s:f}", "index", (json_int_t)i, "relevance_score",
                             (double)(q->raw_scores ? logits[i] : scores[i]));
            json_t *sent = json_array_get(q->documents, i);
            if (item && q->return_text)
                json_object_set_new(item, "document", json_is_object(sent) ? json_incref(sent)
                                    : json_pack("{s:o}", "text", document_text(q, i)));
        }
        if (!item || json_array_append_new(results, item)) {
            json_decref(results);
            return NULL;
        }
    }
    if (!q->cohere) return results;
    char id[33];
    random_id(id);
    return json_pack("{s:s,s:s,s:o,s:{s:I,s:I}}", "id", id, "model",
                     q->model ? q->model : srv->model_name, "results", results, "usage",
                     "prompt_tokens", (json_int_t)tokens, "total_tokens", (json_int_t)tokens);
}

/* JSON values a request of the most documents this server takes may hold: each document
 * a string or an object of a few fields, plus the request's own fields. */
#define VALUES_PER_DOCUMENT 16
#define VALUES_OF_THE_REST 1024

/* Whether body holds more than cap JSON values, counted without parsing it: jansson's tree
 * takes tens of times a body's size (a 2 MB body of "[]," items, over 100 MB), so a body of
 * many tiny values is refused before it is built. Counts the openings of arrays and
 * objects and the commas outside strings: each value after the first in a container
 * follows a comma. */
static int too_many_values(const char *body, size_t len, size_t cap)
{
    size_t values = 1;
    int in_string = 0;
    for (size_t i = 0; i < len; i++) {
        char c = body[i];
        if (in_string) {
            if (c == '\\') i++;
            else if (c == '"') in_string = 0;
        } else if (c == '"') {
            in_string = 1;
        } else if (c == '[' || c == '{' || c == ',') {
            if (++values > cap) return 1;
        }
    }
    return 0;
}

void route_rerank(server *srv, const char *body, size_t len, int client_fd, reply *r)
{
    if (len >= 3 && !memcmp(body, "\xef\xbb\xbf", 3)) { /* a byte-order mark: JSON lets a reader
                                                      * skip it, and qrr score does */
        body += 3;
        len -= 3;
    }
    int most = srv->cfg->max_documents > srv->cfg->max_client_batch_size
                   ? srv->cfg->max_documents : srv->cfg->max_client_batch_size;
    size_t cap = (size_t)most * VALUES_PER_DOCUMENT + VALUES_OF_THE_REST;
    if (too_many_values(body, len, cap)) {
        reply_error(r, 413, FAIL_TOO_LARGE, "the body holds more than %zu JSON values: a "
                    "request takes %d documents of %d values each (a string, or an object of a "
                    "few fields) and %d more", cap, most, VALUES_PER_DOCUMENT, VALUES_OF_THE_REST);
        return;
    }
    r->vllm = r->route == ROUTE_SCORE || r->route == ROUTE_V1_SCORE;
    json_error_t je;
    /* Any JSON value is decoded: `null` or `5` is a 422 (not an object), not a 400. */
    json_t *root = json_loadb(body, len, JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL | JSON_DECODE_ANY,
                              &je);
    rerank_request q = {0};
    sched_job job = {0};
    float *scores = NULL, *logits = NULL;
    size_t *order = NULL;
    if (!root) {
        if (json_error_code(&je) == json_error_numeric_overflow) /* valid JSON, past our numbers */
            reply_error(r, 400, FAIL_VALIDATION, "the body holds a number out of range: %s (line "
                        "%d, column %d); integers must fit in 64 bits, reals in a double",
                        je.text, je.line, je.column);
        else
            reply_error(r, 400, FAIL_VALIDATION, "the body is not valid JSON in UTF-8: %s (line "
                        "%d, column %d)", je.text, je.line, je.column);
        return;
    }
    if (!json_is_object(root)) {
        reply_error(r, 422, FAIL_VALIDATION, "the body must be a JSON object");
        goto done;
    }
    if (parse_request(root, r->route, srv->cfg, &q, r)) goto done;

    scores = malloc(q.n * sizeof *scores);
    logits = malloc(q.n * sizeof *logits);
    order = malloc(q.n * sizeof *order);
    job.group = (qrr_group){calloc(q.n, sizeof(int32_t *)), calloc(q.n, sizeof(size_t)), q.n,
                            scores, logits};
    if (!scores || !logits || !order || !job.group.ids || !job.group.lens) {
        reply_error(r, 500, FAIL_BACKEND, "out of memory");
        goto done;
    }
    double t0 = qrr_time_seconds();
    int bad = build_prompts(srv, &q, &job, r);
    r->tokenization_s = qrr_time_seconds() - t0;
    metrics_tokenization(srv->mx, r->tokenization_s);
    if (bad) goto done;
    r->pairs = q.n;
    r->tokens = job.tokens;
    job.client_fd = client_fd;
    if (sched_run(srv->sched, &job) != QRR_OK) {
        reply_error(r, 500, FAIL_BACKEND, "scoring failed: %s", job.error);
        goto done;
    }
    r->queue_s = job.queue_seconds;
    r->inference_s = job.inference_seconds;
    if (job.abandoned) { /* 499, as nginx logs a client that left: nobody reads this */
        reply_error(r, 499, FAIL_CLIENT_GONE, "the client closed its connection before it "
                    "was answered");
        goto done;
    }
    for (size_t i = 0; i < q.n; i++) order[i] = i;
    qsort_r(order, q.n, sizeof *order, by_score, q.raw_scores ? logits : scores);
    reply_json(r, 200, build_response(srv, &q, order, scores, logits, job.tokens));
    double total = r->tokenization_s + r->queue_s + r->inference_s;
    reply_header(r, "x-compute-time", "%.0f", total * 1e3);
    reply_header(r, "x-compute-tokens", "%zu", job.tokens);
    reply_header(r, "x-tokenization-time", "%.0f", r->tokenization_s * 1e3);
    reply_header(r, "x-queue-time", "%.0f", r->queue_s * 1e3);
    reply_header(r, "x-inference-time", "%.0f", r->inference_s * 1e3);
done:
    for (size_t i = 0; job.group.ids && i < q.n; i++) free((void *)job.group.ids[i]);
    free((void *)job.group.ids);
    free((void *)job.group.lens);
    free(q.docs);
    free(q.doc_lens);
    free(q.queries);
    free(q.query_lens);
    free(scores);
    free(logits);
    free(order);
    json_decref(root);
}

void route_health(server *srv, reply *r)
{
    if (atomic_load(&srv->draining))
        reply_error(r, 503, FAIL_UNAVAILABLE, "draining: finishing the requests in flight");
    else if (!atomic_load(&srv->ready))
        reply_error(r, 503, FAIL_UNAVAILABLE, "loading the model");
    else
        reply_json(r, 200, json_pack("{s:s}", "status", "ok"));
}

void route_metrics(server *srv, reply *r)
{
    size_t len = 0;
    char *text = metrics_render(srv->mx, &len);
    if (!text) {
        reply_error(r, 500, FAIL_BACKEND, "out of memory");
        return;
    }
    free(r->body);
    r->body = text;
    r->len = len;
    r->status = 200;
    r->content_type = "text/plain; version=0.0.4";
}

void route_info(server *srv, reply *r)
{
    const qrr_server_config *c = srv->cfg;
    json_t *o = json_pack("{s:s,s:s,s:s,s:b,s:{s:i,s:i,s:i,s:I,s:i,s:i}}", "model_id",
                          srv->model_name, "version", qrr_version(), "device",
                          c->device == QRR_DEVICE_CUDA ? "cuda" : "cpu", "ready",
                          atomic_load(&srv->ready), "limits", "max_client_batch_size",
                          c->max_client_batch_size, "max_documents", c->max_documents,
                          "max_request_tokens", c->max_request_tokens,
                          "payload_limit", (json_int_t)c->payload_limit,
                          "max_concurrent_requests", c->max_concurrent_requests,
                          "max_batch_tokens", c->max_batch_tokens);
    /* The keys of text-embeddings-inference's /info that clients read to tell a reranker
     * (model_type) and its limits. */
    json_t *tei = json_pack("{s:{s:{s:{s:s},s:{s:i}}},s:i,s:i,s:i,s:n,s:b}", "model_type",
                            "reranker", "id2label", "0", "LABEL_0", "label2id", "LABEL_0", 0,
                            "max_client_batch_size", c->max_client_batch_size,
                            "max_batch_tokens", c->max_batch_tokens,
                            "max_concurrent_requests", c->max_concurrent_requests,
                            "max_batch_requests", "auto_truncate", 1);
    if (o && tei) json_object_update(o, tei);
    json_decref(tei);
    qrr_model_info mi;
    if (o && atomic_load(&srv->ready) && qrr_model_get_info(srv->model, &mi) == QRR_OK) {
        json_object_set_new(o, "model_dtype", json_string(mi.weight_dtype));
        json_object_set_new(o, "head", json_string(mi.head_kind));
        json_object_set_new(o, "layers", json_integer(mi.n_layers));
        json_object_set_new(o, "hidden_size", json_integer(mi.hidden));
        json_object_set_new(o, "max_input_length", json_integer(mi.max_length));
        json_object_set_new(o, "max_position_embeddings", json_integer(mi.max_position));
    }
    reply_json(r, 200, o);
}
