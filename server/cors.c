/* cors.c — see cors.h. */
#include "cors.h"

#include <string.h>
#include <strings.h>

#define DEFAULT_ALLOW_HEADERS "authorization, content-type"

/* [p, p + *n) without the blanks around it. */
static const char *trim(const char *p, size_t *n)
{
    while (*n && (*p == ' ' || *p == '\t')) p++, (*n)--;
    while (*n && (p[*n - 1] == ' ' || p[*n - 1] == '\t')) (*n)--;
    return p;
}

/* The next item of the comma-separated list at *cursor, blanks around it dropped, *n bytes
 * long (0: an empty item); NULL once the list is done. */
static const char *next_item(const char **cursor, size_t *n)
{
    const char *p = *cursor;
    if (!p) return NULL;
    const char *comma = strchr(p, ',');
    *n = comma ? (size_t)(comma - p) : strlen(p);
    *cursor = comma ? comma + 1 : NULL;
    return trim(p, n);
}

const char *cors_allow(const char *allow, const char *origin)
{
    if (!allow || !origin || !*origin) return NULL;
    if (!strcmp(allow, "*")) return "*";
    size_t n;
    for (const char *cursor = allow, *item; (item = next_item(&cursor, &n));)
        /* scheme and host are case-insensitive; what a browser sends is lower case anyway */
        if (n && strlen(origin) == n && !strncasecmp(item, origin, n)) return origin;
    return NULL;
}

/* What is wrong with one origin of the list (n bytes at p, trimmed), or NULL. An origin is
 * what a browser sends: scheme, host, and a port only when it is not the scheme's default. */
static const char *origin_fault(const char *p, size_t n)
{
    size_t scheme = !strncmp(p, "https://", n < 8 ? n : 8) && n >= 8 ? 8
                  : !strncmp(p, "http://", n < 7 ? n : 7) && n >= 7 ? 7 : 0;
    if (!scheme) return "has an item that is not an origin (http://HOST[:PORT] or https://...)";
    const char *host = p + scheme, *end = p + n, *colon = NULL;
    if (host == end) return "has an origin without a host";
    for (const char *c = host; c < end; c++) {
        if (*c == '/' || *c == '?' || *c == '#')
            return "has an origin with a path (an origin is scheme://host[:port], no '/')";
        if (*c == ' ' || *c == '\t') return "has blanks inside an item (separate origins by commas)";
        if (*c == ':') colon = c;
    }
    if (colon && colon == host) return "has an origin without a host";
    if (colon && ((scheme == 8 && end - colon == 4 && !strncmp(colon, ":443", 4)) ||
                  (scheme == 7 && end - colon == 3 && !strncmp(colon, ":80", 3))))
        return "has an origin with its scheme's default port, which browsers leave out of it";
    return NULL;
}

const char *cors_check(const char *allow)
{
    if (!*allow) return "is empty";
    if (!strcmp(allow, "*")) return NULL;
    for (const char *p = allow; *p; p++) {
        unsigned char c = (unsigned char)*p;
        if (c < 0x20 && c != '\t') return "holds a control character";
        if (c >= 0x7f) return "holds a byte outside ASCII (write the host in punycode)";
    }
    size_t n;
    for (const char *cursor = allow, *item; (item = next_item(&cursor, &n));) {
        if (!n) return "has an empty item";
        const char *bad = origin_fault(item, n);
        if (bad) return bad;
    }
    return NULL;
}

const char *cors_allow_headers(const char *requested)
{
    if (!requested || !*requested || strlen(requested) > 1024) return DEFAULT_ALLOW_HEADERS;
    /* field names (tokens) separated by commas and blanks: anything else is not echoed */
    for (const char *c = requested; *c; c++)
        if (!strchr("!#$%&'*+-.^_`|~, \t", *c) && !(*c >= '0' && *c <= '9') &&
            !(*c >= 'a' && *c <= 'z') && !(*c >= 'A' && *c <= 'Z'))
            return DEFAULT_ALLOW_HEADERS;
    return requested;
}

void cors_preflight(reply *r, route_id route)
{
    r->status = 204;
    r->content_type = NULL;
    r->preflight = 1;
    reply_header(r, "Access-Control-Allow-Methods", "%s", route_scores(route)
                                                               ? "POST, OPTIONS"
                                                               : "GET, HEAD, OPTIONS");
    reply_header(r, "Access-Control-Max-Age", "600");
}
