/* qrr_schema.h — which tensors a model with given hyper-parameters must hold, their
 * shapes and allowed types. One list, used by qconvert to decide what to write and by the
 * loader to check what it reads. Names follow Hugging Face Qwen3 names; the head is
 * "head.weight" (qrr_head_kind says which rows it holds). */
#ifndef QRR_SCHEMA_H
#define QRR_SCHEMA_H

#include <stdint.h>
#include "qrr_format.h"
#include "qrr_meta.h"
#include "qrr_diag.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum qrr_tensor_role {
    QRR_ROLE_WEIGHT = 0, /* linear layer or embedding: stored in meta.weight_dtype */
    QRR_ROLE_NORM = 1,   /* RMSNorm weight: always F32 */
    QRR_ROLE_HEAD = 2,   /* head rows: always F32 */
    QRR_ROLE_SCALE = 3,  /* int8 scales of the weight before it: always F32 */
    QRR_ROLE_COUNT
} qrr_tensor_role;

typedef struct qrr_schema_entry {
    char name[QRR_TENSOR_NAME_MAX];
    uint32_t role;          /* qrr_tensor_role */
    uint32_t dtype;         /* the one dtype allowed */
    uint32_t ndim;
    uint64_t dims[QRR_MAX_DIMS];
} qrr_schema_entry;

/* Build the expected tensor list for m (validated metadata) into a malloc'ed array, in the
 * order qconvert writes them: embedding, then per layer input_layernorm, q/k/v/o_proj,
 * q_norm, k_norm, post_attention_layernorm, gate/up/down_proj, then model.norm and head.
 * An I8 weight is followed by its "<name>_scale" F32 tensor: [out] per channel, or
 * [out, in / quant_block] per block. */
int qrr_schema_build(const qrr_meta *m, qrr_schema_entry **out, size_t *count, qrr_diag *d);

#ifdef __cplusplus
}
#endif
#endif
