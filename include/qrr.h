/* qrr.h — the public C API of libqrr: open a .qrr reranker, score (query, document) pairs.
 *
 * Usage:
 *
 *     #include "qrr.h"
 *     qrr_model *model;
 *     if (qrr_model_open("model.qrr", qrr_model_default_params(), &model) != QRR_OK) {
 *         fprintf(stderr, "%s\n", qrr_last_error());
 *         return 1;
 *     }
 *     qrr_ctx *ctx;
 *     qrr_ctx_params cp = qrr_ctx_default_params();
 *     cp.n_threads = 2;
 *     if (qrr_ctx_create(model, cp, &ctx) != QRR_OK) { ... }
 *     const char *docs[] = {"The capital of China is Beijing.", "Gravity is a force."};
 *     float scores[2];
 *     qrr_ctx_score(ctx, "What is the capital of China?", docs, 2,
 *                   qrr_score_default_params(), scores, NULL);
 *     qrr_ctx_free(ctx);
 *     qrr_model_close(model);
 *
 * Thread safety: a qrr_model is immutable once opened and may be shared by any number of
 * threads; a qrr_ctx holds scratch memory and device state and must be used by one thread
 * at a time (create one per thread): a scoring call made while another runs on the same
 * context fails with QRR_ERR_INVALID_ARG. qrr_last_error() is per thread. Free every context of
 * a model before closing the model.
 *
 * Errors: every function that can fail returns a qrr_status (QRR_OK = 0, negative on error)
 * and leaves a detailed message for qrr_last_error(). The library never prints, exits or
 * aborts on bad input. A scoring call checks every argument before it writes any output; a
 * failure found later (out of memory, a non-finite result) may leave part of the outputs
 * written.
 *
 * Building: `make install` puts this header and qrr_status.h under PREFIX/include and the
 * libraries under PREFIX/lib; `cc app.c $(pkg-config --cflags --libs qrr)`. libqrr.so
 * exports the functions marked QRR_API and nothing else.
 */
#ifndef QRR_H
#define QRR_H

#include <stddef.h>
#include <stdint.h>
#include "qrr_status.h"

#ifdef __cplusplus
extern "C" {
#endif

#define QRR_VERSION_STRING "0.1.0" /* major.minor.patch; libqrr.so.<major> is the soname */

typedef struct qrr_model qrr_model;
typedef struct qrr_ctx qrr_ctx;

typedef enum qrr_device {
    QRR_DEVICE_CPU = 0,
    QRR_DEVICE_CUDA = 1,
    QRR_DEVICE_COUNT
} qrr_device;

typedef struct qrr_model_params {
    int verify_weights; /* 1 (default): check every tensor's checksum at open; 0 skips those
                           of the linear layers and the embedding (nearly all of the file) */
} qrr_model_params;

typedef struct qrr_ctx_params {
    int n_threads;      /* CPU threads; 0 = one per online CPU */
    qrr_device device;  /* QRR_DEVICE_CPU by default; QRR_DEVICE_CUDA loads the CUDA module,
                           libqrr_cuda.so.0, at the first such context (libqrr links no CUDA;
                           QRR_ERR_UNSUPPORTED without the module, QRR_ERR_DEVICE without a
                           usable GPU) */
    int max_batch_tokens; /* tokens per forward chunk; 0 = the device's default,
                             qrr_default_max_batch_tokens (memory stays bounded) */
    int share_prefix;   /* 1 (default; any nonzero): the prompt prefix all documents of a
                           request share is computed once, and on the CPU the prompt head of
                           the default instruction (system turn to "<Query>:") once per
                           context, for every request that starts with it; 0 computes every
                           prompt whole */
} qrr_ctx_params;

typedef struct qrr_score_params {
    const char *instruction; /* NULL = the model's default instruction */
    int max_length;          /* prompt tokens; 0 = the model's default (8192) */
    size_t instruction_len;  /* bytes of instruction; 0 = up to its NUL (for text with NULs);
                                so an empty instruction is "" with 0: a binding whose empty
                                string has no NUL behind it passes "" */
    int truncate;            /* 1 (default; any nonzero): cut the document so the prompt
                                fits max_length; 0: a prompt that does not fit is
                                QRR_ERR_TOO_LONG */
} qrr_score_params;

QRR_API
qrr_model_params qrr_model_default_params(void);
QRR_API
qrr_ctx_params qrr_ctx_default_params(void);
/* Tokens per forward chunk when qrr_ctx_params.max_batch_tokens is 0: 2048 on the CPU,
 * 8192 on CUDA, where a larger chunk keeps the GPU busier (a request of 32 documents of
 * 256 tokens is then one forward); 0 for an unknown device. */
QRR_API
int qrr_default_max_batch_tokens(qrr_device device);
QRR_API
qrr_score_params qrr_score_default_params(void);

/* Map a .qrr file and check it (docs/format.md). */
QRR_API
int qrr_model_open(const char *path, qrr_model_params params, qrr_model **out);
/* The same from a caller-owned buffer, used in place: it must stay allocated and unchanged
 * until qrr_model_close, and start on a QRR_MEMORY_ALIGN-byte boundary (aligned_alloc,
 * posix_memalign or a mapping; malloc's alignment is not enough): QRR_ERR_ALIGNMENT if not. */
#define QRR_MEMORY_ALIGN 64
QRR_API
int qrr_model_open_memory(const void *data, size_t len, qrr_model_params params,
                          qrr_model **out);
QRR_API
void qrr_model_close(qrr_model *model);

/* A scoring context. The first CPU context of a model on a CPU with AVX-512 VNNI also
 * copies the model's int8 weights, once, into the layout its int8 GEMM reads (docs/api.md). */
QRR_API
int qrr_ctx_create(const qrr_model *model, qrr_ctx_params params, qrr_ctx **out);
QRR_API
void qrr_ctx_free(qrr_ctx *ctx);

/* Score one query against n_docs documents with the model's prompt. scores[i] is the
 * probability of "yes" (or sigmoid of the single logit); logits[i] (may be NULL) is
 * logit_yes - logit_no (or the single logit). Results are in input order. Every argument
 * (each document's presence and UTF-8 included) is checked before any compute. */
QRR_API
int qrr_ctx_score(qrr_ctx *ctx, const char *query, const char *const *docs, size_t n_docs,
                  qrr_score_params params, float *scores, float *logits);

/* The same with every text given as bytes and a length, so it may hold NUL bytes and
 * need not be NUL-terminated: the query is query_len bytes, document i is doc_lens[i]. */
QRR_API
int qrr_ctx_score_len(qrr_ctx *ctx, const char *query, size_t query_len,
                      const char *const *docs, const size_t *doc_lens, size_t n_docs,
                      qrr_score_params params, float *scores, float *logits);

/* Score n complete prompts given as token ids (no prompt is added; nothing truncated). */
QRR_API
int qrr_ctx_score_ids(qrr_ctx *ctx, const int32_t *const *ids, const size_t *lens, size_t n,
                      float *scores, float *logits);

/* One request of a batch: n complete prompts (token ids) that belong together, such as one
 * query's documents; their common prefix is computed once. Results go to the group's own
 * arrays (either may be NULL, not both). */
typedef struct qrr_group {
    const int32_t *const *ids;
    const size_t *lens;
    size_t n;
    float *scores; /* [n] P("yes"), or NULL */
    float *logits; /* [n] logit_yes - logit_no (or the single logit), or NULL */
} qrr_group;

/* Score several groups in one call, as a server batches the requests of many clients: each
 * group's common prefix is computed once, and the rest of every group's prompts is packed,
 * in order, into shared forward chunks of at most max_batch_tokens tokens. A group's scores
 * do not depend on the other groups of the call (they equal qrr_ctx_score_ids on the group
 * alone within float rounding). Every group is checked before any compute. */
QRR_API
int qrr_ctx_score_groups(qrr_ctx *ctx, const qrr_group *groups, size_t n_groups);

/* Token counts of the last scoring call on ctx: prompt tokens in all, and tokens the
 * forward pass computed (fewer when a shared prefix was computed once). */
typedef struct qrr_stats {
    size_t tokens;
    size_t tokens_computed;
} qrr_stats;
QRR_API
qrr_stats qrr_ctx_last_stats(const qrr_ctx *ctx);
/* The CPU threads ctx computes with: its n_threads, or the count 0 chose (one per online
 * CPU); 0 for a NULL ctx. */
QRR_API
int qrr_ctx_threads(const qrr_ctx *ctx);

/* Let a long scoring call on ctx be stopped: should_stop(arg) is called on the scoring
 * thread before each forward pass (a chunk of at most max_batch_tokens tokens, or a
 * request's shared prefix); when it returns nonzero, the call ends with QRR_ERR_ABORTED, a
 * failure found while computing (the stopped block of 256 documents writes no result). A
 * server uses it to stop scoring for clients that have gone. Set it while no call runs on
 * ctx; NULL removes it. */
QRR_API
void qrr_ctx_set_abort(qrr_ctx *ctx, int (*should_stop)(void *arg), void *arg);

/* One line on where ctx computes, for logs and reports: "cpu, 8 threads, int8 avx512-vnni
 * GEMM kernels, avx512 attention" (the GEMM kernels for the model's weight dtype) or "cuda:
 * NVIDIA H100 80GB HBM3, sm_90, ...; int8 w8a8 (112 of 112 int8 weights on cuBLASLt, 0
 * refused by it); attention tc; ...". Writes at most cap bytes, always NUL-terminated;
 * QRR_ERR_BUFFER_TOO_SMALL when cut short. */
QRR_API
int qrr_ctx_describe(const qrr_ctx *ctx, char *buf, size_t cap);

/* The CPU kernels this process computes with, chosen once from the CPU's features (the
 * environment variable QRR_CPU_ISA may lower them: scalar|avx2|avx512 on x86-64,
 * scalar|neon|neon-dotprod on AArch64) and the features they were chosen from, e.g.
 * "f32/f16/bf16 GEMM neon, int8 GEMM neon-dotprod, attention neon, norm/rope/swiglu neon
 * (aarch64: asimd asimddp fphp asimdhp)". A static string; `qrr --version` prints it. */
QRR_API
const char *qrr_cpu_kernels(void);

/* Build the token ids of one prompt exactly as qrr_ctx_score does. Writes at most cap ids;
 * *n_ids receives the full count (QRR_ERR_BUFFER_TOO_SMALL when it does not fit). */
QRR_API
int qrr_model_prompt_ids(const qrr_model *model, const char *query, const char *doc,
                         qrr_score_params params, int32_t *ids, size_t cap, size_t *n_ids);
/* The same with lengths (texts may hold NUL bytes). */
QRR_API
int qrr_model_prompt_ids_len(const qrr_model *model, const char *query, size_t query_len,
                             const char *doc, size_t doc_len, qrr_score_params params,
                             int32_t *ids, size_t cap, size_t *n_ids);

/* Tokenize text (no special tokens added) / decode ids; sizes reported as above. */
QRR_API
int qrr_model_tokenize(const qrr_model *model, const char *text, size_t len, int32_t *ids,
                       size_t cap, size_t *n_ids);
QRR_API
int qrr_model_decode(const qrr_model *model, const int32_t *ids, size_t n, char *out,
                     size_t cap, size_t *n_bytes);

/* What an opened model holds, for tools and bindings (`qrr info`, the Python package's
 * info()). Strings are static or live as long as the model. */
typedef struct qrr_model_info {
    /* the file */
    uint32_t format_version;    /* docs/format.md's format version */
    uint32_t quant_version;     /* quantization-layout version */
    uint64_t file_bytes;
    double verify_seconds;      /* the checksum pass at open (weights' part skipped when
                                   verify_weights was 0) */
    /* the architecture */
    const char *arch;           /* "qwen3" */
    int n_layers, hidden, n_heads, n_kv_heads, head_dim, intermediate, vocab_size;
    int max_position;           /* max_position_embeddings */
    double rms_eps, rope_theta;
    int tied;                   /* 1: the checkpoint tied the embedding and the LM head */
    const char *weight_dtype;   /* "f32", "f16", "bf16" or "int8" (linear layers, embedding) */
    int quant_block;            /* int8: 0 = one scale per output row, else per block of inputs */
    /* the head and its labels */
    const char *head_kind;      /* "yes/no" or "single-logit" */
    const char *label_source;   /* how the labels were found: "config", "inferred" or "user"
                                   (the reason in words: qrr_model_meta_str "label_reason") */
    int32_t yes_id, no_id;      /* token ids of the labels; -1 for a single-logit head */
    /* the prompt */
    int max_length;             /* default prompt length limit, in tokens */
    size_t n_prefix_ids, n_suffix_ids; /* tokens of the fixed prompt prefix and suffix */
    /* the tokenizer */
    size_t tokenizer_ids, tokenizer_merges, tokenizer_added;
    /* the tensors (qrr_model_tensor lists them) */
    size_t n_tensors;
    uint64_t tensor_bytes;
} qrr_model_info;
QRR_API
int qrr_model_get_info(const qrr_model *model, qrr_model_info *out);

/* The model's metadata strings by key: "prefix", "suffix", "query_template",
 * "document_template", "instruction" (the default one), "label_no", "label_yes",
 * "label_reason", "provenance" (JSON: sources, hashes, converter flags). NUL-terminated
 * UTF-8 that lives as long as the model; *len (may be NULL) gets its length. An unknown
 * key gives NULL (and a message for qrr_last_error). qrr_model_meta_key(i) names key i,
 * NULL past the last, so a binding can list them all. */
QRR_API
const char *qrr_model_meta_str(const qrr_model *model, const char *key, size_t *len);
QRR_API
const char *qrr_model_meta_key(size_t i);

/* Tensor i (0 <= i < qrr_model_info.n_tensors) of the file, in file order. */
typedef struct qrr_tensor_info {
    const char *name;           /* lives as long as the model */
    const char *dtype;          /* "f32", "f16", "bf16" or "int8" */
    int ndim;
    uint64_t dims[4];           /* outermost first; dims[ndim..3] are 0 */
    uint64_t bytes;
} qrr_tensor_info;
QRR_API
int qrr_model_tensor(const qrr_model *model, size_t i, qrr_tensor_info *out);

/* Seconds on a monotonic clock, for timing calls (what the qrr tools time with). */
QRR_API
double qrr_time_seconds(void);

/* The message of the last failure on this thread ("" if none). */
QRR_API
const char *qrr_last_error(void);
QRR_API
const char *qrr_version(void);

#ifdef __cplusplus
}
#endif
#endif
