/* qrr_format.h — the on-disk layout of a .qrr file: the single definition both qconvert
 * and libqrr use. docs/format.md is the normative text; this comment is its summary.
 * Holds structs, constants and enums: reading lives in qrr_file.c, writing in
 * qrr_writer.c, the expected tensor list in qrr_schema.c, the enums' names in qrr_format.c.
 *
 * Layout (all integers little-endian, all offsets absolute from byte 0):
 *  1. Header, 256 bytes (qrr_header_disk): magic "QRRMODEL", format version, quantization
 *     layout version, file size, four section descriptors, reserved zero bytes, and the
 *     XXH3-64 of the header's first 248 bytes.
 *  2. Sections in this order, META at 256, each next one at the first multiple of
 *     QRR_ALIGN after the previous (DATA: of QRR_DATA_ALIGN), the padding zero:
 *     META       zlib: qrr_meta_disk followed by QRR_META_STRING_COUNT length-prefixed strings
 *     TOKENIZER  zlib: the tokenizer blob (docs/format-tokenizer.md)
 *     TENSORS    raw:  an array of qrr_tensor_disk, sorted by offset
 *     DATA       raw:  tensor bytes in table order, the first at DATA's start, each next
 *                at the first multiple of QRR_ALIGN after the previous; the padding zero;
 *                the last ends exactly at the file's end (no holes).
 *  3. Checksums: header (own field), META/TOKENIZER/TENSORS (descriptor field, over the
 *     on-disk bytes), each tensor (its entry's field). DATA's descriptor checksum is 0.
 *     Every other byte is padding or reserved and must be zero, so any flipped bit fails.
 */
#ifndef QRR_FORMAT_H
#define QRR_FORMAT_H

#include <stddef.h>
#include <stdint.h>

#define QRR_MAGIC "QRRMODEL"           /* 8 bytes, no NUL */
#define QRR_FORMAT_VERSION 1u          /* raised only for structural changes */
#define QRR_QUANT_VERSION 1u           /* raised when a quantized layout changes */
#define QRR_ALIGN 64u                  /* sections and tensors */
#define QRR_DATA_ALIGN 4096u           /* start of the DATA section */
#define QRR_HEADER_SIZE 256u
#define QRR_TENSOR_NAME_MAX 64u        /* including the NUL terminator */
#define QRR_MAX_DIMS 4u
#define QRR_NO_TOKEN 0xFFFFFFFFu

/* Caps on values read from a file: tight, so no allocation is ever sized by a wild field. */
#define QRR_MAX_TENSORS 65536u
#define QRR_MAX_META_BYTES (4u << 20)       /* decompressed metadata */
#define QRR_MAX_STRING_BYTES (1u << 20)     /* one metadata string */
#define QRR_MAX_TOKENIZER_BYTES (64u << 20) /* decompressed tokenizer blob */
#define QRR_MAX_LAYERS 512u
#define QRR_MAX_HIDDEN 65536u
#define QRR_MAX_HEADS 1024u
#define QRR_MAX_HEAD_DIM 1024u
#define QRR_MAX_INTERMEDIATE 262144u
#define QRR_MAX_VOCAB 4194304u
#define QRR_MAX_POSITION (1u << 24)          /* max_position and max_length, in tokens */

typedef enum qrr_section_kind {
    QRR_SECTION_META = 0,
    QRR_SECTION_TOKENIZER = 1,
    QRR_SECTION_TENSORS = 2,
    QRR_SECTION_DATA = 3,
    QRR_SECTION_COUNT
} qrr_section_kind;

typedef enum qrr_compression {
    QRR_COMPRESSION_NONE = 0,
    QRR_COMPRESSION_ZLIB = 1,
    QRR_COMPRESSION_COUNT
} qrr_compression;

typedef enum qrr_dtype {
    QRR_DTYPE_F32 = 0,
    QRR_DTYPE_F16 = 1,
    QRR_DTYPE_BF16 = 2,
    QRR_DTYPE_I8 = 3,   /* symmetric, scale in the companion "<name>_scale" F32 tensor */
    QRR_DTYPE_COUNT
} qrr_dtype;

typedef enum qrr_arch {
    QRR_ARCH_QWEN3 = 0,
    QRR_ARCH_COUNT
} qrr_arch;

typedef enum qrr_head_kind {
    QRR_HEAD_YES_NO = 0,       /* head.weight [2, H]: row 0 = "no", row 1 = "yes" */
    QRR_HEAD_SINGLE_LOGIT = 1, /* head.weight [1, H]: sequence-classification score row */
    QRR_HEAD_COUNT
} qrr_head_kind;

typedef enum qrr_label_source {
    QRR_LABELS_FROM_CONFIG = 0, /* label2id / id2label in config.json */
    QRR_LABELS_INFERRED = 1,    /* no label map: causal LM whose tokenizer has yes and no */
    QRR_LABELS_FROM_USER = 2,   /* --labels on the command line */
    QRR_LABELS_COUNT
} qrr_label_source;

/* The order of the strings that follow qrr_meta_disk in the META section. Each is a
 * uint32 byte length then that many bytes of UTF-8, no terminator. */
typedef enum qrr_meta_string {
    QRR_STR_PREFIX = 0,          /* prompt prefix (system turn and user turn opening) */
    QRR_STR_SUFFIX = 1,          /* prompt suffix (assistant turn opening) */
    QRR_STR_QUERY_TEMPLATE = 2,  /* "<Instruct>: {instruction}\n<Query>: " */
    QRR_STR_DOCUMENT_TEMPLATE = 3, /* "\n<Document>: " */
    QRR_STR_INSTRUCTION = 4,     /* default instruction */
    QRR_STR_LABEL_NO = 5,        /* token string of the "no" label ("" for single-logit) */
    QRR_STR_LABEL_YES = 6,       /* token string of the "yes" label */
    QRR_STR_LABEL_REASON = 7,    /* human-readable: how the labels were decided */
    QRR_STR_PROVENANCE = 8,      /* JSON text: sources, their hashes, converter version, flags */
    QRR_META_STRING_COUNT
} qrr_meta_string;

typedef struct qrr_section_disk {
    uint32_t kind;        /* qrr_section_kind; descriptor i has kind i */
    uint32_t compression; /* qrr_compression; META and TOKENIZER zlib, the others none */
    uint64_t offset;      /* multiple of QRR_ALIGN (QRR_DATA_ALIGN for DATA) */
    uint64_t size;        /* bytes on disk */
    uint64_t raw_size;    /* bytes after decompression (= size when not compressed) */
    uint64_t checksum;    /* XXH3-64 of the on-disk bytes; 0 for DATA */
} qrr_section_disk;

typedef struct qrr_header_disk {
    char magic[8];
    uint32_t version;       /* QRR_FORMAT_VERSION */
    uint32_t quant_version; /* QRR_QUANT_VERSION */
    uint64_t file_size;     /* the file's exact length */
    uint32_t section_count; /* QRR_SECTION_COUNT */
    uint32_t flags;         /* reserved, 0 */
    qrr_section_disk sections[QRR_SECTION_COUNT];
    uint8_t reserved[56];   /* zero */
    uint64_t header_checksum; /* XXH3-64 of bytes [0, 248) */
} qrr_header_disk;

typedef struct qrr_meta_disk {
    uint32_t arch;          /* qrr_arch */
    uint32_t head_kind;     /* qrr_head_kind */
    uint32_t label_source;  /* qrr_label_source */
    uint32_t weight_dtype;  /* qrr_dtype of the linear layers and the embedding */
    uint32_t n_layers;
    uint32_t hidden;        /* H */
    uint32_t n_heads;       /* Q */
    uint32_t n_kv_heads;    /* K, divides Q */
    uint32_t head_dim;      /* D, even */
    uint32_t intermediate;  /* I */
    uint32_t vocab_size;    /* V: rows of the embedding */
    uint32_t max_position;  /* max_position_embeddings */
    uint32_t max_length;    /* default truncation length of a prompt, in tokens */
    uint32_t yes_id;        /* QRR_NO_TOKEN for single-logit heads */
    uint32_t no_id;         /* QRR_NO_TOKEN for single-logit heads */
    uint32_t tied;          /* 1 when the source tied embeddings and LM head */
    uint32_t quant_block;   /* 0: int8 scales per output channel; else per block of K */
    uint32_t reserved0;     /* zero */
    double rms_eps;         /* finite, > 0 */
    double rope_theta;      /* finite, > 0 */
    uint8_t reserved[32];   /* zero */
} qrr_meta_disk;

typedef struct qrr_tensor_disk {
    char name[QRR_TENSOR_NAME_MAX]; /* NUL-terminated, the bytes after the NUL zero */
    uint32_t dtype;                 /* qrr_dtype */
    uint32_t ndim;                  /* 1..QRR_MAX_DIMS */
    uint64_t dims[QRR_MAX_DIMS];    /* outermost first; unused dims 0, used dims >= 1 */
    uint64_t offset;                /* absolute; inside DATA; multiple of QRR_ALIGN */
    uint64_t size;                  /* bytes = product(dims) * dtype size */
    uint64_t checksum;              /* XXH3-64 of the tensor's bytes */
} qrr_tensor_disk;

#ifdef __cplusplus
#define QRR_STATIC_ASSERT static_assert
#else
#define QRR_STATIC_ASSERT _Static_assert
#endif
/* The structs are read and written as they lie in memory: the host must be little-endian. */
QRR_STATIC_ASSERT(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "qrr files are little-endian");
QRR_STATIC_ASSERT(sizeof(qrr_section_disk) == 40, "section descriptor is 40 bytes");
QRR_STATIC_ASSERT(sizeof(qrr_header_disk) == QRR_HEADER_SIZE, "header is 256 bytes");
QRR_STATIC_ASSERT(offsetof(qrr_header_disk, sections) == 32, "sections at 32");
QRR_STATIC_ASSERT(offsetof(qrr_header_disk, header_checksum) == 248, "header checksum at 248");
QRR_STATIC_ASSERT(sizeof(qrr_meta_disk) == 120, "fixed metadata is 120 bytes");
QRR_STATIC_ASSERT(offsetof(qrr_meta_disk, rms_eps) == 72, "rms_eps at 72");
QRR_STATIC_ASSERT(sizeof(qrr_tensor_disk) == 128, "tensor entry is 128 bytes");
QRR_STATIC_ASSERT(offsetof(qrr_tensor_disk, offset) == 104, "tensor offset at 104");

/* Bytes per element of a dtype, 0 for an unknown one. */
static inline size_t qrr_dtype_size(uint32_t dtype)
{
    switch (dtype) {
    case QRR_DTYPE_F32: return 4;
    case QRR_DTYPE_F16: return 2;
    case QRR_DTYPE_BF16: return 2;
    case QRR_DTYPE_I8: return 1;
    default: return 0;
    }
}

/* The enums' names (qrr_format.c), "?" for a value out of range. */
#ifdef __cplusplus
extern "C" {
#endif
const char *qrr_dtype_name(uint32_t dtype);             /* "f32", "f16", "bf16", "int8" */
int qrr_dtype_parse(const char *name);                  /* the inverse; -1 if unknown */
const char *qrr_head_kind_name(uint32_t kind);          /* "yes/no", "single-logit" */
const char *qrr_label_source_name(uint32_t source);     /* "config", "inferred", "user" */
const char *qrr_meta_string_name(uint32_t i);           /* "prefix", ...; NULL past the last */
#ifdef __cplusplus
}
#endif

#endif
