/* cpu_detect.c — what this x86-64 CPU offers (cpuid, and xgetbv for the register state the
 * OS saves), the kernel level chosen from it once per process (QRR_CPU_ISA may lower it),
 * and the names of the versions chosen. Other architectures report no features. */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include "cpu_internal.h"

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>

static uint64_t xgetbv0(void)
{
    uint32_t lo, hi;
    __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    return ((uint64_t)hi << 32) | lo;
}

static qrr_cpu_features detect(void)
{
    qrr_cpu_features f;
    memset(&f, 0, sizeof f);
    unsigned a, b, c, d;
    if (!__get_cpuid(1, &a, &b, &c, &d)) return f;
    int osxsave = (c >> 27) & 1, avx = (c >> 28) & 1;
    int fma = (c >> 12) & 1, f16c = (c >> 29) & 1;
    if (!osxsave || !avx) return f;
    uint64_t xcr0 = xgetbv0();
    int ymm_ok = (xcr0 & 0x6) == 0x6;            /* SSE and AVX state */
    int zmm_ok = ymm_ok && (xcr0 & 0xe0) == 0xe0; /* opmask, ZMM hi256, hi16 ZMM */
    int amx_ok = (xcr0 & 0x60000) == 0x60000;     /* XTILECFG, XTILEDATA */
    if (!ymm_ok) return f;
    unsigned max_leaf = __get_cpuid_max(0, NULL);
    if (max_leaf < 7) return f;
    __cpuid_count(7, 0, a, b, c, d);
    unsigned b7 = b, c7 = c, d7 = d;
    __cpuid_count(7, 1, a, b, c, d);
    unsigned a71 = a;
    f.fma = fma;
    f.f16c = f16c;
    f.avx2 = (b7 >> 5) & 1;
    f.avxvnni = (a71 >> 4) & 1;
    if (zmm_ok) {
        f.avx512f = (b7 >> 16) & 1;
        f.avx512bw = (b7 >> 30) & 1;
        f.avx512vl = (b7 >> 31) & 1;
        f.avx512vnni = (c7 >> 11) & 1;
        f.avx512bf16 = (a71 >> 5) & 1;
    }
    if (amx_ok) {
        f.amx_bf16 = (d7 >> 22) & 1;
        f.amx_int8 = (d7 >> 25) & 1;
    }
    return f;
}

static int has_avx512dq(void)
{
    unsigned a, b, c, d;
    if (__get_cpuid_max(0, NULL) < 7) return 0;
    __cpuid_count(7, 0, a, b, c, d);
    return (b >> 17) & 1;
}
#else
static qrr_cpu_features detect(void)
{
    qrr_cpu_features f;
    memset(&f, 0, sizeof f);
    return f;
}
static int has_avx512dq(void)
{
    return 0;
}
#endif

static pthread_once_t g_once = PTHREAD_ONCE_INIT;
static qrr_cpu_features g_feat;
static qrr__isa g_max, g_isa;

static void init(void)
{
    g_feat = detect();
    g_max = QRR__ISA_SCALAR;
    if (g_feat.avx2 && g_feat.fma && g_feat.f16c) g_max = QRR__ISA_AVX2;
    if (g_max == QRR__ISA_AVX2 && g_feat.avx512f && g_feat.avx512bw && g_feat.avx512vl &&
        has_avx512dq())
        g_max = QRR__ISA_AVX512;
    g_isa = g_max;
    const char *e = getenv("QRR_CPU_ISA");
    qrr__isa want = g_max;
    if (e && strcmp(e, "scalar") == 0) want = QRR__ISA_SCALAR;
    else if (e && strcmp(e, "avx2") == 0) want = QRR__ISA_AVX2;
    if (want < g_isa) g_isa = want;
}

qrr_cpu_features qrr_cpu_detect(void)
{
    pthread_once(&g_once, init);
    return g_feat;
}

qrr__isa qrr__cpu_isa(void)
{
    pthread_once(&g_once, init);
    return g_isa;
}

qrr__isa qrr__cpu_isa_max(void)
{
    pthread_once(&g_once, init);
    return g_max;
}

int qrr_cpu_isa_max(void)
{
    return (int)qrr__cpu_isa_max();
}

const char *qrr_cpu_isa_name(int isa)
{
    switch (isa) {
    case QRR__ISA_AVX512: return "avx512";
    case QRR__ISA_AVX2: return "avx2";
    default: return "scalar";
    }
}

const char *qrr_cpu_gemm_impl(uint32_t dtype)
{
    qrr__isa isa = qrr__cpu_isa();
    if (dtype == 3 /* QRR_DTYPE_I8 */) {
        if (isa == QRR__ISA_AVX512 && g_feat.avx512vnni) return "avx512-vnni";
        if (isa >= QRR__ISA_AVX2) return "avx2";
        return "scalar";
    }
    return qrr_cpu_isa_name((int)isa);
}
