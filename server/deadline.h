/* deadline.h — the time a client has to send a whole request (headers and body). The read
 * timeout closes a connection that sends nothing; a client that trickles a byte now and
 * then resets it forever and holds a connection slot, and enough of them would hold every
 * slot. A watchdog thread shuts down any connection whose request is not in within the
 * request timeout of the connection's start; a kept-alive connection may first stay idle
 * for the read timeout after its previous answer (that timeout closes it if it does), and
 * then has the request timeout. Thread-safe. */
#ifndef QRR_SERVER_DEADLINE_H
#define QRR_SERVER_DEADLINE_H

typedef struct deadlines deadlines;
typedef struct conn_clock conn_clock;

/* Start the watchdog; NULL if out of memory or no thread. idle_s: the read timeout. log:
 * one line per connection closed for its deadline. */
deadlines *deadlines_start(int timeout_s, int idle_s, int log);
/* Stop the watchdog (every connection must be removed first). */
void deadlines_stop(deadlines *d);

/* A new connection on socket fd: its clock runs from now (NULL if out of memory: no
 * deadline for it). */
conn_clock *deadlines_add(deadlines *d, int fd);
/* The connection is closing: forget it. Must come before its socket is closed. */
void deadlines_remove(deadlines *d, conn_clock *c);
/* Its request is in: no deadline while it is answered. */
void deadlines_received(deadlines *d, conn_clock *c);
/* Whether the watchdog shut the connection down (and logged it) for its deadline. */
int deadlines_cut(deadlines *d, conn_clock *c);
/* Answered: the next request on the connection has its own time, from the end of the idle
 * allowance. */
void deadlines_restart(deadlines *d, conn_clock *c);

#endif
