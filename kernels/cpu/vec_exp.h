/* vec_exp.h — the AVX-512 e^x that the attention softmax and the SiLU share (inline, for the
 * CPU kernel files only). Range reduction by ln 2 in two parts, a degree-7 polynomial and
 * scalef; within ~2 ulp of expf. Nothing else here. */
#ifndef QRR_VEC_EXP_H
#define QRR_VEC_EXP_H

#include <immintrin.h>
#include "cpu_internal.h"

/* e^x lane by lane. Below -104 gives 0 (or the smallest subnormal), above ~88.7 gives +Inf,
 * NaN gives NaN. */
static inline __attribute__((always_inline)) QRR__AVX512 __m512 qrr__exp512(__m512 x)
{
    /* max/min return their second operand when one is NaN: x goes second so NaN stays */
    x = _mm512_max_ps(_mm512_set1_ps(-104.0f), x);
    x = _mm512_min_ps(_mm512_set1_ps(89.0f), x);
    __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504088896341f)),
                                    _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693145751953125f), x);
    r = _mm512_fnmadd_ps(n, _mm512_set1_ps(1.428606765330187045e-06f), r);
    __m512 p = _mm512_set1_ps(1.0f / 5040.0f);
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 720.0f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 120.0f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 24.0f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 6.0f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(0.5f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f));
    return _mm512_scalef_ps(p, n);
}

#endif
