/* cmd_serve.c — `qrr serve MODEL.qrr`: the command line of the reranking HTTP server
 * (server/); the server itself is qrr_server_run. */
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "server.h"

static void help(void)
{
    qrr_server_config d = qrr_server_default_config();
    printf("usage: qrr serve MODEL.qrr [options]\n\n"
           "Serves reranking over HTTP: POST /rerank (text-embeddings-inference's format),\n"
           "POST /v1/rerank and /v2/rerank (Jina's and Cohere's), GET /health, /info and\n"
           "/metrics (Prometheus). Requests of concurrent clients are scored together; every\n"
           "request may set \"instruction\". SIGTERM or SIGINT drains: no new connections, the\n"
           "requests in flight finish, exit 0. docs/server.md has the details.\n\n"
           "options:\n"
           "  --host ADDR                  address to listen on (default %s)\n"
           "  --port N                     port (default %d; 0 = any free port, printed)\n"
           "  --threads N                  scoring threads (default 0 = one per CPU)\n"
           "  --device cpu|cuda            where to score (default cpu)\n"
           "  --max-batch-tokens N         tokens per forward chunk (default %d)\n"
           "  --max-client-batch-size N    texts per request (default %d; more: 422)\n"
           "  --payload-limit BYTES        request body size (default %zu; more: 413)\n"
           "  --max-concurrent-requests N  requests handled at once (default %d; more: 429)\n"
           "  --api-key KEY                require \"Authorization: Bearer KEY\" (not on\n"
           "                               /health and /metrics); also $QRR_API_KEY\n"
           "  --read-timeout S             close a connection idle or stalled S seconds\n"
           "                               (default %d)\n"
           "  --drain-timeout S            how long SIGTERM waits for requests (default %d)\n"
           "  --no-verify                  skip the weight checksums at open\n"
           "  --quiet                      no line per request on stderr\n\n"
           "Exit: 0 after a drain, 1 when the model or the address cannot be opened, 2 usage.\n",
           d.host, d.port, d.max_batch_tokens, d.max_client_batch_size, d.payload_limit,
           d.max_concurrent_requests, d.read_timeout, d.drain_timeout);
}

int qrr_cmd_serve(int argc, char **argv)
{
    qrr_server_config c = qrr_server_default_config();
    c.api_key = getenv("QRR_API_KEY");
    if (c.api_key && !*c.api_key) c.api_key = NULL;
    long v;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *val = i + 1 < argc ? argv[i + 1] : NULL;
#define INT_OPT(name, lo, hi, field)                                                        \
        if (!strcmp(a, name) && val) {                                                     \
            if (cli_parse_int(val, lo, hi, &v))                                            \
                return cli_usage_error("serve", name " must be %ld..%ld", (long)(lo),       \
                                       (long)(hi));                                        \
            field = v;                                                                     \
            i++;                                                                           \
            continue;                                                                      \
        }
        INT_OPT("--port", 0, 65535, c.port)
        INT_OPT("--threads", 0, 1024, c.threads)
        INT_OPT("--max-batch-tokens", 1, 1 << 20, c.max_batch_tokens)
        INT_OPT("--max-client-batch-size", 1, 100000, c.max_client_batch_size)
        INT_OPT("--payload-limit", 1, 1L << 31, c.payload_limit)
        INT_OPT("--max-concurrent-requests", 1, 100000, c.max_concurrent_requests)
        INT_OPT("--read-timeout", 1, 3600, c.read_timeout)
        INT_OPT("--drain-timeout", 0, 86400, c.drain_timeout)
#undef INT_OPT
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            help();
            return QRR_EXIT_OK;
        } else if (!strcmp(a, "--host") && val) {
            c.host = argv[++i];
        } else if (!strcmp(a, "--api-key") && val) {
            c.api_key = argv[++i];
        } else if (!strcmp(a, "--device") && val) {
            i++;
            if (!strcmp(val, "cpu")) c.device = QRR_DEVICE_CPU;
            else if (!strcmp(val, "cuda")) c.device = QRR_DEVICE_CUDA;
            else return cli_usage_error("serve", "--device must be cpu or cuda, not '%s'", val);
        } else if (!strcmp(a, "--no-verify")) {
            c.verify = 0;
        } else if (!strcmp(a, "--quiet")) {
            c.log_requests = 0;
        } else if (a[0] == '-') {
            return cli_usage_error("serve", "unknown or incomplete option '%s'", a);
        } else if (!c.model_path) {
            c.model_path = a;
        } else {
            return cli_usage_error("serve", "unexpected argument '%s'", a);
        }
    }
    if (!c.model_path) return cli_usage_error("serve", "missing MODEL.qrr");
    return qrr_server_run(&c);
}
