/* gemm_avx512.c — the AVX-512 GEMM versions. fp32/f16/bf16 weights: a W panel of NR columns
 * x KC depth is converted to fp32 and transposed once into [KC][NR] (L1-resident) and an
 * MR x NR register-blocked kernel runs over every MR rows of X; a handful of rows instead use
 * dot products that convert W on the fly; moderate m (X transposed by the driver) uses Y^T
 * tiles that read W rows without the transpose. int8 weights (VNNI): W panels in vpdpbusd
 * order [K/4][NR][4] (packed on the fly, or read from the weight's packed copy) against X
 * quantized to u8 (q + 128), corrected by W's sums, with an MRI x NR kernel. Stack per call:
 * 32 KiB (fp), 128 KiB (int8). */
#include <immintrin.h>
#include "cpu_internal.h"
#include "avx512_transpose.h"

#define MR 8          /* rows of X per register block */
#define NR 32         /* columns of W per panel (two vectors) */
#define KC 256        /* depth of one fp32 panel: 32 KiB */
#define MC 256        /* rows of X per pass over W (keeps X's slice in L2) */
#define DOT_ROWS 4    /* rows per dot-product block */
#define DOT_MAX_M 4   /* at most this many rows: dot products, W converted on the fly */
#define ALWAYS_INLINE inline __attribute__((always_inline))

/* ---------------------------------------------------------------- fp weights */

/* 16 consecutive weights of one row to fp32; cnt < 16 loads only that many (zeros after). */
static ALWAYS_INLINE QRR__AVX512 __m512 load_w16(const void *data, uint32_t dtype, size_t idx,
                                                 int cnt)
{
    __mmask16 mk = cnt >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << cnt) - 1u);
    switch (dtype) {
    case 0: return _mm512_maskz_loadu_ps(mk, (const float *)data + idx);
    case 1:
        return _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(mk, (const uint16_t *)data + idx));
    default: {
        __m512i h = _mm512_cvtepu16_epi32(_mm256_maskz_loadu_epi16(mk, (const uint16_t *)data + idx));
        return _mm512_castsi512_ps(_mm512_slli_epi32(h, 16));
    }
    }
}


/* buf[kk][jj] = W[j0 + jj][k0 + kk] as fp32 for kk < kc, jj < NR (zero for jj >= nr). */
static QRR__AVX512 void pack_fp(const qrr_cpu_weight *w, int j0, int nr, int k0, int kc,
                                float *buf)
{
    size_t k = (size_t)w->k;
    for (int g = 0; g < NR; g += 16) {
        int rows = nr - g;
        if (rows <= 0) {
            for (int kk = 0; kk < kc; kk++) _mm512_store_ps(buf + (size_t)kk * NR + g, _mm512_setzero_ps());
            continue;
        }
        if (rows > 16) rows = 16;
        for (int kb = 0; kb < kc; kb += 16) {
            int cnt = kc - kb < 16 ? kc - kb : 16;
            __m512 r[16];
            for (int i = 0; i < 16; i++)
                r[i] = i < rows ? load_w16(w->data, w->dtype, (size_t)(j0 + g + i) * k + (size_t)(k0 + kb), cnt)
                                : _mm512_setzero_ps();
            qrr__transpose16x16(r);
            for (int i = 0; i < cnt; i++) _mm512_store_ps(buf + (size_t)(kb + i) * NR + g, r[i]);
        }
    }
}

/* Y[0..mr, 0..nr) (+)= X[0..mr, 0..kc) . buf; init: start from zero instead of Y. */
static ALWAYS_INLINE QRR__AVX512 void kernel_fp(int mr, int kc, const float *x, int ldx,
                                                const float *buf, float *y, int ldy, int init,
                                                int nr)
{
    __mmask16 m0 = nr >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << nr) - 1u);
    __mmask16 m1 = nr >= 32 ? (__mmask16)0xffff : nr <= 16 ? 0 : (__mmask16)((1u << (nr - 16)) - 1u);
    __m512 c0[MR], c1[MR];
#pragma GCC unroll 8
    for (int r = 0; r < mr; r++) c0[r] = c1[r] = _mm512_setzero_ps();
    for (int kk = 0; kk < kc; kk++) {
        __m512 b0 = _mm512_load_ps(buf + (size_t)kk * NR);
        __m512 b1 = _mm512_load_ps(buf + (size_t)kk * NR + 16);
#pragma GCC unroll 8
        for (int r = 0; r < mr; r++) {
            __m512 a = _mm512_set1_ps(x[(size_t)r * ldx + kk]);
            c0[r] = _mm512_fmadd_ps(a, b0, c0[r]);
            c1[r] = _mm512_fmadd_ps(a, b1, c1[r]);
        }
    }
#pragma GCC unroll 8
    for (int r = 0; r < mr; r++) {
        if (!init) { /* each KC slice summed from zero, then added: smaller rounding error */
            c0[r] = _mm512_add_ps(_mm512_maskz_loadu_ps(m0, y + (size_t)r * ldy), c0[r]);
            c1[r] = _mm512_add_ps(_mm512_maskz_loadu_ps(m1, y + (size_t)r * ldy + 16), c1[r]);
        }
        _mm512_mask_storeu_ps(y + (size_t)r * ldy, m0, c0[r]);
        _mm512_mask_storeu_ps(y + (size_t)r * ldy + 16, m1, c1[r]);
    }
}

static QRR__AVX512 void kernel_fp_any(int mr, int kc, const float *x, int ldx, const float *buf,
                                      float *y, int ldy, int init, int nr)
{
    switch (mr) {
    case 8: kernel_fp(8, kc, x, ldx, buf, y, ldy, init, nr); break;
    case 7: kernel_fp(7, kc, x, ldx, buf, y, ldy, init, nr); break;
    case 6: kernel_fp(6, kc, x, ldx, buf, y, ldy, init, nr); break;
    case 5: kernel_fp(5, kc, x, ldx, buf, y, ldy, init, nr); break;
    case 4: kernel_fp(4, kc, x, ldx, buf, y, ldy, init, nr); break;
    case 3: kernel_fp(3, kc, x, ldx, buf, y, ldy, init, nr); break;
    case 2: kernel_fp(2, kc, x, ldx, buf, y, ldy, init, nr); break;
    default: kernel_fp(1, kc, x, ldx, buf, y, ldy, init, nr); break;
    }
}

/* R rows x C columns of dot products over the whole depth, W converted on the fly. */
static ALWAYS_INLINE QRR__AVX512 void dot_fp(int R, int C, const qrr__gemm_args *a, int i0,
                                             int j0)
{
    const qrr_cpu_weight *w = a->w;
    size_t k = (size_t)w->k;
    __m512 acc[DOT_ROWS][4];
#pragma GCC unroll 4
    for (int r = 0; r < R; r++)
#pragma GCC unroll 4
        for (int c = 0; c < C; c++) acc[r][c] = _mm512_setzero_ps();
    for (size_t kk = 0; kk < k; kk += 16) {
        int cnt = k - kk < 16 ? (int)(k - kk) : 16;
        __mmask16 mk = cnt >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << cnt) - 1u);
        __m512 xv[DOT_ROWS];
#pragma GCC unroll 4
        for (int r = 0; r < R; r++)
            xv[r] = _mm512_maskz_loadu_ps(mk, a->x + (size_t)(i0 + r) * a->ldx + kk);
#pragma GCC unroll 4
        for (int c = 0; c < C; c++) {
            __m512 wv = load_w16(w->data, w->dtype, (size_t)(j0 + c) * k + kk, cnt);
#pragma GCC unroll 4
            for (int r = 0; r < R; r++) acc[r][c] = _mm512_fmadd_ps(xv[r], wv, acc[r][c]);
        }
    }
#pragma GCC unroll 4
    for (int r = 0; r < R; r++)
#pragma GCC unroll 4
        for (int c = 0; c < C; c++) {
            float v = _mm512_reduce_add_ps(acc[r][c]);
            float *yo = a->y + (size_t)(i0 + r) * a->ldy + j0 + c;
            *yo = a->accumulate ? *yo + v : v;
        }
}

static QRR__AVX512 void dot_rows(int R, const qrr__gemm_args *a, int i0, int j0, int j1)
{
    int j = j0;
    for (; j + 4 <= j1; j += 4) {
        switch (R) {
        case 4: dot_fp(4, 4, a, i0, j); break;
        case 3: dot_fp(3, 4, a, i0, j); break;
        case 2: dot_fp(2, 4, a, i0, j); break;
        default: dot_fp(1, 4, a, i0, j); break;
        }
    }
    for (; j < j1; j++) {
        switch (R) {
        case 4: dot_fp(4, 1, a, i0, j); break;
        case 3: dot_fp(3, 1, a, i0, j); break;
        case 2: dot_fp(2, 1, a, i0, j); break;
        default: dot_fp(1, 1, a, i0, j); break;
        }
    }
}

/* Moderate m: Y^T tiles of NT columns x MT rows from X transposed once (a->xt) and W rows
 * converted to fp32 without a transpose; per KC slice summed from zero then added, in the
 * same order as kernel_fp, so both give the same bits. */
#define NT 6   /* columns of W per transposed tile (broadcast) */
#define MT 64  /* rows of X per transposed tile (four vectors) */

static ALWAYS_INLINE QRR__AVX512 void kernel_t(int nv, int kc, const float *xt, size_t ldt,
                                               const float *wb, float *yt, int first)
{
    __m512 acc[NT][4];
#pragma GCC unroll 6
    for (int c = 0; c < NT; c++)
#pragma GCC unroll 4
        for (int v = 0; v < nv; v++) acc[c][v] = _mm512_setzero_ps();
    for (int kk = 0; kk < kc; kk++) {
        __m512 xv[4];
#pragma GCC unroll 4
        for (int v = 0; v < nv; v++) xv[v] = _mm512_loadu_ps(xt + (size_t)kk * ldt + 16 * v);
#pragma GCC unroll 6
        for (int c = 0; c < NT; c++) {
            __m512 b = _mm512_set1_ps(wb[c * KC + kk]);
#pragma GCC unroll 4
            for (int v = 0; v < nv; v++) acc[c][v] = _mm512_fmadd_ps(xv[v], b, acc[c][v]);
        }
    }
#pragma GCC unroll 6
    for (int c = 0; c < NT; c++)
#pragma GCC unroll 4
        for (int v = 0; v < nv; v++) {
            float *p = yt + c * MT + 16 * v;
            _mm512_store_ps(p, first ? acc[c][v] : _mm512_add_ps(_mm512_load_ps(p), acc[c][v]));
        }
}

static QRR__AVX512 void gemm_fp_t(const qrr__gemm_args *a, int i0, int i1, int j0, int j1)
{
    const qrr_cpu_weight *w = a->w;
    int k = w->k;
    size_t kz = (size_t)k;
    _Alignas(64) float wb[NT * KC];
    _Alignas(64) float yt[NT * MT];
    for (int ib = i0; ib < i1; ib += MT) {
        int mt = i1 - ib < MT ? i1 - ib : MT, nv = (mt + 15) / 16;
        for (int j = j0; j < j1; j += NT) {
            int nt = j1 - j < NT ? j1 - j : NT;
            if (a->accumulate)
                for (int c = 0; c < nt; c++)
                    for (int r = 0; r < mt; r++) yt[c * MT + r] = a->y[(size_t)(ib + r) * a->ldy + j + c];
            for (int k0 = 0; k0 < k; k0 += KC) {
                int kc = k - k0 < KC ? k - k0 : KC;
                for (int c = 0; c < NT; c++)
                    for (int kb = 0; kb < kc; kb += 16) {
                        int cnt = kc - kb < 16 ? kc - kb : 16;
                        __m512 v = c < nt ? load_w16(w->data, w->dtype, (size_t)(j + c) * kz + (size_t)(k0 + kb), cnt)
                                          : _mm512_setzero_ps();
                        _mm512_store_ps(wb + c * KC + kb, v);
                    }
                const float *xt = a->xt + (size_t)k0 * a->ldt + ib;
                int first = k0 == 0 && !a->accumulate;
                switch (nv) {
                case 4: kernel_t(4, kc, xt, a->ldt, wb, yt, first); break;
                case 3: kernel_t(3, kc, xt, a->ldt, wb, yt, first); break;
                case 2: kernel_t(2, kc, xt, a->ldt, wb, yt, first); break;
                default: kernel_t(1, kc, xt, a->ldt, wb, yt, first); break;
                }
            }
            for (int r = 0; r < mt; r++) {
                float *yo = a->y + (size_t)(ib + r) * a->ldy + j;
                for (int c = 0; c < nt; c++) yo[c] = yt[c * MT + r];
            }
        }
    }
}

QRR__AVX512 void qrr__gemm_fp_avx512(const qrr__gemm_args *a, int i0, int i1, int j0, int j1)
{
    if (a->xt && i1 - i0 > DOT_MAX_M) {
        gemm_fp_t(a, i0, i1, j0, j1);
        return;
    }
    const qrr_cpu_weight *w = a->w;
    int k = w->k;
    if (i1 - i0 <= DOT_MAX_M) {
        for (int i = i0; i < i1; i += DOT_ROWS)
            dot_rows(i1 - i < DOT_ROWS ? i1 - i : DOT_ROWS, a, i, j0, j1);
        return;
    }
    _Alignas(64) float buf[KC * NR];
    /* X's MC x KC slice stays in L2 while every panel of W passes over it */
    for (int ic = i0; ic < i1; ic += MC) {
        int ie = ic + MC < i1 ? ic + MC : i1;
        for (int k0 = 0; k0 < k; k0 += KC) {
            int kc = k - k0 < KC ? k - k0 : KC;
            for (int jp = j0; jp < j1; jp += NR) {
                int nr = j1 - jp < NR ? j1 - jp : NR;
                pack_fp(w, jp, nr, k0, kc, buf);
                int init = k0 == 0 && !a->accumulate;
                int ng = (ie - ic + MR - 1) / MR; /* near-equal row groups: no thin last one */
                for (int gi = 0; gi < ng; gi++) {
                    int ip = ic + (ie - ic) * gi / ng;
                    int mr = ic + (ie - ic) * (gi + 1) / ng - ip;
                    kernel_fp_any(mr, kc, a->x + (size_t)ip * a->ldx + k0, a->ldx, buf,
                                  a->y + (size_t)ip * a->ldy + jp, a->ldy, init, nr);
                }
            }
        }
    }
}

/* ---------------------------------------------------------------- int8 weights (VNNI) */

#define KCI 1024 /* depth of one int8 panel chunk: 32 KiB packed */
#define MRI 12   /* rows of X per int8 register block (24 accumulators) */
#define MCI 256  /* rows of X per pass over W for int8 */

#define QRR__VNNI QRR__AVX512VNNI

/* Prefetches into L2 part `part` of `parts` of the cache lines of `rows` rows of `bytes` bytes
 * each, `stride` bytes apart: the int8 W panel the next pack reads. Spread over the kernels of
 * the current panel, it keeps that pack from waiting on memory: 32 strided rows are more
 * streams than the hardware prefetcher follows (the packing loads were a third of a one-pair
 * int8 forward's time; the fp packs, which convert as they load, gained nothing from it). */
static ALWAYS_INLINE QRR__VNNI void prefetch_part(const char *first, size_t stride, int rows,
                                                   size_t bytes, int part, int parts)
{
    int lines = (int)((bytes + 63) / 64), total = rows * lines;
    for (int t = total * part / parts; t < total * (part + 1) / parts; t++)
        _mm_prefetch(first + (size_t)(t / lines) * stride + (size_t)(t % lines) * 64, _MM_HINT_T1);
}

/* 64 consecutive int8 weights of one row; cnt < 64 loads only that many. */
static ALWAYS_INLINE QRR__VNNI __m512i load_w64(const int8_t *p, int cnt)
{
    __mmask64 mk = cnt >= 64 ? ~(__mmask64)0 : (((__mmask64)1 << cnt) - 1);
    return _mm512_maskz_loadu_epi8(mk, p);
}

/* Packs W[j0 .. j0+nr)[k0 .. k0+kc) into buf as [kc/4][NR][4] bytes (zeros past nr and kc)
 * and adds each 4-deep step's W sums into wsum[(step * 4 + k0 - kb0) / bsz][NR]: the sums per
 * block of bsz (kb0: where the first block of the chunk starts). */
static QRR__VNNI void pack_i8(const qrr_cpu_weight *w, int j0, int nr, int k0, int kc,
                              uint8_t *buf, int32_t *wsum, int bsz)
{
    size_t k = (size_t)w->k;
    const int8_t *wd = w->data;
    const __m512i ones = _mm512_set1_epi8(1);
    int steps = (kc + 3) / 4;
    for (int g = 0; g < NR; g += 16) {
        int rows = nr - g;
        if (rows <= 0) {
            for (int s = 0; s < steps; s++)
                _mm512_store_si512((__m512i *)(buf + (size_t)s * NR * 4 + g * 4), _mm512_setzero_si512());
            continue;
        }
        if (rows > 16) rows = 16;
        int one_block = bsz >= kc; /* the whole chunk adds into one row of sums */
        __m512i sum = _mm512_setzero_si512();
        for (int kb = 0; kb < kc; kb += 64) {
            int cnt = kc - kb < 64 ? kc - kb : 64;
            __m512 r[16];
            for (int i = 0; i < 16; i++)
                r[i] = i < rows ? _mm512_castsi512_ps(load_w64(wd + (size_t)(j0 + g + i) * k + (size_t)(k0 + kb), cnt))
                                : _mm512_setzero_ps();
            qrr__transpose16x16(r);
            int ns = (cnt + 3) / 4;
            for (int i = 0; i < ns; i++) {
                int s = kb / 4 + i;
                __m512i v = _mm512_castps_si512(r[i]);
                _mm512_store_si512((__m512i *)(buf + (size_t)s * NR * 4 + g * 4), v);
                if (one_block) {
                    sum = _mm512_dpbusd_epi32(sum, ones, v);
                } else {
                    int32_t *ws = wsum + (size_t)((s * 4) / bsz) * NR + g;
                    _mm512_storeu_si512((__m512i *)ws, _mm512_dpbusd_epi32(_mm512_loadu_si512((const __m512i *)ws), ones, v));
                }
            }
        }
        if (one_block) {
            int32_t *ws = wsum + g;
            _mm512_storeu_si512((__m512i *)ws, _mm512_add_epi32(_mm512_loadu_si512((const __m512i *)ws), sum));
        }
    }
}

_Static_assert(NR == QRR__I8_NR, "the packed int8 layout's panel is the kernels' panel");

/* The chunks of a panel follow each other, so chunk k0 (a multiple of KCI, itself a multiple
 * of 4) starts k0 / 4 steps in: the layout pack_i8 writes one chunk of. */
QRR__VNNI void qrr__i8_vnni_pack(const qrr_cpu_weight *w, uint8_t *mem)
{
    int n = w->n, k = w->k, panels = (n + NR - 1) / NR;
    int32_t *sums = (int32_t *)(mem + qrr__i8_sums_offset(n, k));
    for (int p = 0; p < panels; p++) {
        int jp = p * NR, nr = n - jp < NR ? n - jp : NR;
        uint8_t *panel = mem + (size_t)p * qrr__i8_panel_bytes(k);
        memset(sums + (size_t)p * NR, 0, NR * sizeof(int32_t));
        for (int k0 = 0; k0 < k; k0 += KCI)
            pack_i8(w, jp, nr, k0, k - k0 < KCI ? k - k0 : KCI, panel + (size_t)k0 * NR,
                    sums + (size_t)p * NR, KCI + 4);
    }
}

/* acc[0..mr][0..NR) (+)= u8 rows of X . packed W over `steps` 4-deep steps. */
static ALWAYS_INLINE QRR__VNNI void kernel_i8(int mr, int steps, const uint8_t *xq, size_t ldq,
                                              const uint8_t *buf, int32_t *acc, int init)
{
    __m512i c0[MRI], c1[MRI];
#pragma GCC unroll 12
    for (int r = 0; r < mr; r++) {
        if (init) {
            c0[r] = _mm512_setzero_si512();
            c1[r] = _mm512_setzero_si512();
        } else {
            c0[r] = _mm512_load_si512((const __m512i *)(acc + r * NR));
            c1[r] = _mm512_load_si512((const __m512i *)(acc + r * NR + 16));
        }
    }
    for (int s = 0; s < steps; s++) {
        __m512i b0 = _mm512_load_si512((const __m512i *)(buf + (size_t)s * NR * 4));
        __m512i b1 = _mm512_load_si512((const __m512i *)(buf + (size_t)s * NR * 4 + 64));
#pragma GCC unroll 12
        for (int r = 0; r < mr; r++) {
            int32_t xv;
            memcpy(&xv, xq + (size_t)r * ldq + (size_t)s * 4, 4);
            __m512i av = _mm512_set1_epi32(xv);
            c0[r] = _mm512_dpbusd_epi32(c0[r], av, b0);
            c1[r] = _mm512_dpbusd_epi32(c1[r], av, b1);
        }
    }
#pragma GCC unroll 12
    for (int r = 0; r < mr; r++) {
        _mm512_store_si512((__m512i *)(acc + r * NR), c0[r]);
        _mm512_store_si512((__m512i *)(acc + r * NR + 16), c1[r]);
    }
}

static QRR__VNNI void kernel_i8_any(int mr, int steps, const uint8_t *xq, size_t ldq,
                                    const uint8_t *buf, int32_t *acc, int init)
{
    switch (mr) {
    case 12: kernel_i8(12, steps, xq, ldq, buf, acc, init); break;
    case 11: kernel_i8(11, steps, xq, ldq, buf, acc, init); break;
    case 10: kernel_i8(10, steps, xq, ldq, buf, acc, init); break;
    case 9: kernel_i8(9, steps, xq, ldq, buf, acc, init); break;
    case 8: kernel_i8(8, steps, xq, ldq, buf, acc, init); break;
    case 7: kernel_i8(7, steps, xq, ldq, buf, acc, init); break;
    case 6: kernel_i8(6, steps, xq, ldq, buf, acc, init); break;
    case 5: kernel_i8(5, steps, xq, ldq, buf, acc, init); break;
    case 4: kernel_i8(4, steps, xq, ldq, buf, acc, init); break;
    case 3: kernel_i8(3, steps, xq, ldq, buf, acc, init); break;
    case 2: kernel_i8(2, steps, xq, ldq, buf, acc, init); break;
    default: kernel_i8(1, steps, xq, ldq, buf, acc, init); break;
    }
}

/* R rows x C columns over the whole depth from W rows directly (a handful of rows). */
static ALWAYS_INLINE QRR__VNNI void dot_i8(int R, int C, const qrr__gemm_args *a, int i0, int j0)
{
    const qrr_cpu_weight *w = a->w;
    int k = w->k, bsz = w->block > 0 ? w->block : k, nb = k / bsz;
    const int8_t *wd = w->data;
    const __m512i ones = _mm512_set1_epi8(1);
    float fs[DOT_ROWS][4] = {{0}};
    int32_t last[DOT_ROWS][4] = {{0}};
    for (int b = 0; b < nb; b++) {
        __m512i acc[DOT_ROWS][4], wsa[4];
#pragma GCC unroll 4
        for (int c = 0; c < C; c++) {
            wsa[c] = _mm512_setzero_si512();
#pragma GCC unroll 4
            for (int r = 0; r < R; r++) acc[r][c] = _mm512_setzero_si512();
        }
        for (int kk = b * bsz; kk < (b + 1) * bsz; kk += 64) {
            int cnt = (b + 1) * bsz - kk < 64 ? (b + 1) * bsz - kk : 64;
            __m512i xv[DOT_ROWS];
#pragma GCC unroll 4
            for (int r = 0; r < R; r++)
                xv[r] = _mm512_loadu_si512((const __m512i *)(a->xq + (size_t)(i0 + r) * a->ldq + kk));
#pragma GCC unroll 4
            for (int c = 0; c < C; c++) {
                __m512i wv = load_w64(wd + (size_t)(j0 + c) * k + kk, cnt);
                wsa[c] = _mm512_dpbusd_epi32(wsa[c], ones, wv);
#pragma GCC unroll 4
                for (int r = 0; r < R; r++) acc[r][c] = _mm512_dpbusd_epi32(acc[r][c], xv[r], wv);
            }
        }
#pragma GCC unroll 4
        for (int c = 0; c < C; c++) {
            int32_t corr = 128 * _mm512_reduce_add_epi32(wsa[c]);
            float ws = w->scale[(size_t)(j0 + c) * nb + b];
#pragma GCC unroll 4
            for (int r = 0; r < R; r++) {
                int32_t t = _mm512_reduce_add_epi32(acc[r][c]) - corr;
                if (nb == 1) last[r][c] = t;
                else fs[r][c] += (float)t * ws; /* from 0, as qrr__i8_finish sums */
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

static QRR__VNNI void dot_rows_i8(int R, const qrr__gemm_args *a, int i0, int j0, int j1)
{
    int j = j0;
    for (; j + 4 <= j1; j += 4) {
        switch (R) {
        case 4: dot_i8(4, 4, a, i0, j); break;
        case 3: dot_i8(3, 4, a, i0, j); break;
        case 2: dot_i8(2, 4, a, i0, j); break;
        default: dot_i8(1, 4, a, i0, j); break;
        }
    }
    for (; j < j1; j++) {
        switch (R) {
        case 4: dot_i8(4, 1, a, i0, j); break;
        case 3: dot_i8(3, 1, a, i0, j); break;
        case 2: dot_i8(2, 1, a, i0, j); break;
        default: dot_i8(1, 1, a, i0, j); break;
        }
    }
}

QRR__VNNI void qrr__gemm_i8_vnni(const qrr__gemm_args *a, int i0, int i1, int j0, int j1)
{
    const qrr_cpu_weight *w = a->w;
    int k = w->k;
    int per_block = w->block > 0 && w->block < k;
    int bsz = per_block ? w->block : k, nb = k / bsz;
    /* the weight packed once (per channel only), or each panel packed here as it is read */
    const uint8_t *prepacked = per_block ? NULL : w->packed;
    if ((i1 - i0 <= DOT_ROWS && !prepacked) || (per_block && bsz > KCI)) {
        for (int i = i0; i < i1; i += DOT_ROWS)
            dot_rows_i8(i1 - i < DOT_ROWS ? i1 - i : DOT_ROWS, a, i, j0, j1);
        return;
    }
    /* chunk: KCI deep, or a whole number of blocks */
    int chunk = per_block ? KCI / bsz * bsz : KCI;
    _Alignas(64) uint8_t buf[KCI * NR];
    _Alignas(64) int32_t itile[MCI * NR];
    _Alignas(64) float ftile[MCI * NR];
    _Alignas(64) int32_t wsum_buf[(KCI / 4) * NR]; /* per block of the chunk, or one row */
    const size_t panel_bytes = qrr__i8_panel_bytes(k);
    const int32_t *packed_sums =
        prepacked ? (const int32_t *)(prepacked + qrr__i8_sums_offset(w->n, k)) : NULL;
    for (int ic = i0; ic < i1; ic += MCI) {
        int ie = ic + MCI < i1 ? ic + MCI : i1;
        for (int jp = j0; jp < j1; jp += NR) {
            int nr = j1 - jp < NR ? j1 - jp : NR;
            const int32_t *wsum = prepacked ? packed_sums + (size_t)(jp / NR) * NR : wsum_buf;
            if (!per_block && !prepacked) memset(wsum_buf, 0, sizeof(int32_t) * NR);
            for (int k0 = 0; k0 < k; k0 += chunk) {
                int kc = k - k0 < chunk ? k - k0 : chunk;
                int nbc = per_block ? kc / bsz : 1;
                if (per_block) memset(wsum_buf, 0, sizeof(int32_t) * NR * (size_t)nbc);
                const uint8_t *panel = buf;
                if (prepacked)
                    panel = prepacked + (size_t)(jp / NR) * panel_bytes + (size_t)k0 * NR;
                else
                    pack_i8(w, jp, nr, k0, kc, buf, wsum_buf, per_block ? bsz : KCI + 4);
                /* the panel packed next, in this loop's order (none after the last; a weight
                 * packed once is read as one run of bytes, which the hardware prefetcher follows) */
                const char *next = NULL;
                int nnr = 0, nkc = 0;
                if (!prepacked) {
                    int nj = jp, nk0 = k0 + chunk;
                    if (nk0 >= k) {
                        nk0 = 0;
                        nj = jp + NR < j1 ? jp + NR : ie < i1 ? j0 : j1; /* j1: none */
                    }
                    nnr = j1 - nj < NR ? j1 - nj : NR;
                    nkc = k - nk0 < chunk ? k - nk0 : chunk;
                    if (nj < j1) next = (const char *)w->data + (size_t)nj * (size_t)k + (size_t)nk0;
                }
                int ng = (ie - ic + MRI - 1) / MRI; /* near-equal row groups */
                for (int gi = 0; gi < ng; gi++) {
                    if (next) prefetch_part(next, (size_t)k, nnr, (size_t)nkc, gi, ng);
                    int ip = ic + (ie - ic) * gi / ng;
                    int mr = ic + (ie - ic) * (gi + 1) / ng - ip;
                    const uint8_t *xq = a->xq + (size_t)ip * a->ldq + k0;
                    int32_t *acc = itile + (ip - ic) * NR;
                    float *facc = ftile + (ip - ic) * NR;
                    if (!per_block) {
                        kernel_i8_any(mr, (kc + 3) / 4, xq, a->ldq, panel, acc, k0 == 0);
                        continue;
                    }
                    for (int b = 0; b < nbc; b++) {
                        kernel_i8_any(mr, bsz / 4, xq + b * bsz, a->ldq, panel + (size_t)b * bsz * NR, acc, 1);
                        int gb = (k0 + b * bsz) / bsz; /* block index in the row */
                        __m512i cr0 = _mm512_slli_epi32(_mm512_loadu_si512((const __m512i *)(wsum + b * NR)), 7);
                        __m512i cr1 = _mm512_slli_epi32(_mm512_loadu_si512((const __m512i *)(wsum + b * NR + 16)), 7);
                        _Alignas(64) float wsb[NR];
                        for (int jj = 0; jj < NR; jj++)
                            wsb[jj] = jj < nr ? w->scale[(size_t)(jp + jj) * nb + gb] : 0.0f;
                        __m512 s0 = _mm512_load_ps(wsb), s1 = _mm512_load_ps(wsb + 16);
                        for (int r = 0; r < mr; r++) {
                            __m512 p0 = _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_sub_epi32(_mm512_load_si512((const __m512i *)(acc + r * NR)), cr0)), s0);
                            __m512 p1 = _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_sub_epi32(_mm512_load_si512((const __m512i *)(acc + r * NR + 16)), cr1)), s1);
                            if (gb == 0) { /* 0 + p, as qrr__i8_finish sums (-0 becomes 0) */
                                _mm512_store_ps(facc + r * NR, _mm512_add_ps(_mm512_setzero_ps(), p0));
                                _mm512_store_ps(facc + r * NR + 16, _mm512_add_ps(_mm512_setzero_ps(), p1));
                            } else {
                                _mm512_store_ps(facc + r * NR, _mm512_add_ps(_mm512_load_ps(facc + r * NR), p0));
                                _mm512_store_ps(facc + r * NR + 16, _mm512_add_ps(_mm512_load_ps(facc + r * NR + 16), p1));
                            }
                        }
                    }
                }
            }
            /* finish: the fp32 steps of qrr__i8_finish, then store or add into Y */
            __mmask16 m0 = nr >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << nr) - 1u);
            __mmask16 m1 = nr >= 32 ? (__mmask16)0xffff : nr <= 16 ? 0 : (__mmask16)((1u << (nr - 16)) - 1u);
            __m512 ws0 = _mm512_setzero_ps(), ws1 = ws0;
            __m512i cr0 = _mm512_setzero_si512(), cr1 = cr0;
            if (!per_block) {
                ws0 = _mm512_maskz_loadu_ps(m0, w->scale + jp);
                ws1 = _mm512_maskz_loadu_ps(m1, w->scale + jp + 16);
                cr0 = _mm512_slli_epi32(_mm512_loadu_si512((const __m512i *)wsum), 7);
                cr1 = _mm512_slli_epi32(_mm512_loadu_si512((const __m512i *)(wsum + 16)), 7);
            }
            for (int i = ic; i < ie; i++) {
                __m512 xs = _mm512_set1_ps(a->xs[i]);
                __m512 v0, v1;
                if (per_block) {
                    v0 = _mm512_mul_ps(_mm512_load_ps(ftile + (i - ic) * NR), xs);
                    v1 = _mm512_mul_ps(_mm512_load_ps(ftile + (i - ic) * NR + 16), xs);
                } else {
                    const int32_t *acc = itile + (i - ic) * NR;
                    v0 = _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_sub_epi32(_mm512_load_si512((const __m512i *)acc), cr0)), _mm512_mul_ps(xs, ws0));
                    v1 = _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_sub_epi32(_mm512_load_si512((const __m512i *)(acc + 16)), cr1)), _mm512_mul_ps(xs, ws1));
                }
                float *yo = a->y + (size_t)i * a->ldy + jp;
                if (a->accumulate) {
                    v0 = _mm512_add_ps(_mm512_maskz_loadu_ps(m0, yo), v0);
                    v1 = _mm512_add_ps(_mm512_maskz_loadu_ps(m1, yo + 16), v1);
                }
                _mm512_mask_storeu_ps(yo, m0, v0);
                _mm512_mask_storeu_ps(yo + 16, m1, v1);
            }
        }
    }
}

/* One row of X quantized by the rule of cpu_internal.h (vector round-to-nearest-even is the
 * same rounding nearbyintf does), stored as q + offset; zeros (q = 0) from k up to ldq.
 * Returns the row's scale. Rows with a non-finite value go through the scalar rule. */
QRR__AVX512 float qrr__quant_row_avx512(const float *x, int k, uint8_t *q, size_t ldq, int offset)
{
    __m512 mx = _mm512_setzero_ps();
    __mmask16 nan = 0; /* max_ps drops NaN: look for them too */
    int kk = 0;
    for (; kk + 16 <= k; kk += 16) {
        __m512 v = _mm512_loadu_ps(x + kk);
        nan |= _mm512_cmp_ps_mask(v, v, _CMP_UNORD_Q);
        mx = _mm512_max_ps(mx, _mm512_abs_ps(v));
    }
    float amax = _mm512_reduce_max_ps(mx), tail = qrr__absmax(x + kk, k - kk);
    amax = tail > amax ? tail : amax;
    int finite = amax <= 3.402823466e38f && tail == tail && !nan;
    float inv, scale = qrr__quant_scale(finite ? amax : NAN, &inv);
    if (!finite || scale == 0.0f) {
        memset(q, offset, ldq);
        return scale;
    }
    __m512 vi = _mm512_set1_ps(inv), lo = _mm512_set1_ps(-127.0f), hi = _mm512_set1_ps(127.0f);
    __m512i off = _mm512_set1_epi32(offset);
    for (kk = 0; kk + 16 <= k; kk += 16) {
        __m512 v = _mm512_min_ps(_mm512_max_ps(_mm512_mul_ps(_mm512_loadu_ps(x + kk), vi), lo), hi);
        __m512i iv = _mm512_add_epi32(_mm512_cvtps_epi32(v), off); /* MXCSR default: RNE */
        _mm_storeu_si128((__m128i *)(q + kk), _mm512_cvtepi32_epi8(iv));
    }
    for (; kk < k; kk++) q[kk] = (uint8_t)(qrr__quant_one(x[kk], inv) + offset);
    memset(q + k, offset, ldq - (size_t)k);
    return scale;
}
