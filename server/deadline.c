/* deadline.c — the watchdog of deadline.h: a list of open connections with the time each
 * request started, scanned twice a second. A late connection's socket is shut down (not
 * closed: libmicrohttpd owns it and closes it once its thread sees the end of input), under
 * the lock that deadlines_remove takes before libmicrohttpd closes the socket, so a socket
 * number reused by a newer connection is never hit. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <time.h>

#include "deadline.h"
#include "qrr.h"

struct conn_clock {
    int fd;
    int waiting;     /* for the request's bytes: the deadline applies */
    int shut;        /* shut down already */
    double since;    /* when the request's time started (qrr_time_seconds) */
    conn_clock *prev, *next;
};

struct deadlines {
    int timeout_s, idle_s, log, stopping;
    pthread_mutex_t lock;
    pthread_cond_t wake;
    pthread_t thread;
    conn_clock *head;
};

static void *watch(void *arg)
{
    deadlines *d = arg;
    pthread_mutex_lock(&d->lock);
    while (!d->stopping) {
        struct timespec until;
        clock_gettime(CLOCK_MONOTONIC, &until); /* the condition variable's clock */
        until.tv_nsec += 500000000L;
        if (until.tv_nsec >= 1000000000L) until.tv_sec++, until.tv_nsec -= 1000000000L;
        pthread_cond_timedwait(&d->wake, &d->lock, &until);
        const double t = qrr_time_seconds();
        for (conn_clock *c = d->head; c; c = c->next) {
            if (!c->waiting || c->shut || t - c->since <= d->timeout_s) continue;
            shutdown(c->fd, SHUT_RDWR);
            c->shut = 1;
            if (d->log)
                fprintf(stderr, "qrr serve: closed a connection that did not send its request "
                        "within %d s (--request-timeout)\n", d->timeout_s);
        }
    }
    pthread_mutex_unlock(&d->lock);
    return NULL;
}

deadlines *deadlines_start(int timeout_s, int idle_s, int log)
{
    deadlines *d = calloc(1, sizeof *d);
    if (!d) return NULL;
    d->timeout_s = timeout_s;
    d->idle_s = idle_s;
    d->log = log;
    pthread_mutex_init(&d->lock, NULL);
    pthread_condattr_t ca; /* waits on the monotonic clock: a wall-clock step cannot stall them */
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&d->wake, &ca);
    pthread_condattr_destroy(&ca);
    if (pthread_create(&d->thread, NULL, watch, d) != 0) {
        pthread_cond_destroy(&d->wake);
        pthread_mutex_destroy(&d->lock);
        free(d);
        return NULL;
    }
    return d;
}

void deadlines_stop(deadlines *d)
{
    if (!d) return;
    pthread_mutex_lock(&d->lock);
    d->stopping = 1;
    pthread_cond_signal(&d->wake);
    pthread_mutex_unlock(&d->lock);
    pthread_join(d->thread, NULL);
    pthread_cond_destroy(&d->wake);
    pthread_mutex_destroy(&d->lock);
    free(d);
}

int deadlines_cut(deadlines *d, conn_clock *c)
{
    if (!c) return 0;
    pthread_mutex_lock(&d->lock);
    int shut = c->shut;
    pthread_mutex_unlock(&d->lock);
    return shut;
}

conn_clock *deadlines_add(deadlines *d, int fd)
{
    conn_clock *c = calloc(1, sizeof *c);
    if (!c) return NULL;
    c->fd = fd;
    c->waiting = 1;
    c->since = qrr_time_seconds();
    pthread_mutex_lock(&d->lock);
    c->next = d->head;
    if (d->head) d->head->prev = c;
    d->head = c;
    pthread_mutex_unlock(&d->lock);
    return c;
}

void deadlines_remove(deadlines *d, conn_clock *c)
{
    if (!c) return;
    pthread_mutex_lock(&d->lock);
    if (c->prev) c->prev->next = c->next;
    else d->head = c->next;
    if (c->next) c->next->prev = c->prev;
    pthread_mutex_unlock(&d->lock);
    free(c);
}

/* c waits for a request (or not), its time counted from `after` seconds from now. */
static void set_waiting(deadlines *d, conn_clock *c, int waiting, double after)
{
    if (!c) return;
    pthread_mutex_lock(&d->lock);
    c->waiting = waiting;
    c->since = qrr_time_seconds() + after;
    pthread_mutex_unlock(&d->lock);
}

void deadlines_received(deadlines *d, conn_clock *c)
{
    set_waiting(d, c, 0, 0.0);
}

void deadlines_restart(deadlines *d, conn_clock *c)
{
    set_waiting(d, c, 1, d->idle_s);
}
