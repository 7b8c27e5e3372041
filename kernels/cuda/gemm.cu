/* gemm.cu — the linear layers through cuBLASLt: f16 × f16 with fp32 accumulation (f16 or
 * fp32 out, optionally adding into the fp32 residual stream) and int8 × int8 into int32, both
 * in the "TN" layout the tensor cores want (W [N, K] and X [M, K], K contiguous). The
 * handle, the workspace and one plan per shape (descriptors and the heuristic's algorithm)
 * are made once and reused. int8 products run over a row count padded to a multiple of 32
 * (cuBLASLt commonly has no int8 kernel for 16 rows or fewer); a shape it still refuses
 * comes back as QRR_ERR_UNSUPPORTED, so that the caller can take another kernel. With tuning
 * on, the heuristic's candidates for a shape are timed on its first run outside graph
 * capture and the fastest is kept. */
#include <cublasLt.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "cuda_common.cuh"

#define PLAN_CACHE 96
#define CANDIDATES 8 /* heuristic results kept per plan */
#define TUNE_RUNS 3  /* timed runs of each candidate, after one warm-up */

typedef struct plan {
    int used;
    int kind, M, N, K, ldx, ldy, y_f32, accumulate; /* kind: 0 f16, 1 int8 */
    int align[3];                                   /* bytes: x, w, y (capped at 256) */
    cublasLtMatmulDesc_t op;
    cublasLtMatrixLayout_t la, lb, lc;
    cublasLtMatmulAlgo_t algo;              /* the one that runs */
    cublasLtMatmulAlgo_t cand[CANDIDATES];  /* the heuristic's, its best first */
    int n_cand;
    int tuned; /* the candidates were timed, or will not be */
} plan;

struct qrr_cuda_gemm {
    cublasLtHandle_t lt;
    void *ws;
    size_t ws_bytes;
    plan plans[PLAN_CACHE];
    int next; /* slot replaced next when the cache is full */
    int tune;          /* time the candidates (qrr_cuda_gemm_set_tuning) */
    long tuned;        /* plans whose algorithm was chosen by timing */
    cudaEvent_t ev[2]; /* for the timing, made on first use */
};

static int lt_fail(qrr_diag *d, cublasStatus_t s, const char *what)
{
    return qrr_fail(d, QRR_ERR_DEVICE, "cuBLASLt %s failed: %s (%d)", what,
                    cublasLtGetStatusString(s), (int)s);
}

static void plan_release(plan *p)
{
    if (!p->used) return;
    if (p->la) cublasLtMatrixLayoutDestroy(p->la);
    if (p->lb) cublasLtMatrixLayoutDestroy(p->lb);
    if (p->lc) cublasLtMatrixLayoutDestroy(p->lc);
    if (p->op) cublasLtMatmulDescDestroy(p->op);
    memset(p, 0, sizeof *p);
}

extern "C" int qrr_cuda_gemm_create(qrr_cuda_gemm **out, size_t workspace_bytes, qrr_diag *d)
{
    *out = NULL;
    qrr_cuda_gemm *g = (qrr_cuda_gemm *)calloc(1, sizeof *g);
    if (!g) return qrr_fail(d, QRR_ERR_NOMEM, "out of memory");
    cublasStatus_t s = cublasLtCreate(&g->lt);
    if (s != CUBLAS_STATUS_SUCCESS) {
        free(g);
        return lt_fail(d, s, "cublasLtCreate");
    }
    if (workspace_bytes) {
        cudaError_t e = cudaMalloc(&g->ws, workspace_bytes);
        if (e != cudaSuccess) {
            cublasLtDestroy(g->lt);
            free(g);
            return qrr_fail(d, QRR_ERR_DEVICE, "cudaMalloc of %zu bytes of GEMM workspace: %s",
                            workspace_bytes, cudaGetErrorString(e));
        }
        g->ws_bytes = workspace_bytes;
    }
    *out = g;
    return QRR_OK;
}

extern "C" void qrr_cuda_gemm_free(qrr_cuda_gemm *g)
{
    if (!g) return;
    for (int i = 0; i < PLAN_CACHE; i++) plan_release(&g->plans[i]);
    for (int i = 0; i < 2; i++)
        if (g->ev[i]) cudaEventDestroy(g->ev[i]);
    cudaFree(g->ws);
    cublasLtDestroy(g->lt);
    free(g);
}

static int alignment(const void *p)
{
    uintptr_t a = (uintptr_t)p;
    int al = 256;
    while (al > 1 && a % (uintptr_t)al) al /= 2;
    return al;
}

/* Build descriptors and ask the heuristic for the best algorithm of one shape. */
static int plan_make(qrr_cuda_gemm *g, plan *p, qrr_diag *d)
{
    const int i8 = p->kind == 1;
    cublasComputeType_t ct = i8 ? CUBLAS_COMPUTE_32I : CUBLAS_COMPUTE_32F;
    cudaDataType_t scale_t = i8 ? CUDA_R_32I : CUDA_R_32F;
    cudaDataType_t in_t = i8 ? CUDA_R_8I : CUDA_R_16F;
    cudaDataType_t out_t = i8 ? CUDA_R_32I : (p->y_f32 ? CUDA_R_32F : CUDA_R_16F);
    cublasOperation_t ta = CUBLAS_OP_T, tb = CUBLAS_OP_N;
    cublasStatus_t s = cublasLtMatmulDescCreate(&p->op, ct, scale_t);
    if (s != CUBLAS_STATUS_SUCCESS) return lt_fail(d, s, "MatmulDescCreate");
    s = cublasLtMatmulDescSetAttribute(p->op, CUBLASLT_MATMUL_DESC_TRANSA, &ta, sizeof ta);
    if (s == CUBLAS_STATUS_SUCCESS)
        s = cublasLtMatmulDescSetAttribute(p->op, CUBLASLT_MATMUL_DESC_TRANSB, &tb, sizeof tb);
    if (s != CUBLAS_STATUS_SUCCESS) return lt_fail(d, s, "MatmulDescSetAttribute");
    /* Column-major views: A = W as K x N (ld K), B = X as K x M (ld ldx), C = D = Y as
     * N x M (ld ldy). D = op(A) · B = W · X^T, i.e. Y = X · W^T row-major. */
    s = cublasLtMatrixLayoutCreate(&p->la, in_t, (uint64_t)p->K, (uint64_t)p->N, p->K);
    if (s == CUBLAS_STATUS_SUCCESS)
        s = cublasLtMatrixLayoutCreate(&p->lb, in_t, (uint64_t)p->K, (uint64_t)p->M, p->ldx);
    if (s == CUBLAS_STATUS_SUCCESS)
        s = cublasLtMatrixLayoutCreate(&p->lc, out_t, (uint64_t)p->N, (uint64_t)p->M, p->ldy);
    if (s != CUBLAS_STATUS_SUCCESS) return lt_fail(d, s, "MatrixLayoutCreate");

    cublasLtMatmulPreference_t pref;
    s = cublasLtMatmulPreferenceCreate(&pref);
    if (s != CUBLAS_STATUS_SUCCESS) return lt_fail(d, s, "MatmulPreferenceCreate");
    uint64_t ws = g->ws_bytes;
    uint32_t ax = (uint32_t)p->align[0], aw = (uint32_t)p->align[1], ay = (uint32_t)p->align[2];
    cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &ws,
                                         sizeof ws);
    cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, &aw,
                                         sizeof aw);
    cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES, &ax,
                                         sizeof ax);
    cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, &ay,
                                         sizeof ay);
    cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES, &ay,
                                         sizeof ay);
    cublasLtMatmulHeuristicResult_t res[CANDIDATES];
    int found = 0;
    s = cublasLtMatmulAlgoGetHeuristic(g->lt, p->op, p->la, p->lb, p->lc, p->lc, pref,
                                       CANDIDATES, res, &found);
    cublasLtMatmulPreferenceDestroy(pref);
    if (s != CUBLAS_STATUS_SUCCESS && s != CUBLAS_STATUS_NOT_SUPPORTED)
        return lt_fail(d, s, "MatmulAlgoGetHeuristic");
    for (int i = 0; s == CUBLAS_STATUS_SUCCESS && i < found && i < CANDIDATES; i++)
        if (res[i].state == CUBLAS_STATUS_SUCCESS) p->cand[p->n_cand++] = res[i].algo;
    if (p->n_cand == 0)
        return qrr_fail(d, QRR_ERR_UNSUPPORTED, "cuBLASLt has no %s algorithm for M %d N %d K %d "
                        "(ldx %d, ldy %d)", i8 ? "int8" : "f16", p->M, p->N, p->K, p->ldx, p->ldy);
    p->algo = p->cand[0];
    /* An accumulating product cannot be run again on its operands to time it. */
    p->tuned = !g->tune || p->n_cand == 1 || p->accumulate;
    return QRR_OK;
}

static int plan_get(qrr_cuda_gemm *g, const plan *key, plan **out, qrr_diag *d)
{
    for (int i = 0; i < PLAN_CACHE; i++) {
        plan *p = &g->plans[i];
        if (p->used && p->kind == key->kind && p->M == key->M && p->N == key->N &&
            p->K == key->K && p->ldx == key->ldx && p->ldy == key->ldy &&
            p->y_f32 == key->y_f32 && p->accumulate == key->accumulate &&
            !memcmp(p->align, key->align, sizeof p->align)) {
            *out = p;
            return QRR_OK;
        }
    }
    plan *p = NULL;
    for (int i = 0; i < PLAN_CACHE && !p; i++)
        if (!g->plans[i].used) p = &g->plans[i];
    if (!p) {
        p = &g->plans[g->next];
        g->next = (g->next + 1) % PLAN_CACHE;
        plan_release(p);
    }
    *p = *key;
    p->op = NULL;
    p->la = p->lb = p->lc = NULL;
    p->used = 1;
    int rc = plan_make(g, p, d);
    if (rc != QRR_OK) {
        plan_release(p);
        return rc;
    }
    *out = p;
    return QRR_OK;
}

static cublasStatus_t matmul(qrr_cuda_gemm *g, const plan *p, const cublasLtMatmulAlgo_t *algo,
                             const void *alpha, const void *beta, const void *x, const void *w,
                             void *y, cudaStream_t st)
{
    return cublasLtMatmul(g->lt, p->op, alpha, w, p->la, x, p->lb, beta, y, p->lc, y, p->lc,
                          algo, g->ws, g->ws_bytes, st);
}

/* Time each candidate on the real operands (y is written; the caller's run then writes it
 * again) and keep the fastest. Not while the stream is being captured: the plan is then
 * timed at a later run outside capture. Any failure keeps the heuristic's choice. */
static void plan_tune(qrr_cuda_gemm *g, plan *p, const void *alpha, const void *beta,
                      const void *x, const void *w, void *y, cudaStream_t st)
{
    cudaStreamCaptureStatus cap;
    if (cudaStreamIsCapturing(st, &cap) != cudaSuccess || cap != cudaStreamCaptureStatusNone)
        return;
    p->tuned = 1;
    for (int i = 0; i < 2; i++)
        if (!g->ev[i] && cudaEventCreate(&g->ev[i]) != cudaSuccess) return;
    float best = INFINITY;
    int best_i = 0;
    for (int i = 0; i < p->n_cand; i++) {
        if (matmul(g, p, &p->cand[i], alpha, beta, x, w, y, st) != CUBLAS_STATUS_SUCCESS)
            continue; /* warm-up, and a candidate that does not run is out */
        int ok = cudaEventRecord(g->ev[0], st) == cudaSuccess;
        for (int r = 0; r < TUNE_RUNS && ok; r++)
            ok = matmul(g, p, &p->cand[i], alpha, beta, x, w, y, st) == CUBLAS_STATUS_SUCCESS;
        float ms = 0.0f;
        ok = ok && cudaEventRecord(g->ev[1], st) == cudaSuccess &&
             cudaEventSynchronize(g->ev[1]) == cudaSuccess &&
             cudaEventElapsedTime(&ms, g->ev[0], g->ev[1]) == cudaSuccess;
        if (ok && ms < best) best = ms, best_i = i;
    }
    p->algo = p->cand[best_i];
    if (best < INFINITY) g->tuned++; /* counted only when some candidate was timed */
}

static int run(qrr_cuda_gemm *g, const plan *key, const void *alpha, const void *beta,
               const void *x, const void *w, void *y, cudaStream_t st, qrr_diag *d)
{
    plan *p;
    int rc = plan_get(g, key, &p, d);
    if (rc != QRR_OK) return rc;
    if (!p->tuned) plan_tune(g, p, alpha, beta, x, w, y, st);
    cublasStatus_t s = matmul(g, p, &p->algo, alpha, beta, x, w, y, st);
    if (s == CUBLAS_STATUS_NOT_SUPPORTED)
        return qrr_fail(d, QRR_ERR_UNSUPPORTED, "cuBLASLt refused the %s product M %d N %d K %d",
                        p->kind ? "int8" : "f16", p->M, p->N, p->K);
    if (s != CUBLAS_STATUS_SUCCESS) return lt_fail(d, s, "Matmul");
    return QRR_OK;
}

extern "C" void qrr_cuda_gemm_set_tuning(qrr_cuda_gemm *g, int on)
{
    g->tune = on != 0;
}

extern "C" long qrr_cuda_gemm_tuned(const qrr_cuda_gemm *g)
{
    return g->tuned;
}

extern "C" int qrr_cuda_gemm_f16(qrr_cuda_gemm *g, const uint16_t *x, int ldx, int M,
                                 const uint16_t *w, int N, int K, void *y, int ldy, int y_f32,
                                 int accumulate, qrr_cuda_stream st, qrr_diag *d)
{
    if (M <= 0) return QRR_OK;
    if (accumulate && !y_f32)
        return qrr_fail(d, QRR_ERR_INVALID_ARG, "f16 GEMM: accumulation needs an fp32 output");
    plan key;
    memset(&key, 0, sizeof key);
    key.kind = 0;
    key.M = M, key.N = N, key.K = K, key.ldx = ldx, key.ldy = ldy;
    key.y_f32 = y_f32, key.accumulate = accumulate;
    key.align[0] = alignment(x), key.align[1] = alignment(w), key.align[2] = alignment(y);
    const float alpha = 1.0f, beta = accumulate ? 1.0f : 0.0f;
    return run(g, &key, &alpha, &beta, x, w, y, (cudaStream_t)st, d);
}

extern "C" int qrr_cuda_gemm_i8_ok(int N, int K)
{
    return N > 0 && K > 0 && N % 4 == 0 && K % 4 == 0;
}

extern "C" int qrr_cuda_gemm_i8_rows(int M)
{
    const int r = QRR_CUDA_I8_ROW_MULTIPLE;
    return M <= 0 ? 0 : M > INT_MAX - (r - 1) ? -1 : (M + r - 1) / r * r;
}

extern "C" int qrr_cuda_gemm_i8(qrr_cuda_gemm *g, const int8_t *x, int ldx, int M,
                                const int8_t *w, int N, int K, int32_t *acc, int ldacc,
                                qrr_cuda_stream st, qrr_diag *d)
{
    if (M <= 0) return QRR_OK;
    if (!qrr_cuda_gemm_i8_ok(N, K) || ldx % 4 || ldacc % 4)
        return qrr_fail(d, QRR_ERR_INVALID_ARG, "int8 GEMM: N %d, K %d, ldx %d, ldacc %d must "
                        "be multiples of 4", N, K, ldx, ldacc);
    const int Mp = qrr_cuda_gemm_i8_rows(M);
    if (Mp < 0) return qrr_fail(d, QRR_ERR_INVALID_ARG, "int8 GEMM: %d rows", M);
    plan key;
    memset(&key, 0, sizeof key);
    key.kind = 1;
    key.M = Mp, key.N = N, key.K = K, key.ldx = ldx, key.ldy = ldacc;
    key.align[0] = alignment(x), key.align[1] = alignment(w), key.align[2] = alignment(acc);
    const int32_t alpha = 1, beta = 0;
    return run(g, &key, &alpha, &beta, x, w, acc, (cudaStream_t)st, d);
}
