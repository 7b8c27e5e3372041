/* server_client.h — what the server tests need to drive `qrr serve` as a client would:
 * start it on a free loopback port and stop it by its pid, HTTP requests through libcurl,
 * raw sockets for clients that misbehave. Header-only, like qrr_test_util.h. */
#ifndef QRR_SERVER_CLIENT_H
#define QRR_SERVER_CLIENT_H

#include <arpa/inet.h>
#include <errno.h>
#include <curl/curl.h>
#include <fcntl.h>
#include <jansson.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <time.h>

#include "qrr_test_util.h"

typedef struct served {
    pid_t pid;
    int port;
    char log[1100];
} served;

/* Start `qrr serve model extra...` (extra: a NULL-terminated list) on a free port; waits
 * until it says ready. Its stderr goes to tmp/serve-N.log. */
static inline served serve_start(const char *tmp, const char *model, const char *const *extra)
{
    static int count;
    served s = {0};
    snprintf(s.log, sizeof s.log, "%s/serve-%d.log", tmp, count++);
    char prog[1100];
    snprintf(prog, sizeof prog, "%s/qrr", tu_build());
    const char *argv[32] = {"qrr", "serve", model, "--port", "0", "--threads", "2"};
    int n = 7;
    for (int i = 0; extra && extra[i] && n < 31; i++) argv[n++] = extra[i];
    argv[n] = NULL;
    int fd = open(s.log, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    cr_assert_geq(fd, 0, "cannot create %s", s.log);
    s.pid = fork();
    cr_assert_geq(s.pid, 0);
    if (s.pid == 0) {
        dup2(fd, 2);
        execv(prog, (char *const *)argv);
        _exit(127);
    }
    close(fd);
    for (int tries = 0; tries < 1000; tries++) { /* up to 20 s */
        char *text = tu_slurp(s.log, NULL);
        const char *at = strstr(text, "listening on http://");
        const char *end = at ? strchr(at + strlen("listening on "), ' ') : NULL; /* URL's end */
        while (end && end > at && *end != ':') end--; /* the port follows the last ':' */
        if (end && end > at) s.port = atoi(end + 1);
        int ready = strstr(text, "qrr serve: ready") != NULL;
        free(text);
        if (ready && s.port) return s;
        int st;
        cr_assert_eq(waitpid(s.pid, &st, WNOHANG), 0, "qrr serve exited early (see %s)", s.log);
        usleep(20000);
    }
    cr_assert_fail("qrr serve did not get ready (see %s)", s.log);
    return s;
}

/* SIGTERM and the exit status (-1 if it died of a signal). */
static inline int serve_stop(served *s)
{
    int st;
    kill(s->pid, SIGTERM);
    cr_assert_eq(waitpid(s->pid, &st, 0), s->pid);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

typedef struct http_result {
    long status;
    char *body;      /* malloc'ed, NUL-terminated */
    size_t len;
    char headers[2048];
    double seconds;
} http_result;

static size_t collect_body(char *p, size_t size, size_t n, void *arg)
{
    http_result *r = arg;
    size_t k = size * n;
    char *b = realloc(r->body, r->len + k + 1);
    if (!b) return 0;
    memcpy(b + r->len, p, k);
    r->body = b;
    r->len += k;
    b[r->len] = '\0';
    return k;
}

static size_t collect_header(char *p, size_t size, size_t n, void *arg)
{
    http_result *r = arg;
    size_t k = size * n, used = strlen(r->headers);
    if (used + k + 1 < sizeof r->headers) {
        memcpy(r->headers + used, p, k);
        r->headers[used + k] = '\0';
    }
    return k;
}

/* One request on handle h (NULL = a fresh one); body NULL = GET. auth: the Authorization
 * header's value, or NULL. */
static inline http_result http_on(CURL *h, int port, const char *path, const char *body,
                                  size_t body_len, const char *auth)
{
    http_result r = {0};
    CURL *c = h ? h : curl_easy_init();
    char url[256], auth_h[512];
    snprintf(url, sizeof url, "http://127.0.0.1:%d%s", port, path);
    struct curl_slist *hdr = curl_slist_append(NULL, "Content-Type: application/json");
    if (auth) {
        snprintf(auth_h, sizeof auth_h, "Authorization: %s", auth);
        hdr = curl_slist_append(hdr, auth_h);
    }
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, hdr);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, collect_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &r);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, collect_header);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, &r);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, 60L);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    if (body) {
        curl_easy_setopt(c, CURLOPT_POST, 1L);
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)body_len);
    } else {
        curl_easy_setopt(c, CURLOPT_HTTPGET, 1L);
    }
    CURLcode rc = curl_easy_perform(c);
    if (rc == CURLE_OK) curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r.status);
    else r.status = -(long)rc;
    curl_easy_getinfo(c, CURLINFO_TOTAL_TIME, &r.seconds);
    curl_slist_free_all(hdr);
    if (!h) curl_easy_cleanup(c);
    if (!r.body) r.body = strdup("");
    return r;
}

static inline http_result http(int port, const char *path, const char *body)
{
    return http_on(NULL, port, path, body, body ? strlen(body) : 0, NULL);
}

/* A TCP connection to the server, for clients curl will not imitate (stalling ones). */
static inline int raw_connect(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    cr_assert_eq(connect(fd, (struct sockaddr *)&a, sizeof a), 0, "connect: %s", strerror(errno));
    return fd;
}

static inline void raw_send(int fd, const char *s)
{
    cr_assert_eq(send(fd, s, strlen(s), MSG_NOSIGNAL), (ssize_t)strlen(s));
}

/* Everything the server sends until it closes the connection (or timeout_s passes). */
static inline char *raw_read_all(int fd, double timeout_s, int *closed)
{
    struct timeval tv = {.tv_sec = 0, .tv_usec = 100000};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    size_t len = 0;
    char *buf = calloc(1, 65536);
    struct timespec t0, t;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    *closed = 0;
    for (;;) {
        ssize_t k = recv(fd, buf + len, 65535 - len, 0);
        if (k == 0) {
            *closed = 1;
            break;
        }
        if (k > 0) len += (size_t)k;
        clock_gettime(CLOCK_MONOTONIC, &t);
        if ((double)(t.tv_sec - t0.tv_sec) + 1e-9 * (double)(t.tv_nsec - t0.tv_nsec) > timeout_s ||
            len >= 65535)
            break;
    }
    buf[len] = '\0';
    return buf;
}

#endif
