/* cors.h — cross-origin requests for `qrr serve --cors-allow-origin`: which origins a
 * browser may call the server from, and the answer to a browser's preflight. No HTTP
 * library here: http.c passes the request's Origin and adds the headers. */
#ifndef QRR_SERVER_CORS_H
#define QRR_SERVER_CORS_H

#include "state.h"

/* The Access-Control-Allow-Origin value for a request from origin under allow ("*", or
 * origins separated by commas): "*", origin itself, or NULL (no header: the browser keeps
 * the answer from the page). NULL too when allow or origin is NULL. */
const char *cors_allow(const char *allow, const char *origin);

/* Whether the --cors-allow-origin value is well formed ("*", or origins such as
 * https://app.example.com separated by commas); NULL, or what is wrong. */
const char *cors_check(const char *allow);

/* The Access-Control-Allow-Headers value of a preflight that asked for requested (its
 * Access-Control-Request-Headers): those headers when they are a list of field names, else
 * Authorization and Content-Type. */
const char *cors_allow_headers(const char *requested);

/* r as the answer to a preflight (OPTIONS) for route: 204 and the methods the route takes,
 * for 10 minutes (r->preflight set: the sender adds cors_allow_headers). */
void cors_preflight(reply *r, route_id route);

#endif
