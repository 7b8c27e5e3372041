/* quantize.h — element conversions between checkpoint and .qrr storage types: exact
 * widening, round-to-nearest-even narrowing that reports overflow instead of clamping,
 * and symmetric int8 with one scale per row (or per block of a row). Pure functions over
 * buffers; no files, no tensor names (callers add those to messages). */
#ifndef QRR_QUANTIZE_H
#define QRR_QUANTIZE_H

#include <stddef.h>
#include <stdint.h>

#include "qrr_half.h" /* the scalar f16/bf16 conversions */

/* Source element types (the same numbering as qrr_st_dtype). */
enum { QRR_SRC_F32 = 0, QRR_SRC_F16 = 1, QRR_SRC_BF16 = 2 };

/* What a conversion found. bad_index is the element index (relative to the call) of the
 * first problem; bad_value its source value as float. */
typedef struct qrr_conv_result {
    int status;          /* 0, QRR_ERR_OVERFLOW or QRR_ERR_NUMERIC */
    size_t bad_index;
    float bad_value;
    uint64_t inexact;    /* values the target could not hold exactly (rounded) */
} qrr_conv_result;

/* Widen n source elements to f32 (exact). Refuses NaN and Inf (QRR_ERR_NUMERIC). */
qrr_conv_result qrr_convert_to_f32(const void *src, int src_type, size_t n, float *dst);
/* To f16: exact from f16; round-to-nearest-even from f32 and bf16. A value whose rounding
 * leaves the f16 range is QRR_ERR_OVERFLOW; values rounded (f16 subnormal precision) are
 * counted in inexact. */
qrr_conv_result qrr_convert_to_f16(const void *src, int src_type, size_t n, uint16_t *dst);
/* To bf16: copy from bf16, round-to-nearest-even from f32 and f16 (f16 -> bf16 may round). */
qrr_conv_result qrr_convert_to_bf16(const void *src, int src_type, size_t n, uint16_t *dst);

/* Symmetric int8 of `rows` rows of `cols` elements (row-major [rows, cols]), one scale per
 * block of `block` elements of a row (block == 0 or block == cols: one per row):
 * scale = max|w| / 127 (1.0 for an all-zero block, so no scale is zero),
 * q = round-half-even(w / scale) clamped to [-127, 127]. scales is [rows, cols / block].
 * block must divide cols. Refuses NaN and Inf (QRR_ERR_NUMERIC). */
qrr_conv_result qrr_quantize_i8(const void *src, int src_type, size_t rows, size_t cols,
                                size_t block, int8_t *q, float *scales);

#endif
