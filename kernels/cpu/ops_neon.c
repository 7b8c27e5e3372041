/* ops_neon.c — NEON versions of the per-token operations (AArch64): RMS norm (sum of squares
 * in double, 2 lanes x 4 chains), rotary embedding (cos/sin of each fp32 angle from the
 * double-precision library once per row for all heads, exactly as the scalar version, the
 * rotation 4 lanes wide) and the SiLU product (vector e^x). Same order of fp32 operations as
 * the scalar versions in ops.c; no dispatch here. */
#include <arm_neon.h>
#include "cpu_internal.h"
#include "qrr_cpu_ops.h"
#include "vec_exp_neon.h"

void qrr__rmsnorm_neon(const float *x, const float *w, float *y, int rows, int n, float eps)
{
    for (int r = 0; r < rows; r++) {
        const float *xr = x + (size_t)r * n;
        float *yr = y + (size_t)r * n;
        /* x*x is exact in double, so only the order of the sum differs from the scalar */
        float64x2_t s0 = vdupq_n_f64(0.0), s1 = s0, s2 = s0, s3 = s0;
        int i = 0;
        for (; i + 8 <= n; i += 8) {
            float32x4_t a = vld1q_f32(xr + i), b = vld1q_f32(xr + i + 4);
            float64x2_t a0 = vcvt_f64_f32(vget_low_f32(a)), a1 = vcvt_high_f64_f32(a);
            float64x2_t b0 = vcvt_f64_f32(vget_low_f32(b)), b1 = vcvt_high_f64_f32(b);
            s0 = vfmaq_f64(s0, a0, a0);
            s1 = vfmaq_f64(s1, a1, a1);
            s2 = vfmaq_f64(s2, b0, b0);
            s3 = vfmaq_f64(s3, b1, b1);
        }
        double ss = vaddvq_f64(vaddq_f64(vaddq_f64(s0, s1), vaddq_f64(s2, s3)));
        for (; i < n; i++) ss += (double)xr[i] * xr[i];
        float var = (float)(ss / n);
        float inv = (float)(1.0 / sqrt((double)(var + eps)));
        float32x4_t iv = vdupq_n_f32(inv);
        for (i = 0; i + 4 <= n; i += 4) /* y = w * (x * inv), two roundings as in the scalar */
            vst1q_f32(yr + i, vmulq_f32(vld1q_f32(w + i), vmulq_f32(vld1q_f32(xr + i), iv)));
        for (; i < n; i++) {
            float t = xr[i] * inv;
            yr[i] = w[i] * t;
        }
    }
}

void qrr__rope_neon(float *x, int rows, int nh, int d, int pos0, const float *inv_freq)
{
    int h2 = d / 2;
    _Alignas(16) float cs[QRR__ROPE_MAX_HALF], sn[QRR__ROPE_MAX_HALF];
    for (int r = 0; r < rows; r++) {
        float pos = (float)(pos0 + r);
        for (int i0 = 0; i0 < h2; i0 += QRR__ROPE_MAX_HALF) {
            int cnt = h2 - i0 < QRR__ROPE_MAX_HALF ? h2 - i0 : QRR__ROPE_MAX_HALF;
            qrr__rope_angles(pos, inv_freq + i0, cnt, cs, sn);
            for (int h = 0; h < nh; h++) {
                float *a = x + ((size_t)r * nh + h) * d + i0;
                float *b = a + h2;
                int i = 0;
                for (; i + 4 <= cnt; i += 4) { /* separate products, as in the scalar */
                    float32x4_t xa = vld1q_f32(a + i), xb = vld1q_f32(b + i);
                    float32x4_t c = vld1q_f32(cs + i), s = vld1q_f32(sn + i);
                    float32x4_t na = vsubq_f32(vmulq_f32(xa, c), vmulq_f32(xb, s));
                    float32x4_t nb = vaddq_f32(vmulq_f32(xb, c), vmulq_f32(xa, s));
                    vst1q_f32(a + i, na);
                    vst1q_f32(b + i, nb);
                }
                for (; i < cnt; i++) {
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

void qrr__silu_mul_neon(const float *gu, float *out, int rows, int n)
{
    const float32x4_t one = vdupq_n_f32(1.0f);
    for (int r = 0; r < rows; r++) {
        const float *g = gu + (size_t)r * 2 * n;
        const float *u = g + n;
        float *o = out + (size_t)r * n;
        int i = 0;
        for (; i + 4 <= n; i += 4) { /* g / (1 + e^-g) * u */
            float32x4_t gv = vld1q_f32(g + i);
            float32x4_t s = vdivq_f32(gv, vaddq_f32(one, qrr__exp_f32x4(vnegq_f32(gv))));
            vst1q_f32(o + i, vmulq_f32(s, vld1q_f32(u + i)));
        }
        if (i < n) { /* the tail through the same vector e^x */
            _Alignas(16) float gt[4] = {0}, ut[4] = {0}, ot[4];
            memcpy(gt, g + i, sizeof(float) * (size_t)(n - i));
            memcpy(ut, u + i, sizeof(float) * (size_t)(n - i));
            float32x4_t gv = vld1q_f32(gt);
            float32x4_t s = vdivq_f32(gv, vaddq_f32(one, qrr__exp_f32x4(vnegq_f32(gv))));
            vst1q_f32(ot, vmulq_f32(s, vld1q_f32(ut)));
            memcpy(o + i, ot, sizeof(float) * (size_t)(n - i));
        }
    }
}

void qrr__exp_neon(const float *x, float *y, int n)
{
    int i = 0;
    for (; i + 4 <= n; i += 4) vst1q_f32(y + i, qrr__exp_f32x4(vld1q_f32(x + i)));
    if (i < n) {
        _Alignas(16) float t[4] = {0};
        memcpy(t, x + i, sizeof(float) * (size_t)(n - i));
        vst1q_f32(t, qrr__exp_f32x4(vld1q_f32(t)));
        memcpy(y + i, t, sizeof(float) * (size_t)(n - i));
    }
}
