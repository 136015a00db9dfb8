#define _GNU_SOURCE /* accept4 */
#include "http.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <microhttpd.h>
#include <netdb.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <unistd.h>

#include "admin_auth.h"
#include "conn_guard.h"
#include "srv_limits.h"


struct srv_http {
    srv_deps d;
    struct MHD_Daemon *daemon;
    int port;
    atomic_int suspended;
    atomic_int unstarted; /* connections whose first request has not begun */
    atomic_int handed;    /* given to MHD by http_quiesce, its "started" not yet seen */
    atomic_int requests;  /* requests begun and not completed (draining ones too) */
    conn_guard *guard;    /* header deadlines (issue 17), NULL when off */
};

/* Per-connection state (MHD's socket context). */
typedef struct http_conn {
    int fresh;               /* no request begun yet: counted in unstarted */
    conn_guard_entry *guard; /* its header deadline, or NULL */
} http_conn;

enum { RQ_BODY, RQ_QUEUED, RQ_DONE, RQ_ANSWERED };

/* Per request state, MHD's *con_cls.  While the request is suspended only
 * the thread that will resume it touches it. */
typedef struct http_req {
    srv_req r; /* first: handlers get &r */
    srv_http *h;
    http_conn *hc; /* its connection's state, or NULL (out of memory) */
    int counted;  /* lifecycle_enter() said so: leave on completion */
    int state;
    int early;    /* r.reply was decided from the headers: drop the body */
    int suspended;
    size_t received;    /* every body byte that arrived, kept or not */
    long long drop_max; /* of a dropped body: past it, close */
    char remote[64];
    int status; /* sent */
    size_t bytes_out;
} http_req;

static double ms_between(uint64_t a, uint64_t b) { return b > a ? (double)(b - a) * 1e-6 : 0; }

/* ---- what handlers use ---- */

const char *srv_req_header(srv_req *rq, const char *name) {
    return MHD_lookup_connection_value(rq->conn, MHD_HEADER_KIND, name);
}

int srv_req_fd(srv_req *rq) {
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(rq->conn, MHD_CONNECTION_INFO_CONNECTION_FD);
    return ci ? ci->connect_fd : -1;
}

void srv_req_suspend(srv_req *rq) {
    http_req *hr = (http_req *)rq;
    hr->state = RQ_QUEUED;
    hr->suspended = 1;
    atomic_fetch_add(&hr->h->suspended, 1);
    MHD_suspend_connection(rq->conn);
}

void srv_req_resume(srv_req *rq) {
    http_req *hr = (http_req *)rq;
    hr->state = RQ_DONE;
    MHD_resume_connection(rq->conn);
}

/* ---- responses ---- */

static conn_guard_entry *guard_of(http_req *hr) { return hr->hc ? hr->hc->guard : NULL; }

static enum MHD_Result respond(http_req *hr) {
    route_reply *rep = &hr->r.reply;
    if (conn_guard_body_done(guard_of(hr)) != 0) return MHD_NO; /* the guard answered 408 */
    char *body = rep->body;
    rep->body = NULL;
    if (!body) return MHD_NO;
    struct MHD_Response *r = MHD_create_response_from_buffer(rep->len, body, MHD_RESPMEM_MUST_FREE);
    if (!r) {
        free(body);
        return MHD_NO;
    }
    int status = rep->status;
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, rep->ctype ? rep->ctype : "application/json");
    MHD_add_response_header(r, "X-Request-Id", hr->r.request_id);
    if (rep->allow) MHD_add_response_header(r, MHD_HTTP_HEADER_ALLOW, rep->allow);
    for (int i = 0; i < rep->n_hdr; i++) MHD_add_response_header(r, rep->hdr[i].name, rep->hdr[i].value);
    if (status == 429 || status == 503) MHD_add_response_header(r, MHD_HTTP_HEADER_RETRY_AFTER, "1");
    if (hr->r.draining || lifecycle_phase(hr->h->d.life) == PHASE_DRAINING)
        MHD_add_response_header(r, MHD_HTTP_HEADER_CONNECTION, "close");
    hr->status = status;
    hr->bytes_out = rep->len;
    hr->state = RQ_ANSWERED;
    enum MHD_Result ret = MHD_queue_response(hr->r.conn, (unsigned)status, r);
    MHD_destroy_response(r);
    return ret;
}

/* ---- headers ---- */

static enum MHD_Result count_header(void *cls, enum MHD_ValueKind kind, const char *key,
                                    const char *value) {
    (void)kind;
    (void)value;
    if (!strcasecmp(key, MHD_HTTP_HEADER_CONTENT_LENGTH)) ++*(int *)cls;
    return MHD_YES;
}

long long http_content_length(struct MHD_Connection *c) {
    const char *cl = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
    if (!cl) return -1;
    char *end;
    unsigned long long v = strtoull(cl, &end, 10);
    return end != cl && !*end && v < (1ull << 62) ? (long long)v : -1;
}

static void request_id(http_req *hr) {
    const char *v = srv_req_header(&hr->r, "X-Request-Id");
    size_t n = v ? strlen(v) : 0;
    int ok = n > 0 && n <= SRV_REQUEST_ID_MAX;
    for (size_t i = 0; ok && i < n; i++)
        ok = isalnum((unsigned char)v[i]) || strchr("-_.:/+=@", v[i]);
    if (ok) {
        memcpy(hr->r.request_id, v, n + 1);
        return;
    }
    unsigned char raw[16];
    if (getrandom(raw, sizeof(raw), GRND_NONBLOCK) != (ssize_t)sizeof(raw)) {
        static atomic_ullong seq;
        unsigned long long s = atomic_fetch_add(&seq, 1) ^ srv_now_ns();
        for (size_t i = 0; i < sizeof(raw); i++) raw[i] = (unsigned char)(s >> (8 * (i % 8)));
    }
    for (size_t i = 0; i < sizeof(raw); i++) snprintf(hr->r.request_id + 2 * i, 3, "%02x", raw[i]);
}

/* 0: the route's auth class lets the request in; else rq->reply holds
 * the refusal. */
static int authorize(http_req *hr) {
    srv_req *rq = &hr->r;
    const srv_deps *d = &hr->h->d;
    const char *auth = srv_req_header(rq, MHD_HTTP_HEADER_AUTHORIZATION);
    switch (rq->route->auth) {
    case AUTH_API_KEY: {
        if (d->n_api_keys == 0) return 0;
        int ok = 0;
        /* Every key is compared, each in time depending on its own length. */
        for (int i = 0; i < d->n_api_keys; i++) ok |= admin_auth_check(d->api_keys[i], auth) == AUTH_OK;
        if (ok) return 0;
        route_header(rq, MHD_HTTP_HEADER_WWW_AUTHENTICATE, "Bearer realm=\"bct\"");
        route_fail(rq, SRV_EUNAUTH,
                   auth ? "the API key is not valid"
                        : "this route needs an \"Authorization: Bearer <api key>\" header");
        return -1;
    }
    case AUTH_ADMIN:
        switch (admin_auth_check(d->admin ? d->cfg->admin_token : NULL, auth)) {
        case AUTH_OK: return 0;
        case AUTH_DISABLED:
            route_fail(rq, SRV_ENOROUTE,
                       "no route %.200s: the admin API is off (no admin_token is configured)",
                       rq->path);
            return -1;
        case AUTH_MISSING:
            route_header(rq, MHD_HTTP_HEADER_WWW_AUTHENTICATE, "Bearer realm=\"bct-admin\"");
            route_fail(rq, SRV_EUNAUTH,
                       "the admin API needs an \"Authorization: Bearer <token>\" header");
            break;
        default:
            route_fail(rq, SRV_EFORBIDDEN, "the admin token is not valid");
        }
        /* An upload from a stranger is not read (srv_limits.h: but a
         * small one is drained, for proxies).  The drain's limit is set
         * here: the route's own (the upload limit) comes with its begin,
         * which a stranger never reaches, and the JSON default would
         * answer before a proxy finished sending (its 502). */
        {
            long long cl = http_content_length(rq->conn);
            if (cl < 0 || cl > SRV_UNAUTH_DRAIN)
                rq->reply.now = 1;
            else
                rq->body_limit = SRV_UNAUTH_DRAIN;
        }
        return -1;
    default:
        return 0;
    }
}

/* The body deadline (srv_limits.h): body_timeout_s, plus a second per
 * SRV_BODY_MIN_RATE bytes announced (a chunked body: the route's limit). */
static void start_body_deadline(http_req *hr) {
    int base = hr->h->d.cfg->body_timeout_s;
    if (base <= 0) return;
    long long bytes = http_content_length(hr->r.conn);
    if (bytes < 0) bytes = hr->r.body_limit;
    long long s = base + bytes / SRV_BODY_MIN_RATE;
    conn_guard_body_start(guard_of(hr), s > 86400 * 7 ? 86400 * 7 : (int)s);
}

/* An answer decided from the headers: sent now or after the body. */
static enum MHD_Result answer_early(http_req *hr) {
    srv_req *rq = &hr->r;
    const char *expect = srv_req_header(rq, MHD_HTTP_HEADER_EXPECT);
    if (rq->reply.now || (expect && !strcasecmp(expect, "100-continue")) ||
        http_content_length(rq->conn) > rq->body_limit)
        return respond(hr);
    hr->early = 1;
    hr->drop_max = 2 * rq->body_limit + SRV_DROP_SLACK;
    hr->state = RQ_BODY;
    start_body_deadline(hr);
    return MHD_YES;
}

static enum MHD_Result on_headers(http_req *hr) {
    srv_req *rq = &hr->r;
    int n_cl = 0;
    MHD_get_connection_values(rq->conn, MHD_HEADER_KIND, count_header, &n_cl);
    if (n_cl > 1) {
        route_fail(rq, SRV_EBADREQ, "the request has %d Content-Length headers", n_cl);
        rq->reply.now = 1;
        return answer_early(hr);
    }
    if (strstr(rq->path, "%00")) {
        /* The unescape callback leaves %00 alone: a NUL would cut names. */
        route_fail(rq, SRV_EBADREQ, "the path holds an escaped NUL byte (%%00)");
        rq->reply.now = 1;
        return answer_early(hr);
    }
    if (routes_match(rq) != 0 || authorize(hr) != 0) return answer_early(hr);
    const route_handler *h = rq->route->handler;
    if (h->begin && h->begin(rq) == ROUTE_REPLY) return answer_early(hr);
    hr->state = RQ_BODY;
    start_body_deadline(hr);
    return MHD_YES;
}

static enum MHD_Result on_body_chunk(http_req *hr, const char *data, size_t n) {
    srv_req *rq = &hr->r;
    hr->received += n;
    const route_handler *h = rq->route ? rq->route->handler : NULL;
    if (hr->early || !h->body) {
        long long max = hr->early ? hr->drop_max : 2 * rq->body_limit + SRV_DROP_SLACK;
        return (long long)hr->received > max ? MHD_NO : MHD_YES;
    }
    return h->body(rq, data, n) == 0 ? MHD_YES : MHD_NO;
}

static enum MHD_Result on_body_done(http_req *hr) {
    srv_req *rq = &hr->r;
    if (conn_guard_body_done(guard_of(hr)) != 0) return MHD_NO; /* the guard answered 408 */
    if (hr->early) return respond(hr);
    const route_handler *h = rq->route->handler;
    if (h->end(rq) == ROUTE_SUSPEND) return MHD_YES;
    return respond(hr);
}

static void client_address(struct MHD_Connection *c, char *buf, size_t size) {
    const union MHD_ConnectionInfo *ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
    buf[0] = '\0';
    if (!ci || !ci->client_addr) return;
    const struct sockaddr *sa = ci->client_addr;
    if (sa->sa_family == AF_INET)
        inet_ntop(AF_INET, &((const struct sockaddr_in *)(const void *)sa)->sin_addr, buf, (socklen_t)size);
    else if (sa->sa_family == AF_INET6)
        inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)(const void *)sa)->sin6_addr, buf,
                  (socklen_t)size);
}

/* Connections are counted from accept to their first request, so that a
 * drain waits for requests already on their way (http_unstarted); each
 * also gets its header deadline (conn_guard.h). */
static void on_connection(void *cls, struct MHD_Connection *c, void **socket_context,
                          enum MHD_ConnectionNotificationCode code) {
    srv_http *h = cls;
    http_conn *hc = *socket_context;
    if (code == MHD_CONNECTION_NOTIFY_STARTED) {
        if ((hc = calloc(1, sizeof(*hc)))) {
            hc->fresh = 1;
            atomic_fetch_add(&h->unstarted, 1);
            hc->guard = conn_guard_open(h->guard, c);
        }
        /* (after: never both counts zero) */
        int n = atomic_load(&h->handed);
        while (n > 0 && !atomic_compare_exchange_weak(&h->handed, &n, n - 1)) {
        }
        *socket_context = hc;
    } else {
        if (hc && hc->fresh) atomic_fetch_sub(&h->unstarted, 1);
        if (hc) conn_guard_close(hc->guard);
        free(hc);
        *socket_context = NULL;
    }
}

static http_conn *conn_of(struct MHD_Connection *c) {
    const union MHD_ConnectionInfo *ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
    return ci ? ci->socket_context : NULL;
}

/* MHD's URI log hook: a request line has arrived.  Returns NULL, so the
 * access handler still sees *con_cls == NULL first. */
static void *on_request_line(void *cls, const char *uri, struct MHD_Connection *c) {
    (void)cls;
    (void)uri;
    http_conn *hc = conn_of(c);
    if (hc) conn_guard_request_line(hc->guard);
    return NULL;
}

static void connection_started(srv_http *h, struct MHD_Connection *c) {
    http_conn *hc = conn_of(c);
    if (!hc) return;
    conn_guard_headers_in(hc->guard);
    if (hc->fresh) {
        hc->fresh = 0;
        atomic_fetch_sub(&h->unstarted, 1);
    }
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version, const char *upload_data,
                                  size_t *upload_data_size, void **con_cls) {
    srv_http *h = cls;
    http_req *hr = *con_cls;
    (void)version;
    if (!hr) {
        if (!(hr = calloc(1, sizeof(*hr)))) return MHD_NO;
        atomic_fetch_add(&h->requests, 1);
        connection_started(h, conn); /* (after: never both counts zero) */
        *con_cls = hr;
        hr->h = h;
        hr->hc = conn_of(conn);
        srv_req *rq = &hr->r;
        rq->d = &h->d;
        rq->conn = conn;
        rq->t0 = srv_now_ns();
        rq->route_index = routes_count();
        rq->queue_ms = rq->inference_ms = -1;
        rq->inputs = -1;
        rq->body_limit = h->d.cfg->max_body_bytes;
        snprintf(rq->method, sizeof(rq->method), "%s", method);
        snprintf(rq->path, sizeof(rq->path), "%s", url);
        client_address(conn, hr->remote, sizeof(hr->remote));
        request_id(hr);
        hr->counted = lifecycle_enter(h->d.life);
        rq->draining = !hr->counted;
        return on_headers(hr);
    }
    switch (hr->state) {
    case RQ_BODY:
        if (*upload_data_size) {
            enum MHD_Result r = on_body_chunk(hr, upload_data, *upload_data_size);
            *upload_data_size = 0;
            return r;
        }
        return on_body_done(hr);
    case RQ_DONE: /* resumed */
        if (hr->suspended) {
            hr->suspended = 0;
            atomic_fetch_sub(&h->suspended, 1);
        }
        if (hr->r.route->handler->resume) hr->r.route->handler->resume(&hr->r);
        if (hr->r.reply.close && !hr->r.reply.body) return MHD_NO; /* the client is gone */
        return respond(hr);
    default:
        return MHD_NO; /* not reached: MHD stops calling once answered */
    }
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                         enum MHD_RequestTerminationCode toe) {
    srv_http *h = cls;
    http_req *hr = *con_cls;
    (void)conn;
    (void)toe;
    if (!hr) return;
    *con_cls = NULL;
    srv_req *rq = &hr->r;
    if (hr->suspended) atomic_fetch_sub(&h->suspended, 1);
    /* 499 (nginx's "client closed request") when no answer went out,
     * except the guard's 408. */
    int timed_out = !hr->status && conn_guard_timed_out(guard_of(hr));
    const char *timeout_type;
    int timeout_status = srv_err_status(SRV_ETIMEOUT, &timeout_type);
    int status = hr->status ? hr->status : timed_out ? timeout_status : 499;
    double total_ms = ms_between(rq->t0, srv_now_ns());
    /* (done() first: it may name the model for the log) */
    if (rq->route && rq->route->handler->done) rq->route->handler->done(rq);
    metrics_request(h->d.metrics, rq->route_index, status, total_ms * 1e-3);
    access_entry e = {
        .remote = hr->remote[0] ? hr->remote : NULL,
        .method = rq->method,
        .path = rq->path,
        .request_id = rq->request_id,
        .status = status,
        .error_type = hr->status ? rq->reply.error_type : timed_out ? timeout_type : NULL,
        .model = rq->model[0] ? rq->model : NULL,
        .inputs = rq->inputs,
        .tokens = rq->tokens,
        .queue_ms = rq->queue_ms,
        .inference_ms = rq->inference_ms,
        .total_ms = total_ms,
        .bytes_in = hr->received,
        .bytes_out = hr->bytes_out,
    };
    access_log_write(h->d.alog, &e);
    if (hr->counted) lifecycle_leave(h->d.life);
    atomic_fetch_sub(&h->requests, 1);
    json_body_free(rq);
    route_reply_free(&rq->reply);
    free(hr);
}

static void mhd_log(void *cls, const char *fmt, va_list ap) {
    srv_http *h = cls;
    char msg[512];
    vsnprintf(msg, sizeof(msg), fmt, ap);
    size_t n = strlen(msg);
    while (n && (msg[n - 1] == '\n' || msg[n - 1] == '\r')) msg[--n] = '\0';
    srv_logf(h->d.log, SRV_LOG_DEBUG, "libmicrohttpd: %s", msg);
}

/* MHD's unescaping, except that a path holding %00 is left as it is
 * (on_headers refuses it): decoded, the NUL would silently cut the path. */
static size_t unescape(void *cls, struct MHD_Connection *c, char *s) {
    (void)cls;
    (void)c;
    if (strstr(s, "%00")) return strlen(s);
    return MHD_http_unescape(s);
}

/* ---- API keys ---- */

static void free_keys(srv_deps *d) {
    for (int i = 0; i < d->n_api_keys; i++) free(d->api_keys[i]);
    free(d->api_keys);
    d->api_keys = NULL;
    d->n_api_keys = 0;
}

/* Adds the keys of list, separated by any of seps; blanks are skipped. */
static int add_keys(srv_deps *d, const char *list, const char *seps, bct_error *err) {
    const char *p = list;
    while (*p) {
        size_t n = strcspn(p, seps);
        const char *s = p, *e = p + n;
        while (s < e && isspace((unsigned char)*s)) s++;
        while (e > s && isspace((unsigned char)e[-1])) e--;
        if (e > s) {
            char **k = realloc(d->api_keys, (size_t)(d->n_api_keys + 1) * sizeof(*k));
            if (!k) return bct_fail(err, BCT_ENOMEM, "out of memory");
            d->api_keys = k;
            if (!(k[d->n_api_keys] = strndup(s, (size_t)(e - s))))
                return bct_fail(err, BCT_ENOMEM, "out of memory");
            d->n_api_keys++;
        }
        p += n;
        if (*p) p++;
    }
    return BCT_OK;
}

static int load_keys(srv_deps *d, bct_error *err) {
    const srv_config *cfg = d->cfg;
    int rc = add_keys(d, cfg->api_key, ",", err);
    if (rc != BCT_OK || !cfg->api_key_file[0]) return rc;
    FILE *f = fopen(cfg->api_key_file, "r");
    if (!f) return bct_fail(err, BCT_EIO, "api_key_file %s: %s", cfg->api_key_file, strerror(errno));
    char *line = NULL;
    size_t cap = 0;
    int before = d->n_api_keys;
    while (rc == BCT_OK && getline(&line, &cap, f) >= 0)
        if (line[0] != '#') rc = add_keys(d, line, ",\r\n", err);
    free(line);
    fclose(f);
    if (rc == BCT_OK && d->n_api_keys == before)
        rc = bct_fail(err, BCT_EINVAL, "api_key_file %s holds no key", cfg->api_key_file);
    return rc;
}

int http_start(const http_deps *d, srv_http **out, bct_error *err) {
    struct addrinfo hints = {.ai_flags = AI_PASSIVE, .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
    struct addrinfo *ai = NULL;
    char port[16];
    snprintf(port, sizeof(port), "%d", d->cfg->port);
    int gai = getaddrinfo(d->cfg->host, port, &hints, &ai);
    if (gai != 0 || !ai)
        return bct_fail(err, BCT_EINVAL, "cannot resolve bind address \"%s\": %s", d->cfg->host,
                        gai_strerror(gai));
    srv_http *h = calloc(1, sizeof(*h));
    if (!h) {
        freeaddrinfo(ai);
        return bct_fail(err, BCT_ENOMEM, "out of memory");
    }
    h->d = *d;
    h->d.api_keys = NULL;
    h->d.n_api_keys = 0;
    int rc = load_keys(&h->d, err);
    if (rc != BCT_OK) {
        free_keys(&h->d);
        free(h);
        freeaddrinfo(ai);
        return rc;
    }
    atomic_init(&h->suspended, 0);
    atomic_init(&h->unstarted, 0);
    atomic_init(&h->handed, 0);
    atomic_init(&h->requests, 0);
    struct sockaddr_storage ss;
    memcpy(&ss, ai->ai_addr, ai->ai_addrlen);
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL | MHD_ALLOW_SUSPEND_RESUME |
                     MHD_USE_ERROR_LOG;
    if (ai->ai_family == AF_INET6) flags |= MHD_USE_IPv6;
    freeaddrinfo(ai);
    if ((rc = conn_guard_start(d->cfg->header_timeout_s, d->cfg->body_timeout_s > 0, &h->guard, err)) !=
        BCT_OK) {
        free_keys(&h->d);
        free(h);
        return rc;
    }
    h->daemon = MHD_start_daemon(
        flags, (uint16_t)d->cfg->port, NULL, NULL, on_request, h, MHD_OPTION_EXTERNAL_LOGGER,
        mhd_log, h, MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&ss, MHD_OPTION_NOTIFY_COMPLETED,
        on_completed, h, MHD_OPTION_UNESCAPE_CALLBACK, unescape, NULL, MHD_OPTION_NOTIFY_CONNECTION,
        on_connection, h,
        MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)d->cfg->connection_timeout_s,
        MHD_OPTION_CONNECTION_LIMIT, (unsigned)d->cfg->max_connections,
        /* Issue 17: one client cannot take every slot (0 = no cap), and
         * headers have a deadline that trickled bytes do not reset. */
        MHD_OPTION_PER_IP_CONNECTION_LIMIT, (unsigned)d->cfg->max_connections_per_client,
        MHD_OPTION_URI_LOG_CALLBACK, on_request_line, h,
        MHD_OPTION_END);
    if (!h->daemon) {
        conn_guard_stop(h->guard);
        free_keys(&h->d);
        free(h);
        return bct_fail(err, BCT_EIO, "cannot listen on %s:%d (address in use or not available?)",
                        d->cfg->host, d->cfg->port);
    }
    const union MHD_DaemonInfo *di = MHD_get_daemon_info(h->daemon, MHD_DAEMON_INFO_BIND_PORT);
    h->port = di ? di->port : d->cfg->port;
    *out = h;
    return BCT_OK;
}

int http_port(const srv_http *h) { return h->port; }

void http_quiesce(srv_http *h) {
    MHD_socket fd = MHD_quiesce_daemon(h->daemon);
    if (fd == MHD_INVALID_SOCKET) return;
    int fl = fcntl(fd, F_GETFL);
    if (fl >= 0) fcntl(fd, F_SETFL, fl | O_NONBLOCK);
    /* Connections the kernel completed but MHD has not accepted yet would
     * be reset by close(): take them in and serve them (draining answers
     * them), then close the listener so that later ones are refused. */
    for (;;) {
        struct sockaddr_storage ss;
        socklen_t sl = sizeof(ss);
        int c = accept4(fd, (struct sockaddr *)&ss, &sl, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (c < 0) {
            if (errno == EINTR) continue;
            break; /* EAGAIN: the queue is empty (the listener is non-blocking) */
        }
        /* MHD reports an added connection "started" later, from its own
         * thread: until then http_pending counts it here, or the drain
         * could end first and close it unanswered. */
        atomic_fetch_add(&h->handed, 1);
        if (MHD_add_connection(h->daemon, c, (struct sockaddr *)&ss, sl) != MHD_YES) {
            atomic_fetch_sub(&h->handed, 1);
            close(c);
        }
    }
    close(fd);
}

int http_suspended(srv_http *h) { return atomic_load(&h->suspended); }

int http_pending(srv_http *h) {
    /* A connection moves from handed to unstarted to requests, each move
     * adding to the next count before taking from the previous one: read
     * in the same order, one on the move is counted once or twice, never
     * missed. */
    int n = atomic_load(&h->handed);
    n += atomic_load(&h->unstarted);
    return n + atomic_load(&h->requests);
}

void http_stop(srv_http *h) {
    if (!h) return;
    MHD_stop_daemon(h->daemon);
    conn_guard_stop(h->guard);
    free_keys(&h->d);
    free(h);
}
