/* vec_exp_neon.h — the NEON e^x that the attention softmax and the SiLU share (inline, for the
 * AArch64 kernel files only): the AVX-512 version's method (vec_exp.h), range reduction by
 * ln 2 in two parts and a degree-7 polynomial, with the scaling by 2^n done as two exact
 * power-of-two factors. Within ~2 ulp of expf. Nothing else here. */
#ifndef QRR_VEC_EXP_NEON_H
#define QRR_VEC_EXP_NEON_H

#include <arm_neon.h>

/* e^x lane by lane. Below -104 gives 0 (or the smallest subnormal), above ~88.7 gives +Inf,
 * NaN gives NaN. */
static inline __attribute__((always_inline)) float32x4_t qrr__exp_f32x4(float32x4_t x)
{
    /* fmax/fmin return NaN when either operand is NaN: NaN stays */
    x = vmaxq_f32(x, vdupq_n_f32(-104.0f));
    x = vminq_f32(x, vdupq_n_f32(89.0f));
    float32x4_t n = vrndnq_f32(vmulq_f32(x, vdupq_n_f32(1.44269504088896341f)));
    float32x4_t r = vfmsq_f32(x, n, vdupq_n_f32(0.693145751953125f));
    r = vfmsq_f32(r, n, vdupq_n_f32(1.428606765330187045e-06f));
    float32x4_t p = vdupq_n_f32(1.0f / 5040.0f);
    p = vfmaq_f32(vdupq_n_f32(1.0f / 720.0f), p, r);
    p = vfmaq_f32(vdupq_n_f32(1.0f / 120.0f), p, r);
    p = vfmaq_f32(vdupq_n_f32(1.0f / 24.0f), p, r);
    p = vfmaq_f32(vdupq_n_f32(1.0f / 6.0f), p, r);
    p = vfmaq_f32(vdupq_n_f32(0.5f), p, r);
    p = vfmaq_f32(vdupq_n_f32(1.0f), p, r);
    p = vfmaq_f32(vdupq_n_f32(1.0f), p, r);
    /* 2^n for n in [-150, 128] as 2^h * 2^(n - h), h = n / 2: both factors normal floats, so
     * the first product is exact and the second rounds once, as a single scaling would */
    int32x4_t ni = vcvtq_s32_f32(n); /* NaN converts to 0; p stays NaN */
    int32x4_t h = vshrq_n_s32(ni, 1);
    float32x4_t s1 = vreinterpretq_f32_s32(vshlq_n_s32(vaddq_s32(h, vdupq_n_s32(127)), 23));
    float32x4_t s2 = vreinterpretq_f32_s32(vshlq_n_s32(vaddq_s32(vsubq_s32(ni, h), vdupq_n_s32(127)), 23));
    return vmulq_f32(vmulq_f32(p, s1), s2);
}

#endif
