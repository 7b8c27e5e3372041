/* cpu_detect.c — what this CPU offers (x86-64: cpuid, and xgetbv for the register state the
 * OS saves; AArch64: the hwcaps the kernel reports), the kernel level chosen from it once per
 * process (QRR_CPU_ISA may lower it), and the names of the versions chosen. Other
 * architectures report no features and use the scalar versions. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "cpu_internal.h"

#if defined(QRR__X86)
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
#elif defined(QRR__ARM64)
#include <sys/auxv.h>

/* Linux's AArch64 AT_HWCAP bits (asm/hwcap.h), spelled out for older headers. */
#define HWCAP_BIT_FP (1ul << 0)
#define HWCAP_BIT_ASIMD (1ul << 1)
#define HWCAP_BIT_FPHP (1ul << 9)
#define HWCAP_BIT_ASIMDHP (1ul << 10)
#define HWCAP_BIT_ASIMDDP (1ul << 20)

static qrr_cpu_features detect(void)
{
    qrr_cpu_features f;
    memset(&f, 0, sizeof f);
    unsigned long hw = getauxval(AT_HWCAP);
    f.asimd = (hw & HWCAP_BIT_FP) && (hw & HWCAP_BIT_ASIMD);
    f.asimddp = f.asimd && (hw & HWCAP_BIT_ASIMDDP);
    f.fphp = (hw & HWCAP_BIT_FPHP) != 0;
    f.asimdhp = (hw & HWCAP_BIT_ASIMDHP) != 0;
    return f;
}
#else
static qrr_cpu_features detect(void)
{
    qrr_cpu_features f;
    memset(&f, 0, sizeof f);
    return f;
}
#endif

static pthread_once_t g_once = PTHREAD_ONCE_INIT;
static qrr_cpu_features g_feat;
static qrr__isa g_max, g_isa;

/* The names QRR_CPU_ISA takes, by level, on this architecture. */
static const char *const level_names[QRR__ISA_COUNT] = {
#if defined(QRR__ARM64)
    "scalar", "neon", "neon-dotprod",
#else
    "scalar", "avx2", "avx512",
#endif
};

_Static_assert(QRR__ISA_COUNT == 3, "the message of describe_init names three levels");

/* A QRR_CPU_ISA value that names no level here (ignored; the description says so). */
static char g_unknown_isa[32];

static void init(void)
{
    g_feat = detect();
    g_max = QRR__ISA_SCALAR;
#if defined(QRR__X86)
    if (g_feat.avx2 && g_feat.fma && g_feat.f16c) g_max = QRR__ISA_AVX2;
    if (g_max == QRR__ISA_AVX2 && g_feat.avx512f && g_feat.avx512bw && g_feat.avx512vl &&
        has_avx512dq())
        g_max = QRR__ISA_AVX512;
#elif defined(QRR__ARM64)
    if (g_feat.asimd) g_max = QRR__ISA_NEON;
    if (g_max == QRR__ISA_NEON && g_feat.asimddp) g_max = QRR__ISA_DOTPROD;
#endif
    g_isa = g_max;
    const char *e = getenv("QRR_CPU_ISA");
    int known = !e || !*e;
    for (int l = 0; e && l < (int)QRR__ISA_COUNT; l++)
        if (strcmp(e, level_names[l]) == 0) {
            known = 1;
            if ((qrr__isa)l < g_isa) g_isa = (qrr__isa)l;
        }
    if (!known) { /* shown as printable ASCII, cut with "..." */
        size_t n = 0;
        for (; e[n] && n + 1 < sizeof g_unknown_isa; n++)
            g_unknown_isa[n] = e[n] > 0x20 && e[n] < 0x7f ? e[n] : '?';
        if (e[n]) memcpy(g_unknown_isa + n - 3, "...", 3);
        g_unknown_isa[n] = '\0';
    }
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
    if (isa < 0 || isa >= (int)QRR__ISA_COUNT) isa = 0;
    return level_names[isa];
}

const char *qrr_cpu_gemm_impl(uint32_t dtype)
{
    qrr__isa isa = qrr__cpu_isa();
    if (dtype == 3 /* QRR_DTYPE_I8 */) {
#if defined(QRR__X86)
        if (isa == QRR__ISA_AVX512 && g_feat.avx512vnni) return "avx512-vnni";
        if (isa >= QRR__ISA_AVX2) return "avx2";
        return "scalar";
#endif
    }
#if defined(QRR__ARM64)
    if (dtype != 3 && isa > QRR__ISA_NEON) isa = QRR__ISA_NEON; /* sdot is for int8 only */
#endif
    return qrr_cpu_isa_name((int)isa);
}

const char *qrr_cpu_attention_impl(void)
{
    qrr__isa isa = qrr__cpu_isa();
#if defined(QRR__ARM64)
    if (isa > QRR__ISA_NEON) isa = QRR__ISA_NEON; /* dot products play no part */
#endif
    return qrr_cpu_isa_name((int)isa);
}

const char *qrr_cpu_ops_impl(void)
{
    qrr__isa isa = qrr__cpu_isa();
#if defined(QRR__X86)
    if (isa == QRR__ISA_AVX2) isa = QRR__ISA_SCALAR; /* avx2 has no versions of its own */
#elif defined(QRR__ARM64)
    if (isa > QRR__ISA_NEON) isa = QRR__ISA_NEON;
#endif
    return qrr_cpu_isa_name((int)isa);
}

static pthread_once_t g_describe_once = PTHREAD_ONCE_INIT;
static char g_describe[256];

static void describe_init(void)
{
    qrr_cpu_features f = qrr_cpu_detect();
    char feats[96] = "";
#if defined(QRR__X86)
    snprintf(feats, sizeof feats, "x86-64:%s%s%s%s%s", f.avx2 && f.fma && f.f16c ? " avx2" : "",
             f.avx512f ? " avx512f" : "", f.avx512vnni ? " avx512vnni" : "",
             f.avxvnni ? " avxvnni" : "", f.amx_int8 ? " amx-int8" : "");
#elif defined(QRR__ARM64)
    snprintf(feats, sizeof feats, "aarch64:%s%s%s%s", f.asimd ? " asimd" : "",
             f.asimddp ? " asimddp" : "", f.fphp ? " fphp" : "", f.asimdhp ? " asimdhp" : "");
#else
    snprintf(feats, sizeof feats, "no vector versions for this architecture");
    (void)f;
#endif
    char env[96] = "";
    if (qrr__cpu_isa() < qrr__cpu_isa_max())
        snprintf(env, sizeof env, ", lowered by QRR_CPU_ISA");
    else if (g_unknown_isa[0])
        snprintf(env, sizeof env, "; QRR_CPU_ISA=%s ignored: not %s|%s|%s", g_unknown_isa,
                 level_names[0], level_names[1], level_names[2]);
    snprintf(g_describe, sizeof g_describe,
             "f32/f16/bf16 GEMM %s, int8 GEMM %s, attention %s, norm/rope/swiglu %s (%s%s)",
             qrr_cpu_gemm_impl(0), qrr_cpu_gemm_impl(3), qrr_cpu_attention_impl(),
             qrr_cpu_ops_impl(), feats, env);
}

const char *qrr_cpu_describe(void)
{
    pthread_once(&g_describe_once, describe_init);
    return g_describe;
}
