/* reply.c — building a route's answer: JSON bodies, errors in the shape each API's clients
 * expect, extra headers. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "state.h"

void reply_json(reply *r, int status, json_t *body)
{
    free(r->body);
    r->body = body ? json_dumps(body, JSON_COMPACT | JSON_REAL_PRECISION(9)) : NULL;
    json_decref(body);
    r->content_type = "application/json";
    r->status = status;
    if (!r->body) { /* out of memory: a fixed answer that needs none */
        static const char oom[] = "{\"error\":\"out of memory\",\"error_type\":\"backend\"}";
        r->body = strdup(oom);
        r->status = 500;
        r->why = FAIL_BACKEND;
    }
    r->len = r->body ? strlen(r->body) : 0;
}

/* TEI's error_type for a reason. */
static const char *tei_type(fail_reason why)
{
    switch (why) {
    case FAIL_EMPTY: return "empty";
    case FAIL_OVERLOADED: return "overloaded";
    case FAIL_UNAVAILABLE: return "unhealthy";
    case FAIL_BACKEND: return "backend";
    case FAIL_UNAUTHORIZED: return "unauthorized";
    case FAIL_NOT_FOUND: return "not_found";
    default: return "validation";
    }
}

/* The Cohere-style error type for a reason. */
static const char *api_type(fail_reason why)
{
    switch (why) {
    case FAIL_OVERLOADED: return "rate_limit_error";
    case FAIL_UNAUTHORIZED: return "authentication_error";
    case FAIL_UNAVAILABLE: case FAIL_BACKEND: return "server_error";
    case FAIL_NOT_FOUND: return "not_found_error";
    default: return "invalid_request_error";
    }
}

void reply_error(reply *r, int status, fail_reason why, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    json_t *body;
    if (status == 422 && r->vllm) status = 400; /* vLLM's status for a request it refuses */
    if (route_api_errors(r->route) || r->api_errors) /* the message also where Cohere's
                                                        * ("message") and Jina's ("detail")
                                                        * clients look for it */
        body = json_pack("{s:{s:s,s:s,s:s},s:s,s:s}", "error", "message", msg, "type",
                         api_type(why), "code", fail_reason_name(why), "message", msg,
                         "detail", msg);
    else
        body = json_pack("{s:s,s:s}", "error", msg, "error_type", tei_type(why));
    r->why = why;
    reply_json(r, status, body);
}

void reply_header(reply *r, const char *name, const char *fmt, ...)
{
    if (r->n_headers == REPLY_MAX_HEADERS) return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(r->headers[r->n_headers].value, sizeof r->headers[0].value, fmt, ap);
    va_end(ap);
    r->headers[r->n_headers++].name = name;
}
