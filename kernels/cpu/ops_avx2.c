/* ops_avx2.c — the per-token operations' AVX2 versions (x86-64 without AVX-512): so far e^x
 * alone, the attention softmax's (qrr_cpu_exp_isa, so that the tests hold it to expf); the
 * norm, RoPE and SwiGLU use the scalar versions. */
#include <immintrin.h>
#include "qrr_cpu_ops.h"
#include "vec_exp.h"

QRR__AVX2 void qrr__exp_avx2(const float *x, float *y, int n)
{
    int i = 0;
    for (; i + 8 <= n; i += 8) _mm256_storeu_ps(y + i, qrr__exp256(_mm256_loadu_ps(x + i)));
    if (i < n) {
        _Alignas(32) float t[8] = {0};
        memcpy(t, x + i, sizeof(float) * (size_t)(n - i));
        _mm256_store_ps(t, qrr__exp256(_mm256_load_ps(t)));
        memcpy(y + i, t, sizeof(float) * (size_t)(n - i));
    }
}
