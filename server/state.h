/* state.h — what the server's parts share: the server's state, the reply a route builds,
 * and the routes (routes.c), kept apart from the HTTP library (http.c). */
#ifndef QRR_SERVER_STATE_H
#define QRR_SERVER_STATE_H

#include <jansson.h>
#include <stdatomic.h>
#include <stddef.h>

#include "deadline.h"
#include "metrics.h"
#include "preformatted.h"
#include "qrr.h"
#include "scheduler.h"
#include "server.h"

typedef struct server {
    const qrr_server_config *cfg;
    char model_name[256];   /* the file's base name, without .qrr */
    qrr_model *model;       /* NULL until loaded */
    prompt_frame frame;     /* the model's prompt prefix and suffix, for vLLM's requests */
    qrr_ctx *ctx;           /* the scheduler's */
    scheduler *sched;
    metrics *mx;
    deadlines *deadlines;   /* the time each client has to send its request */
    atomic_int ready;       /* model loaded, scheduler running */
    atomic_int draining;
    atomic_int in_flight;   /* scoring requests being handled */
} server;

#define REPLY_MAX_HEADERS 8

/* A route's answer, and what the request log and the metrics record of it. */
typedef struct reply {
    int status;
    char *body;               /* malloc'ed */
    size_t len;
    const char *content_type;
    struct {
        const char *name;
        char value[48];
    } headers[REPLY_MAX_HEADERS];
    int n_headers;
    route_id route;
    int api_errors;           /* errors in route_api_errors' shape whatever the route (a
                               * Cohere/Jina/vLLM body posted to /rerank) */
    int preflight;            /* the answer to a browser's CORS preflight */
    int vllm;                 /* a vLLM request: what others answer 422, vLLM answers 400;
                                 its texts may hold the template (preformatted.h) */
    fail_reason why;          /* when status is not 2xx */
    size_t pairs, tokens;
    double tokenization_s, queue_s, inference_s;
} reply;

/* r's status and body from a JSON value (stolen). */
void reply_json(reply *r, int status, json_t *body);
/* r as an error in the shape of r->route's API: {"error", "error_type"} for TEI's routes,
 * {"error": {"message", "type", "code"}, "message", "detail"} for /v1 and /v2. */
void reply_error(reply *r, int status, fail_reason why, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* Add a response header (name must be a string literal). */
void reply_header(reply *r, const char *name, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* The routes: each fills r (r->route is set by the caller). */
void route_rerank(server *srv, const char *body, size_t len, int client_fd, reply *r);
void route_health(server *srv, reply *r);
void route_info(server *srv, reply *r);
void route_metrics(server *srv, reply *r);

#endif
