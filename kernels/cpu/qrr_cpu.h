/* qrr_cpu.h — the CPU compute kernels: GEMM against stored weights, attention and the
 * small per-token operations. Knows nothing of files or models: plain arrays in, plain
 * arrays out. Each entry point picks its fastest version for this CPU at run time;
 * the qrr_cpu_ref_* versions are the scalar references the tests hold them against. */
#ifndef QRR_CPU_H
#define QRR_CPU_H

#include <stddef.h>
#include <stdint.h>
#include "qrr_half.h" /* f16/bf16 <-> f32 scalar conversions */
#include "qrr_pool.h"

/* Weight matrix W [n, k] row-major (k contiguous), as stored in the file. */
typedef struct qrr_cpu_weight {
    uint32_t dtype;      /* QRR_DTYPE_F32 / F16 / BF16 / I8 (qrr_format.h values) */
    const void *data;    /* [n, k] */
    const float *scale;  /* I8 only: [n] per channel, or [n, k / block] per block */
    int n, k;
    int block;           /* I8 only: 0 per channel, else block size along k */
    const void *packed;  /* I8 only, optional: W in the GEMM's own layout (qrr_cpu_i8_pack) */
} qrr_cpu_weight;

/* Y[m, n] (+)= X[m, k] · W[n, k]^T, fp32 accumulation. accumulate: 0 overwrite, 1 add into Y
 * (used for the residual stream). I8 weights: X is quantized per row (token) to int8 with a
 * dynamic scale, dot products in int32, then scaled. ldx/ldy: row strides in floats.
 * int8 rule (every version, bit for bit): amax = max|x| of the row; q = rne(clamp(x * (127 /
 * amax), -127, 127)); per channel y = (float)dot(q, w) * (amax / 127 * scale[j]); per block
 * y = (sum over blocks, in order, of (float)dot_b * scale[j, b]) * (amax / 127). A row of zeros
 * gives 0, a row holding Inf or NaN gives NaN. The vector int8 versions need k <= 65536 and,
 * per block, a block that is a multiple of 4 and divides k; other shapes use the scalar
 * version (correct, slow). The vector versions use up to ~130 KiB of stack per thread.
 * Thread-safe for distinct outputs; one call at a time per pool. */
void qrr_cpu_gemm(const float *x, int ldx, int m, const qrr_cpu_weight *w,
                  float *y, int ldy, int accumulate, qrr_pool *pool);
/* The x86-64 int8 GEMMs (AVX-512 VNNI, AVX2) read W as panels of 32 columns in 4-byte groups:
 * the VNNI version packs each panel it reads into that layout on every call, the AVX2 version
 * reads W's rows instead, unless w->packed holds the whole weight so packed (one layout for
 * both). qrr_cpu_i8_packed_size: the bytes of w's packed copy; 0 where the int8 GEMM this CPU
 * uses (qrr_cpu_gemm's choice) reads no such copy: other CPUs, other dtypes, and per-block
 * scales under VNNI (which reads those weights as stored).
 * qrr_cpu_i8_pack: writes it into mem (64-byte aligned, that many bytes) and points w->packed
 * at it; the results stay bit for bit those of the unpacked weight. */
size_t qrr_cpu_i8_packed_size(const qrr_cpu_weight *w);
void qrr_cpu_i8_pack(qrr_cpu_weight *w, void *mem);
void qrr_cpu_ref_gemm(const float *x, int ldx, int m, const qrr_cpu_weight *w,
                      float *y, int ldy, int accumulate);

/* Causal grouped-query attention for one sequence of t new tokens that also attends to
 * n_prefix cached tokens before them (a shared prompt prefix; 0 for none).
 *   q      [t, nq*d]          (already normed and rotated)
 *   k, v   [t, nkv*d]         this sequence's own keys/values
 *   pk, pv [n_prefix, nkv*d]  the prefix's keys/values (may be NULL when n_prefix is 0)
 *   out    [t, nq*d]
 * Token i attends to all n_prefix prefix tokens and own tokens 0..i. Scale 1/sqrt(d).
 * Query head h uses kv head h / (nq / nkv). Softmax in fp32. nkv must divide nq and
 * d <= 1024 (else out is filled with NaN); d a multiple of 16 (AVX2: of 8) takes the vector
 * paths. */
void qrr_cpu_attention(const float *q, const float *k, const float *v,
                       const float *pk, const float *pv, int n_prefix, int t,
                       int nq, int nkv, int d, float *out, qrr_pool *pool);
void qrr_cpu_ref_attention(const float *q, const float *k, const float *v,
                           const float *pk, const float *pv, int n_prefix, int t,
                           int nq, int nkv, int d, float *out);

/* y[i, :] = x[i, :] / rms(x[i, :]) * w, for rows of width n; eps inside the root. */
void qrr_cpu_rmsnorm(const float *x, const float *w, float *y, int rows, int n, float eps);
/* Rotary embedding (rotate-half convention) on rows of nh heads of width d, in place:
 * row i is at position pos0 + i. inv_freq [d/2]. */
void qrr_cpu_rope(float *x, int rows, int nh, int d, int pos0, const float *inv_freq);
/* out[i] = silu(gate[i]) * up[i] over rows where gate and up are the two halves of
 * gu [rows, 2*n] (gate first). */
void qrr_cpu_silu_mul(const float *gu, float *out, int rows, int n);
/* One row of an embedding [vocab, n] in any dtype to fp32. */
void qrr_cpu_embed_row(const qrr_cpu_weight *w, int row, float *out);

/* What this CPU offers, for dispatch and for reports. x86-64 (cpuid): the first eleven;
 * AArch64 (the kernel's hwcaps): asimd (NEON), asimddp (sdot/udot), fphp and asimdhp (f16
 * arithmetic, scalar and vector; not needed: f16 <-> f32 conversion is baseline). */
typedef struct qrr_cpu_features {
    int avx2, fma, f16c, avx512f, avx512bw, avx512vl, avx512vnni, avxvnni, avx512bf16, amx_int8, amx_bf16;
    int asimd, asimddp, fphp, asimdhp;
} qrr_cpu_features;
qrr_cpu_features qrr_cpu_detect(void);
/* Short names of the kernel versions chosen: the GEMM for a weight dtype ("avx512-vnni",
 * "avx2", "neon-dotprod", "neon", "scalar"), and the attention and the per-token operations
 * ("avx512", "avx2", "neon", "scalar"). */
const char *qrr_cpu_gemm_impl(uint32_t dtype);
const char *qrr_cpu_attention_impl(void);
const char *qrr_cpu_ops_impl(void);
/* One line naming every kernel chosen and the features they were chosen from, e.g.
 * "f32/f16/bf16 GEMM neon, int8 GEMM neon-dotprod, attention neon, norm/rope/swiglu neon
 * (aarch64: asimd asimddp)". Static storage, the same for the whole process. */
const char *qrr_cpu_describe(void);

/* The versions at a chosen level, for tests and benchmarks: isa 0 scalar; on x86-64 1 avx2,
 * 2 avx512; on AArch64 1 neon, 2 neon-dotprod (a level above what this CPU has is lowered to
 * qrr_cpu_isa_max()). The plain entry points use the best level, lowered by the environment
 * variable QRR_CPU_ISA=scalar|avx2|avx512 or scalar|neon|neon-dotprod. */
int qrr_cpu_isa_max(void);
const char *qrr_cpu_isa_name(int isa);
void qrr_cpu_gemm_isa(int isa, const float *x, int ldx, int m, const qrr_cpu_weight *w,
                      float *y, int ldy, int accumulate, qrr_pool *pool);
void qrr_cpu_attention_isa(int isa, const float *q, const float *k, const float *v,
                           const float *pk, const float *pv, int n_prefix, int t,
                           int nq, int nkv, int d, float *out, qrr_pool *pool);

#endif
