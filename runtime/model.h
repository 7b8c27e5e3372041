/* model.h — the opened model as the runtime sees it: the checked file, its tokenizer, the
 * weights bound per layer, and the prompt pieces tokenized once. Immutable after open, but
 * for the int8 weights' packed copies the first CPU context adds once (cpu_pack.c).
 * Private to libqrr; the public view is the opaque qrr_model in qrr.h. */
#ifndef QRR_MODEL_H
#define QRR_MODEL_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include "qrr.h"
#include "qrr_cpu.h"
#include "qrr_file.h"
#include "tokenizer.h"

typedef struct qrr_layer {
    const float *attn_norm;  /* [H] input_layernorm */
    const float *q_norm;     /* [D] */
    const float *k_norm;     /* [D] */
    const float *mlp_norm;   /* [H] post_attention_layernorm */
    qrr_cpu_weight q, k, v;  /* [Q*D, H], [K*D, H], [K*D, H] */
    qrr_cpu_weight o;        /* [H, Q*D] */
    qrr_cpu_weight gate, up; /* [I, H] */
    qrr_cpu_weight down;     /* [H, I] */
} qrr_layer;

struct qrr_model {
    void *map;               /* mmap of the file, or NULL when opened from memory */
    size_t map_len;
    qrr_file *file;
    const qrr_meta *meta;
    qrr_tokenizer *tok;
    double verify_seconds;   /* time the checksum pass took at open */

    int n_layers, H, Q, K, D, I, V;
    float rms_eps;
    float *inv_freq;         /* [D/2] RoPE inverse frequencies */
    qrr_cpu_weight embed;    /* [V, H] */
    qrr_layer *layers;       /* [n_layers] */
    const float *final_norm; /* [H] */
    const float *head;       /* [head_rows, H]: rows no, yes; or the single score row */
    int head_rows;

    int32_t *prefix_ids;     /* the prompt prefix, tokenized once */
    size_t n_prefix_ids;
    int32_t *suffix_ids;     /* the prompt suffix, tokenized once */
    size_t n_suffix_ids;
    char *strings[QRR_META_STRING_COUNT]; /* NUL-terminated copies of the META strings */
    const char *query_template;           /* = strings[QRR_STR_QUERY_TEMPLATE] */
    const char *document_template;        /* = strings[QRR_STR_DOCUMENT_TEMPLATE] */
    const char *default_instruction;      /* = strings[QRR_STR_INSTRUCTION] */
    int max_length;

    atomic_int cpu_packed;    /* 1 once qrr__model_pack_for_cpu has run */
    void *cpu_packed_weights; /* what the packed copies live in, or NULL */
};

/* Packs the int8 projection weights for this CPU's int8 GEMM, once per model (the first CPU
 * context's call does it on its pool; later calls return at once). Thread-safe. */
void qrr__model_pack_for_cpu(const qrr_model *m, qrr_pool *pool);

/* Record a failure for qrr_last_error() and return its status. */
int qrr__set_error(const qrr_diag *d);
int qrr__errorf(int status, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif
