/* test_kernels.c — the CPU kernels against their references: every GEMM version (each ISA
 * level this CPU has, every dtype, odd sizes, strides, accumulate) against qrr_cpu_ref_gemm,
 * the references against fp64 formulas, attention against the fp64 reference, the small ops
 * against double-precision formulas, and exhaustive f16/bf16 conversions. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "cpu_internal.h" /* qrr__i8_pack_portable */
#include "qrr_cpu.h"
#include "qrr_cpu_ops.h"

/* ------------------------------------------------------------------ helpers */

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;
static float frand(void) /* uniform in [-1, 1) */
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (float)((rng_state >> 40) & 0xffffff) / 8388608.0f - 1.0f;
}

static uint16_t to_bf16(float f) /* round to nearest even (finite inputs) */
{
    uint32_t u;
    memcpy(&u, &f, 4);
    u += 0x7fffu + ((u >> 16) & 1u);
    return (uint16_t)(u >> 16);
}

typedef struct wbuf {
    qrr_cpu_weight w;
    void *data;
    float *scale;
} wbuf;

/* Random weights of a dtype; positive: all weights > 0. I8 scales per channel or block. */
static wbuf make_weight(uint32_t dtype, int n, int k, int block, int positive)
{
    wbuf b;
    size_t cnt = (size_t)n * k;
    b.data = malloc(cnt * 4 + 64);
    b.scale = malloc(sizeof(float) * (cnt + 1));
    cr_assert(b.data && b.scale);
    for (size_t i = 0; i < cnt; i++) {
        float v = frand();
        if (positive) v = 0.05f + fabsf(v);
        switch (dtype) {
        case 0: ((float *)b.data)[i] = v; break;
        case 1: ((uint16_t *)b.data)[i] = qrr_f32_to_f16(v); break;
        case 2: ((uint16_t *)b.data)[i] = to_bf16(v); break;
        default: ((int8_t *)b.data)[i] = (int8_t)lrintf(v * 127.0f); break;
        }
    }
    for (size_t i = 0; i < cnt; i++) b.scale[i] = 0.002f + 0.01f * fabsf(frand());
    b.w = (qrr_cpu_weight){dtype, b.data, b.scale, n, k, block, NULL};
    return b;
}

static void free_weight(wbuf *b)
{
    free(b->data);
    free(b->scale);
}

static double w_value(const qrr_cpu_weight *w, int j, int kk)
{
    size_t i = (size_t)j * w->k + kk;
    switch (w->dtype) {
    case 0: return ((const float *)w->data)[i];
    case 1: return qrr_f16_to_f32(((const uint16_t *)w->data)[i]);
    case 2: return qrr_bf16_to_f32(((const uint16_t *)w->data)[i]);
    default: {
        int nb = w->block > 0 ? w->k / w->block : 1;
        int b = w->block > 0 ? kk / w->block : 0;
        return ((const int8_t *)w->data)[i] * (double)w->scale[(size_t)j * nb + b];
    }
    }
}

/* ------------------------------------------------------------------ GEMM */

/* The largest error of each level against the reference in the current test (each test is
 * its own process), relative to the scale its tolerance uses; logged by report(). */
static double worst[8];

static void note_error(int isa, double err)
{
    if (isa >= 0 && isa < 8 && err > worst[isa]) worst[isa] = err;
}

static void report(const char *what)
{
    for (int isa = 0; isa <= qrr_cpu_isa_max(); isa++)
        cr_log_info("%s: %s against the reference: max error %.3g", what, qrr_cpu_isa_name(isa),
                    worst[isa]);
}

/* One case: every ISA level against the reference. The fp versions must agree within 1e-5 of
 * the largest |output| (mixed signs) or 1e-5 of each output (positive data); the int8 versions
 * perform the reference's exact integer sums and fp32 steps, held to 1e-6 relative. */
static void gemm_case(uint32_t dtype, int m, int n, int k, int block, int acc, int positive,
                      qrr_pool *pool)
{
    int ldx = k + 3, ldy = n + 5;
    float *x = malloc(sizeof(float) * (size_t)m * ldx);
    float *y0 = malloc(sizeof(float) * (size_t)m * ldy);
    float *y1 = malloc(sizeof(float) * (size_t)m * ldy);
    float *yinit = malloc(sizeof(float) * (size_t)m * ldy);
    cr_assert(x && y0 && y1 && yinit);
    for (size_t i = 0; i < (size_t)m * ldx; i++) x[i] = positive ? 0.05f + fabsf(frand()) : frand();
    for (size_t i = 0; i < (size_t)m * ldy; i++) yinit[i] = positive ? fabsf(frand()) : frand();
    wbuf wb = make_weight(dtype, n, k, block, positive);
    memcpy(y0, yinit, sizeof(float) * (size_t)m * ldy);
    qrr_cpu_ref_gemm(x, ldx, m, &wb.w, y0, ldy, acc);
    double ymax = 0.0;
    for (int i = 0; i < m; i++)
        for (int j = 0; j < n; j++) ymax = fmax(ymax, fabs(y0[(size_t)i * ldy + j]));
    for (int isa = 0; isa <= qrr_cpu_isa_max(); isa++) {
        memcpy(y1, yinit, sizeof(float) * (size_t)m * ldy);
        qrr_cpu_gemm_isa(isa, x, ldx, m, &wb.w, y1, ldy, acc, pool);
        for (int i = 0; i < m; i++) {
            for (int j = 0; j < ldy; j++) {
                size_t at = (size_t)i * ldy + j;
                if (j >= n) { /* padding between rows untouched */
                    cr_assert_eq(y1[at], yinit[at], "isa %d wrote past n at [%d,%d]", isa, i, j);
                    continue;
                }
                double tol = dtype == 3 ? 1e-6 * fabs(y0[at]) + 1e-30
                             : positive ? 1e-5 * fabs(y0[at])
                                        : 1e-5 * ymax;
                double scale = dtype == 3 || positive ? fabs(y0[at]) : ymax;
                note_error(isa, fabs((double)y1[at] - y0[at]) / (scale > 0 ? scale : 1.0));
                cr_assert(fabs((double)y1[at] - y0[at]) <= tol,
                          "dtype %u isa %d m %d n %d k %d block %d acc %d: y[%d,%d] = %.9g, "
                          "reference %.9g", dtype, isa, m, n, k, block, acc, i, j, y1[at], y0[at]);
            }
        }
    }
    free_weight(&wb);
    free(x);
    free(y0);
    free(y1);
    free(yinit);
}

static const int odd_sizes[][3] = { /* m 7 and 13: a 1-row remainder of the 6-row fp tile */
    {1, 1, 1}, {1, 3, 17}, {3, 17, 63}, {17, 63, 65}, {5, 127, 127}, {63, 65, 1029},
    {65, 33, 300}, {8, 32, 256}, {4, 100, 1029}, {9, 70, 257}, {130, 40, 64}, {2, 5, 4},
    {7, 19, 40}, {13, 33, 70},
};

static void gemm_sizes(uint32_t dtype, int threads)
{
    static const char *const names[] = {"f32 GEMM", "f16 GEMM", "bf16 GEMM", "int8 GEMM"};
    qrr_pool *pool = threads > 1 ? qrr_pool_create(threads) : NULL;
    for (size_t s = 0; s < sizeof odd_sizes / sizeof odd_sizes[0]; s++)
        for (int acc = 0; acc <= 1; acc++)
            gemm_case(dtype, odd_sizes[s][0], odd_sizes[s][1], odd_sizes[s][2], 0, acc, 0, pool);
    qrr_pool_free(pool);
    report(names[dtype]); /* relative to the largest |output| (int8: to each output) */
}

Test(gemm, f32_odd_sizes) { gemm_sizes(0, 1); }
Test(gemm, f16_odd_sizes) { gemm_sizes(1, 2); }
Test(gemm, bf16_odd_sizes) { gemm_sizes(2, 3); }
Test(gemm, i8_per_channel_odd_sizes) { gemm_sizes(3, 2); }

Test(gemm, i8_per_block)
{
    qrr_pool *pool = qrr_pool_create(2);
    gemm_case(3, 9, 37, 256, 32, 0, 0, pool);
    gemm_case(3, 70, 33, 320, 64, 1, 0, pool);
    gemm_case(3, 3, 18, 1100, 4, 0, 0, pool);
    gemm_case(3, 20, 40, 4096, 2048, 1, 0, pool); /* blocks deeper than a panel chunk */
    gemm_case(3, 12, 9, 30, 6, 0, 0, pool);        /* block not a multiple of 4: scalar */
    qrr_pool_free(pool);
    report("int8 GEMM per block (relative to each output)");
}

/* A weight packed once (qrr_cpu_i8_pack) gives bit for bit what the same weight gives
 * unpacked, at every level and row count (1 to 4 rows take another path without it), with
 * and without accumulating, on one and two threads; and at the AVX2 level bit for bit what
 * the scalar reference gives. The AVX2 packing and the one this CPU uses write the bytes of
 * the plain C packing. Other dtypes have no packed copy; per-block weights have one exactly
 * where the AVX2 version is this CPU's int8 GEMM, and elsewhere are packed here by the plain
 * C packing, so that the AVX2 tile reads them at its level (as under QRR_CPU_ISA=avx2).
 * Runs where this CPU's int8 GEMM reads a packed copy (x86-64: AVX-512 VNNI, AVX2). */
Test(gemm, i8_packed_weight_bit_identical)
{
    wbuf blocked = make_weight(3, 40, 256, 32, 0);
    int blocked_packs = qrr_cpu_i8_packed_size(&blocked.w) > 0;
    cr_expect_eq(blocked_packs, !strcmp(qrr_cpu_gemm_impl(3), "avx2"),
                 "int8 GEMM %s: a per-block weight has %s packed size", qrr_cpu_gemm_impl(3),
                 blocked_packs ? "a" : "no");
    free_weight(&blocked);
    wbuf f16 = make_weight(1, 40, 256, 0, 0);
    cr_expect_eq(qrr_cpu_i8_packed_size(&f16.w), 0, "an f16 weight has a packed size");
    free_weight(&f16);
    wbuf probe = make_weight(3, 40, 256, 0, 0);
    size_t probe_size = qrr_cpu_i8_packed_size(&probe.w);
    free_weight(&probe);
    if (probe_size == 0) cr_skip_test("this CPU's int8 GEMM reads no packed copy");

    static const int shapes[][4] = { /* m, n, k, block (0: per channel) */
        {1, 1, 1, 0}, {2, 33, 63, 0}, {3, 64, 1024, 0}, {4, 100, 1029, 0}, {5, 127, 127, 0},
        {13, 65, 2101, 0}, {67, 1024, 1024, 0}, {67, 96, 3072, 0}, {300, 40, 1030, 0},
        {9, 70, 257, 0}, {5, 6, 12, 0}, {2, 35, 15, 0}, {3, 37, 256, 32}, {70, 33, 320, 64},
        {6, 18, 1100, 4}, {20, 40, 4096, 2048}, {9, 9, 128, 128}, {5, 7, 12, 4},
    };
    qrr_pool *two = qrr_pool_create(2);
    cr_assert_not_null(two);
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        int m = shapes[s][0], n = shapes[s][1], k = shapes[s][2], block = shapes[s][3];
        int ldy = n + 3, per_block = block > 0 && block < k;
        wbuf wb = make_weight(3, n, k, block, 0);
        size_t bytes = qrr_cpu_i8_packed_size(&wb.w), full = qrr__i8_packed_size(n, k);
        cr_assert_eq(bytes, per_block && !blocked_packs ? 0 : full,
                     "n %d k %d block %d: packed size %zu", n, k, block, bytes);
        uint8_t *mem = aligned_alloc(64, (full + 63) / 64 * 64);
        uint8_t *portable = aligned_alloc(64, (full + 63) / 64 * 64);
        float *x = malloc(sizeof(float) * (size_t)m * k), *yr = malloc(sizeof(float) * (size_t)m * ldy);
        float *y0 = malloc(sizeof(float) * (size_t)m * ldy), *y1 = malloc(sizeof(float) * (size_t)m * ldy);
        cr_assert(mem && portable && x && yr && y0 && y1);
        for (size_t i = 0; i < (size_t)m * k; i++) x[i] = frand();
        qrr__i8_pack_portable(&wb.w, portable);
        qrr_cpu_weight packed = wb.w;
        if (bytes) {
            qrr_cpu_i8_pack(&packed, mem);
            cr_assert_eq(packed.packed, mem);
            cr_assert(!memcmp(mem, portable, full), "n %d k %d: this CPU's packing differs", n, k);
        } else {
            memcpy(mem, portable, full);
            packed.packed = mem;
        }
#if defined(QRR__X86) /* every CPU with a packed copy has AVX2 */
        qrr__i8_pack_avx2(&wb.w, mem);
        cr_assert(!memcmp(mem, portable, full), "n %d k %d: the AVX2 packing differs", n, k);
#endif
        for (int isa = 1; isa <= qrr_cpu_isa_max(); isa++)
            for (int acc = 0; acc <= 1; acc++)
                for (int threads = 1; threads <= 2; threads++) {
                    qrr_pool *pool = threads == 2 ? two : NULL;
                    for (size_t i = 0; i < (size_t)m * ldy; i++) yr[i] = y0[i] = y1[i] = frand();
                    qrr_cpu_gemm_isa(isa, x, k, m, &wb.w, y0, ldy, acc, pool);
                    qrr_cpu_gemm_isa(isa, x, k, m, &packed, y1, ldy, acc, pool);
                    cr_assert(!memcmp(y0, y1, sizeof(float) * (size_t)m * ldy),
                              "isa %d m %d n %d k %d block %d acc %d threads %d: packed and "
                              "unpacked differ", isa, m, n, k, block, acc, threads);
                    if (isa != 1) continue;
                    qrr_cpu_ref_gemm(x, k, m, &wb.w, yr, ldy, acc);
                    cr_assert(!memcmp(yr, y1, sizeof(float) * (size_t)m * ldy),
                              "avx2 m %d n %d k %d block %d acc %d threads %d: not the "
                              "reference's bits", m, n, k, block, acc, threads);
                }
        free(mem);
        free(portable);
        free(x);
        free(yr);
        free(y0);
        free(y1);
        free_weight(&wb);
    }
    qrr_pool_free(two);
}

/* Deep sums: each output within 1e-5 of the fp64 product, K up to 12288. */
Test(gemm, deep_k_relative)
{
    qrr_pool *pool = qrr_pool_create(2);
    for (uint32_t dt = 0; dt <= 2; dt++) {
        gemm_case(dt, 3, 20, 12288, 0, 0, 1, pool);
        gemm_case(dt, 12, 33, 12288, 0, 1, 1, pool);
        gemm_case(dt, 12, 33, 12288, 0, 0, 0, pool);
    }
    gemm_case(3, 12, 33, 12288, 0, 0, 0, pool);
    qrr_pool_free(pool);
    report("GEMM k = 12288, every dtype");
}

/* The fp reference itself against an fp64 product; the int8 reference against the fp64
 * product of its dequantized weights, within the activation rounding bound
 * sum_k |w_k| * scale_x / 2 (plus fp32 rounding). */
Test(gemm, references_against_fp64)
{
    int m = 7, n = 19, k = 333;
    float *x = malloc(sizeof(float) * m * k), *y = malloc(sizeof(float) * m * n);
    cr_assert(x && y);
    for (int i = 0; i < m * k; i++) x[i] = frand() * 3.0f;
    for (uint32_t dt = 0; dt <= 3; dt++) {
        for (int block = 0; block <= (dt == 3 ? 37 : 0); block += 37) {
            if (block && k % block) continue;
            wbuf wb = make_weight(dt, n, k, block, 0);
            qrr_cpu_ref_gemm(x, k, m, &wb.w, y, n, 0);
            for (int i = 0; i < m; i++) {
                double amax = 0.0;
                for (int kk = 0; kk < k; kk++) amax = fmax(amax, fabs(x[i * k + kk]));
                for (int j = 0; j < n; j++) {
                    double exact = 0.0, wabs = 0.0, mag = 0.0;
                    for (int kk = 0; kk < k; kk++) {
                        double wv = w_value(&wb.w, j, kk);
                        exact += x[i * k + kk] * wv;
                        wabs += fabs(wv);
                        mag += fabs(x[i * k + kk] * wv);
                    }
                    double bound = dt == 3 ? wabs * amax / 127.0 * 0.5 + 1e-6 * mag : 1e-7 * mag;
                    cr_assert(fabs(y[i * n + j] - exact) <= bound,
                              "dtype %u block %d: [%d,%d] %.9g vs fp64 %.9g", dt, block, i, j,
                              y[i * n + j], exact);
                }
            }
            free_weight(&wb);
        }
    }
    free(x);
    free(y);
}

Test(gemm, i8_zero_and_nonfinite_rows)
{
    int k = 64, n = 20;
    float x[3 * 64];
    for (int i = 0; i < k; i++) {
        x[i] = 0.0f;
        x[k + i] = frand();
        x[2 * k + i] = frand();
    }
    x[k + 5] = INFINITY;
    x[2 * k + 40] = NAN;
    wbuf wb = make_weight(3, n, k, 0, 0);
    for (int isa = 0; isa <= qrr_cpu_isa_max(); isa++) {
        float y[3 * 20];
        for (int i = 0; i < 3 * n; i++) y[i] = 1.0f;
        qrr_cpu_gemm_isa(isa, x, k, 3, &wb.w, y, n, 0, NULL);
        for (int j = 0; j < n; j++) {
            cr_assert_eq(y[j], 0.0f, "isa %d: zero row gave %g", isa, y[j]);
            cr_assert(isnan(y[n + j]), "isa %d: row with inf gave %g", isa, y[n + j]);
            cr_assert(isnan(y[2 * n + j]), "isa %d: row with NaN gave %g", isa, y[2 * n + j]);
        }
    }
    free_weight(&wb);
}

/* Per-block sums start from +0 in every version, as the reference's do: an output whose
 * every block product is -0 (a zero row of W with negative scales) comes out +0, bit for
 * bit the reference, packed or not. */
Test(gemm, i8_per_block_sums_start_from_plus_zero)
{
    int m = 5, n = 9, k = 64, block = 16;
    wbuf wb = make_weight(3, n, k, block, 0);
    memset((int8_t *)wb.data + 2 * k, 0, (size_t)k); /* output 2: zero products */
    for (int b = 0; b < k / block; b++) wb.scale[2 * (k / block) + b] = -0.01f;
    float x[5 * 64], y0[5 * 9], y1[5 * 9];
    for (int i = 0; i < m * k; i++) x[i] = frand();
    qrr_cpu_ref_gemm(x, k, m, &wb.w, y0, n, 0);
    cr_assert(y0[2] == 0.0f && !signbit(y0[2]), "the reference gave %g", y0[2]);
    size_t bytes = qrr__i8_packed_size(n, k);
    uint8_t *mem = aligned_alloc(64, (bytes + 63) / 64 * 64);
    cr_assert_not_null(mem);
    qrr__i8_pack_portable(&wb.w, mem);
    qrr_cpu_weight packed = wb.w;
    packed.packed = mem;
    for (int isa = 0; isa <= qrr_cpu_isa_max(); isa++)
        for (int p = 0; p <= 1; p++)
            for (int rows = 2; rows <= m; rows += m - 2) { /* a few rows take other paths */
                qrr_cpu_gemm_isa(isa, x, k, rows, p ? &packed : &wb.w, y1, n, 0, NULL);
                for (int i = 0; i < rows; i++)
                    cr_assert(y1[i * n + 2] == 0.0f && !signbit(y1[i * n + 2]),
                              "isa %d %s, %d rows: row %d gave %g", isa,
                              p ? "packed" : "unpacked", rows, i, y1[i * n + 2]);
            }
    free(mem);
    free_weight(&wb);
}

Test(gemm, impl_names)
{
#if defined(__aarch64__)
    static const char *const names[] = {"scalar", "neon", "neon-dotprod"};
#else
    static const char *const names[] = {"scalar", "avx2", "avx512", "avx512-vnni"};
#endif
    for (uint32_t dt = 0; dt <= 3; dt++) {
        const char *s = qrr_cpu_gemm_impl(dt);
        int known = 0;
        for (size_t i = 0; s && i < sizeof names / sizeof names[0]; i++) known |= !strcmp(s, names[i]);
        cr_assert(known, "dtype %u: impl '%s'", dt, s ? s : "(null)");
    }
    qrr_cpu_features f = qrr_cpu_detect();
#if defined(__aarch64__)
    /* the fp GEMMs never name dot products; int8 names them exactly when the CPU has them */
    if (qrr_cpu_isa_max() >= 1) cr_assert(f.asimd);
    cr_assert_eq(qrr_cpu_isa_max(), f.asimddp ? 2 : f.asimd ? 1 : 0);
    cr_assert_str_neq(qrr_cpu_gemm_impl(1), "neon-dotprod");
    const char *env = getenv("QRR_CPU_ISA");
    if (!env && f.asimddp) cr_assert_str_eq(qrr_cpu_gemm_impl(3), "neon-dotprod");
    if (!env && f.asimd && !f.asimddp) cr_assert_str_eq(qrr_cpu_gemm_impl(3), "neon");
    cr_assert(strstr(qrr_cpu_describe(), "int8 GEMM ") != NULL, "%s", qrr_cpu_describe());
#else
    if (qrr_cpu_isa_max() >= 2) cr_assert(f.avx512f && f.avx512bw && f.avx512vl);
    if (qrr_cpu_isa_max() >= 1) cr_assert(f.avx2 && f.fma && f.f16c);
#endif
    cr_log_info("cpu kernels: %s", qrr_cpu_describe());
}

/* ------------------------------------------------------------------ attention */

static void attn_case(int t, int n_prefix, int nq, int nkv, int d, qrr_pool *pool)
{
    size_t qd = (size_t)nq * d, kd = (size_t)nkv * d;
    float *q = malloc(sizeof(float) * t * qd), *k = malloc(sizeof(float) * t * kd);
    float *v = malloc(sizeof(float) * t * kd);
    float *pk = malloc(sizeof(float) * (n_prefix + 1) * kd), *pv = malloc(sizeof(float) * (n_prefix + 1) * kd);
    float *o0 = malloc(sizeof(float) * t * qd), *o1 = malloc(sizeof(float) * t * qd);
    cr_assert(q && k && v && pk && pv && o0 && o1);
    for (size_t i = 0; i < t * qd; i++) q[i] = 2.0f * frand();
    for (size_t i = 0; i < t * kd; i++) {
        k[i] = 2.0f * frand();
        v[i] = frand();
    }
    for (size_t i = 0; i < (size_t)n_prefix * kd; i++) {
        pk[i] = 2.0f * frand();
        pv[i] = frand();
    }
    qrr_cpu_ref_attention(q, k, v, n_prefix ? pk : NULL, n_prefix ? pv : NULL, n_prefix, t, nq, nkv, d, o0);
    for (int isa = 0; isa <= qrr_cpu_isa_max(); isa++) {
        qrr_cpu_attention_isa(isa, q, k, v, n_prefix ? pk : NULL, n_prefix ? pv : NULL, n_prefix, t, nq, nkv, d, o1, pool);
        for (size_t i = 0; i < t * qd; i++) note_error(isa, fabsf(o1[i] - o0[i]));
        for (size_t i = 0; i < t * qd; i++)
            cr_assert(fabsf(o1[i] - o0[i]) <= 1e-5f, /* values are averages of |v| <= 1 */
                      "isa %d t %d prefix %d nq %d nkv %d d %d: out[%zu] %.9g vs %.9g", isa, t,
                      n_prefix, nq, nkv, d, i, o1[i], o0[i]);
    }
    free(q);
    free(k);
    free(v);
    free(pk);
    free(pv);
    free(o0);
    free(o1);
}

Test(attention, against_reference)
{
    qrr_pool *pool = qrr_pool_create(2);
    const int ts[] = {1, 2, 17, 64, 300};
    const int groups[][2] = {{4, 4}, {4, 2}, {8, 2}};
    for (size_t a = 0; a < 5; a++)
        for (size_t g = 0; g < 3; g++)
            for (int pre = 0; pre <= 37; pre += 37)
                attn_case(ts[a], pre, groups[g][0], groups[g][1], ts[a] >= 300 ? 64 : 128, pool);
    attn_case(33, 5, 2, 1, 6, pool);   /* head_dim not a multiple of 16 */
    attn_case(20, 0, 3, 3, 40, pool);
    attn_case(5, 300, 2, 1, 128, pool); /* long prefix, short sequence */
    qrr_pool_free(pool);
    report("attention (absolute, tolerance 1e-5)");
}

/* The vector tiling's edges: the 0.6B shape with a prefix, head widths that leave a partial
 * column group (48, 80) or take the narrow tile (256), wide groups (one tile per few rows,
 * more heads than a tile holds), and a pool of one. */
Test(attention, tile_edges)
{
    qrr_pool *pool = qrr_pool_create(2);
    attn_case(256, 64, 16, 8, 128, pool);
    attn_case(70, 9, 4, 2, 48, pool);
    attn_case(70, 0, 6, 2, 80, pool);
    attn_case(40, 20, 4, 2, 256, pool);
    attn_case(23, 5, 32, 1, 32, pool);
    attn_case(9, 3, 96, 1, 16, pool);
    attn_case(50, 100, 3, 1, 64, NULL);
    attn_case(1, 700, 16, 8, 128, NULL);
    qrr_pool_free(pool);
}

/* A single key: softmax weight 1, the output is that value row exactly. */
Test(attention, single_key_returns_value)
{
    int d = 128, nq = 4, nkv = 2;
    float q[4 * 128], k[2 * 128], v[2 * 128], o[4 * 128];
    for (int i = 0; i < nq * d; i++) q[i] = frand();
    for (int i = 0; i < nkv * d; i++) {
        k[i] = frand();
        v[i] = frand();
    }
    for (int isa = 0; isa <= qrr_cpu_isa_max(); isa++) {
        qrr_cpu_attention_isa(isa, q, k, v, NULL, NULL, 0, 1, nq, nkv, d, o, NULL);
        for (int h = 0; h < nq; h++)
            for (int e = 0; e < d; e++)
                cr_assert_eq(o[h * d + e], v[(h / 2) * d + e], "isa %d head %d", isa, h);
    }
}

/* ------------------------------------------------------------------ small ops */

static void rmsnorm_case(int isa)
{
    int rows = 5, n = 1027;
    float *x = malloc(sizeof(float) * rows * n), *w = malloc(sizeof(float) * n);
    float *y = malloc(sizeof(float) * rows * n);
    cr_assert(x && w && y);
    for (int i = 0; i < rows * n; i++) x[i] = 3.0f * frand();
    for (int i = 0; i < n; i++) w[i] = frand();
    qrr_cpu_rmsnorm_isa(isa, x, w, y, rows, n, 1e-6f);
    for (int r = 0; r < rows; r++) {
        double ss = 0.0;
        for (int i = 0; i < n; i++) ss += (double)x[r * n + i] * x[r * n + i];
        double inv = 1.0 / sqrt(ss / n + 1e-6);
        for (int i = 0; i < n; i++) {
            double want = x[r * n + i] * inv * w[i];
            cr_assert(fabs(y[r * n + i] - want) <= 1e-6 * fabs(want) + 1e-12, "isa %d [%d,%d]", isa, r, i);
        }
    }
    memcpy(y, x, sizeof(float) * rows * n); /* in place gives the same */
    float *y2 = malloc(sizeof(float) * rows * n);
    cr_assert(y2);
    qrr_cpu_rmsnorm_isa(isa, x, w, y2, rows, n, 1e-6f);
    qrr_cpu_rmsnorm_isa(isa, y, w, y, rows, n, 1e-6f);
    cr_assert(memcmp(y, y2, sizeof(float) * rows * n) == 0);
    free(x);
    free(w);
    free(y);
    free(y2);
}

Test(ops, rmsnorm_against_double)
{
    for (int isa = 0; isa <= qrr_cpu_isa_max(); isa++) rmsnorm_case(isa);
    float x[128], w[128], y0[128], y1[128]; /* q/k-norm width, a row of zeros gives zeros */
    for (int i = 0; i < 128; i++) {
        x[i] = i < 64 ? 0.0f : frand();
        w[i] = frand();
    }
    qrr_cpu_rmsnorm_isa(0, x, w, y0, 2, 64, 1e-6f);
    for (int isa = 1; isa <= qrr_cpu_isa_max(); isa++) {
        qrr_cpu_rmsnorm_isa(isa, x, w, y1, 2, 64, 1e-6f);
        for (int i = 0; i < 128; i++)
            cr_assert(fabsf(y1[i] - y0[i]) <= 1e-6f * fabsf(y0[i]), "isa %d [%d]", isa, i);
        for (int i = 0; i < 64; i++) cr_assert_eq(y1[i], 0.0f);
    }
}

static void rope_case(int isa, int rows, int nh, int d, int pos0)
{
    float inv_freq[128];
    for (int i = 0; i < d / 2; i++) inv_freq[i] = (float)(1.0 / pow(1000000.0, 2.0 * i / d));
    size_t cnt = (size_t)rows * nh * d;
    float *x = malloc(sizeof(float) * cnt), *x0 = malloc(sizeof(float) * cnt);
    cr_assert(x && x0);
    for (size_t i = 0; i < cnt; i++) x0[i] = x[i] = frand();
    qrr_cpu_rope_isa(isa, x, rows, nh, d, pos0, inv_freq);
    for (int r = 0; r < rows; r++)
        for (int h = 0; h < nh; h++)
            for (int i = 0; i < d / 2; i++) {
                size_t a = ((size_t)r * nh + h) * d + i, b = a + d / 2;
                double ang = (double)((float)(pos0 + r) * inv_freq[i]); /* fp32 angle */
                double wa = x0[a] * cos(ang) - x0[b] * sin(ang);
                double wb = x0[b] * cos(ang) + x0[a] * sin(ang);
                double tol = 1e-6 * (fabs(x0[a]) + fabs(x0[b]));
                cr_assert(fabs(x[a] - wa) <= tol && fabs(x[b] - wb) <= tol,
                          "isa %d pos %d h %d i %d", isa, pos0 + r, h, i);
            }
    free(x);
    free(x0);
}

Test(ops, rope_against_double)
{
    for (int isa = 0; isa <= qrr_cpu_isa_max(); isa++) {
        rope_case(isa, 6, 3, 128, 8000);
        rope_case(isa, 300, 2, 128, 0);  /* every quadrant of the larger angles */
        rope_case(isa, 3, 2, 40, 40000); /* a partial vector of angles */
        rope_case(isa, 2, 1, 16, 600000); /* angles past the vector reduction's range */
    }
}

/* The vector cos/sin round like the double-precision library ones (the scalar version):
 * over many positions the rotated values match the scalar ones to the last bit almost
 * everywhere and never by more than an ulp or two of their size. */
Test(ops, rope_levels_agree)
{
    int rows = 512, nh = 1, d = 128;
    float inv_freq[64];
    for (int i = 0; i < d / 2; i++) inv_freq[i] = (float)(1.0 / pow(1000000.0, 2.0 * i / d));
    size_t cnt = (size_t)rows * nh * d;
    float *x0 = malloc(sizeof(float) * cnt), *x1 = malloc(sizeof(float) * cnt);
    cr_assert(x0 && x1);
    for (size_t i = 0; i < cnt; i++) x0[i] = x1[i] = frand();
    qrr_cpu_rope_isa(0, x0, rows, nh, d, 7, inv_freq);
    qrr_cpu_rope_isa(qrr_cpu_isa_max(), x1, rows, nh, d, 7, inv_freq);
    size_t same = 0;
    for (size_t i = 0; i < cnt; i++) {
        same += x0[i] == x1[i];
        cr_assert(fabsf(x0[i] - x1[i]) <= 4e-7f, "[%zu] %.9g vs %.9g", i, x0[i], x1[i]);
    }
    cr_assert(same >= cnt - cnt / 1000, "%zu of %zu identical", same, cnt);
    free(x0);
    free(x1);
}

/* The kernels' vector e^x against expf: within 3 ulp over the range softmax and SiLU use,
 * 0 far below it, Inf above it, NaN kept. */
Test(ops, exp_against_expf)
{
    enum { N = 20000 };
    static float x[N + 4], y[N + 4];
    for (int i = 0; i < N; i++) x[i] = -87.0f + 175.0f * (float)i / N;
    x[N] = -200.0f;
    x[N + 1] = 100.0f;
    x[N + 2] = NAN;
    x[N + 3] = 0.0f;
    for (int isa = 0; isa <= qrr_cpu_isa_max(); isa++) {
        qrr_cpu_exp_isa(isa, x, y, N + 4);
        for (int i = 0; i < N; i++) {
            float want = expf(x[i]);
            cr_assert(fabsf(y[i] - want) <= 3.6e-7f * want, "isa %d e^%.9g: %.9g vs %.9g", isa, x[i], y[i], want);
        }
        cr_assert(y[N] <= 1e-44f && y[N] >= 0.0f, "isa %d", isa);
        cr_assert(isinf(y[N + 1]) && y[N + 1] > 0, "isa %d", isa);
        cr_assert(isnan(y[N + 2]), "isa %d", isa);
        cr_assert_eq(y[N + 3], 1.0f, "isa %d", isa);
    }
}

Test(ops, silu_mul_against_double)
{
    int rows = 3, n = 301;
    float *gu = malloc(sizeof(float) * rows * 2 * n), *o = malloc(sizeof(float) * rows * n);
    cr_assert(gu && o);
    for (int i = 0; i < rows * 2 * n; i++) gu[i] = 8.0f * frand();
    gu[0] = -100.0f; /* e^-g overflows: silu is -0 */
    gu[1] = 100.0f;
    for (int isa = 0; isa <= qrr_cpu_isa_max(); isa++) {
        qrr_cpu_silu_mul_isa(isa, gu, o, rows, n);
        for (int r = 0; r < rows; r++)
            for (int i = 0; i < n; i++) {
                double g = gu[r * 2 * n + i], u = gu[r * 2 * n + n + i];
                double want = g / (1.0 + exp(-g)) * u;
                cr_assert(fabs(o[r * n + i] - want) <= 1e-6 * fabs(want) + 1e-30, "isa %d [%d,%d]", isa, r, i);
            }
    }
    free(gu);
    free(o);
}

/* The pool versions split rows among threads and give what the plain calls give, bit for
 * bit; with no pool or few rows they are the plain calls. */
Test(ops, pool_versions_match)
{
    qrr_pool *pool = qrr_pool_create(2);
    cr_assert(pool);
    int rows = 301, n = 1024, nh = 4, d = 128, hn = 512;
    size_t big = (size_t)rows * 2 * n;
    float *a = malloc(sizeof(float) * big), *b = malloc(sizeof(float) * big);
    float *c = malloc(sizeof(float) * big), *w = malloc(sizeof(float) * n);
    float inv_freq[64];
    cr_assert(a && b && c && w);
    for (size_t i = 0; i < big; i++) a[i] = 4.0f * frand();
    for (int i = 0; i < n; i++) w[i] = frand();
    for (int i = 0; i < d / 2; i++) inv_freq[i] = (float)(1.0 / pow(1000000.0, 2.0 * i / d));
    for (int k = 0; k < 2; k++) {
        qrr_pool *p = k ? pool : NULL;
        int r = k ? rows : 7;
        qrr_cpu_rmsnorm(a, w, b, r, n, 1e-6f);
        qrr_cpu_rmsnorm_pool(a, w, c, r, n, 1e-6f, p);
        cr_assert(memcmp(b, c, sizeof(float) * r * n) == 0, "rmsnorm, pool %d", k);
        qrr_cpu_silu_mul(a, b, r, n);
        qrr_cpu_silu_mul_pool(a, c, r, n, p);
        cr_assert(memcmp(b, c, sizeof(float) * r * n) == 0, "silu_mul, pool %d", k);
        memcpy(b, a, sizeof(float) * r * nh * d);
        memcpy(c, a, sizeof(float) * r * nh * d);
        qrr_cpu_rope(b, r, nh, d, 11, inv_freq);
        qrr_cpu_rope_pool(c, r, nh, d, 11, inv_freq, p);
        cr_assert(memcmp(b, c, sizeof(float) * r * nh * d) == 0, "rope, pool %d", k);
        qrr_cpu_rmsnorm(a, w, b, r * nh, hn / nh, 1e-6f); /* q/k norms: many short rows */
        memcpy(c, a, sizeof(float) * r * hn);
        qrr_cpu_rmsnorm_pool(c, w, c, r * nh, hn / nh, 1e-6f, p);
        cr_assert(memcmp(b, c, sizeof(float) * r * hn) == 0, "rmsnorm in place, pool %d", k);
    }
    free(a);
    free(b);
    free(c);
    free(w);
    qrr_pool_free(pool);
}

Test(ops, embed_row_every_dtype)
{
    int n = 10, k = 96;
    float out[96];
    for (uint32_t dt = 0; dt <= 3; dt++)
        for (int block = 0; block <= (dt == 3 ? 32 : 0); block += 32) {
            wbuf wb = make_weight(dt, n, k, block, 0);
            for (int row = 0; row < n; row += 3) {
                qrr_cpu_embed_row(&wb.w, row, out);
                for (int i = 0; i < k; i++)
                    cr_assert_eq(out[i], (float)w_value(&wb.w, row, i), "dtype %u row %d [%d]", dt, row, i);
            }
            free_weight(&wb);
        }
}

/* ------------------------------------------------------------------ f16 / bf16 */

static uint32_t bits(float f)
{
    uint32_t u;
    memcpy(&u, &f, 4);
    return u;
}

Test(half, f16_exhaustive_against_compiler_and_round_trip)
{
    for (uint32_t h = 0; h < 65536; h++) {
        float f = qrr_f16_to_f32((uint16_t)h);
        _Float16 c;
        uint16_t hh = (uint16_t)h;
        memcpy(&c, &hh, 2);
        float want = (float)c;
        if (isnan(want)) {
            cr_assert(isnan(f), "h %04x", h);
            uint16_t back = qrr_f32_to_f16(f);
            cr_assert((back & 0x7c00u) == 0x7c00u && (back & 0x3ffu) != 0 && (back & 0x200u),
                      "NaN %04x came back as %04x", h, back);
            continue;
        }
        cr_assert_eq(bits(f), bits(want), "h %04x: %a vs %a", h, f, want);
        cr_assert_eq(qrr_f32_to_f16(f), (uint16_t)h, "round trip of %04x", h);
    }
}

/* Narrowing: every midpoint between neighbouring f16 values and its two f32 neighbours, plus
 * random floats, rounded like the compiler's _Float16 conversion (round to nearest even). */
Test(half, f32_to_f16_rounding)
{
    for (uint32_t h = 0; h < 0x7c00u; h++) {
        double lo = qrr_f16_to_f32((uint16_t)h);
        double hi = h + 1 < 0x7c00u ? qrr_f16_to_f32((uint16_t)(h + 1)) : 65536.0;
        float mid = (float)((lo + hi) / 2); /* exact in fp32 */
        float probes[3] = {mid, nextafterf(mid, 0.0f), nextafterf(mid, INFINITY)};
        for (int p = 0; p < 3; p++)
            for (int s = 0; s < 2; s++) {
                float f = s ? -probes[p] : probes[p];
                _Float16 c = (_Float16)f;
                uint16_t want;
                memcpy(&want, &c, 2);
                cr_assert_eq(qrr_f32_to_f16(f), want, "%a: %04x vs %04x", f, qrr_f32_to_f16(f), want);
            }
    }
    for (int i = 0; i < 200000; i++) {
        float f = frand() * ldexpf(1.0f, (int)(frand() * 40.0f));
        _Float16 c = (_Float16)f;
        uint16_t want;
        memcpy(&want, &c, 2);
        cr_assert_eq(qrr_f32_to_f16(f), want, "%a", f);
    }
    cr_assert_eq(qrr_f32_to_f16(INFINITY), 0x7c00u);
    cr_assert_eq(qrr_f32_to_f16(-1e10f), 0xfc00u);
}

Test(half, bf16_exhaustive)
{
    for (uint32_t h = 0; h < 65536; h++) {
        float f = qrr_bf16_to_f32((uint16_t)h);
        cr_assert_eq(bits(f), h << 16, "h %04x", h);
    }
}
