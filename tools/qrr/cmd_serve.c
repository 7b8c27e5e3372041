/* cmd_serve.c — `qrr serve MODEL.qrr`: the command line of the reranking HTTP server
 * (server/); the server itself is qrr_server_run. */
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "cors.h"
#include "server.h"

static void help(void)
{
    qrr_server_config d = qrr_server_default_config();
    printf("usage: qrr serve MODEL.qrr [options]\n\n"
           "Serves reranking over HTTP: POST /rerank (text-embeddings-inference's format,\n"
           "or vLLM's), POST /v1/rerank and /v2/rerank (Jina's and Cohere's), POST /score and\n"
           "/v1/score (vLLM's), GET /health, /info and /metrics (Prometheus). Requests of\n"
           "concurrent clients are scored together; every request may set \"instruction\".\n"
           "SIGTERM or SIGINT drains: no new connections, the requests in flight finish,\n"
           "exit 0; at the drain timeout or a second signal, the requests still running are\n"
           "dropped, exit 1. docs/server.md has the details.\n\n"
           "options:\n"
           "  --host ADDR                  address to listen on (default %s)\n"
           "  --port N                     port (default %d; 0 = any free port, printed)\n"
           "  --threads N                  scoring threads (default 0 = one per CPU)\n"
           "  --device cpu|cuda            where to score (default cpu)\n"
           "  --max-batch-tokens N         tokens per forward chunk (default %d on the CPU,\n"
           "                               %d on cuda)\n"
           "  --max-client-batch-size N    texts per /rerank request (default %d, as in\n"
           "                               text-embeddings-inference; more: 422)\n"
           "  --max-documents N            documents per /v1, /v2 or vLLM request (default\n"
           "                               %d; more: 422, or vLLM's 400)\n"
           "  --max-request-tokens N       prompt tokens of a request's documents in all\n"
           "                               (default %d; more: 413)\n"
           "  --payload-limit BYTES        request body size (default %zu; more: 413)\n"
           "  --max-concurrent-requests N  requests handled at once (default %d, at most 900;\n"
           "                               more: 429)\n"
           "  --api-key KEY                require \"Authorization: Bearer KEY\" (not on\n"
           "                               /health and /metrics); also $QRR_API_KEY\n"
           "  --cors-allow-origin ORIGINS  let pages of these origins call the server from a\n"
           "                               browser: \"*\" or https://HOST[:PORT],... (default:\n"
           "                               none; OPTIONS preflights are then answered)\n"
           "  --read-timeout S             close a connection idle or stalled S seconds\n"
           "                               (default %d)\n"
           "  --request-timeout S          close a connection whose request (headers and\n"
           "                               body) is not in within S seconds (default %d;\n"
           "                               kept alive: after up to --read-timeout idle)\n"
           "  --drain-timeout S            how long SIGTERM waits for requests (default %d);\n"
           "                               then they are dropped\n"
           "  --no-verify                  skip the weight checksums at open\n"
           "  --quiet                      no line per request on stderr\n\n"
           "Exit: 0 after a drain, 1 when the model or the address cannot be opened or requests\n"
           "were dropped at the drain's end, 2 usage.\n",
           d.host, d.port, qrr_default_max_batch_tokens(QRR_DEVICE_CPU),
           qrr_default_max_batch_tokens(QRR_DEVICE_CUDA), d.max_client_batch_size, d.max_documents,
           d.max_request_tokens, d.payload_limit,
           d.max_concurrent_requests, d.read_timeout, d.request_timeout,
           d.drain_timeout);
}

/* A server option with an integer value in [lo, hi]: 1 when argv[*i] is `name` (then its
 * value is in *out and *i moved past it), 0 when it is not, -1 on a bad value (reported). */
static int int_option(const char *name, long lo, long hi, int argc, char **argv, int *i,
                      long *out)
{
    if (strcmp(argv[*i], name) || *i + 1 >= argc) return 0;
    if (cli_parse_int(argv[++*i], lo, hi, out)) {
        cli_usage_error("serve", "%s must be %ld..%ld", name, lo, hi);
        return -1;
    }
    return 1;
}

int qrr_cmd_serve(int argc, char **argv)
{
    qrr_server_config c = qrr_server_default_config();
    cli_model_opts mo = cli_model_opts_default();
    c.api_key = getenv("QRR_API_KEY");
    if (c.api_key && !*c.api_key) c.api_key = NULL;
    long port = c.port, chunk = c.max_batch_tokens, texts = c.max_client_batch_size,
         documents = c.max_documents, request_tokens = c.max_request_tokens,
         payload = (long)c.payload_limit, concurrent = c.max_concurrent_requests,
         read_timeout = c.read_timeout, request_timeout = c.request_timeout,
         drain_timeout = c.drain_timeout;
    const struct {
        const char *name;
        long lo, hi;
        long *value;
    } ints[] = {{"--port", 0, 65535, &port},
                {"--max-batch-tokens", 1, 1 << 20, &chunk},
                {"--max-client-batch-size", 1, 100000, &texts},
                {"--max-documents", 1, 100000, &documents},
                {"--max-request-tokens", 1, 1L << 30, &request_tokens},
                {"--payload-limit", 1, 1L << 31, &payload},
                /* + 64 connections, each watched with select(): descriptors below 1024 */
                {"--max-concurrent-requests", 1, 900, &concurrent},
                {"--read-timeout", 1, 3600, &read_timeout},
                {"--request-timeout", 1, 3600, &request_timeout},
                {"--drain-timeout", 0, 86400, &drain_timeout}};
    for (int i = 1; i < argc; i++) {
        int r = cli_common_option("serve", CLI_OPT_THREADS | CLI_OPT_DEVICE | CLI_OPT_VERIFY,
                                  help, argc, argv, &i, &mo);
        if (r == CLI_OPT_TAKEN) continue;
        if (r != CLI_OPT_OTHER) return r;
        const char *a = argv[i];
        int got = 0;
        for (size_t k = 0; k < sizeof ints / sizeof ints[0] && !got; k++)
            got = int_option(ints[k].name, ints[k].lo, ints[k].hi, argc, argv, &i, ints[k].value);
        if (got < 0) return QRR_EXIT_USAGE;
        if (got) continue;
        if (!strcmp(a, "--host") && i + 1 < argc) {
            c.host = argv[++i];
        } else if (!strcmp(a, "--api-key") && i + 1 < argc) {
            c.api_key = argv[++i];
            if (!*c.api_key) /* no client could send it: most likely an unset variable */
                return cli_usage_error("serve", "--api-key is empty (to serve without a key, "
                                       "leave the option out)");
        } else if (!strcmp(a, "--cors-allow-origin") && i + 1 < argc) {
            c.cors_allow_origin = argv[++i];
            const char *bad = cors_check(c.cors_allow_origin);
            if (bad) return cli_usage_error("serve", "--cors-allow-origin %s", bad);
        } else if (!strcmp(a, "--quiet")) {
            c.log_requests = 0;
        } else if (a[0] == '-') {
            return cli_usage_error("serve", "unknown or incomplete option '%s'", a);
        } else if (!c.model_path && !cli_is_split_value(a)) {
            c.model_path = a;
        } else {
            return cli_unexpected_argument("serve", argv, i);
        }
    }
    if (!c.model_path) return cli_usage_error("serve", "missing MODEL.qrr");
    c.port = (int)port;
    c.max_batch_tokens = (int)chunk;
    c.max_client_batch_size = (int)texts;
    c.max_documents = (int)documents;
    c.max_request_tokens = (int)request_tokens;
    c.payload_limit = (size_t)payload;
    c.max_concurrent_requests = (int)concurrent;
    c.read_timeout = (int)read_timeout;
    c.request_timeout = (int)request_timeout;
    c.drain_timeout = (int)drain_timeout;
    c.threads = mo.ctx.n_threads;
    c.device = mo.ctx.device;
    c.verify = mo.verify;
    return qrr_server_run(&c);
}
