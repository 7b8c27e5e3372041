/* gemm_avx2.c — the AVX2 (+FMA, F16C) GEMM versions, for x86-64 CPUs without AVX-512:
 * blocks of up to 4 rows of X x 4 columns of W as dot products along k, W converted to fp32
 * on the fly (fp weights) or sign-extended to int16 and multiplied with vpmaddwd (int8
 * weights: exact int32 sums, no vpmaddubsw saturation). Simple and exact, not the fastest. */
#include <immintrin.h>
#include "cpu_internal.h"

#define ROWS 4
#define ALWAYS_INLINE inline __attribute__((always_inline))

static ALWAYS_INLINE QRR__AVX2 __m256i tail_mask32(int cnt)
{
    const __m256i idx = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    return _mm256_cmpgt_epi32(_mm256_set1_epi32(cnt), idx);
}

static ALWAYS_INLINE QRR__AVX2 __m256 load_x8(const float *p, int cnt)
{
    if (cnt >= 8) return _mm256_loadu_ps(p);
    return _mm256_maskload_ps(p, tail_mask32(cnt));
}

static ALWAYS_INLINE QRR__AVX2 __m256 load_w8(const void *data, uint32_t dtype, size_t idx, int cnt)
{
    if (dtype == 0) return load_x8((const float *)data + idx, cnt);
    const uint16_t *p = (const uint16_t *)data + idx;
    __m128i h;
    if (cnt >= 8) {
        h = _mm_loadu_si128((const __m128i *)p);
    } else {
        uint16_t tmp[8] = {0};
        memcpy(tmp, p, (size_t)cnt * 2);
        h = _mm_loadu_si128((const __m128i *)tmp);
    }
    if (dtype == 1) return _mm256_cvtph_ps(h);
    return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
}

static ALWAYS_INLINE QRR__AVX2 float hsum8(__m256 v)
{
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

static ALWAYS_INLINE QRR__AVX2 int32_t hsum8i(__m256i v)
{
    __m128i s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0x4e));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0xb1));
    return _mm_cvtsi128_si32(s);
}

static ALWAYS_INLINE QRR__AVX2 void dot_fp(int R, int C, const qrr__gemm_args *a, int i0, int j0)
{
    const qrr_cpu_weight *w = a->w;
    size_t k = (size_t)w->k;
    __m256 acc[ROWS][4];
#pragma GCC unroll 4
    for (int r = 0; r < R; r++)
#pragma GCC unroll 4
        for (int c = 0; c < C; c++) acc[r][c] = _mm256_setzero_ps();
    for (size_t kk = 0; kk < k; kk += 8) {
        int cnt = k - kk < 8 ? (int)(k - kk) : 8;
        __m256 xv[ROWS];
#pragma GCC unroll 4
        for (int r = 0; r < R; r++) xv[r] = load_x8(a->x + (size_t)(i0 + r) * a->ldx + kk, cnt);
#pragma GCC unroll 4
        for (int c = 0; c < C; c++) {
            __m256 wv = load_w8(w->data, w->dtype, (size_t)(j0 + c) * k + kk, cnt);
#pragma GCC unroll 4
            for (int r = 0; r < R; r++) acc[r][c] = _mm256_fmadd_ps(xv[r], wv, acc[r][c]);
        }
    }
#pragma GCC unroll 4
    for (int r = 0; r < R; r++)
#pragma GCC unroll 4
        for (int c = 0; c < C; c++) {
            float v = hsum8(acc[r][c]);
            float *yo = a->y + (size_t)(i0 + r) * a->ldy + j0 + c;
            *yo = a->accumulate ? *yo + v : v;
        }
}

/* 16 int8 to int16; cnt < 16 reads only that many (zeros after). */
static ALWAYS_INLINE QRR__AVX2 __m256i load_i8x16(const int8_t *p, int cnt)
{
    __m128i v;
    if (cnt >= 16) {
        v = _mm_loadu_si128((const __m128i *)p);
    } else {
        int8_t tmp[16] = {0};
        memcpy(tmp, p, (size_t)cnt);
        v = _mm_loadu_si128((const __m128i *)tmp);
    }
    return _mm256_cvtepi8_epi16(v);
}

static ALWAYS_INLINE QRR__AVX2 void dot_i8(int R, int C, const qrr__gemm_args *a, int i0, int j0)
{
    const qrr_cpu_weight *w = a->w;
    int k = w->k, bsz = w->block > 0 ? w->block : k, nb = k / bsz;
    const int8_t *wd = w->data;
    float fs[ROWS][4] = {{0}};
    int32_t last[ROWS][4] = {{0}};
    for (int b = 0; b < nb; b++) {
        __m256i acc[ROWS][4];
#pragma GCC unroll 4
        for (int r = 0; r < R; r++)
#pragma GCC unroll 4
            for (int c = 0; c < C; c++) acc[r][c] = _mm256_setzero_si256();
        for (int kk = b * bsz; kk < (b + 1) * bsz; kk += 16) {
            int cnt = (b + 1) * bsz - kk < 16 ? (b + 1) * bsz - kk : 16;
            __m256i xv[ROWS];
#pragma GCC unroll 4
            for (int r = 0; r < R; r++)
                xv[r] = load_i8x16((const int8_t *)a->xq + (size_t)(i0 + r) * a->ldq + kk, cnt);
#pragma GCC unroll 4
            for (int c = 0; c < C; c++) {
                __m256i wv = load_i8x16(wd + (size_t)(j0 + c) * k + kk, cnt);
#pragma GCC unroll 4
                for (int r = 0; r < R; r++)
                    acc[r][c] = _mm256_add_epi32(acc[r][c], _mm256_madd_epi16(xv[r], wv));
            }
        }
#pragma GCC unroll 4
        for (int c = 0; c < C; c++) {
            float ws = w->scale[(size_t)(j0 + c) * nb + b];
#pragma GCC unroll 4
            for (int r = 0; r < R; r++) {
                int32_t t = hsum8i(acc[r][c]);
                if (nb == 1) last[r][c] = t;
                else fs[r][c] = b == 0 ? (float)t * ws : fs[r][c] + (float)t * ws;
            }
        }
    }
#pragma GCC unroll 4
    for (int r = 0; r < R; r++) {
        float xs = a->xs[i0 + r];
#pragma GCC unroll 4
        for (int c = 0; c < C; c++) {
            float v = nb == 1 ? (float)last[r][c] * (xs * w->scale[j0 + c]) : fs[r][c] * xs;
            float *yo = a->y + (size_t)(i0 + r) * a->ldy + j0 + c;
            *yo = a->accumulate ? *yo + v : v;
        }
    }
}

#define DISPATCH(F, R, C, a, i, j)                                                          \
    switch (R) {                                                                             \
    case 4: F(4, C, a, i, j); break;                                                         \
    case 3: F(3, C, a, i, j); break;                                                         \
    case 2: F(2, C, a, i, j); break;                                                         \
    default: F(1, C, a, i, j); break;                                                        \
    }

QRR__AVX2 void qrr__gemm_fp_avx2(const qrr__gemm_args *a, int i0, int i1, int j0, int j1)
{
    for (int i = i0; i < i1; i += ROWS) {
        int R = i1 - i < ROWS ? i1 - i : ROWS, j = j0;
        for (; j + 4 <= j1; j += 4) DISPATCH(dot_fp, R, 4, a, i, j)
        for (; j < j1; j++) DISPATCH(dot_fp, R, 1, a, i, j)
    }
}

QRR__AVX2 void qrr__gemm_i8_avx2(const qrr__gemm_args *a, int i0, int i1, int j0, int j1)
{
    for (int i = i0; i < i1; i += ROWS) {
        int R = i1 - i < ROWS ? i1 - i : ROWS, j = j0;
        for (; j + 4 <= j1; j += 4) DISPATCH(dot_i8, R, 4, a, i, j)
        for (; j < j1; j++) DISPATCH(dot_i8, R, 1, a, i, j)
    }
}
