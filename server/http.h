/* http.h - the transport: libmicrohttpd listening, request bodies,
 * suspending connections, responses, the access log and request metrics.
 * Which route answers, and how, is routes/ (route.h); this module knows
 * no route.
 *
 * MHD runs its own epoll thread.  For each request: its headers go to
 * routes_match() and the route's auth check, then to the handler's begin;
 * its body to the handler's body (or it is read and dropped); then the
 * handler's end answers, or suspends the connection while another thread
 * (the batcher's loop, the admin job runner) works, and resumes it with
 * the answer, which is sent from MHD's thread.
 *
 * An answer decided from the headers is sent once the body is read and
 * dropped, so keep-alive connections survive it.  It goes out at once
 * (and the connection closes) when the body announced is over the route's
 * limit, when the client waits for "100 Continue", when the request has
 * two Content-Length headers or a NUL byte in its path, and when /admin
 * credentials are missing or wrong (never read an unauthenticated upload).
 * The access log line and request metrics are written when MHD reports
 * the request complete.
 */
#ifndef BCT_HTTP_H
#define BCT_HTTP_H

#include "routes/route.h"

typedef srv_deps http_deps;

typedef struct srv_http srv_http;

/* Reads the API keys (cfg->api_key, cfg->api_key_file) and listens. */
int http_start(const http_deps *d, srv_http **out, bct_error *err);
/* The port actually bound (useful with port 0). */
int http_port(const srv_http *h);
/* Stops accepting connections (draining): connections already made,
 * even those still in the listen queue, are served; new ones are
 * refused. */
void http_quiesce(srv_http *h);
/* Content-Length, or -1 when absent or not a number. */
long long http_content_length(struct MHD_Connection *c);
/* Requests not answered yet, including those that arrived while draining
 * (answered 503) and connections accepted whose first request is still
 * on its way: a drain waits until none is left. */
int http_pending(srv_http *h);
/* Connections currently suspended (their job is in the batcher or their
 * response is on its way back to MHD's thread). */
int http_suspended(srv_http *h);
/* Closes every connection and frees; call with nothing suspended. */
void http_stop(srv_http *h);

#endif
