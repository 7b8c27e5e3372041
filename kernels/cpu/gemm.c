/* gemm.c — qrr_cpu_gemm's driver: picks the version for the weight dtype and the CPU level,
 * quantizes X once for int8 weights (transposes it once for fp weights at moderate m on
 * AVX-512), and splits Y's rows x columns among the pool's threads.
 * The arithmetic lives in gemm_ref.c (scalar), gemm_avx2.c and gemm_avx512.c (x86-64) and
 * gemm_neon.c (AArch64). */
#include <stdlib.h>
#include "cpu_internal.h"

#define COL_UNIT 32 /* columns per split unit: the vector versions' panel width */
#define ROW_UNIT 8  /* rows per split unit when rows are split too */
#define I8_MAX_K 65536 /* u8 x s8 sums stay below 2^31 up to here */
#define XT_MIN_M 10   /* fp weights, AVX-512: from here to XT_MAX_M rows X is transposed once */
#define XT_MAX_M 64   /* and W is read without packing (see gemm_avx512.c) */

typedef void (*gemm_fn)(const qrr__gemm_args *a, int i0, int i1, int j0, int j1);

typedef struct gemm_task {
    qrr__gemm_args a;
    gemm_fn fn;
    int scalar_i8;
    int n;
    /* quantization of X (int8 weights): rows split among threads */
    uint8_t *xq_rw;
    float *xs_rw;
    int offset; /* 128 (u8 form) or 0 (s8 and int16 forms) */
    int wide;   /* int16 form (the AVX2 version) */
    int isa;
    float *xt_rw; /* X transposed (fp weights, moderate m): columns of k split among threads */
} gemm_task;

static void scalar_fp(const qrr__gemm_args *a, int i0, int i1, int j0, int j1)
{
    qrr__gemm_ref_fp(a->x, a->ldx, a->w, a->y, a->ldy, a->accumulate, i0, i1, j0, j1);
}

static void scalar_i8(const qrr__gemm_args *a, int i0, int i1, int j0, int j1)
{
    qrr__gemm_ref_i8(a->x, a->ldx, a->w, a->y, a->ldy, a->accumulate, i0, i1, j0, j1);
}

/* Split [0, units) into n near-equal parts; part i is [*b, *e). */
static void split(int units, int n, int i, int *b, int *e)
{
    *b = (int)((long long)units * i / n);
    *e = (int)((long long)units * (i + 1) / n);
}

static void run_part(void *v, int ti, int nt)
{
    gemm_task *t = v;
    int m = t->a.m, n = t->n;
    int pn = (n + COL_UNIT - 1) / COL_UNIT, pm = (m + ROW_UNIT - 1) / ROW_UNIT;
    int tn = nt < pn ? nt : pn;
    int tm = nt / tn;
    if (tm > pm) tm = pm;
    if (ti >= tn * tm) return;
    int cb, ce, rb, re;
    split(pn, tn, ti % tn, &cb, &ce);
    split(pm, tm, ti / tn, &rb, &re);
    int j0 = cb * COL_UNIT, j1 = ce * COL_UNIT < n ? ce * COL_UNIT : n;
    int i0 = rb * ROW_UNIT, i1 = re * ROW_UNIT < m ? re * ROW_UNIT : m;
    if (i0 < i1 && j0 < j1) t->fn(&t->a, i0, i1, j0, j1);
}

static void quant_part(void *v, int ti, int nt)
{
    gemm_task *t = v;
    int k = t->a.w->k, b, e;
    split(t->a.m, nt, ti, &b, &e);
    for (int i = b; i < e; i++) {
        const float *xr = t->a.x + (size_t)i * t->a.ldx;
        uint8_t *q = t->xq_rw + (size_t)i * t->a.ldq;
#if defined(QRR__X86)
        if (t->wide) {
            t->xs_rw[i] = qrr__quant_row_avx2(xr, k, (int16_t *)q, t->a.ldq / 2);
            continue;
        }
        if (t->isa >= QRR__ISA_AVX512) {
            t->xs_rw[i] = qrr__quant_row_avx512(xr, k, q, t->a.ldq, t->offset);
            continue;
        }
#elif defined(QRR__ARM64)
        if (t->isa >= QRR__ISA_NEON) {
            t->xs_rw[i] = qrr__quant_row_neon(xr, k, (int8_t *)q, t->a.ldq);
            continue;
        }
#endif
        float inv, amax = qrr__absmax(xr, k);
        t->xs_rw[i] = qrr__quant_scale(amax, &inv);
        for (int kk = 0; kk < k; kk++)
            q[kk] = (uint8_t)(qrr__quant_one(xr[kk], inv) + t->offset);
        memset(q + k, t->offset, t->a.ldq - (size_t)k);
    }
}

#if defined(QRR__X86)
static void transpose_part(void *v, int ti, int nt)
{
    gemm_task *t = v;
    int b, e;
    split(t->a.w->k, nt, ti, &b, &e);
    for (int k0 = b; k0 < e; k0 += 64) {
        int k1 = k0 + 64 < e ? k0 + 64 : e;
        for (int i = 0; i < t->a.m; i++) {
            const float *xr = t->a.x + (size_t)i * t->a.ldx;
            for (int kk = k0; kk < k1; kk++) t->xt_rw[(size_t)kk * t->a.ldt + i] = xr[kk];
        }
    }
}
#endif

static int i8_shape_ok(const qrr_cpu_weight *w)
{
    if (w->k > I8_MAX_K) return 0;
    if (w->block > 0 && (w->block % 4 != 0 || w->k % w->block != 0)) return 0;
    return 1;
}

/* The version for int8 weights at this level (*offset: 128 when X is stored as u8), and for
 * fp weights. */
static gemm_fn vector_i8(int isa, int *offset)
{
    *offset = 0;
#if defined(QRR__X86)
    if (isa >= QRR__ISA_AVX512 && qrr_cpu_detect().avx512vnni) {
        *offset = 128;
        return qrr__gemm_i8_vnni;
    }
    if (isa >= QRR__ISA_AVX2) return qrr__gemm_i8_avx2;
#elif defined(QRR__ARM64)
    if (isa >= QRR__ISA_DOTPROD) return qrr__gemm_i8_dotprod;
    if (isa >= QRR__ISA_NEON) return qrr__gemm_i8_neon;
#endif
    (void)isa;
    return scalar_i8;
}

static gemm_fn vector_fp(int isa)
{
#if defined(QRR__X86)
    if (isa >= QRR__ISA_AVX512) return qrr__gemm_fp_avx512;
    if (isa >= QRR__ISA_AVX2) return qrr__gemm_fp_avx2;
#elif defined(QRR__ARM64)
    if (isa >= QRR__ISA_NEON) return qrr__gemm_fp_neon;
#endif
    (void)isa;
    return scalar_fp;
}

void qrr_cpu_gemm_isa(int isa, const float *x, int ldx, int m, const qrr_cpu_weight *w,
                      float *y, int ldy, int accumulate, qrr_pool *pool)
{
    if (m <= 0 || w->n <= 0) return;
    if (isa > (int)qrr__cpu_isa_max()) isa = (int)qrr__cpu_isa_max();
    gemm_task t;
    memset(&t, 0, sizeof t);
    t.a.x = x;
    t.a.ldx = ldx;
    t.a.m = m;
    t.a.w = w;
    t.a.y = y;
    t.a.ldy = ldy;
    t.a.accumulate = accumulate;
    t.n = w->n;
    t.isa = isa;
    if (w->k <= 0) { /* empty sums */
        for (int i = 0; i < m; i++)
            for (int j = 0; j < w->n; j++)
                if (!accumulate) y[(size_t)i * ldy + j] = 0.0f;
        return;
    }
    void *heap = NULL;
    if (w->dtype == 3) {
        t.fn = i8_shape_ok(w) ? vector_i8(isa, &t.offset) : scalar_i8;
#if defined(QRR__X86)
        t.wide = t.fn == qrr__gemm_i8_avx2;
#endif
        if (t.fn != scalar_i8) {
            size_t ldq = (((size_t)w->k + 63) / 64 * 64 + 64) * (t.wide ? 2 : 1);
            size_t bytes = ldq * (size_t)m + sizeof(float) * (size_t)m + 64;
            void *mem = qrr__pool_scratch(pool, bytes);
            if (!mem) mem = heap = aligned_alloc(64, (bytes + 63) / 64 * 64);
            if (!mem) {
                t.fn = scalar_i8;
            } else {
                t.a.ldq = ldq;
                t.xq_rw = mem;
                t.xs_rw = (float *)(t.xq_rw + ldq * (size_t)m);
                t.a.xq = t.xq_rw;
                t.a.xs = t.xs_rw;
                qrr_pool_run(pool, quant_part, &t);
            }
        }
    } else if (w->dtype <= 2) {
        t.fn = vector_fp(isa);
#if defined(QRR__X86)
        if (t.fn == qrr__gemm_fp_avx512 && m >= XT_MIN_M && m <= XT_MAX_M) {
            size_t ldt = ((size_t)m + 15) / 16 * 16;
            size_t bytes = sizeof(float) * (ldt * (size_t)w->k + 64) + 64;
            void *mem = qrr__pool_scratch(pool, bytes);
            if (!mem) mem = heap = aligned_alloc(64, (bytes + 63) / 64 * 64);
            if (mem) { /* without it: the packing version */
                t.xt_rw = mem;
                t.a.ldt = ldt;
                qrr_pool_run(pool, transpose_part, &t);
                t.a.xt = t.xt_rw;
            }
        }
#endif
    } else {
        for (int i = 0; i < m; i++)
            for (int j = 0; j < w->n; j++) y[(size_t)i * ldy + j] = NAN;
        return;
    }
    qrr_pool_run(pool, run_part, &t);
    free(heap);
}

size_t qrr_cpu_i8_packed_size(const qrr_cpu_weight *w)
{
#if defined(QRR__X86)
    int offset;
    int per_block = w->block > 0 && w->block < w->k;
    gemm_fn fn = w->dtype == 3 ? vector_i8((int)qrr__cpu_isa(), &offset) : NULL;
    /* the VNNI version reads the packed copy of per-channel weights only */
    if (w->n > 0 && w->k > 0 && i8_shape_ok(w) &&
        ((fn == qrr__gemm_i8_vnni && !per_block) || fn == qrr__gemm_i8_avx2))
        return qrr__i8_packed_size(w->n, w->k);
#else
    (void)w;
#endif
    return 0;
}

void qrr_cpu_i8_pack(qrr_cpu_weight *w, void *mem)
{
#if defined(QRR__X86)
    if (qrr_cpu_i8_packed_size(w) == 0) return;
    if (qrr_cpu_detect().avx512vnni && qrr__cpu_isa_max() >= QRR__ISA_AVX512)
        qrr__i8_vnni_pack(w, mem);
    else
        qrr__i8_pack_avx2(w, mem); /* packed sizes are nonzero for these two versions only */
    w->packed = mem;
#else
    (void)w;
    (void)mem;
#endif
}

void qrr_cpu_gemm(const float *x, int ldx, int m, const qrr_cpu_weight *w, float *y, int ldy,
                  int accumulate, qrr_pool *pool)
{
    qrr_cpu_gemm_isa((int)qrr__cpu_isa(), x, ldx, m, w, y, ldy, accumulate, pool);
}
