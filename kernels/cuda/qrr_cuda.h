/* qrr_cuda.h — the CUDA compute kernels, callable from C: one qrr_cuda_<op>() per .cu file.
 * Knows nothing of files or models: device pointers in, device pointers out, all work queued
 * on the given stream. Every entry point returns a cudaError_t value as int (0 = success;
 * launch errors included), except the GEMM ones, which return a qrr_status with detail.
 *
 * Shapes: T = tokens, S = sequences, P = prefix tokens, H = hidden, Q/K = q/kv heads,
 *         D = head_dim (128 for Qwen3), I = intermediate, N/K = GEMM output/input widths.
 * Types: f16 = IEEE half (uint16_t bits on the host side), residual stream fp32. */
#ifndef QRR_CUDA_H
#define QRR_CUDA_H

#include <stddef.h>
#include <stdint.h>
#include "qrr_diag.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct CUstream_st *qrr_cuda_stream; /* = cudaStream_t, without the CUDA headers */

/* ---- device and errors (device.cu) ---- */
/* Number of devices; on failure *n = 0 and the message names the CUDA error. */
int qrr_cuda_device_count(int *n, qrr_diag *d);
/* Name, memory and compute capability of device dev, as one line into buf. */
int qrr_cuda_device_describe(int dev, char *buf, size_t cap, qrr_diag *d);
/* The CUDA error string of a code returned by the kernels below. */
const char *qrr_cuda_error_str(int err);

/* ---- storage conversion (convert.cu) ---- */
/* dst[i] = f16(src[i]) for n elements of src_dtype (QRR_DTYPE_F32 / BF16 / F16). Counts in
 * *d_overflow (a device int, zeroed by the caller) the elements that are finite in the
 * source but leave the f16 range, or are not finite. */
int qrr_cuda_to_f16(const void *src, uint32_t src_dtype, size_t n, uint16_t *dst,
                    int *d_overflow, qrr_cuda_stream st);

/* ---- embedding (embed.cu) ---- */
/* x[t, :] = fp32 row ids[t] of table [V, H] (dtype F32/F16/BF16/I8; scale [V] for I8 per
 * row, or [V, H/block] when block > 0). */
int qrr_cuda_embed(const int32_t *ids, int T, const void *table, uint32_t dtype,
                   const float *scale, int block, int H, float *x, qrr_cuda_stream st);

/* ---- RMSNorm (rmsnorm.cu) ---- */
/* y = x / rms(x) * w per row of width n (x fp32). Output: f16 into y16 when y16 != NULL;
 * int8 into y8 with a per-row scale into ys (y = y8 * ys[row]) when y8 != NULL; fp32 into
 * y32 when y32 != NULL. Any combination. */
int qrr_cuda_rmsnorm(const float *x, const float *w, int rows, int n, float eps,
                     uint16_t *y16, int8_t *y8, float *ys, float *y32, qrr_cuda_stream st);
/* The same after adding the W8A8 product acc [rows, n] into x (x[r, j] += acc[r, j] *
 * sx[r] * sw[j], as qrr_cuda_dequant), in place, in the same pass: the residual add of
 * o_proj or down_proj fused with the RMSNorm that follows. ys may be sx. */
int qrr_cuda_rmsnorm_add_i32(float *x, const int32_t *acc, const float *sx, const float *sw,
                             const float *w, int rows, int n, float eps, uint16_t *y16,
                             int8_t *y8, float *ys, float *y32, qrr_cuda_stream st);

/* ---- q/k RMSNorm + RoPE (qk_norm_rope.cu) ---- */
/* In place on qkv [T, ld] (f16): the first Q heads of width D at column 0 are the queries,
 * the next K heads the keys. Each head: RMSNorm with qw / kw [D], then rotate-half RoPE at
 * position pos[t] with inv_freq [D/2]. nq may be 0 (keys only). */
int qrr_cuda_qk_norm_rope(uint16_t *qkv, int ld, int T, int nq, int nk, int D,
                          const float *qw, const float *kw, float eps, const int *pos,
                          const float *inv_freq, qrr_cuda_stream st);
/* The same from the int32 product acc [T, ld] of a W8A8 GEMM (q|k|v columns, as qkv),
 * dequantized on the way in with row scales sx [T] and column scales sw [ld]; the result,
 * values included (dequantized only), is written as f16 into qkv [T, ld]. */
int qrr_cuda_qk_norm_rope_i32(const int32_t *acc, const float *sx, const float *sw,
                              uint16_t *qkv, int ld, int T, int nq, int nk, int D,
                              const float *qw, const float *kw, float eps, const int *pos,
                              const float *inv_freq, qrr_cuda_stream st);

/* ---- SwiGLU (swiglu.cu) ---- */
/* out[t, i] = silu(gu[t, i]) * gu[t, I + i] (gu f16 [T, 2I]); into f16 out16, or int8 out8
 * with per-row scale os. */
int qrr_cuda_swiglu(const uint16_t *gu, int T, int I, uint16_t *out16, int8_t *out8,
                    float *os, qrr_cuda_stream st);
/* The same from the int32 product acc [T, 2I] of a W8A8 GEMM, dequantized on the way in
 * with row scales sx [T] and column scales sw [2I]; os may be sx. */
int qrr_cuda_swiglu_i32(const int32_t *acc, const float *sx, const float *sw, int T, int I,
                        uint16_t *out16, int8_t *out8, float *os, qrr_cuda_stream st);

/* ---- int8 helpers (quant.cu) ---- */
/* Per-row symmetric int8 of x (f16 [rows, n]): q = round(x / s), s = max|x| / 127. */
int qrr_cuda_quantize_rows(const uint16_t *x, int rows, int n, int8_t *q, float *s,
                           qrr_cuda_stream st);
/* x[r, :] = f16(q[r, :] * s[r]) for rows of width n: back from int8 activations to f16 (the
 * way to the W8A16 kernel when cuBLASLt refuses an int8 shape). */
int qrr_cuda_dequantize_rows(const int8_t *q, const float *s, int rows, int n, uint16_t *x,
                             qrr_cuda_stream st);
/* From the int32 result of an int8 GEMM acc [M, N]: v = acc * sx[m] * sw[n]; written as f16
 * into y16 (ldy) or added into the fp32 y32 (ldy) when add != 0, else stored there. */
int qrr_cuda_dequant(const int32_t *acc, int M, int N, const float *sx, const float *sw,
                     uint16_t *y16, float *y32, int ldy, int add, qrr_cuda_stream st);

/* ---- weight-only int8 GEMM, dequantized in the kernel (w8a16.cu) ---- */
/* Y[M, N] = X[M, K] (f16, ldx) · (W8[N, K] * scale)^T with scale [N] (block 0) or
 * [N, K/block]. Output as qrr_cuda_dequant: f16 y16, or fp32 y32 (add: accumulate). */
int qrr_cuda_w8a16_gemm(const uint16_t *x, int ldx, int M, const int8_t *w, const float *scale,
                        int block, int N, int K, uint16_t *y16, float *y32, int ldy, int add,
                        qrr_cuda_stream st);

/* ---- attention (attention.cu) ---- */
/* Causal grouped-query attention over S packed sequences. Sequence s owns tokens
 * starts[s] .. starts[s] + lens[s] - 1 of q (f16, row stride ldq, Q heads of D) and of k, v
 * (f16, stride ldkv, K heads of D). Each query token j of a sequence attends to all P prefix
 * tokens (pk, pv: f16 [P, K*D], may be NULL when P = 0) then to own tokens 0..j; query
 * head h uses kv head h / (Q / K); scale 1/sqrt(D); softmax in fp32. Output f16 [., Q*D]
 * with stride ldo, at the query's row. When last_only != 0 only each sequence's last token
 * is a query, and its output goes to row s of out (the gathered layout).
 * max_len bounds lens[]. impl: 0 = best available, 1 = simple (fp32 FMA), 2 = tensor cores.
 * qrr_cuda_attention_setup must have run once on the device first (it reads the device's
 * multiprocessor count, which sizes the tensor-core kernel's blocks); it returns a
 * cudaError_t. */
int qrr_cuda_attention_setup(void);
int qrr_cuda_attention(const uint16_t *q, int ldq, const uint16_t *k, const uint16_t *v,
                       int ldkv, const uint16_t *pk, const uint16_t *pv, int P,
                       const int *starts, const int *lens, int S, int max_len, int last_only,
                       int nq, int nk, int D, uint16_t *out, int ldo, int impl,
                       qrr_cuda_stream st);

/* ---- gathers and the head (head.cu) ---- */
/* dst[s, :] = src[rows[s], :] for S rows of width n (elem_size 2 or 4 bytes). */
int qrr_cuda_gather_rows(const void *src, int ld_src, const int *rows, int S, int n,
                         int elem_size, void *dst, int ld_dst, qrr_cuda_stream st);
/* out[s * n_rows + r] = Σ_j h[s, j] · head[r, j], accumulated in double (h fp32 [S, H],
 * head fp32 [n_rows, H]). */
int qrr_cuda_head(const float *h, int S, int H, const float *head, int n_rows, double *out,
                  qrr_cuda_stream st);

/* ---- GEMMs through cuBLASLt (gemm.cu) ---- */
typedef struct qrr_cuda_gemm qrr_cuda_gemm; /* handle, workspace, per-shape plan cache */
int qrr_cuda_gemm_create(qrr_cuda_gemm **out, size_t workspace_bytes, qrr_diag *d);
void qrr_cuda_gemm_free(qrr_cuda_gemm *g);
/* on: shapes planned from now on time the heuristic's candidates (up to 8) at their first
 * run outside graph capture and keep the fastest, instead of taking its first; products
 * that accumulate into their output keep the first. Off by default. */
void qrr_cuda_gemm_set_tuning(qrr_cuda_gemm *g, int on);
/* Plans whose algorithm was chosen by timing so far. */
long qrr_cuda_gemm_tuned(const qrr_cuda_gemm *g);
/* Y[M, N] (+)= X[M, K] · W[N, K]^T; X and W f16, K contiguous (the "TN" case); fp32
 * accumulation. Y is f16 (y_f32 = 0) or fp32 (y_f32 = 1); accumulate adds into Y (fp32
 * only). */
int qrr_cuda_gemm_f16(qrr_cuda_gemm *g, const uint16_t *x, int ldx, int M, const uint16_t *w,
                      int N, int K, void *y, int ldy, int y_f32, int accumulate,
                      qrr_cuda_stream st, qrr_diag *d);
/* ACC[M, N] = X8[M, K] · W8[N, K]^T in int32 (int8 tensor cores). K, ldx and ldacc must be
 * multiples of 4 (qrr_cuda_gemm_i8_ok says whether a shape can run). The product runs over
 * qrr_cuda_gemm_i8_rows(M) rows: X8 and ACC must have that many; the extra rows of X8 may
 * hold anything and the extra rows of ACC get their products. QRR_ERR_UNSUPPORTED when
 * cuBLASLt has no int8 kernel for the shape (the caller may use qrr_cuda_w8a16_gemm). */
int qrr_cuda_gemm_i8(qrr_cuda_gemm *g, const int8_t *x, int ldx, int M, const int8_t *w,
                     int N, int K, int32_t *acc, int ldacc, qrr_cuda_stream st, qrr_diag *d);
int qrr_cuda_gemm_i8_ok(int N, int K);
#define QRR_CUDA_I8_ROW_MULTIPLE 32
/* M rounded up to a multiple of QRR_CUDA_I8_ROW_MULTIPLE (0 for M <= 0, -1 on overflow). */
int qrr_cuda_gemm_i8_rows(int M);

#ifdef __cplusplus
}
#endif
#endif
