/* http.h - libmicrohttpd glue: listening, routing, request bodies,
 * suspending connections while their job is in the batcher, responses.
 *
 * MHD runs its own epoll thread.  A POST /classify or /predict is read
 * (413 early from Content-Length, and again while counting the bytes that
 * really arrive), parsed and tokenized on that thread, then the connection
 * is suspended and the job handed to the batcher.  The batcher's loop
 * thread formats the response when the job is done and resumes the
 * connection; MHD's thread then sends it.  Every other answer (GET
 * routes, errors decided from the headers) is sent as soon as the request
 * is fully received, so keep-alive connections survive it; only a body
 * announced over the limit is refused before it is read (the connection
 * then closes).  The access log line and request metrics are written when
 * MHD reports the request complete.
 *
 * Requests under /admin go to api_admin.h, which streams uploads to disk;
 * at the end of an upload the connection is suspended while the job
 * runner validates it, and resumed from that thread with the answer.
 */
#ifndef BCT_HTTP_H
#define BCT_HTTP_H

#include "access_log.h"
#include "api_admin.h"
#include "batcher.h"
#include "config.h"
#include "lifecycle.h"
#include "log.h"
#include "metrics.h"
#include "registry.h"

typedef struct http_deps {
    const srv_config *cfg;
    srv_registry *reg;
    batcher *bat;
    srv_metrics *metrics;
    access_log *alog;
    srv_lifecycle *life;
    const srv_log *log;
    int workers;
    srv_admin *admin; /* the /admin routes; NULL: admin API off (404) */
} http_deps;

typedef struct srv_http srv_http;

int http_start(const http_deps *d, srv_http **out, bct_error *err);
/* The port actually bound (useful with port 0). */
int http_port(const srv_http *h);
/* Connections currently suspended (their job is in the batcher or their
 * response is on its way back to MHD's thread). */
int http_suspended(srv_http *h);
/* Closes every connection and frees; call with nothing suspended. */
void http_stop(srv_http *h);

#endif
