/* test_qconvert_signals.c — qconvert interrupted by SIGINT, SIGTERM or SIGHUP while it
 * writes: no temporary file is left beside the output, an output that existed before is
 * unchanged, and the exit status says which signal ended the run. Runs build/qconvert on a
 * checkpoint written by build/qgen. */
#include <criterion/criterion.h>
#include "qrr_test_util.h"

#include <dirent.h>
#include <signal.h>
#include <string.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define PREVIOUS "the output of an earlier run\n"

/* Does dir hold a temporary file of out.qrr? */
static int tmp_present(const char *dir)
{
    DIR *d = opendir(dir);
    cr_assert_not_null(d, "opendir %s", dir);
    struct dirent *e;
    int found = 0;
    while ((e = readdir(d)) != NULL)
        if (strncmp(e->d_name, "out.qrr.tmp.", 12) == 0) found = 1;
    closedir(d);
    return found;
}

static pid_t start_qconvert(const char *model, const char *out)
{
    char prog[1024];
    snprintf(prog, sizeof prog, "%s/qconvert", tu_build());
    pid_t pid = fork();
    cr_assert(pid >= 0, "fork failed");
    if (pid == 0) {
        /* the test runner may ignore some of these (nohup); qconvert starts with defaults */
        signal(SIGINT, SIG_DFL);
        signal(SIGTERM, SIG_DFL);
        signal(SIGHUP, SIG_DFL);
        execl(prog, "qconvert", model, "-o", out, "--dtype", "f32", "--quiet", (char *)NULL);
        _exit(127);
    }
    return pid;
}

/* Wait (up to a minute) until the conversion has created its temporary file, then stop
 * the process there so that the signal arrives while the file exists. */
static void stop_while_writing(pid_t pid, const char *dir)
{
    struct timespec pause = {0, 200000};
    int status;
    for (int i = 0; !tmp_present(dir); i++) {
        cr_assert(i < 300000, "no temporary file appeared in %s", dir);
        cr_assert_eq(waitpid(pid, &status, WNOHANG), 0, "qconvert ended before writing");
        nanosleep(&pause, NULL);
    }
    cr_assert_eq(kill(pid, SIGSTOP), 0);
    cr_assert_eq(waitpid(pid, &status, WUNTRACED), pid);
    cr_assert(WIFSTOPPED(status), "qconvert finished before it could be stopped (status %d)", status);
    cr_assert(tmp_present(dir), "qconvert renamed its output before it could be stopped");
}

Test(signals, interrupted_conversion_leaves_no_temporary_file, .timeout = 300)
{
    char dir[64], model[128], out[128];
    tu_tmpdir(dir, sizeof dir);
    snprintf(model, sizeof model, "%s/model", dir);
    snprintf(out, sizeof out, "%s/out.qrr", dir);
    /* 80 MB of bf16 (the embedding of the real vocabulary at hidden 256), written out as f32:
     * the writing takes long enough to be caught with a sub-millisecond poll */
    cr_assert_eq(tu_system("'%s/qgen' -o '%s' --layers 2 --hidden 256 --intermediate 512 "
                           "--tokenizer '%s/tokenizer' --quiet", tu_build(), model, tu_reference()),
                 0, "qgen failed");
    FILE *f = fopen(out, "w");
    cr_assert_not_null(f);
    fputs(PREVIOUS, f);
    fclose(f);

    const int sigs[] = {SIGINT, SIGTERM, SIGHUP};
    for (size_t i = 0; i < sizeof sigs / sizeof *sigs; i++) {
        pid_t pid = start_qconvert(model, out);
        stop_while_writing(pid, dir);
        cr_assert_eq(kill(pid, sigs[i]), 0);
        cr_assert_eq(kill(pid, SIGCONT), 0);
        int status;
        cr_assert_eq(waitpid(pid, &status, 0), pid);
        cr_assert(WIFSIGNALED(status) && WTERMSIG(status) == sigs[i],
                  "%s: status %d, expected death by that signal", strsignal(sigs[i]), status);
        cr_assert(!tmp_present(dir), "%s left a temporary file in %s", strsignal(sigs[i]), dir);
        size_t n;
        char *got = tu_slurp(out, &n);
        cr_assert(n == strlen(PREVIOUS) && memcmp(got, PREVIOUS, n) == 0,
                  "%s: the existing output changed", strsignal(sigs[i]));
        free(got);
    }
    cr_assert_eq(tu_system("rm -rf '%s'", dir), 0);
}

/* Past a file size limit (ulimit -f) the conversion is an output error (exit 3) that
 * leaves no temporary file, not a death by SIGXFSZ that would leave one. */
Test(signals, a_file_size_limit_is_an_output_error_with_nothing_left, .timeout = 120)
{
    char dir[64];
    tu_tmpdir(dir, sizeof dir);
    char model[1100];
    tu_model_dir("tiny-tied", dir, model, sizeof model);
    int rc = tu_system("ulimit -f 1000 && exec '%s/qconvert' '%s' -o '%s/out.qrr' --dtype f32 --quiet "
                       "2> '%s/err.txt'", tu_build(), model, dir, dir);
    cr_expect_eq(rc, 3, "exit %d, expected 3 (an output error)", rc);
    cr_expect(!tmp_present(dir), "a temporary file was left in %s", dir);
    char p[200];
    snprintf(p, sizeof p, "%s/out.qrr", dir);
    cr_expect_neq(access(p, F_OK), 0, "an output was left");
    snprintf(p, sizeof p, "%s/err.txt", dir);
    char *text = tu_slurp(p, NULL);
    cr_expect(strstr(text, "File too large"), "%s", text);
    free(text);
}
