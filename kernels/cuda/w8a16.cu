/* w8a16.cu — weight-only int8 GEMM: f16 activations times int8 weights dequantized while
 * they are staged in shared memory (per-channel or per-block scales), fp32 accumulation on
 * the CUDA cores. For shapes cuBLASLt's int8 path cannot take (per-block scales, widths not
 * a multiple of 4), and to measure against W8A8. */
#include "cuda_common.cuh"

#define BM 32
#define BN 64
#define BK 32
#define THREADS 256

/* Thread (tr, tc) = (tid / 16, tid % 16) owns rows 2tr, 2tr+1 and columns tc + 16j. */
static __global__ void __launch_bounds__(THREADS)
w8a16_kernel(const uint16_t *x, int ldx, int M, const int8_t *w, const float *scale,
             int block, int N, int K, uint16_t *y16, float *y32, int ldy, int add)
{
    __shared__ float xs[BM][BK + 1];
    __shared__ float ws[BN][BK + 1];
    const int tid = threadIdx.x, tr = tid / 16, tc = tid % 16;
    const int m0 = blockIdx.y * BM, n0 = blockIdx.x * BN;
    const int nblk = block > 0 ? K / block : 1;
    float acc[2][4] = {{0.0f}};
    for (int k0 = 0; k0 < K; k0 += BK) {
        for (int i = tid; i < BM * BK; i += THREADS) {
            int r = i / BK, c = i % BK, m = m0 + r, k = k0 + c;
            xs[r][c] = m < M && k < K ? qrr__h2f(x[(size_t)m * ldx + k]) : 0.0f;
        }
        for (int i = tid; i < BN * BK; i += THREADS) {
            int r = i / BK, c = i % BK, n = n0 + r, k = k0 + c;
            float v = 0.0f;
            if (n < N && k < K) {
                float s = block > 0 ? scale[(size_t)n * nblk + k / block] : scale[n];
                v = (float)w[(size_t)n * K + k] * s;
            }
            ws[r][c] = v;
        }
        __syncthreads();
#pragma unroll 8
        for (int c = 0; c < BK; c++) {
            float a0 = xs[2 * tr][c], a1 = xs[2 * tr + 1][c];
#pragma unroll
            for (int j = 0; j < 4; j++) {
                float b = ws[tc + 16 * j][c];
                acc[0][j] += a0 * b;
                acc[1][j] += a1 * b;
            }
        }
        __syncthreads();
    }
#pragma unroll
    for (int i = 0; i < 2; i++) {
        int m = m0 + 2 * tr + i;
        if (m >= M) continue;
#pragma unroll
        for (int j = 0; j < 4; j++) {
            int n = n0 + tc + 16 * j;
            if (n >= N) continue;
            size_t o = (size_t)m * ldy + n;
            if (y16) y16[o] = qrr__f2h(acc[i][j]);
            else if (add) y32[o] += acc[i][j];
            else y32[o] = acc[i][j];
        }
    }
}

extern "C" int qrr_cuda_w8a16_gemm(const uint16_t *x, int ldx, int M, const int8_t *w,
                                   const float *scale, int block, int N, int K, uint16_t *y16,
                                   float *y32, int ldy, int add, qrr_cuda_stream st)
{
    if (M <= 0 || N <= 0) return 0;
    if ((!y16 && !y32) || (block > 0 && K % block)) return (int)cudaErrorInvalidValue;
    dim3 grid((unsigned)((N + BN - 1) / BN), (unsigned)((M + BM - 1) / BM));
    if (grid.y > 65535u) return (int)cudaErrorInvalidConfiguration;
    w8a16_kernel<<<grid, THREADS, 0, (cudaStream_t)st>>>(x, ldx, M, w, scale, block, N, K, y16,
                                                          y32, ldy, add);
    return qrr__launched();
}
