/* http.c — the server's life and its HTTP side, on libmicrohttpd: the listening socket, one
 * thread per connection (a client that stalls holds only its own thread, and the read
 * timeout closes it), routing, the checks made before a body is read (API key, the
 * concurrency and payload limits), one log line per request, and the drain on SIGTERM or
 * SIGINT: stop accepting, let the requests in flight finish (until the drain timeout or a
 * second signal), stop. */
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <microhttpd.h>

#include "cors.h"
#include "state.h"

qrr_server_config qrr_server_default_config(void)
{
    qrr_server_config c = {.host = "127.0.0.1", .port = 3000, .threads = 0,
                           .device = QRR_DEVICE_CPU, .verify = 1, .max_batch_tokens = 0,
                           .max_client_batch_size = 32, .max_documents = 1000,
                           .max_request_tokens = 262144, .payload_limit = 2000000,
                           .max_concurrent_requests = 512, .api_key = NULL, .read_timeout = 10,
                           .request_timeout = 30, .drain_timeout = 60, .log_requests = 1};
    return c;
}

/* One request's state across libmicrohttpd's calls of the handler. */
typedef struct request {
    route_id route;
    int counted;      /* a POST to a rerank route, counted in in_flight */
    char *body;
    size_t len, cap;
    int answered;     /* a reply was queued before the whole body was read */
    int wrong_method; /* a known route asked with another method */
    size_t dropped;   /* bytes read past the payload limit, not kept */
    int refused;      /* a request without a body was refused: refusal is sent at its end */
    reply refusal;
    double started;
    int status;       /* of the reply queued, once answered */
    char line[96];    /* method and URL as the log writes them (cut), for a line at its end */
} request;

/* A body over the payload limit that comes without Content-Length (chunked) can only be
 * answered once it has ended: libmicrohttpd takes no reply in the middle of an upload. The
 * rest is read and dropped until the body reaches this many times the limit; past that
 * the connection is closed without a reply. */
#define DROP_LIMITS 4

/* The route of url (ROUTE_OTHER: none); *wrong_method = 1 when it takes another method.
 * HEAD is served wherever GET is (libmicrohttpd then sends the headers only). */
static route_id find_route(const char *method, const char *url, int *wrong_method)
{
    static const struct {
        const char *url;
        route_id id;
        int post;
    } table[] = {{"/rerank", ROUTE_RERANK, 1}, {"/v1/rerank", ROUTE_V1, 1},
                 {"/v2/rerank", ROUTE_V2, 1},  {"/score", ROUTE_SCORE, 1},
                 {"/v1/score", ROUTE_V1_SCORE, 1}, {"/health", ROUTE_HEALTH, 0},
                 {"/info", ROUTE_INFO, 0},     {"/metrics", ROUTE_METRICS, 0}};
    *wrong_method = 0;
    for (size_t i = 0; i < sizeof table / sizeof table[0]; i++)
        if (!strcmp(url, table[i].url)) {
            *wrong_method = table[i].post ? strcmp(method, "POST") != 0
                                          : strcmp(method, "GET") && strcmp(method, "HEAD");
            return table[i].id;
        }
    return ROUTE_OTHER;
}

/* The path of a request target: a target in absolute form ("http://host:port/rerank", which
 * a proxy may send and RFC 9112 section 3.2.2 says a server must take) names its path after
 * the authority, "/" when it has none. */
static const char *target_path(const char *url)
{
    const char *rest = !strncasecmp(url, "http://", 7)    ? url + 7
                       : !strncasecmp(url, "https://", 8) ? url + 8
                                                          : NULL;
    if (!rest) return url;
    const char *slash = strchr(rest, '/');
    return slash ? slash : "/";
}

/* libmicrohttpd's unescaping of the URL, except that a URL holding an escaped NUL (%00) is
 * left as sent: decoded, the NUL would end the string early, and "/rerank%00x" would be
 * served as "/rerank" (a proxy in front matching paths would see another one). Undecoded,
 * it matches no route: 404. */
static size_t unescape_url(void *cls, struct MHD_Connection *conn, char *s)
{
    (void)cls, (void)conn;
    if (strstr(s, "%00")) return strlen(s);
    return MHD_http_unescape(s);
}

/* s for a log line: control bytes, backslashes and every byte of a non-ASCII character as
 * \xNN, so that a request's URL cannot end the line or forge another (U+0085 and U+2028
 * end lines too for some log readers); cut at the buffer's end. */
static const char *log_safe(const char *s, char *buf, size_t cap)
{
    size_t n = 0;
    for (; *s && n + 5 < cap; s++) {
        unsigned char c = (unsigned char)*s;
        if (c < 0x20 || c >= 0x7f || c == '\\')
            n += (size_t)snprintf(buf + n, cap - n, "\\x%02x", c);
        else
            buf[n++] = (char)c;
    }
    buf[n] = '\0';
    return buf;
}

/* libmicrohttpd's own messages (a header over its memory pool, a connection it dropped),
 * as lines of this log: same prefix, made safe like a URL, one line each. */
static void log_http_library(void *unused, const char *format, va_list ap)
{
    (void)unused;
    char text[512], safe[2048];
    vsnprintf(text, sizeof text, format, ap);
    size_t n = strlen(text);
    while (n && (text[n - 1] == '\n' || text[n - 1] == '\r')) text[--n] = '\0';
    fprintf(stderr, "qrr serve: http: %s\n", log_safe(text, safe, sizeof safe));
}

static void log_request(const server *srv, const char *method, const char *url,
                        const reply *r, double seconds)
{
    if (!srv->cfg->log_requests) return;
    char m[64], u[512];
    method = log_safe(method, m, sizeof m);
    url = log_safe(url, u, sizeof u);
    fprintf(stderr, "qrr serve: %s %s %d pairs=%zu tokens=%zu tokenize_ms=%.1f queue_ms=%.1f "
            "inference_ms=%.1f total_ms=%.1f\n", method, url, r->status, r->pairs, r->tokens,
            r->tokenization_s * 1e3, r->queue_s * 1e3, r->inference_s * 1e3, seconds * 1e3);
}

/* Count r in the metrics and log it; q is answered from here on. */
static void record_reply(server *srv, request *q, const char *method, const char *url,
                         reply *r)
{
    double seconds = qrr_time_seconds() - q->started;
    metrics_request(srv->mx, r->route, r->status < 300, r->why, seconds);
    log_request(srv, method, url, r, seconds);
    q->answered = 1;
    q->status = r->status;
}

/* Send r, record it, and free its body. */
static enum MHD_Result send_reply(server *srv, struct MHD_Connection *conn, request *q,
                                  const char *method, const char *url, reply *r)
{
    struct MHD_Response *resp =
        MHD_create_response_from_buffer(r->len, r->body, MHD_RESPMEM_MUST_FREE);
    if (!resp) {
        free(r->body);
        return MHD_NO;
    }
    r->body = NULL;
    if (r->content_type)
        MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, r->content_type);
    const char *cors = srv->cfg->cors_allow_origin;
    const char *origin = cors_allow(cors, MHD_lookup_connection_value(conn, MHD_HEADER_KIND,
                                                                      "Origin"));
    if (origin) MHD_add_response_header(resp, "Access-Control-Allow-Origin", origin);
    /* an answer for one origin differs from another's: a cache must keep them apart */
    if (cors && strcmp(cors, "*")) MHD_add_response_header(resp, MHD_HTTP_HEADER_VARY, "Origin");
    if (r->preflight)
        MHD_add_response_header(resp, "Access-Control-Allow-Headers",
                                cors_allow_headers(MHD_lookup_connection_value(
                                    conn, MHD_HEADER_KIND, "Access-Control-Request-Headers")));
    for (int i = 0; i < r->n_headers; i++)
        MHD_add_response_header(resp, r->headers[i].name, r->headers[i].value);
    if (r->status == 401) MHD_add_response_header(resp, "WWW-Authenticate", "Bearer");
    enum MHD_Result ok = MHD_queue_response(conn, (unsigned)r->status, resp);
    MHD_destroy_response(resp);
    record_reply(srv, q, method, url, r);
    return ok;
}

/* Whether the n bytes at given are the key, in a time that does not tell how much of it a
 * guess got right. */
static int is_key(const char *given, size_t n, const char *key)
{
    size_t k = strlen(key); /* never 0: an empty key is refused at start */
    unsigned char diff = n != k;
    for (size_t i = 0; i < n; i++) diff |= (unsigned char)(given[i] ^ key[i % k]);
    return !diff;
}

static int authorized(const server *srv, struct MHD_Connection *conn, route_id route)
{
    const char *key = srv->cfg->api_key;
    if (!key || route == ROUTE_HEALTH || route == ROUTE_METRICS) return 1;
    const char *h = MHD_lookup_connection_value(conn, MHD_HEADER_KIND,
                                                MHD_HTTP_HEADER_AUTHORIZATION);
    /* "Bearer" in any case (a scheme's name has none), blanks, the key; blanks after it are
     * the field's own whitespace, which HTTP says is not part of the value */
    if (!h || strncasecmp(h, "Bearer", 6) || (h[6] != ' ' && h[6] != '\t')) return 0;
    h += 6 + strspn(h + 6, " \t");
    size_t n = strlen(h);
    while (n && (h[n - 1] == ' ' || h[n - 1] == '\t')) n--;
    return is_key(h, n, key);
}

/* The framing headers of a request: Content-Length (how many, whether they disagree) and
 * Transfer-Encoding (how many, the first). */
typedef struct framing_seen {
    int lengths, differ, codings;
    const char *length, *coding;
} framing_seen;

static enum MHD_Result note_framing(void *cls, enum MHD_ValueKind kind, const char *key,
                                    const char *value)
{
    (void)kind;
    framing_seen *f = cls;
    const char *v = value ? value : "";
    if (!strcasecmp(key, MHD_HTTP_HEADER_CONTENT_LENGTH)) {
        if (f->lengths++ == 0) f->length = v;
        else if (strcmp(v, f->length) != 0) f->differ = 1;
    } else if (!strcasecmp(key, MHD_HTTP_HEADER_TRANSFER_ENCODING)) {
        if (f->codings++ == 0) f->coding = v;
    }
    return MHD_YES;
}

/* Framing that another server in front could read otherwise than libmicrohttpd does (the
 * ground of request smuggling; RFC 9112, 6.1 and 6.3): Content-Length headers that
 * disagree, Content-Length beside Transfer-Encoding, more than one Transfer-Encoding header
 * (libmicrohttpd reads the first; a proxy may join them), and a transfer coding other than
 * chunked, which libmicrohttpd cannot read (501). */
static int refuse_framing(struct MHD_Connection *conn, reply *r)
{
    framing_seen f = {0};
    MHD_get_connection_values(conn, MHD_HEADER_KIND, note_framing, &f);
    if (f.differ || (f.lengths && f.codings) || f.codings > 1) {
        reply_error(r, 400, FAIL_VALIDATION, "%s", f.differ ? "the request has Content-Length "
                    "headers that disagree" : f.codings > 1 ? "the request has more than one "
                    "Transfer-Encoding header" : "the request has both Content-Length and "
                    "Transfer-Encoding");
        return 1;
    }
    const char *te = f.coding;
    if (te && strcasecmp(te, "chunked") != 0) {
        char t[64];
        reply_error(r, 501, FAIL_VALIDATION, "Transfer-Encoding \"%s\" is not supported: send "
                    "the body with Content-Length, or chunked alone", log_safe(te, t, sizeof t));
        return 1;
    }
    return 0;
}

/* The checks made when a request's headers have arrived; 1 with r filled if it is refused. */
static int refuse_early(server *srv, struct MHD_Connection *conn, request *q, reply *r)
{
    const int scoring = route_scores(q->route);
    if (q->route == ROUTE_OTHER) {
        reply_error(r, 404, FAIL_NOT_FOUND, "no such route; see docs/server.md");
        return 1;
    }
    if (q->wrong_method) {
        reply_error(r, 405, FAIL_NOT_FOUND, "%s takes %s", route_name(q->route),
                    scoring ? "POST" : "GET or HEAD");
        reply_header(r, "Allow", "%s", scoring ? "POST" : "GET, HEAD");
        return 1;
    }
    if (!authorized(srv, conn, q->route)) {
        reply_error(r, 401, FAIL_UNAUTHORIZED, "missing or wrong API key: send "
                    "\"Authorization: Bearer <key>\"");
        return 1;
    }
    if (!scoring) return 0;
    /* Count first, then look at draining: the drain waits for in_flight after setting
     * draining, so one of the two sees the other. */
    int now_in_flight = atomic_fetch_add(&srv->in_flight, 1) + 1;
    q->counted = 1;
    if (atomic_load(&srv->draining) || !atomic_load(&srv->ready)) {
        reply_error(r, 503, FAIL_UNAVAILABLE, atomic_load(&srv->draining) ?
                    "the server is shutting down" : "the model is still loading");
        return 1;
    }
    if (now_in_flight > srv->cfg->max_concurrent_requests) {
        reply_error(r, 429, FAIL_OVERLOADED, "model is overloaded: more than %d concurrent "
                    "requests (--max-concurrent-requests)", srv->cfg->max_concurrent_requests);
        reply_header(r, "Retry-After", "1"); /* seconds: a turn or two of scoring */
        return 1;
    }
    /* Content-Type is not looked at (curl -d sends a form type); an encoded body would only
     * come out as "not JSON", so it is refused for what it is. */
    const char *enc = MHD_lookup_connection_value(conn, MHD_HEADER_KIND,
                                                  MHD_HTTP_HEADER_CONTENT_ENCODING);
    if (enc && *enc && strcasecmp(enc, "identity") != 0) {
        char e[64];
        reply_error(r, 415, FAIL_VALIDATION, "Content-Encoding \"%s\" is not supported: send "
                    "the body uncompressed", log_safe(enc, e, sizeof e));
        return 1;
    }
    const char *cl = MHD_lookup_connection_value(conn, MHD_HEADER_KIND,
                                                 MHD_HTTP_HEADER_CONTENT_LENGTH);
    if (cl && strtoull(cl, NULL, 10) > srv->cfg->payload_limit) {
        reply_error(r, 413, FAIL_TOO_LARGE, "the body has %s bytes, over the limit of %zu "
                    "(--payload-limit)", cl, srv->cfg->payload_limit);
        return 1;
    }
    return 0;
}

/* Whether the request comes with a body (Content-Length above 0, or chunked). */
static int has_body(struct MHD_Connection *conn)
{
    const char *cl = MHD_lookup_connection_value(conn, MHD_HEADER_KIND,
                                                 MHD_HTTP_HEADER_CONTENT_LENGTH);
    return (cl && strtoull(cl, NULL, 10) > 0) ||
           MHD_lookup_connection_value(conn, MHD_HEADER_KIND,
                                       MHD_HTTP_HEADER_TRANSFER_ENCODING);
}

/* Append a piece of the body; 0, or -1 past the payload limit. */
static int add_body(request *q, const char *data, size_t n, size_t limit)
{
    if (n > limit - q->len) return -1; /* q->len <= limit always */
    if (q->len + n > q->cap) {
        size_t cap = q->cap ? q->cap : 4096;
        while (cap < q->len + n) cap *= 2;
        if (cap > limit) cap = limit;
        char *p = realloc(q->body, cap);
        if (!p) return -1;
        q->body = p;
        q->cap = cap;
    }
    memcpy(q->body + q->len, data, n);
    q->len += n;
    return 0;
}

/* The deadline clock of a connection (NULL: none). */
static conn_clock *clock_of(struct MHD_Connection *conn)
{
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(conn, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
    return ci ? ci->socket_context : NULL;
}

/* The connection's socket (-1: unknown). Asked from the connection's own thread (in a
 * handler), it stays open, its number used by no other, until the handler returns. */
static int client_fd(struct MHD_Connection *conn)
{
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
    return ci ? ci->connect_fd : -1;
}

/* A connection opens or closes: its deadline clock starts or is forgotten (libmicrohttpd
 * tells of the close before it closes the socket). */
static void on_connection(void *cls, struct MHD_Connection *conn, void **socket_context,
                          enum MHD_ConnectionNotificationCode code)
{
    server *srv = cls;
    if (code == MHD_CONNECTION_NOTIFY_STARTED) {
        int fd = client_fd(conn);
        *socket_context = fd >= 0 ? deadlines_add(srv->deadlines, fd) : NULL;
    } else {
        deadlines_remove(srv->deadlines, *socket_context);
        *socket_context = NULL;
    }
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version,
                                  const char *upload, size_t *upload_size, void **req_cls)
{
    (void)version;
    server *srv = cls;
    request *q = *req_cls;
    reply r = {.content_type = "application/json"};
    if (!q) { /* headers are in: route and early checks */
        if (!(q = calloc(1, sizeof *q))) return MHD_NO;
        *req_cls = q;
        q->started = qrr_time_seconds();
        const char *path = target_path(url);
        q->route = find_route(method, path, &q->wrong_method);
        if (srv->cfg->log_requests) { /* for log_ending */
            char m[64], u[512];
            snprintf(q->line, sizeof q->line, "%s %s", log_safe(method, m, sizeof m),
                     log_safe(url, u, sizeof u));
        }
        r.route = q->route;
        /* an unknown path under /v1/ or /v2/ is most likely a Cohere, Jina or vLLM client's:
         * its 404 in their shape */
        r.api_errors = q->route == ROUTE_OTHER && (!strncmp(path, "/v1/", 4) ||
                                                   !strncmp(path, "/v2/", 4));
        /* Framing read two ways is answered now: libmicrohttpd then closes the connection,
         * so nothing after the headers is taken for another request. */
        if (refuse_framing(conn, &r)) return send_reply(srv, conn, q, method, url, &r);
        /* a browser's preflight, before the API key: it never sends one */
        if (srv->cfg->cors_allow_origin && !strcmp(method, MHD_HTTP_METHOD_OPTIONS) &&
            q->route != ROUTE_OTHER)
            cors_preflight(&r, q->route);
        else if (!refuse_early(srv, conn, q, &r))
            return MHD_YES;
        /* libmicrohttpd closes the connection after a reply queued before the body: that
         * spares reading an unwanted body, but a request without one keeps its connection
         * if the reply waits for the request's end. */
        if (has_body(conn)) return send_reply(srv, conn, q, method, url, &r);
        q->refused = 1;
        q->refusal = r;
        return MHD_YES;
    }
    r.route = q->route;
    const size_t limit = srv->cfg->payload_limit;
    if (*upload_size) { /* a piece of the body */
        size_t n = *upload_size;
        *upload_size = 0;
        if (q->answered) return MHD_YES; /* refused already: drop the rest */
        if (!q->dropped && add_body(q, upload, n, limit) == 0) return MHD_YES;
        if (!q->dropped) { /* from here on the body is only counted */
            free(q->body);
            q->body = NULL;
            q->cap = 0;
        }
        q->dropped += n;
        if ((q->len + q->dropped) / DROP_LIMITS <= limit) return MHD_YES;
        reply_error(&r, 413, FAIL_TOO_LARGE, "the body went on past %d times --payload-limit "
                    "(%zu bytes); connection closed", DROP_LIMITS, limit);
        record_reply(srv, q, method, url, &r);
        free(r.body);
        return MHD_NO;
    }
    deadlines_received(srv->deadlines, clock_of(conn)); /* the whole request is in */
    if (q->answered) return MHD_YES;
    if (q->refused) {
        r = q->refusal;
        q->refusal.body = NULL;
        return send_reply(srv, conn, q, method, url, &r);
    }
    if (q->dropped) {
        reply_error(&r, 413, FAIL_TOO_LARGE, "the body is over the limit of %zu bytes "
                    "(--payload-limit)", limit);
        return send_reply(srv, conn, q, method, url, &r);
    }
    switch (q->route) {
    case ROUTE_HEALTH: route_health(srv, &r); break;
    case ROUTE_INFO: route_info(srv, &r); break;
    case ROUTE_METRICS: route_metrics(srv, &r); break;
    default: route_rerank(srv, q->body ? q->body : "", q->len, client_fd(conn), &r); break;
    }
    return send_reply(srv, conn, q, method, url, &r);
}

/* Why libmicrohttpd ended a request before its answer was all sent. */
static const char *ending(const server *srv, enum MHD_RequestTerminationCode code, char *buf,
                          size_t cap)
{
    switch (code) {
    case MHD_REQUEST_TERMINATED_TIMEOUT_REACHED:
        snprintf(buf, cap, "nothing came for %d s (--read-timeout)", srv->cfg->read_timeout);
        return buf;
    case MHD_REQUEST_TERMINATED_CLIENT_ABORT:
    case MHD_REQUEST_TERMINATED_READ_ERROR: return "the client closed the connection";
    case MHD_REQUEST_TERMINATED_DAEMON_SHUTDOWN: return "the server stopped";
    default: return "the connection failed";
    }
}

/* A log line for a request that ended unanswered, or whose answer did not all go out (the
 * client gone by the time its scores were ready); none for a connection the request
 * timeout cut, which has its own line. */
static void log_ending(server *srv, struct MHD_Connection *conn, const request *q,
                       enum MHD_RequestTerminationCode code)
{
    if (!srv->cfg->log_requests || code == MHD_REQUEST_TERMINATED_COMPLETED_OK ||
        deadlines_cut(srv->deadlines, clock_of(conn)))
        return;
    char why[64];
    if (q->answered && q->status == 499) return; /* left before scoring: logged as such */
    if (q->answered)
        fprintf(stderr, "qrr serve: %s %d not delivered: %s\n", q->line, q->status,
                ending(srv, code, why, sizeof why));
    else
        fprintf(stderr, "qrr serve: %s closed before the request was in: %s\n", q->line,
                ending(srv, code, why, sizeof why));
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **req_cls,
                         enum MHD_RequestTerminationCode code)
{
    server *srv = cls;
    request *q = *req_cls;
    deadlines_restart(srv->deadlines, clock_of(conn)); /* for the next request, if any */
    if (!q) return;
    log_ending(srv, conn, q, code);
    /* a client that left before its request was all in is counted as any that left */
    if (!q->answered && (code == MHD_REQUEST_TERMINATED_CLIENT_ABORT ||
                         code == MHD_REQUEST_TERMINATED_READ_ERROR))
        metrics_request(srv->mx, q->route, 0, FAIL_CLIENT_GONE, qrr_time_seconds() - q->started);
    if (q->counted) atomic_fetch_sub(&srv->in_flight, 1);
    free(q->refusal.body); /* a refusal that was not sent: the client left */
    free(q->body);
    free(q);
    *req_cls = NULL;
}

/* A listening socket on host:port (port 0 = any); its port in *bound. -1 with a message. */
static int listen_on(const char *host, int port, int *bound)
{
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM,
                             .ai_flags = AI_PASSIVE | AI_NUMERICSERV}, *res;
    char service[16];
    snprintf(service, sizeof service, "%d", port);
    int e = getaddrinfo(host, service, &hints, &res);
    if (e) {
        fprintf(stderr, "qrr serve: cannot resolve --host %s: %s\n", host, gai_strerror(e));
        return -1;
    }
    int fd = socket(res->ai_family, res->ai_socktype | SOCK_CLOEXEC, res->ai_protocol), one = 1;
    if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) ||
        bind(fd, res->ai_addr, res->ai_addrlen) || listen(fd, 128)) {
        fprintf(stderr, "qrr serve: cannot listen on %s:%d: %s\n", host, port, strerror(errno));
        if (fd >= 0) close(fd);
        freeaddrinfo(res);
        return -1;
    }
    freeaddrinfo(res);
    struct sockaddr_storage sa;
    socklen_t sl = sizeof sa;
    getsockname(fd, (struct sockaddr *)&sa, &sl);
    char h[NI_MAXHOST], p[NI_MAXSERV];
    getnameinfo((struct sockaddr *)&sa, sl, h, sizeof h, p, sizeof p,
                NI_NUMERICHOST | NI_NUMERICSERV);
    *bound = atoi(p);
    return fd;
}

/* Open the model, its context and the scheduler; 0 or -1 with a message. */
static int load(server *srv)
{
    const qrr_server_config *c = srv->cfg;
    qrr_model_params mp = qrr_model_default_params();
    mp.verify_weights = c->verify;
    qrr_ctx_params cp = qrr_ctx_default_params();
    cp.n_threads = c->threads;
    cp.device = c->device;
    cp.max_batch_tokens = c->max_batch_tokens;
    qrr_ctx *ctx = NULL;
    if (qrr_model_open(c->model_path, mp, &srv->model) != QRR_OK ||
        qrr_ctx_create(srv->model, cp, &ctx) != QRR_OK) {
        fprintf(stderr, "qrr serve: %s\n", qrr_last_error());
        return -1;
    }
    int rc = prompt_frame_get(srv->model, &srv->frame);
    if (rc != QRR_OK) {
        fprintf(stderr, "qrr serve: the model's prompt frame: %s\n",
                rc == QRR_ERR_NOMEM ? "out of memory" : qrr_last_error());
        qrr_ctx_free(ctx);
        return -1;
    }
    /* A turn takes about one chunk's worth of requests: enough to fill the chunk with
     * small requests, and no long wait for the request at the head. */
    if (sched_start(ctx, (size_t)c->max_batch_tokens, srv->mx, &srv->sched)) {
        fprintf(stderr, "qrr serve: cannot start the scheduler thread\n");
        qrr_ctx_free(ctx);
        return -1;
    }
    srv->ctx = ctx;
    return 0;
}

static void model_name_of(const char *path, char *out, size_t cap)
{
    const char *base = strrchr(path, '/');
    base = base ? base + 1 : path;
    size_t n = strlen(base);
    if (n > 4 && !strcmp(base + n - 4, ".qrr")) n -= 4;
    snprintf(out, cap, "%.*s", (int)n, base);
}

/* Wait for SIGINT or SIGTERM (blocked in every thread, so only this wait sees them). */
static int wait_for_signal(const sigset_t *set)
{
    int sig = 0;
    while (sigwait(set, &sig) != 0) {}
    return sig;
}

/* How long the drain waits, while connections are open, for requests sent before the
 * signal that have not been read yet: a client that wrote one just before it gets an answer
 * (a 503 once its headers are in, as the server is draining) instead of a closed
 * connection. Kept-alive connections with no request hold the drain this long at most. */
#define DRAIN_GRACE_S 0.2
/* The least it waits: a connection MHD accepted just before it stopped accepting is counted
 * among its connections a moment later. */
#define DRAIN_MIN_WAIT_S 0.02

/* The connections the kernel completed on the listening socket (lfd, which MHD gave back
 * when it stopped accepting) that MHD had not accepted yet: handed to MHD, so that a request
 * a client sent just before the drain began gets an answer (503: the server is draining)
 * rather than a reset. Then the socket is closed: a later client is refused at once. How
 * many were handed over (MHD counts them among its connections a moment later). */
static int adopt_backlog(struct MHD_Daemon *d, int lfd)
{
    int adopted = 0, flags = fcntl(lfd, F_GETFL);
    if (flags >= 0 && fcntl(lfd, F_SETFL, flags | O_NONBLOCK) == 0) {
        for (;;) {
            struct sockaddr_storage from;
            socklen_t len = sizeof from;
            int c = accept4(lfd, (struct sockaddr *)&from, &len, SOCK_CLOEXEC);
            if (c < 0) break;
            /* closes c on failure */
            adopted += MHD_add_connection(d, c, (struct sockaddr *)&from, len) == MHD_YES;
        }
    }
    close(lfd);
    return adopted;
}

/* Connections the HTTP server holds open now. */
static unsigned open_connections(struct MHD_Daemon *d)
{
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(d, MHD_DAEMON_INFO_CURRENT_CONNECTIONS);
    return info ? info->num_connections : 0;
}

/* Wait until the requests in flight are done (and, for DRAIN_GRACE_S, any open or adopted
 * connection has had the time to deliver one), the drain timeout passes or a second SIGINT or
 * SIGTERM comes; that signal, or 0. */
static int drain(server *srv, struct MHD_Daemon *d, int adopted, const sigset_t *set)
{
    double start = qrr_time_seconds(), until = start + srv->cfg->drain_timeout;
    const struct timespec poll = {.tv_nsec = 5000000};
    for (double now = start; now < until; now = qrr_time_seconds()) {
        if (atomic_load(&srv->in_flight) == 0 &&
            (now >= start + DRAIN_GRACE_S ||
             (now >= start + DRAIN_MIN_WAIT_S && !adopted && open_connections(d) == 0)))
            break;
        int sig = sigtimedwait(set, NULL, &poll);
        if (sig > 0) return sig;
    }
    return 0;
}

/* Free the metrics and stop the deadline watchdog (after the HTTP daemon has stopped). */
static void release(server *srv)
{
    deadlines_stop(srv->deadlines);
    metrics_free(srv->mx);
    prompt_frame_free(&srv->frame);
}

int qrr_server_run(const qrr_server_config *given)
{
    qrr_server_config resolved = *given; /* the chunk size, which /info shows, made explicit */
    if (resolved.max_batch_tokens == 0)
        resolved.max_batch_tokens = qrr_default_max_batch_tokens(resolved.device);
    const qrr_server_config *cfg = &resolved;
    server srv = {.cfg = cfg};
    model_name_of(cfg->model_path, srv.model_name, sizeof srv.model_name);
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &set, NULL); /* every thread started below inherits it */
    signal(SIGPIPE, SIG_IGN);
    if (!(srv.mx = metrics_create()) ||
        !(srv.deadlines = deadlines_start(cfg->request_timeout, cfg->read_timeout,
                                          cfg->log_requests))) {
        fprintf(stderr, "qrr serve: out of memory or threads\n");
        release(&srv);
        return 1;
    }

    int port = 0, fd = listen_on(cfg->host, cfg->port, &port);
    if (fd < 0) {
        release(&srv);
        return 1;
    }
    struct MHD_Daemon *d = MHD_start_daemon(
        MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_THREAD_PER_CONNECTION | MHD_USE_ITC |
            MHD_USE_ERROR_LOG,
        0, NULL, NULL, on_request, &srv, MHD_OPTION_EXTERNAL_LOGGER, log_http_library, NULL,
        MHD_OPTION_LISTEN_SOCKET, fd,
        MHD_OPTION_CONNECTION_TIMEOUT, (unsigned int)cfg->read_timeout,
        MHD_OPTION_CONNECTION_LIMIT, (unsigned int)(cfg->max_concurrent_requests + 64),
        MHD_OPTION_UNESCAPE_CALLBACK, unescape_url, NULL,
        MHD_OPTION_NOTIFY_COMPLETED, on_completed, &srv,
        MHD_OPTION_NOTIFY_CONNECTION, on_connection, &srv, MHD_OPTION_END);
    if (!d) {
        fprintf(stderr, "qrr serve: the HTTP server did not start\n");
        close(fd);
        release(&srv);
        return 1;
    }
    const int v6 = strchr(cfg->host, ':') != NULL; /* an IPv6 address goes in brackets */
    fprintf(stderr, "qrr serve: listening on http://%s%s%s:%d (loading %s)\n", v6 ? "[" : "",
            cfg->host, v6 ? "]" : "", port, cfg->model_path);
    if (load(&srv) != 0) {
        MHD_stop_daemon(d);
        close(fd);
        qrr_model_close(srv.model);
        release(&srv);
        return 1;
    }
    atomic_store(&srv.ready, 1);
    fprintf(stderr, "qrr serve: ready\n");

    int sig = wait_for_signal(&set);
    atomic_store(&srv.draining, 1);
    fprintf(stderr, "qrr serve: %s: draining %d request(s) in flight\n", strsignal(sig),
            atomic_load(&srv.in_flight));
    int lfd = MHD_quiesce_daemon(d); /* no new connections from here on */
    int adopted = lfd >= 0 ? adopt_backlog(d, lfd) : 0;
    int again = drain(&srv, d, adopted, &set);
    int left = atomic_load(&srv.in_flight);
    if (left) {
        /* Waiting for them would take as long as their scoring does, and a supervisor that
         * allowed the drain timeout is about to kill the process anyway: their connections
         * close unanswered, and they are neither logged nor counted. */
        if (again)
            fprintf(stderr, "qrr serve: %s: stopping now; %d request(s) dropped\n",
                    strsignal(again), left);
        else
            fprintf(stderr, "qrr serve: %d request(s) still running after %d s "
                    "(--drain-timeout): stopping now; they are dropped\n", left,
                    cfg->drain_timeout);
        _exit(1);
    }
    MHD_stop_daemon(d);
    sched_stop(srv.sched);
    qrr_ctx_free(srv.ctx);
    qrr_model_close(srv.model);
    release(&srv);
    fprintf(stderr, "qrr serve: stopped\n");
    return 0;
}
