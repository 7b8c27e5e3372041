/* cli.h — what the qrr subcommands share: the command entry points, exit codes, option
 * parsing helpers and JSON-lines reading. The commands are thin layers over libqrr. */
#ifndef QRR_CLI_H
#define QRR_CLI_H

#include <stdio.h>
#include <jansson.h>

/* Exit codes of every qrr command (docs/cli.md). */
enum {
    QRR_EXIT_OK = 0,
    QRR_EXIT_FAIL = 1,  /* a model, input line or check failed */
    QRR_EXIT_USAGE = 2, /* bad command line */
};

int qrr_cmd_info(int argc, char **argv);
int qrr_cmd_tokenize(int argc, char **argv);
int qrr_cmd_score(int argc, char **argv);
int qrr_cmd_bench(int argc, char **argv);
int qrr_cmd_check(int argc, char **argv);
int qrr_cmd_eval(int argc, char **argv);

/* Print "qrr <cmd>: message" (+ newline) to stderr; returns QRR_EXIT_USAGE. */
int cli_usage_error(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Parse a whole decimal integer in [lo, hi]; 0 on success. */
int cli_parse_int(const char *s, long lo, long hi, long *out);
/* Open a model, printing the library's message and a hint on failure; NULL then. */
struct qrr_model *cli_open_model(const char *cmd, const char *path, int verify_weights);

/* Reads standard input (or any FILE) one line at a time; the line number counts from 1. */
typedef struct cli_lines {
    FILE *in;
    char *buf;
    size_t cap;
    long lineno;
} cli_lines;
/* Next line without its newline; NULL at end of input. */
const char *cli_next_line(cli_lines *r, size_t *len);
/* Parse one line as a JSON object; NULL with a message in err otherwise. */
json_t *cli_parse_object(const char *line, size_t len, char *err, size_t errlen);
/* Write a JSON value compactly on one line of stdout. */
void cli_print_json(json_t *v);

#endif
