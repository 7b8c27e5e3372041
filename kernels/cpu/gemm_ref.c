/* gemm_ref.c — the scalar reference GEMM the fast versions are held against: fp weights in
 * double accumulation; int8 weights with the exact activation quantization rule of
 * cpu_internal.h, exact integer dot products and the same fp32 scaling steps as the fast
 * versions; and the plain packing of int8 weights. Plain loops, no threads, no speed. */
#include <stdlib.h>
#include <string.h>
#include "cpu_internal.h"

static double w_at(const qrr_cpu_weight *w, size_t j, size_t kk)
{
    size_t i = j * (size_t)w->k + kk;
    switch (w->dtype) {
    case 0: return ((const float *)w->data)[i];
    case 1: return qrr_f16_to_f32(((const uint16_t *)w->data)[i]);
    case 2: return qrr_bf16_to_f32(((const uint16_t *)w->data)[i]);
    default: return NAN;
    }
}

/* Rows [i0, i1) and columns [j0, j1) of the fp reference; the scalar level uses it too. */
void qrr__gemm_ref_fp(const float *x, int ldx, const qrr_cpu_weight *w, float *y, int ldy,
                      int accumulate, int i0, int i1, int j0, int j1)
{
    for (int i = i0; i < i1; i++) {
        const float *xr = x + (size_t)i * ldx;
        for (int j = j0; j < j1; j++) {
            double acc = 0.0;
            for (int kk = 0; kk < w->k; kk++) acc += (double)xr[kk] * w_at(w, (size_t)j, (size_t)kk);
            float *yo = y + (size_t)i * ldy + j;
            *yo = accumulate ? (float)((double)*yo + acc) : (float)acc;
        }
    }
}

/* One output of the int8 path from an exact integer dot product per block (or one for the
 * whole row): the fp32 steps every version performs in this order. */
float qrr__i8_finish(const int64_t *acc, int nblocks, const float *wscale, float xscale)
{
    if (nblocks == 1) return (float)acc[0] * (xscale * wscale[0]);
    float s = 0.0f;
    for (int b = 0; b < nblocks; b++) s += (float)acc[b] * wscale[b];
    return s * xscale;
}

void qrr__gemm_ref_i8(const float *x, int ldx, const qrr_cpu_weight *w, float *y, int ldy,
                      int accumulate, int i0, int i1, int j0, int j1)
{
    int k = w->k;
    int block = w->block > 0 ? w->block : k;
    int nb = k / block;
    int8_t *q = malloc((size_t)k + 1);
    int64_t *acc = malloc(sizeof(int64_t) * ((size_t)nb + 1));
    if (!q || !acc) { /* the reference is for tests: fill with NaN rather than crash */
        for (int i = i0; i < i1; i++)
            for (int j = j0; j < j1; j++) y[(size_t)i * ldy + j] = NAN;
        free(q);
        free(acc);
        return;
    }
    const int8_t *wq = w->data;
    for (int i = i0; i < i1; i++) {
        const float *xr = x + (size_t)i * ldx;
        float inv, amax = qrr__absmax(xr, k);
        float xs = qrr__quant_scale(amax, &inv);
        for (int kk = 0; kk < k; kk++) q[kk] = qrr__quant_one(xr[kk], inv);
        for (int j = j0; j < j1; j++) {
            const int8_t *wr = wq + (size_t)j * k;
            for (int b = 0; b < nb; b++) {
                int64_t s = 0; /* exact for any k; the fast versions stay within int32 */
                for (int kk = b * block; kk < (b + 1) * block; kk++) s += (int32_t)q[kk] * wr[kk];
                acc[b] = s;
            }
            float v = qrr__i8_finish(acc, nb, w->scale + (size_t)j * (w->block > 0 ? nb : 1), xs);
            float *yo = y + (size_t)i * ldy + j;
            *yo = accumulate ? *yo + v : v;
        }
    }
    free(q);
    free(acc);
}

/* The packed int8 layout of cpu_internal.h written plainly, four bytes of a row at a time:
 * the reference the vector packings (AVX2, VNNI) are held to, byte for byte. */
void qrr__i8_pack_portable(const qrr_cpu_weight *w, uint8_t *mem)
{
    const int n = w->n, k = w->k, full = k / 4, steps = (k + 3) / 4;
    const size_t panel_bytes = qrr__i8_panel_bytes(k);
    int32_t *sums = (int32_t *)(mem + qrr__i8_sums_offset(n, k));
    for (int jp = 0; jp < n; jp += QRR__I8_NR) {
        uint8_t *panel = mem + (size_t)(jp / QRR__I8_NR) * panel_bytes;
        for (int c = 0; c < QRR__I8_NR; c++) {
            uint8_t *col = panel + (size_t)c * 4;
            int32_t sum = 0;
            if (jp + c >= n) { /* the last panel's columns past n: zero */
                for (int s = 0; s < steps; s++) memset(col + (size_t)s * QRR__I8_NR * 4, 0, 4);
                sums[jp + c] = 0;
                continue;
            }
            const int8_t *row = (const int8_t *)w->data + (size_t)(jp + c) * (size_t)k;
            for (int s = 0; s < full; s++) memcpy(col + (size_t)s * QRR__I8_NR * 4, row + s * 4, 4);
            if (full < steps) {
                uint8_t last[4] = {0};
                memcpy(last, row + full * 4, (size_t)(k - full * 4));
                memcpy(col + (size_t)full * QRR__I8_NR * 4, last, 4);
            }
            for (int kk = 0; kk < k; kk++) sum += row[kk];
            sums[jp + c] = sum;
        }
    }
}

void qrr_cpu_ref_gemm(const float *x, int ldx, int m, const qrr_cpu_weight *w, float *y,
                      int ldy, int accumulate)
{
    if (w->dtype == 3) qrr__gemm_ref_i8(x, ldx, w, y, ldy, accumulate, 0, m, 0, w->n);
    else qrr__gemm_ref_fp(x, ldx, w, y, ldy, accumulate, 0, m, 0, w->n);
}
