/* qrr_status.h — the status codes every qrr function returns, their names, and QRR_API, the
 * mark of what libqrr exports. Public (installed beside qrr.h); the error-detail buffer the
 * library passes around inside is private (format/qrr_diag.h). Codes only grow at the end
 * of their group; a retired code stays as a comment. */
#ifndef QRR_STATUS_H
#define QRR_STATUS_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/* libqrr is built with hidden visibility: only what carries QRR_API is exported from
 * libqrr.so; every other symbol stays inside the library. */
#ifndef QRR_API
#define QRR_API __attribute__((visibility("default")))
#endif

typedef enum qrr_status {
    QRR_OK = 0,
    /* general */
    QRR_ERR_IO = -1,              /* open/read/write/mmap failed */
    QRR_ERR_NOMEM = -2,           /* allocation failed */
    QRR_ERR_INVALID_ARG = -3,     /* a caller passed a bad argument */
    QRR_ERR_BUFFER_TOO_SMALL = -4,/* caller buffer too small; the needed size is reported */
    QRR_ERR_UNSUPPORTED = -5,     /* feature not built in or not available (e.g. no GPU) */
    QRR_ERR_DEVICE = -6,          /* a device (CUDA) call failed */
    QRR_ERR_UTF8 = -7,            /* text is not valid UTF-8 */
    QRR_ERR_NUMERIC = -8,         /* NaN or Inf where a finite number is required */
    QRR_ERR_TOO_LONG = -9,        /* a prompt exceeds max_length and truncation is off */
    QRR_ERR_ABORTED = -10,        /* the context's abort callback stopped a scoring call */
    /* .qrr loader: one code per rule */
    QRR_ERR_TRUNCATED = -20,      /* file shorter than what it declares */
    QRR_ERR_BAD_MAGIC = -21,
    QRR_ERR_VERSION = -22,        /* format or quantization-layout version not supported */
    QRR_ERR_CHECKSUM = -23,       /* XXH3-64 mismatch */
    QRR_ERR_BAD_SECTION = -24,    /* section table: kind, order, offset, size, compression */
    QRR_ERR_DECOMPRESS = -25,     /* zlib stream invalid or size differs from raw_size */
    QRR_ERR_BAD_META = -26,       /* metadata: enum out of range, absurd value, string length */
    QRR_ERR_BAD_TENSOR = -27,     /* tensor entry: name, dtype, ndim, dims, byte size */
    QRR_ERR_TENSOR_BOUNDS = -28,  /* tensor offset/size outside the data section or wrapping */
    QRR_ERR_ALIGNMENT = -29,
    QRR_ERR_OVERLAP = -30,
    QRR_ERR_HOLE = -31,           /* unexplained gap between tensors */
    QRR_ERR_TRAILING = -32,       /* bytes after the declared end */
    QRR_ERR_PADDING = -33,        /* padding or reserved bytes not zero */
    QRR_ERR_DUPLICATE = -34,      /* two tensors with one name */
    QRR_ERR_SHAPE = -35,          /* shape disagrees with the hyper-parameters */
    QRR_ERR_MISSING_TENSOR = -36,
    QRR_ERR_BAD_LABEL = -37,      /* yes/no ids outside the vocabulary, bad head kind */
    QRR_ERR_BAD_SCALE = -38,      /* quantization scale NaN, Inf or zero */
    QRR_ERR_BAD_TOKENIZER = -39,  /* tokenizer section malformed */
    QRR_ERR_UNEXPECTED_TENSOR = -40, /* a tensor the schema does not know */
    /* converter inputs */
    QRR_ERR_SAFETENSORS = -60,    /* malformed safetensors file or header */
    QRR_ERR_CONFIG = -61,         /* config.json missing key, wrong type, unsupported model */
    QRR_ERR_NOT_RERANKER = -62,   /* looks like an embedding model / labels cannot be inferred */
    QRR_ERR_OVERFLOW = -63,       /* a value does not fit the target type (bf16 -> f16) */
    QRR_ERR_JSON = -64,           /* malformed JSON input */
    QRR_STATUS_MIN = -64
} qrr_status;

/* A short fixed name for a status ("QRR_ERR_SHAPE"); never NULL. */
QRR_API const char *qrr_status_str(int status);

#ifdef __cplusplus
}
#endif
#endif
