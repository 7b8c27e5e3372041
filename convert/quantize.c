/* quantize.c — bit-exact float conversions and per-row symmetric int8 quantization.
 * Scalar and portable: the rounding rules are spelled out on bit patterns so the result
 * does not depend on compiler flags or the FPU's modes. */
#include "quantize.h"

#include <math.h>
#include <string.h>

#include "qrr_half.h"
#include "qrr_diag.h"

static inline float load(const uint8_t *p, int type)
{
    if (type == QRR_SRC_F32) {
        float f;
        memcpy(&f, p, 4);
        return f;
    }
    uint16_t h;
    memcpy(&h, p, 2);
    return type == QRR_SRC_BF16 ? qrr_bf16_to_f32(h) : qrr_f16_to_f32(h);
}

static inline size_t src_size(int type) { return type == QRR_SRC_F32 ? 4 : 2; }

static qrr_conv_result fail(int status, size_t i, float v, uint64_t inexact)
{
    qrr_conv_result r = {status, i, v, inexact};
    return r;
}

qrr_conv_result qrr_convert_to_f32(const void *src, int type, size_t n, float *dst)
{
    const uint8_t *p = src;
    size_t es = src_size(type);
    for (size_t i = 0; i < n; i++) {
        float v = load(p + i * es, type);
        if (!isfinite(v)) return fail(QRR_ERR_NUMERIC, i, v, 0);
        dst[i] = v;
    }
    return fail(QRR_OK, 0, 0, 0);
}

qrr_conv_result qrr_convert_to_f16(const void *src, int type, size_t n, uint16_t *dst)
{
    const uint8_t *p = src;
    size_t es = src_size(type);
    uint64_t inexact = 0;
    if (type == QRR_SRC_BF16) {
        /* The common case on bit patterns: a bf16 value in f16's normal range has 7
         * mantissa bits and converts exactly; the rest takes the general path below. */
        for (size_t i = 0; i < n; i++) {
            uint16_t b;
            memcpy(&b, p + 2 * i, 2);
            uint32_t ax = (uint32_t)(b & 0x7fff) << 16;
            if (ax >= 0x38800000u && ax < 0x47800000u) {
                dst[i] = (uint16_t)(((b & 0x8000) | ((ax >> 13) - (112u << 10))));
                continue;
            }
            float v = qrr_bf16_to_f32(b);
            if (!isfinite(v)) return fail(QRR_ERR_NUMERIC, i, v, inexact);
            uint16_t h = qrr_f32_to_f16(v);
            if ((h & 0x7c00) == 0x7c00) return fail(QRR_ERR_OVERFLOW, i, v, inexact);
            inexact += qrr_f16_to_f32(h) != v;
            dst[i] = h;
        }
        return fail(QRR_OK, 0, 0, inexact);
    }
    for (size_t i = 0; i < n; i++) {
        float v = load(p + i * es, type);
        if (!isfinite(v)) return fail(QRR_ERR_NUMERIC, i, v, inexact);
        uint16_t h = qrr_f32_to_f16(v);
        if ((h & 0x7c00) == 0x7c00) return fail(QRR_ERR_OVERFLOW, i, v, inexact);
        inexact += qrr_f16_to_f32(h) != v;
        dst[i] = h;
    }
    return fail(QRR_OK, 0, 0, inexact);
}

qrr_conv_result qrr_convert_to_bf16(const void *src, int type, size_t n, uint16_t *dst)
{
    const uint8_t *p = src;
    size_t es = src_size(type);
    uint64_t inexact = 0;
    for (size_t i = 0; i < n; i++) {
        float v = load(p + i * es, type);
        if (!isfinite(v)) return fail(QRR_ERR_NUMERIC, i, v, inexact);
        uint16_t h = qrr_f32_to_bf16(v);
        if ((h & 0x7f80) == 0x7f80) return fail(QRR_ERR_OVERFLOW, i, v, inexact);
        inexact += qrr_bf16_to_f32(h) != v;
        dst[i] = h;
    }
    return fail(QRR_OK, 0, 0, inexact);
}

qrr_conv_result qrr_quantize_i8(const void *src, int type, size_t rows, size_t cols,
                                size_t block, int8_t *q, float *scales)
{
    const uint8_t *p = src;
    size_t es = src_size(type);
    if (block == 0) block = cols;
    size_t nb = cols / block;
    for (size_t r = 0; r < rows; r++) {
        for (size_t b = 0; b < nb; b++) {
            size_t base = r * cols + b * block;
            float amax = 0.0f;
            for (size_t j = 0; j < block; j++) {
                float v = load(p + (base + j) * es, type);
                if (!isfinite(v)) return fail(QRR_ERR_NUMERIC, base + j, v, 0);
                float a = fabsf(v);
                if (a > amax) amax = a;
            }
            float scale = amax > 0.0f ? amax / 127.0f : 1.0f;
            if (!(scale > 0.0f)) scale = 0x1p-149f; /* amax below 127 * least subnormal */
            scales[r * nb + b] = scale;
            /* The quotient in double, rounded half to even by nearbyint (default mode). */
            double inv_den = (double)scale;
            for (size_t j = 0; j < block; j++) {
                double x = nearbyint((double)load(p + (base + j) * es, type) / inv_den);
                if (x > 127.0) x = 127.0;
                if (x < -127.0) x = -127.0;
                q[base + j] = (int8_t)x;
            }
        }
    }
    return fail(QRR_OK, 0, 0, 0);
}
