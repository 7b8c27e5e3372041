/* qrr_test_util.h — what several test files need: where the reference data and the built
 * programs are, temporary directories, model directories with the tokenizer beside the
 * weights, running qconvert. Header-only (static functions) since each tests/test_*.c is its
 * own binary. */
#ifndef QRR_TEST_UTIL_H
#define QRR_TEST_UTIL_H

#include <criterion/criterion.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "qrr.h"

/* Sanitizer builds keep freed memory in quarantine, so memory bounds say nothing there. */
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define TU_SANITIZED 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define TU_SANITIZED 1
#endif
#endif

/* Under a CPU emulator (QRR_TEST_EMULATED names it; tests/run_arm64.sh sets it for qemu)
 * floating-point code runs 100 to 400 times slower than natively, and the emulator's own
 * memory counts in the process's RSS. The few tests whose work grows with document length or
 * count run a smaller workload there, with every assertion kept (docs/edge.md lists them). */
static inline int tu_emulated(void)
{
    const char *e = getenv("QRR_TEST_EMULATED");
    return e && *e;
}

static inline const char *tu_reference(void)
{
    const char *r = getenv("QRR_REFERENCE");
    return r && *r ? r : "../shared/reference";
}

static inline const char *tu_build(void)
{
    const char *b = getenv("QRR_BUILD");
    return b && *b ? b : "build";
}

/* A fresh directory under /tmp (path written into out). */
static inline void tu_tmpdir(char *out, size_t n)
{
    snprintf(out, n, "/tmp/qrr-test-XXXXXX");
    cr_assert_not_null(mkdtemp(out), "mkdtemp failed");
}

/* A whole file in a malloc'ed buffer with a NUL after its bytes; its length in *len (may
 * be NULL). Fails the test when the file cannot be read. */
static inline char *tu_slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    cr_assert_not_null(f, "cannot open %s", path);
    cr_assert_eq(fseek(f, 0, SEEK_END), 0);
    long n = ftell(f);
    cr_assert(n >= 0, "cannot size %s", path);
    rewind(f);
    char *s = malloc((size_t)n + 1);
    cr_assert_not_null(s);
    cr_assert_eq(fread(s, 1, (size_t)n, f), (size_t)n, "short read of %s", path);
    s[n] = '\0';
    fclose(f);
    if (len) *len = (size_t)n;
    return s;
}

/* Run a shell command; returns its exit status (or -1). */
static inline int tu_system(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static inline int tu_system(const char *fmt, ...)
{
    char cmd[4096];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cmd, sizeof cmd, fmt, ap);
    va_end(ap);
    int st = system(cmd);
    return st == -1 || !WIFEXITED(st) ? -1 : WEXITSTATUS(st);
}

/* A model directory in tmp holding links to reference model `name`'s files and the
 * reference tokenizer files. */
static inline void tu_model_dir(const char *name, const char *tmp, char *out, size_t n)
{
    snprintf(out, n, "%s/%s", tmp, name);
    cr_assert_eq(tu_system("mkdir -p '%s' && ln -s \"$(realpath '%s/models/%s')\"/* '%s'/ && "
                           "ln -s \"$(realpath '%s/tokenizer')\"/* '%s'/",
                           out, tu_reference(), name, out, tu_reference(), out), 0,
                 "could not lay out model directory %s", out);
}

/* Convert reference model `name` at dtype into tmp/<name>-<dtype>.qrr (path in out). With
 * QRR_TEST_MODEL_CACHE naming a directory, each (model, dtype) is converted once into it and
 * copied from there: a conversion takes seconds under an emulator, and tests/run_arm64.sh
 * gives each run a fresh directory. */
static inline void tu_convert(const char *name, const char *dtype, const char *tmp, char *out,
                              size_t n)
{
    char dir[1024];
    tu_model_dir(name, tmp, dir, sizeof dir);
    snprintf(out, n, "%s/%s-%s.qrr", tmp, name, dtype);
    const char *cache = getenv("QRR_TEST_MODEL_CACHE");
    if (!cache || !*cache) {
        cr_assert_eq(tu_system("'%s/qconvert' '%s' -o '%s' --dtype %s --quiet", tu_build(), dir,
                               out, dtype), 0, "qconvert %s --dtype %s failed", name, dtype);
        return;
    }
    char kept[1024], part[1100];
    snprintf(kept, sizeof kept, "%s/%s-%s.qrr", cache, name, dtype);
    snprintf(part, sizeof part, "%s/part-%d-%s-%s.qrr", cache, (int)getpid(), name, dtype);
    if (access(kept, R_OK) != 0) /* test processes that race each convert; rename is atomic */
        cr_assert_eq(tu_system("mkdir -p '%s' && '%s/qconvert' '%s' -o '%s' --dtype %s --quiet && "
                               "mv -f '%s' '%s'", cache, tu_build(), dir, part, dtype, part, kept),
                     0, "qconvert %s --dtype %s failed", name, dtype);
    cr_assert_eq(tu_system("cp '%s' '%s'", kept, out), 0, "could not copy %s", kept);
}

/* The fixture several suites share: tiny-tied converted to f32 in a fresh directory, opened,
 * with a two-thread context. */
typedef struct tu_tiny {
    char tmp[256], path[1024];
    qrr_model *model;
    qrr_ctx *ctx;
} tu_tiny;

static inline void tu_tiny_open(tu_tiny *t)
{
    tu_tmpdir(t->tmp, sizeof t->tmp);
    tu_convert("tiny-tied", "f32", t->tmp, t->path, sizeof t->path);
    cr_assert_eq(qrr_model_open(t->path, qrr_model_default_params(), &t->model), QRR_OK, "%s",
                 qrr_last_error());
    qrr_ctx_params cp = qrr_ctx_default_params();
    cp.n_threads = 2;
    cr_assert_eq(qrr_ctx_create(t->model, cp, &t->ctx), QRR_OK, "%s", qrr_last_error());
}

static inline void tu_tiny_close(tu_tiny *t)
{
    qrr_ctx_free(t->ctx);
    qrr_model_close(t->model);
    tu_system("rm -rf '%s'", t->tmp);
}

#endif
