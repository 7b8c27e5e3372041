/* qwen3.h — the Qwen3 forward pass on the CPU over packed sequences, with an optional
 * shared-prefix key/value cache. Scheduling (what goes in a chunk) is score.c's job. */
#ifndef QRR_QWEN3_H
#define QRR_QWEN3_H

#include <stddef.h>
#include <stdint.h>
#include "model.h"

/* Keys and values of a shared prompt prefix, per layer: k[l], v[l] are [n, K*D]. */
typedef struct qrr_prefix_kv {
    int n;        /* prefix tokens; 0 = no prefix */
    int cap;      /* tokens allocated per layer */
    float *k, *v; /* [n_layers, cap, K*D] */
} qrr_prefix_kv;

/* Scratch of one forward chunk, grown on demand; owned by a context. */
typedef struct qrr_scratch {
    size_t cap_tokens, cap_seqs;
    float *x;    /* [T, H] residual stream, fp32 */
    float *xn;   /* [T, H] normed input of a block */
    float *q;    /* [T, Q*D] */
    float *k;    /* [T, K*D] */
    float *v;    /* [T, K*D] */
    float *att;  /* [T, Q*D] attention output */
    float *gu;   /* [T, 2*I] gate | up */
    float *act;  /* [T, I] */
    float *kv_tmp; /* [2, kv_tmp_tokens, K*D] last-layer key/value concat */
    size_t kv_tmp_tokens; /* prefix + longest sequence it was sized for */
    int *starts; /* [S] first token of each sequence in the chunk */
} qrr_scratch;

void qrr__scratch_free(qrr_scratch *s);
/* Free s when it was grown past what chunks of keep_tokens tokens need; 1 if it was. */
int qrr__scratch_trim(qrr_scratch *s, size_t keep_tokens);
void qrr__prefix_free(qrr_prefix_kv *p);

/* Run the prefix (n ids, positions 0..n-1) and keep its keys/values in out. from (NULL, or
 * another prefix whose from->n < n tokens are the first ids): its keys/values are copied
 * and only the tokens after them computed. */
int qrr__forward_prefix(const qrr_model *m, qrr_scratch *s, qrr_pool *pool,
                        const int32_t *ids, int n, const qrr_prefix_kv *from,
                        qrr_prefix_kv *out, qrr_diag *d);

/* Run S sequences packed back to back (seq i: lens[i] >= 1 ids, positions prefix[i]->n + j,
 * attending to prefix[i]'s keys/values first) and write each sequence's last-position logit
 * into delta[i] (logit_yes - logit_no, or the single logit), computed in double. prefix[i]
 * may be NULL (no prefix); sequences of one chunk may have different prefixes. */
int qrr__forward_score(const qrr_model *m, qrr_scratch *s, qrr_pool *pool,
                       const int32_t *const *ids, const int *lens, int S,
                       const qrr_prefix_kv *const *prefix, double *delta, qrr_diag *d);

#endif
