/* gemm_neon.c — the NEON GEMM versions (AArch64). fp32/f16/bf16 weights: a W panel of NR
 * columns x KC depth is converted to fp32 (f16 by fcvtl, bf16 by a shift) and transposed once
 * into [KC][NR], and an MR x NR register-blocked kernel runs over every MR rows of X; a
 * handful of rows instead use dot products that convert W on the fly. int8 weights: blocks of
 * IR rows x IC columns of exact int32 dot products along k, read from W's rows a panel of
 * columns at a time, with sdot where the CPU has dot products and with widening multiplies
 * (smull/smlal into int16 pairs, sadalp into int32) where it has not; then the fp32 steps of
 * qrr__i8_finish. Also the activation row quantization. Stack per call: 16 KiB (fp). */
#include <arm_neon.h>
#include "cpu_internal.h"

#define MR 6         /* rows of X per fp register block (24 accumulators) */
#define NR 16        /* columns of W per fp panel (four vectors) */
#define KC 256       /* depth of one fp panel: 16 KiB */
#define MC 192       /* rows of X per pass over W (keeps X's slice in L2) */
#define DOT_ROWS 4   /* rows per dot-product block (fp and int8) */
#define DOT_MAX_M 4  /* fp: at most this many rows use dot products */
#define IC 4         /* int8: columns per dot-product block */
#define IPANEL 16    /* int8: columns whose rows of W stay in cache while X's rows pass */
#define IMC 64       /* int8: rows of X per pass over a panel */
#define ALWAYS_INLINE inline __attribute__((always_inline))

/* ---------------------------------------------------------------- fp weights */

/* 4 consecutive weights of one row to fp32 (exact). */
static ALWAYS_INLINE float32x4_t load_w4(const void *data, uint32_t dtype, size_t idx)
{
    switch (dtype) {
    case 0: return vld1q_f32((const float *)data + idx);
    case 1: return vcvt_f32_f16(vreinterpret_f16_u16(vld1_u16((const uint16_t *)data + idx)));
    default: return vreinterpretq_f32_u32(vshll_n_u16(vld1_u16((const uint16_t *)data + idx), 16));
    }
}

/* The same for cnt < 4 weights (zeros after), never reading past them. */
static ALWAYS_INLINE float32x4_t load_w4_part(const void *data, uint32_t dtype, size_t idx,
                                              int cnt)
{
    if (cnt >= 4) return load_w4(data, dtype, idx);
    size_t esz = dtype == 0 ? 4 : 2;
    _Alignas(16) unsigned char tmp[16] = {0};
    memcpy(tmp, (const unsigned char *)data + idx * esz, (size_t)cnt * esz);
    return load_w4(tmp, dtype, 0);
}

static ALWAYS_INLINE float32x4_t load_x4_part(const float *p, int cnt)
{
    if (cnt >= 4) return vld1q_f32(p);
    _Alignas(16) float tmp[4] = {0};
    memcpy(tmp, p, (size_t)cnt * sizeof(float));
    return vld1q_f32(tmp);
}

/* Rows i of r[0..3] become columns: out[t] = (r0[t], r1[t], r2[t], r3[t]). */
static ALWAYS_INLINE void transpose4(const float32x4_t r[4], float32x4_t out[4])
{
    float32x4_t t0 = vtrn1q_f32(r[0], r[1]), t1 = vtrn2q_f32(r[0], r[1]);
    float32x4_t t2 = vtrn1q_f32(r[2], r[3]), t3 = vtrn2q_f32(r[2], r[3]);
    out[0] = vreinterpretq_f32_f64(vtrn1q_f64(vreinterpretq_f64_f32(t0), vreinterpretq_f64_f32(t2)));
    out[1] = vreinterpretq_f32_f64(vtrn1q_f64(vreinterpretq_f64_f32(t1), vreinterpretq_f64_f32(t3)));
    out[2] = vreinterpretq_f32_f64(vtrn2q_f64(vreinterpretq_f64_f32(t0), vreinterpretq_f64_f32(t2)));
    out[3] = vreinterpretq_f32_f64(vtrn2q_f64(vreinterpretq_f64_f32(t1), vreinterpretq_f64_f32(t3)));
}

/* buf[kk][jj] = W[j0 + jj][k0 + kk] as fp32 for kk < kc, jj < NR (zero for jj >= nr). */
static void pack_fp(const qrr_cpu_weight *w, int j0, int nr, int k0, int kc, float *buf)
{
    size_t k = (size_t)w->k;
    for (int g = 0; g < NR; g += 4) {
        int rows = nr - g;
        for (int kb = 0; kb < kc; kb += 4) {
            int cnt = kc - kb < 4 ? kc - kb : 4;
            float32x4_t r[4], c[4];
            for (int i = 0; i < 4; i++)
                r[i] = i < rows ? load_w4_part(w->data, w->dtype, (size_t)(j0 + g + i) * k + (size_t)(k0 + kb), cnt)
                                : vdupq_n_f32(0.0f);
            transpose4(r, c);
            for (int t = 0; t < cnt; t++) vst1q_f32(buf + (size_t)(kb + t) * NR + g, c[t]);
        }
    }
}

/* y[0..cnt) = v (add: y + v), cnt <= 4. */
static ALWAYS_INLINE void store_part(float *y, float32x4_t v, int cnt, int add)
{
    if (cnt >= 4) {
        vst1q_f32(y, add ? vaddq_f32(vld1q_f32(y), v) : v);
        return;
    }
    _Alignas(16) float tmp[4];
    vst1q_f32(tmp, v);
    for (int i = 0; i < cnt; i++) y[i] = add ? y[i] + tmp[i] : tmp[i];
}

/* Y[0..mr, 0..nr) (+)= X[0..mr, 0..kc) . buf; init: start from zero instead of Y. */
static ALWAYS_INLINE void kernel_fp(int mr, int kc, const float *x, int ldx, const float *buf,
                                    float *y, int ldy, int init, int nr)
{
    float32x4_t acc[MR][4];
#pragma GCC unroll 6
    for (int r = 0; r < mr; r++)
#pragma GCC unroll 4
        for (int c = 0; c < 4; c++) acc[r][c] = vdupq_n_f32(0.0f);
    for (int kk = 0; kk < kc; kk++) {
        const float *b = buf + (size_t)kk * NR;
        float32x4_t b0 = vld1q_f32(b), b1 = vld1q_f32(b + 4), b2 = vld1q_f32(b + 8), b3 = vld1q_f32(b + 12);
#pragma GCC unroll 6
        for (int r = 0; r < mr; r++) {
            float32x4_t xa = vdupq_n_f32(x[(size_t)r * ldx + kk]);
            acc[r][0] = vfmaq_f32(acc[r][0], xa, b0);
            acc[r][1] = vfmaq_f32(acc[r][1], xa, b1);
            acc[r][2] = vfmaq_f32(acc[r][2], xa, b2);
            acc[r][3] = vfmaq_f32(acc[r][3], xa, b3);
        }
    }
    /* each KC slice summed from zero, then added to Y: smaller rounding error */
#pragma GCC unroll 6
    for (int r = 0; r < mr; r++)
#pragma GCC unroll 4
        for (int c = 0; c < 4; c++)
            if (4 * c < nr) store_part(y + (size_t)r * ldy + 4 * c, acc[r][c], nr - 4 * c, !init);
}

static void kernel_fp_any(int mr, int kc, const float *x, int ldx, const float *buf, float *y,
                          int ldy, int init, int nr)
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

/* R rows x C columns of dot products over the whole depth, W converted on the fly. */
static ALWAYS_INLINE void dot_fp(int R, int C, const qrr__gemm_args *a, int i0, int j0)
{
    const qrr_cpu_weight *w = a->w;
    size_t k = (size_t)w->k;
    float32x4_t acc[DOT_ROWS][4];
#pragma GCC unroll 4
    for (int r = 0; r < R; r++)
#pragma GCC unroll 4
        for (int c = 0; c < C; c++) acc[r][c] = vdupq_n_f32(0.0f);
    for (size_t kk = 0; kk < k; kk += 4) {
        int cnt = k - kk < 4 ? (int)(k - kk) : 4;
        float32x4_t xv[DOT_ROWS];
#pragma GCC unroll 4
        for (int r = 0; r < R; r++) xv[r] = load_x4_part(a->x + (size_t)(i0 + r) * a->ldx + kk, cnt);
#pragma GCC unroll 4
        for (int c = 0; c < C; c++) {
            float32x4_t wv = load_w4_part(w->data, w->dtype, (size_t)(j0 + c) * k + kk, cnt);
#pragma GCC unroll 4
            for (int r = 0; r < R; r++) acc[r][c] = vfmaq_f32(acc[r][c], xv[r], wv);
        }
    }
#pragma GCC unroll 4
    for (int r = 0; r < R; r++)
#pragma GCC unroll 4
        for (int c = 0; c < C; c++) {
            float v = vaddvq_f32(acc[r][c]);
            float *yo = a->y + (size_t)(i0 + r) * a->ldy + j0 + c;
            *yo = a->accumulate ? *yo + v : v;
        }
}

#define DISPATCH_ROWS(F, R, C, ...)                                                          \
    switch (R) {                                                                             \
    case 4: F(4, C, __VA_ARGS__); break;                                                     \
    case 3: F(3, C, __VA_ARGS__); break;                                                     \
    case 2: F(2, C, __VA_ARGS__); break;                                                     \
    default: F(1, C, __VA_ARGS__); break;                                                    \
    }

static void dot_rows_fp(int R, const qrr__gemm_args *a, int i0, int j0, int j1)
{
    int j = j0;
    for (; j + 4 <= j1; j += 4) DISPATCH_ROWS(dot_fp, R, 4, a, i0, j)
    for (; j < j1; j++) DISPATCH_ROWS(dot_fp, R, 1, a, i0, j)
}

void qrr__gemm_fp_neon(const qrr__gemm_args *a, int i0, int i1, int j0, int j1)
{
    const qrr_cpu_weight *w = a->w;
    int k = w->k;
    if (i1 - i0 <= DOT_MAX_M) {
        for (int i = i0; i < i1; i += DOT_ROWS)
            dot_rows_fp(i1 - i < DOT_ROWS ? i1 - i : DOT_ROWS, a, i, j0, j1);
        return;
    }
    _Alignas(16) float buf[KC * NR];
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

/* ---------------------------------------------------------------- int8 weights */

/* One 16-deep step of acc (4 int32 lanes whose sum is the dot product) += x . w, exact. */
typedef int32x4_t (*i8_step_fn)(int32x4_t acc, int8x16_t x, int8x16_t w);

static ALWAYS_INLINE QRR__DOTPROD int32x4_t step_sdot(int32x4_t acc, int8x16_t x, int8x16_t w)
{
    return vdotq_s32(acc, x, w);
}

/* |q| <= 127 and |w| <= 128: a pair of products stays within int16. */
static ALWAYS_INLINE int32x4_t step_smull(int32x4_t acc, int8x16_t x, int8x16_t w)
{
    int16x8_t p = vmull_s8(vget_low_s8(x), vget_low_s8(w));
    p = vmlal_high_s8(p, x, w);
    return vpadalq_s16(acc, p);
}

/* 16 int8 weights; cnt < 16 reads only that many (zeros after). */
static ALWAYS_INLINE int8x16_t load_i8x16(const int8_t *p, int cnt)
{
    if (cnt >= 16) return vld1q_s8(p);
    _Alignas(16) int8_t tmp[16] = {0};
    memcpy(tmp, p, (size_t)cnt);
    return vld1q_s8(tmp);
}

/* R rows x C columns over the whole depth, block by block: exact int32 sums, then the fp32
 * steps of qrr__i8_finish. X's rows are read 16 bytes at a time past a block's end (into the
 * next block, or the zeros after k): the weights there load as zeros. */
static ALWAYS_INLINE void dot_i8(int R, int C, i8_step_fn step, const qrr__gemm_args *a, int i0,
                                 int j0)
{
    const qrr_cpu_weight *w = a->w;
    int k = w->k, bsz = w->block > 0 ? w->block : k, nb = k / bsz;
    const int8_t *wd = w->data;
    const int8_t *xq = (const int8_t *)a->xq;
    float fs[DOT_ROWS][IC] = {{0}};
    int32_t last[DOT_ROWS][IC] = {{0}};
    for (int b = 0; b < nb; b++) {
        int32x4_t acc[DOT_ROWS][IC];
#pragma GCC unroll 4
        for (int r = 0; r < R; r++)
#pragma GCC unroll 4
            for (int c = 0; c < C; c++) acc[r][c] = vdupq_n_s32(0);
        for (int kk = b * bsz; kk < (b + 1) * bsz; kk += 16) {
            int cnt = (b + 1) * bsz - kk < 16 ? (b + 1) * bsz - kk : 16;
            int8x16_t xv[DOT_ROWS];
#pragma GCC unroll 4
            for (int r = 0; r < R; r++) xv[r] = vld1q_s8(xq + (size_t)(i0 + r) * a->ldq + kk);
#pragma GCC unroll 4
            for (int c = 0; c < C; c++) {
                int8x16_t wv = load_i8x16(wd + (size_t)(j0 + c) * k + kk, cnt);
#pragma GCC unroll 4
                for (int r = 0; r < R; r++) acc[r][c] = step(acc[r][c], xv[r], wv);
            }
        }
#pragma GCC unroll 4
        for (int c = 0; c < C; c++) {
            float ws = w->scale[(size_t)(j0 + c) * nb + b];
#pragma GCC unroll 4
            for (int r = 0; r < R; r++) {
                int32_t t = vaddvq_s32(acc[r][c]);
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

/* Rows [i0, i1) x columns [j0, j1): IMC rows at a time pass over IPANEL columns of W. */
static ALWAYS_INLINE void gemm_i8(i8_step_fn step, const qrr__gemm_args *a, int i0, int i1,
                                  int j0, int j1)
{
    for (int ic = i0; ic < i1; ic += IMC) {
        int ie = ic + IMC < i1 ? ic + IMC : i1;
        for (int jp = j0; jp < j1; jp += IPANEL) {
            int je = jp + IPANEL < j1 ? jp + IPANEL : j1;
            for (int i = ic; i < ie; i += DOT_ROWS) {
                int R = ie - i < DOT_ROWS ? ie - i : DOT_ROWS, j = jp;
                for (; j + IC <= je; j += IC) DISPATCH_ROWS(dot_i8, R, IC, step, a, i, j)
                for (; j < je; j++) DISPATCH_ROWS(dot_i8, R, 1, step, a, i, j)
            }
        }
    }
}

void qrr__gemm_i8_neon(const qrr__gemm_args *a, int i0, int i1, int j0, int j1)
{
    gemm_i8(step_smull, a, i0, i1, j0, j1);
}

QRR__DOTPROD void qrr__gemm_i8_dotprod(const qrr__gemm_args *a, int i0, int i1, int j0, int j1)
{
    gemm_i8(step_sdot, a, i0, i1, j0, j1);
}

/* One row of X quantized by the rule of cpu_internal.h (fcvtns rounds to nearest even, as
 * nearbyintf does), zeros from k up to ldq. Returns the row's scale. Rows with a non-finite
 * value go through the scalar rule. */
float qrr__quant_row_neon(const float *x, int k, int8_t *q, size_t ldq)
{
    float32x4_t mx = vdupq_n_f32(0.0f);
    uint32x4_t nan = vdupq_n_u32(0); /* NaN found by compare, whatever max makes of it */
    int kk = 0;
    for (; kk + 4 <= k; kk += 4) {
        float32x4_t v = vld1q_f32(x + kk);
        nan = vorrq_u32(nan, vmvnq_u32(vceqq_f32(v, v)));
        mx = vmaxq_f32(mx, vabsq_f32(v));
    }
    float amax = vmaxvq_f32(mx), tail = qrr__absmax(x + kk, k - kk);
    amax = tail > amax ? tail : amax;
    int finite = amax <= 3.402823466e38f && tail == tail && vmaxvq_u32(nan) == 0;
    float inv, scale = qrr__quant_scale(finite ? amax : NAN, &inv);
    if (!finite || scale == 0.0f) {
        memset(q, 0, ldq);
        return scale;
    }
    float32x4_t vi = vdupq_n_f32(inv), lo = vdupq_n_f32(-127.0f), hi = vdupq_n_f32(127.0f);
    for (kk = 0; kk + 8 <= k; kk += 8) {
        float32x4_t v0 = vminq_f32(vmaxq_f32(vmulq_f32(vld1q_f32(x + kk), vi), lo), hi);
        float32x4_t v1 = vminq_f32(vmaxq_f32(vmulq_f32(vld1q_f32(x + kk + 4), vi), lo), hi);
        int16x8_t h = vcombine_s16(vmovn_s32(vcvtnq_s32_f32(v0)), vmovn_s32(vcvtnq_s32_f32(v1)));
        vst1_s8(q + kk, vmovn_s16(h));
    }
    for (; kk < k; kk++) q[kk] = qrr__quant_one(x[kk], inv);
    memset(q + k, 0, ldq - (size_t)k);
    return scale;
}
