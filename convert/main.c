/* main.c — the qconvert command: parse the command line, run qrr_convert, print progress
 * and one clear message on failure, remove the temporary output when a signal ends the run.
 * Exit codes: 0 ok, 1 bad input, 2 usage, 3 output I/O. The work itself is in convert.c. */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "convert.h"
#include "qrr_format.h"
#include "tokenizer.h" /* qrr__utf8_check */

enum { EXIT_OK = 0, EXIT_INPUT = 1, EXIT_USAGE = 2, EXIT_OUTPUT = 3 };

static void usage(FILE *f)
{
    fprintf(f,
            "usage: qconvert MODEL_DIR -o OUT.qrr [options]\n"
            "\n"
            "Convert a Hugging Face Qwen3-Reranker directory (config.json, *.safetensors,\n"
            "tokenizer.json) into one memory-mappable .qrr file.\n"
            "\n"
            "options:\n"
            "  -o, --output FILE     the .qrr to write (required; replaced atomically;\n"
            "                        never a model input file or a non-regular file)\n"
            "  --dtype TYPE          f32 | f16 | bf16 | int8 for linear layers and embedding\n"
            "                        (default f16; norms and head rows are always f32)\n"
            "  --labels NO,YES       token strings of the no and yes labels, \"no\" first;\n"
            "                        overrides config.json and inference\n"
            "  --force               convert a directory that looks like an embedding model\n"
            "  --max-length N        default prompt truncation length in tokens (default %u,\n"
            "                        or max_position_embeddings when smaller); at most\n"
            "                        max_position_embeddings, and room for the prompt's\n"
            "                        prefix and suffix plus one token (else exit 2)\n"
            "  --quant-block K       int8 only: one scale per K inputs instead of per row\n"
            "  --quiet               no progress on stderr\n"
            "  -h, --help            this text\n"
            "  --version             print the version\n"
            "\n"
            "exit codes:\n"
            "  0  converted\n"
            "  1  bad input: model directory, safetensors, config, tokenizer, not a reranker\n"
            "  2  usage error, including an -o that is an input file or not a regular\n"
            "     file, and a --max-length this model cannot take\n"
            "  3  I/O error writing the output (no output file is left behind)\n"
            "SIGINT, SIGTERM or SIGHUP remove the temporary output and end qconvert by that\n"
            "signal; an existing OUT.qrr is left as it was.\n",
            QRR_DEFAULT_MAX_LENGTH);
}

static int usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int usage_error(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "qconvert: ");
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\nTry 'qconvert --help'.\n");
    va_end(ap);
    return EXIT_USAGE;
}

static int parse_u32(const char *s, uint32_t lo, uint32_t hi, uint32_t *out)
{
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || end == s || *end || s[0] == '-' || v < lo || v > hi) return -1;
    *out = (uint32_t)v;
    return 0;
}

static void progress(void *ctx, const qrr_convert_progress *p)
{
    (void)ctx;
    int w = p->count >= 1000 ? 4 : p->count >= 100 ? 3 : 2;
    double kib = (double)p->bytes / 1024.0;
    fprintf(stderr, "[%*zu/%zu] %-48s %4s -> %-4s %8.1f %s\n", w, p->index, p->count, p->name,
            p->src_dtype, p->dst_dtype, kib >= 1024.0 ? kib / 1024.0 : kib, kib >= 1024.0 ? "MiB" : "KiB");
}

/* Does a shell need a as a quoted word? */
static int needs_quotes(const char *a)
{
    if (!*a) return 1;
    for (; *a; a++)
        if (!strchr("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-./:=,+@%", *a))
            return 1;
    return 0;
}

/* The command line for the provenance: argv in the order typed (call it before getopt,
 * which reorders argv), each word that needs it in single quotes, ' written as '\''. The
 * provenance is JSON, so a byte that is not part of valid UTF-8 (a file name in another
 * encoding) is recorded as U+FFFD. */
static char *join_args(int argc, char **argv)
{
    size_t n = 1;
    for (int i = 0; i < argc; i++) n += 4 * strlen(argv[i]) + 3;
    char *s = malloc(n), *p = s;
    if (!s) return NULL;
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        if (i) *p++ = ' ';
        if (!needs_quotes(a)) {
            p = stpcpy(p, a);
            continue;
        }
        *p++ = '\'';
        for (size_t i = 0, len = strlen(a); i < len;) {
            size_t valid_end = i + qrr__utf8_check((const uint8_t *)a + i, len - i);
            for (; i < valid_end; i++) {
                if (a[i] == '\'') p = stpcpy(p, "'\\''");
                else *p++ = a[i];
            }
            if (i < len) {
                p = stpcpy(p, "\xEF\xBF\xBD");
                i++;
            }
        }
        *p++ = '\'';
    }
    *p = '\0';
    return s;
}

/* ---- a signal during the conversion removes the temporary output ------------------- */

static char tmp_path[PATH_MAX + 16];    /* the temporary output while tmp_active */
static volatile sig_atomic_t tmp_active;

/* qrr_convert calls this with the path just after creating the file, with the signals
 * below blocked (so the handler never sees a half-copied path), and with NULL once the
 * file is renamed into place or removed. */
static void on_tmp_file(void *ctx, const char *path)
{
    (void)ctx;
    tmp_active = 0;
    if (path && strlen(path) < sizeof tmp_path) {
        strcpy(tmp_path, path);
        tmp_active = 1;
    }
}

/* Remove the temporary output, then die of the same signal, so that the exit status says
 * what ended the run. Only async-signal-safe calls. */
static void on_signal(int sig)
{
    if (tmp_active) unlink(tmp_path);
    signal(sig, SIG_DFL);
    raise(sig); /* delivered when the handler returns: sig is blocked until then */
}

static void catch_signals(void)
{
    static const int sigs[] = {SIGINT, SIGTERM, SIGHUP};
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    for (size_t i = 0; i < sizeof sigs / sizeof *sigs; i++) sigaddset(&sa.sa_mask, sigs[i]);
    for (size_t i = 0; i < sizeof sigs / sizeof *sigs; i++) {
        struct sigaction old;
        /* a signal ignored when we start (nohup) stays ignored */
        if (sigaction(sigs[i], NULL, &old) == 0 && old.sa_handler == SIG_IGN) continue;
        sigaction(sigs[i], &sa, NULL);
    }
    /* Past a file size limit (ulimit -f) a write then fails with EFBIG, an output error that
     * removes the temporary file and exits 3, instead of SIGXFSZ ending the run and leaving it. */
    signal(SIGXFSZ, SIG_IGN);
}

int main(int argc, char **argv)
{
    enum { OPT_DTYPE = 256, OPT_LABELS, OPT_FORCE, OPT_MAXLEN, OPT_QBLOCK, OPT_QUIET, OPT_VERSION };
    static const struct option longopts[] = {
        {"output", required_argument, 0, 'o'},   {"dtype", required_argument, 0, OPT_DTYPE},
        {"labels", required_argument, 0, OPT_LABELS}, {"force", no_argument, 0, OPT_FORCE},
        {"max-length", required_argument, 0, OPT_MAXLEN},
        {"quant-block", required_argument, 0, OPT_QBLOCK}, {"quiet", no_argument, 0, OPT_QUIET},
        {"help", no_argument, 0, 'h'},            {"version", no_argument, 0, OPT_VERSION},
        {0, 0, 0, 0}};
    qrr_convert_opts o = qrr_convert_default_opts();
    char no[QRR_HF_LABEL_MAX], yes[QRR_HF_LABEL_MAX];
    int quiet = 0, c;
    qrr_diag d;
    /* Kept in a static so that the early exits below leave it reachable, not leaked. */
    static char *cmd;
    if (!(cmd = join_args(argc, argv))) {
        fprintf(stderr, "qconvert: out of memory\n");
        return EXIT_OUTPUT;
    }
    o.command_line = cmd;
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":o:h", longopts, NULL)) != -1) {
        switch (c) {
        case 'o': o.out_path = optarg; break;
        case OPT_DTYPE: {
            int t = qrr_dtype_parse(optarg);
            if (t < 0) return usage_error("--dtype '%s': expected f32, f16, bf16 or int8", optarg);
            o.dtype = (uint32_t)t;
            break;
        }
        case OPT_LABELS:
            if (qrr_hf_split_labels(optarg, no, yes, &d) != QRR_OK)
                return usage_error("%s", d.msg);
            o.label_no = no;
            o.label_yes = yes;
            break;
        case OPT_FORCE: o.force = 1; break;
        case OPT_MAXLEN:
            if (parse_u32(optarg, 1, QRR_MAX_POSITION, &o.max_length) != 0)
                return usage_error("--max-length '%s': expected a number of tokens in 1..%u",
                                   optarg, QRR_MAX_POSITION);
            break;
        case OPT_QBLOCK:
            if (parse_u32(optarg, 1, QRR_MAX_INTERMEDIATE, &o.quant_block) != 0)
                return usage_error("--quant-block '%s': expected a positive number", optarg);
            break;
        case OPT_QUIET: quiet = 1; break;
        case 'h': usage(stdout); return EXIT_OK;
        case OPT_VERSION: printf("qconvert %s (.qrr format %u)\n", QRR_CONVERTER_VERSION, QRR_FORMAT_VERSION); return EXIT_OK;
        case ':': return usage_error("option '%s' needs a value", argv[optind - 1]);
        default: return usage_error("unknown option '%s'", argv[optind - 1]);
        }
    }
    if (optind >= argc) return usage_error("%s", "missing MODEL_DIR");
    if (optind + 1 < argc) return usage_error("unexpected argument '%s'", argv[optind + 1]);
    if (!o.out_path) return usage_error("%s", "missing -o OUT.qrr");
    if (o.quant_block && o.dtype != QRR_DTYPE_I8)
        return usage_error("%s", "--quant-block needs --dtype int8");
    o.model_dir = argv[optind];
    if (!quiet) o.progress = progress;
    o.tmp_file = on_tmp_file;
    catch_signals();

    qrr_convert_report r;
    int st = qrr_convert(&o, &r, &d);
    free(cmd);
    if (st != QRR_OK) {
        fprintf(stderr, "qconvert: %s\n  (%s)\n", d.msg, qrr_status_str(st));
        if (r.usage_error) return EXIT_USAGE;
        if (r.output_error) return EXIT_OUTPUT;
        return st == QRR_ERR_NOMEM ? EXIT_OUTPUT : EXIT_INPUT;
    }
    if (r.max_length_clamped)
        fprintf(stderr, "qconvert: note: max length %u, from max_position_embeddings in config.json "
                "(the default %u is above it)\n", r.max_length, QRR_DEFAULT_MAX_LENGTH);
    if (r.window_positions)
        fprintf(stderr, "qconvert: note: prompts up to %u tokens only, the sliding window in "
                "config.json (a request asking for more is refused)\n", r.window_positions);
    if (!quiet) {
        struct rusage ru;
        getrusage(RUSAGE_SELF, &ru);
        fprintf(stderr, "labels: %s\nprompts: %s\n", r.labels.reason, r.prompts_source);
        fprintf(stderr,
                "wrote %s: %zu tensors, %.1f MiB, %.2f s, peak RSS %.1f MiB, %llu values rounded%s\n",
                o.out_path, r.tensors, (double)r.file_bytes / (1024.0 * 1024.0), r.seconds,
                (double)ru.ru_maxrss / 1024.0, (unsigned long long)r.inexact,
                o.dtype == QRR_DTYPE_F16 ? " (f16 narrowing)" : "");
    }
    return EXIT_OK;
}
