/* conn_guard.h - a deadline for the request headers of each connection.
 *
 * libmicrohttpd's connection timeout is an idle timeout: any byte resets
 * it, so a client sending one byte every few seconds holds a connection
 * (and a slot of max_connections) for ever (issue 17, slowloris).  The
 * guard gives each connection a deadline from the moment it opens, or from
 * the request line of a later request on a keep-alive connection, until
 * its headers are complete; past it, the socket is shut down and MHD
 * closes the connection as if the client had hung up.
 *
 * Wiring (http.c): conn_guard_notify as MHD_OPTION_NOTIFY_CONNECTION and
 * conn_guard_uri_log as MHD_OPTION_URI_LOG_CALLBACK (it returns NULL, so
 * the access handler still sees *con_cls == NULL first), both with the
 * guard as closure; conn_guard_headers_in() on the access handler's first
 * call of each request.  All callbacks run on MHD's thread; the guard's
 * own thread only shuts sockets down, under the lock that the "closed"
 * notification takes before MHD closes the descriptor.
 */
#ifndef BCT_CONN_GUARD_H
#define BCT_CONN_GUARD_H

#include <microhttpd.h>

#include "util/status.h"

typedef struct conn_guard conn_guard;

/* timeout_s 0: no deadline (*out is then NULL, and every function below
 * accepts NULL). */
int conn_guard_start(int timeout_s, conn_guard **out, bct_error *err);
/* After MHD_stop_daemon. */
void conn_guard_stop(conn_guard *g);

void conn_guard_notify(void *cls, struct MHD_Connection *c, void **socket_context,
                       enum MHD_ConnectionNotificationCode code);
void *conn_guard_uri_log(void *cls, const char *uri, struct MHD_Connection *c);
void conn_guard_headers_in(struct MHD_Connection *c);

#endif
