/* cli.c — what the qrr subcommands share (declared in cli.h): usage errors, integer
 * options and the model options every command parses alike, opening a model with a hint,
 * reading JSON lines from a file descriptor so that a command can tell whether more input
 * is already waiting, and printing JSON. */
#include <errno.h>
#include <poll.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"

int cli_usage_error(const char *cmd, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "qrr %s: ", cmd);
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n(qrr %s --help shows the options)\n", cmd);
    va_end(ap);
    return QRR_EXIT_USAGE;
}

/* The values cli_split_long_options cut from "--name=value", so that a flag given one can be
 * told from a stray argument; and the operands it rewrote after "--". */
static const char **split_values;
static int n_split_values;
static struct operand {
    char *path;      /* "./-x", allocated here */
    const char *arg; /* the "-x" it came from */
} *operands;
static int n_operands;

/* An operand after "--" as the commands will read it: every operand of theirs is a path, and
 * "./-x" names the file "-x" without looking like an option ("-" alone stays standard
 * input). NULL when out of memory. */
static char *operand(char *arg)
{
    if (arg[0] != '-' || !arg[1]) return arg;
    char *p = malloc(strlen(arg) + 3);
    if (!p) return NULL;
    memcpy(p, "./", 2);
    strcpy(p + 2, arg);
    operands[n_operands++] = (struct operand){p, arg};
    return p;
}

int cli_split_long_options(int argc, char **argv, char **out)
{
    int n = 0, after_dashes = 0;
    free(split_values);
    split_values = malloc(((size_t)argc + 1) * sizeof *split_values);
    for (int k = 0; k < n_operands; k++) free(operands[k].path);
    free(operands);
    operands = malloc(((size_t)argc + 1) * sizeof *operands);
    n_split_values = n_operands = 0;
    for (int i = 0; i < argc; i++) {
        if (after_dashes) {
            out[n] = operands ? operand(argv[i]) : NULL;
            if (!out[n++]) return -1;
            continue;
        }
        if (i > 1 && !strcmp(argv[i], "--")) { /* argv[1] is the command */
            after_dashes = 1;
            continue;
        }
        char *eq = strchr(argv[i], '=');
        out[n++] = argv[i];
        if (i > 0 && !strncmp(argv[i], "--", 2) && eq && eq > argv[i] + 2) {
            *eq = '\0';
            out[n++] = eq + 1;
            if (split_values) split_values[n_split_values++] = eq + 1;
        }
    }
    out[n] = NULL;
    return n;
}

int cli_is_split_value(const char *arg)
{
    for (int k = 0; k < n_split_values; k++)
        if (split_values[k] == arg) return 1;
    return 0;
}

int cli_unexpected_argument(const char *cmd, char **argv, int i)
{
    if (i > 0 && cli_is_split_value(argv[i]))
        return cli_usage_error(cmd, "option '%s' takes no value (given as '%s=%s')", argv[i - 1],
                               argv[i - 1], argv[i]);
    for (int k = 0; k < n_operands; k++)
        if (operands[k].path == argv[i])
            return cli_usage_error(cmd, "unexpected argument '%s' (after --, where every "
                                   "argument is a path)", operands[k].arg);
    return cli_usage_error(cmd, "unexpected argument '%s'", argv[i]);
}

int cli_parse_int(const char *s, long lo, long hi, long *out)
{
    if (!s || !*s) return -1;
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || *end || v < lo || v > hi) return -1;
    *out = v;
    return 0;
}

cli_model_opts cli_model_opts_default(void)
{
    cli_model_opts o = {.ctx = qrr_ctx_default_params(), .verify = 1, .threads_set = 0};
    return o;
}

int cli_common_option(const char *cmd, unsigned which, void (*help)(void), int argc,
                      char **argv, int *i, cli_model_opts *o)
{
    const char *a = argv[*i];
    int has_value = *i + 1 < argc;
    long v;
    if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
        help();
        return QRR_EXIT_OK;
    } else if ((which & CLI_OPT_VERIFY) && !strcmp(a, "--no-verify")) {
        o->verify = 0;
    } else if ((which & CLI_OPT_THREADS) && !strcmp(a, "--threads") && has_value) {
        if (cli_parse_int(argv[++*i], 0, 1024, &v)) return cli_usage_error(cmd, "--threads must be 0..1024");
        o->ctx.n_threads = (int)v;
        o->threads_set = 1;
    } else if ((which & CLI_OPT_DEVICE) && !strcmp(a, "--device") && has_value) {
        const char *dev = argv[++*i];
        if (!strcmp(dev, "cpu")) o->ctx.device = QRR_DEVICE_CPU;
        else if (!strcmp(dev, "cuda")) o->ctx.device = QRR_DEVICE_CUDA;
        else return cli_usage_error(cmd, "--device must be cpu or cuda, not '%s'", dev);
    } else {
        return CLI_OPT_OTHER;
    }
    return CLI_OPT_TAKEN;
}

qrr_model *cli_open_model(const char *cmd, const char *path, int verify_weights)
{
    qrr_model_params p = qrr_model_default_params();
    p.verify_weights = verify_weights;
    qrr_model *m = NULL;
    int rc = qrr_model_open(path, p, &m);
    if (rc != QRR_OK) {
        fprintf(stderr, "qrr %s: cannot open model: %s (%s)\n", cmd, qrr_last_error(),
                qrr_status_str(rc));
        fprintf(stderr, "HINT: %s\n",
                rc == QRR_ERR_IO ? "check the path; a .qrr file is made by qconvert"
                : rc == QRR_ERR_VERSION ? "this file needs a newer qrr; or re-run qconvert"
                : rc == QRR_ERR_NOMEM ? "too little memory or address space for the file "
                                        "(see free -h and ulimit -v)"
                : "the file is damaged or not a .qrr file; re-run qconvert to rebuild it");
    }
    return m;
}

/* Read more bytes after the unread ones; 0 at end of input or on error. */
static int fill(cli_lines *r)
{
    if (r->start > 0) { /* move the unread bytes to the front */
        memmove(r->buf, r->buf + r->start, r->end - r->start);
        r->end -= r->start;
        r->start = 0;
    }
    if (r->end + 1 >= r->cap) {
        size_t cap = r->cap ? 2 * r->cap : 64 * 1024;
        char *p = realloc(r->buf, cap);
        if (!p) {
            r->error = ENOMEM;
            r->eof = 1;
            return 0;
        }
        r->buf = p;
        r->cap = cap;
    }
    for (;;) {
        ssize_t n = read(r->fd, r->buf + r->end, r->cap - 1 - r->end);
        if (n > 0) {
            r->end += (size_t)n;
            return 1;
        }
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) r->error = errno;
        r->eof = 1;
        return 0;
    }
}

const char *cli_next_line(cli_lines *r, size_t *len)
{
    char *nl;
    size_t scanned = r->start;
    while (!(nl = r->buf ? memchr(r->buf + scanned, '\n', r->end - scanned) : NULL)) {
        size_t seen = r->end - r->start;
        if (r->eof || !fill(r)) {
            if (r->end == r->start) return NULL;
            nl = r->buf + r->end; /* a last line without its newline */
            break;
        }
        scanned = r->start + seen;
    }
    char *line = r->buf + r->start;
    size_t n = (size_t)(nl - line);
    r->start = nl < r->buf + r->end ? (size_t)(nl - r->buf) + 1 : r->end;
    line[n] = '\0'; /* fill() keeps one byte spare, so this is in bounds at the end too */
    while (n > 0 && line[n - 1] == '\r') line[--n] = '\0';
    if (r->lineno++ == 0 && n >= 3 && !memcmp(line, "\xef\xbb\xbf", 3)) {
        line += 3; /* the byte-order mark some editors write at a UTF-8 file's start */
        n -= 3;
    }
    *len = n;
    return line;
}

int cli_input_waiting(cli_lines *r)
{
    if (r->eof || (r->buf && memchr(r->buf + r->start, '\n', r->end - r->start))) return 1;
    struct pollfd p = {.fd = r->fd, .events = POLLIN};
    return poll(&p, 1, 0) > 0;
}

void cli_lines_free(cli_lines *r)
{
    free(r->buf);
    r->buf = NULL;
    r->cap = r->start = r->end = 0;
}

int cli_is_blank(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (s[i] != ' ' && s[i] != '\t') return 0;
    return 1;
}

json_t *cli_parse_object(const char *line, size_t len, char *err, size_t errlen)
{
    json_error_t je;
    /* NUL is valid inside a JSON string (\u0000); the commands read strings by length. Any
     * value is decoded so that `5` or `null` is "not an object", not "not JSON". */
    json_t *v = json_loadb(line, len, JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL | JSON_DECODE_ANY,
                           &je);
    if (!v) {
        snprintf(err, errlen, "not valid JSON: %s (column %d)", je.text, je.column);
        return NULL;
    }
    if (!json_is_object(v)) {
        json_decref(v);
        snprintf(err, errlen, "expected a JSON object");
        return NULL;
    }
    return v;
}

static int output_errno; /* the first failed write's */

static void note_output_error(void)
{
    if (!output_errno && ferror(stdout)) output_errno = errno;
}

void cli_print_json(json_t *v)
{
    char *s = json_dumps(v, JSON_COMPACT | JSON_ENSURE_ASCII | JSON_REAL_PRECISION(9));
    if (s) {
        errno = 0;
        fputs(s, stdout);
        fputc('\n', stdout);
        note_output_error();
        free(s);
    }
}

int cli_flush(void)
{
    errno = 0;
    int rc = fflush(stdout);
    note_output_error();
    return rc == 0 && !ferror(stdout) ? 0 : -1;
}

int cli_output_errno(void)
{
    return output_errno;
}
