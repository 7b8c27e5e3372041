/* qrr_half.h — scalar conversions between f32 and the 16-bit storage types of a .qrr
 * (f16, bf16): exact widening, round-to-nearest-even narrowing on bit patterns, so results
 * never depend on compiler flags. A finite value that rounds past the target's range gives
 * infinity (callers that must not overflow check for it); NaN stays a quiet NaN. */
#ifndef QRR_HALF_H
#define QRR_HALF_H

#include <stdint.h>
#include <string.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Widening is exact and short, so it is inline: the CPU kernels call it in their loops. */
static inline float qrr__f32_from_bits(uint32_t u)
{
    float f;
    memcpy(&f, &u, 4);
    return f;
}

static inline float qrr_bf16_to_f32(uint16_t h) { return qrr__f32_from_bits((uint32_t)h << 16); }

static inline float qrr_f16_to_f32(uint16_t h)
{
    uint32_t sign = (uint32_t)(h & 0x8000) << 16;
    uint32_t e = (h >> 10) & 0x1f, m = h & 0x3ff;
    if (e == 0x1f) return qrr__f32_from_bits(sign | 0x7f800000u | (m << 13)); /* Inf, NaN */
    if (e != 0) return qrr__f32_from_bits(sign | ((e + 112) << 23) | (m << 13)); /* normal */
    float v = (float)m * 0x1p-24f; /* zero or subnormal: m * 2^-24, exact in f32 */
    return sign ? -v : v;
}

uint16_t qrr_f32_to_f16(float f);
uint16_t qrr_f32_to_bf16(float f);

#ifdef __cplusplus
}
#endif
#endif
