/* context.h — what a scoring context holds (private to libqrr): the thread pool, forward
 * scratch, the prefix key/value slots of the groups in flight, the prompt head, the prompt
 * buffers of a text request, device state. context.c makes and frees it; batch.c and score.c use it. */
#ifndef QRR_CONTEXT_H
#define QRR_CONTEXT_H

#include <stdatomic.h>

#include "model.h"
#include "prompt.h"
#include "qwen3.h"
#include "cuda_model.h"

/* Groups whose shared prefix may be held at once (in one forward chunk). */
#define QRR_PREFIX_SLOTS 8
/* Below this many tokens, sharing a prefix saves less than its bookkeeping. */
#define MIN_SHARED_PREFIX 8

struct qrr_ctx {
    const qrr_model *m;
    qrr_pool *pool;
    qrr_ctx_params params;
    qrr_scratch scratch;
    qrr_prefix_kv prefix[QRR_PREFIX_SLOTS];
    qrr_ids *prompts;     /* [cap_prompts] built prompts of the current text request */
    size_t cap_prompts;
    qrr_stats stats;      /* of the last call */
    qrr_prefix_kv head;   /* the prompt head's keys/values (prompt_head.c) */
    qrr_ids head_ids;     /* its ids */
    int head_state;       /* 0: not built yet, 1: built, -1: none for this context */
    atomic_int busy;      /* 1 while a scoring call runs: a second thread is refused */
    _Atomic(const void *) scoring_thread; /* the running call's thread tag (score.c) */
    int (*should_stop)(void *); /* qrr_ctx_set_abort, or NULL */
    void *stop_arg;
    const qrr_cuda_module *cuda_fn; /* the CUDA module's functions, when params.device is */
    qrr_cuda_state *cuda;           /* QRR_DEVICE_CUDA, and the device state they work on */
};

/* Score every sequence of every group (batch.c); the caller has reset c->stats. A text
 * call passes its one group's first document index as first_doc, so that messages name
 * "document N"; -1 names sequences (and groups). */
int qrr__score_groups(qrr_ctx *c, const qrr_group *groups, size_t n_groups, ptrdiff_t first_doc,
                      qrr_diag *d);

/* Tokens of the prompt head (prompt_head.c) that every sequence of group G starts with,
 * when at least MIN_SHARED_PREFIX, else 0; the head is computed at the first call (its
 * tokens added to *computed). Always 0 on CUDA or with share_prefix off. */
size_t qrr__head_prefix(qrr_ctx *c, const qrr_group *G, size_t *computed);
void qrr__head_free(qrr_ctx *c);

/* Give back buffers a call grew past what chunks of max_batch_tokens need (context.c). */
void qrr__ctx_release_large(qrr_ctx *c);

#endif
