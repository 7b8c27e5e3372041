/* cli.h — what the qrr subcommands share: the command entry points, exit codes, option
 * parsing helpers and JSON-lines reading. The commands are thin layers over libqrr's public
 * API (qrr.h) and include nothing private. */
#ifndef QRR_CLI_H
#define QRR_CLI_H

#include <stdio.h>
#include <jansson.h>
#include "qrr.h"

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
int qrr_cmd_serve(int argc, char **argv);

/* Print "qrr <cmd>: message" (+ newline) to stderr; returns QRR_EXIT_USAGE. */
int cli_usage_error(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Split each "--name=value" of argv[1..argc) into "--name" and "value" (the form
 * getopt_long, and so qconvert, takes too), writing a NUL over the '=' (argv's strings are
 * the program's to change); the commands then see one form only. A "--" after the command
 * ends the options: it is dropped, and each later argument is an operand, a path, passed
 * as "./-x" when it begins with '-' so that no command reads it as an option. out has room
 * for 2 argc entries and a NULL; returns how many it holds, or -1 when out of memory. */
int cli_split_long_options(int argc, char **argv, char **out);
/* 1 when arg is the value cli_split_long_options cut from a "--name=value": never a
 * command's positional argument (MODEL.qrr), so that "--json=yes MODEL" is not read as
 * MODEL "yes". */
int cli_is_split_value(const char *arg);
/* The usage error for argv[i], which no option took: "unexpected argument", or, when it is
 * the value of a "--flag=value" whose flag takes none, that the flag takes no value. */
int cli_unexpected_argument(const char *cmd, char **argv, int i);
/* Parse a whole decimal integer in [lo, hi]; 0 on success. */
int cli_parse_int(const char *s, long lo, long hi, long *out);
/* Open a model, printing the library's message and a hint on failure; NULL then. */
qrr_model *cli_open_model(const char *cmd, const char *path, int verify_weights);

/* The options several commands share, parsed one way: --help/-h, --threads N (0..1024),
 * --device cpu|cuda and --no-verify. A command names those it takes with CLI_OPT_* flags. */
enum { CLI_OPT_THREADS = 1u << 0, CLI_OPT_DEVICE = 1u << 1, CLI_OPT_VERIFY = 1u << 2 };
enum { CLI_OPT_OTHER = -1, CLI_OPT_TAKEN = -2 };
typedef struct cli_model_opts {
    qrr_ctx_params ctx; /* n_threads and device set from the options, the rest defaults */
    int verify;         /* 1 unless --no-verify */
    int threads_set;    /* 1 when --threads was given */
} cli_model_opts;
cli_model_opts cli_model_opts_default(void);
/* Look at argv[*i]: CLI_OPT_OTHER when it is none of the shared options; CLI_OPT_TAKEN when
 * it was one of `which` (its value taken too, *i moved past it, o updated); otherwise the
 * exit code the command returns: QRR_EXIT_OK after --help printed help(), QRR_EXIT_USAGE
 * after a usage error ("qrr <cmd>: --threads must be 0..1024"). */
int cli_common_option(const char *cmd, unsigned which, void (*help)(void), int argc,
                      char **argv, int *i, cli_model_opts *o);

/* Reads JSON lines from a file descriptor (0 for standard input) one line at a time; the
 * line number counts from 1. Initialise as {.fd = fd}; free with cli_lines_free. */
typedef struct cli_lines {
    int fd;
    char *buf;
    size_t cap, start, end; /* unread bytes are buf[start, end) */
    int eof, error;         /* error: an errno, 0 if none */
    long lineno;
} cli_lines;
/* Next line without its newline (NUL-terminated in place); NULL at end of input. */
const char *cli_next_line(cli_lines *r, size_t *len);
/* 1 when the next cli_next_line will not wait: a whole line is buffered, more input is
 * ready, or the input has ended; 0 when it would block. */
int cli_input_waiting(cli_lines *r);
void cli_lines_free(cli_lines *r);
/* 1 when s[0, n) holds only spaces and tabs: such lines are skipped, as JSON-lines tools do. */
int cli_is_blank(const char *s, size_t n);
/* Parse one line as a JSON object (strings may hold \u0000: read them with
 * json_string_length); NULL with a message in err otherwise. */
json_t *cli_parse_object(const char *line, size_t len, char *err, size_t errlen);
/* Write a JSON value compactly on one line of stdout. */
void cli_print_json(json_t *v);
/* Flush stdout (an answer a caller may be waiting for): 0, or -1 when the output failed. */
int cli_flush(void);
/* Why writing stdout first failed (an errno, kept from the write that failed), 0 if it has
 * not, for the message of a lost output. */
int cli_output_errno(void);

#endif
