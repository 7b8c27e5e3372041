/* main.c — the qrr command: dispatch to a subcommand, plus the helpers they share
 * (declared in cli.h). Each subcommand lives in its own cmd_<name>.c. */
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "qrr.h"

static const struct {
    const char *name;
    int (*run)(int argc, char **argv);
    const char *what;
} commands[] = {
    {"info", qrr_cmd_info, "show a .qrr file: header, hyper-parameters, labels, prompts, tensors"},
    {"tokenize", qrr_cmd_tokenize, "JSON lines {\"text\"} on stdin -> {\"ids\"} on stdout"},
    {"score", qrr_cmd_score, "JSON lines {\"query\",\"document\"} on stdin -> {\"score\",\"logit\"}"},
    {"check", qrr_cmd_check, "rescore a reference JSON-lines file and compare within tolerances"},
    {"eval", qrr_cmd_eval, "ranking quality (NDCG, MRR) and latency on a labelled set"},
    {"bench", qrr_cmd_bench, "time scoring on a synthetic request (tokens/s, pairs/s, latency)"},
};
#define N_COMMANDS (sizeof commands / sizeof commands[0])

static void usage(FILE *to)
{
    fprintf(to, "usage: qrr <command> [options]   (qrr <command> --help for its options)\n\n"
                "commands:\n");
    for (size_t i = 0; i < N_COMMANDS; i++)
        fprintf(to, "  %-9s %s\n", commands[i].name, commands[i].what);
    fprintf(to, "\nexit codes: 0 ok, 1 failure (model, input or check), 2 usage error\n"
                "qrr %s\n", qrr_version());
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return QRR_EXIT_USAGE;
    }
    if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
        usage(stdout);
        return QRR_EXIT_OK;
    }
    if (!strcmp(argv[1], "--version")) {
        printf("qrr %s\n", qrr_version());
        return QRR_EXIT_OK;
    }
    for (size_t i = 0; i < N_COMMANDS; i++)
        if (!strcmp(argv[1], commands[i].name)) return commands[i].run(argc - 1, argv + 1);
    fprintf(stderr, "qrr: unknown command '%s'\n\n", argv[1]);
    usage(stderr);
    return QRR_EXIT_USAGE;
}

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

int cli_parse_int(const char *s, long lo, long hi, long *out)
{
    if (!s || !*s) return -1;
    char *end;
    long v = strtol(s, &end, 10);
    if (*end || v < lo || v > hi) return -1;
    *out = v;
    return 0;
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
        fprintf(stderr, "---> HINT: %s\n",
                rc == QRR_ERR_IO ? "check the path; a .qrr file is made by qconvert"
                : rc == QRR_ERR_VERSION ? "this file needs a newer qrr; or re-run qconvert"
                : "the file is damaged or not a .qrr file; re-run qconvert to rebuild it");
    }
    return m;
}

const char *cli_next_line(cli_lines *r, size_t *len)
{
    ssize_t n = getline(&r->buf, &r->cap, r->in);
    if (n < 0) return NULL;
    r->lineno++;
    while (n > 0 && (r->buf[n - 1] == '\n' || r->buf[n - 1] == '\r')) r->buf[--n] = '\0';
    *len = (size_t)n;
    return r->buf;
}

json_t *cli_parse_object(const char *line, size_t len, char *err, size_t errlen)
{
    json_error_t je;
    json_t *v = json_loadb(line, len, JSON_REJECT_DUPLICATES, &je);
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

void cli_print_json(json_t *v)
{
    char *s = json_dumps(v, JSON_COMPACT | JSON_ENSURE_ASCII | JSON_REAL_PRECISION(9));
    if (s) {
        fputs(s, stdout);
        fputc('\n', stdout);
        free(s);
    }
}
