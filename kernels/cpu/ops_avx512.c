/* ops_avx512.c — AVX-512 versions of the per-token operations: RMS norm (sum of squares in
 * double, 8 lanes x 4 chains), rotary embedding (cos/sin of each fp32 angle by a vector
 * double-precision sine/cosine, once per row for all heads) and the SiLU product (vector
 * e^x). Same order of fp32 operations as the scalar versions in ops.c; no dispatch here. */
#include <immintrin.h>
#include "cpu_internal.h"
#include "qrr_cpu_ops.h"
#include "vec_exp.h"

static inline __attribute__((always_inline)) QRR__AVX512 __mmask16 tail_mask(int left)
{
    return left >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << left) - 1u);
}

QRR__AVX512 void qrr__rmsnorm_avx512(const float *x, const float *w, float *y, int rows, int n,
                                     float eps)
{
    for (int r = 0; r < rows; r++) {
        const float *xr = x + (size_t)r * n;
        float *yr = y + (size_t)r * n;
        /* x*x is exact in double, so only the order of the sum differs from the scalar */
        __m512d s0 = _mm512_setzero_pd(), s1 = s0, s2 = s0, s3 = s0;
        int i = 0;
        for (; i + 32 <= n; i += 32) {
            __m512 a = _mm512_loadu_ps(xr + i), b = _mm512_loadu_ps(xr + i + 16);
            __m512d a0 = _mm512_cvtps_pd(_mm512_castps512_ps256(a));
            __m512d a1 = _mm512_cvtps_pd(_mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(a), 1)));
            __m512d b0 = _mm512_cvtps_pd(_mm512_castps512_ps256(b));
            __m512d b1 = _mm512_cvtps_pd(_mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(b), 1)));
            s0 = _mm512_fmadd_pd(a0, a0, s0);
            s1 = _mm512_fmadd_pd(a1, a1, s1);
            s2 = _mm512_fmadd_pd(b0, b0, s2);
            s3 = _mm512_fmadd_pd(b1, b1, s3);
        }
        for (; i < n; i += 16) {
            __m512 a = _mm512_maskz_loadu_ps(tail_mask(n - i), xr + i);
            __m512d a0 = _mm512_cvtps_pd(_mm512_castps512_ps256(a));
            __m512d a1 = _mm512_cvtps_pd(_mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(a), 1)));
            s0 = _mm512_fmadd_pd(a0, a0, s0);
            s1 = _mm512_fmadd_pd(a1, a1, s1);
        }
        double ss = _mm512_reduce_add_pd(_mm512_add_pd(_mm512_add_pd(s0, s1), _mm512_add_pd(s2, s3)));
        float var = (float)(ss / n);
        float inv = (float)(1.0 / sqrt((double)(var + eps)));
        __m512 iv = _mm512_set1_ps(inv);
        for (i = 0; i < n; i += 16) { /* y = w * (x * inv), two roundings as in the scalar */
            __mmask16 m = tail_mask(n - i);
            __m512 t = _mm512_mul_ps(_mm512_maskz_loadu_ps(m, xr + i), iv);
            _mm512_mask_storeu_ps(yr + i, m, _mm512_mul_ps(_mm512_maskz_loadu_ps(m, w + i), t));
        }
    }
}

/* sin and cos of 8 doubles 0 <= |a| < 2^19: a = k pi/2 + r with pi/2 in three parts (the
 * first two products exact), then the classic minimax polynomials on |r| <= pi/4. Close to
 * 1 ulp in double, so the fp32 results round like the correctly rounded ones. */
static inline __attribute__((always_inline)) QRR__AVX512 void sincos8(__m512d a, __m512d *s,
                                                                      __m512d *c)
{
    __m512d k = _mm512_roundscale_pd(_mm512_mul_pd(a, _mm512_set1_pd(6.36619772367581382433e-01)),
                                     _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m512d r = _mm512_fnmadd_pd(k, _mm512_set1_pd(1.57079632673412561417e+00), a);
    r = _mm512_fnmadd_pd(k, _mm512_set1_pd(6.07710050630396597660e-11), r);
    r = _mm512_fnmadd_pd(k, _mm512_set1_pd(2.02226624879595063154e-21), r);
    __m512d z = _mm512_mul_pd(r, r);
    __m512d ps = _mm512_set1_pd(1.58969099521155010221e-10);
    ps = _mm512_fmadd_pd(ps, z, _mm512_set1_pd(-2.50507602534068634195e-08));
    ps = _mm512_fmadd_pd(ps, z, _mm512_set1_pd(2.75573137070700676789e-06));
    ps = _mm512_fmadd_pd(ps, z, _mm512_set1_pd(-1.98412698298579493134e-04));
    ps = _mm512_fmadd_pd(ps, z, _mm512_set1_pd(8.33333333332248946124e-03));
    ps = _mm512_fmadd_pd(ps, z, _mm512_set1_pd(-1.66666666666666324348e-01));
    __m512d sr = _mm512_fmadd_pd(_mm512_mul_pd(r, z), ps, r);
    __m512d pc = _mm512_set1_pd(-1.13596475577881948265e-11);
    pc = _mm512_fmadd_pd(pc, z, _mm512_set1_pd(2.08757232129817482790e-09));
    pc = _mm512_fmadd_pd(pc, z, _mm512_set1_pd(-2.75573143513906633035e-07));
    pc = _mm512_fmadd_pd(pc, z, _mm512_set1_pd(2.48015872894767294178e-05));
    pc = _mm512_fmadd_pd(pc, z, _mm512_set1_pd(-1.38888888888741095749e-03));
    pc = _mm512_fmadd_pd(pc, z, _mm512_set1_pd(4.16666666666666019037e-02));
    __m512d hz = _mm512_mul_pd(z, _mm512_set1_pd(0.5));
    __m512d cr = _mm512_add_pd(_mm512_sub_pd(_mm512_set1_pd(1.0), hz),
                               _mm512_mul_pd(_mm512_mul_pd(z, z), pc));
    /* quadrant k mod 4: 1 swaps sin/cos; sin negated for 2, 3; cos negated for 1, 2 */
    __m256i q = _mm512_cvtpd_epi32(k);
    __mmask8 swap = _mm256_test_epi32_mask(q, _mm256_set1_epi32(1));
    __mmask8 nsin = _mm256_test_epi32_mask(q, _mm256_set1_epi32(2));
    __mmask8 ncos = _mm256_test_epi32_mask(_mm256_add_epi32(q, _mm256_set1_epi32(1)), _mm256_set1_epi32(2));
    __m512d so = _mm512_mask_blend_pd(swap, sr, cr), co = _mm512_mask_blend_pd(swap, cr, sr);
    __m512d neg = _mm512_set1_pd(-0.0);
    *s = _mm512_mask_xor_pd(so, nsin, so, neg);
    *c = _mm512_mask_xor_pd(co, ncos, co, neg);
}

/* Whether every angle pos * inv_freq of these rows is in [0, 2^19) (finite, not negative). */
static int rope_in_range(int rows, int d, int pos0, const float *inv_freq)
{
    float fmax = 0.0f;
    for (int i = 0; i < d / 2; i++) {
        if (!(inv_freq[i] >= 0.0f)) return 0;
        if (inv_freq[i] > fmax) fmax = inv_freq[i];
    }
    float last = (float)pos0 + (float)(rows - 1);
    return pos0 >= 0 && last * fmax < 524288.0f;
}

QRR__AVX512 void qrr__rope_avx512(float *x, int rows, int nh, int d, int pos0,
                                  const float *inv_freq)
{
    int h2 = d / 2;
    _Alignas(64) float cs[QRR__ROPE_MAX_HALF], sn[QRR__ROPE_MAX_HALF];
    if (rows > 0 && !rope_in_range(rows, d, pos0, inv_freq)) { /* beyond the reduction's reach */
        qrr_cpu_rope_isa(0, x, rows, nh, d, pos0, inv_freq);
        return;
    }
    for (int r = 0; r < rows; r++) {
        __m256 pos = _mm256_set1_ps((float)(pos0 + r));
        for (int i0 = 0; i0 < h2; i0 += QRR__ROPE_MAX_HALF) {
            int cnt = h2 - i0 < QRR__ROPE_MAX_HALF ? h2 - i0 : QRR__ROPE_MAX_HALF;
            for (int i = 0; i < cnt; i += 8) { /* fp32 angle, then its cos/sin in double */
                __mmask8 m = cnt - i >= 8 ? (__mmask8)0xff : (__mmask8)((1u << (cnt - i)) - 1u);
                __m256 f = _mm256_maskz_loadu_ps(m, inv_freq + i0 + i);
                __m512d ang = _mm512_cvtps_pd(_mm256_mul_ps(pos, f)), s, c;
                sincos8(ang, &s, &c);
                _mm256_store_ps(cs + i, _mm512_cvtpd_ps(c));
                _mm256_store_ps(sn + i, _mm512_cvtpd_ps(s));
            }
            for (int h = 0; h < nh; h++) {
                float *a = x + ((size_t)r * nh + h) * d + i0;
                float *b = a + h2;
                for (int i = 0; i < cnt; i += 16) { /* separate products, as in the scalar */
                    __mmask16 m = tail_mask(cnt - i);
                    __m512 xa = _mm512_maskz_loadu_ps(m, a + i), xb = _mm512_maskz_loadu_ps(m, b + i);
                    __m512 c = _mm512_load_ps(cs + i), s = _mm512_load_ps(sn + i);
                    __m512 na = _mm512_sub_ps(_mm512_mul_ps(xa, c), _mm512_mul_ps(xb, s));
                    __m512 nb = _mm512_add_ps(_mm512_mul_ps(xb, c), _mm512_mul_ps(xa, s));
                    _mm512_mask_storeu_ps(a + i, m, na);
                    _mm512_mask_storeu_ps(b + i, m, nb);
                }
            }
        }
    }
}

QRR__AVX512 void qrr__silu_mul_avx512(const float *gu, float *out, int rows, int n)
{
    const __m512 one = _mm512_set1_ps(1.0f);
    for (int r = 0; r < rows; r++) {
        const float *g = gu + (size_t)r * 2 * n;
        const float *u = g + n;
        float *o = out + (size_t)r * n;
        for (int i = 0; i < n; i += 16) { /* g / (1 + e^-g) * u */
            __mmask16 m = tail_mask(n - i);
            __m512 gv = _mm512_maskz_loadu_ps(m, g + i);
            __m512 e = qrr__exp512(_mm512_sub_ps(_mm512_setzero_ps(), gv));
            __m512 s = _mm512_div_ps(gv, _mm512_add_ps(one, e));
            _mm512_mask_storeu_ps(o + i, m, _mm512_mul_ps(s, _mm512_maskz_loadu_ps(m, u + i)));
        }
    }
}

QRR__AVX512 void qrr__exp_avx512(const float *x, float *y, int n)
{
    for (int i = 0; i < n; i += 16) {
        __mmask16 m = tail_mask(n - i);
        _mm512_mask_storeu_ps(y + i, m, qrr__exp512(_mm512_maskz_loadu_ps(m, x + i)));
    }
}
