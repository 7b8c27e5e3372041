/* cuda_model.c — the Qwen3 forward pass on a CUDA GPU, step for step as qwen3.c: embedding,
 * per layer RMSNorm → fused q|k|v GEMM → q/k RMSNorm + RoPE → causal grouped-query attention
 * (with the shared prefix's cached keys/values) → o_proj (+ residual) → RMSNorm → fused
 * gate|up GEMM → SwiGLU → down_proj (+ residual); the last layer and the head on last
 * positions only. Also the once-per-context upload of the weights. Kernels live in
 * kernels/cuda; this file only schedules them on the context's stream.
 *
 * Shapes: T = tokens in the chunk, S = sequences, P = prefix tokens, H = hidden,
 *         Q = q heads, K = kv heads, D = head_dim, I = intermediate, V = vocab,
 *         E = (Q + 2K) * D, the fused q|k|v width.
 * Types: residual stream fp32; GEMM inputs and outputs f16 (int8 + per-row scale for W8A8).
 * With QRR_CUDA_SYNC=1 every kernel and GEMM is followed by a synchronising error check, so
 * that a fault is reported with the name of the kernel and layer that caused it.
 * CUDA graphs: a forward's launches depend only on its shape (the ids, positions and
 * sequence bounds are read from device memory), so a shape met again replays the graph
 * captured for it; QRR_CUDA_GRAPHS picks when (see graph_mode).
 * Built into the CUDA module only (libqrr_cuda.so.0), which exports the table at the end.
 */
#include "cuda_model.h"

#include <cuda_runtime_api.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "qrr_cuda.h"

#define GEMM_WORKSPACE (32u << 20)

typedef enum int8_mode { INT8_W8A8 = 0, INT8_W8A16 = 1 } int8_mode;

/* QRR_CUDA_GRAPHS: 0 = never; auto (default) = a shape's second forward is captured and later
 * ones replay it, so one-off shapes pay no capture; always = capture at first sight (checks). */
typedef enum graph_mode { GRAPHS_OFF = 0, GRAPHS_AUTO = 1, GRAPHS_ALWAYS = 2 } graph_mode;
#define GRAPH_SLOTS 8  /* instantiated graphs kept, least recently used replaced */
#define GRAPH_SEEN 32  /* shapes remembered for GRAPHS_AUTO */

/* What a forward's launches depend on: which forward, tokens, sequences, the longest
 * sequence (attention grids) and the prefix length. */
typedef struct graph_key {
    int score; /* 0: qrr__cuda_forward_prefix, 1: qrr__cuda_forward_score */
    int T, S, max_len, P;
} graph_key;

typedef struct graph_slot {
    graph_key key;
    cudaGraphExec_t exec; /* NULL: free */
    unsigned long long used;
} graph_slot;

/* One linear layer on the device: W [n, k] row-major, f16 or int8 with scales. */
typedef struct dev_weight {
    const char *what; /* "q|k|v_proj", "o_proj", "gate|up_proj" or "down_proj" */
    int i8;        /* 0: f16 data; 1: int8 data and scale */
    void *w;       /* [n, k] */
    float *scale;  /* i8: [n] (block 0) or [n, k / block] */
    int block;
    int n, k;
    int w8a8;      /* i8 and run through cuBLASLt's int8 GEMM (else the W8A16 kernel); cleared
                      for good when cuBLASLt refuses the weight's shape */
} dev_weight;

typedef struct dev_layer {
    float *attn_norm, *q_norm, *k_norm, *mlp_norm; /* [H], [D], [D], [H] */
    dev_weight qkv;  /* [E, H]: q rows, then k, then v */
    dev_weight o;    /* [H, Q*D] */
    dev_weight gu;   /* [2I, H]: gate rows, then up */
    dev_weight down; /* [H, I] */
} dev_layer;

struct qrr_cuda_state {
    int device;
    cudaStream_t stream;
    qrr_cuda_gemm *gemm;
    int8_mode int8;
    int attn_impl;       /* 1 simple, 2 tensor cores */
    int sync;            /* QRR_CUDA_SYNC=1: check every launch with a stream synchronise */
    int at_layer;        /* layer being computed, for messages; -1 outside the layers */
    int any_i8, any_w8a8;
    int gemm_tune;       /* QRR_CUDA_GEMM_TUNE=1: cuBLASLt's candidates timed per shape */
    int i8_refused;      /* int8 weights moved to the W8A16 kernel because cuBLASLt refused */
    char device_name[160];
    double upload_seconds;
    size_t weight_bytes, scratch_bytes, prefix_bytes;

    /* weights */
    void *embed;         /* [V, H] in the file's dtype */
    uint32_t embed_dtype;
    float *embed_scale;  /* I8 only */
    int embed_block;
    dev_layer *layers;   /* [n_layers_alloc] */
    int n_layers_alloc;
    float *final_norm;   /* [H] */
    float *head;         /* [head_rows, H] */
    float *inv_freq;     /* [D/2] */

    /* scratch for up to cap_tokens tokens and cap_seqs sequences */
    size_t cap_tokens, cap_seqs;
    float *x;            /* [T, H] residual stream */
    uint16_t *xn;        /* [T, H] normed input of a block, f16 */
    uint16_t *qkv;       /* [T, E] */
    uint16_t *att;       /* [T, Q*D] */
    uint16_t *gu;        /* [T, 2I]; in acc's room when any weight is W8A8 */
    uint16_t *act;       /* [T, I] */
    int8_t *a8;          /* [T, max(H, Q*D, I)] int8 activations (W8A8) */
    float *as;           /* [T] their per-row scales */
    int32_t *acc;        /* [T, max(E, H, 2I)] int32 GEMM results (W8A8) */
    float *x_last;       /* [S, H] residual rows of last positions */
    float *h_final;      /* [S, H] final-normed rows */
    double *d_logits;    /* [S, 2] */
    int *d_ints;         /* ids [T] | pos [T] | starts [S] | lens [S] | last [S] */
    int *h_ints;         /* pinned host mirror */
    double *h_logits;    /* pinned [S, 2] */

    /* the shared prefix's keys and values: [n_layers, prefix_cap, K*D] f16 each */
    uint16_t *pk, *pv;
    int prefix_n, prefix_cap;

    /* CUDA graphs of recent shapes; dropped whenever scratch or the prefix cache moves */
    graph_mode graphs;
    graph_slot graph[GRAPH_SLOTS];
    graph_key seen[GRAPH_SEEN];
    int n_seen;
    unsigned long long graph_clock;
    long graphs_captured, graph_launches;
    char graphs_off_why[200]; /* set when a capture failed and graphs were turned off */

    /* A W8A8 product of o_proj or down_proj in acc still to be added into the residual rows
     * x: linear() leaves the add to the RMSNorm that reads x next, which does both in one
     * pass (x NULL: none). Host-side bookkeeping of the launch sequence, reset by each. */
    struct {
        float *x;
        const float *sx, *sw;
        int rows, n;
    } pending;

    /* upload staging */
    void *stage;
    size_t stage_bytes;
    int *d_overflow;
};

static int cuda_fail(qrr_diag *d, cudaError_t e, const char *what)
{
    return qrr_fail(d, QRR_ERR_DEVICE, "CUDA %s failed: %s (%s)", what, cudaGetErrorString(e),
                    cudaGetErrorName(e));
}

#define CU(call, what) \
    do { cudaError_t e_ = (call); if (e_ != cudaSuccess) return cuda_fail(d, e_, what); } while (0)
#define TRY(call) \
    do { int rc_ = (call); if (rc_ != QRR_OK) return rc_; } while (0)

/* After a kernel launch (err: its launch status) or a GEMM (rc: its status): fail naming
 * what ran and in which layer; with QRR_CUDA_SYNC=1 also wait for it and report a fault. */
static int launched(qrr_cuda_state *cs, int err, int rc, const char *what, qrr_diag *d)
{
    char where[32] = "";
    if (cs->at_layer >= 0) snprintf(where, sizeof where, " (layer %d)", cs->at_layer);
    if (err)
        return qrr_fail(d, QRR_ERR_DEVICE, "CUDA %s%s failed: %s (%s)", what, where,
                        cudaGetErrorString((cudaError_t)err), cudaGetErrorName((cudaError_t)err));
    if (rc != QRR_OK) return rc;
    if (!cs->sync) return QRR_OK;
    cudaError_t e = cudaStreamSynchronize(cs->stream);
    if (e == cudaSuccess) e = cudaGetLastError();
    if (e != cudaSuccess)
        return qrr_fail(d, QRR_ERR_DEVICE, "CUDA %s%s failed (found by QRR_CUDA_SYNC=1 right "
                        "after it): %s (%s)", what, where, cudaGetErrorString(e),
                        cudaGetErrorName(e));
    return QRR_OK;
}
#define KERNEL(call, what) TRY(launched(cs, (call), QRR_OK, what, d))
#define GEMM(call, what) TRY(launched(cs, 0, (call), what, d))

static int mul_size(size_t a, size_t b, size_t *out, qrr_diag *d)
{
    if (__builtin_mul_overflow(a, b, out))
        return qrr_fail(d, QRR_ERR_INVALID_ARG, "device buffer size overflows (%zu x %zu)", a, b);
    return QRR_OK;
}

static int dev_alloc(qrr_cuda_state *cs, void **p, size_t n, size_t elem, size_t *counter,
                     const char *what, qrr_diag *d)
{
    size_t bytes;
    TRY(mul_size(n ? n : 1, elem, &bytes, d));
    cudaError_t e = cudaMalloc(p, bytes);
    if (e != cudaSuccess) {
        *p = NULL;
        size_t fr = 0, tot = 0;
        cudaMemGetInfo(&fr, &tot);
        (void)cudaGetLastError();
        return qrr_fail(d, QRR_ERR_DEVICE, "cudaMalloc of %zu bytes for %s failed: %s (%zu of "
                        "%zu MiB free on %s)", bytes, what, cudaGetErrorString(e), fr >> 20,
                        tot >> 20, cs->device_name);
    }
    if (counter) *counter += bytes;
    return QRR_OK;
}

/* ---- upload --------------------------------------------------------------------------- */
/* Every copy and conversion goes on the context's stream, so that a conversion kernel runs
 * after its staging copy has landed (a plain cudaMemcpy from pageable memory may return
 * before its DMA is done, and the stream does not wait for the legacy stream). */

static int upload_f32(qrr_cuda_state *cs, const float *src, size_t n, float **dst,
                      const char *what, qrr_diag *d)
{
    TRY(dev_alloc(cs, (void **)dst, n, sizeof(float), &cs->weight_bytes, what, d));
    CU(cudaMemcpyAsync(*dst, src, n * sizeof(float), cudaMemcpyHostToDevice, cs->stream), "upload");
    return QRR_OK;
}

static int stage_reserve(qrr_cuda_state *cs, size_t bytes, qrr_diag *d)
{
    if (bytes <= cs->stage_bytes) return QRR_OK;
    cudaFree(cs->stage);
    cs->stage = NULL;
    cs->stage_bytes = 0;
    TRY(dev_alloc(cs, &cs->stage, bytes, 1, NULL, "upload staging", d));
    cs->stage_bytes = bytes;
    return QRR_OK;
}

/* Copy part (a bound CPU weight) into rows [row0, row0 + part->n) of dst. */
static int upload_part(qrr_cuda_state *cs, const qrr_cpu_weight *part, const char *name,
                       dev_weight *dst, int row0, int scale_cols, qrr_diag *d)
{
    size_t elems, bytes;
    TRY(mul_size((size_t)part->n, (size_t)part->k, &elems, d));
    if (dst->i8) {
        int8_t *w = (int8_t *)dst->w + (size_t)row0 * (size_t)dst->k;
        CU(cudaMemcpyAsync(w, part->data, elems, cudaMemcpyHostToDevice, cs->stream), "upload");
        size_t ns = (size_t)part->n * (size_t)scale_cols;
        CU(cudaMemcpyAsync(dst->scale + (size_t)row0 * scale_cols, part->scale,
                           ns * sizeof(float), cudaMemcpyHostToDevice, cs->stream), "upload");
        return QRR_OK;
    }
    uint16_t *w = (uint16_t *)dst->w + (size_t)row0 * (size_t)dst->k;
    if (part->dtype == QRR_DTYPE_F16) {
        CU(cudaMemcpyAsync(w, part->data, elems * 2, cudaMemcpyHostToDevice, cs->stream), "upload");
        return QRR_OK;
    }
    TRY(mul_size(elems, part->dtype == QRR_DTYPE_F32 ? 4 : 2, &bytes, d));
    TRY(stage_reserve(cs, bytes, d));
    CU(cudaMemcpyAsync(cs->stage, part->data, bytes, cudaMemcpyHostToDevice, cs->stream), "upload");
    CU(cudaMemsetAsync(cs->d_overflow, 0, sizeof(int), cs->stream), "cudaMemset");
    KERNEL(qrr_cuda_to_f16(cs->stage, part->dtype, elems, w, cs->d_overflow, cs->stream),
           "f16 conversion");
    int bad = 0;
    CU(cudaMemcpyAsync(&bad, cs->d_overflow, sizeof bad, cudaMemcpyDeviceToHost, cs->stream),
       "readback");
    CU(cudaStreamSynchronize(cs->stream), "f16 conversion");
    if (bad)
        return qrr_fail(d, QRR_ERR_OVERFLOW, "%s: %d %s values lie outside the f16 range "
                        "(|x| > 65504) or are not finite; this model cannot run in f16 on CUDA "
                        "(convert it to int8, or use the CPU)", name, bad,
                        part->dtype == QRR_DTYPE_F32 ? "f32" : "bf16");
    return QRR_OK;
}

/* Fuse n_parts weights with the same k (rows stacked in order) into one device weight. */
static int upload_linear(qrr_cuda_state *cs, int layer, const char *what,
                         const qrr_cpu_weight *const *parts, int n_parts, dev_weight *dst,
                         qrr_diag *d)
{
    char name[96];
    snprintf(name, sizeof name, "layer %d %s", layer, what);
    memset(dst, 0, sizeof *dst);
    dst->what = what;
    const int i8 = parts[0]->dtype == QRR_DTYPE_I8;
    int n = 0;
    for (int i = 0; i < n_parts; i++) {
        if ((parts[i]->dtype == QRR_DTYPE_I8) != i8 || parts[i]->k != parts[0]->k ||
            (i8 && parts[i]->block != parts[0]->block))
            return qrr_fail(d, QRR_ERR_UNSUPPORTED, "%s: its parts mix storage types or "
                            "widths; the CUDA path fuses them", name);
        if (parts[i]->dtype >= QRR_DTYPE_COUNT)
            return qrr_fail(d, QRR_ERR_UNSUPPORTED, "%s: dtype %u", name, parts[i]->dtype);
        n += parts[i]->n;
    }
    dst->i8 = i8;
    dst->n = n;
    dst->k = parts[0]->k;
    dst->block = i8 ? parts[0]->block : 0;
    if (i8 && dst->block > 0 && dst->k % dst->block)
        return qrr_fail(d, QRR_ERR_UNSUPPORTED, "%s: int8 block %d does not divide %d", name,
                        dst->block, dst->k);
    const int scale_cols = i8 && dst->block > 0 ? dst->k / dst->block : 1;
    size_t elems;
    TRY(mul_size((size_t)n, (size_t)dst->k, &elems, d));
    TRY(dev_alloc(cs, &dst->w, elems, i8 ? 1 : 2, &cs->weight_bytes, name, d));
    if (i8) {
        TRY(dev_alloc(cs, (void **)&dst->scale, (size_t)n * scale_cols, sizeof(float),
                      &cs->weight_bytes, name, d));
        cs->any_i8 = 1;
        dst->w8a8 = cs->int8 == INT8_W8A8 && dst->block == 0 && qrr_cuda_gemm_i8_ok(n, dst->k);
        if (dst->w8a8) cs->any_w8a8 = 1;
    }
    int row = 0;
    for (int i = 0; i < n_parts; i++) {
        TRY(upload_part(cs, parts[i], name, dst, row, scale_cols, d));
        row += parts[i]->n;
    }
    return QRR_OK;
}

static int upload(qrr_cuda_state *cs, const qrr_model *m, qrr_diag *d)
{
    const size_t H = (size_t)m->H, D = (size_t)m->D, V = (size_t)m->V;
    const qrr_cpu_weight *e = &m->embed;
    size_t esz = qrr_dtype_size(e->dtype), elems;
    if (!esz) return qrr_fail(d, QRR_ERR_UNSUPPORTED, "embedding dtype %u", e->dtype);
    TRY(mul_size(V, H, &elems, d));
    TRY(dev_alloc(cs, &cs->embed, elems, esz, &cs->weight_bytes, "the embedding", d));
    CU(cudaMemcpyAsync(cs->embed, e->data, elems * esz, cudaMemcpyHostToDevice, cs->stream), "upload");
    cs->embed_dtype = e->dtype;
    if (e->dtype == QRR_DTYPE_I8) {
        cs->embed_block = e->block;
        size_t ns = e->block > 0 ? V * (H / (size_t)e->block) : V;
        TRY(upload_f32(cs, e->scale, ns, &cs->embed_scale, "embedding scales", d));
    }

    cs->layers = calloc((size_t)m->n_layers, sizeof *cs->layers);
    if (!cs->layers) return qrr_fail(d, QRR_ERR_NOMEM, "out of memory");
    cs->n_layers_alloc = m->n_layers;
    for (int l = 0; l < m->n_layers; l++) {
        const qrr_layer *L = &m->layers[l];
        dev_layer *G = &cs->layers[l];
        TRY(upload_f32(cs, L->attn_norm, H, &G->attn_norm, "norm", d));
        TRY(upload_f32(cs, L->q_norm, D, &G->q_norm, "norm", d));
        TRY(upload_f32(cs, L->k_norm, D, &G->k_norm, "norm", d));
        TRY(upload_f32(cs, L->mlp_norm, H, &G->mlp_norm, "norm", d));
        const qrr_cpu_weight *qkv[3] = {&L->q, &L->k, &L->v};
        const qrr_cpu_weight *o[1] = {&L->o};
        const qrr_cpu_weight *gu[2] = {&L->gate, &L->up};
        const qrr_cpu_weight *down[1] = {&L->down};
        TRY(upload_linear(cs, l, "q|k|v_proj", qkv, 3, &G->qkv, d));
        TRY(upload_linear(cs, l, "o_proj", o, 1, &G->o, d));
        TRY(upload_linear(cs, l, "gate|up_proj", gu, 2, &G->gu, d));
        TRY(upload_linear(cs, l, "down_proj", down, 1, &G->down, d));
    }
    TRY(upload_f32(cs, m->final_norm, H, &cs->final_norm, "final norm", d));
    TRY(upload_f32(cs, m->head, (size_t)m->head_rows * H, &cs->head, "head rows", d));
    TRY(upload_f32(cs, m->inv_freq, D / 2, &cs->inv_freq, "RoPE frequencies", d));
    cudaFree(cs->stage);
    cs->stage = NULL;
    cs->stage_bytes = 0;
    return QRR_OK;
}

/* ---- context ------------------------------------------------------------------------- */

/* Forget every captured graph: they hold the addresses of scratch and the prefix cache. */
static void graphs_drop(qrr_cuda_state *cs)
{
    for (int i = 0; i < GRAPH_SLOTS; i++) {
        if (cs->graph[i].exec) cudaGraphExecDestroy(cs->graph[i].exec);
        cs->graph[i].exec = NULL;
    }
}

static void free_scratch(qrr_cuda_state *cs)
{
    graphs_drop(cs);
    void *gu = (void *)cs->gu == (void *)cs->acc ? NULL : cs->gu; /* acc's room, or its own */
    void *dev[] = {cs->x, cs->xn, cs->qkv, cs->att, gu, cs->act, cs->a8, cs->as, cs->acc,
                   cs->x_last, cs->h_final, cs->d_logits, cs->d_ints};
    for (size_t i = 0; i < sizeof dev / sizeof dev[0]; i++) cudaFree(dev[i]);
    cudaFreeHost(cs->h_ints);
    cudaFreeHost(cs->h_logits);
    cs->x = NULL, cs->xn = NULL, cs->qkv = NULL, cs->att = NULL, cs->gu = NULL, cs->act = NULL;
    cs->a8 = NULL, cs->as = NULL, cs->acc = NULL, cs->x_last = NULL, cs->h_final = NULL;
    cs->d_logits = NULL, cs->d_ints = NULL, cs->h_ints = NULL, cs->h_logits = NULL;
    cs->cap_tokens = cs->cap_seqs = 0;
}

void qrr__cuda_ctx_free(qrr_cuda_state *cs)
{
    if (!cs) return;
    cudaSetDevice(cs->device);
    if (cs->stream) cudaStreamSynchronize(cs->stream);
    free_scratch(cs);
    if (cs->layers) {
        /* A partly uploaded context has NULLs here, which cudaFree accepts. */
        for (int l = 0; l < cs->n_layers_alloc; l++) {
            dev_layer *G = &cs->layers[l];
            cudaFree(G->attn_norm); cudaFree(G->q_norm); cudaFree(G->k_norm); cudaFree(G->mlp_norm);
            dev_weight *ws[4] = {&G->qkv, &G->o, &G->gu, &G->down};
            for (int i = 0; i < 4; i++) { cudaFree(ws[i]->w); cudaFree(ws[i]->scale); }
        }
        free(cs->layers);
    }
    cudaFree(cs->embed);
    cudaFree(cs->embed_scale);
    cudaFree(cs->final_norm);
    cudaFree(cs->head);
    cudaFree(cs->inv_freq);
    graphs_drop(cs);
    cudaFree(cs->pk);
    cudaFree(cs->pv);
    cudaFree(cs->stage);
    cudaFree(cs->d_overflow);
    qrr_cuda_gemm_free(cs->gemm);
    if (cs->stream) cudaStreamDestroy(cs->stream);
    free(cs);
}

/* *out = the index in values (NULL-ended) of environment variable name's value; unset or
 * empty: dflt; anything else fails naming the values allowed. */
static int env_choice(const char *name, const char *const *values, int dflt, int *out,
                      qrr_diag *d)
{
    const char *v = getenv(name);
    *out = dflt;
    if (!v || !*v) return QRR_OK;
    char allowed[64] = "";
    for (int i = 0; values[i]; i++) {
        if (!strcmp(v, values[i])) return *out = i, QRR_OK;
        snprintf(allowed + strlen(allowed), sizeof allowed - strlen(allowed), "%s%s",
                 i ? ", " : "", values[i]);
    }
    return qrr_fail(d, QRR_ERR_INVALID_ARG, "%s=%s: use one of %s", name, v, allowed);
}

int qrr__cuda_ctx_create(const qrr_model *m, qrr_cuda_state **out, qrr_diag *d)
{
    *out = NULL;
    int count = 0;
    TRY(qrr_cuda_device_count(&count, d));
    if (m->D % 8 || (m->D != 128 && m->D != 64))
        return qrr_fail(d, QRR_ERR_UNSUPPORTED, "head_dim %d: the CUDA attention kernels take "
                        "64 or 128", m->D);
    if (m->Q % m->K)
        return qrr_fail(d, QRR_ERR_UNSUPPORTED, "%d query heads over %d kv heads", m->Q, m->K);
    /* The knobs; a value not listed is an error rather than a silent default. */
    static const char *const int8_values[] = {"w8a8", "w8a16", NULL};
    static const char *const attention_values[] = {"tc", "simple", NULL};
    static const char *const graphs_values[] = {"0", "auto", "always", NULL};
    static const char *const sync_values[] = {"0", "1", NULL};
    static const char *const tune_values[] = {"0", "1", NULL};
    int i8, att, graphs, sync, tune;
    TRY(env_choice("QRR_CUDA_INT8", int8_values, 0, &i8, d));
    TRY(env_choice("QRR_CUDA_ATTENTION", attention_values, 0, &att, d));
    TRY(env_choice("QRR_CUDA_GRAPHS", graphs_values, 1, &graphs, d));
    TRY(env_choice("QRR_CUDA_SYNC", sync_values, 0, &sync, d));
    TRY(env_choice("QRR_CUDA_GEMM_TUNE", tune_values, 0, &tune, d));
    qrr_cuda_state *cs = calloc(1, sizeof *cs);
    if (!cs) return qrr_fail(d, QRR_ERR_NOMEM, "out of memory");
    cs->int8 = i8 ? INT8_W8A16 : INT8_W8A8;
    cs->attn_impl = att ? 1 : 2;
    cs->sync = sync;
    cs->graphs = (graph_mode)graphs; /* the values' order is graph_mode's */
    if (cs->sync) cs->graphs = GRAPHS_OFF; /* a captured launch cannot be waited for */
    cs->at_layer = -1;
    cs->device = 0;
    int rc = QRR_OK;
    cudaError_t e = cudaSetDevice(cs->device);
    if (e == cudaSuccess) e = cudaStreamCreateWithFlags(&cs->stream, cudaStreamNonBlocking);
    if (e == cudaSuccess) e = (cudaError_t)qrr_cuda_attention_setup();
    if (e != cudaSuccess) rc = cuda_fail(d, e, "device setup");
    if (rc == QRR_OK)
        rc = qrr_cuda_device_describe(cs->device, cs->device_name, sizeof cs->device_name, d);
    if (rc == QRR_OK) rc = qrr_cuda_gemm_create(&cs->gemm, GEMM_WORKSPACE, d);
    if (rc == QRR_OK) qrr_cuda_gemm_set_tuning(cs->gemm, tune);
    cs->gemm_tune = tune;
    if (rc == QRR_OK)
        rc = dev_alloc(cs, (void **)&cs->d_overflow, 1, sizeof(int), NULL, "a counter", d);
    double t0 = qrr_time_seconds();
    if (rc == QRR_OK) rc = upload(cs, m, d);
    /* The stream, not the device: another thread's context may be capturing a graph. */
    if (rc == QRR_OK && (e = cudaStreamSynchronize(cs->stream)) != cudaSuccess)
        rc = cuda_fail(d, e, "upload");
    cs->upload_seconds = qrr_time_seconds() - t0;
    if (rc != QRR_OK) {
        qrr__cuda_ctx_free(cs);
        return rc;
    }
    *out = cs;
    return QRR_OK;
}

void qrr__cuda_info(const qrr_cuda_state *cs, qrr_cuda_info *out)
{
    memset(out, 0, sizeof *out);
    snprintf(out->device, sizeof out->device, "%s", cs->device_name);
    out->upload_seconds = cs->upload_seconds;
    out->weight_bytes = cs->weight_bytes;
    out->scratch_bytes = cs->scratch_bytes + cs->prefix_bytes;
    for (int l = 0; l < cs->n_layers_alloc; l++) {
        const dev_weight *ws[4] = {&cs->layers[l].qkv, &cs->layers[l].o, &cs->layers[l].gu,
                                   &cs->layers[l].down};
        for (int i = 0; i < 4; i++) {
            out->int8_weights += ws[i]->i8;
            out->w8a8_weights += ws[i]->i8 && ws[i]->w8a8;
        }
    }
    out->int8_refused = cs->i8_refused;
    out->gemm_tuning = cs->gemm_tune;
    out->gemm_tuned = cs->gemm ? qrr_cuda_gemm_tuned(cs->gemm) : 0;
    out->int8_mode = !out->int8_weights ? "none"
                     : out->w8a8_weights == out->int8_weights ? "w8a8"
                     : out->w8a8_weights ? "w8a8+w8a16" : "w8a16";
    out->attention = cs->attn_impl == 1 ? "simple" : "tc";
    out->sync = cs->sync;
    out->graphs = cs->graphs == GRAPHS_OFF ? "off" : cs->graphs == GRAPHS_AUTO ? "auto" : "always";
    out->graphs_captured = cs->graphs_captured;
    out->graph_launches = cs->graph_launches;
    out->graphs_off_why = cs->graphs_off_why[0] ? cs->graphs_off_why : NULL;
}

/* Make room for T tokens and S sequences (the buffers are replaced, not copied). */
static int scratch_reserve(const qrr_model *m, qrr_cuda_state *cs, size_t T, size_t S,
                           qrr_diag *d)
{
    if (T <= cs->cap_tokens && S <= cs->cap_seqs) return QRR_OK;
    CU(cudaStreamSynchronize(cs->stream), "forward");
    free_scratch(cs);
    cs->scratch_bytes = 0;
    if (T < 64) T = 64;
    if (S < 8) S = 8;
    const size_t H = m->H, QD = (size_t)m->Q * m->D, E = QD + 2 * (size_t)m->K * m->D, I = m->I;
    size_t wa = H > QD ? H : QD, wacc = E > H ? E : H, n, tmp;
    if (I > wa) wa = I;
    if (2 * I > wacc) wacc = 2 * I;
    const int Tp = qrr_cuda_gemm_i8_rows(T > INT_MAX ? -1 : (int)T); /* int8 GEMMs' padded rows */
    size_t *c = &cs->scratch_bytes;
#define ALLOC(ptr, rows, width, elem, what) \
    TRY(mul_size((rows), (width), &n, d)); \
    TRY(dev_alloc(cs, (void **)&(ptr), n, (elem), c, what, d))
    ALLOC(cs->x, T, H, sizeof(float), "residual stream");
    ALLOC(cs->xn, T, H, 2, "normed activations");
    ALLOC(cs->qkv, T, E, 2, "q|k|v");
    ALLOC(cs->att, T, QD, 2, "attention output");
    ALLOC(cs->act, T, I, 2, "SwiGLU output");
    if (!cs->any_w8a8) ALLOC(cs->gu, T, 2 * I, 2, "gate|up");
    if (cs->any_w8a8) {
        if (Tp < 0) return qrr_fail(d, QRR_ERR_INVALID_ARG, "%zu tokens in one chunk", T);
        ALLOC(cs->a8, (size_t)Tp, wa, 1, "int8 activations");
        ALLOC(cs->as, T, 1, sizeof(float), "activation scales");
        ALLOC(cs->acc, (size_t)Tp, wacc, sizeof(int32_t), "int32 GEMM results");
        /* f16 gate|up rows exist only where the gate|up product is not W8A8, and live from
         * that product to SwiGLU, while no int32 result does: they share acc's room. */
        cs->gu = (uint16_t *)cs->acc;
        /* The padding rows an int8 GEMM reads are never written: give them defined values. */
        CU(cudaMemsetAsync(cs->a8, 0, (size_t)Tp * wa, cs->stream), "cudaMemset");
    }
    ALLOC(cs->x_last, S, H, sizeof(float), "last rows");
    ALLOC(cs->h_final, S, H, sizeof(float), "final rows");
    ALLOC(cs->d_logits, S, 2, sizeof(double), "logits");
    TRY(mul_size(2, T, &tmp, d));
    ALLOC(cs->d_ints, tmp + 3 * S, 1, sizeof(int), "indices");
#undef ALLOC
    CU(cudaMallocHost((void **)&cs->h_ints, (tmp + 3 * S) * sizeof(int)), "cudaMallocHost");
    CU(cudaMallocHost((void **)&cs->h_logits, 2 * S * sizeof(double)), "cudaMallocHost");
    cs->cap_tokens = T;
    cs->cap_seqs = S;
    return QRR_OK;
}

/* Room for a prefix of n tokens in every layer; the old prefix is dropped. */
static int prefix_reserve(const qrr_model *m, qrr_cuda_state *cs, int n, qrr_diag *d)
{
    if (n <= cs->prefix_cap) return QRR_OK;
    CU(cudaStreamSynchronize(cs->stream), "forward");
    graphs_drop(cs);
    cudaFree(cs->pk);
    cudaFree(cs->pv);
    cs->pk = cs->pv = NULL;
    cs->prefix_cap = 0;
    cs->prefix_bytes = 0;
    size_t per, KD = (size_t)m->K * m->D;
    TRY(mul_size((size_t)m->n_layers * (size_t)n, KD, &per, d));
    TRY(dev_alloc(cs, (void **)&cs->pk, per, 2, &cs->prefix_bytes, "prefix keys", d));
    TRY(dev_alloc(cs, (void **)&cs->pv, per, 2, &cs->prefix_bytes, "prefix values", d));
    cs->prefix_cap = n;
    return QRR_OK;
}

/* Upload ids, positions, starts, lens and last rows of a chunk (one copy). */
static int upload_ints(qrr_cuda_state *cs, const int32_t *const *ids, const int *lens, int S,
                       int P, size_t T, qrr_diag *d)
{
    int *h = cs->h_ints, *hid = h, *hpos = h + T, *hst = h + 2 * T, *hln = hst + S, *hlast = hln + S;
    size_t t = 0;
    for (int i = 0; i < S; i++) {
        hst[i] = (int)t;
        hln[i] = lens[i];
        for (int j = 0; j < lens[i]; j++, t++) {
            hid[t] = ids[i][j];
            hpos[t] = P + j;
        }
        hlast[i] = (int)t - 1;
    }
    CU(cudaMemcpyAsync(cs->d_ints, h, (2 * T + 3 * (size_t)S) * sizeof(int),
                       cudaMemcpyHostToDevice, cs->stream), "upload of ids");
    return QRR_OK;
}

/* The int8 product of a W8A8 weight into cs->acc (int32 [M, W->n]); x8/xs: the input
 * quantized (NULL = quantize x16 here; *xs_used says which scales apply). When cuBLASLt
 * refuses the weight's shape, x8 is turned back into f16 in x16, the weight goes to the
 * W8A16 kernel now and for the rest of the context's life, and QRR_ERR_UNSUPPORTED says so. */
static int w8a8_product(qrr_cuda_state *cs, dev_weight *W, uint16_t *x16, const int8_t *x8,
                        const float *xs, int M, const float **xs_used, qrr_diag *d)
{
    char what[48];
    const int have16 = x8 == NULL; /* x16 holds the input as f16 */
    if (!x8) {
        KERNEL(qrr_cuda_quantize_rows(x16, M, W->k, cs->a8, cs->as, cs->stream), "quantize");
        x8 = cs->a8;
        xs = cs->as;
    }
    int rc = qrr_cuda_gemm_i8(cs->gemm, x8, W->k, M, W->w, W->n, W->k, cs->acc, W->n,
                              cs->stream, d);
    if (rc == QRR_OK) {
        snprintf(what, sizeof what, "int8 GEMM %s", W->what);
        GEMM(rc, what);
        *xs_used = xs;
        return QRR_OK;
    }
    if (rc != QRR_ERR_UNSUPPORTED) return rc;
    W->w8a8 = 0;
    cs->i8_refused++;
    if (!have16)
        KERNEL(qrr_cuda_dequantize_rows(x8, xs, M, W->k, x16, cs->stream), "int8 to f16");
    return QRR_ERR_UNSUPPORTED;
}

/* y (+)= x · W^T for M rows. x16: f16 input [M, W->k]; x8/xs: the same quantized (W8A8
 * only; NULL = quantize here). Output f16 y16 or fp32 y32 (add: accumulate), stride ldy. */
static int linear(qrr_cuda_state *cs, dev_weight *W, uint16_t *x16, const int8_t *x8,
                  const float *xs, int M, uint16_t *y16, float *y32, int ldy, int add,
                  qrr_diag *d)
{
    char what[48];
    if (!W->i8) {
        snprintf(what, sizeof what, "f16 GEMM %s", W->what);
        GEMM(qrr_cuda_gemm_f16(cs->gemm, x16, W->k, M, W->w, W->n, W->k,
                               y16 ? (void *)y16 : (void *)y32, ldy, y16 == NULL, add,
                               cs->stream, d), what);
        return QRR_OK;
    }
    if (W->w8a8) {
        int rc = w8a8_product(cs, W, x16, x8, xs, M, &xs, d);
        if (rc == QRR_OK && y32 && add && ldy == W->n) {
            cs->pending.x = y32, cs->pending.sx = xs, cs->pending.sw = W->scale;
            cs->pending.rows = M, cs->pending.n = W->n;
            return QRR_OK;
        }
        if (rc == QRR_OK) {
            snprintf(what, sizeof what, "W8A8 dequantize %s", W->what);
            KERNEL(qrr_cuda_dequant(cs->acc, M, W->n, xs, W->scale, y16, y32, ldy, add,
                                    cs->stream), what);
            return QRR_OK;
        }
        if (rc != QRR_ERR_UNSUPPORTED) return rc;
    }
    snprintf(what, sizeof what, "W8A16 GEMM %s", W->what);
    KERNEL(qrr_cuda_w8a16_gemm(x16, W->k, M, W->w, W->scale, W->block, W->n, W->k, y16, y32,
                               ldy, add, cs->stream), what);
    return QRR_OK;
}

/* The pending residual add on its own (cs->pending). */
static int flush_pending(qrr_cuda_state *cs, qrr_diag *d)
{
    if (!cs->pending.x) return QRR_OK;
    float *x = cs->pending.x;
    cs->pending.x = NULL;
    KERNEL(qrr_cuda_dequant(cs->acc, cs->pending.rows, cs->pending.n, cs->pending.sx,
                            cs->pending.sw, NULL, x, cs->pending.n, 1, cs->stream),
           "W8A8 dequantize + residual");
    return QRR_OK;
}

/* RMSNorm of rows of x into y16 / y8 (scales ys) / y32 (qrr_cuda_rmsnorm), after the
 * residual add pending for x, if any, in the same pass. */
static int norm_rows(qrr_cuda_state *cs, float *x, const float *w, int rows, int n, float eps,
                     uint16_t *y16, int8_t *y8, float *ys, float *y32, qrr_diag *d)
{
    if (cs->pending.x != x || cs->pending.rows != rows || cs->pending.n != n) {
        TRY(flush_pending(cs, d)); /* not these rows: never the case in the layer sequence */
        KERNEL(qrr_cuda_rmsnorm(x, w, rows, n, eps, y16, y8, ys, y32, cs->stream), "RMSNorm");
        return QRR_OK;
    }
    cs->pending.x = NULL;
    KERNEL(qrr_cuda_rmsnorm_add_i32(x, cs->acc, cs->pending.sx, cs->pending.sw, w, rows, n, eps,
                                    y16, y8, ys, y32, cs->stream),
           "W8A8 dequantize + residual + RMSNorm");
    return QRR_OK;
}

/* xn (f16, or int8 into a8/as when W takes W8A8) = RMSNorm(x) for rows. */
static int norm_for(qrr_cuda_state *cs, const dev_weight *W, float *x, const float *w,
                    int rows, int n, float eps, qrr_diag *d)
{
    const int q8 = W->i8 && W->w8a8;
    return norm_rows(cs, x, w, rows, n, eps, q8 ? NULL : cs->xn, q8 ? cs->a8 : NULL,
                     q8 ? cs->as : NULL, NULL, d);
}

/* x [rows, H] += MLP(RMSNorm(x)). A W8A8 gate|up product goes to SwiGLU as int32. */
static int mlp_block(const qrr_model *m, qrr_cuda_state *cs, dev_layer *G, float *x,
                     int rows, qrr_diag *d)
{
    const int I = m->I, q8 = G->down.i8 && G->down.w8a8;
    uint16_t *act16 = q8 ? NULL : cs->act;
    int8_t *act8 = q8 ? cs->a8 : NULL;
    float *act_s = q8 ? cs->as : NULL;
    TRY(norm_for(cs, &G->gu, x, G->mlp_norm, rows, m->H, m->rms_eps, d));
    int rc = QRR_ERR_UNSUPPORTED;
    if (G->gu.i8 && G->gu.w8a8) {
        const float *xs;
        rc = w8a8_product(cs, &G->gu, cs->xn, cs->a8, cs->as, rows, &xs, d);
        if (rc == QRR_OK)
            KERNEL(qrr_cuda_swiglu_i32(cs->acc, xs, G->gu.scale, rows, I, act16, act8, act_s,
                                       cs->stream), "SwiGLU (W8A8 dequantize)");
        else if (rc != QRR_ERR_UNSUPPORTED)
            return rc;
    }
    if (rc != QRR_OK) {
        TRY(linear(cs, &G->gu, cs->xn, cs->a8, cs->as, rows, cs->gu, NULL, 2 * I, 0, d));
        KERNEL(qrr_cuda_swiglu(cs->gu, rows, I, act16, act8, act_s, cs->stream), "SwiGLU");
    }
    TRY(linear(cs, &G->down, cs->act, cs->a8, cs->as, rows, NULL, x, m->H, 1, d));
    return QRR_OK;
}

/* Which attention kernel qrr_cuda_attention runs (for messages). */
static const char *attention_name(const qrr_cuda_state *cs, int last_only)
{
    return last_only || cs->attn_impl == 1 ? "attention (simple kernel)"
                                           : "attention (tensor-core kernel)";
}

/* RMSNorm, q|k|v for T rows, q/k norm and RoPE at positions pos (device, [T]). A W8A8
 * q|k|v product goes to q/k norm + RoPE as int32. */
static int qkv_block(const qrr_model *m, qrr_cuda_state *cs, dev_layer *G, int T,
                     const int *pos, qrr_diag *d)
{
    const int E = (m->Q + 2 * m->K) * m->D;
    TRY(norm_for(cs, &G->qkv, cs->x, G->attn_norm, T, m->H, m->rms_eps, d));
    if (G->qkv.i8 && G->qkv.w8a8) {
        const float *xs;
        int rc = w8a8_product(cs, &G->qkv, cs->xn, cs->a8, cs->as, T, &xs, d);
        if (rc == QRR_OK) {
            KERNEL(qrr_cuda_qk_norm_rope_i32(cs->acc, xs, G->qkv.scale, cs->qkv, E, T, m->Q,
                                             m->K, m->D, G->q_norm, G->k_norm, m->rms_eps,
                                             pos, cs->inv_freq, cs->stream),
                   "q/k norm + RoPE (W8A8 dequantize)");
            return QRR_OK;
        }
        if (rc != QRR_ERR_UNSUPPORTED) return rc;
    }
    TRY(linear(cs, &G->qkv, cs->xn, cs->a8, cs->as, T, cs->qkv, NULL, E, 0, d));
    KERNEL(qrr_cuda_qk_norm_rope(cs->qkv, E, T, m->Q, m->K, m->D, G->q_norm, G->k_norm,
                                 m->rms_eps, pos, cs->inv_freq, cs->stream), "q/k norm + RoPE");
    return QRR_OK;
}

/* The launches of a prefix forward of k.T tokens (ids and positions already uploaded):
 * every layer's keys and values into the prefix cache. */
static int prefix_launches(const qrr_model *m, qrr_cuda_state *cs, graph_key k, qrr_diag *d)
{
    const int n = k.T;
    const int *d_ids = cs->d_ints, *d_pos = cs->d_ints + n, *d_starts = d_pos + n;
    const int *d_lens = d_starts + 1;
    const size_t QD = (size_t)m->Q * m->D, KD = (size_t)m->K * m->D, E = QD + 2 * KD;
    cs->at_layer = -1;
    cs->pending.x = NULL;
    KERNEL(qrr_cuda_embed(d_ids, n, cs->embed, cs->embed_dtype, cs->embed_scale,
                          cs->embed_block, m->H, cs->x, cs->stream), "embedding");
    for (int l = 0; l < m->n_layers; l++) {
        dev_layer *G = &cs->layers[l];
        cs->at_layer = l;
        TRY(qkv_block(m, cs, G, n, d_pos, d));
        uint16_t *pk = cs->pk + (size_t)l * cs->prefix_cap * KD;
        uint16_t *pv = cs->pv + (size_t)l * cs->prefix_cap * KD;
        CU(cudaMemcpy2DAsync(pk, KD * 2, cs->qkv + QD, E * 2, KD * 2, (size_t)n,
                             cudaMemcpyDeviceToDevice, cs->stream), "prefix keys");
        CU(cudaMemcpy2DAsync(pv, KD * 2, cs->qkv + QD + KD, E * 2, KD * 2, (size_t)n,
                             cudaMemcpyDeviceToDevice, cs->stream), "prefix values");
        if (l == m->n_layers - 1) break; /* later tokens need only this layer's keys/values */
        KERNEL(qrr_cuda_attention(cs->qkv, (int)E, cs->qkv + QD, cs->qkv + QD + KD, (int)E,
                                  NULL, NULL, 0, d_starts, d_lens, 1, n, 0, m->Q, m->K, m->D,
                                  cs->att, (int)QD, cs->attn_impl, cs->stream),
               attention_name(cs, 0));
        TRY(linear(cs, &G->o, cs->att, NULL, NULL, n, NULL, cs->x, m->H, 1, d));
        TRY(mlp_block(m, cs, G, cs->x, n, d));
    }
    cs->at_layer = -1;
    return flush_pending(cs, d); /* none: the last layer ends at its q|k|v */
}

/* The launches of a scoring forward of k.S packed sequences, k.T tokens (uploaded), up to
 * the head's logits in d_logits. */
static int score_launches(const qrr_model *m, qrr_cuda_state *cs, graph_key k, qrr_diag *d)
{
    const int Ti = k.T, S = k.S, P = k.P;
    const int *d_ids = cs->d_ints, *d_pos = cs->d_ints + Ti, *d_starts = d_pos + Ti;
    const int *d_lens = d_starts + S, *d_last = d_lens + S;
    const size_t QD = (size_t)m->Q * m->D, KD = (size_t)m->K * m->D, E = QD + 2 * KD;
    cs->at_layer = -1;
    cs->pending.x = NULL;
    KERNEL(qrr_cuda_embed(d_ids, Ti, cs->embed, cs->embed_dtype, cs->embed_scale,
                          cs->embed_block, m->H, cs->x, cs->stream), "embedding");
    for (int l = 0; l < m->n_layers; l++) {
        dev_layer *G = &cs->layers[l];
        cs->at_layer = l;
        const int last = l == m->n_layers - 1;
        const uint16_t *pk = P ? cs->pk + (size_t)l * cs->prefix_cap * KD : NULL;
        const uint16_t *pv = P ? cs->pv + (size_t)l * cs->prefix_cap * KD : NULL;
        TRY(qkv_block(m, cs, G, Ti, d_pos, d));
        /* Last layer: attention, MLP and head at each sequence's last position only; the
         * results land in rows 0..S-1 (att, x_last). */
        KERNEL(qrr_cuda_attention(cs->qkv, (int)E, cs->qkv + QD, cs->qkv + QD + KD, (int)E,
                                  pk, pv, P, d_starts, d_lens, S, k.max_len, last, m->Q, m->K,
                                  m->D, cs->att, (int)QD, cs->attn_impl, cs->stream),
               attention_name(cs, last));
        if (!last) {
            TRY(linear(cs, &G->o, cs->att, NULL, NULL, Ti, NULL, cs->x, m->H, 1, d));
            TRY(mlp_block(m, cs, G, cs->x, Ti, d));
            continue;
        }
        KERNEL(qrr_cuda_gather_rows(cs->x, m->H, d_last, S, m->H, sizeof(float), cs->x_last,
                                    m->H, cs->stream), "gather");
        TRY(linear(cs, &G->o, cs->att, NULL, NULL, S, NULL, cs->x_last, m->H, 1, d));
        TRY(mlp_block(m, cs, G, cs->x_last, S, d));
    }
    cs->at_layer = -1;
    TRY(norm_rows(cs, cs->x_last, cs->final_norm, S, m->H, m->rms_eps, NULL, NULL, NULL,
                  cs->h_final, d));
    KERNEL(qrr_cuda_head(cs->h_final, S, m->H, cs->head, m->head_rows, cs->d_logits,
                         cs->stream), "head");
    return QRR_OK;
}

typedef int (*launches_fn)(const qrr_model *, qrr_cuda_state *, graph_key, qrr_diag *);

static int same_key(graph_key a, graph_key b)
{
    return a.score == b.score && a.T == b.T && a.S == b.S && a.max_len == b.max_len &&
           a.P == b.P;
}

/* GRAPHS_AUTO: whether shape k ran before (and remember it if not). */
static int seen_before(qrr_cuda_state *cs, graph_key k)
{
    const int n = cs->n_seen < GRAPH_SEEN ? cs->n_seen : GRAPH_SEEN;
    for (int i = 0; i < n; i++)
        if (same_key(cs->seen[i], k)) return 1;
    cs->seen[cs->n_seen++ % GRAPH_SEEN] = k;
    return 0;
}

/* Capture launches for k into a graph and instantiate it in the least recently used slot.
 * On failure: NULL, with why filled in; nothing has run, so the caller can run the same
 * launches directly. */
static graph_slot *capture(const qrr_model *m, qrr_cuda_state *cs, graph_key k,
                           launches_fn launches, qrr_diag *why)
{
    cudaGraph_t graph = NULL;
    cudaGraphExec_t exec = NULL;
    int rc = QRR_OK;
    /* Thread-local: another thread's CUDA calls are not affected by this capture. */
    cudaError_t e = cudaStreamBeginCapture(cs->stream, cudaStreamCaptureModeThreadLocal);
    if (e == cudaSuccess) {
        rc = launches(m, cs, k, why);
        e = cudaStreamEndCapture(cs->stream, &graph); /* always ended, even after a failure */
    }
    if (e == cudaSuccess && rc == QRR_OK) e = cudaGraphInstantiate(&exec, graph, 0);
    if (graph) cudaGraphDestroy(graph);
    if (e != cudaSuccess || rc != QRR_OK) {
        if (rc == QRR_OK) qrr_fail(why, QRR_ERR_DEVICE, "%s", cudaGetErrorName(e));
        (void)cudaGetLastError(); /* a capture error must not be reported by a later launch */
        return NULL;
    }
    graph_slot *g = &cs->graph[0];
    for (int i = 1; i < GRAPH_SLOTS && g->exec; i++)
        if (!cs->graph[i].exec || cs->graph[i].used < g->used) g = &cs->graph[i];
    if (g->exec) cudaGraphExecDestroy(g->exec);
    g->key = k;
    g->exec = exec;
    cs->graphs_captured++;
    return g;
}

/* Enqueue the launches for shape k on the stream: replayed from its graph, captured into a
 * new one, or launched one by one (graphs off, or a shape not seen before under auto). */
static int run_launches(const qrr_model *m, qrr_cuda_state *cs, graph_key k,
                        launches_fn launches, qrr_diag *d)
{
    graph_slot *g = NULL;
    for (int i = 0; cs->graphs != GRAPHS_OFF && i < GRAPH_SLOTS && !g; i++)
        if (cs->graph[i].exec && same_key(cs->graph[i].key, k)) g = &cs->graph[i];
    if (!g && cs->graphs != GRAPHS_OFF && (cs->graphs == GRAPHS_ALWAYS || seen_before(cs, k))) {
        qrr_diag why = {0};
        if (!(g = capture(m, cs, k, launches, &why))) {
            /* Launched directly, the same launches either fail as they are (the error is
             * theirs: graphs stay on) or work, and capturing was what failed: graphs off. */
            TRY(launches(m, cs, k, d));
            snprintf(cs->graphs_off_why, sizeof cs->graphs_off_why, "%.190s", why.msg);
            cs->graphs = GRAPHS_OFF;
            graphs_drop(cs);
            return QRR_OK;
        }
    }
    if (!g) return launches(m, cs, k, d);
    g->used = ++cs->graph_clock;
    cs->graph_launches++;
    CU(cudaGraphLaunch(g->exec, cs->stream), "graph launch");
    return QRR_OK;
}

/* rc of run_launches; after a failure, first wait for what was queued (the copy of the ids
 * reads the pinned buffer that the next forward rewrites). */
static int launches_done(qrr_cuda_state *cs, int rc)
{
    if (rc != QRR_OK) (void)cudaStreamSynchronize(cs->stream);
    return rc;
}

int qrr__cuda_forward_prefix(const qrr_model *m, qrr_cuda_state *cs, const int32_t *ids, int n,
                             qrr_diag *d)
{
    if (n < 1) return qrr_fail(d, QRR_ERR_INVALID_ARG, "empty prefix");
    CU(cudaSetDevice(cs->device), "cudaSetDevice");
    cs->prefix_n = 0;
    TRY(scratch_reserve(m, cs, (size_t)n, 1, d));
    TRY(prefix_reserve(m, cs, n, d));
    TRY(upload_ints(cs, &ids, &n, 1, 0, (size_t)n, d));
    graph_key k = {.score = 0, .T = n, .S = 1, .max_len = n, .P = 0};
    TRY(launches_done(cs, run_launches(m, cs, k, prefix_launches, d)));
    CU(cudaStreamSynchronize(cs->stream), "prefix forward");
    cs->prefix_n = n;
    return QRR_OK;
}

int qrr__cuda_forward_score(const qrr_model *m, qrr_cuda_state *cs, const int32_t *const *ids,
                            const int *lens, int S, int prefix_n, double *delta, qrr_diag *d)
{
    if (S < 1) return QRR_OK;
    if (prefix_n < 0 || (prefix_n > 0 && prefix_n != cs->prefix_n))
        return qrr_fail(d, QRR_ERR_INVALID_ARG, "prefix of %d tokens asked, %d computed",
                        prefix_n, cs->prefix_n);
    size_t T = 0;
    int max_len = 0;
    for (int i = 0; i < S; i++) {
        if (lens[i] < 1) return qrr_fail(d, QRR_ERR_INVALID_ARG, "sequence %d is empty", i);
        T += (size_t)lens[i];
        if (lens[i] > max_len) max_len = lens[i];
    }
    if (T > (size_t)1 << 30)
        return qrr_fail(d, QRR_ERR_INVALID_ARG, "%zu tokens in one chunk", T);
    CU(cudaSetDevice(cs->device), "cudaSetDevice");
    TRY(scratch_reserve(m, cs, T, (size_t)S, d));
    TRY(upload_ints(cs, ids, lens, S, prefix_n, T, d));
    graph_key k = {.score = 1, .T = (int)T, .S = S, .max_len = max_len, .P = prefix_n};
    TRY(launches_done(cs, run_launches(m, cs, k, score_launches, d)));
    CU(cudaMemcpyAsync(cs->h_logits, cs->d_logits, (size_t)S * m->head_rows * sizeof(double),
                       cudaMemcpyDeviceToHost, cs->stream), "readback");
    CU(cudaStreamSynchronize(cs->stream), "forward");
    for (int i = 0; i < S; i++) {
        const double *r = cs->h_logits + (size_t)i * m->head_rows;
        delta[i] = m->head_rows == 2 ? r[1] - r[0] : r[0];
    }
    return QRR_OK;
}


/* The module's one export (cuda_model.h): what libqrr's loader checks, then calls. */
__attribute__((visibility("default"))) const qrr_cuda_module *qrr_cuda_module_v1(void);
const qrr_cuda_module *qrr_cuda_module_v1(void)
{
    static const qrr_cuda_module table = {
        .abi = QRR_CUDA_MODULE_ABI,
        .version = QRR_VERSION_STRING,
        .model_size = sizeof(qrr_model),
        .layer_size = sizeof(qrr_layer),
        .info_size = sizeof(qrr_cuda_info),
        .ctx_create = qrr__cuda_ctx_create,
        .ctx_free = qrr__cuda_ctx_free,
        .forward_prefix = qrr__cuda_forward_prefix,
        .forward_score = qrr__cuda_forward_score,
        .info = qrr__cuda_info,
    };
    return &table;
}
