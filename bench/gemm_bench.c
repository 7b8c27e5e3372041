/* gemm_bench.c — CPU GEMM benchmark: measures this machine's fp32 FMA and int8 peaks (VNNI,
 * or vpmaddwd without it; tight register loops, 1 and 2 threads), then times qrr_cpu_gemm at the Qwen3-Reranker-0.6B
 * projection shapes for several token counts, dtypes and thread counts, printing GFLOP/s
 * (GOP/s for int8), the fraction of the matching peak, and GB/s of weights read.
 * The peaks are x86-64 (AVX-512 or AVX2) loops; elsewhere only the GEMM times are printed.
 * Options: USAGE below. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "qrr.h"
#include "qrr_cpu.h"

/* Wall clock (qrr_time_seconds). Every figure is the best of several short trials, so that on
 * a shared, loaded machine a trial that ran undisturbed is what gets reported. */
#define TRIALS 9

#if defined(__x86_64__)
/* ---- peaks: independent accumulators, nothing but the instruction measured ---- */
#define PEAK_ITERS 4000000L

/* 12 independent accumulators in fixed registers (inline asm, so no compiler can spill or
 * fold them): what the FMA / VNNI / vpmaddwd ports sustain. R: "zmm" or "ymm". */
#define BODY12(OP, R)                                                                        \
    OP " %%" R "12, %%" R "13, %%" R "0\n\t" OP " %%" R "12, %%" R "13, %%" R "1\n\t"       \
    OP " %%" R "12, %%" R "13, %%" R "2\n\t" OP " %%" R "12, %%" R "13, %%" R "3\n\t"       \
    OP " %%" R "12, %%" R "13, %%" R "4\n\t" OP " %%" R "12, %%" R "13, %%" R "5\n\t"       \
    OP " %%" R "12, %%" R "13, %%" R "6\n\t" OP " %%" R "12, %%" R "13, %%" R "7\n\t"       \
    OP " %%" R "12, %%" R "13, %%" R "8\n\t" OP " %%" R "12, %%" R "13, %%" R "9\n\t"       \
    OP " %%" R "12, %%" R "13, %%" R "10\n\t" OP " %%" R "12, %%" R "13, %%" R "11\n\t"

#define CLOBBER12                                                                            \
    "xmm0", "xmm1", "xmm2", "xmm3", "xmm4", "xmm5", "xmm6", "xmm7", "xmm8", "xmm9", "xmm10",  \
        "xmm11", "xmm12", "xmm13"

/* A thread's loop of PEAK_ITERS x 12 instructions OP on R registers, for a CPU with the
 * features TARGET names. The zeroing of the sources is VEX-encoded: it clears the whole
 * register, zmm included. */
#define PEAK_LOOP(NAME, TARGET, OP, R)                                                       \
    __attribute__((target(TARGET))) static void *NAME(void *out)                            \
    {                                                                                        \
        long n = PEAK_ITERS;                                                                 \
        __asm__ volatile("vpxor %%xmm12, %%xmm12, %%xmm12\n\t"                                \
                         "vpxor %%xmm13, %%xmm13, %%xmm13\n\t"                                \
                         "1:\n\t" BODY12(OP, R) "dec %0\n\t"                                   \
                         "jnz 1b\n\t"                                                        \
                         : "+r"(n)                                                           \
                         :                                                                   \
                         : CLOBBER12, "cc");                                                 \
        memset(out, 0, 4);                                                                   \
        return NULL;                                                                         \
    }

PEAK_LOOP(fma_loop, "avx512f,fma", "vfmadd231ps", "zmm")
PEAK_LOOP(vnni_loop, "avx512f,avx512bw,avx512vnni", "vpdpbusd", "zmm")
/* The AVX2 kernels' instructions (CPUs without AVX-512): 8-lane FMAs, and vpmaddwd, the int8
 * GEMM's multiply (int16 pairs: 16 multiply-adds an instruction). */
PEAK_LOOP(fma_loop_avx2, "avx2,fma", "vfmadd231ps", "ymm")
PEAK_LOOP(madd_loop_avx2, "avx2", "vpmaddwd", "ymm")

/* ops per second with nt threads each running loop (ops per instruction given). */
static double peak(void *(*loop)(void *), int nt, double ops_per_inst)
{
    pthread_t th[8];
    float sink[8][16];
    double best = 1e30;
    for (int trial = 0; trial < 3 * TRIALS; trial++) {
        double t0 = qrr_time_seconds();
        for (int i = 1; i < nt; i++) pthread_create(&th[i], NULL, loop, sink[i]);
        loop(sink[0]);
        for (int i = 1; i < nt; i++) pthread_join(th[i], NULL);
        double dt = qrr_time_seconds() - t0;
        if (dt < best) best = dt;
    }
    return (double)nt * PEAK_ITERS * 12 * ops_per_inst / best;
}
#endif

/* ---- GEMM timing ---- */
typedef struct shape {
    const char *name;
    int n, k;
} shape;

static const shape shapes[] = {
    {"q_proj", 2048, 1024}, {"k/v_proj", 1024, 1024}, {"gate/up", 3072, 1024},
    {"o_proj", 1024, 2048}, {"down", 1024, 3072},
};

/* ---- attention timing ---- */
typedef struct attn_shape {
    int t, prefix, nq, nkv, d;
} attn_shape;

static const attn_shape attn_shapes[] = {
    {256, 0, 16, 8, 128}, {256, 64, 16, 8, 128}, {64, 0, 16, 8, 128}, {1, 300, 16, 8, 128},
};

/* GFLOP/s of qrr_cpu_attention: 4 d flops per (query head, visible key) pair, the causal
 * part only (2 d for q·k, 2 d for p·v). */
static void bench_attention(int only_t, double min_time)
{
    printf("%-9s %5s %6s %4s %4s %4s %3s %10s %8s\n", "attention", "t", "prefix", "nq", "nkv",
           "d", "thr", "ms", "GFLOP/s");
    for (int th = 1; th <= 2; th++) {
        if (only_t && th != only_t) continue;
        qrr_pool *pool = th > 1 ? qrr_pool_create(th) : NULL;
        for (size_t si = 0; si < sizeof attn_shapes / sizeof attn_shapes[0]; si++) {
            attn_shape sh = attn_shapes[si];
            size_t qd = (size_t)sh.nq * sh.d, kd = (size_t)sh.nkv * sh.d;
            size_t np = (size_t)sh.prefix + 1;
            float *q = malloc(sizeof(float) * sh.t * qd), *o = malloc(sizeof(float) * sh.t * qd);
            float *k = malloc(sizeof(float) * sh.t * kd), *v = malloc(sizeof(float) * sh.t * kd);
            float *pk = malloc(sizeof(float) * np * kd), *pv = malloc(sizeof(float) * np * kd);
            if (!q || !o || !k || !v || !pk || !pv) exit(1);
            for (size_t i = 0; i < sh.t * qd; i++) q[i] = (float)((i * 7) % 13) / 13.0f - 0.5f;
            for (size_t i = 0; i < sh.t * kd; i++) {
                k[i] = (float)((i * 5) % 11) / 11.0f - 0.5f;
                v[i] = (float)((i * 3) % 17) / 17.0f - 0.5f;
            }
            for (size_t i = 0; i < np * kd; i++) pk[i] = pv[i] = (float)(i % 9) / 9.0f - 0.5f;
            double pairs = 0.0; /* visible (row, key) pairs per head */
            for (int i = 0; i < sh.t; i++) pairs += sh.prefix + i + 1;
            double flops = 4.0 * sh.d * sh.nq * pairs;
            qrr_cpu_attention(q, k, v, pk, pv, sh.prefix, sh.t, sh.nq, sh.nkv, sh.d, o, pool);
            double sec = 1e30;
            for (int trial = 0; trial < TRIALS; trial++) {
                int reps = 0;
                double t0 = qrr_time_seconds(), dtm;
                do {
                    qrr_cpu_attention(q, k, v, pk, pv, sh.prefix, sh.t, sh.nq, sh.nkv, sh.d, o, pool);
                    reps++;
                    dtm = qrr_time_seconds() - t0;
                } while (dtm < min_time / TRIALS);
                if (dtm / reps < sec) sec = dtm / reps;
            }
            printf("%-9s %5d %6d %4d %4d %4d %3d %10.3f %8.1f\n", "", sh.t, sh.prefix, sh.nq,
                   sh.nkv, sh.d, th, sec * 1e3, flops / sec / 1e9);
            fflush(stdout);
            free(q);
            free(o);
            free(k);
            free(v);
            free(pk);
            free(pv);
        }
        qrr_pool_free(pool);
    }
}

static const char *dt_name[] = {"f32", "f16", "bf16", "i8"};
static const int dt_size[] = {4, 2, 2, 1};

#define USAGE                                                                                \
    "usage: gemm_bench [--dtype f32|f16|bf16|i8] [--m 1|16|64|256|512] [--threads 1|2]\n"   \
    "                  [--min-time S (0 < S <= 60)] [--i8-packing once|per-call]\n"         \
    "                  [--part gemm|attn]\n"                                                 \
    "Measures the fp32 FMA and int8 peaks, then times the GEMM at the 0.6B layer\n"     \
    "shapes (m = 1, 16, 64, 256, 512; 1 and 2 threads) and the attention, printing the\n"   \
    "fraction of the peak. The options keep one dtype, m, thread count or part.\n"          \
    "Exit: 0 measured, 1 out of memory, 2 usage.\n"

int main(int argc, char **argv)
{
    int only_dt = -1, only_m = 0, only_t = 0, part = 3; /* bit 0 gemm, bit 1 attention */
    int i8_unpacked = 0; /* int8: W packed by each call instead of once, as a CPU context has it */
    double min_time = 0.15;
    for (int i = 1; i < argc; i += 2) {
        if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
            fputs(USAGE, stdout);
            return 0;
        }
        const char *o = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        int ok = v != NULL;
        if (ok && !strcmp(o, "--dtype")) {
            only_dt = -1;
            for (int d = 0; d < 4; d++)
                if (!strcmp(v, dt_name[d])) only_dt = d;
            ok = only_dt >= 0;
        } else if (ok && !strcmp(o, "--m")) {
            only_m = atoi(v);
            ok = only_m == 1 || only_m == 16 || only_m == 64 || only_m == 256 || only_m == 512;
        } else if (ok && !strcmp(o, "--threads")) {
            ok = (only_t = atoi(v)) == 1 || only_t == 2;
        } else if (ok && !strcmp(o, "--min-time")) {
            min_time = atof(v);
            ok = min_time > 0 && min_time <= 60;
        } else if (ok && !strcmp(o, "--part")) {
            part = !strcmp(v, "attn") ? 2 : !strcmp(v, "gemm") ? 1 : 0;
            ok = part != 0;
        } else if (ok && !strcmp(o, "--i8-packing")) {
            i8_unpacked = !strcmp(v, "per-call");
            ok = i8_unpacked || !strcmp(v, "once");
        } else {
            ok = 0;
        }
        if (!ok) {
            fprintf(stderr, "gemm_bench: bad option or value: %s%s%s\n%s", o, v ? " " : "",
                    v ? v : "", USAGE);
            return 2;
        }
    }
    qrr_cpu_features f = qrr_cpu_detect();
    double fpk[3] = {0}, ipk[3] = {0};
#if defined(__x86_64__)
    /* the peaks of the instructions this CPU's kernels use */
    const char *fname = f.avx512f ? "avx512" : f.avx2 && f.fma ? "avx2" : NULL;
    const char *iname = f.avx512vnni ? "VNNI" : f.avx2 ? "avx2 vpmaddwd" : NULL;
    for (int t = 1; fname && t <= 2; t++)
        fpk[t] = f.avx512f ? peak(fma_loop, t, 32.0) : peak(fma_loop_avx2, t, 16.0);
    for (int t = 1; iname && t <= 2; t++)
        ipk[t] = f.avx512vnni ? peak(vnni_loop, t, 128.0) : peak(madd_loop_avx2, t, 32.0);
    if (fname)
        printf("fp32 FMA peak (%s): 1 thread %.1f GFLOP/s, 2 threads %.1f GFLOP/s\n", fname,
               fpk[1] / 1e9, fpk[2] / 1e9);
    if (iname)
        printf("int8 %s peak: 1 thread %.1f GOP/s, 2 threads %.1f GOP/s\n", iname, ipk[1] / 1e9,
               ipk[2] / 1e9);
#else
    (void)f;
#endif
    printf("kernels: f32 %s, f16 %s, bf16 %s, i8 %s\n", qrr_cpu_gemm_impl(0), qrr_cpu_gemm_impl(1),
           qrr_cpu_gemm_impl(2), qrr_cpu_gemm_impl(3));
    qrr_cpu_weight probe = {3, NULL, NULL, 32, 64, 0, NULL};
    printf("i8 weights: %s\n", !qrr_cpu_i8_packed_size(&probe) ? "read as stored"
                               : i8_unpacked ? "packed by every call (--i8-packing per-call)"
                                             : "packed once, as a CPU context holds them "
                                               "(--i8-packing per-call: by every call)");
    printf("%-5s %-9s %5s %5s %5s %3s %10s %8s %8s %8s\n", "dtype", "shape", "m", "n", "k", "thr",
           "ms", "G(FL)OP/s", "of peak", "W GB/s");
    const int ms[] = {1, 16, 64, 256, 512};
    for (int dt = 0; dt < 4 && (part & 1); dt++) {
        if (only_dt >= 0 && dt != only_dt) continue;
        for (int t = 1; t <= 2; t++) {
            if (only_t && t != only_t) continue;
            qrr_pool *pool = t > 1 ? qrr_pool_create(t) : NULL;
            for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
                int n = shapes[s].n, k = shapes[s].k;
                size_t wb = (size_t)n * k * dt_size[dt];
                void *w = aligned_alloc(64, (wb + 63) / 64 * 64);
                float *sc = malloc(sizeof(float) * n);
                float *x = aligned_alloc(64, sizeof(float) * 512 * k);
                float *y = aligned_alloc(64, sizeof(float) * 512 * n);
                if (!w || !sc || !x || !y) return 1;
                for (size_t i = 0; i < (size_t)n * k; i++) { /* values in [-1, 1): no subnormals */
                    float v = (float)((i * 2654435761u) % 2001) / 1000.0f - 1.0f;
                    uint32_t u;
                    memcpy(&u, &v, 4);
                    if (dt == 0) ((float *)w)[i] = v;
                    else if (dt == 1) ((uint16_t *)w)[i] = qrr_f32_to_f16(v);
                    else if (dt == 2) ((uint16_t *)w)[i] = (uint16_t)(u >> 16);
                    else ((int8_t *)w)[i] = (int8_t)(v * 127.0f);
                }
                for (int i = 0; i < n; i++) sc[i] = 0.01f;
                for (size_t i = 0; i < (size_t)512 * k; i++) x[i] = (float)((i * 13) % 17) - 8.0f;
                qrr_cpu_weight wt = {(uint32_t)dt, w, sc, n, k, 0, NULL};
                size_t packed_bytes = dt == 3 && !i8_unpacked ? qrr_cpu_i8_packed_size(&wt) : 0;
                void *packed = packed_bytes ? aligned_alloc(64, (packed_bytes + 63) / 64 * 64) : NULL;
                if (packed) qrr_cpu_i8_pack(&wt, packed);
                for (size_t mi = 0; mi < sizeof ms / sizeof ms[0]; mi++) {
                    int m = ms[mi];
                    if (only_m && m != only_m) continue;
                    qrr_cpu_gemm(x, k, m, &wt, y, n, 0, pool); /* warm up */
                    double sec = 1e30;
                    for (int trial = 0; trial < TRIALS; trial++) {
                        int reps = 0;
                        double t0 = qrr_time_seconds(), dtm;
                        do {
                            qrr_cpu_gemm(x, k, m, &wt, y, n, 0, pool);
                            reps++;
                            dtm = qrr_time_seconds() - t0;
                        } while (dtm < min_time / TRIALS);
                        if (dtm / reps < sec) sec = dtm / reps;
                    }
                    double ops = 2.0 * m * n * k / sec;
                    double pk = dt == 3 ? ipk[t] : fpk[t]; /* the peak with as many threads */
                    printf("%-5s %-9s %5d %5d %5d %3d %10.3f %8.1f %7.0f%% %8.1f\n", dt_name[dt],
                           shapes[s].name, m, n, k, t, sec * 1e3, ops / 1e9,
                           pk > 0 ? 100.0 * ops / pk : 0.0, (double)wb / sec / 1e9);
                    fflush(stdout);
                }
                free(w);
                free(packed);
                free(sc);
                free(x);
                free(y);
            }
            qrr_pool_free(pool);
        }
    }
    if (part & 2) bench_attention(only_t, min_time);
    return 0;
}
