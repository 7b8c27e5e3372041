/* ops.c — the small per-token operations of the forward pass: RMS norm, rotary embedding,
 * SiLU-gated product and one embedding row to fp32. They follow Transformers' fp32 order of
 * operations (see each function). Here the scalar references and the dispatch to the AVX-512
 * and AVX2 versions (ops_avx512.c, ops_avx2.c: x86-64) and the NEON ones (ops_neon.c,
 * AArch64), which keep the same order. No GEMM, no attention here. */
#include <math.h>
#include "cpu_internal.h"
#include "qrr_cpu_ops.h"

/* Transformers (Qwen3RMSNorm): var = mean(x^2) in fp32, x * rsqrt(var + eps), then * w.
 * The sum of squares is taken in double (a closer value of the same quantity). */
static void rmsnorm_scalar(const float *x, const float *w, float *y, int rows, int n, float eps)
{
    for (int r = 0; r < rows; r++) {
        const float *xr = x + (size_t)r * n;
        float *yr = y + (size_t)r * n;
        double ss = 0.0;
        for (int i = 0; i < n; i++) ss += (double)xr[i] * xr[i];
        float var = (float)(ss / n);
        float inv = (float)(1.0 / sqrt((double)(var + eps)));
        for (int i = 0; i < n; i++) {
            float t = xr[i] * inv;
            yr[i] = w[i] * t;
        }
    }
}

/* Transformers: freqs = pos * inv_freq in fp32, cos/sin of that fp32 angle (here computed
 * in double and rounded once), out = x * cos + rotate_half(x) * sin with fp32 products. */
static void rope_scalar(float *x, int rows, int nh, int d, int pos0, const float *inv_freq)
{
    int h2 = d / 2;
    float cs[QRR__ROPE_MAX_HALF], sn[QRR__ROPE_MAX_HALF];
    for (int r = 0; r < rows; r++) {
        float pos = (float)(pos0 + r);
        for (int i0 = 0; i0 < h2; i0 += QRR__ROPE_MAX_HALF) {
            int cnt = h2 - i0 < QRR__ROPE_MAX_HALF ? h2 - i0 : QRR__ROPE_MAX_HALF;
            qrr__rope_angles(pos, inv_freq + i0, cnt, cs, sn);
            for (int h = 0; h < nh; h++) {
                float *a = x + ((size_t)r * nh + h) * d + i0;
                float *b = a + h2;
                for (int i = 0; i < cnt; i++) {
                    float xa = a[i], xb = b[i];
                    float p1 = xa * cs[i], p2 = xb * sn[i];
                    float p3 = xb * cs[i], p4 = xa * sn[i];
                    a[i] = p1 - p2;
                    b[i] = p3 + p4;
                }
            }
        }
    }
}

/* silu(g) = g / (1 + exp(-g)) in fp32, times up. */
static void silu_mul_scalar(const float *gu, float *out, int rows, int n)
{
    for (int r = 0; r < rows; r++) {
        const float *g = gu + (size_t)r * 2 * n;
        const float *u = g + n;
        float *o = out + (size_t)r * n;
        for (int i = 0; i < n; i++) {
            float s = g[i] / (1.0f + expf(-g[i]));
            o[i] = s * u[i];
        }
    }
}

/* ---- dispatch: x86-64's avx2 level has its own versions but for RoPE, which takes the
 * scalar one; AArch64's neon-dotprod level takes the neon ones ---- */

/* The level asked for, lowered to what this CPU has. */
static int level(int isa)
{
    int mx = (int)qrr__cpu_isa_max();
    return isa > mx ? mx : isa;
}

/* The level's vector family: 1 for the AVX-512 or NEON versions, 0 for the others. */
static int vector(int isa)
{
#if defined(QRR__X86)
    return level(isa) >= QRR__ISA_AVX512;
#elif defined(QRR__ARM64)
    return level(isa) >= QRR__ISA_NEON;
#else
    (void)isa;
    return 0;
#endif
}

/* 1 when the level is x86-64's avx2. */
static int avx2(int isa)
{
#if defined(QRR__X86)
    return level(isa) == QRR__ISA_AVX2;
#else
    (void)isa;
    return 0;
#endif
}

#if defined(QRR__X86)
#define VEC(fn) qrr__##fn##_avx512
#elif defined(QRR__ARM64)
#define VEC(fn) qrr__##fn##_neon
#else /* never called: vector() is 0 */
#define VEC(fn) fn##_scalar
static void exp_scalar(const float *x, float *y, int n)
{
    for (int i = 0; i < n; i++) y[i] = expf(x[i]);
}
#endif

void qrr_cpu_rmsnorm_isa(int isa, const float *x, const float *w, float *y, int rows, int n,
                         float eps)
{
    if (vector(isa)) VEC(rmsnorm)(x, w, y, rows, n, eps);
#if defined(QRR__X86)
    else if (avx2(isa)) qrr__rmsnorm_avx2(x, w, y, rows, n, eps);
#endif
    else rmsnorm_scalar(x, w, y, rows, n, eps);
}

void qrr_cpu_rope_isa(int isa, float *x, int rows, int nh, int d, int pos0,
                      const float *inv_freq)
{
    if (vector(isa)) VEC(rope)(x, rows, nh, d, pos0, inv_freq);
    else rope_scalar(x, rows, nh, d, pos0, inv_freq);
}

void qrr_cpu_silu_mul_isa(int isa, const float *gu, float *out, int rows, int n)
{
    if (vector(isa)) VEC(silu_mul)(gu, out, rows, n);
#if defined(QRR__X86)
    else if (avx2(isa)) qrr__silu_mul_avx2(gu, out, rows, n);
#endif
    else silu_mul_scalar(gu, out, rows, n);
}

void qrr_cpu_exp_isa(int isa, const float *x, float *y, int n)
{
#if defined(QRR__X86)
    if (avx2(isa)) {
        qrr__exp_avx2(x, y, n);
        return;
    }
#endif
    if (vector(isa)) {
        VEC(exp)(x, y, n);
        return;
    }
    for (int i = 0; i < n; i++) y[i] = expf(x[i]);
}

void qrr_cpu_rmsnorm(const float *x, const float *w, float *y, int rows, int n, float eps)
{
    qrr_cpu_rmsnorm_isa((int)qrr__cpu_isa(), x, w, y, rows, n, eps);
}

void qrr_cpu_rope(float *x, int rows, int nh, int d, int pos0, const float *inv_freq)
{
    qrr_cpu_rope_isa((int)qrr__cpu_isa(), x, rows, nh, d, pos0, inv_freq);
}

void qrr_cpu_silu_mul(const float *gu, float *out, int rows, int n)
{
    qrr_cpu_silu_mul_isa((int)qrr__cpu_isa(), gu, out, rows, n);
}

/* ---- the pool versions: each thread takes one contiguous run of rows ---- */

#define POOL_MIN_ELEMS 32768 /* below this many floats a call is not worth waking threads */

typedef struct ops_job {
    int op; /* 0 rmsnorm, 1 rope, 2 silu_mul */
    const float *x, *w;
    float *y;
    int rows, n, nh, pos0;
    float eps;
} ops_job;

static void ops_part(void *arg, int ti, int nt)
{
    const ops_job *j = arg;
    int r0 = (int)((long long)j->rows * ti / nt), r1 = (int)((long long)j->rows * (ti + 1) / nt);
    if (r1 <= r0) return;
    size_t width = j->op == 1 ? (size_t)j->nh * j->n : (size_t)j->n;
    switch (j->op) {
    case 0:
        qrr_cpu_rmsnorm(j->x + (size_t)r0 * width, j->w, j->y + (size_t)r0 * width, r1 - r0,
                        j->n, j->eps);
        break;
    case 1:
        qrr_cpu_rope(j->y + (size_t)r0 * width, r1 - r0, j->nh, j->n, j->pos0 + r0, j->w);
        break;
    default:
        qrr_cpu_silu_mul(j->x + (size_t)r0 * 2 * width, j->y + (size_t)r0 * width, r1 - r0, j->n);
        break;
    }
}

static int worth_pool(qrr_pool *pool, int rows, size_t width)
{
    return pool && qrr_pool_size(pool) > 1 && rows > 1 && (size_t)rows * width >= POOL_MIN_ELEMS;
}

void qrr_cpu_rmsnorm_pool(const float *x, const float *w, float *y, int rows, int n, float eps,
                          qrr_pool *pool)
{
    if (!worth_pool(pool, rows, (size_t)n)) {
        qrr_cpu_rmsnorm(x, w, y, rows, n, eps);
        return;
    }
    ops_job j = {0, x, w, y, rows, n, 0, 0, eps};
    qrr_pool_run(pool, ops_part, &j);
}

void qrr_cpu_rope_pool(float *x, int rows, int nh, int d, int pos0, const float *inv_freq,
                       qrr_pool *pool)
{
    if (!worth_pool(pool, rows, (size_t)nh * d)) {
        qrr_cpu_rope(x, rows, nh, d, pos0, inv_freq);
        return;
    }
    ops_job j = {1, NULL, inv_freq, x, rows, d, nh, pos0, 0.0f};
    qrr_pool_run(pool, ops_part, &j);
}

void qrr_cpu_silu_mul_pool(const float *gu, float *out, int rows, int n, qrr_pool *pool)
{
    if (!worth_pool(pool, rows, (size_t)n)) {
        qrr_cpu_silu_mul(gu, out, rows, n);
        return;
    }
    ops_job j = {2, gu, NULL, out, rows, n, 0, 0, 0.0f};
    qrr_pool_run(pool, ops_part, &j);
}

void qrr_cpu_embed_row(const qrr_cpu_weight *w, int row, float *out)
{
    size_t k = (size_t)w->k, base = (size_t)row * k;
    switch (w->dtype) {
    case 0: /* F32 */
        memcpy(out, (const float *)w->data + base, k * sizeof(float));
        break;
    case 1: { /* F16 */
        const uint16_t *s = (const uint16_t *)w->data + base;
        for (size_t i = 0; i < k; i++) out[i] = qrr_f16_to_f32(s[i]);
        break;
    }
    case 2: { /* BF16 */
        const uint16_t *s = (const uint16_t *)w->data + base;
        for (size_t i = 0; i < k; i++) out[i] = qrr_bf16_to_f32(s[i]);
        break;
    }
    case 3: { /* I8: q * scale of its channel or block */
        const int8_t *s = (const int8_t *)w->data + base;
        if (w->block > 0) {
            size_t nb = k / (size_t)w->block;
            const float *sc = w->scale + (size_t)row * nb;
            for (size_t i = 0; i < k; i++) out[i] = (float)s[i] * sc[i / (size_t)w->block];
        } else {
            float sc = w->scale[row];
            for (size_t i = 0; i < k; i++) out[i] = (float)s[i] * sc;
        }
        break;
    }
    default:
        for (size_t i = 0; i < k; i++) out[i] = NAN;
        break;
    }
}
