/* server.h — `qrr serve`: a reranking HTTP server over the public C API, with the request
 * formats of text-embeddings-inference (/rerank) and of the Cohere and Jina rerank APIs
 * (/v1/rerank, /v2/rerank). docs/server.md describes routes, flags and behaviour. */
#ifndef QRR_SERVER_H
#define QRR_SERVER_H

#include <stddef.h>
#include "qrr.h"

typedef struct qrr_server_config {
    const char *model_path;
    const char *host;           /* address to listen on (IPv4 or IPv6 literal) */
    int port;                   /* 0 = any free port (printed when listening) */
    int threads;                /* scoring threads; 0 = one per CPU */
    qrr_device device;
    int verify;                 /* check weight checksums at open */
    int max_batch_tokens;       /* tokens per forward chunk; 0 = the device's default */
    int max_client_batch_size;  /* texts per /rerank request (TEI's limit) */
    int max_documents;          /* documents per /v1 or /v2 request (Cohere's and Jina's) */
    int max_request_tokens;     /* prompt tokens of one request's documents in all */
    size_t payload_limit;       /* request body bytes */
    int max_concurrent_requests;
    const char *api_key;        /* NULL = no key needed */
    const char *cors_allow_origin; /* "*" or origins separated by commas; NULL = no CORS */
    int read_timeout;           /* seconds a connection may stay idle or stalled */
    int request_timeout;        /* seconds a client has to send a whole request */
    int drain_timeout;          /* seconds SIGTERM waits for requests in flight */
    int log_requests;           /* one line per request on stderr */
} qrr_server_config;

qrr_server_config qrr_server_default_config(void);

/* Listen, load the model, serve until SIGINT or SIGTERM, then drain: stop accepting, finish
 * what is in flight, stop. Returns a process exit status: 0 after a drain, 1 when the model
 * or the listening socket cannot be opened (the message is printed). When requests are
 * still running at the drain timeout or at a second signal, it does not return: the
 * process exits 1 at once, dropping them. */
int qrr_server_run(const qrr_server_config *cfg);

#endif
