/* qrr_test_util.h — what several test files need: where the reference data and the built
 * programs are, temporary directories (removed when the test ends), model directories with
 * the tokenizer beside the weights, running qconvert. Header-only (static functions) since
 * each tests/test_*.c is its own binary. */
#ifndef QRR_TEST_UTIL_H
#define QRR_TEST_UTIL_H

#include <criterion/criterion.h>
#include <dirent.h>
#include <errno.h>
#include <ftw.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
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
 * memory counts in the process's RSS. */
static inline int tu_emulated(void)
{
    const char *e = getenv("QRR_TEST_EMULATED");
    return e && *e;
}

/* The few tests whose work grows with document length or count run a smaller workload under
 * an emulator and in a sanitizer build (about ten times slower, and checking no memory bound),
 * with every assertion kept: the same code paths in a fraction of the time; the normal build
 * runs them at full size. docs/edge.md lists them. */
static inline int tu_small_workload(void)
{
#ifdef TU_SANITIZED
    return 1;
#else
    return tu_emulated();
#endif
}

static inline const char *tu_reference(void)
{
    const char *r = getenv("QRR_REFERENCE");
    return r && *r ? r : "../shared/reference";
}

/* Seconds on the monotonic clock. */
static inline double tu_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static inline const char *tu_build(void)
{
    const char *b = getenv("QRR_BUILD");
    return b && *b ? b : "build";
}

static int tu__remove(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st, (void)flag, (void)ftw;
    return remove(path);
}

/* Remove path and everything under it (links themselves, never what they point to). */
static inline void tu_rmtree(const char *path)
{
    nftw(path, tu__remove, 16, FTW_DEPTH | FTW_PHYS);
}

/* The directories tu_tmpdir made, removed when the process exits. Criterion runs each test
 * in a process of its own and exits it normally after a failed assertion in the test, so a
 * failing test leaves nothing in /tmp either. A failed assertion in a suite's .init aborts
 * the process instead: there the model helpers below (tu_model_dir, tu_convert) remove their
 * tmp themselves before they fail. A test killed at its timeout leaves its own. */
static char tu__tmpdirs[16][sizeof "/tmp/qrr-test-XXXXXX"];
static int tu__n_tmpdirs;
static pid_t tu__tmpdirs_owner; /* a forked child that calls exit() must not remove them */

static void tu__remove_tmpdirs(void)
{
    if (getpid() != tu__tmpdirs_owner) return;
    for (int i = 0; i < tu__n_tmpdirs; i++) tu_rmtree(tu__tmpdirs[i]);
}

/* A fresh directory under /tmp (path written into out), removed with its contents when the
 * test's process exits; a test may remove it earlier. */
static inline void tu_tmpdir(char *out, size_t n)
{
    char made[] = "/tmp/qrr-test-XXXXXX";
    cr_assert_not_null(mkdtemp(made), "mkdtemp failed");
    snprintf(out, n, "%s", made);
    if (tu__n_tmpdirs == 0) {
        tu__tmpdirs_owner = getpid();
        atexit(tu__remove_tmpdirs);
    }
    /* More than fit is only possible with --no-fork (one process for every test); those
     * tests still remove their own directories when they pass. */
    if (tu__n_tmpdirs < 16) memcpy(tu__tmpdirs[tu__n_tmpdirs++], made, sizeof made);
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

/* Link each entry of directory src (but dot files, as the shell's * would) into directory
 * dst, by absolute path. Returns 0, or -1 with the reason in why. */
static inline int tu_link_entries(const char *src, const char *dst, char *why, size_t n)
{
    char *abs = realpath(src, NULL);
    DIR *d = abs ? opendir(abs) : NULL;
    if (!d) {
        snprintf(why, n, "cannot read %s: %s", src, strerror(errno));
        free(abs);
        return -1;
    }
    int rc = 0;
    struct dirent *e;
    char from[4096], to[4096];
    while (rc == 0 && (e = readdir(d))) {
        if (e->d_name[0] == '.') continue;
        snprintf(from, sizeof from, "%s/%s", abs, e->d_name);
        snprintf(to, sizeof to, "%s/%s", dst, e->d_name);
        if (symlink(from, to) != 0) {
            snprintf(why, n, "cannot link %s into %s: %s", e->d_name, dst, strerror(errno));
            rc = -1;
        }
    }
    closedir(d);
    free(abs);
    return rc;
}

/* Make directory dir holding links to reference model `name`'s files and the reference
 * tokenizer files. Returns 0, or -1 with the reason in why: a missing reference folder says
 * which variable names it. No Criterion asserts, for test_concurrency's standalone build. */
static inline int tu_model_links(const char *name, const char *dir, char *why, size_t n)
{
    struct stat st;
    if (stat(tu_reference(), &st) != 0 || !S_ISDIR(st.st_mode)) {
        snprintf(why, n, "reference data not found at %s: set QRR_REFERENCE to the reference "
                 "folder", tu_reference());
        return -1;
    }
    if (mkdir(dir, 0755) != 0 && errno != EEXIST) {
        snprintf(why, n, "cannot make %s: %s", dir, strerror(errno));
        return -1;
    }
    char src[1024];
    snprintf(src, sizeof src, "%s/models/%s", tu_reference(), name);
    int rc = tu_link_entries(src, dir, why, n);
    snprintf(src, sizeof src, "%s/tokenizer", tu_reference());
    if (rc == 0) rc = tu_link_entries(src, dir, why, n);
    return rc;
}

/* rc, after removing directory tmp when rc is not 0: the step failed and the test will,
 * maybe in a suite's .init, where nothing else would remove tmp (see tu_tmpdir). */
static inline int tu__or_remove(int rc, const char *tmp)
{
    if (rc != 0) tu_rmtree(tmp);
    return rc;
}

/* A model directory in tmp holding links to reference model `name`'s files and the
 * reference tokenizer files. */
static inline void tu_model_dir(const char *name, const char *tmp, char *out, size_t n)
{
    char why[1600];
    snprintf(out, n, "%s/%s", tmp, name);
    cr_assert_eq(tu__or_remove(tu_model_links(name, out, why, sizeof why), tmp), 0, "%s", why);
}

/* Convert reference model `name` at dtype into tmp/<name>-<dtype>.qrr (path in out). With
 * QRR_TEST_MODEL_CACHE naming a directory, each (model, dtype) is converted once into it and
 * copied from there: a conversion takes a second or two (seconds more under a sanitizer or an
 * emulator), and tests/run.sh gives each run a fresh directory. */
static inline void tu_convert(const char *name, const char *dtype, const char *tmp, char *out,
                              size_t n)
{
    char dir[1024];
    tu_model_dir(name, tmp, dir, sizeof dir);
    snprintf(out, n, "%s/%s-%s.qrr", tmp, name, dtype);
    const char *cache = getenv("QRR_TEST_MODEL_CACHE");
    if (!cache || !*cache) {
        cr_assert_eq(tu__or_remove(tu_system("'%s/qconvert' '%s' -o '%s' --dtype %s --quiet",
                                             tu_build(), dir, out, dtype), tmp),
                     0, "qconvert %s --dtype %s failed", name, dtype);
        return;
    }
    char kept[1024], part[1100];
    snprintf(kept, sizeof kept, "%s/%s-%s.qrr", cache, name, dtype);
    snprintf(part, sizeof part, "%s/part-%d-%s-%s.qrr", cache, (int)getpid(), name, dtype);
    if (access(kept, R_OK) != 0) /* test processes that race each convert; rename is atomic */
        cr_assert_eq(tu__or_remove(tu_system("mkdir -p '%s' && '%s/qconvert' '%s' -o '%s' "
                                             "--dtype %s --quiet && mv -f '%s' '%s'", cache,
                                             tu_build(), dir, part, dtype, part, kept), tmp),
                     0, "qconvert %s --dtype %s failed", name, dtype);
    cr_assert_eq(tu__or_remove(tu_system("cp '%s' '%s'", kept, out), tmp), 0,
                 "could not copy %s", kept);
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
