/* context.h — what a scoring context holds (private to libqrr): the thread pool, forward
 * scratch, the prefix key/value slots of the groups in flight, the prompt buffers of a text
 * request, device state. context.c makes and frees it; batch.c and score.c use it. */
#ifndef QRR_CONTEXT_H
#define QRR_CONTEXT_H

#include "model.h"
#include "prompt.h"
#include "qwen3.h"
#ifdef QRR_WITH_CUDA
#include "cuda_model.h"
#endif

/* Groups whose shared prefix may be held at once (in one forward chunk). */
#define QRR_PREFIX_SLOTS 8

struct qrr_ctx {
    const qrr_model *m;
    qrr_pool *pool;
    qrr_ctx_params params;
    qrr_scratch scratch;
    qrr_prefix_kv prefix[QRR_PREFIX_SLOTS];
    qrr_ids *prompts;     /* [cap_prompts] built prompts of the current text request */
    size_t cap_prompts;
    qrr_stats stats;      /* of the last call */
#ifdef QRR_WITH_CUDA
    qrr_cuda_state *cuda; /* device state when params.device is QRR_DEVICE_CUDA */
#endif
};

/* Score every sequence of every group (batch.c); the caller has reset c->stats. */
int qrr__score_groups(qrr_ctx *c, const qrr_group *groups, size_t n_groups, qrr_diag *d);

/* Give back buffers a call grew past what chunks of max_batch_tokens need (context.c). */
void qrr__ctx_release_large(qrr_ctx *c);

#endif
