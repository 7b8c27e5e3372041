/* ops.c — the small per-token operations of the forward pass: RMS norm, rotary embedding,
 * SiLU-gated product and one embedding row to fp32. They follow Transformers' fp32 order of
 * operations (see each function); their cost is tiny next to the GEMMs, so they are plain
 * C that the compiler may vectorize. No GEMM, no attention here. */
#include <math.h>
#include "cpu_internal.h"

/* Transformers (Qwen3RMSNorm): var = mean(x^2) in fp32, x * rsqrt(var + eps), then * w.
 * The sum of squares is taken in double (a closer value of the same quantity). */
void qrr_cpu_rmsnorm(const float *x, const float *w, float *y, int rows, int n, float eps)
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
void qrr_cpu_rope(float *x, int rows, int nh, int d, int pos0, const float *inv_freq)
{
    int h2 = d / 2;
    float cs[QRR__ROPE_MAX_HALF], sn[QRR__ROPE_MAX_HALF];
    for (int r = 0; r < rows; r++) {
        float pos = (float)(pos0 + r);
        for (int i0 = 0; i0 < h2; i0 += QRR__ROPE_MAX_HALF) {
            int cnt = h2 - i0 < QRR__ROPE_MAX_HALF ? h2 - i0 : QRR__ROPE_MAX_HALF;
            for (int i = 0; i < cnt; i++) {
                float ang = pos * inv_freq[i0 + i];
                cs[i] = (float)cos((double)ang);
                sn[i] = (float)sin((double)ang);
            }
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
void qrr_cpu_silu_mul(const float *gu, float *out, int rows, int n)
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

void qrr_cpu_embed_row(const qrr_cpu_weight *w, int row, float *out)
{
    size_t k = (size_t)w->k, base = (size_t)row * k;
    switch (w->dtype) {
    case 0: /* F32 */
        memcpy(out, (const float *)w->data + base, k * sizeof(float));
        break;
    case 1: { /* F16 */
        const uint16_t *s = (const uint16_t *)w->data + base;
        for (size_t i = 0; i < k; i++) out[i] = qrr__f16_to_f32(s[i]);
        break;
    }
    case 2: { /* BF16 */
        const uint16_t *s = (const uint16_t *)w->data + base;
        for (size_t i = 0; i < k; i++) out[i] = qrr__bf16_to_f32(s[i]);
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
