/* cors.c — see cors.h. */
#include "cors.h"

#include <string.h>
#include <strings.h>

/* Whether the item [p, p + n) of the list, blanks around it dropped, is origin. */
static int item_is(const char *p, size_t n, const char *origin)
{
    while (n && (*p == ' ' || *p == '\t')) p++, n--;
    while (n && (p[n - 1] == ' ' || p[n - 1] == '\t')) n--;
    /* scheme and host are case-insensitive; what a browser sends is lower case anyway */
    return n && strlen(origin) == n && !strncasecmp(p, origin, n);
}

const char *cors_allow(const char *allow, const char *origin)
{
    if (!allow || !origin || !*origin) return NULL;
    if (!strcmp(allow, "*")) return "*";
    for (const char *p = allow;;) {
        const char *comma = strchr(p, ',');
        size_t n = comma ? (size_t)(comma - p) : strlen(p);
        if (item_is(p, n, origin)) return origin;
        if (!comma) return NULL;
        p = comma + 1;
    }
}

const char *cors_check(const char *allow)
{
    if (!*allow) return "is empty";
    if (!strcmp(allow, "*")) return NULL;
    for (const char *p = allow; *p; p++) {
        unsigned char c = (unsigned char)*p;
        if (c < 0x21 && c != ' ' && c != '\t') return "holds a control character";
        if (c >= 0x7f) return "holds a byte outside ASCII (write the host in punycode)";
    }
    for (const char *p = allow;;) {
        const char *comma = strchr(p, ',');
        size_t n = comma ? (size_t)(comma - p) : strlen(p);
        while (n && (*p == ' ' || *p == '\t')) p++, n--;
        if (!n) return "has an empty item";
        if (strncmp(p, "http://", 7) && strncmp(p, "https://", 8))
            return "has an item that is not an origin (http://HOST[:PORT] or https://...)";
        if (!comma) return NULL;
        p = comma + 1;
    }
}

void cors_preflight(reply *r, route_id route)
{
    int post = route_scores(route);
    r->status = 204;
    r->content_type = NULL;
    reply_header(r, "Access-Control-Allow-Methods", "%s", post ? "POST, OPTIONS"
                                                             : "GET, HEAD, OPTIONS");
    reply_header(r, "Access-Control-Allow-Headers", "authorization, content-type");
    reply_header(r, "Access-Control-Max-Age", "600");
}
