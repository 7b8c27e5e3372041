/* gemm_peak.cu — the GEMM probe of the GPU check: first, products with few rows (m = 1, 3,
 * 16, 17, 32 by default) at the 0.6B shape's widths through the same entry points libqrr
 * uses (cuBLASLt f16, cuBLASLt int8 with its padded rows, the W8A16 kernel), each held to a
 * plain reference kernel and timed; then the card's ceilings: an 8192^3 f16 and int8 GEMM
 * and a device-to-device copy. One JSON line per product, the summary line last.
 * Exit: 0 every product right (an int8 shape cuBLASLt refuses is reported, not a failure:
 * libqrr then takes the W8A16 kernel), 1 a wrong result or a CUDA error, 2 usage. */
#include <cuda_fp16.h>
#include <cuda_runtime.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "qrr_cuda.h"

#define CK(x) do { cudaError_t e_ = (x); if (e_ != cudaSuccess) { \
    fprintf(stderr, "gemm_peak: %s: %s\n", #x, cudaGetErrorString(e_)); exit(1); } } while (0)
#define MAX_ROWS 16

static __global__ void fill(unsigned char *p, size_t n, unsigned seed, int halves)
{
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n;
         i += (size_t)gridDim.x * blockDim.x) {
        unsigned h = (unsigned)i * 2654435761u ^ seed;
        h ^= h >> 15; h *= 2246822519u; h ^= h >> 13;
        if (halves) ((__half *)p)[i] = __float2half(((float)(h & 0xffff) / 65535.0f) - 0.5f);
        else ((signed char *)p)[i] = (signed char)((int)(h & 0xff) - 128 + ((h & 0xff) == 0));
    }
}

/* Plain references, one thread per output: y[m, n] = sum_k x[m, k] * w[n, k]. */
static __global__ void ref_f16(const __half *x, const __half *w, int M, int N, int K, float *y)
{
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= M * N) return;
    int m = i / N, n = i % N;
    float s = 0.0f;
    for (int k = 0; k < K; k++) s += __half2float(x[(size_t)m * K + k]) * __half2float(w[(size_t)n * K + k]);
    y[i] = s;
}

static __global__ void ref_i8(const signed char *x, const signed char *w, int M, int N, int K,
                              int *y)
{
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= M * N) return;
    int m = i / N, n = i % N, s = 0;
    for (int k = 0; k < K; k++) s += (int)x[(size_t)m * K + k] * (int)w[(size_t)n * K + k];
    y[i] = s;
}

static __global__ void ref_w8a16(const __half *x, const signed char *w, const float *sc, int M,
                                 int N, int K, float *y)
{
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= M * N) return;
    int m = i / N, n = i % N;
    float s = 0.0f;
    for (int k = 0; k < K; k++) s += __half2float(x[(size_t)m * K + k]) * (float)w[(size_t)n * K + k];
    y[i] = s * sc[n];
}

static int cmp(const void *a, const void *b)
{
    float x = *(const float *)a, y = *(const float *)b;
    return (x > y) - (x < y);
}

typedef struct timer {
    cudaEvent_t e0, e1;
    float t[64];
} timer;

/* Largest |a - b| over the largest |b|, for n floats. */
static double rel_err(const float *a, const float *b, size_t n)
{
    double dm = 0, bm = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - (double)b[i]);
        if (!(d <= dm)) dm = d; /* NaN counts as the worst */
        if (fabs((double)b[i]) > bm) bm = fabs((double)b[i]);
    }
    return bm > 0 ? dm / bm : dm;
}

typedef struct probe_result {
    int wrong, refused;
} probe_result;

/* One width (N, K) at M rows: f16, int8 and W8A16 against the references; one JSON line. */
static void probe(qrr_cuda_gemm *g, int M, int N, int K, const char *name, probe_result *res)
{
    const int Mp = qrr_cuda_gemm_i8_rows(M);
    void *xh, *wh, *x8, *w8, *sc, *y, *yr;
    CK(cudaMalloc(&xh, (size_t)M * K * 2)); CK(cudaMalloc(&wh, (size_t)N * K * 2));
    CK(cudaMalloc(&x8, (size_t)Mp * K));     CK(cudaMalloc(&w8, (size_t)N * K));
    CK(cudaMalloc(&sc, (size_t)N * 4));
    CK(cudaMalloc(&y, (size_t)Mp * N * 4));  CK(cudaMalloc(&yr, (size_t)M * N * 4));
    fill<<<256, 256>>>((unsigned char *)xh, (size_t)M * K, 11u + (unsigned)M, 1);
    fill<<<256, 256>>>((unsigned char *)wh, (size_t)N * K, 12u, 1);
    fill<<<256, 256>>>((unsigned char *)x8, (size_t)Mp * K, 13u + (unsigned)M, 0);
    fill<<<256, 256>>>((unsigned char *)w8, (size_t)N * K, 14u, 0);
    float *hsc = (float *)malloc((size_t)N * 4);
    for (int n = 0; n < N; n++) hsc[n] = 0.001f + 0.00001f * (float)(n % 97);
    CK(cudaMemcpy(sc, hsc, (size_t)N * 4, cudaMemcpyHostToDevice));
    free(hsc);
    CK(cudaGetLastError());
    const unsigned blocks = (unsigned)((M * N + 255) / 256);
    float *a = (float *)malloc((size_t)M * N * 4), *b = (float *)malloc((size_t)M * N * 4);
    int *ai = (int *)a, *bi = (int *)b;
    timer tm;
    CK(cudaEventCreate(&tm.e0)); CK(cudaEventCreate(&tm.e1));
    const int reps = 20;
    double us[3] = {0, 0, 0}, err[3] = {0, 0, 0};
    const char *state[3] = {"ok", "ok", "ok"};
    qrr_diag d;
    for (int kind = 0; kind < 3; kind++) {
        int rc = QRR_OK;
        for (int r = -2; r < reps && rc == QRR_OK; r++) {
            CK(cudaEventRecord(tm.e0));
            if (kind == 0)
                rc = qrr_cuda_gemm_f16(g, (const uint16_t *)xh, K, M, (const uint16_t *)wh, N, K,
                                       y, N, 1, 0, 0, &d);
            else if (kind == 1)
                rc = qrr_cuda_gemm_i8(g, (const int8_t *)x8, K, M, (const int8_t *)w8, N, K,
                                      (int32_t *)y, N, 0, &d);
            else
                CK((cudaError_t)qrr_cuda_w8a16_gemm((const uint16_t *)xh, K, M,
                                                    (const int8_t *)w8, (const float *)sc, 0, N,
                                                    K, NULL, (float *)y, N, 0, 0));
            CK(cudaEventRecord(tm.e1)); CK(cudaEventSynchronize(tm.e1));
            float ms;
            CK(cudaEventElapsedTime(&ms, tm.e0, tm.e1));
            if (r >= 0) tm.t[r] = ms;
        }
        if (rc != QRR_OK) {
            state[kind] = rc == QRR_ERR_UNSUPPORTED ? "refused" : "error";
            fprintf(stderr, "gemm_peak: %s m=%d: %s\n", kind == 1 ? "int8" : "f16", M, d.msg);
            if (rc == QRR_ERR_UNSUPPORTED) res->refused++;
            else res->wrong++;
            continue;
        }
        qsort(tm.t, reps, sizeof tm.t[0], cmp);
        us[kind] = 1e3 * tm.t[reps / 2];
        if (kind == 0) ref_f16<<<blocks, 256>>>((const __half *)xh, (const __half *)wh, M, N, K, (float *)yr);
        else if (kind == 1) ref_i8<<<blocks, 256>>>((const signed char *)x8, (const signed char *)w8, M, N, K, (int *)yr);
        else ref_w8a16<<<blocks, 256>>>((const __half *)xh, (const signed char *)w8, (const float *)sc, M, N, K, (float *)yr);
        CK(cudaGetLastError());
        CK(cudaMemcpy(a, y, (size_t)M * N * 4, cudaMemcpyDeviceToHost));
        CK(cudaMemcpy(b, yr, (size_t)M * N * 4, cudaMemcpyDeviceToHost));
        if (kind == 1) {
            size_t bad = 0;
            for (size_t i = 0; i < (size_t)M * N; i++) bad += ai[i] != bi[i];
            err[kind] = (double)bad;
            if (bad) state[kind] = "WRONG";
        } else {
            err[kind] = rel_err(a, b, (size_t)M * N);
            if (!(err[kind] <= 1e-3)) state[kind] = "WRONG";
        }
        if (!strcmp(state[kind], "WRONG")) res->wrong++;
    }
    printf("{\"probe\":\"%s\",\"m\":%d,\"m_int8\":%d,\"n\":%d,\"k\":%d,"
           "\"f16\":\"%s\",\"f16_us\":%.1f,\"f16_rel_err\":%.2e,"
           "\"int8\":\"%s\",\"int8_us\":%.1f,\"int8_mismatches\":%.0f,"
           "\"w8a16\":\"%s\",\"w8a16_us\":%.1f,\"w8a16_rel_err\":%.2e}\n",
           name, M, Mp, N, K, state[0], us[0], err[0], state[1], us[1], err[1], state[2], us[2],
           err[2]);
    fflush(stdout);
    free(a); free(b);
    cudaEventDestroy(tm.e0); cudaEventDestroy(tm.e1);
    cudaFree(xh); cudaFree(wh); cudaFree(x8); cudaFree(w8); cudaFree(sc); cudaFree(y); cudaFree(yr);
}

static int usage(FILE *f, int code)
{
    fprintf(f, "usage: gemm_peak [--rows 1,3,16,17,32] [--no-peak]\n"
               "Few-row f16, int8 (W8A8) and W8A16 products at the 0.6B widths, each checked\n"
               "against a plain kernel and timed; then the 8192^3 f16 and int8 GEMM rates and\n"
               "the copy bandwidth (skipped with --no-peak). JSON lines; the summary last.\n");
    return code;
}

int main(int argc, char **argv)
{
    int rows[MAX_ROWS] = {1, 3, 16, 17, 32}, n_rows = 5, peak = 1;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--help")) return usage(stdout, 0);
        if (!strcmp(argv[i], "--no-peak")) { peak = 0; continue; }
        if (!strcmp(argv[i], "--rows") && i + 1 < argc) {
            n_rows = 0;
            for (char *s = argv[++i], *end; *s && n_rows < MAX_ROWS; s = *end ? end + 1 : end) {
                long v = strtol(s, &end, 10);
                if (end == s || v < 1 || v > 4096 || (*end && *end != ',')) return usage(stderr, 2);
                rows[n_rows++] = (int)v;
            }
            if (!n_rows) return usage(stderr, 2);
            continue;
        }
        return usage(stderr, 2);
    }
    qrr_diag d;
    qrr_cuda_gemm *g;
    if (qrr_cuda_gemm_create(&g, 32u << 20, &d) != QRR_OK) { fprintf(stderr, "gemm_peak: %s\n", d.msg); return 1; }

    /* the 0.6B shape: q|k|v [4096, 1024], gate|up [6144, 1024], down [1024, 3072] */
    const struct { const char *name; int n, k; } widths[] = {
        {"qkv", 4096, 1024}, {"gate_up", 6144, 1024}, {"down", 1024, 3072}};
    probe_result res = {0, 0};
    for (int r = 0; r < n_rows; r++)
        for (int w = 0; w < 3; w++) probe(g, rows[r], widths[w].n, widths[w].k, widths[w].name, &res);

    double tf16 = 0, ti8 = 0, bw = 0;
    const int n = 8192, reps = 20;
    if (peak) {
        size_t el = (size_t)n * n;
        void *a, *b, *c;
        CK(cudaMalloc(&a, el * 2)); CK(cudaMalloc(&b, el * 2)); CK(cudaMalloc(&c, el * 4));
        fill<<<4096, 256>>>((unsigned char *)a, el, 1u, 1);
        fill<<<4096, 256>>>((unsigned char *)b, el, 2u, 1);
        CK(cudaGetLastError());
        cudaEvent_t e0, e1;
        CK(cudaEventCreate(&e0)); CK(cudaEventCreate(&e1));
        float t[reps], ms;
        for (int r = -3; r < reps; r++) {
            CK(cudaEventRecord(e0));
            if (qrr_cuda_gemm_f16(g, (const uint16_t *)a, n, n, (const uint16_t *)b, n, n, c, n, 0, 0,
                                  0, &d) != QRR_OK) { fprintf(stderr, "gemm_peak: %s\n", d.msg); return 1; }
            CK(cudaEventRecord(e1)); CK(cudaEventSynchronize(e1));
            CK(cudaEventElapsedTime(&ms, e0, e1));
            if (r >= 0) t[r] = ms;
        }
        qsort(t, reps, sizeof t[0], cmp);
        tf16 = 2.0 * n * (double)n * n / (t[reps / 2] * 1e-3) / 1e12;

        fill<<<4096, 256>>>((unsigned char *)a, el, 3u, 0);
        fill<<<4096, 256>>>((unsigned char *)b, el, 4u, 0);
        CK(cudaGetLastError());
        for (int r = -3; r < reps; r++) {
            CK(cudaEventRecord(e0));
            if (qrr_cuda_gemm_i8(g, (const int8_t *)a, n, n, (const int8_t *)b, n, n, (int32_t *)c, n,
                                 0, &d) != QRR_OK) { fprintf(stderr, "gemm_peak: %s\n", d.msg); return 1; }
            CK(cudaEventRecord(e1)); CK(cudaEventSynchronize(e1));
            CK(cudaEventElapsedTime(&ms, e0, e1));
            if (r >= 0) t[r] = ms;
        }
        qsort(t, reps, sizeof t[0], cmp);
        ti8 = 2.0 * n * (double)n * n / (t[reps / 2] * 1e-3) / 1e12;

        size_t bytes = el * 2; /* 128 MiB each way */
        for (int r = -3; r < reps; r++) {
            CK(cudaEventRecord(e0));
            CK(cudaMemcpyAsync(b, a, bytes, cudaMemcpyDeviceToDevice));
            CK(cudaEventRecord(e1)); CK(cudaEventSynchronize(e1));
            CK(cudaEventElapsedTime(&ms, e0, e1));
            if (r >= 0) t[r] = ms;
        }
        qsort(t, reps, sizeof t[0], cmp);
        bw = 2.0 * bytes / (t[reps / 2] * 1e-3) / 1e12;
        cudaFree(a); cudaFree(b); cudaFree(c);
    }

    cudaDeviceProp p;
    CK(cudaGetDeviceProperties(&p, 0));
    printf("{\"device\":\"%s\",\"f16_tflops\":%.1f,\"i8_tops\":%.1f,\"copy_tbps\":%.2f,"
           "\"size\":%d,\"probes\":%d,\"probes_wrong\":%d,\"int8_refused\":%d}\n", p.name, tf16,
           ti8, bw, n, 3 * n_rows, res.wrong, res.refused);
    qrr_cuda_gemm_free(g);
    return res.wrong ? 1 : 0;
}
