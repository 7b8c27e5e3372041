/* convert.h — qconvert's whole job as one call: read a Hugging Face Qwen3 reranker
 * directory, decide labels and head, convert or quantize the weights and write one .qrr
 * through qrr_writer (temporary file + rename: a failed run leaves no file). The command
 * line lives in main.c; this is what tests call. Prints nothing: progress goes through a
 * callback. */
#ifndef QRR_CONVERT_H
#define QRR_CONVERT_H

#include <stddef.h>
#include <stdint.h>
#include "hf_config.h"
#include "qrr_diag.h"

#define QRR_CONVERTER_VERSION "0.1.0"
#define QRR_DEFAULT_MAX_LENGTH 8192u

typedef struct qrr_convert_progress {
    size_t index, count;      /* 1-based tensor number, tensors in all */
    const char *name;         /* as written in the .qrr */
    const char *src_dtype;    /* "bf16", "f16", "f32" or "-" for produced tensors */
    const char *dst_dtype;
    uint64_t bytes;           /* bytes written for this tensor */
} qrr_convert_progress;

typedef struct qrr_convert_opts {
    const char *model_dir;
    const char *out_path;
    uint32_t dtype;            /* qrr_dtype of linear layers and embedding (default F16) */
    const char *label_no;      /* --labels NO,YES, or both NULL */
    const char *label_yes;
    int force;                 /* accept an embedding-model look-alike */
    uint32_t max_length;       /* default prompt truncation length; 0 (the default): 8192,
                                  or max_position_embeddings when that is smaller */
    uint32_t quant_block;      /* int8 only: 0 = one scale per row, else per block of K */
    const char *command_line;  /* recorded in the provenance; may be NULL */
    void (*progress)(void *ctx, const qrr_convert_progress *p); /* may be NULL */
    void *progress_ctx;
    /* May be NULL. Called with the temporary output's path right after it is created (with
     * SIGINT, SIGTERM and SIGHUP blocked, so that a handler never sees half a path), and
     * with NULL once it is renamed into place or removed: lets a program remove the file
     * from a signal handler. */
    void (*tmp_file)(void *ctx, const char *path);
    void *tmp_file_ctx;
} qrr_convert_opts;

typedef struct qrr_convert_report {
    size_t tensors;            /* tensors written */
    uint64_t tensor_bytes;     /* their bytes */
    uint64_t file_bytes;       /* size of the .qrr */
    uint64_t inexact;          /* values rounded by the f16/bf16 narrowing (f16: subnormals) */
    double seconds;
    int output_error;          /* the failure happened writing the output (exit code 3) */
    int usage_error;           /* an option or the output path does not fit (exit code 2) */
    uint32_t max_length;       /* the max length written (once the config is read) */
    int max_length_clamped;    /* the default 8192 was above max_position_embeddings */
    uint32_t window_positions; /* nonzero: a sliding window shorter than the model's positions
                                * applies, and the file scores prompts up to this long only */
    qrr_label_decision labels;
    char prompts_source[256];
} qrr_convert_report;

qrr_convert_opts qrr_convert_default_opts(void);

/* Convert o->model_dir into o->out_path. r (may be NULL) receives figures and, on
 * failure, whether the output side failed or an option was refused (r->usage_error, with
 * QRR_ERR_INVALID_ARG: an output path that exists and is not a regular file, or that is
 * one of the model's files; a max_length above max_position_embeddings or too short for
 * the prompt's prefix and suffix plus one token; a quant_block that does not divide the
 * model's row sizes). Input problems return the status of the rule
 * they break (QRR_ERR_SAFETENSORS, QRR_ERR_CONFIG, QRR_ERR_JSON, QRR_ERR_NOT_RERANKER,
 * QRR_ERR_MISSING_TENSOR, QRR_ERR_SHAPE, QRR_ERR_OVERFLOW, QRR_ERR_NUMERIC,
 * QRR_ERR_BAD_TOKENIZER, ...) with one message in d naming file, tensor or key. */
int qrr_convert(const qrr_convert_opts *o, qrr_convert_report *r, qrr_diag *d);

#endif
