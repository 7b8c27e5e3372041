/* jsonl_cases.c — line-numbered reading of JSON-lines files and typed field access for
 * `qrr score`, `qrr check` and `qrr eval`. Every message names the field and what it should be; the
 * caller adds the file and line. */
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "jsonl_cases.h"

#define MAX_IDS (1L << 20) /* token ids on one line */
#define MAX_LENGTH_CAP 1000000

long jsonl_read(const char *cmd, const char *path, jsonl_line_fn fn, void *ctx)
{
    int use_stdin = !strcmp(path, "-");
    int fd = use_stdin ? 0 : open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        fprintf(stderr, "qrr %s: cannot open %s: %s\n", cmd, path, strerror(errno));
        return -1;
    }
    cli_lines in = {.fd = fd};
    long bad = 0;
    size_t len;
    const char *line;
    while ((line = cli_next_line(&in, &len)) != NULL) {
        if (cli_is_blank(line, len)) continue;
        char err[JSONL_ERR_LEN + 64];
        json_t *o = cli_parse_object(line, len, err, sizeof err);
        int ok = o && fn(ctx, in.lineno, o, err, sizeof err) == 0;
        json_decref(o);
        if (!ok && ++bad <= JSONL_MAX_REPORTED)
            fprintf(stderr, "qrr %s: %s:%ld: %s\n", cmd, path, in.lineno, err);
    }
    int read_error = in.error;
    if (read_error) fprintf(stderr, "qrr %s: error reading %s: %s\n", cmd, path, strerror(read_error));
    if (bad > JSONL_MAX_REPORTED)
        fprintf(stderr, "qrr %s: %s: %ld malformed lines in all\n", cmd, path, bad);
    cli_lines_free(&in);
    if (!use_stdin) close(fd);
    return read_error ? -1 : bad;
}

/* A copy of string v's bytes with a NUL after them; -1 when out of memory. */
static int copy_text(json_t *v, jsonl_text *out)
{
    size_t n = json_string_length(v);
    out->s = malloc(n + 1); /* n is the length of a string in memory, so n + 1 cannot wrap */
    if (!out->s) return -1;
    memcpy(out->s, json_string_value(v), n);
    out->s[n] = '\0';
    out->len = n;
    return 0;
}

int jsonl_get_string(json_t *o, const char *key, jsonl_text *out, char *err, size_t errlen)
{
    json_t *v = json_object_get(o, key);
    *out = (jsonl_text){NULL, 0};
    if (!v) {
        snprintf(err, errlen, "missing field \"%s\"", key);
        return -1;
    }
    if (!json_is_string(v)) {
        snprintf(err, errlen, "field \"%s\" must be a string", key);
        return -1;
    }
    if (copy_text(v, out)) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    return 0;
}

int jsonl_get_number(json_t *o, const char *key, double *out, char *err, size_t errlen)
{
    json_t *v = json_object_get(o, key);
    if (!v) {
        snprintf(err, errlen, "missing field \"%s\"", key);
        return -1;
    }
    if (!json_is_number(v) || !isfinite(json_number_value(v))) {
        snprintf(err, errlen, "field \"%s\" must be a finite number", key);
        return -1;
    }
    *out = json_number_value(v);
    return 0;
}

int jsonl_get_ids(json_t *o, const char *key, int32_t **out, size_t *n, char *err, size_t errlen)
{
    json_t *v = json_object_get(o, key);
    *out = NULL;
    *n = 0;
    if (!json_is_array(v)) {
        snprintf(err, errlen, "field \"%s\" must be an array of token ids", key);
        return -1;
    }
    size_t count = json_array_size(v);
    if (count == 0 || count > (size_t)MAX_IDS) {
        snprintf(err, errlen, "field \"%s\" must hold 1 to %ld token ids, not %zu", key,
                 MAX_IDS, count);
        return -1;
    }
    int32_t *ids = malloc(count * sizeof *ids);
    if (!ids) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    for (size_t i = 0; i < count; i++) {
        json_t *e = json_array_get(v, i);
        if (!json_is_integer(e) || json_integer_value(e) < 0 || json_integer_value(e) > INT32_MAX) {
            snprintf(err, errlen, "field \"%s\"[%zu] must be an integer in [0, %d]", key, i,
                     INT32_MAX);
            free(ids);
            return -1;
        }
        ids[i] = (int32_t)json_integer_value(e);
    }
    *out = ids;
    *n = count;
    return 0;
}

int jsonl_get_request(json_t *o, jsonl_request *r, char *err, size_t errlen)
{
    memset(r, 0, sizeof *r);
    json_t *ins = json_object_get(o, "instruction"), *ml = json_object_get(o, "max_length");
    json_t *tr = json_object_get(o, "truncate");
    if (tr && !json_is_null(tr) && !json_is_boolean(tr)) {
        snprintf(err, errlen, "field \"truncate\" must be true, false or null");
        return -1;
    }
    if (ins && !json_is_null(ins) && !json_is_string(ins)) {
        snprintf(err, errlen, "field \"instruction\" must be a string or null");
        return -1;
    }
    if (ml && !json_is_null(ml) &&
        (!json_is_integer(ml) || json_integer_value(ml) < 0 ||
         json_integer_value(ml) > MAX_LENGTH_CAP)) {
        snprintf(err, errlen, "field \"max_length\" must be an integer in [0, %d] (0 = the "
                 "model's default) or null", MAX_LENGTH_CAP);
        return -1;
    }
    if (jsonl_get_string(o, "query", &r->query, err, errlen)) return -1;
    if (json_is_string(ins) && copy_text(ins, &r->instruction)) {
        jsonl_request_free(r);
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    r->max_length = json_is_integer(ml) ? (int)json_integer_value(ml) : 0;
    r->no_truncate = json_is_false(tr);
    return 0;
}

void jsonl_request_free(jsonl_request *r)
{
    free(r->query.s);
    free(r->instruction.s);
    memset(r, 0, sizeof *r);
}

qrr_score_params jsonl_request_params(const jsonl_request *r)
{
    qrr_score_params p = qrr_score_default_params();
    p.instruction = r->instruction.s;
    p.instruction_len = r->instruction.len;
    p.max_length = r->max_length;
    p.truncate = !r->no_truncate;
    return p;
}

static int text_cmp(const jsonl_text *a, const jsonl_text *b)
{
    if (!a->s || !b->s) return (a->s != NULL) - (b->s != NULL);
    int c = memcmp(a->s, b->s, a->len < b->len ? a->len : b->len);
    return c ? c : (a->len > b->len) - (a->len < b->len);
}

int jsonl_request_cmp(const jsonl_request *a, const jsonl_request *b)
{
    int c = text_cmp(&a->query, &b->query);
    if (c) return c;
    if (a->max_length != b->max_length) return a->max_length < b->max_length ? -1 : 1;
    if (a->no_truncate != b->no_truncate) return a->no_truncate - b->no_truncate;
    return text_cmp(&a->instruction, &b->instruction);
}

int jsonl_same_request(const jsonl_request *a, const jsonl_request *b)
{
    return jsonl_request_cmp(a, b) == 0;
}
