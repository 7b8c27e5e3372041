/* test_cli.c — the qrr command and the example program as a user runs them: info (text and
 * JSON), tokenize, score with a bad line among good ones, exit codes, the kernels --version,
 * bench and score --describe name, the reranking example. */
#include <jansson.h>
#include <math.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/wait.h>

#include "qrr_test_util.h"

static char tmp[256], model[1024];

static void setup(void)
{
    tu_tmpdir(tmp, sizeof tmp);
    tu_convert("tiny-tied", "f16", tmp, model, sizeof model);
}

static void teardown(void) { tu_system("rm -rf '%s'", tmp); }

TestSuite(cli, .init = setup, .fini = teardown);

Test(cli, info_text_and_json)
{
    cr_assert_eq(tu_system("'%s/qrr' info '%s' > '%s/info.txt'", tu_build(), model, tmp), 0);
    char p[1100];
    snprintf(p, sizeof p, "%s/info.txt", tmp);
    char *text = tu_slurp(p, NULL);
    cr_expect(strstr(text, "inferred") != NULL, "labels not shown as inferred:\n%s", text);
    cr_expect(strstr(text, "model.layers.2.mlp.down_proj.weight") != NULL);
    free(text);
    cr_assert_eq(tu_system("'%s/qrr' info --json '%s' > '%s/info.json'", tu_build(), model, tmp), 0);
    snprintf(p, sizeof p, "%s/info.json", tmp);
    json_t *j = json_load_file(p, 0, NULL);
    cr_assert_not_null(j, "qrr info --json is not JSON");
    cr_expect_eq(json_integer_value(json_object_get(json_object_get(j, "model"), "layers")), 3);
    cr_expect_eq(json_integer_value(json_object_get(json_object_get(j, "head"), "yes_id")), 9693);
    json_decref(j);
    cr_expect_eq(tu_system("'%s/qrr' info /nonexistent.qrr 2>/dev/null", tu_build()), 1);
    snprintf(p, sizeof p, "%s/one-byte.qrr", tmp);
    FILE *f = fopen(p, "wb");
    fputc('Q', f);
    fclose(f);
    cr_expect_eq(tu_system("'%s/qrr' info '%s' 2> '%s/one.err'", tu_build(), p, tmp), 1);
    snprintf(p, sizeof p, "%s/one.err", tmp);
    text = tu_slurp(p, NULL);
    cr_expect(strstr(text, "file is 1 byte, shorter than") != NULL, "%s", text);
    free(text);
    cr_expect_eq(tu_system("'%s/qrr' info 2>/dev/null", tu_build()), 2);
    cr_expect_eq(tu_system("'%s/qrr' frobnicate 2>/dev/null", tu_build()), 2);
}

/* --version names the CPU kernels in use; bench names them beside its numbers. */
Test(cli, version_and_bench_name_the_kernels)
{
    cr_assert_eq(tu_system("'%s/qrr' --version > '%s/version.txt'", tu_build(), tmp), 0);
    char p[1100];
    snprintf(p, sizeof p, "%s/version.txt", tmp);
    char *text = tu_slurp(p, NULL);
    cr_expect(!strncmp(text, "qrr ", 4) && strstr(text, "\ncpu kernels: f32/f16/bf16 GEMM ") &&
              strstr(text, ", int8 GEMM ") && strstr(text, ", attention "), "%s", text);
    free(text);
    /* a QRR_CPU_ISA that names no level is ignored, and the line says so */
    cr_assert_eq(tu_system("QRR_CPU_ISA=avx-512 '%s/qrr' --version > '%s/version.txt'",
                           tu_build(), tmp), 0);
    text = tu_slurp(p, NULL);
    cr_expect(strstr(text, "QRR_CPU_ISA=avx-512 ignored: not scalar|") != NULL, "%s", text);
    free(text);
    cr_assert_eq(tu_system("'%s/qrr' bench '%s' --docs 2 --min-words 5 --max-words 10 --repeat 1 "
                           "--threads 1 --json > '%s/bench.json'", tu_build(), model, tmp), 0);
    snprintf(p, sizeof p, "%s/bench.json", tmp);
    json_t *j = json_load_file(p, 0, NULL);
    cr_assert_not_null(j, "qrr bench --json is not JSON");
    const char *dev = json_string_value(json_object_get(j, "device"));
    const char *k = json_string_value(json_object_get(j, "cpu_kernels"));
    cr_expect(dev && !strncmp(dev, "cpu, 1 thread, f16 ", 19) && strstr(dev, "GEMM kernels"), "%s", dev);
    cr_expect(k && strstr(k, "int8 GEMM "), "%s", k);
    json_decref(j);
    /* score --describe: the context's description on stderr once the input has ended */
    cr_assert_eq(tu_system("echo '{\"query\": \"q\", \"document\": \"d\"}' | '%s/qrr' score '%s' "
                           "--threads 1 --describe > /dev/null 2> '%s/describe.txt'", tu_build(),
                           model, tmp), 0);
    snprintf(p, sizeof p, "%s/describe.txt", tmp);
    text = tu_slurp(p, NULL);
    cr_expect(!strncmp(text, "qrr score: context: cpu, 1 thread, f16 ", 39) &&
              strstr(text, "GEMM kernels"), "%s", text);
    free(text);
}

/* bench --write-workload: the run's query and documents, written once the run succeeded;
 * never over the model (a newcomer's run once replaced the model with its workload), nothing
 * after a failed run, and the reason when it cannot be written. */
Test(cli, bench_writes_its_workload_whole_and_never_over_the_model)
{
    char wl[1100], copy[1100], p[1100];
    snprintf(wl, sizeof wl, "%s/workload.jsonl", tmp);
    snprintf(copy, sizeof copy, "%s/copy.qrr", tmp);
    const char *opts = "--docs 3 --min-words 5 --max-words 10 --repeat 1 --threads 1";
    cr_assert_eq(tu_system("'%s/qrr' bench '%s' %s --write-workload '%s' > /dev/null", tu_build(),
                           model, opts, wl), 0);
    size_t n = 0;
    char *text = tu_slurp(wl, &n);
    int lines = 0;
    for (size_t i = 0; i < n; i++) lines += text[i] == '\n';
    cr_expect_eq(lines, 3, "%s", text);
    cr_expect(strstr(text, "{\"query\":") && strstr(text, "\"document\":"), "%s", text);
    free(text);
    /* the file is qrr score input */
    cr_assert_eq(tu_system("'%s/qrr' score '%s' --threads 1 < '%s' > '%s/scored.jsonl'", tu_build(),
                           model, wl, tmp), 0);

    /* over the model (here through a symbolic link to it): refused before anything runs */
    cr_assert_eq(tu_system("cp '%s' '%s' && ln -s '%s' '%s/link.jsonl'", model, copy, copy, tmp), 0);
    snprintf(p, sizeof p, "%s/link.jsonl", tmp);
    cr_expect_eq(tu_system("'%s/qrr' bench '%s' %s --write-workload '%s' > /dev/null 2> '%s/err.txt'",
                           tu_build(), copy, opts, p, tmp), 2);
    cr_expect_eq(tu_system("cmp -s '%s' '%s'", model, copy), 0, "the model file was changed");
    snprintf(p, sizeof p, "%s/err.txt", tmp);
    text = tu_slurp(p, NULL);
    cr_expect(strstr(text, "is the model file"), "%s", text);
    free(text);

    /* something there that is not a regular file (a FIFO, a link to a directory) is refused,
     * not replaced by the rename */
    cr_assert_eq(tu_system("mkfifo '%s/fifo' && mkdir '%s/d' && ln -s d '%s/dlink'", tmp, tmp, tmp), 0);
    cr_expect_eq(tu_system("'%s/qrr' bench '%s' %s --write-workload '%s/fifo' > /dev/null 2>&1",
                           tu_build(), model, opts, tmp), 2);
    cr_expect_eq(tu_system("'%s/qrr' bench '%s' %s --write-workload '%s/dlink' > /dev/null 2>&1",
                           tu_build(), model, opts, tmp), 2);
    cr_expect_eq(tu_system("test -p '%s/fifo' && test -L '%s/dlink'", tmp, tmp), 0);

    /* a failed run (no model) writes nothing; an unwritable path says why */
    snprintf(p, sizeof p, "%s/after-failure.jsonl", tmp);
    cr_expect_eq(tu_system("'%s/qrr' bench '%s/none.qrr' %s --write-workload '%s' > /dev/null 2>&1",
                           tu_build(), tmp, opts, p), 1);
    cr_expect_neq(access(p, F_OK), 0, "a failed run wrote %s", p);
    cr_expect_eq(tu_system("'%s/qrr' bench '%s' %s --write-workload '%s/no/dir/w.jsonl' > /dev/null "
                           "2> '%s/err.txt'", tu_build(), model, opts, tmp, tmp), 1);
    snprintf(p, sizeof p, "%s/err.txt", tmp);
    text = tu_slurp(p, NULL);
    cr_expect(strstr(text, "cannot write the workload") && strstr(text, "No such file or directory"),
              "%s", text);
    free(text);
    /* a directory that takes no new file, whatever its permission bits say (root passes
     * those), is refused before the run: nothing measured is printed */
    cr_expect_eq(tu_system("'%s/qrr' bench '%s' %s --write-workload /proc/w.jsonl > '%s/out.txt' "
                           "2> /dev/null", tu_build(), model, opts, tmp), 1);
    snprintf(p, sizeof p, "%s/out.txt", tmp);
    text = tu_slurp(p, NULL);
    cr_expect_eq(text[0], '\0', "the run went ahead: %s", text);
    free(text);
}

Test(cli, tokenize_matches_reference)
{
    char ref[1024];
    snprintf(ref, sizeof ref, "%s/tokenizer_public.jsonl", tu_reference());
    cr_assert_eq(tu_system("head -n 60 '%s' > '%s/in.jsonl' && '%s/qrr' tokenize '%s' < '%s/in.jsonl' > '%s/out.jsonl'",
                           ref, tmp, tu_build(), model, tmp, tmp), 0);
    char in[1100], out[1100];
    snprintf(in, sizeof in, "%s/in.jsonl", tmp);
    snprintf(out, sizeof out, "%s/out.jsonl", tmp);
    FILE *a = fopen(in, "r"), *b = fopen(out, "r");
    char *la = NULL, *lb = NULL;
    size_t ca = 0, cb = 0;
    int lines = 0;
    while (getline(&la, &ca, a) > 0) {
        cr_assert(getline(&lb, &cb, b) > 0, "output ends early at line %d", lines + 1);
        json_t *x = json_loads(la, 0, NULL), *y = json_loads(lb, 0, NULL);
        cr_expect(json_equal(json_object_get(x, "ids"), json_object_get(y, "ids")),
                  "line %d differs", lines + 1);
        json_decref(x);
        json_decref(y);
        lines++;
    }
    cr_expect_eq(lines, 60);
    free(la);
    free(lb);
    fclose(a);
    fclose(b);
}

Test(cli, score_bad_line_among_good_ones)
{
    char in[1100], out[1100];
    snprintf(in, sizeof in, "%s/score.jsonl", tmp);
    snprintf(out, sizeof out, "%s/scores.jsonl", tmp);
    FILE *f = fopen(in, "w");
    fprintf(f, "{\"query\": \"What is the capital of China?\", \"document\": \"The capital of China is Beijing.\"}\n");
    fprintf(f, "{\"query\": \"What is the capital of China?\", \"document\": 42}\n");
    fprintf(f, "not json\n");
    fprintf(f, "{\"query\": \"What is the capital of China?\", \"document\": \"Gravity is a force.\", \"instruction\": null}\n");
    fprintf(f, "{\"ids\": [151644, 8948, 198]}\n");
    fclose(f);
    cr_expect_eq(tu_system("'%s/qrr' score '%s' --threads 2 < '%s' > '%s' 2>/dev/null", tu_build(),
                           model, in, out), 1, "a bad line must make the exit status 1");
    FILE *r = fopen(out, "r");
    char *line = NULL;
    size_t cap = 0;
    const char *expect[] = {"score", "error", "error", "score", "score"};
    for (int i = 0; i < 5; i++) {
        cr_assert(getline(&line, &cap, r) > 0, "missing output line %d", i + 1);
        json_t *o = json_loads(line, 0, NULL);
        cr_assert_not_null(o);
        cr_expect_not_null(json_object_get(o, expect[i]), "line %d: %s", i + 1, line);
        if (i == 1) cr_expect(strstr(json_string_value(json_object_get(o, "error")), "line 2") != NULL);
        if (i == 0) {
            double s = json_number_value(json_object_get(o, "score"));
            double l = json_number_value(json_object_get(o, "logit"));
            cr_expect(fabs(s - 1.0 / (1.0 + exp(-l))) < 1e-6, "score is not sigmoid(logit)");
        }
        json_decref(o);
    }
    cr_expect(getline(&line, &cap, r) < 0, "extra output lines");
    free(line);
    fclose(r);
    cr_expect_eq(tu_system("'%s/qrr' score '%s' --threads -3 </dev/null 2>/dev/null", tu_build(), model), 2);
    cr_expect_eq(tu_system("'%s/qrr' score '%s' --device tpu </dev/null 2>/dev/null", tu_build(), model), 2);
}

Test(cli, example_prints_sorted)
{
    char out[1100];
    snprintf(out, sizeof out, "%s/example.txt", tmp);
    cr_assert_eq(tu_system("'%s/examples/rerank' '%s' 'What is the capital of China?' "
                           "'Gravity is a force.' 'The capital of China is Beijing.' 'Seoul.' > '%s'",
                           tu_build(), model, out), 0);
    FILE *f = fopen(out, "r");
    double prev = 2.0, s;
    char doc[256];
    int n = 0;
    while (fscanf(f, "%lf\t%255[^\n]\n", &s, doc) == 2) {
        cr_expect_leq(s, prev, "not sorted best first");
        cr_expect(s >= 0.0 && s <= 1.0);
        prev = s;
        n++;
    }
    fclose(f);
    cr_expect_eq(n, 3);
}

/* ---- qrr score / tokenize as a coprocess: one line in, its answer out, input still open -- */

#include <poll.h>
#include <signal.h>

typedef struct coproc {
    pid_t pid;
    int in, out; /* its standard input (we write) and output (we read) */
} coproc;

static coproc start(const char *cmd)
{
    int to[2], from[2];
    cr_assert_eq(pipe(to), 0);
    cr_assert_eq(pipe(from), 0);
    coproc c = {.pid = fork()};
    cr_assert_geq(c.pid, 0);
    if (c.pid == 0) {
        dup2(to[0], 0);
        dup2(from[1], 1);
        close(to[0]), close(to[1]), close(from[0]), close(from[1]);
        execl("/bin/sh", "sh", "-c", cmd, (char *)NULL);
        _exit(127);
    }
    close(to[0]);
    close(from[1]);
    c.in = to[1];
    c.out = from[0];
    return c;
}

/* One line of output within timeout_ms, or fail. */
static void read_answer(coproc *c, char *buf, size_t cap, int timeout_ms, const char *what)
{
    size_t n = 0;
    while (n + 1 < cap) {
        struct pollfd p = {.fd = c->out, .events = POLLIN};
        cr_assert_gt(poll(&p, 1, timeout_ms), 0, "%s: no answer within %d ms while its input "
                     "is still open", what, timeout_ms);
        ssize_t k = read(c->out, buf + n, 1);
        cr_assert_eq(k, 1, "%s: output ended", what);
        if (buf[n++] == '\n') break;
    }
    buf[n] = '\0';
}

static int finish(coproc *c)
{
    close(c->in);
    close(c->out);
    int st;
    waitpid(c->pid, &st, 0);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static void answers_each_line_at_once(const char *cmd_fmt, const char *line1, const char *line2,
                                      const char *key)
{
    char cmd[2048], buf[4096];
    snprintf(cmd, sizeof cmd, cmd_fmt, tu_build(), model);
    coproc c = start(cmd);
    cr_assert_eq(write(c.in, line1, strlen(line1)), (ssize_t)strlen(line1));
    read_answer(&c, buf, sizeof buf, 10000, cmd);
    cr_expect(strstr(buf, key) != NULL, "first answer: %s", buf);
    cr_assert_eq(write(c.in, line2, strlen(line2)), (ssize_t)strlen(line2));
    read_answer(&c, buf, sizeof buf, 10000, cmd);
    cr_expect(strstr(buf, key) != NULL, "second answer: %s", buf);
    cr_expect_eq(finish(&c), 0);
}

Test(cli, score_and_tokenize_answer_without_waiting_for_more_input)
{
    const char *a = "{\"query\":\"A\",\"document\":\"d1\"}\n";
    const char *b = "{\"query\":\"A\",\"document\":\"d2\"}\n";
    answers_each_line_at_once("'%s/qrr' score '%s' --threads 1", a, b, "\"score\"");
    answers_each_line_at_once("'%s/qrr' score '%s' --threads 1 --batch 1", a, b, "\"score\"");
    answers_each_line_at_once("'%s/qrr' tokenize '%s'", "{\"text\":\"hello\"}\n",
                              "{\"text\":\"world\"}\n", "\"ids\"");
}

/* Run qrr score on the given input lines; the output lines in out[] (caller frees). */
static int score_lines(const char *input, char **out, int max_out, int *n_out)
{
    char in[1100], res[1100];
    snprintf(in, sizeof in, "%s/lines.jsonl", tmp);
    snprintf(res, sizeof res, "%s/lines.out", tmp);
    FILE *f = fopen(in, "w");
    fputs(input, f);
    fclose(f);
    int rc = tu_system("'%s/qrr' score '%s' --threads 1 < '%s' > '%s' 2>/dev/null", tu_build(),
                       model, in, res);
    f = fopen(res, "r");
    char *line = NULL;
    size_t cap = 0;
    *n_out = 0;
    while (*n_out < max_out && getline(&line, &cap, f) > 0) out[(*n_out)++] = strdup(line);
    free(line);
    fclose(f);
    return rc;
}

static double field(const char *line, const char *key)
{
    json_t *o = json_loads(line, 0, NULL);
    cr_assert_not_null(o, "not JSON: %s", line);
    json_t *v = json_object_get(o, key);
    cr_assert_not_null(v, "no \"%s\" in %s", key, line);
    double x = json_number_value(v);
    json_decref(o);
    return x;
}

Test(cli, score_accepts_nul_and_blank_lines_and_refuses_mixed_lines)
{
    char *out[8];
    int n;
    /* \u0000 is valid JSON: the document holds a NUL byte, and its score differs from the
     * text cut at the NUL */
    cr_expect_eq(score_lines("{\"query\":\"q\",\"document\":\"Beijing\\u0000 is the capital\"}\n"
                             "\n   \n"
                             "{\"query\":\"q\",\"document\":\"Beijing\"}\n"
                             "{\"query\":\"q\\u0000x\",\"document\":\"d\",\"instruction\":\"i\\u0000j\"}\n",
                             out, 8, &n), 0, "NUL inside strings or blank lines failed");
    cr_assert_eq(n, 3, "blank lines are skipped: 3 answers expected, got %d", n);
    cr_expect_neq(field(out[0], "logit"), field(out[1], "logit"),
                  "the bytes after the NUL were dropped");
    field(out[2], "score");
    for (int i = 0; i < n; i++) free(out[i]);

    /* a line with both ids and text is refused, naming the line */
    cr_expect_eq(score_lines("{\"ids\":[151644, 8948],\"query\":\"q\",\"document\":\"d\"}\n", out, 8,
                             &n), 1);
    cr_assert_eq(n, 1);
    cr_expect(strstr(out[0], "line 1") && strstr(out[0], "not both"), "%s", out[0]);
    free(out[0]);

    /* a byte-order mark at the start of the input (some Windows editors write one) is
     * skipped; one later in the input is not JSON */
    cr_expect_eq(score_lines("\xef\xbb\xbf{\"query\":\"q\",\"document\":\"Beijing\"}\n"
                             "{\"query\":\"q\",\"document\":\"Beijing\"}\n"
                             "\xef\xbb\xbf{\"query\":\"q\",\"document\":\"d\"}\n", out, 8, &n), 1);
    cr_assert_eq(n, 3);
    cr_expect_eq(field(out[0], "logit"), field(out[1], "logit"));
    cr_expect(strstr(out[2], "line 3") && strstr(out[2], "not valid JSON"), "%s", out[2]);
    for (int i = 0; i < n; i++) free(out[i]);

    /* a line of JSON that is not an object says so */
    cr_expect_eq(score_lines("null\n5\n", out, 8, &n), 1);
    cr_assert_eq(n, 2);
    for (int i = 0; i < n; i++)
        cr_expect(strstr(out[i], "expected a JSON object"), "line %d: %s", i + 1, out[i]);
    for (int i = 0; i < n; i++) free(out[i]);

    /* max_length 0 means the model's default, as in the API */
    cr_expect_eq(score_lines("{\"query\":\"q\",\"document\":\"d\",\"max_length\":0}\n"
                             "{\"query\":\"q\",\"document\":\"d\"}\n", out, 8, &n), 0);
    cr_assert_eq(n, 2);
    cr_expect_eq(field(out[0], "logit"), field(out[1], "logit"));
    for (int i = 0; i < n; i++) free(out[i]);
}

/* A prompt over max_length loses the end of its body (the document first); "truncate":
 * false refuses it instead, on that line alone. */
Test(cli, score_cuts_long_prompts_at_the_end_unless_truncate_is_false)
{
    char words[2000] = "", input[8192];
    for (int i = 0; i < 150; i++) strcat(words, "words ");
    snprintf(input, sizeof input,
             "{\"query\":\"q\",\"document\":\"%sapple\",\"max_length\":128}\n"
             "{\"query\":\"q\",\"document\":\"%sbanana pear\",\"max_length\":128}\n"
             "{\"query\":\"q\",\"document\":\"%sapple\",\"max_length\":128,\"truncate\":false}\n"
             "{\"query\":\"q\",\"document\":\"apple\",\"max_length\":128,\"truncate\":false}\n"
             "{\"query\":\"q\",\"document\":\"apple\",\"max_length\":128,\"truncate\":null}\n"
             "{\"query\":\"q\",\"document\":\"apple\",\"truncate\":0}\n",
             words, words, words);
    char *out[8];
    int n;
    cr_expect_eq(score_lines(input, out, 8, &n), 1, "the refused lines make the exit status 1");
    cr_assert_eq(n, 6);
    /* both documents are cut inside the shared words: one prompt, one score */
    cr_expect_eq(field(out[0], "logit"), field(out[1], "logit"), "%s%s", out[0], out[1]);
    cr_expect(strstr(out[2], "line 3") && strstr(out[2], "truncation is off"), "%s", out[2]);
    /* a prompt that fits is scored with truncation off, and alike with null (the default) */
    cr_expect_eq(field(out[3], "logit"), field(out[4], "logit"));
    cr_expect_neq(field(out[0], "logit"), field(out[3], "logit"));
    cr_expect(strstr(out[5], "line 6") && strstr(out[5], "must be true, false or null"), "%s", out[5]);
    for (int i = 0; i < n; i++) free(out[i]);
}

/* Peak RSS in KiB of `qrr score MODEL` reading in_path (its exit status in *rc). */
static long score_peak_rss(const char *in_path, int *rc)
{
    char prog[1100];
    snprintf(prog, sizeof prog, "%s/qrr", tu_build());
    pid_t pid = fork();
    cr_assert_geq(pid, 0);
    if (pid == 0) {
        int in = open(in_path, O_RDONLY), out = open("/dev/null", O_WRONLY);
        dup2(in, 0);
        dup2(out, 1);
        execl(prog, "qrr", "score", model, "--threads", "2", (char *)NULL);
        _exit(127);
    }
    int st;
    struct rusage ru;
    cr_assert_eq(wait4(pid, &st, 0, &ru), pid);
    *rc = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
    return ru.ru_maxrss;
}

/* Write 16 lines with the query "q" and a document of `bytes` bytes of words to path. */
static void write_long_documents(const char *path, size_t bytes, const char *max_length)
{
    FILE *f = fopen(path, "w");
    cr_assert_not_null(f);
    for (int l = 0; l < 16; l++) {
        fputs("{\"query\":\"q\",\"document\":\"", f);
        for (size_t i = 0; i < bytes / 32; i++) fputs("words and more words, some text ", f);
        fprintf(f, "\"%s}\n", max_length);
    }
    fclose(f);
}

Test(cli, score_memory_does_not_grow_with_document_size)
{
    /* 16 lines of 4 MiB documents, one request: qrr score may hold one line's text and the
     * truncated prompts, never every document's text or full token list (over 100 MiB).
     * The baseline is the same 16 lines with 64 KiB documents: cut to the same max length,
     * they cost the same compute (the prompts' keys and values above all), so the difference
     * is what the documents' size costs. With the smaller workload (tu_small_workload: under an
     * emulator, in a sanitizer build) the prompts are cut at 256 tokens (16 of 8192 take half
     * an hour under an emulator). */
    const char *max_length = tu_small_workload() ? ",\"max_length\":256" : "";
    char in[1100], small[1100];
    snprintf(in, sizeof in, "%s/big.jsonl", tmp);
    snprintf(small, sizeof small, "%s/small.jsonl", tmp);
    write_long_documents(in, 4 << 20, max_length);
    write_long_documents(small, 64 << 10, max_length);
    int rc;
    long base = score_peak_rss(small, &rc);
    cr_assert_eq(rc, 0);
    long peak = score_peak_rss(in, &rc);
    cr_assert_eq(rc, 0);
    fprintf(stderr, "cli: qrr score over 16 x 4 MiB lines: peak RSS %.1f MiB, %.1f MiB above "
            "16 x 64 KiB lines%s\n", peak / 1024.0, (peak - base) / 1024.0,
            tu_small_workload() ? " (the smaller workload: prompts cut at 256 tokens)" : "");
#ifndef TU_SANITIZED
    cr_expect_lt(peak - base, 64 * 1024, "peak RSS grew by %ld KiB", peak - base);
#endif
}

Test(cli, readme_link_line_builds_the_example)
{
    /* The README's line, for whatever this build holds. */
    char exe[1100], out[1100];
    snprintf(exe, sizeof exe, "%s/rerank-linked", tmp);
    snprintf(out, sizeof out, "%s/linked.txt", tmp);
    cr_assert_eq(tu_system("cc examples/rerank.c -o '%s' $(PKG_CONFIG_PATH='%s' pkg-config "
                           "--cflags --libs qrr)", exe, tu_build()), 0,
                 "the README's link line failed");
    cr_assert_eq(tu_system("'%s' '%s' 'What is the capital of China?' 'Beijing.' 'Seoul.' > '%s'",
                           exe, model, out), 0);
    char *text = tu_slurp(out, NULL);
    cr_expect(strstr(text, "Beijing.") && strstr(text, "Seoul."), "%s", text);
    free(text);
}

/* Run `qrr ARGS...` with stdin from `in`, stdout into a pipe whose reader is already gone
 * and SIGPIPE at its default (as in a shell pipeline ending in `head`), stderr into `err`;
 * the wait status. */
static int run_into_closed_pipe(const char *in, const char *err, char *const args[])
{
    int fds[2];
    cr_assert_eq(pipe(fds), 0);
    close(fds[0]);
    pid_t pid = fork();
    cr_assert_geq(pid, 0);
    if (pid == 0) {
        signal(SIGPIPE, SIG_DFL);
        int i = open(in, O_RDONLY), e = open(err, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (i < 0 || e < 0 || dup2(i, 0) < 0 || dup2(fds[1], 1) < 0 || dup2(e, 2) < 0) _exit(99);
        char exe[1100];
        snprintf(exe, sizeof exe, "%s/qrr", tu_build());
        execv(exe, args);
        _exit(98);
    }
    close(fds[1]);
    int st;
    cr_assert_eq(waitpid(pid, &st, 0), pid);
    return st;
}

Test(cli, option_values_after_an_equals_sign)
{
    /* `--threads=2 --batch=4`, as `--threads 2 --batch 4`; an empty value is still refused */
    cr_expect_eq(tu_system("echo '{\"query\": \"q\", \"document\": \"d\"}' | '%s/qrr' score '%s' "
                           "--threads=2 --batch=4 > '%s/eq.jsonl'", tu_build(), model, tmp), 0);
    char p[1100];
    snprintf(p, sizeof p, "%s/eq.jsonl", tmp);
    char *text = tu_slurp(p, NULL);
    cr_expect(strstr(text, "\"score\":") != NULL, "%s", text);
    free(text);
    cr_expect_eq(tu_system("'%s/qrr' score '%s' --threads= < /dev/null 2> /dev/null", tu_build(),
                           model), 2);
    /* a flag given a value says that it takes none; a stray argument is named as such */
    snprintf(p, sizeof p, "%s/eq-err.txt", tmp);
    cr_expect_eq(tu_system("'%s/qrr' info '%s' --json=yes > /dev/null 2> '%s'", tu_build(), model, p), 2);
    text = tu_slurp(p, NULL);
    cr_expect(strstr(text, "option '--json' takes no value (given as '--json=yes')"), "%s", text);
    free(text);
    cr_expect_eq(tu_system("'%s/qrr' info --json=yes '%s' > /dev/null 2> '%s'", tu_build(), model, p), 2);
    text = tu_slurp(p, NULL); /* before MODEL too: "yes" is not taken for the model */
    cr_expect(strstr(text, "option '--json' takes no value (given as '--json=yes')"), "%s", text);
    free(text);
    cr_expect_eq(tu_system("'%s/qrr' info '%s' yes > /dev/null 2> '%s'", tu_build(), model, p), 2);
    text = tu_slurp(p, NULL);
    cr_expect(strstr(text, "unexpected argument 'yes'"), "%s", text);
    free(text);
}


/* "--" ends the options: a model file whose name begins with '-' can be named after it, and
 * an option written after it is an argument, not an option */
Test(cli, double_dash_ends_the_options)
{
    char dash[1100], p[1100];
    snprintf(dash, sizeof dash, "%s/-model.qrr", tmp);
    cr_assert_eq(tu_system("cp '%s' '%s'", model, dash), 0);
    cr_expect_eq(tu_system("cd '%s' && '%s/qrr' info -model.qrr > /dev/null 2>&1", tmp, tu_build()), 2);
    cr_expect_eq(tu_system("cd '%s' && '%s/qrr' info --json --no-tensors -- -model.qrr > info.json",
                           tmp, tu_build()), 0);
    snprintf(p, sizeof p, "%s/info.json", tmp);
    json_error_t err;
    json_t *info = json_load_file(p, 0, &err);
    cr_expect(info != NULL, "%s", err.text);
    json_decref(info);
    cr_expect_eq(tu_system("cd '%s' && echo '{\"query\": \"q\", \"document\": \"d\"}' | '%s/qrr' "
                           "score --threads=1 -- -model.qrr > s.jsonl", tmp, tu_build()), 0);
    snprintf(p, sizeof p, "%s/s.jsonl", tmp);
    char *text = tu_slurp(p, NULL);
    cr_expect(strstr(text, "\"score\":") != NULL, "%s", text);
    free(text);
    snprintf(p, sizeof p, "%s/dd-err.txt", tmp);
    cr_expect_eq(tu_system("cd '%s' && '%s/qrr' info -- -model.qrr --json > /dev/null 2> '%s'", tmp,
                           tu_build(), p), 2);
    text = tu_slurp(p, NULL);
    cr_expect(strstr(text, "unexpected argument '--json' (after --"), "%s", text);
    free(text);
    cr_expect_eq(tu_system("cd '%s' && '%s/qrr' info -- -missing.qrr > /dev/null 2> '%s'", tmp,
                           tu_build(), p), 1);
    text = tu_slurp(p, NULL);
    cr_expect(strstr(text, "-missing.qrr: No such file"), "%s", text);
    free(text);
}
Test(cli, a_reader_that_goes_away_is_an_output_error)
{
    /* `qrr score ... | head -1`: exit 1 with a message, not killed by SIGPIPE */
    char in[1100], err[1100];
    snprintf(in, sizeof in, "%s/pipe-in.jsonl", tmp);
    snprintf(err, sizeof err, "%s/pipe-err.txt", tmp);
    FILE *f = fopen(in, "w");
    for (int i = 0; i < 3; i++)
        fprintf(f, "{\"query\": \"q\", \"document\": \"d%d\", \"text\": \"t\"}\n", i);
    fclose(f);
    char *runs[][4] = {{"qrr", "score", model, NULL}, {"qrr", "tokenize", model, NULL},
                       {"qrr", "info", model, NULL}, {"qrr", "--help", NULL, NULL}};
    for (size_t r = 0; r < sizeof runs / sizeof runs[0]; r++) {
        int st = run_into_closed_pipe(in, err, runs[r]);
        cr_expect(WIFEXITED(st) && WEXITSTATUS(st) == 1, "qrr %s: wait status 0x%x", runs[r][1], st);
        char *text = tu_slurp(err, NULL);
        cr_expect(strstr(text, "cannot write the output"), "qrr %s: %s", runs[r][1], text);
        free(text);
    }
}

Test(cli, output_that_cannot_be_written_fails)
{
    /* a full disk, or no stdout at all: exit 1 and a message, never a silent 0 */
    const char *runs[] = {"score '%s' > /dev/full", "tokenize '%s' > /dev/full",
                          "info '%s' > /dev/full", "info --json '%s' >&-"};
    char cmd[512], err[1100];
    snprintf(err, sizeof err, "%s/write-err.txt", tmp);
    for (size_t i = 0; i < sizeof runs / sizeof runs[0]; i++) {
        snprintf(cmd, sizeof cmd, runs[i], model);
        cr_expect_eq(tu_system("echo '{\"query\": \"q\", \"document\": \"d\", \"text\": \"t\"}' | "
                               "'%s/qrr' %s 2> '%s'", tu_build(), cmd, err), 1, "qrr %s", cmd);
        char *text = tu_slurp(err, NULL);
        /* with the reason: "No space left on device", "Bad file descriptor" */
        cr_expect(strstr(text, "cannot write the output: ") &&
                  (strstr(text, "space") || strstr(text, "descriptor")), "qrr %s: %s", cmd, text);
        free(text);
    }
}
