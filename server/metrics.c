/* metrics.c — counters and fixed-bucket histograms behind one mutex, and their rendering
 * in the Prometheus text exposition format (version 0.0.4). */
#include "metrics.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>

static const double time_bounds[] = {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25,
                                     0.5,   1,      2.5,   5,    10,    30,   60};
static const double size_bounds[] = {1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024};
static const double token_bounds[] = {64, 128, 256, 512, 1024, 2048, 4096, 8192, 16384, 32768,
                                      65536};
#define MAX_BOUNDS 16

typedef struct histogram {
    const char *name, *help;
    const double *bounds;
    int n_bounds;
    unsigned long long counts[MAX_BOUNDS + 1]; /* the last: above every bound */
    double sum;
    unsigned long long count;
} histogram;

enum { H_REQUEST, H_QUEUE, H_TOKENIZATION, H_INFERENCE, H_BATCH_SIZE, H_BATCH_TOKENS, H_COUNT };

struct metrics {
    pthread_mutex_t lock;
    unsigned long long requests[ROUTE_COUNT], success[ROUTE_COUNT];
    unsigned long long failure[ROUTE_COUNT][FAIL_COUNT];
    histogram h[H_COUNT];
    size_t queue_size;
};

#define N(a) (int)(sizeof a / sizeof a[0])

metrics *metrics_create(void)
{
    metrics *mx = calloc(1, sizeof *mx);
    if (!mx) return NULL;
    pthread_mutex_init(&mx->lock, NULL);
    mx->h[H_REQUEST] = (histogram){"qrr_request_duration_seconds",
                                   "Time from a scoring request's first byte to its answer "
                                   "(rerank and score routes)", time_bounds,
                                   N(time_bounds), {0}, 0, 0};
    mx->h[H_QUEUE] = (histogram){"qrr_queue_duration_seconds",
                                 "Time a request's pairs waited for the scheduler", time_bounds,
                                 N(time_bounds), {0}, 0, 0};
    mx->h[H_TOKENIZATION] = (histogram){"qrr_tokenization_duration_seconds",
                                        "Time building a request's prompts", time_bounds,
                                        N(time_bounds), {0}, 0, 0};
    mx->h[H_INFERENCE] = (histogram){"qrr_inference_duration_seconds",
                                     "Time of one scheduler call (one batch)", time_bounds,
                                     N(time_bounds), {0}, 0, 0};
    mx->h[H_BATCH_SIZE] = (histogram){"qrr_batch_size", "Pairs scored in one batch", size_bounds,
                                      N(size_bounds), {0}, 0, 0};
    mx->h[H_BATCH_TOKENS] = (histogram){"qrr_batch_tokens", "Prompt tokens in one batch",
                                        token_bounds, N(token_bounds), {0}, 0, 0};
    return mx;
}

void metrics_free(metrics *mx)
{
    if (!mx) return;
    pthread_mutex_destroy(&mx->lock);
    free(mx);
}

static void observe(histogram *h, double v)
{
    int b = 0;
    while (b < h->n_bounds && v > h->bounds[b]) b++;
    h->counts[b]++;
    h->sum += v;
    h->count++;
}

static void observe_locked(metrics *mx, int which, double v)
{
    pthread_mutex_lock(&mx->lock);
    observe(&mx->h[which], v);
    pthread_mutex_unlock(&mx->lock);
}

void metrics_request(metrics *mx, route_id route, int ok, fail_reason why, double seconds)
{
    pthread_mutex_lock(&mx->lock);
    mx->requests[route]++;
    if (ok) mx->success[route]++;
    else mx->failure[route][why]++;
    /* the latency of scoring: probes of /health and scrapes of /metrics would drown it */
    if (route_scores(route)) observe(&mx->h[H_REQUEST], seconds);
    pthread_mutex_unlock(&mx->lock);
}

void metrics_tokenization(metrics *mx, double seconds) { observe_locked(mx, H_TOKENIZATION, seconds); }
void metrics_queue(metrics *mx, double seconds) { observe_locked(mx, H_QUEUE, seconds); }

void metrics_batch(metrics *mx, double seconds, size_t pairs, size_t tokens)
{
    pthread_mutex_lock(&mx->lock);
    observe(&mx->h[H_INFERENCE], seconds);
    observe(&mx->h[H_BATCH_SIZE], (double)pairs);
    observe(&mx->h[H_BATCH_TOKENS], (double)tokens);
    pthread_mutex_unlock(&mx->lock);
}

void metrics_queue_size(metrics *mx, size_t jobs)
{
    pthread_mutex_lock(&mx->lock);
    mx->queue_size = jobs;
    pthread_mutex_unlock(&mx->lock);
}

const char *route_name(route_id r)
{
    static const char *names[ROUTE_COUNT] = {"/rerank", "/v1/rerank", "/v2/rerank", "/health",
                                             "/info",   "/metrics",   "/score",     "/v1/score",
                                             "other"};
    return r < ROUTE_COUNT ? names[r] : "other";
}

int route_scores(route_id r)
{
    return r == ROUTE_RERANK || route_api_errors(r);
}

int route_api_errors(route_id r)
{
    return r == ROUTE_V1 || r == ROUTE_V2 || r == ROUTE_SCORE || r == ROUTE_V1_SCORE;
}

const char *fail_reason_name(fail_reason r)
{
    static const char *names[FAIL_COUNT] = {"validation", "empty",       "too_large",
                                            "overloaded", "unauthorized", "not_found",
                                            "unavailable", "backend", "client_closed"};
    return r < FAIL_COUNT ? names[r] : "backend";
}

static void render_histogram(FILE *f, const histogram *h)
{
    fprintf(f, "# HELP %s %s\n# TYPE %s histogram\n", h->name, h->help, h->name);
    unsigned long long cum = 0;
    for (int b = 0; b < h->n_bounds; b++) {
        cum += h->counts[b];
        fprintf(f, "%s_bucket{le=\"%g\"} %llu\n", h->name, h->bounds[b], cum);
    }
    fprintf(f, "%s_bucket{le=\"+Inf\"} %llu\n%s_sum %.9g\n%s_count %llu\n", h->name, h->count,
            h->name, h->sum, h->name, h->count);
}

char *metrics_render(metrics *mx, size_t *len)
{
    char *buf = NULL;
    FILE *f = open_memstream(&buf, len);
    if (!f) return NULL;
    pthread_mutex_lock(&mx->lock);
    fputs("# HELP qrr_request_count Requests received, by route\n"
          "# TYPE qrr_request_count counter\n", f);
    for (int r = 0; r < ROUTE_COUNT; r++)
        fprintf(f, "qrr_request_count{route=\"%s\"} %llu\n", route_name(r), mx->requests[r]);
    fputs("# HELP qrr_request_success Requests answered with success, by route\n"
          "# TYPE qrr_request_success counter\n", f);
    for (int r = 0; r < ROUTE_COUNT; r++)
        fprintf(f, "qrr_request_success{route=\"%s\"} %llu\n", route_name(r), mx->success[r]);
    fputs("# HELP qrr_request_failure Requests refused or failed, by route and reason\n"
          "# TYPE qrr_request_failure counter\n", f);
    for (int r = 0; r < ROUTE_COUNT; r++)
        for (int w = 0; w < FAIL_COUNT; w++)
            fprintf(f, "qrr_request_failure{route=\"%s\",reason=\"%s\"} %llu\n", route_name(r),
                    fail_reason_name(w), mx->failure[r][w]);
    for (int h = 0; h < H_COUNT; h++) render_histogram(f, &mx->h[h]);
    fprintf(f, "# HELP qrr_queue_size Requests waiting for the scheduler\n"
               "# TYPE qrr_queue_size gauge\nqrr_queue_size %zu\n", mx->queue_size);
    pthread_mutex_unlock(&mx->lock);
    if (fclose(f) != 0) {
        free(buf);
        return NULL;
    }
    return buf;
}
