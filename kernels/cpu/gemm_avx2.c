/* gemm_avx2.c — the AVX2 (+FMA, F16C) GEMM versions, for x86-64 CPUs without AVX-512.
 * fp weights: panels of W converted to fp32 and transposed once per call, against MRF x 16
 * register tiles (up to 4 rows of X: dot products along k, W converted on the fly). int8
 * weights: X quantized to int16 and multiplied with
 * vpmaddwd (exact int32 sums: AVX2 has no int8 dot product that cannot saturate); W read from
 * its packed copy (cpu_internal.h; per-channel or per-block scales) by a register-blocked
 * kernel of MRI rows x 8 columns, or, where there is none, by dot products of W rows
 * sign-extended on the fly. */
#include <immintrin.h>
#include "cpu_internal.h"
#include "avx2_transpose.h"

#define ROWS 4
#define ALWAYS_INLINE inline __attribute__((always_inline))

/* An empty asm that takes two vectors in registers and hands them back: at the end of a
 * loop step it keeps GCC from moving accumulators between registers each step (in the int8
 * tile GCC 12 copied one per add and spilled one to the stack: 35 instructions a step where
 * 27 do now, one copy left; 1.2x slower). */
#define pin_in_register(u, v) __asm__("" : "+x"(u), "+x"(v))

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

/* 16 int16 of a quantized X row (its zeros past k reach a multiple of 64 and beyond). */
static ALWAYS_INLINE QRR__AVX2 __m256i load_x16(const qrr__gemm_args *a, int row, int kk)
{
    return _mm256_loadu_si256((const __m256i *)(a->xq + (size_t)row * a->ldq + (size_t)kk * 2));
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
                xv[r] = load_x16(a, i0 + r, kk);
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

#define DISPATCH(F, R, C, a, i, j)                                                          \
    switch (R) {                                                                             \
    case 4: F(4, C, a, i, j); break;                                                         \
    case 3: F(3, C, a, i, j); break;                                                         \
    case 2: F(2, C, a, i, j); break;                                                         \
    default: F(1, C, a, i, j); break;                                                        \
    }

/* ---- fp weights, more than a handful of rows: W panels converted once per call ---- */

#define MRF 6   /* rows of X per register block: 12 accumulators, 2 W vectors, 1 X */
#define NRF 16  /* columns of W per panel (two vectors) */
#define KCF 256 /* depth of one panel: 16 KiB of fp32, L1-resident */
#define MCF 256 /* rows of X per pass over W (keeps X's slice in L2) */

/* buf[kk][jj] = W[j0 + jj][k0 + kk] as fp32 for kk < kc, jj < NRF (zero for jj >= nr). */
static QRR__AVX2 void pack_fp(const qrr_cpu_weight *w, int j0, int nr, int k0, int kc, float *buf)
{
    size_t k = (size_t)w->k;
    for (int g = 0; g < NRF; g += 8) {
        for (int kb = 0; kb < kc; kb += 8) {
            int cnt = kc - kb < 8 ? kc - kb : 8;
            __m256 r[8];
            for (int i = 0; i < 8; i++)
                r[i] = g + i < nr ? load_w8(w->data, w->dtype, (size_t)(j0 + g + i) * k + (size_t)(k0 + kb), cnt)
                                  : _mm256_setzero_ps();
            qrr__transpose8x8(r);
            for (int i = 0; i < cnt; i++) _mm256_store_ps(buf + (size_t)(kb + i) * NRF + g, r[i]);
        }
    }
}

/* Y[0..mr, 0..nr) (+)= X[0..mr, 0..kc) . buf; init: start from zero instead of Y. Each KC
 * slice is summed from zero, then added (smaller rounding error). */
static ALWAYS_INLINE QRR__AVX2 void kernel_fp(int mr, int kc, const float *x, int ldx,
                                              const float *buf, float *y, int ldy, int init, int nr)
{
    __m256 c0[MRF], c1[MRF];
#pragma GCC unroll 6
    for (int r = 0; r < mr; r++) c0[r] = c1[r] = _mm256_setzero_ps();
    for (int kk = 0; kk < kc; kk++) {
        __m256 b0 = _mm256_load_ps(buf + (size_t)kk * NRF);
        __m256 b1 = _mm256_load_ps(buf + (size_t)kk * NRF + 8);
#pragma GCC unroll 6
        for (int r = 0; r < mr; r++) {
            __m256 xv = _mm256_broadcast_ss(x + (size_t)r * ldx + kk);
            c0[r] = _mm256_fmadd_ps(xv, b0, c0[r]);
            c1[r] = _mm256_fmadd_ps(xv, b1, c1[r]);
        }
    }
#pragma GCC unroll 6
    for (int r = 0; r < mr; r++) {
        float *yo = y + (size_t)r * ldy;
        if (nr == NRF) {
            if (!init) {
                c0[r] = _mm256_add_ps(_mm256_loadu_ps(yo), c0[r]);
                c1[r] = _mm256_add_ps(_mm256_loadu_ps(yo + 8), c1[r]);
            }
            _mm256_storeu_ps(yo, c0[r]);
            _mm256_storeu_ps(yo + 8, c1[r]);
            continue;
        }
        _Alignas(32) float o[NRF];
        _mm256_store_ps(o, c0[r]);
        _mm256_store_ps(o + 8, c1[r]);
        for (int c = 0; c < nr; c++) yo[c] = init ? o[c] : yo[c] + o[c];
    }
}

static QRR__AVX2 void kernel_fp_any(int mr, int kc, const float *x, int ldx, const float *buf,
                                    float *y, int ldy, int init, int nr)
{
    switch (mr) {
    case 6: kernel_fp(6, kc, x, ldx, buf, y, ldy, init, nr); break;
    case 5: kernel_fp(5, kc, x, ldx, buf, y, ldy, init, nr); break;
    case 4: kernel_fp(4, kc, x, ldx, buf, y, ldy, init, nr); break;
    case 3: kernel_fp(3, kc, x, ldx, buf, y, ldy, init, nr); break;
    case 2: kernel_fp(2, kc, x, ldx, buf, y, ldy, init, nr); break;
    default: kernel_fp(1, kc, x, ldx, buf, y, ldy, init, nr); break;
    }
}

QRR__AVX2 void qrr__gemm_fp_avx2(const qrr__gemm_args *a, int i0, int i1, int j0, int j1)
{
    if (i1 - i0 <= ROWS) { /* a handful of rows: dot products, W converted on the fly */
        int j = j0;
        for (; j + 4 <= j1; j += 4) DISPATCH(dot_fp, i1 - i0, 4, a, i0, j)
        for (; j < j1; j++) DISPATCH(dot_fp, i1 - i0, 1, a, i0, j)
        return;
    }
    const int k = a->w->k;
    _Alignas(32) float buf[KCF * NRF];
    for (int ic = i0; ic < i1; ic += MCF) {
        int ie = ic + MCF < i1 ? ic + MCF : i1;
        for (int k0 = 0; k0 < k; k0 += KCF) {
            int kc = k - k0 < KCF ? k - k0 : KCF;
            for (int jp = j0; jp < j1; jp += NRF) {
                int nr = j1 - jp < NRF ? j1 - jp : NRF;
                pack_fp(a->w, jp, nr, k0, kc, buf);
                int init = k0 == 0 && !a->accumulate;
                for (int ip = ic; ip < ie; ip += MRF)
                    kernel_fp_any(ie - ip < MRF ? ie - ip : MRF, kc, a->x + (size_t)ip * a->ldx + k0,
                                  a->ldx, buf, a->y + (size_t)ip * a->ldy + jp, a->ldy, init, nr);
            }
        }
    }
}

/* ---- int8 weights read from the packed copy ---- */

#define MRI 4   /* rows of X per register block: 8 accumulators, 2 W vectors, 4 X (6 rows
                 * spilled accumulators to the stack) */
#define MCI 128 /* rows of X per pass over W (their int16 rows stay in L2) */

/* One block's int32 sums of an 8-column tile: c0 holds columns 0..3, c1 columns 4..7, each
 * column's two pair sums in adjacent lanes; added together, columns 0..7 in order. */
static ALWAYS_INLINE QRR__AVX2 __m256 column_sums(__m256i c0, __m256i c1)
{
    return _mm256_cvtepi32_ps(_mm256_permute4x64_epi64(_mm256_hadd_epi32(c0, c1), 0xd8));
}

/* Y[i0 .. i0+R)[j .. j+nc) (+)= X . the 8 columns starting at `cols` of a packed panel,
 * nc <= 8. Each step takes 4 deep: two groups of 4 columns x 4 bytes, sign-extended to
 * int16, against X's 4 values broadcast; vpmaddwd leaves each column's two pair sums in
 * adjacent lanes, added together at the end. PER_BLOCK (a scale per `block` inputs): the
 * integer sums start again at each block, whose scaled sum is added to a float one, in the
 * order of the reference (qrr__i8_finish). */
static ALWAYS_INLINE QRR__AVX2 void tile_i8(int R, int PER_BLOCK, const qrr__gemm_args *a,
                                            int i0, const uint8_t *cols, int steps, int j, int nc)
{
    const qrr_cpu_weight *w = a->w;
    const int nb = PER_BLOCK ? w->k / w->block : 1, block_steps = PER_BLOCK ? w->block / 4 : steps;
    const uint8_t *x = a->xq + (size_t)i0 * a->ldq;
    /* the 8 columns' scales of block b sit nb apart: gathered, past nc masked out */
    const __m256i scale_at = _mm256_mullo_epi32(_mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7),
                                                _mm256_set1_epi32(nb));
    const __m256 in_tile = _mm256_castsi256_ps(tail_mask32(nc));
    __m256i c0[MRI], c1[MRI];
    __m256 f[MRI];
#pragma GCC unroll 4
    for (int r = 0; r < R; r++) f[r] = _mm256_setzero_ps();
    for (int b = 0; b < nb; b++) {
#pragma GCC unroll 4
        for (int r = 0; r < R; r++) c0[r] = c1[r] = _mm256_setzero_si256();
        for (int s = b * block_steps; s < (b + 1) * block_steps; s++) {
            const uint8_t *wp = cols + (size_t)s * QRR__I8_NR * 4;
            __m256i w0 = _mm256_cvtepi8_epi16(_mm_load_si128((const __m128i *)wp));
            __m256i w1 = _mm256_cvtepi8_epi16(_mm_load_si128((const __m128i *)(wp + 16)));
#pragma GCC unroll 4
            for (int r = 0; r < R; r++) {
                long long x4;
                memcpy(&x4, x + (size_t)r * a->ldq + (size_t)s * 8, 8);
                __m256i xv = _mm256_set1_epi64x(x4);
                c0[r] = _mm256_add_epi32(c0[r], _mm256_madd_epi16(xv, w0));
                c1[r] = _mm256_add_epi32(c1[r], _mm256_madd_epi16(xv, w1));
            }
#pragma GCC unroll 4
            for (int r = 0; r < R; r++) pin_in_register(c0[r], c1[r]);
        }
        if (!PER_BLOCK) break;
        __m256 block_scale = _mm256_mask_i32gather_ps(
            _mm256_setzero_ps(), w->scale + (size_t)j * nb + b, scale_at, in_tile, 4);
#pragma GCC unroll 4
        for (int r = 0; r < R; r++)
            f[r] = _mm256_add_ps(f[r], _mm256_mul_ps(column_sums(c0[r], c1[r]), block_scale));
    }
    _Alignas(32) float ws[8] = {0};
    if (!PER_BLOCK) memcpy(ws, w->scale + j, sizeof(float) * (size_t)nc);
    const __m256 wsv = _mm256_load_ps(ws);
#pragma GCC unroll 4
    for (int r = 0; r < R; r++) {
        __m256 xs = _mm256_set1_ps(a->xs[i0 + r]);
        __m256 v = PER_BLOCK ? _mm256_mul_ps(f[r], xs)
                             : _mm256_mul_ps(column_sums(c0[r], c1[r]), _mm256_mul_ps(xs, wsv));
        float *yo = a->y + (size_t)(i0 + r) * a->ldy + j;
        if (nc == 8) {
            if (a->accumulate) v = _mm256_add_ps(_mm256_loadu_ps(yo), v);
            _mm256_storeu_ps(yo, v);
        } else {
            _Alignas(32) float o[8];
            _mm256_store_ps(o, v);
            for (int c = 0; c < nc; c++) yo[c] = a->accumulate ? yo[c] + o[c] : o[c];
        }
    }
}

#define TILE_I8_ROWS(P)                                                                      \
    switch (R) {                                                                             \
    case 4: tile_i8(4, P, a, i0, cols, steps, j, nc); break;                                 \
    case 3: tile_i8(3, P, a, i0, cols, steps, j, nc); break;                                 \
    case 2: tile_i8(2, P, a, i0, cols, steps, j, nc); break;                                 \
    default: tile_i8(1, P, a, i0, cols, steps, j, nc); break;                                \
    }

static QRR__AVX2 void tile_i8_any(int R, const qrr__gemm_args *a, int i0, const uint8_t *cols,
                                  int steps, int j, int nc)
{
    if (a->w->block > 0 && a->w->block < a->w->k) TILE_I8_ROWS(1)
    else TILE_I8_ROWS(0)
}

static QRR__AVX2 void gemm_i8_packed(const qrr__gemm_args *a, int i0, int i1, int j0, int j1)
{
    const qrr_cpu_weight *w = a->w;
    const int steps = (w->k + 3) / 4;
    const size_t panel_bytes = qrr__i8_panel_bytes(w->k);
    for (int ic = i0; ic < i1; ic += MCI) {
        int ie = ic + MCI < i1 ? ic + MCI : i1;
        for (int jp = j0; jp < j1; jp += QRR__I8_NR) {
            const uint8_t *panel = (const uint8_t *)w->packed + (size_t)(jp / QRR__I8_NR) * panel_bytes;
            for (int i = ic; i < ie; i += MRI)
                for (int c = 0; c < QRR__I8_NR && jp + c < j1; c += 8)
                    tile_i8_any(ie - i < MRI ? ie - i : MRI, a, i, panel + c * 4, steps, jp + c,
                                j1 - jp - c < 8 ? j1 - jp - c : 8);
        }
    }
}

/* The packed layout of cpu_internal.h, as qrr__i8_pack_portable writes it: 16 bytes (4
 * steps) of 4 rows at a time, transposed as 4 x 4 groups of 4 bytes, so every store is one
 * step's run of 4 columns; each row's sum from vpsadbw of its bytes offset to unsigned. */
QRR__AVX2 void qrr__i8_pack_avx2(const qrr_cpu_weight *w, uint8_t *mem)
{
    const int n = w->n, k = w->k, steps = (k + 3) / 4, wide_steps = k / 16 * 4;
    const size_t panel_bytes = qrr__i8_panel_bytes(k), step_bytes = QRR__I8_NR * 4;
    int32_t *sums = (int32_t *)(mem + qrr__i8_sums_offset(n, k));
    const __m128i flip = _mm_set1_epi8((char)0x80);
    static const int8_t zeros[16];
    for (int jp = 0; jp < n; jp += QRR__I8_NR) {
        uint8_t *panel = mem + (size_t)(jp / QRR__I8_NR) * panel_bytes;
        for (int c = 0; c < QRR__I8_NR; c += 4) {
            const int8_t *row[4];
            size_t stride[4]; /* 0 for the last panel's columns past n: zeros */
            __m128i sad[4];
            for (int r = 0; r < 4; r++) {
                int live = jp + c + r < n;
                row[r] = live ? (const int8_t *)w->data + (size_t)(jp + c + r) * (size_t)k : zeros;
                stride[r] = live ? 16 : 0;
                sad[r] = _mm_setzero_si128();
            }
            uint8_t *out = panel + (size_t)c * 4;
            for (int s = 0; s < wide_steps; s += 4) {
                __m128i v[4];
                for (int r = 0; r < 4; r++) {
                    v[r] = _mm_loadu_si128((const __m128i *)(row[r] + (size_t)(s / 4) * stride[r]));
                    sad[r] = _mm_add_epi64(sad[r], _mm_sad_epu8(_mm_xor_si128(v[r], flip),
                                                                _mm_setzero_si128()));
                }
                __m128i lo01 = _mm_unpacklo_epi32(v[0], v[1]), hi01 = _mm_unpackhi_epi32(v[0], v[1]);
                __m128i lo23 = _mm_unpacklo_epi32(v[2], v[3]), hi23 = _mm_unpackhi_epi32(v[2], v[3]);
                uint8_t *o = out + (size_t)s * step_bytes;
                _mm_storeu_si128((__m128i *)o, _mm_unpacklo_epi64(lo01, lo23));
                _mm_storeu_si128((__m128i *)(o + step_bytes), _mm_unpackhi_epi64(lo01, lo23));
                _mm_storeu_si128((__m128i *)(o + 2 * step_bytes), _mm_unpacklo_epi64(hi01, hi23));
                _mm_storeu_si128((__m128i *)(o + 3 * step_bytes), _mm_unpackhi_epi64(hi01, hi23));
            }
            for (int r = 0; r < 4; r++) {
                int live = stride[r] != 0;
                /* the 16-byte chunks' sum: vpsadbw added each byte plus 128 */
                int64_t sum = _mm_cvtsi128_si64(sad[r]) + _mm_extract_epi64(sad[r], 1) -
                              128 * (int64_t)wide_steps * 4;
                for (int s = wide_steps; s < steps; s++) { /* the rest, zeros past k */
                    uint8_t group[4] = {0};
                    int have = k - s * 4 < 4 ? k - s * 4 : 4;
                    if (live) memcpy(group, row[r] + (size_t)s * 4, (size_t)have);
                    for (int b = 0; b < have; b++) sum += (int8_t)group[b];
                    memcpy(out + (size_t)s * step_bytes + (size_t)r * 4, group, 4);
                }
                sums[jp + c + r] = live ? (int32_t)sum : 0;
            }
        }
    }
}

QRR__AVX2 void qrr__gemm_i8_avx2(const qrr__gemm_args *a, int i0, int i1, int j0, int j1)
{
    const qrr_cpu_weight *w = a->w;
    if (w->packed) {
        gemm_i8_packed(a, i0, i1, j0, j1);
        return;
    }
    for (int i = i0; i < i1; i += ROWS) {
        int R = i1 - i < ROWS ? i1 - i : ROWS, j = j0;
        for (; j + 4 <= j1; j += 4) DISPATCH(dot_i8, R, 4, a, i, j)
        for (; j < j1; j++) DISPATCH(dot_i8, R, 1, a, i, j)
    }
}

/* One row of X quantized by the rule of cpu_internal.h to int16 (vector round-to-nearest-even
 * is the rounding nearbyintf does), zeros from k up to ldq values. Returns the row's scale. */
QRR__AVX2 float qrr__quant_row_avx2(const float *x, int k, int16_t *q, size_t ldq)
{
    const __m256 sign = _mm256_set1_ps(-0.0f);
    __m256 mx = _mm256_setzero_ps(), nan = _mm256_setzero_ps(); /* max_ps drops NaN */
    int kk = 0;
    for (; kk + 8 <= k; kk += 8) {
        __m256 v = _mm256_loadu_ps(x + kk);
        nan = _mm256_or_ps(nan, _mm256_cmp_ps(v, v, _CMP_UNORD_Q));
        mx = _mm256_max_ps(mx, _mm256_andnot_ps(sign, v));
    }
    _Alignas(32) float m8[8];
    _mm256_store_ps(m8, mx);
    float amax = qrr__absmax(x + kk, k - kk);
    int finite = amax == amax && !_mm256_movemask_ps(nan);
    for (int i = 0; i < 8; i++) amax = m8[i] > amax ? m8[i] : amax;
    finite = finite && amax <= 3.402823466e38f;
    float inv, scale = qrr__quant_scale(finite ? amax : NAN, &inv);
    if (!finite || scale == 0.0f) {
        memset(q, 0, ldq * sizeof *q);
        return scale;
    }
    const __m256 vi = _mm256_set1_ps(inv), lo = _mm256_set1_ps(-127.0f), hi = _mm256_set1_ps(127.0f);
    for (kk = 0; kk + 8 <= k; kk += 8) {
        __m256 v = _mm256_min_ps(_mm256_max_ps(_mm256_mul_ps(_mm256_loadu_ps(x + kk), vi), lo), hi);
        __m256i iv = _mm256_cvtps_epi32(v); /* MXCSR default: RNE */
        _mm_storeu_si128((__m128i *)(q + kk), _mm_packs_epi32(_mm256_castsi256_si128(iv),
                                                              _mm256_extracti128_si256(iv, 1)));
    }
    for (; kk < k; kk++) q[kk] = qrr__quant_one(x[kk], inv);
    memset(q + k, 0, (ldq - (size_t)k) * sizeof *q);
    return scale;
}
