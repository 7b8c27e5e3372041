/* ops_avx2.c — the per-token operations' AVX2 versions (x86-64 without AVX-512): RMS norm
 * (sum of squares in double, 4 lanes x 4 chains), the SiLU product and e^x (the attention
 * softmax's), with the same order of fp32 operations as the scalar versions in ops.c.
 * Rotary embedding uses the scalar version (cos/sin in double: under 1% of a forward pass
 * here). */
#include <immintrin.h>
#include "qrr_cpu_ops.h"
#include "vec_exp.h"

/* The first `left` (< 8) floats of p, the rest 0; and the way back. */
static inline __attribute__((always_inline)) QRR__AVX2 __m256 load_part(const float *p, int left)
{
    _Alignas(32) float t[8] = {0};
    memcpy(t, p, sizeof(float) * (size_t)left);
    return _mm256_load_ps(t);
}

static inline __attribute__((always_inline)) QRR__AVX2 void store_part(float *p, __m256 v, int left)
{
    _Alignas(32) float t[8];
    _mm256_store_ps(t, v);
    memcpy(p, t, sizeof(float) * (size_t)left);
}

static inline __attribute__((always_inline)) QRR__AVX2 __m256d squares(__m128 a, __m256d acc)
{
    __m256d d = _mm256_cvtps_pd(a);
    return _mm256_fmadd_pd(d, d, acc);
}

QRR__AVX2 void qrr__rmsnorm_avx2(const float *x, const float *w, float *y, int rows, int n,
                                 float eps)
{
    for (int r = 0; r < rows; r++) {
        const float *xr = x + (size_t)r * n;
        float *yr = y + (size_t)r * n;
        /* x*x is exact in double, so only the order of the sum differs from the scalar */
        __m256d s0 = _mm256_setzero_pd(), s1 = s0, s2 = s0, s3 = s0;
        int i = 0;
        for (; i + 16 <= n; i += 16) {
            s0 = squares(_mm_loadu_ps(xr + i), s0);
            s1 = squares(_mm_loadu_ps(xr + i + 4), s1);
            s2 = squares(_mm_loadu_ps(xr + i + 8), s2);
            s3 = squares(_mm_loadu_ps(xr + i + 12), s3);
        }
        for (; i + 4 <= n; i += 4) s0 = squares(_mm_loadu_ps(xr + i), s0);
        __m256d s = _mm256_add_pd(_mm256_add_pd(s0, s1), _mm256_add_pd(s2, s3));
        _Alignas(32) double lanes[4];
        _mm256_store_pd(lanes, s);
        double ss = (lanes[0] + lanes[1]) + (lanes[2] + lanes[3]);
        for (; i < n; i++) ss += (double)xr[i] * xr[i];
        float var = (float)(ss / n);
        float inv = (float)(1.0 / sqrt((double)(var + eps)));
        __m256 iv = _mm256_set1_ps(inv);
        for (i = 0; i + 8 <= n; i += 8) { /* y = w * (x * inv), two roundings as in the scalar */
            __m256 t = _mm256_mul_ps(_mm256_loadu_ps(xr + i), iv);
            _mm256_storeu_ps(yr + i, _mm256_mul_ps(_mm256_loadu_ps(w + i), t));
        }
        if (i < n)
            store_part(yr + i, _mm256_mul_ps(load_part(w + i, n - i),
                                             _mm256_mul_ps(load_part(xr + i, n - i), iv)), n - i);
    }
}

/* g / (1 + e^-g) * u, 8 lanes */
static inline __attribute__((always_inline)) QRR__AVX2 __m256 silu_mul8(__m256 g, __m256 u)
{
    __m256 e = qrr__exp256(_mm256_sub_ps(_mm256_setzero_ps(), g));
    return _mm256_mul_ps(_mm256_div_ps(g, _mm256_add_ps(_mm256_set1_ps(1.0f), e)), u);
}

QRR__AVX2 void qrr__silu_mul_avx2(const float *gu, float *out, int rows, int n)
{
    for (int r = 0; r < rows; r++) {
        const float *g = gu + (size_t)r * 2 * n;
        const float *u = g + n;
        float *o = out + (size_t)r * n;
        int i = 0;
        for (; i + 8 <= n; i += 8)
            _mm256_storeu_ps(o + i, silu_mul8(_mm256_loadu_ps(g + i), _mm256_loadu_ps(u + i)));
        if (i < n)
            store_part(o + i, silu_mul8(load_part(g + i, n - i), load_part(u + i, n - i)), n - i);
    }
}

QRR__AVX2 void qrr__exp_avx2(const float *x, float *y, int n)
{
    int i = 0;
    for (; i + 8 <= n; i += 8) _mm256_storeu_ps(y + i, qrr__exp256(_mm256_loadu_ps(x + i)));
    if (i < n) store_part(y + i, qrr__exp256(load_part(x + i, n - i)), n - i);
}
