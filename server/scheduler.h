/* scheduler.h — one thread that owns the scoring context and serves every client: requests
 * wait in one first-come-first-served queue, and each turn takes the jobs at the head (up to
 * a token budget) and scores them in one qrr_ctx_score_groups call, so the pairs of
 * concurrent clients share forward chunks while each request's prefix is computed once. */
#ifndef QRR_SERVER_SCHEDULER_H
#define QRR_SERVER_SCHEDULER_H

#include <stddef.h>
#include "metrics.h"
#include "qrr.h"

/* One request's pairs: its prompts as token ids and where the results go. */
typedef struct sched_job {
    qrr_group group;
    size_t tokens;          /* prompt tokens in all */
    int client_fd;          /* the client's socket, -1 for none: see abandoned */
    /* filled by the scheduler */
    int abandoned;          /* not answered: the client had closed its connection by the
                             * time the job came up (not scored), while it was scored (the
                             * turn stopped between chunks once all its clients had), or
                             * during its last chunk (status QRR_OK, no scores to send) */
    int status;             /* QRR_OK or the library's status */
    char error[512];
    double queue_seconds, inference_seconds;
    /* private to the scheduler */
    double enqueued;
    int done;
    struct sched_job *next;
} sched_job;

typedef struct scheduler scheduler;

/* Start the scheduler thread over ctx (which it then owns until sched_stop); each turn takes
 * jobs while their tokens fit in turn_tokens (the first job always). */
int sched_start(qrr_ctx *ctx, size_t turn_tokens, metrics *mx, scheduler **out);
/* Queue job and wait until it is scored; returns job->status. */
int sched_run(scheduler *s, sched_job *job);
/* Score what is queued, then stop the thread and free the scheduler (not ctx). */
void sched_stop(scheduler *s);

#endif
