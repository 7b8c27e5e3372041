/* qrr_pool.h — a small persistent thread pool with one primitive: run fn(arg, i, n) for
 * i = 0..n-1 on n workers (the caller is worker 0) and wait for all. Compute only. */
#ifndef QRR_POOL_H
#define QRR_POOL_H

typedef struct qrr_pool qrr_pool;

/* n_threads >= 1; 1 creates no threads. NULL on failure. */
qrr_pool *qrr_pool_create(int n_threads);
void qrr_pool_free(qrr_pool *p);
int qrr_pool_size(const qrr_pool *p);
/* Runs fn on every thread of the pool (thread index i of n) and returns when all are done.
 * A NULL pool runs fn(arg, 0, 1) inline. Not reentrant: one run at a time per pool. */
void qrr_pool_run(qrr_pool *p, void (*fn)(void *arg, int i, int n), void *arg);

#endif
