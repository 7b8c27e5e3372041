/* attention_neon.c — the NEON attention (AArch64): for each query row and head, keys in
 * blocks of KB; a block's scores are 4-lane dot products, its probabilities come from the
 * vector e^x against the running maximum (online softmax: the output so far is rescaled once
 * per block), and P·V accumulates 16 output columns at a time. head_dim not a multiple of 4
 * goes to the scalar version. The driver (attention.c) splits the work; nothing here
 * allocates (~5 KiB of stack). */
#include <arm_neon.h>
#include "cpu_internal.h"
#include "vec_exp_neon.h"

#define KB 64 /* keys per block */

/* q . k over d floats, d a multiple of 4. */
static inline float dot(const float *q, const float *k, int d)
{
    float32x4_t s0 = vdupq_n_f32(0.0f), s1 = s0, s2 = s0, s3 = s0;
    int e = 0;
    for (; e + 16 <= d; e += 16) {
        s0 = vfmaq_f32(s0, vld1q_f32(q + e), vld1q_f32(k + e));
        s1 = vfmaq_f32(s1, vld1q_f32(q + e + 4), vld1q_f32(k + e + 4));
        s2 = vfmaq_f32(s2, vld1q_f32(q + e + 8), vld1q_f32(k + e + 8));
        s3 = vfmaq_f32(s3, vld1q_f32(q + e + 12), vld1q_f32(k + e + 12));
    }
    for (; e < d; e += 4) s0 = vfmaq_f32(s0, vld1q_f32(q + e), vld1q_f32(k + e));
    return vaddvq_f32(vaddq_f32(vaddq_f32(s0, s1), vaddq_f32(s2, s3)));
}

/* acc[0..d) = acc * corr + sum over n rows of p[j] * vr[j][0..d), 16 columns at a time while
 * they last, then 4. */
static void pv_block(float *acc, int d, float corr, const float *p, const float *const *vr, int n)
{
    float32x4_t cv = vdupq_n_f32(corr);
    int e = 0;
    for (; e + 16 <= d; e += 16) {
        float32x4_t o0 = vmulq_f32(vld1q_f32(acc + e), cv), o1 = vmulq_f32(vld1q_f32(acc + e + 4), cv);
        float32x4_t o2 = vmulq_f32(vld1q_f32(acc + e + 8), cv), o3 = vmulq_f32(vld1q_f32(acc + e + 12), cv);
        for (int j = 0; j < n; j++) {
            const float *v = vr[j] + e;
            float32x4_t pj = vdupq_n_f32(p[j]);
            o0 = vfmaq_f32(o0, pj, vld1q_f32(v));
            o1 = vfmaq_f32(o1, pj, vld1q_f32(v + 4));
            o2 = vfmaq_f32(o2, pj, vld1q_f32(v + 8));
            o3 = vfmaq_f32(o3, pj, vld1q_f32(v + 12));
        }
        vst1q_f32(acc + e, o0);
        vst1q_f32(acc + e + 4, o1);
        vst1q_f32(acc + e + 8, o2);
        vst1q_f32(acc + e + 12, o3);
    }
    for (; e < d; e += 4) {
        float32x4_t o = vmulq_f32(vld1q_f32(acc + e), cv);
        for (int j = 0; j < n; j++) o = vfmaq_f32(o, vdupq_n_f32(p[j]), vld1q_f32(vr[j] + e));
        vst1q_f32(acc + e, o);
    }
}

void qrr__attention_neon(const qrr__attn_args *a, int h0, int h1, int r0, int r1)
{
    int d = a->d, group = a->nq / a->nkv;
    if (d % 4 != 0) {
        qrr__attention_scalar(a, h0, h1, r0, r1);
        return;
    }
    float sc = qrr__attn_scale(d);
    _Alignas(16) float acc[QRR_MAX_HEAD_DIM_CPU];
    _Alignas(16) float p[KB];
    const float *vr[KB];
    for (int h = h0; h < h1; h++) {
        int g = h / group;
        for (int i = r0; i < r1; i++) {
            const float *qi = a->q + ((size_t)i * a->nq + h) * d;
            int nk = a->n_prefix + i + 1;
            float mx = -INFINITY, l = 0.0f;
            memset(acc, 0, sizeof(float) * (size_t)d);
            for (int j0 = 0; j0 < nk; j0 += KB) {
                int n = nk - j0 < KB ? nk - j0 : KB;
                float bmax = -INFINITY;
                for (int j = 0; j < n; j++) {
                    p[j] = dot(qi, qrr__key_row(a, a->pk, a->k, j0 + j, g), d) * sc;
                    bmax = p[j] > bmax ? p[j] : bmax;
                    vr[j] = qrr__key_row(a, a->pv, a->v, j0 + j, g);
                }
                float mnew = bmax > mx ? bmax : mx;
                float corr = expf(mx - mnew); /* 0 on the first block */
                float32x4_t mv = vdupq_n_f32(mnew), ls = vdupq_n_f32(0.0f);
                int j = 0;
                for (; j + 4 <= n; j += 4) {
                    float32x4_t e = qrr__exp_f32x4(vsubq_f32(vld1q_f32(p + j), mv));
                    vst1q_f32(p + j, e);
                    ls = vaddq_f32(ls, e);
                }
                float lsum = vaddvq_f32(ls);
                if (j < n) { /* the block's last few, through the same vector e^x */
                    _Alignas(16) float t[4] = {0};
                    memcpy(t, p + j, sizeof(float) * (size_t)(n - j));
                    vst1q_f32(t, qrr__exp_f32x4(vsubq_f32(vld1q_f32(t), mv)));
                    for (int x = 0; x < n - j; x++) {
                        p[j + x] = t[x];
                        lsum += t[x];
                    }
                }
                l = l * corr + lsum;
                pv_block(acc, d, corr, p, vr, n);
                mx = mnew;
            }
            float *oi = a->out + ((size_t)i * a->nq + h) * d;
            float inv = 1.0f / l;
            for (int e = 0; e < d; e++) oi[e] = acc[e] * inv;
        }
    }
}
