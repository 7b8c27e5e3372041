/* pool.c — the persistent worker pool behind qrr_pool_run: n-1 threads wait on a generation
 * counter (a short spin, then a condition variable, so an idle pool burns no CPU), run
 * fn(arg, i, n) and count down; the caller is worker 0 and waits for the count to reach 0.
 * Also keeps a scratch buffer for the kernels that use the pool. No work splitting here. */
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>
#include "cpu_internal.h"
#include "qrr_pool.h"

#define SPIN_ROUNDS 2000 /* pause instructions before sleeping: tens of microseconds */

struct qrr_pool {
    int n;
    pthread_t *threads;
    pthread_mutex_t mu;
    pthread_cond_t wake; /* workers: a new generation or stop */
    pthread_cond_t done; /* caller: pending reached 0 */
    atomic_uint gen;
    atomic_int pending;
    atomic_int stop;
    int sleepers; /* workers blocked on wake (under mu) */
    int caller_sleeping;
    void (*fn)(void *, int, int); /* written before gen is raised, read after */
    void *arg;
    void *scratch;
    size_t scratch_size;
    struct worker_arg *wargs; /* one per worker thread, alive as long as they are */
};

typedef struct worker_arg {
    qrr_pool *p;
    int index;
} worker_arg;

/* One round of waiting: a pause, and every 64 rounds a yield, so a waiter does not hold a
 * CPU that the thread it waits for needs (more threads than free CPUs). */
static inline void cpu_relax(int round)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ volatile("yield");
#endif
    if ((round & 63) == 63) sched_yield();
}

static void *worker_main(void *v)
{
    worker_arg *wa = v;
    qrr_pool *p = wa->p;
    int index = wa->index;
    unsigned seen = 0;
    for (;;) {
        unsigned g = atomic_load_explicit(&p->gen, memory_order_acquire);
        for (int s = 0; g == seen && s < SPIN_ROUNDS; s++) {
            cpu_relax(s);
            g = atomic_load_explicit(&p->gen, memory_order_acquire);
        }
        if (g == seen) {
            pthread_mutex_lock(&p->mu);
            while ((g = atomic_load_explicit(&p->gen, memory_order_acquire)) == seen) {
                p->sleepers++;
                pthread_cond_wait(&p->wake, &p->mu);
                p->sleepers--;
            }
            pthread_mutex_unlock(&p->mu);
        }
        seen = g;
        if (atomic_load_explicit(&p->stop, memory_order_acquire)) break;
        p->fn(p->arg, index, p->n);
        if (atomic_fetch_sub_explicit(&p->pending, 1, memory_order_acq_rel) == 1) {
            pthread_mutex_lock(&p->mu);
            if (p->caller_sleeping) pthread_cond_signal(&p->done);
            pthread_mutex_unlock(&p->mu);
        }
    }
    return NULL;
}

static void stop_workers(qrr_pool *p, int started)
{
    atomic_store_explicit(&p->stop, 1, memory_order_release);
    pthread_mutex_lock(&p->mu);
    atomic_fetch_add_explicit(&p->gen, 1, memory_order_acq_rel);
    pthread_cond_broadcast(&p->wake);
    pthread_mutex_unlock(&p->mu);
    for (int i = 0; i < started; i++) pthread_join(p->threads[i], NULL);
}

qrr_pool *qrr_pool_create(int n_threads)
{
    if (n_threads < 1 || n_threads > 4096) return NULL;
    qrr_pool *p = calloc(1, sizeof *p);
    if (!p) return NULL;
    p->n = n_threads;
    atomic_init(&p->gen, 0);
    atomic_init(&p->pending, 0);
    atomic_init(&p->stop, 0);
    if (n_threads == 1) return p;
    p->threads = calloc((size_t)n_threads - 1, sizeof *p->threads);
    struct worker_arg *args = calloc((size_t)n_threads - 1, sizeof *args);
    if (!p->threads || !args) goto fail_alloc;
    if (pthread_mutex_init(&p->mu, NULL)) goto fail_alloc;
    if (pthread_cond_init(&p->wake, NULL)) goto fail_mu;
    if (pthread_cond_init(&p->done, NULL)) goto fail_wake;
    for (int i = 0; i < n_threads - 1; i++) {
        args[i].p = p;
        args[i].index = i + 1;
        if (pthread_create(&p->threads[i], NULL, worker_main, &args[i])) {
            stop_workers(p, i);
            pthread_cond_destroy(&p->done);
            goto fail_wake;
        }
    }
    p->wargs = args;
    return p;
fail_wake:
    pthread_cond_destroy(&p->wake);
fail_mu:
    pthread_mutex_destroy(&p->mu);
fail_alloc:
    free(args);
    free(p->threads);
    free(p);
    return NULL;
}

void qrr_pool_free(qrr_pool *p)
{
    if (!p) return;
    if (p->n > 1) {
        stop_workers(p, p->n - 1);
        pthread_cond_destroy(&p->done);
        pthread_cond_destroy(&p->wake);
        pthread_mutex_destroy(&p->mu);
    }
    free(p->wargs);
    free(p->threads);
    free(p->scratch);
    free(p);
}

int qrr_pool_size(const qrr_pool *p)
{
    return p ? p->n : 1;
}

void qrr_pool_run(qrr_pool *p, void (*fn)(void *arg, int i, int n), void *arg)
{
    if (!p || p->n == 1) {
        fn(arg, 0, 1);
        return;
    }
    p->fn = fn;
    p->arg = arg;
    atomic_store_explicit(&p->pending, p->n - 1, memory_order_relaxed);
    pthread_mutex_lock(&p->mu);
    atomic_fetch_add_explicit(&p->gen, 1, memory_order_acq_rel);
    if (p->sleepers) pthread_cond_broadcast(&p->wake);
    pthread_mutex_unlock(&p->mu);
    fn(arg, 0, p->n);
    for (int s = 0; s < SPIN_ROUNDS; s++) {
        if (atomic_load_explicit(&p->pending, memory_order_acquire) == 0) return;
        cpu_relax(s);
    }
    pthread_mutex_lock(&p->mu);
    p->caller_sleeping = 1;
    while (atomic_load_explicit(&p->pending, memory_order_acquire) != 0)
        pthread_cond_wait(&p->done, &p->mu);
    p->caller_sleeping = 0;
    pthread_mutex_unlock(&p->mu);
}

void *qrr__pool_scratch(qrr_pool *p, size_t bytes)
{
    if (!p) return NULL;
    if (bytes > p->scratch_size) {
        size_t want = bytes + bytes / 4 + 4096;
        void *q = NULL;
        want = (want + 63) & ~(size_t)63;
        q = aligned_alloc(64, want);
        if (!q) return NULL;
        free(p->scratch);
        p->scratch = q;
        p->scratch_size = want;
    }
    return p->scratch;
}
