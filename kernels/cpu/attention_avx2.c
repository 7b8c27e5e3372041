/* attention_avx2.c — the AVX2 attention (x86-64 without AVX-512): the scalar streaming
 * algorithm of attention.c with the d-long dot products and updates 8 lanes wide. */
#include <immintrin.h>
#include "cpu_internal.h"

QRR__AVX2 void qrr__attention_avx2(const qrr__attn_args *a, int h0, int h1, int r0, int r1)
{
    int d = a->d, group = a->nq / a->nkv;
    if (d % 8 != 0) {
        qrr__attention_scalar(a, h0, h1, r0, r1);
        return;
    }
    float sc = qrr__attn_scale(d);
    _Alignas(32) float acc[QRR_MAX_HEAD_DIM_CPU];
    for (int h = h0; h < h1; h++) {
        int g = h / group;
        for (int i = r0; i < r1; i++) {
            const float *qi = a->q + ((size_t)i * a->nq + h) * d;
            int nk = a->n_prefix + i + 1;
            float mx = -INFINITY, l = 0.0f;
            for (int e = 0; e < d; e++) acc[e] = 0.0f;
            for (int j = 0; j < nk; j++) {
                const float *kj = qrr__key_row(a, a->pk, a->k, j, g);
                __m256 s0 = _mm256_setzero_ps(), s1 = _mm256_setzero_ps();
                int e = 0;
                for (; e + 16 <= d; e += 16) {
                    s0 = _mm256_fmadd_ps(_mm256_loadu_ps(qi + e), _mm256_loadu_ps(kj + e), s0);
                    s1 = _mm256_fmadd_ps(_mm256_loadu_ps(qi + e + 8), _mm256_loadu_ps(kj + e + 8), s1);
                }
                if (e < d) s0 = _mm256_fmadd_ps(_mm256_loadu_ps(qi + e), _mm256_loadu_ps(kj + e), s0);
                s0 = _mm256_add_ps(s0, s1);
                __m128 h4 = _mm_add_ps(_mm256_castps256_ps128(s0), _mm256_extractf128_ps(s0, 1));
                h4 = _mm_add_ps(h4, _mm_movehl_ps(h4, h4));
                h4 = _mm_add_ss(h4, _mm_movehdup_ps(h4));
                float s = _mm_cvtss_f32(h4) * sc;
                const float *vj = qrr__key_row(a, a->pv, a->v, j, g);
                float p = 1.0f, corr = 1.0f;
                if (s > mx) {
                    corr = expf(mx - s); /* 0 on the first key */
                    mx = s;
                } else {
                    p = expf(s - mx);
                }
                l = l * corr + p;
                __m256 pv = _mm256_set1_ps(p), cv = _mm256_set1_ps(corr);
                for (e = 0; e < d; e += 8) {
                    __m256 o = _mm256_loadu_ps(acc + e);
                    if (corr != 1.0f) o = _mm256_mul_ps(o, cv);
                    _mm256_storeu_ps(acc + e, _mm256_fmadd_ps(pv, _mm256_loadu_ps(vj + e), o));
                }
            }
            float *oi = a->out + ((size_t)i * a->nq + h) * d;
            float inv = 1.0f / l;
            for (int e = 0; e < d; e++) oi[e] = acc[e] * inv;
        }
    }
}
