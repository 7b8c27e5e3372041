/* avx2_transpose.h — transpose an 8x8 block of floats held in 8 AVX registers, in place (row
 * i becomes column i). Shared by the AVX2 GEMM's weight panels and the AVX2 attention's
 * query transpose; include after cpu_internal.h and <immintrin.h>. */
#ifndef QRR_AVX2_TRANSPOSE_H
#define QRR_AVX2_TRANSPOSE_H

static inline __attribute__((always_inline)) QRR__AVX2 void qrr__transpose8x8(__m256 r[8])
{
    __m256 t[8], u[8];
    for (int i = 0; i < 8; i += 2) {
        t[i] = _mm256_unpacklo_ps(r[i], r[i + 1]);
        t[i + 1] = _mm256_unpackhi_ps(r[i], r[i + 1]);
    }
    for (int i = 0; i < 8; i += 4) {
        u[i] = _mm256_shuffle_ps(t[i], t[i + 2], 0x44);
        u[i + 1] = _mm256_shuffle_ps(t[i], t[i + 2], 0xee);
        u[i + 2] = _mm256_shuffle_ps(t[i + 1], t[i + 3], 0x44);
        u[i + 3] = _mm256_shuffle_ps(t[i + 1], t[i + 3], 0xee);
    }
    for (int i = 0; i < 4; i++) {
        r[i] = _mm256_permute2f128_ps(u[i], u[i + 4], 0x20);
        r[i + 4] = _mm256_permute2f128_ps(u[i], u[i + 4], 0x31);
    }
}

#endif
