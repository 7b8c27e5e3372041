/* half.c — the public f16/bf16 <-> f32 scalar conversions (exact widening, round to nearest
 * even when narrowing, overflow to infinity, NaN kept quiet). Bit arithmetic only: no
 * floating-point environment tricks, so the result never depends on compiler flags. */
#include "cpu_internal.h"

float qrr_f16_to_f32(uint16_t h)
{
    return qrr__f16_to_f32(h);
}

float qrr_bf16_to_f32(uint16_t h)
{
    return qrr__bf16_to_f32(h);
}

uint16_t qrr_f32_to_f16(float f)
{
    uint32_t u = qrr__bits_from_f32(f);
    uint16_t sign = (uint16_t)((u >> 16) & 0x8000u);
    uint32_t exp = (u >> 23) & 0xffu;
    uint32_t man = u & 0x7fffffu;
    if (exp == 0xff) /* inf, or NaN made quiet with its top payload bits */
        return (uint16_t)(sign | 0x7c00u | (man ? 0x200u | (man >> 13) : 0u));
    int e = (int)exp - 127 + 15; /* biased f16 exponent */
    if (e >= 0x1f) return (uint16_t)(sign | 0x7c00u);
    if (e <= 0) { /* f16 subnormal or zero: value = m * 2^-24 with m < 1024 */
        if (e < -10) return sign; /* below half the smallest subnormal: rounds to zero */
        uint32_t m = man | 0x800000u; /* 24 significant bits */
        int shift = 14 - e;           /* 14..24 */
        uint32_t q = m >> shift;
        uint32_t rem = m & ((1u << shift) - 1u);
        uint32_t half = 1u << (shift - 1);
        if (rem > half || (rem == half && (q & 1u))) q++;
        return (uint16_t)(sign | q); /* q may reach 0x400: the smallest normal, correct */
    }
    uint32_t q = ((uint32_t)e << 10) | (man >> 13);
    uint32_t rem = man & 0x1fffu;
    if (rem > 0x1000u || (rem == 0x1000u && (q & 1u))) q++; /* may carry into inf: correct */
    return (uint16_t)(sign | q);
}
