/* qrr_schema.c — the list of tensors a Qwen3 reranker with given hyper-parameters holds:
 * names, roles, dtypes and shapes, in the order qconvert writes them. It reads no file;
 * the loader compares a file's tensor table with this list. */
#include "qrr_schema.h"

#include <stdio.h>
#include <stdlib.h>

typedef struct builder {
    qrr_schema_entry *e;
    size_t n, cap;
    uint32_t weight_dtype, quant_block;
} builder;

static void put(builder *b, const char *name, uint32_t role, uint32_t dtype, uint32_t ndim,
                uint64_t d0, uint64_t d1)
{
    qrr_schema_entry *e = &b->e[b->n++]; /* cap computed by the caller, never exceeded */
    snprintf(e->name, sizeof e->name, "%s", name);
    e->role = role;
    e->dtype = dtype;
    e->ndim = ndim;
    e->dims[0] = d0;
    e->dims[1] = ndim > 1 ? d1 : 0;
}

/* A linear layer or the embedding [out, in], and its int8 scales when weights are int8. */
static void put_weight(builder *b, const char *name, uint64_t out, uint64_t in)
{
    put(b, name, QRR_ROLE_WEIGHT, b->weight_dtype, 2, out, in);
    if (b->weight_dtype != QRR_DTYPE_I8) return;
    char sname[QRR_TENSOR_NAME_MAX];
    snprintf(sname, sizeof sname, "%s_scale", name);
    if (b->quant_block)
        put(b, sname, QRR_ROLE_SCALE, QRR_DTYPE_F32, 2, out, in / b->quant_block);
    else
        put(b, sname, QRR_ROLE_SCALE, QRR_DTYPE_F32, 1, out, 0);
}

int qrr_schema_build(const qrr_meta *m, qrr_schema_entry **out, size_t *count, qrr_diag *d)
{
    if (!m || !out || !count)
        return qrr_fail(d, QRR_ERR_INVALID_ARG, "qrr_schema_build: NULL argument");
    *out = NULL;
    *count = 0;
    int rc = qrr_meta_validate(m, d);
    if (rc != QRR_OK) return rc;

    const qrr_meta_disk *f = &m->fixed;
    uint64_t H = f->hidden, I = f->intermediate, V = f->vocab_size, D = f->head_dim;
    uint64_t QD = (uint64_t)f->n_heads * D, KD = (uint64_t)f->n_kv_heads * D;
    int q8 = f->weight_dtype == QRR_DTYPE_I8;

    /* Per layer: 4 norms + 7 weights (+ 7 scales); plus embedding (+ scale), norm, head.
     * n_layers <= QRR_MAX_LAYERS keeps this far below QRR_MAX_TENSORS. */
    size_t per_layer = 11 + (q8 ? 7 : 0);
    size_t cap = (size_t)f->n_layers * per_layer + 3 + (q8 ? 1 : 0);
    builder b = {.e = calloc(cap, sizeof *b.e), .cap = cap,
                 .weight_dtype = f->weight_dtype, .quant_block = f->quant_block};
    if (!b.e) return qrr_fail(d, QRR_ERR_NOMEM, "out of memory building the tensor schema");

    char name[QRR_TENSOR_NAME_MAX];
    put_weight(&b, "model.embed_tokens.weight", V, H);
    for (uint32_t l = 0; l < f->n_layers; l++) {
#define NAME(suffix) (snprintf(name, sizeof name, "model.layers.%u." suffix, l), name)
        put(&b, NAME("input_layernorm.weight"), QRR_ROLE_NORM, QRR_DTYPE_F32, 1, H, 0);
        put_weight(&b, NAME("self_attn.q_proj.weight"), QD, H);
        put_weight(&b, NAME("self_attn.k_proj.weight"), KD, H);
        put_weight(&b, NAME("self_attn.v_proj.weight"), KD, H);
        put_weight(&b, NAME("self_attn.o_proj.weight"), H, QD);
        put(&b, NAME("self_attn.q_norm.weight"), QRR_ROLE_NORM, QRR_DTYPE_F32, 1, D, 0);
        put(&b, NAME("self_attn.k_norm.weight"), QRR_ROLE_NORM, QRR_DTYPE_F32, 1, D, 0);
        put(&b, NAME("post_attention_layernorm.weight"), QRR_ROLE_NORM, QRR_DTYPE_F32, 1, H, 0);
        put_weight(&b, NAME("mlp.gate_proj.weight"), I, H);
        put_weight(&b, NAME("mlp.up_proj.weight"), I, H);
        put_weight(&b, NAME("mlp.down_proj.weight"), H, I);
#undef NAME
    }
    put(&b, "model.norm.weight", QRR_ROLE_NORM, QRR_DTYPE_F32, 1, H, 0);
    put(&b, "head.weight", QRR_ROLE_HEAD, QRR_DTYPE_F32, 2,
        f->head_kind == QRR_HEAD_YES_NO ? 2 : 1, H);

    *out = b.e;
    *count = b.n;
    return QRR_OK;
}
