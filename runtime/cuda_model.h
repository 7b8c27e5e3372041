/* cuda_model.h — the Qwen3 forward pass on a CUDA GPU, with the same steps and the same
 * contract as qwen3.h's CPU version: weights uploaded once per context, packed sequences,
 * a shared prefix's keys/values kept on the device. Private to qrr. The definitions live in
 * the CUDA module, libqrr_cuda.so.0 (cuda_model.c and kernels/cuda, linked with the CUDA
 * runtime and cuBLASLt), which libqrr loads when a context first asks for device cuda
 * (cuda_loader.c), so that libqrr itself needs no CUDA library. The module hands libqrr
 * these functions in one table, qrr_cuda_module. */
#ifndef QRR_CUDA_MODEL_H
#define QRR_CUDA_MODEL_H

#include <stddef.h>
#include <stdint.h>
#include "model.h"

/* Device state of one context: the weights, scratch, the prefix cache, the stream. */
typedef struct qrr_cuda_state qrr_cuda_state;

/* Pick device 0, upload m's weights (f32/bf16 converted to f16 on the device, int8 kept
 * with its scales) and make the GEMM handle. No device or driver: QRR_ERR_DEVICE with
 * "no CUDA device: ..."; a bf16/f32 weight beyond f16's range: QRR_ERR_OVERFLOW naming it.
 * Knobs read from the environment (for measurement): QRR_CUDA_INT8=w8a8 (default) | w8a16,
 * QRR_CUDA_ATTENTION=tc (default) | simple, QRR_CUDA_SYNC=1 (synchronise and check after
 * every kernel and GEMM, naming it in the error; no graphs then), QRR_CUDA_GRAPHS=auto
 * (default: a shape's forwards replay a CUDA graph from the second on) | always | 0. */
int qrr__cuda_ctx_create(const qrr_model *m, qrr_cuda_state **out, qrr_diag *d);
void qrr__cuda_ctx_free(qrr_cuda_state *cs);

/* As qrr__forward_prefix: run the prefix (n ids, positions 0..n-1) and keep its keys and
 * values on the device, replacing any earlier prefix. */
int qrr__cuda_forward_prefix(const qrr_model *m, qrr_cuda_state *cs, const int32_t *ids, int n,
                             qrr_diag *d);

/* As qrr__forward_score: S packed sequences (lens[i] >= 1, positions prefix_n + j) attend to
 * the prefix of the last qrr__cuda_forward_prefix call when prefix_n > 0 (prefix_n must be
 * its n; 0 = no prefix); delta[i] = logit_yes - logit_no (or the single logit), the head's
 * dot products accumulated in double. */
int qrr__cuda_forward_score(const qrr_model *m, qrr_cuda_state *cs, const int32_t *const *ids,
                            const int *lens, int S, int prefix_n, double *delta, qrr_diag *d);

/* What a context holds, for reports (qrr_ctx_describe: `qrr check`, the GPU benchmark). */
typedef struct qrr_cuda_info {
    char device[160];       /* "NVIDIA H100 80GB HBM3, sm_90, 132 SMs, 79.1 GiB" */
    double upload_seconds;  /* qrr__cuda_ctx_create's upload and conversion */
    size_t weight_bytes;    /* device bytes holding weights */
    size_t scratch_bytes;   /* device bytes of scratch and prefix cache now */
    const char *int8_mode;  /* "w8a8", "w8a16", "w8a8+w8a16" (some of each) or "none" */
    int int8_weights;       /* fused linear weights stored int8 (4 per layer) */
    int w8a8_weights;       /* of those, run through cuBLASLt's int8 GEMM now */
    int int8_refused;       /* moved to W8A16 because cuBLASLt refused their shape */
    const char *attention;  /* "tc" or "simple" (the last layer always runs "simple") */
    int sync;               /* QRR_CUDA_SYNC=1: every launch checked with a synchronise */
    int gemm_tuning;        /* QRR_CUDA_GEMM_TUNE=1 */
    long gemm_tuned;        /* GEMM shapes whose cuBLASLt algorithm was chosen by timing */
    const char *graphs;     /* QRR_CUDA_GRAPHS now: "auto", "always" or "off" */
    long graphs_captured;   /* CUDA graphs captured so far */
    long graph_launches;    /* forwards launched from a graph */
    const char *graphs_off_why; /* why graphs were turned off after a failed capture, or NULL */
} qrr_cuda_info;
void qrr__cuda_info(const qrr_cuda_state *cs, qrr_cuda_info *out);

/* What the module exports, by one symbol: its functions, and what it was built with. A
 * module is used only with the libqrr of its own build: same version, same ABI number (raise
 * it whenever this table, qrr_cuda_info or what the module reads of qrr_model changes; abi
 * stays the first field, which the loader reads before any other), same struct sizes. */
#define QRR_CUDA_MODULE_ABI 1
#define QRR_CUDA_MODULE_SONAME "libqrr_cuda.so.0"
#define QRR_CUDA_MODULE_SYMBOL "qrr_cuda_module_v1"
typedef struct qrr_cuda_module {
    int abi;              /* QRR_CUDA_MODULE_ABI */
    const char *version;  /* QRR_VERSION_STRING */
    size_t model_size, layer_size, info_size; /* sizeof(qrr_model), (qrr_layer), (qrr_cuda_info) */
    int (*ctx_create)(const qrr_model *m, qrr_cuda_state **out, qrr_diag *d);
    void (*ctx_free)(qrr_cuda_state *cs);
    int (*forward_prefix)(const qrr_model *m, qrr_cuda_state *cs, const int32_t *ids, int n,
                          qrr_diag *d);
    int (*forward_score)(const qrr_model *m, qrr_cuda_state *cs, const int32_t *const *ids,
                         const int *lens, int S, int prefix_n, double *delta, qrr_diag *d);
    void (*info)(const qrr_cuda_state *cs, qrr_cuda_info *out);
} qrr_cuda_module;

/* libqrr's side (cuda_loader.c): the module, loaded at the first call and kept for the
 * process's life; NULL with QRR_ERR_UNSUPPORTED in d when there is none to load, or it is
 * not of this build. Where it looks: the path in QRR_CUDA_MODULE if set (and nowhere else);
 * else beside the file holding libqrr (libqrr.so, or the program linked with libqrr.a) and
 * beside the running program, each then in ../lib, then the dynamic loader's own search
 * (LD_LIBRARY_PATH, ld.so.cache). */
const qrr_cuda_module *qrr__cuda_module(qrr_diag *d);

#endif
