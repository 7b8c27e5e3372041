/* main.c — the qrr command: dispatch to a subcommand. Each subcommand lives in its own
 * cmd_<name>.c; what they share is in cli.c. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

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
#ifndef QRR_NO_SERVER /* a build without libmicrohttpd (make SERVER=0) */
    {"serve", qrr_cmd_serve, "HTTP reranking server (TEI, Cohere, Jina and vLLM request formats)"},
#endif
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

/* rc, or QRR_EXIT_FAIL with a message when some of the output could not be written (a full
 * disk, a closed stdout): output lost must not look like success. */
static int output_written(const char *cmd, int rc)
{
    if (cli_flush() == 0) return rc;
    int why = cli_output_errno();
    fprintf(stderr, "qrr %s: cannot write the output%s%s\n", cmd, why ? ": " : "",
            why ? strerror(why) : "");
    return rc == QRR_EXIT_USAGE ? rc : QRR_EXIT_FAIL;
}

static int run_command(int argc, char **argv)
{
    for (size_t i = 0; i < N_COMMANDS; i++)
        if (!strcmp(argv[1], commands[i].name))
            return output_written(commands[i].name, commands[i].run(argc - 1, argv + 1));
#ifdef QRR_NO_SERVER
    if (!strcmp(argv[1], "serve")) {
        fprintf(stderr, "qrr: this qrr was built without the server (make SERVER=0)\n"
                        "HINT: install libmicrohttpd's development package "
                        "(tools/install-deps.sh) and build with SERVER=1, the default\n");
        return QRR_EXIT_USAGE;
    }
#endif
    fprintf(stderr, "qrr: unknown command '%s'\n\n", argv[1]);
    usage(stderr);
    return QRR_EXIT_USAGE;
}

int main(int argc, char **argv)
{
    /* A reader that goes away (`qrr score ... | head -1`) is an output that cannot be
     * written, like a full disk: exit 1 with a message, not death by SIGPIPE. */
    signal(SIGPIPE, SIG_IGN);
    /* Into a file or a pipe, output waits in a buffer that holds what a command writes
     * between its flushes, so that a write that fails is a flush that can say why. */
    static char out_buffer[1 << 20]; /* given: glibc ignores the size without a buffer */
    if (!isatty(STDOUT_FILENO)) setvbuf(stdout, out_buffer, _IOFBF, sizeof out_buffer);
    if (argc < 2) {
        usage(stderr);
        return QRR_EXIT_USAGE;
    }
    if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
        usage(stdout);
        return output_written(argv[1], QRR_EXIT_OK);
    }
    if (!strcmp(argv[1], "--version")) {
        printf("qrr %s\ncpu kernels: %s\n", qrr_version(), qrr_cpu_kernels());
        return output_written(argv[1], QRR_EXIT_OK);
    }
    char **split = malloc(((size_t)argc * 2 + 1) * sizeof *split);
    if (!split) {
        fprintf(stderr, "qrr: out of memory\n");
        return QRR_EXIT_FAIL;
    }
    int n = cli_split_long_options(argc, argv, split);
    if (n < 0) {
        free(split);
        fprintf(stderr, "qrr: out of memory\n");
        return QRR_EXIT_FAIL;
    }
    int rc = run_command(n, split);
    free(split);
    return rc;
}
