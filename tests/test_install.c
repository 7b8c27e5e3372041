/* test_install.c — the library as an installed user sees it: `make install PREFIX=...` lays
 * out the header, the versioned shared library, the static one, qrr.pc and the programs; a
 * program built with `pkg-config --cflags --libs qrr` links libqrr.so.0 and runs; libqrr.so
 * exports exactly the functions include/ marks QRR_API; `make uninstall` removes it all; a
 * knob changed over an existing build directory rebuilds it. */
#include "qrr_test_util.h"

static char tmp[256];

static void setup(void) { tu_tmpdir(tmp, sizeof tmp); }
static void teardown(void) { tu_system("rm -rf '%s'", tmp); }

TestSuite(install, .init = setup, .fini = teardown);

/* make with this build's variables (`make test` passes them in QRR_MAKE_ARGS), never the
 * parent make's job server. */
static int run_make(const char *target, const char *prefix)
{
    const char *args = getenv("QRR_MAKE_ARGS");
    char fallback[600];
    if (!args || !*args) {
        snprintf(fallback, sizeof fallback, "BUILD='%s'", tu_build());
        args = fallback;
    }
    return tu_system("env -u MAKEFLAGS -u MFLAGS -u MAKELEVEL make -s --no-print-directory %s "
                     "%s PREFIX='%s' > '%s/make.log' 2>&1 || { cat '%s/make.log'; false; }",
                     args, target, prefix, tmp, tmp);
}

static const char *const installed[] = {
    "include/qrr.h", "include/qrr_status.h", "lib/libqrr.so", "lib/libqrr.so.0",
    "lib/libqrr.a", "lib/pkgconfig/qrr.pc", "bin/qrr", "bin/qconvert",
};
#define N_INSTALLED (sizeof installed / sizeof installed[0])

Test(install, prefix_layout_pkg_config_program_and_uninstall, .timeout = 300)
{
    char prefix[400], p[700], model[1024];
    snprintf(prefix, sizeof prefix, "%s/prefix", tmp);
    cr_assert_eq(run_make("install", prefix), 0, "make install PREFIX=%s failed", prefix);
    for (size_t i = 0; i < N_INSTALLED; i++) {
        snprintf(p, sizeof p, "%s/%s", prefix, installed[i]);
        cr_expect_eq(access(p, F_OK), 0, "make install left no %s", installed[i]);
    }
    /* libqrr.so -> libqrr.so.0 -> libqrr.so.X.Y.Z, whose soname is libqrr.so.0 */
    cr_expect_eq(tu_system("test \"$(readlink '%s/lib/libqrr.so')\" = libqrr.so.0", prefix), 0);
    cr_expect_eq(tu_system("readelf -d '%s/lib/libqrr.so' | grep -q 'SONAME.*\\[libqrr.so.0\\]'",
                           prefix), 0, "the installed library's soname is not libqrr.so.0");

    /* The README's reranking example, built as a user of the installed library would. A
     * sanitized build's library needs its runtime in the program too. */
    snprintf(p, sizeof p, "%s/rerank", tmp);
    cr_assert_eq(tu_system("export PKG_CONFIG_PATH='%s/lib/pkgconfig'; cc examples/rerank.c -o '%s' "
                           "$(pkg-config --cflags --libs qrr) "
                           "$(pkg-config --static --libs qrr | grep -o -- '-fsanitize=[^ ]*')",
                           prefix, p), 0, "cc with pkg-config --cflags --libs qrr failed");
    cr_expect_eq(tu_system("readelf -d '%s' | grep -q 'NEEDED.*\\[libqrr.so.0\\]'", p), 0,
                 "the program does not link the shared library");
    tu_convert("tiny-tied", "f16", tmp, model, sizeof model);
    cr_assert_eq(tu_system("LD_LIBRARY_PATH='%s/lib' '%s' '%s' 'What is the capital of China?' "
                           "'Beijing.' 'Seoul.' > '%s/ranked.txt'", prefix, p, model, tmp), 0);
    snprintf(p, sizeof p, "%s/ranked.txt", tmp);
    char *text = tu_slurp(p, NULL);
    cr_expect(strstr(text, "Beijing.") && strstr(text, "Seoul."), "%s", text);
    free(text);
    cr_expect_eq(tu_system("'%s/bin/qrr' info '%s' > /dev/null", prefix, model), 0);

    /* libqrr links no CUDA library; a CUDA build installs its module in lib/, where the
     * installed qrr finds it (from bin/, through ../lib): its error is then the module's own
     * "no CUDA device" (or a score, on a GPU machine), not "no CUDA module". */
    cr_expect_neq(tu_system("readelf -d '%s/lib/libqrr.so' | grep -q 'NEEDED.*\\(cuda\\|cublas\\)'",
                            prefix), 0, "the installed libqrr.so needs a CUDA library");
    snprintf(p, sizeof p, "%s/libqrr_cuda.so.0", tu_build());
    if (access(p, F_OK) == 0) {
        cr_expect_eq(tu_system("test -f '%s/lib/libqrr_cuda.so.0'", prefix), 0,
                     "make install left no lib/libqrr_cuda.so.0");
        cr_expect_eq(tu_system("cd / && echo '{\"query\":\"q\",\"document\":\"d\"}' | "
                               "env -u QRR_CUDA_MODULE '%s/bin/qrr' score '%s' --device cuda "
                               "> '%s/cuda.out' 2> '%s/cuda.err'; "
                               "! grep -q 'no CUDA module' '%s/cuda.err' && "
                               "{ grep -q 'no CUDA device' '%s/cuda.err' || grep -q score '%s/cuda.out'; }",
                               prefix, model, tmp, tmp, tmp, tmp, tmp), 0,
                     "the installed qrr did not load the installed CUDA module");
    }

    /* docs/api.md's static link line: the archive in, no libqrr.so needed */
    snprintf(p, sizeof p, "%s/rerank-static", tmp);
    cr_assert_eq(tu_system("export PKG_CONFIG_PATH='%s/lib/pkgconfig'; cc examples/rerank.c -o '%s' "
                           "$(pkg-config --cflags qrr) \"$(pkg-config --variable=libdir qrr)/libqrr.a\" "
                           "-Wl,--as-needed $(pkg-config --static --libs qrr)", prefix, p), 0,
                 "docs/api.md's static link line failed");
    cr_expect_neq(tu_system("readelf -d '%s' | grep -q 'NEEDED.*libqrr'", p), 0,
                  "the static link still needs libqrr.so");
    cr_expect_eq(tu_system("'%s' '%s' 'What is the capital of China?' 'Beijing.' > /dev/null", p,
                           model), 0);

    cr_assert_eq(run_make("uninstall", prefix), 0, "make uninstall failed");
    for (size_t i = 0; i < N_INSTALLED; i++) {
        snprintf(p, sizeof p, "%s/%s", prefix, installed[i]);
        cr_expect_neq(access(p, F_OK), 0, "make uninstall left %s", installed[i]);
    }
    cr_expect_eq(tu_system("test -z \"$(find '%s' -type f -o -type l)\"", prefix), 0,
                 "files remain under the prefix after make uninstall");
}

Test(install, shared_library_exports_the_public_api_only)
{
    /* The names declared after a QRR_API line in include/, against the names libqrr.so
     * defines dynamically. */
    cr_assert_eq(tu_system("for h in include/*.h; do awk 'p { if (match($0, /qrr_[a-z0-9_]+\\(/)) "
                           "print substr($0, RSTART, RLENGTH - 1); p = 0 } /^QRR_API/ { p = 1; "
                           "if (match($0, /qrr_[a-z0-9_]+\\(/)) { print substr($0, RSTART, "
                           "RLENGTH - 1); p = 0 } }' \"$h\"; done | sort -u > '%s/declared'",
                           tmp), 0);
    cr_assert_eq(tu_system("nm -D --defined-only '%s/libqrr.so' | awk '{print $3}' | sort -u "
                           "> '%s/exported'", tu_build(), tmp), 0);
    char p[400];
    snprintf(p, sizeof p, "%s/declared", tmp);
    char *declared = tu_slurp(p, NULL);
    cr_expect(strstr(declared, "qrr_ctx_score\n") && strstr(declared, "qrr_status_str\n"),
              "the header scan found too little:\n%s", declared);
    free(declared);
    cr_expect_eq(tu_system("diff '%s/declared' '%s/exported'", tmp, tmp), 0,
                 "libqrr.so exports differ from the QRR_API declarations (< declared, > exported)");
}

Test(install, a_changed_knob_rebuilds, .timeout = 300)
{
    /* The same build directory without the server, then with it: the second make must
     * rebuild and relink `qrr` with libmicrohttpd, not find everything up to date. A tree
     * of its own, unoptimized, without CUDA or a sanitizer: what is tested is the Makefile,
     * and a sanitized build of the whole tree, twice, took minutes. */
    char build[400], p[1024]; /* room for the build path twice */
    snprintf(build, sizeof build, "%s/knobs", tmp);
    snprintf(p, sizeof p, "BUILD='%s' OPT=-O0 SANITIZE= CUDA=0 SERVER=0 '%s/qrr'", build, build);
    cr_assert_eq(run_make(p, tmp), 0, "make %s failed", p);
    cr_assert_neq(tu_system("readelf -d '%s/qrr' | grep -q microhttpd", build), 0,
                  "SERVER=0 linked libmicrohttpd");
    /* asked to serve, that build says why it cannot (a usage error), not "unknown command" */
    cr_expect_eq(tu_system("'%s/qrr' serve m.qrr 2> '%s/serve.err'", build, tmp), 2);
    char err_path[400];
    snprintf(err_path, sizeof err_path, "%s/serve.err", tmp);
    char *err = tu_slurp(err_path, NULL);
    cr_expect(strstr(err, "built without the server") && !strstr(err, "unknown command"), "%s", err);
    free(err);
    snprintf(p, sizeof p, "BUILD='%s' OPT=-O0 SANITIZE= CUDA=0 SERVER=1 '%s/qrr'", build, build);
    cr_assert_eq(run_make(p, tmp), 0, "make %s failed", p);
    cr_expect_eq(tu_system("readelf -d '%s/qrr' | grep -q microhttpd", build), 0,
                 "SERVER=1 over a SERVER=0 tree kept the build without the server");
}
