/* metrics.h — what `qrr serve` counts for GET /metrics: requests by route and outcome,
 * histograms of request, queue, tokenization and inference time and of batch size and
 * tokens, the queue size. Thread-safe; rendered in the Prometheus text format. */
#ifndef QRR_SERVER_METRICS_H
#define QRR_SERVER_METRICS_H

#include <stddef.h>

/* Why a request failed, as the failure counter's "reason" label. */
typedef enum {
    FAIL_VALIDATION,   /* malformed JSON, wrong field types, too many texts, too long */
    FAIL_EMPTY,        /* no texts / documents */
    FAIL_TOO_LARGE,    /* body over --payload-limit */
    FAIL_OVERLOADED,   /* over --max-concurrent-requests */
    FAIL_UNAUTHORIZED, /* missing or wrong API key */
    FAIL_NOT_FOUND,    /* unknown route or method */
    FAIL_UNAVAILABLE,  /* loading or draining */
    FAIL_BACKEND,      /* scoring failed */
    FAIL_CLIENT_GONE,  /* the client closed its connection before its request was scored */
    FAIL_COUNT
} fail_reason;

typedef enum { ROUTE_RERANK, ROUTE_V1, ROUTE_V2, ROUTE_HEALTH, ROUTE_INFO, ROUTE_METRICS,
               ROUTE_SCORE, ROUTE_V1_SCORE, ROUTE_OTHER, ROUTE_COUNT } route_id;

/* The routes that score (POST, a body, the scheduler): /rerank, /v1 and /v2/rerank, /score
 * and /v1/score. */
int route_scores(route_id r);
/* The routes whose errors take the {"error": {"message", "type", "code"}} shape of the
 * Cohere, Jina and vLLM APIs, not TEI's. */
int route_api_errors(route_id r);

typedef struct metrics metrics;

metrics *metrics_create(void);
void metrics_free(metrics *mx);

void metrics_request(metrics *mx, route_id route, int ok, fail_reason why, double seconds);
void metrics_tokenization(metrics *mx, double seconds);
void metrics_queue(metrics *mx, double seconds);
/* One call of the scheduler: how long it ran, how many pairs and tokens it scored. */
void metrics_batch(metrics *mx, double seconds, size_t pairs, size_t tokens);
void metrics_queue_size(metrics *mx, size_t jobs);

/* The Prometheus text exposition of everything counted (malloc'ed; NULL if out of memory). */
char *metrics_render(metrics *mx, size_t *len);

const char *route_name(route_id r);
const char *fail_reason_name(fail_reason r);

#endif
