/* jsonl_cases.h — what `qrr score`, `qrr check` and `qrr eval` share to read their JSON-lines files:
 * walking a file line by line with line numbers, and the typed fields of a request (query,
 * instruction, max_length, truncate) with messages that name the field. No scoring here. */
#ifndef QRR_JSONL_CASES_H
#define QRR_JSONL_CASES_H

#include <stddef.h>
#include <stdint.h>
#include <jansson.h>
#include "qrr.h"

/* Longest message a field check writes (callers prefix "path:line: "). */
#define JSONL_ERR_LEN 256
/* Malformed lines reported before the rest are only counted. */
#define JSONL_MAX_REPORTED 10

/* Called once per non-blank line with its parsed JSON object. Returns 0, or -1 with a
 * message in err (the line is then counted as malformed and reading goes on). */
typedef int (*jsonl_line_fn)(void *ctx, long lineno, json_t *obj, char *err, size_t errlen);

/* Read path ("-" = standard input) and call fn for each non-blank line that parses as a
 * JSON object. Each malformed line (not JSON, not an object, or rejected by fn) is printed
 * to stderr as "qrr CMD: PATH:LINE: message" (the first JSONL_MAX_REPORTED of them).
 * Returns the number of malformed lines, or -1 if the file cannot be read (printed too). */
long jsonl_read(const char *cmd, const char *path, jsonl_line_fn fn, void *ctx);

/* A string field's bytes: a NUL-terminated copy whose len bytes may hold NUL (\u0000). */
typedef struct jsonl_text {
    char *s;
    size_t len;
} jsonl_text;

/* The request part of a line: query, optional instruction (absent or null = the model's
 * default), optional max_length (absent, null or 0 = the model's default), optional
 * truncate (absent, null or true = cut an over-long prompt; false = refuse it). */
typedef struct jsonl_request {
    jsonl_text query;
    jsonl_text instruction; /* s NULL = the model's default */
    int max_length;         /* 0 = the model's default */
    int no_truncate;        /* "truncate": false */
} jsonl_request;

/* Fill r from o; -1 with a message in err if a field is missing or has the wrong type. */
int jsonl_get_request(json_t *o, jsonl_request *r, char *err, size_t errlen);
void jsonl_request_free(jsonl_request *r);
/* The scoring parameters the request asks for (pointing into r). */
qrr_score_params jsonl_request_params(const jsonl_request *r);
/* 1 if a and b make the same request (same query, instruction, max_length, truncate). */
int jsonl_same_request(const jsonl_request *a, const jsonl_request *b);
/* strcmp-like order on requests, for grouping lines that share one. */
int jsonl_request_cmp(const jsonl_request *a, const jsonl_request *b);

/* A required string field, copied (out->s must be freed); -1 with a message otherwise. */
int jsonl_get_string(json_t *o, const char *key, jsonl_text *out, char *err, size_t errlen);
/* A required number field (integer or real, finite); -1 with a message otherwise. */
int jsonl_get_number(json_t *o, const char *key, double *out, char *err, size_t errlen);
/* An array of token ids (integers in [0, INT32_MAX]), copied into a malloc'ed array. */
int jsonl_get_ids(json_t *o, const char *key, int32_t **out, size_t *n, char *err,
                  size_t errlen);

#endif
