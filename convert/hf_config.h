/* hf_config.h — what qconvert reads from a Hugging Face model directory besides the
 * weights: config.json, config_sentence_transformers.json, the yes/no token ids in
 * tokenizer.json, and the rules that decide the labels and the head. No weights, no I/O
 * of the output. */
#ifndef QRR_HF_CONFIG_H
#define QRR_HF_CONFIG_H

#include <stddef.h>
#include <stdint.h>
#include <jansson.h>
#include "qrr_diag.h"

#define QRR_HF_LABEL_MAX 64u   /* bytes of one label or token string, NUL included */
#define QRR_HF_MAX_CONFIG (16u << 20)
#define QRR_HF_MAX_PROMPT (1u << 20)
/* Transformers' Qwen3Config values for keys a config.json may leave out */
#define QRR_HF_DEFAULT_HEAD_DIM 128u
#define QRR_HF_DEFAULT_ROPE_THETA 10000.0

/* The default prompts (the official recipe). */
#define QRR_DEFAULT_PREFIX                                                                      \
    "<|im_start|>system\nJudge whether the Document meets the requirements based on the Query " \
    "and the Instruct provided. Note that the answer can only be \"yes\" or \"no\".<|im_end|>\n"  \
    "<|im_start|>user\n"
#define QRR_DEFAULT_SUFFIX "<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n"
#define QRR_DEFAULT_QUERY_TEMPLATE "<Instruct>: {instruction}\n<Query>: "
#define QRR_DEFAULT_DOCUMENT_TEMPLATE "\n<Document>: "
#define QRR_DEFAULT_INSTRUCTION \
    "Given a web search query, retrieve relevant passages that answer the query"

typedef struct qrr_hf_config {
    char architecture[QRR_HF_LABEL_MAX]; /* architectures[0] */
    int seqcls;                          /* 1: Qwen3ForSequenceClassification */
    uint32_t hidden, n_layers, n_heads, n_kv_heads, head_dim, intermediate, vocab;
    uint32_t max_position;
    double rms_eps, rope_theta;
    int tied;                            /* tie_word_embeddings */
    uint32_t sliding_window;             /* attention window of the layers that have one, in
                                            tokens; 0: every layer attends to all positions */
    char sliding_layers[256];            /* the layers with the window, for messages: "layer 1",
                                            "layers 0, 2", "layers 28..35" */
    uint32_t n_labels;                   /* 0: no label map (or HF's default LABEL_0/1) */
    char labels[2][QRR_HF_LABEL_MAX];    /* label names by id, when n_labels is 1 or 2 */
    int default_label_map;               /* the map was {LABEL_0, LABEL_1}: treated as absent */
} qrr_hf_config;

/* Parse config.json text; label names the file in messages. Refuses a model_type other
 * than qwen3, another architecture, a missing or mistyped key, hidden_act other than silu,
 * attention_bias true, rope_scaling other than null, label maps that disagree. Records
 * where Transformers would use a sliding attention window (use_sliding_window,
 * sliding_window, max_window_layers, layer_types); whether that is acceptable depends on
 * the max length, so the caller decides. */
int qrr_hf_config_parse(const char *text, size_t len, const char *label, qrr_hf_config *out,
                        qrr_diag *d);
int qrr_hf_config_load(const char *path, qrr_hf_config *out, qrr_diag *d);

typedef struct qrr_hf_prompts {
    char *prefix, *suffix, *query_template, *document_template, *instruction; /* malloc'ed */
    char source[256]; /* what each came from, for the provenance */
} qrr_hf_prompts;

/* Fill p with the defaults. */
int qrr_hf_prompts_default(qrr_hf_prompts *p, qrr_diag *d);
/* Defaults overridden by config_sentence_transformers.json's "prompts" (see
 * docs/qconvert.md for the accepted shapes). text may be NULL (no file). */
int qrr_hf_prompts_parse(const char *text, size_t len, const char *label, qrr_hf_prompts *p,
                         qrr_diag *d);
void qrr_hf_prompts_free(qrr_hf_prompts *p);

/* tokenizer.json's vocabulary, for exact token lookups. */
typedef struct qrr_hf_vocab qrr_hf_vocab;
int qrr_hf_vocab_load(const char *tokenizer_json_path, qrr_hf_vocab **out, qrr_diag *d);
/* The same from tokenizer.json already parsed (root, which the vocabulary holds a reference
 * to); path only names the file in messages. */
int qrr_hf_vocab_of(json_t *root, const char *path, qrr_hf_vocab **out, qrr_diag *d);
/* The id of a token string: an added token's content, else model.vocab's entry for the
 * string's byte-level form (ASCII letters map to themselves, a space to "Ġ"). -1 if none. */
int64_t qrr_hf_vocab_find(const qrr_hf_vocab *v, const char *token);
void qrr_hf_vocab_free(qrr_hf_vocab *v);

/* Split "--labels no,yes" into its two token strings; QRR_ERR_INVALID_ARG if the text
 * is not two non-empty comma-separated strings of less than QRR_HF_LABEL_MAX bytes. */
int qrr_hf_split_labels(const char *s, char no[QRR_HF_LABEL_MAX], char yes[QRR_HF_LABEL_MAX],
                        qrr_diag *d);

typedef struct qrr_label_decision {
    uint32_t head_kind;        /* qrr_head_kind */
    uint32_t label_source;     /* qrr_label_source */
    char label_no[QRR_HF_LABEL_MAX], label_yes[QRR_HF_LABEL_MAX]; /* "" for single logit */
    uint32_t no_id, yes_id;    /* token ids; QRR_NO_TOKEN for single logit */
    int from_score;            /* head rows come from score.weight (seq-cls) */
    uint32_t score_row_no, score_row_yes; /* rows of score.weight when from_score and yes/no */
    char reason[480];
} qrr_label_decision;

typedef struct qrr_label_inputs {
    const qrr_hf_config *cfg;
    const qrr_hf_vocab *vocab;
    const char *user_no, *user_yes;   /* --labels, or NULL */
    const char *embedding_evidence;   /* e.g. "modules.json, 1_Pooling/config.json", or NULL */
    int force;
} qrr_label_inputs;

/* The rules telling a reranker from its siblings (docs/qconvert.md), in order. Refusals:
 * QRR_ERR_NOT_RERANKER (embedding look-alike without force, labels that cannot be
 * inferred or a token the tokenizer lacks), QRR_ERR_CONFIG (a label map qconvert cannot
 * use). */
int qrr_hf_decide_labels(const qrr_label_inputs *in, qrr_label_decision *out, qrr_diag *d);

/* Parse the JSON file at path (a regular file; jansson's load flags) into *out: QRR_ERR_IO
 * when it cannot be opened, QRR_ERR_JSON with the line and column when it does not parse. */
int qrr_hf_load_json(const char *path, size_t flags, json_t **out, qrr_diag *d);

/* Read a whole small file (at most cap bytes) into a NUL-terminated malloc'ed buffer. */
int qrr_hf_read_file(const char *path, size_t cap, char **out, size_t *len, qrr_diag *d);

#endif
