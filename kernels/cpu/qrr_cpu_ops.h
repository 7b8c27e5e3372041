/* qrr_cpu_ops.h — the per-token operations (RMS norm, rotary embedding, SiLU product) and the
 * kernels' vector e^x at a chosen ISA level, for tests and benchmarks; the plain entry points
 * in qrr_cpu.h pick the level themselves. Also the per-level versions that ops.c dispatches
 * to (internal, qrr__). Same contracts as the qrr_cpu.h functions of the same name. */
#ifndef QRR_CPU_OPS_H
#define QRR_CPU_OPS_H

#include "qrr_cpu.h"

/* isa: 0 scalar, 1 avx2 or neon, 2 avx512 or neon-dotprod (lowered to what this CPU has; the
 * levels without their own version use the next lower one). */
void qrr_cpu_rmsnorm_isa(int isa, const float *x, const float *w, float *y, int rows, int n,
                         float eps);
void qrr_cpu_rope_isa(int isa, float *x, int rows, int nh, int d, int pos0,
                      const float *inv_freq);
void qrr_cpu_silu_mul_isa(int isa, const float *gu, float *out, int rows, int n);
/* y[i] = e^x[i]: expf for the scalar level, the kernels' polynomial (~2 ulp) for avx2, avx512
 * and neon. */
void qrr_cpu_exp_isa(int isa, const float *x, float *y, int n);

/* The same operations with their rows split among the pool's threads (contiguous runs of
 * rows, bit for bit what the plain calls give; small inputs run on the caller alone). The
 * runtime can call these where it has the pool; one call at a time per pool. */
void qrr_cpu_rmsnorm_pool(const float *x, const float *w, float *y, int rows, int n, float eps,
                          qrr_pool *pool);
void qrr_cpu_rope_pool(float *x, int rows, int nh, int d, int pos0, const float *inv_freq,
                       qrr_pool *pool);
void qrr_cpu_silu_mul_pool(const float *gu, float *out, int rows, int n, qrr_pool *pool);

void qrr__rmsnorm_avx512(const float *x, const float *w, float *y, int rows, int n, float eps);
void qrr__rope_avx512(float *x, int rows, int nh, int d, int pos0, const float *inv_freq);
void qrr__silu_mul_avx512(const float *gu, float *out, int rows, int n);
void qrr__exp_avx512(const float *x, float *y, int n);
void qrr__rmsnorm_avx2(const float *x, const float *w, float *y, int rows, int n, float eps);
void qrr__silu_mul_avx2(const float *gu, float *out, int rows, int n);
void qrr__exp_avx2(const float *x, float *y, int n);
void qrr__rmsnorm_neon(const float *x, const float *w, float *y, int rows, int n, float eps);
void qrr__rope_neon(float *x, int rows, int nh, int d, int pos0, const float *inv_freq);
void qrr__silu_mul_neon(const float *gu, float *out, int rows, int n);
void qrr__exp_neon(const float *x, float *y, int n);

#endif
