/* scheduler.c — the queue and the scoring thread. Clients' threads queue a job and sleep on
 * one condition variable; the thread takes a turn's worth of jobs from the head, scores
 * them in one call and wakes everyone. A failed call is retried job by job, so one bad job
 * spoils no other. Jobs whose clients have gone are not answered: skipped when their turn
 * comes, a turn stopped between forward passes once all its clients are gone, and a job
 * whose client left during its last pass answered as gone. */
#include "scheduler.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>


#define MAX_TURN_JOBS 256

struct scheduler {
    qrr_ctx *ctx;
    size_t turn_tokens;
    metrics *mx;
    pthread_t thread;
    pthread_mutex_t lock;
    pthread_cond_t work, done; /* work: the queue has jobs or stop; done: a job finished */
    sched_job *head, *tail;
    size_t queued;
    int stopping;
    sched_job **scoring; /* the jobs of the call being scored (scoring thread only) */
    size_t n_scoring;
};

/* Whether the client at fd has closed its connection: an end of input, or an error, where
 * its next request would be (a pipelined one is data, not an end). HTTP clients do not close
 * their side while they wait for an answer, so an end there means they are gone. */
static int client_gone(int fd)
{
    if (fd < 0) return 0;
    char c;
    ssize_t n = recv(fd, &c, 1, MSG_PEEK | MSG_DONTWAIT);
    return n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR);
}

/* The context's abort callback: stop the call being scored once none of its clients is
 * left to answer (a job without a client never lets it stop). */
static int all_clients_gone(void *arg)
{
    const scheduler *s = arg;
    for (size_t i = 0; i < s->n_scoring; i++)
        if (!client_gone(s->scoring[i]->client_fd)) return 0;
    return s->n_scoring > 0;
}

/* Not scored: the client left (status QRR_OK, no scores; see sched_job.abandoned). */
static void abandon(sched_job *j, double started, double ended)
{
    j->abandoned = 1;
    j->status = QRR_OK;
    j->queue_seconds = started - j->enqueued;
    j->inference_seconds = ended - started;
}

/* Scored (or failed), unless its client left during the last chunk: then it is answered as
 * one that left before. */
static void finish(sched_job *j, int status, double started, double ended)
{
    if (client_gone(j->client_fd)) {
        abandon(j, started, ended);
        return;
    }
    j->status = status;
    if (status != QRR_OK) snprintf(j->error, sizeof j->error, "%s", qrr_last_error());
    j->queue_seconds = started - j->enqueued;
    j->inference_seconds = ended - started;
}

/* One qrr_ctx_score_groups call over jobs[0..n); the jobs are abandoned if it was stopped. */
static int score(scheduler *s, sched_job **jobs, size_t n, const qrr_group *groups, double t0)
{
    s->scoring = jobs, s->n_scoring = n;
    int rc = qrr_ctx_score_groups(s->ctx, groups, n);
    s->n_scoring = 0;
    if (rc == QRR_ERR_ABORTED)
        for (size_t i = 0; i < n; i++) abandon(jobs[i], t0, qrr_time_seconds());
    return rc;
}

/* Score jobs[0..n) in one call (or one by one if that call fails). */
static void run_turn(scheduler *s, sched_job **jobs, size_t n)
{
    qrr_group groups[MAX_TURN_JOBS];
    size_t pairs = 0, tokens = 0;
    for (size_t i = 0; i < n; i++) {
        groups[i] = jobs[i]->group;
        pairs += jobs[i]->group.n;
        tokens += jobs[i]->tokens;
    }
    double t0 = qrr_time_seconds();
    int rc = score(s, jobs, n, groups, t0);
    if (rc == QRR_ERR_ABORTED) return;
    double t1 = qrr_time_seconds();
    metrics_batch(s->mx, t1 - t0, pairs, tokens);
    if (rc == QRR_OK || n == 1) {
        for (size_t i = 0; i < n; i++) finish(jobs[i], rc, t0, t1);
        return;
    }
    for (size_t i = 0; i < n; i++) {
        double a = qrr_time_seconds();
        int one = score(s, &jobs[i], 1, &jobs[i]->group, a);
        if (one != QRR_ERR_ABORTED) finish(jobs[i], one, a, qrr_time_seconds());
    }
}

static void *loop(void *arg)
{
    scheduler *s = arg;
    sched_job *turn[MAX_TURN_JOBS];
    pthread_mutex_lock(&s->lock);
    for (;;) {
        while (!s->head && !s->stopping) pthread_cond_wait(&s->work, &s->lock);
        if (!s->head) break; /* stopping, and nothing left */
        size_t n = 0, tokens = 0, taken = 0;
        int dropped = 0;
        while (s->head && n < MAX_TURN_JOBS &&
               (n == 0 || tokens + s->head->tokens <= s->turn_tokens)) {
            sched_job *j = s->head;
            s->head = j->next;
            taken++;
            if (client_gone(j->client_fd)) { /* nobody to answer: not scored */
                double now = qrr_time_seconds();
                abandon(j, now, now);
                j->done = dropped = 1;
                continue;
            }
            tokens += j->tokens;
            turn[n++] = j;
        }
        if (!s->head) s->tail = NULL;
        s->queued -= taken;
        if (dropped) pthread_cond_broadcast(&s->done);
        metrics_queue_size(s->mx, s->queued); /* also when every job taken was dropped */
        if (!n) continue;
        pthread_mutex_unlock(&s->lock);
        run_turn(s, turn, n);
        pthread_mutex_lock(&s->lock);
        for (size_t i = 0; i < n; i++) turn[i]->done = 1;
        pthread_cond_broadcast(&s->done);
    }
    pthread_mutex_unlock(&s->lock);
    return NULL;
}

int sched_start(qrr_ctx *ctx, size_t turn_tokens, metrics *mx, scheduler **out)
{
    scheduler *s = calloc(1, sizeof *s);
    if (!s) return -1;
    s->ctx = ctx;
    s->turn_tokens = turn_tokens;
    s->mx = mx;
    qrr_ctx_set_abort(ctx, all_clients_gone, s);
    pthread_mutex_init(&s->lock, NULL);
    pthread_cond_init(&s->work, NULL);
    pthread_cond_init(&s->done, NULL);
    if (pthread_create(&s->thread, NULL, loop, s) != 0) {
        qrr_ctx_set_abort(ctx, NULL, NULL);
        free(s);
        return -1;
    }
    *out = s;
    return 0;
}

int sched_run(scheduler *s, sched_job *job)
{
    job->next = NULL;
    job->done = job->abandoned = 0;
    job->enqueued = qrr_time_seconds();
    pthread_mutex_lock(&s->lock);
    if (s->tail) s->tail->next = job;
    else s->head = job;
    s->tail = job;
    s->queued++;
    metrics_queue_size(s->mx, s->queued);
    pthread_cond_signal(&s->work);
    while (!job->done) pthread_cond_wait(&s->done, &s->lock);
    pthread_mutex_unlock(&s->lock);
    metrics_queue(s->mx, job->queue_seconds);
    return job->status;
}

void sched_stop(scheduler *s)
{
    if (!s) return;
    pthread_mutex_lock(&s->lock);
    s->stopping = 1;
    pthread_cond_signal(&s->work);
    pthread_mutex_unlock(&s->lock);
    pthread_join(s->thread, NULL);
    qrr_ctx_set_abort(s->ctx, NULL, NULL);
    pthread_cond_destroy(&s->work);
    pthread_cond_destroy(&s->done);
    pthread_mutex_destroy(&s->lock);
    free(s);
}
