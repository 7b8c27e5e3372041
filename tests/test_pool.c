/* test_pool.c — the worker pool: every thread index runs exactly once per run, a parallel
 * sum equals the serial one for 1..8 threads, many back-to-back runs, runs after the workers
 * went to sleep, and the NULL pool. */
#include <criterion/criterion.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <time.h>
#include "qrr_pool.h"

typedef struct sum_job {
    const int64_t *v;
    size_t n;
    int64_t partial[16];
    int seen[16];
    int nthreads;
} sum_job;

static void sum_part(void *arg, int i, int n)
{
    sum_job *j = arg;
    size_t b = j->n * (size_t)i / (size_t)n, e = j->n * (size_t)(i + 1) / (size_t)n;
    int64_t s = 0;
    for (size_t k = b; k < e; k++) s += j->v[k];
    j->partial[i] = s;
    j->seen[i]++;
    j->nthreads = n;
}

Test(pool, parallel_sum_equals_serial)
{
    size_t n = 100003;
    int64_t *v = malloc(sizeof(int64_t) * n), serial = 0;
    cr_assert(v);
    for (size_t i = 0; i < n; i++) {
        v[i] = (int64_t)((i * 2654435761u) % 1000003) - 500000;
        serial += v[i];
    }
    for (int t = 1; t <= 8; t++) {
        qrr_pool *p = qrr_pool_create(t);
        cr_assert_not_null(p);
        cr_assert_eq(qrr_pool_size(p), t);
        for (int rep = 0; rep < 3; rep++) {
            sum_job j = {.v = v, .n = n};
            qrr_pool_run(p, sum_part, &j);
            int64_t total = 0;
            for (int i = 0; i < t; i++) {
                cr_assert_eq(j.seen[i], 1, "threads %d: index %d ran %d times", t, i, j.seen[i]);
                total += j.partial[i];
            }
            for (int i = t; i < 16; i++) cr_assert_eq(j.seen[i], 0);
            cr_assert_eq(j.nthreads, t);
            cr_assert_eq(total, serial, "threads %d", t);
        }
        qrr_pool_free(p);
    }
    free(v);
}

static void count_part(void *arg, int i, int n)
{
    (void)i;
    (void)n;
    atomic_fetch_add((atomic_long *)arg, 1);
}

Test(pool, many_back_to_back_runs)
{
    for (int t = 2; t <= 4; t++) {
        qrr_pool *p = qrr_pool_create(t);
        cr_assert_not_null(p);
        atomic_long c = 0;
        int runs = 5000;
        for (int r = 0; r < runs; r++) qrr_pool_run(p, count_part, &c);
        cr_assert_eq(atomic_load(&c), (long)runs * t, "threads %d", t);
        qrr_pool_free(p);
    }
}

Test(pool, runs_after_idle_sleep)
{
    qrr_pool *p = qrr_pool_create(3);
    cr_assert_not_null(p);
    atomic_long c = 0;
    for (int r = 0; r < 3; r++) {
        struct timespec ts = {0, 20 * 1000 * 1000}; /* long enough for workers to sleep */
        nanosleep(&ts, NULL);
        qrr_pool_run(p, count_part, &c);
    }
    cr_assert_eq(atomic_load(&c), 9);
    qrr_pool_free(p);
}

Test(pool, null_and_single_thread_pools_run_inline)
{
    sum_job j = {0};
    int64_t v[3] = {1, 2, 3};
    j.v = v;
    j.n = 3;
    qrr_pool_run(NULL, sum_part, &j);
    cr_assert_eq(j.nthreads, 1);
    cr_assert_eq(j.partial[0], 6);
    cr_assert_eq(qrr_pool_size(NULL), 1);
    qrr_pool *p = qrr_pool_create(1);
    cr_assert_not_null(p);
    qrr_pool_run(p, sum_part, &j);
    cr_assert_eq(j.seen[0], 2);
    qrr_pool_free(p);
    cr_assert_null(qrr_pool_create(0));
    qrr_pool_free(NULL);
}
