/* conn_guard.h - deadlines for each connection's request headers and body.
 *
 * libmicrohttpd's connection timeout is an idle timeout: any byte resets
 * it, so a client sending one byte every few seconds holds a connection
 * (and a slot of max_connections) for ever (issue 17, slowloris).  The
 * guard gives each connection a deadline from the moment it opens, or from
 * the request line of a later request on a keep-alive connection, until
 * its headers are complete; past it, the socket is shut down and MHD
 * closes the connection as if the client had hung up.
 *
 * Wiring (http.c, which keeps the entry in its per-connection context):
 * conn_guard_open when MHD reports a connection started, conn_guard_close
 * when it reports it closed, conn_guard_request_line from the URI log
 * callback (a later request on a kept-alive connection), and
 * conn_guard_headers_in on the access handler's first call of each
 * request.  All of them run on MHD's thread; the guard's own thread only
 * shuts sockets down, under the lock that conn_guard_close takes before
 * MHD closes the descriptor.
 *
 * Bodies get a deadline too (conn_guard_body_start after the headers,
 * conn_guard_body_done once the body is in or an answer is queued).  Past
 * it the guard writes a 408 answer on the socket itself and shuts it
 * down: libmicrohttpd 0.9.75 cannot queue an answer until the whole body
 * has arrived, and a client that sends nothing more would never call us
 * again.  While a body is being received MHD writes nothing on the socket
 * (its "100 Continue" goes out right after the headers, seconds before any
 * deadline), so the two writers never interleave.
 */
#ifndef BCT_CONN_GUARD_H
#define BCT_CONN_GUARD_H

#include <microhttpd.h>

#include "util/status.h"

typedef struct conn_guard conn_guard;

/* header_timeout_s 0: no header deadline; bodies 0: conn_guard_body_start
 * is never called.  Both off: *out is NULL (every function below accepts
 * NULL). */
int conn_guard_start(int header_timeout_s, int bodies, conn_guard **out, bct_error *err);
/* After MHD_stop_daemon. */
void conn_guard_stop(conn_guard *g);

typedef struct conn_guard_entry conn_guard_entry;

/* A deadline for connection c, running from now; NULL when g is NULL or
 * out of memory (the connection is then unguarded).  Every function
 * below accepts a NULL entry. */
conn_guard_entry *conn_guard_open(conn_guard *g, struct MHD_Connection *c);
void conn_guard_close(conn_guard_entry *e);
void conn_guard_request_line(conn_guard_entry *e);
void conn_guard_headers_in(conn_guard_entry *e);
/* The body must be in within seconds from now (> 0). */
void conn_guard_body_start(conn_guard_entry *e, int seconds);
/* The body is in or an answer is queued: 0, or -1 when the guard has
 * already answered 408 (send nothing more). */
int conn_guard_body_done(conn_guard_entry *e);
/* 1 when this connection's last request was answered 408 by the guard. */
int conn_guard_timed_out(const conn_guard_entry *e);

#endif
