/* cpu_internal.h — what the CPU kernel files share among themselves: ISA levels, the
 * per-ISA GEMM and attention entry points, the int8 activation quantization rule and
 * exact inline f16/bf16 conversions. Not part of the public interface (see qrr_cpu.h). */
#ifndef QRR_CPU_INTERNAL_H
#define QRR_CPU_INTERNAL_H

#include <math.h>
#include <stdint.h>
#include <string.h>
#include "qrr_cpu.h"

/* Which family of vector versions this build has: the Makefile compiles the x86 files
 * (*_avx2.c, *_avx512.c) only for x86-64 and the NEON files (*_neon.c) only for AArch64;
 * other targets get the scalar versions alone. */
#if defined(__x86_64__)
#define QRR__X86 1
#elif defined(__aarch64__)
#define QRR__ARM64 1
#endif

/* Function attributes for the vector versions: the Makefile passes no -march flag, so each
 * vector function names the instructions it may use and is only called after detection.
 * AArch64's baseline has NEON (Advanced SIMD, with f16 <-> f32 conversions); only the int8
 * dot products (sdot, an Armv8.2 option, so the attribute names that level) need naming. */
#if defined(QRR__ARM64)
#define QRR__DOTPROD __attribute__((target("arch=armv8.2-a+dotprod")))
#endif
#define QRR__AVX2 __attribute__((target("avx2,fma,f16c")))
#define QRR__AVX512                                                                          \
    __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,avx2,fma,f16c")))
#define QRR__AVX512VNNI                                                                      \
    __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,avx512vnni,avx2,fma,f16c")))

/* f16 / bf16 -> f32: qrr_f16_to_f32, qrr_bf16_to_f32 (qrr_half.h, inline). */

/* ---- int8 activation quantization, the one rule every version follows ----
 * amax = max |x|; when it is 0 the row quantizes to zeros with scale 0; when it is not
 * finite the row quantizes to zeros with scale NaN (the output rows become NaN, as fp32
 * math would give). Otherwise q = rne(clamp(x * (127 / amax), -127, 127)) and the row's
 * scale is amax / 127. Returns the scale. */
static inline float qrr__quant_scale(float amax, float *inv)
{
    if (!(amax <= 3.402823466e38f)) { /* NaN or Inf */
        *inv = 0.0f;
        return NAN;
    }
    if (amax == 0.0f) {
        *inv = 0.0f;
        return 0.0f;
    }
    *inv = 127.0f / amax;
    return amax / 127.0f;
}

/* max |x[i]|, NaN when any x[i] is NaN. */
static inline float qrr__absmax(const float *x, int k)
{
    float amax = 0.0f;
    int nan = 0;
    for (int i = 0; i < k; i++) {
        float a = fabsf(x[i]);
        nan |= a != a;
        amax = a > amax ? a : amax;
    }
    return nan ? NAN : amax;
}

static inline int8_t qrr__quant_one(float x, float inv)
{
    float v = x * inv;
    v = v > 127.0f ? 127.0f : v;
    v = v < -127.0f ? -127.0f : v;
    if (v != v) v = 0.0f;
    return (int8_t)nearbyintf(v); /* default rounding mode: to nearest even */
}

#define QRR_MAX_HEAD_DIM_CPU 1024 /* largest head_dim the attention versions take (= QRR_MAX_HEAD_DIM) */
#define QRR__ROPE_MAX_HALF 256 /* cos/sin computed per row in pieces of this many */

/* cos and sin of the fp32 angles pos * inv_freq[i], i < cnt, each computed in double and
 * rounded once (Transformers takes them of the fp32 angle). */
static inline void qrr__rope_angles(float pos, const float *inv_freq, int cnt, float *cs, float *sn)
{
    for (int i = 0; i < cnt; i++) {
        float ang = pos * inv_freq[i];
        cs[i] = (float)cos((double)ang);
        sn[i] = (float)sin((double)ang);
    }
}

/* ---- ISA levels ----
 * Ordered levels, each a superset of the one below; the numbers mean different instruction
 * sets on each architecture (level 1 is avx2 on x86-64, neon on AArch64). */
typedef enum qrr__isa {
    QRR__ISA_SCALAR = 0,
    QRR__ISA_AVX2 = 1,    /* x86-64: avx2 + fma + f16c */
    QRR__ISA_NEON = 1,    /* AArch64: Advanced SIMD */
    QRR__ISA_AVX512 = 2,  /* x86-64: avx512 f/bw/vl/dq (+ vnni for int8 when present) */
    QRR__ISA_DOTPROD = 2, /* AArch64: neon + sdot (only the int8 GEMM differs from neon) */
    QRR__ISA_COUNT = 3
} qrr__isa;

/* The level the dispatching entry points use: the best this CPU has, lowered by
 * QRR_CPU_ISA=scalar|avx2|avx512 (x86-64) or scalar|neon|neon-dotprod (AArch64). Decided
 * once, thread-safely. */
qrr__isa qrr__cpu_isa(void);
/* Highest level this CPU supports, ignoring the environment. */
qrr__isa qrr__cpu_isa_max(void);

/* ---- GEMM pieces ----
 * A job is the whole product; each version computes rows [i0, i1) x columns [j0, j1) of it
 * and the driver (gemm.c) splits the space among the pool's threads. For int8 weights the
 * driver first quantizes X into xq: row i at xq + i * ldq bytes, k values then zeros up to
 * ldq bytes, holding q + 128 (u8) for the VNNI version, q as int16 for the AVX2 version, q
 * (s8) for the others; xs[i] its scale. */
typedef struct qrr__gemm_args {
    const float *x;
    int ldx, m;
    const qrr_cpu_weight *w;
    float *y;
    int ldy, accumulate;
    const uint8_t *xq;
    size_t ldq;
    const float *xs;
    /* fp weights, moderate m (optional): X transposed, xt[kk * ldt + i] = X[i][kk] */
    const float *xt;
    size_t ldt;
} qrr__gemm_args;

void qrr__gemm_ref_fp(const float *x, int ldx, const qrr_cpu_weight *w, float *y, int ldy,
                      int accumulate, int i0, int i1, int j0, int j1);
void qrr__gemm_ref_i8(const float *x, int ldx, const qrr_cpu_weight *w, float *y, int ldy,
                      int accumulate, int i0, int i1, int j0, int j1);
float qrr__i8_finish(const int64_t *acc, int nblocks, const float *wscale, float xscale);
void qrr__gemm_fp_avx2(const qrr__gemm_args *a, int i0, int i1, int j0, int j1);
void qrr__gemm_fp_avx512(const qrr__gemm_args *a, int i0, int i1, int j0, int j1);
void qrr__gemm_i8_avx2(const qrr__gemm_args *a, int i0, int i1, int j0, int j1);
void qrr__gemm_i8_vnni(const qrr__gemm_args *a, int i0, int i1, int j0, int j1);
/* W packed once for the int8 versions that read a packed copy (VNNI, AVX2), one layout for
 * both: for each panel of QRR__I8_NR columns (zeros past n) the depth in
 * [ceil(k/4)][QRR__I8_NR][4] order (zeros past k), then each panel's row sums (int32, the
 * VNNI version's correction for its u8 offset). */
#define QRR__I8_NR 32
static inline size_t qrr__i8_panel_bytes(int k)
{
    return (size_t)((k + 3) / 4) * QRR__I8_NR * 4;
}
static inline size_t qrr__i8_sums_offset(int n, int k)
{
    return (size_t)((n + QRR__I8_NR - 1) / QRR__I8_NR) * qrr__i8_panel_bytes(k);
}
static inline size_t qrr__i8_packed_size(int n, int k)
{
    return qrr__i8_sums_offset(n, k) + (size_t)((n + QRR__I8_NR - 1) / QRR__I8_NR) * QRR__I8_NR * 4;
}
void qrr__i8_vnni_pack(const qrr_cpu_weight *w, uint8_t *mem);
void qrr__i8_pack_portable(const qrr_cpu_weight *w, uint8_t *mem); /* the reference */
void qrr__i8_pack_avx2(const qrr_cpu_weight *w, uint8_t *mem); /* its bytes, faster */
/* One row of X to int16 by the rule above (the AVX2 version's form); returns its scale. */
float qrr__quant_row_avx2(const float *x, int k, int16_t *q, size_t ldq);
void qrr__gemm_fp_neon(const qrr__gemm_args *a, int i0, int i1, int j0, int j1);
void qrr__gemm_i8_neon(const qrr__gemm_args *a, int i0, int i1, int j0, int j1);
void qrr__gemm_i8_dotprod(const qrr__gemm_args *a, int i0, int i1, int j0, int j1);
/* One row of X to int8 (+ offset) by the rule above; returns its scale. */
float qrr__quant_row_avx512(const float *x, int k, uint8_t *q, size_t ldq, int offset);
float qrr__quant_row_neon(const float *x, int k, int8_t *q, size_t ldq);

/* Attention versions over query heads [h0, h1) and query rows [r0, r1). */
typedef struct qrr__attn_args {
    const float *q, *k, *v, *pk, *pv;
    int n_prefix, t, nq, nkv, d;
    float *out;
} qrr__attn_args;
static inline float qrr__attn_scale(int d)
{
    return (float)(1.0 / sqrt((double)d));
}
/* Key (or value) row j of kv head g: prefix rows first, then the sequence's own. */
static inline const float *qrr__key_row(const qrr__attn_args *a, const float *pre,
                                        const float *own, int j, int g)
{
    size_t kd = (size_t)a->nkv * a->d;
    if (j < a->n_prefix) return pre + (size_t)j * kd + (size_t)g * a->d;
    return own + (size_t)(j - a->n_prefix) * kd + (size_t)g * a->d;
}
void qrr__attention_scalar(const qrr__attn_args *a, int h0, int h1, int r0, int r1);
void qrr__attention_avx2(const qrr__attn_args *a, int h0, int h1, int r0, int r1);
void qrr__attention_avx2_rows(const qrr__attn_args *a, int h0, int h1, int r0, int r1);
void qrr__attention_avx512(const qrr__attn_args *a, int h0, int h1, int r0, int r1);
void qrr__attention_neon(const qrr__attn_args *a, int h0, int h1, int r0, int r1);
/* The tiles of the AVX-512 and AVX2 versions: query heads per tile and rows per tile for
 * this shape (QRR__ATTN_TILE_LANES of them at most, half that when d > 128), and the largest
 * head_dim they take (others go to the scalar version). */
void qrr__attention_tile(int d, int group, int *heads, int *rows);
/* A tiled version's work on kv head g, query heads g*group + hh0 .. + nh, rows r0 .. r1. */
typedef void (*qrr__attn_tile_fn)(const qrr__attn_args *a, int g, int hh0, int nh, int r0, int r1);
/* Heads h0 .. h1 and rows r0 .. r1 cut into qrr__attention_tile's tiles, each given to tile. */
void qrr__attention_tiles(const qrr__attn_args *a, int h0, int h1, int r0, int r1,
                          qrr__attn_tile_fn tile);
/* Copies rows j0 .. j0 + n of kv head g (keys: pre = a->pk, own = a->k; or values) into buf
 * [n][d], each row's address into ptr[] (may be NULL), fetching ahead: the rows lie nkv * d
 * floats apart (a page for the 0.6B shape), where the hardware prefetcher does not follow. */
void qrr__attn_pack_rows(const qrr__attn_args *a, const float *pre, const float *own, int g,
                         int j0, int n, int nk_max, float *buf, const float **ptr);
#define QRR__ATTN_TILE_LANES 64
#define QRR__ATTN_TILE_ELEMS 8192 /* lanes * d, for both d ranges */
#define QRR__ATTN_TILE_MAX_D 256

/* Scratch memory owned by a pool (NULL pool: NULL). Grows, never shrinks; valid until the
 * next call or qrr_pool_free. Only between runs, from the pool's caller thread. */
void *qrr__pool_scratch(qrr_pool *p, size_t bytes);

#endif
