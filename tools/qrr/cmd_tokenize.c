/* cmd_tokenize.c — `qrr tokenize`: JSON lines {"text"} in, {"ids"} out, in order, with the
 * model's own tokenizer (no special tokens added). A bad line gets {"error"}. */
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "qrr.h"

static void help(void)
{
    printf("usage: qrr tokenize MODEL.qrr [--no-verify]\n\n"
           "Reads JSON lines {\"text\": ...} on stdin and writes {\"ids\": [...]} per line, in\n"
           "order, exactly as Hugging Face tokenizers encodes the text without special tokens\n"
           "added (special tokens written in the text are matched). A bad line gets\n"
           "{\"error\": ...}; blank lines are skipped; each answer is written at once.\n\n"
           "  --no-verify   skip the weights' checksums at open (the tokenizer is still checked)\n\n"
           "Exit: 0 all lines tokenized, 1 some line failed, 2 usage.\n");
}

/* Tokenize one line's text into a JSON object ({"ids"} or {"error"}). */
static json_t *tokenize_line(const qrr_model *m, const char *line, size_t len, long lineno,
                             int32_t **ids, size_t *cap)
{
    char err[600];
    json_t *o = cli_parse_object(line, len, err, sizeof err), *out = NULL;
    json_t *text = o ? json_object_get(o, "text") : NULL;
    if (o && !json_is_string(text)) snprintf(err, sizeof err, "needs a string field \"text\"");
    if (json_is_string(text)) {
        size_t n = 0;
        const char *s = json_string_value(text);
        size_t slen = json_string_length(text);
        int rc = qrr_model_tokenize(m, s, slen, *ids, *cap, &n);
        if (rc == QRR_ERR_BUFFER_TOO_SMALL) {
            int32_t *p = realloc(*ids, n * sizeof *p);
            if (p) {
                *ids = p;
                *cap = n;
                rc = qrr_model_tokenize(m, s, slen, *ids, *cap, &n);
            }
        }
        if (rc == QRR_OK) {
            out = json_array();
            for (size_t i = 0; i < n; i++) json_array_append_new(out, json_integer((*ids)[i]));
            out = json_pack("{s:o}", "ids", out);
        } else {
            snprintf(err, sizeof err, "%s", qrr_last_error());
        }
    }
    json_decref(o);
    if (!out) {
        char msg[700];
        snprintf(msg, sizeof msg, "line %ld: %s", lineno, err);
        fprintf(stderr, "qrr tokenize: %s\n", msg);
        out = json_pack("{s:s}", "error", msg);
    }
    return out;
}

int qrr_cmd_tokenize(int argc, char **argv)
{
    const char *path = NULL;
    cli_model_opts mo = cli_model_opts_default();
    for (int i = 1; i < argc; i++) {
        int r = cli_common_option("tokenize", CLI_OPT_VERIFY, help, argc, argv, &i, &mo);
        if (r == CLI_OPT_TAKEN) continue;
        if (r != CLI_OPT_OTHER) return r;
        if (argv[i][0] == '-') {
            return cli_usage_error("tokenize", "unknown option '%s'", argv[i]);
        } else if (!path && !cli_is_split_value(argv[i])) {
            path = argv[i];
        } else {
            return cli_unexpected_argument("tokenize", argv, i);
        }
    }
    if (!path) return cli_usage_error("tokenize", "missing MODEL.qrr");
    qrr_model *m = cli_open_model("tokenize", path, mo.verify);
    if (!m) return QRR_EXIT_FAIL;
    cli_lines in = {.fd = 0};
    const char *line;
    size_t len, cap = 0;
    int32_t *ids = NULL;
    int failures = 0;
    while ((line = cli_next_line(&in, &len)) != NULL) {
        if (cli_is_blank(line, len)) continue;
        json_t *o = tokenize_line(m, line, len, in.lineno, &ids, &cap);
        if (json_object_get(o, "error")) failures++;
        cli_print_json(o);
        json_decref(o);
        /* one answer per line, at once: a caller may be waiting for it */
        if (cli_flush() != 0) break; /* the output is gone: main says so */
    }
    if (in.error) {
        fprintf(stderr, "qrr tokenize: error reading standard input: %s\n", strerror(in.error));
        failures++;
    }
    free(ids);
    cli_lines_free(&in);
    qrr_model_close(m);
    return failures ? QRR_EXIT_FAIL : QRR_EXIT_OK;
}
