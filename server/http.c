#include "http.h"

#include <arpa/inet.h>
#include <microhttpd.h>
#include <netdb.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

#include "api_classify.h"
#include "api_info.h"
#include "conn_guard.h"
#include "errors.h"
#include "job.h"
#include "sbuf.h"

struct srv_http {
    http_deps d;
    struct MHD_Daemon *daemon;
    int port;
    atomic_int suspended;
    conn_guard *guard; /* header deadlines (issue 17), NULL when off */
};

enum { RQ_BODY, RQ_QUEUED, RQ_DONE, RQ_ANSWERED };

/* Per request state, MHD's *con_cls.  While the request is queued (its
 * connection suspended) only the batcher's loop thread touches it. */
typedef struct http_req {
    srv_http *h;
    struct MHD_Connection *conn;
    int route;
    int counted;  /* lifecycle_enter() said so: leave on completion */
    int draining; /* arrived while draining: close the connection after */
    int state;
    uint64_t t0;
    char method[16];
    char path[256];
    char remote[64];

    char *body; /* NUL-terminated */
    size_t len, cap;
    size_t received; /* every body byte that arrived, kept or not */
    int too_large;
    int discard;       /* the body is read and dropped */
    int get;           /* a GET route: answer once the request is in */
    srv_err early;     /* decided from the headers, sent at the end */
    const char *allow; /* Allow header of a 405 */

    api_request api;
    srv_job *job;
    double tokenize_ms, queue_ms, inference_ms;
    int inputs;
    long long tokens, chars;
    char model[128];

    /* The answer prepared by the loop thread. */
    int resp_status;
    const char *resp_error_type;
    char *resp;
    size_t resp_len;
    int cancelled;

    /* /admin: the admin module's request, or its answer decided from
     * the headers (sent once the body is read and dropped). */
    admin_req *admin;
    int admin_early;
    size_t discard_limit; /* of an early-answered /admin body */
    admin_reply areply;
    const char *xhdr_name; /* one more response header, or NULL */
    char xhdr_value[160];

    int status; /* sent */
    const char *error_type;
    size_t bytes_out;
    int suspended;
} http_req;

static const struct {
    const char *path;
    int route;
    int post; /* 1: POST only; 0: GET and HEAD */
} routes[] = {
    {"/classify", ROUTE_CLASSIFY, 1}, {"/predict", ROUTE_PREDICT, 1}, {"/health", ROUTE_HEALTH, 0},
    {"/ready", ROUTE_READY, 0},       {"/models", ROUTE_MODELS, 0},   {"/metrics", ROUTE_METRICS, 0},
};

static double ms_between(uint64_t a, uint64_t b) { return b > a ? (double)(b - a) * 1e-6 : 0; }

/* ---- responses ---- */

/* Queues body (malloc'ed, taken over) with status. */
static enum MHD_Result respond(http_req *rq, int status, char *body, size_t len, const char *ctype,
                               const char *allow) {
    struct MHD_Response *r = MHD_create_response_from_buffer(len, body, MHD_RESPMEM_MUST_FREE);
    if (!r) {
        free(body);
        return MHD_NO;
    }
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, ctype);
    if (allow) MHD_add_response_header(r, MHD_HTTP_HEADER_ALLOW, allow);
    if (rq->xhdr_name) MHD_add_response_header(r, rq->xhdr_name, rq->xhdr_value);
    if (status == 429 || status == 503) MHD_add_response_header(r, MHD_HTTP_HEADER_RETRY_AFTER, "1");
    if (rq->draining || lifecycle_phase(rq->h->d.life) == PHASE_DRAINING)
        MHD_add_response_header(r, MHD_HTTP_HEADER_CONNECTION, "close");
    if (rq->job && status == 200) {
        /* text-embeddings-inference's timing headers, in milliseconds. */
        char v[64];
        MHD_add_response_header(r, "x-model", rq->model);
        MHD_add_response_header(r, "x-compute-type", "cpu");
        snprintf(v, sizeof(v), "%lld", rq->tokens);
        MHD_add_response_header(r, "x-compute-tokens", v);
        snprintf(v, sizeof(v), "%lld", rq->chars);
        MHD_add_response_header(r, "x-compute-characters", v);
        snprintf(v, sizeof(v), "%.3f", ms_between(rq->t0, srv_now_ns()));
        MHD_add_response_header(r, "x-total-time", v);
        snprintf(v, sizeof(v), "%.3f", rq->tokenize_ms);
        MHD_add_response_header(r, "x-tokenization-time", v);
        snprintf(v, sizeof(v), "%.3f", rq->queue_ms);
        MHD_add_response_header(r, "x-queue-time", v);
        snprintf(v, sizeof(v), "%.3f", rq->inference_ms);
        MHD_add_response_header(r, "x-inference-time", v);
    }
    rq->status = status;
    rq->bytes_out = len;
    rq->state = RQ_ANSWERED;
    enum MHD_Result ret = MHD_queue_response(rq->conn, (unsigned)status, r);
    MHD_destroy_response(r);
    return ret;
}

static enum MHD_Result respond_sbuf(http_req *rq, int status, sbuf *b, const char *ctype) {
    size_t len;
    char *body = sbuf_take(b, &len);
    if (!body) return MHD_NO;
    return respond(rq, status, body, len, ctype, NULL);
}

static void error_body(const srv_err *e, char **body, size_t *len) {
    sbuf b;
    sbuf_init(&b);
    srv_err_json(e, &b);
    *body = sbuf_take(&b, len);
}

static enum MHD_Result respond_error(http_req *rq, const srv_err *e, const char *allow) {
    char *body;
    size_t len;
    error_body(e, &body, &len);
    if (!body) return MHD_NO;
    rq->error_type = e->type;
    return respond(rq, e->status, body, len, "application/json", allow);
}

static enum MHD_Result fail(http_req *rq, int status, const char *type, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static enum MHD_Result fail(http_req *rq, int status, const char *type, const char *fmt, ...) {
    srv_err e = {.status = status, .type = type};
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e.msg, sizeof(e.msg), fmt, ap);
    va_end(ap);
    return respond_error(rq, &e, NULL);
}

/* ---- the job's way back (batcher loop thread) ---- */

static void set_answer_error(http_req *rq, int status, const char *type, const char *msg) {
    srv_err e = {.status = status, .type = type};
    snprintf(e.msg, sizeof(e.msg), "%.*s", (int)sizeof(e.msg) - 1, msg);
    rq->resp_status = status;
    rq->resp_error_type = type;
    error_body(&e, &rq->resp, &rq->resp_len);
}

static void on_job_done(srv_job *job) {
    http_req *rq = job->user;
    srv_http *h = rq->h;
    if (job->t_first_start) {
        rq->queue_ms = ms_between(job->t_admit, job->t_first_start);
        rq->inference_ms = ms_between(job->t_first_start, job->t_last_end);
    } else {
        rq->queue_ms = ms_between(job->t_admit, srv_now_ns());
        rq->inference_ms = -1;
    }
    switch (job->status) {
    case JOB_OK: {
        sbuf b;
        sbuf_init(&b);
        api_format(&rq->api, &job->model->m->cfg, job->logits, &b);
        rq->resp = sbuf_take(&b, &rq->resp_len);
        rq->resp_status = 200;
        if (!rq->resp) set_answer_error(rq, 500, ERR_INTERNAL, "out of memory");
        metrics_job(h->d.metrics, rq->queue_ms * 1e-3, rq->inference_ms * 1e-3, job->truncated);
        break;
    }
    case JOB_FAILED: {
        char msg[600];
        snprintf(msg, sizeof(msg), "inference failed: %s", job->error);
        set_answer_error(rq, 500, ERR_INTERNAL, msg);
        break;
    }
    case JOB_SHUTDOWN:
        set_answer_error(rq, 503, ERR_UNAVAILABLE,
                         "the server is shutting down and could not finish this request");
        break;
    default:
        rq->cancelled = 1;
    }
    rq->state = RQ_DONE;
    MHD_resume_connection(rq->conn);
}

/* ---- request handling (MHD thread) ---- */

/* application/json, optionally with "; charset=utf-8". */
static int is_json_type(const char *ct) {
    if (!ct) return 0;
    while (*ct == ' ' || *ct == '\t') ct++;
    if (strncasecmp(ct, "application/json", 16) != 0) return 0;
    const char *p = ct + 16;
    for (;;) {
        while (*p == ' ' || *p == '\t') p++;
        if (!*p) return 1;
        if (*p != ';') return 0;
        p++;
        while (*p == ' ' || *p == '\t') p++;
        const char *name = p;
        while (*p && *p != '=' && *p != ';') p++;
        size_t nlen = (size_t)(p - name);
        while (nlen && (name[nlen - 1] == ' ' || name[nlen - 1] == '\t')) nlen--;
        const char *val = "";
        size_t vlen = 0;
        if (*p == '=') {
            p++;
            while (*p == ' ' || *p == '\t') p++;
            int quoted = *p == '"';
            if (quoted) p++;
            val = p;
            while (*p && (quoted ? *p != '"' : (*p != ';' && *p != ' ' && *p != '\t'))) p++;
            vlen = (size_t)(p - val);
            if (quoted && *p == '"') p++;
        }
        if (nlen == 7 && !strncasecmp(name, "charset", 7) &&
            !((vlen == 5 && !strncasecmp(val, "utf-8", 5)) || (vlen == 4 && !strncasecmp(val, "utf8", 4))))
            return 0;
        while (*p && *p != ';') p++;
    }
}

static enum MHD_Result answer_get(http_req *rq) {
    srv_http *h = rq->h;
    sbuf b;
    sbuf_init(&b);
    int status = 200;
    const char *ctype = "application/json";
    switch (rq->route) {
    case ROUTE_HEALTH:
        sbuf_puts(&b, "{\"status\":\"ok\"}");
        break;
    case ROUTE_READY:
        status = api_ready_json(lifecycle_phase(h->d.life), &b);
        if (status != 200) rq->error_type = ERR_UNAVAILABLE;
        break;
    case ROUTE_MODELS:
        status = api_models_json(h->d.reg, &b);
        break;
    default: { /* ROUTE_METRICS */
        metrics_gauges g = {.queue_depth = batcher_queue_depth(h->d.bat),
                            .queue_capacity = h->d.cfg->queue_size,
                            .in_flight = batcher_in_flight(h->d.bat),
                            .active = lifecycle_busy(h->d.life),
                            .workers = h->d.workers,
                            .ready = lifecycle_phase(h->d.life) == PHASE_READY};
        if (registry_list(h->d.reg, &g.models, &g.n_models, &g.default_index) != 0) g.n_models = 0;
        g.store_failed = registry_failure_count(h->d.reg);
        metrics_render(h->d.metrics, &g, &b);
        for (int i = 0; i < g.n_models; i++) registry_release(g.models[i]);
        free(g.models);
        ctype = "text/plain; version=0.0.4; charset=utf-8";
    }
    }
    if (b.oom) {
        sbuf_free(&b);
        return fail(rq, 500, ERR_INTERNAL, "out of memory");
    }
    return respond_sbuf(rq, status, &b, ctype);
}

/* Content-Length, or -1 when absent or not a number. */
static long long content_length(http_req *rq) {
    const char *cl = MHD_lookup_connection_value(rq->conn, MHD_HEADER_KIND,
                                                 MHD_HTTP_HEADER_CONTENT_LENGTH);
    if (!cl) return -1;
    char *end;
    unsigned long long v = strtoull(cl, &end, 10);
    return end != cl && !*end && v < (1ull << 62) ? (long long)v : -1;
}

/* Answers decided from the headers are sent once the request is fully
 * received: an answer queued earlier makes MHD close the connection, and
 * keep-alive clients (health checks, scrapers) would reconnect every
 * time.  Meanwhile any body is read and dropped.  Only when the announced
 * body is over the limit is the answer sent at once, and the connection
 * closed instead of reading it. */
static enum MHD_Result answer_later(http_req *rq, int status, const char *type, const char *allow,
                                    const char *fmt, ...) __attribute__((format(printf, 5, 6)));

static enum MHD_Result answer_later(http_req *rq, int status, const char *type, const char *allow,
                                    const char *fmt, ...) {
    va_list ap;
    rq->early.status = status;
    rq->early.type = type;
    va_start(ap, fmt);
    vsnprintf(rq->early.msg, sizeof(rq->early.msg), fmt, ap);
    va_end(ap);
    rq->allow = allow;
    if (content_length(rq) > rq->h->d.cfg->max_body_bytes) return respond_error(rq, &rq->early, allow);
    rq->discard = 1;
    rq->state = RQ_BODY;
    return MHD_YES;
}

/* ---- /admin (api_admin.h) ---- */

static enum MHD_Result respond_admin(http_req *rq, admin_reply *rep) {
    char *body = rep->body;
    rep->body = NULL;
    rq->error_type = rep->error_type;
    if (rep->hdr_name) {
        rq->xhdr_name = rep->hdr_name;
        snprintf(rq->xhdr_value, sizeof(rq->xhdr_value), "%s", rep->hdr_value);
    }
    if (!body) return MHD_NO;
    return respond(rq, rep->status, body, rep->len, "application/json", rep->allow);
}

/* The intake thread has the answer to a suspended upload. */
static void on_admin_ready(void *ud) {
    http_req *rq = ud;
    rq->state = RQ_DONE;
    MHD_resume_connection(rq->conn);
}

/* An answer decided from the headers of an /admin request.  Uploads are
 * large, and an upstream that answers and closes before reading the body
 * is a 502 to a proxy that streams it (nginx's /admin route): so, as in
 * answer_later(), the body is read and dropped first, up to the upload
 * limit.  Sent at once instead: to a client waiting for "100 Continue"
 * (it then never sends the body), and a 413 for a body announced over the
 * limit. */
static enum MHD_Result admin_answer_later(http_req *rq) {
    srv_http *h = rq->h;
    const char *expect = MHD_lookup_connection_value(rq->conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_EXPECT);
    long long limit = h->d.admin ? admin_upload_limit(h->d.admin) : h->d.cfg->max_body_bytes;
    if (rq->areply.now || (expect && !strcasecmp(expect, "100-continue")) || content_length(rq) > limit)
        return respond_admin(rq, &rq->areply);
    rq->admin_early = 1;
    rq->discard_limit = (size_t)limit + (1u << 20);
    return MHD_YES;
}

static enum MHD_Result on_admin_headers(http_req *rq, const char *method) {
    srv_http *h = rq->h;
    int accepting = !rq->draining && lifecycle_phase(h->d.life) == PHASE_READY;
    int r = admin_begin(h->d.admin, rq->conn, method, rq->path, accepting, &rq->admin, &rq->areply);
    rq->state = RQ_BODY;
    return r == ADMIN_BODY ? MHD_YES : admin_answer_later(rq);
}

static enum MHD_Result on_admin_body_done(http_req *rq) {
    if (rq->admin_early) return respond_admin(rq, &rq->areply);
    if (admin_end(rq->admin, &rq->areply) == ADMIN_ANSWER) return respond_admin(rq, &rq->areply);
    /* Suspend first: the answer may come before admin_wait() returns. */
    rq->state = RQ_QUEUED;
    rq->suspended = 1;
    atomic_fetch_add(&rq->h->suspended, 1);
    MHD_suspend_connection(rq->conn);
    admin_wait(rq->admin, on_admin_ready, rq);
    return MHD_YES;
}

/* First call: headers are in.  Decides the route and what can be decided
 * without the body; the answer itself comes with the last call. */
static enum MHD_Result on_headers(http_req *rq, const char *method) {
    srv_http *h = rq->h;
    const srv_config *cfg = h->d.cfg;
    int post = -1;
    if (!strcmp(rq->path, "/admin") || !strncmp(rq->path, "/admin/", 7)) {
        rq->route = ROUTE_ADMIN;
        return on_admin_headers(rq, method);
    }
    for (size_t i = 0; i < sizeof(routes) / sizeof(routes[0]); i++)
        if (!strcmp(rq->path, routes[i].path)) {
            rq->route = routes[i].route;
            post = routes[i].post;
        }
    if (post < 0) {
        rq->route = ROUTE_OTHER;
        return answer_later(rq, 404, ERR_NOT_FOUND, NULL,
                            "no route %.200s (routes: POST /classify, POST /predict, GET /health, "
                            "GET /ready, GET /models, GET /metrics)",
                            rq->path);
    }
    int get_like = !strcmp(method, "GET") || !strcmp(method, "HEAD");
    if (post ? strcmp(method, "POST") != 0 : !get_like)
        return answer_later(rq, 405, ERR_METHOD, post ? "POST" : "GET, HEAD",
                            "%s does not accept %.16s; use %s", rq->path, method,
                            post ? "POST" : "GET");
    if (!post) {
        rq->get = 1;
        rq->discard = 1;
        rq->state = RQ_BODY;
        return MHD_YES;
    }
    int phase = lifecycle_phase(h->d.life);
    if (phase == PHASE_LOADING)
        return answer_later(rq, 503, ERR_UNAVAILABLE, NULL, "models are loading; retry shortly");
    if (rq->draining)
        return answer_later(rq, 503, ERR_UNAVAILABLE, NULL, "the server is shutting down");
    const char *ct = MHD_lookup_connection_value(rq->conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_TYPE);
    if (!is_json_type(ct))
        return answer_later(rq, 415, ERR_MEDIA_TYPE, NULL,
                            "Content-Type must be application/json, got %.100s", ct ? ct : "none");
    const char *enc = MHD_lookup_connection_value(rq->conn, MHD_HEADER_KIND,
                                                  MHD_HTTP_HEADER_CONTENT_ENCODING);
    if (enc && strcasecmp(enc, "identity") != 0)
        return answer_later(rq, 415, ERR_MEDIA_TYPE, NULL,
                            "Content-Encoding %.60s is not supported; send the body uncompressed",
                            enc);
    long long want = content_length(rq);
    if (want > cfg->max_body_bytes)
        return fail(rq, 413, ERR_TOO_LARGE, "the body is %lld bytes, more than max_body_bytes (%d)",
                    want, cfg->max_body_bytes);
    rq->cap = (want > 0 ? (size_t)want : 4096) + 1;
    rq->body = malloc(rq->cap);
    if (!rq->body) return fail(rq, 500, ERR_INTERNAL, "out of memory");
    rq->body[0] = '\0';
    rq->state = RQ_BODY;
    return MHD_YES;
}

static enum MHD_Result on_body_chunk(http_req *rq, const char *data, size_t n) {
    size_t max = (size_t)rq->h->d.cfg->max_body_bytes;
    rq->received += n;
    if (rq->admin_early) return rq->received > rq->discard_limit ? MHD_NO : MHD_YES;
    if (rq->admin) return admin_body(rq->admin, data, n) == 0 ? MHD_YES : MHD_NO;
    if (rq->discard) return rq->received > 2 * max + (1u << 20) ? MHD_NO : MHD_YES;
    if (!rq->too_large && rq->len + n > max) {
        /* Chunked uploads have no Content-Length to check in advance.
         * MHD can only answer once the body is read, so the rest is
         * discarded up to a bound, past which the connection is cut. */
        rq->too_large = 1;
        free(rq->body);
        rq->body = NULL;
        rq->len = rq->cap = 0;
    }
    if (rq->too_large) return rq->received > 2 * max + (1u << 20) ? MHD_NO : MHD_YES;
    if (rq->len + n + 1 > rq->cap) {
        size_t cap = rq->cap * 2;
        while (cap < rq->len + n + 1) cap *= 2;
        if (cap > max + 1) cap = max + 1;
        char *p = realloc(rq->body, cap);
        if (!p) return MHD_NO;
        rq->body = p;
        rq->cap = cap;
    }
    memcpy(rq->body + rq->len, data, n);
    rq->len += n;
    rq->body[rq->len] = '\0';
    return MHD_YES;
}

/* The body is complete: parse, tokenize, queue. */
static enum MHD_Result on_body_done(http_req *rq) {
    srv_http *h = rq->h;
    const srv_config *cfg = h->d.cfg;
    srv_err err;
    if (rq->too_large)
        return fail(rq, 413, ERR_TOO_LARGE, "the body is more than max_body_bytes (%d)",
                    cfg->max_body_bytes);
    api_kind kind = rq->route == ROUTE_PREDICT ? API_PREDICT : API_CLASSIFY;
    if (api_parse(kind, rq->body, rq->len, cfg->max_inputs_per_request, &rq->api, &err))
        return respond_error(rq, &err, NULL);
    free(rq->body); /* the parsed tree holds what is needed */
    rq->body = NULL;
    srv_model *model = registry_acquire(h->d.reg, rq->api.model);
    if (!model) {
        if (rq->api.model)
            return fail(rq, 404, ERR_MODEL_NOT_FOUND,
                        "no model named \"%.100s\" is loaded (GET /models lists them)",
                        rq->api.model);
        return fail(rq, 503, ERR_UNAVAILABLE, "no default model is loaded");
    }
    snprintf(rq->model, sizeof(rq->model), "%s", model->name);
    uint64_t t = srv_now_ns();
    srv_job *job;
    if (job_create(model, rq->api.texts, rq->api.n, rq->api.truncate, &job, &err))
        return respond_error(rq, &err, NULL);
    rq->tokenize_ms = ms_between(t, srv_now_ns());
    rq->job = job;
    rq->inputs = job->n;
    rq->tokens = job->tokens;
    rq->chars = job->chars;
    switch (batcher_reserve(h->d.bat, job->n)) {
    case BATCHER_FULL:
        return fail(rq, 429, ERR_OVERLOADED,
                    "the queue is full (queue_size %d inputs); retry after a moment",
                    cfg->queue_size);
    case BATCHER_CLOSED:
        return fail(rq, 503, ERR_UNAVAILABLE, "the server is shutting down");
    }
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(rq->conn, MHD_CONNECTION_INFO_CONNECTION_FD);
    job->fd = ci ? ci->connect_fd : -1;
    job->done = on_job_done;
    job->user = rq;
    rq->state = RQ_QUEUED;
    rq->suspended = 1;
    atomic_fetch_add(&h->suspended, 1);
    MHD_suspend_connection(rq->conn);
    /* From here the loop thread owns rq until it resumes the connection. */
    batcher_submit(h->d.bat, job);
    return MHD_YES;
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

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version, const char *upload_data,
                                  size_t *upload_data_size, void **con_cls) {
    srv_http *h = cls;
    http_req *rq = *con_cls;
    (void)version;
    if (!rq) {
        if (!(rq = calloc(1, sizeof(*rq)))) return MHD_NO;
        *con_cls = rq;
        rq->h = h;
        rq->conn = conn;
        rq->t0 = srv_now_ns();
        rq->route = ROUTE_OTHER;
        rq->queue_ms = rq->inference_ms = -1;
        rq->inputs = -1;
        snprintf(rq->method, sizeof(rq->method), "%s", method);
        snprintf(rq->path, sizeof(rq->path), "%s", url);
        client_address(conn, rq->remote, sizeof(rq->remote));
        rq->counted = lifecycle_enter(h->d.life);
        rq->draining = !rq->counted;
        conn_guard_headers_in(conn);
        return on_headers(rq, method);
    }
    switch (rq->state) {
    case RQ_BODY:
        if (*upload_data_size) {
            enum MHD_Result r = on_body_chunk(rq, upload_data, *upload_data_size);
            *upload_data_size = 0;
            return r;
        }
        if (rq->route == ROUTE_ADMIN) return on_admin_body_done(rq);
        if (rq->early.status) return respond_error(rq, &rq->early, rq->allow);
        if (rq->get) return answer_get(rq);
        return on_body_done(rq);
    case RQ_DONE: /* resumed */
        if (rq->suspended) {
            rq->suspended = 0;
            atomic_fetch_sub(&h->suspended, 1);
        }
        if (rq->cancelled) return MHD_NO; /* the client is gone: close */
        if (rq->admin) {
            admin_take_reply(rq->admin, &rq->areply);
            return respond_admin(rq, &rq->areply);
        }
        {
            char *body = rq->resp;
            rq->resp = NULL;
            rq->error_type = rq->resp_error_type;
            return respond(rq, rq->resp_status, body, rq->resp_len, "application/json", NULL);
        }
    default:
        return MHD_NO; /* not reached: MHD stops calling once answered */
    }
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                         enum MHD_RequestTerminationCode toe) {
    srv_http *h = cls;
    http_req *rq = *con_cls;
    (void)conn;
    if (!rq) return;
    *con_cls = NULL;
    if (rq->suspended) atomic_fetch_sub(&h->suspended, 1);
    /* 499 (nginx's "client closed request") when no answer went out. */
    int status = rq->status ? rq->status : 499;
    (void)toe;
    double total_ms = ms_between(rq->t0, srv_now_ns());
    metrics_request(h->d.metrics, rq->route, status, total_ms * 1e-3);
    access_entry e = {
        .remote = rq->remote[0] ? rq->remote : NULL,
        .method = rq->method,
        .path = rq->path,
        .status = status,
        .error_type = rq->error_type,
        .model = rq->model[0] ? rq->model : admin_req_model(rq->admin),
        .inputs = rq->inputs,
        .tokens = rq->tokens,
        .queue_ms = rq->queue_ms,
        .inference_ms = rq->inference_ms,
        .total_ms = total_ms,
        .bytes_in = rq->received,
        .bytes_out = rq->bytes_out,
    };
    access_log_write(h->d.alog, &e);
    if (rq->counted) lifecycle_leave(h->d.life);
    job_free(rq->job);
    admin_req_free(rq->admin);
    admin_reply_free(&rq->areply);
    api_request_free(&rq->api);
    free(rq->body);
    free(rq->resp);
    free(rq);
}

static void mhd_log(void *cls, const char *fmt, va_list ap) {
    srv_http *h = cls;
    char msg[512];
    vsnprintf(msg, sizeof(msg), fmt, ap);
    size_t n = strlen(msg);
    while (n && (msg[n - 1] == '\n' || msg[n - 1] == '\r')) msg[--n] = '\0';
    srv_logf(h->d.log, SRV_LOG_DEBUG, "libmicrohttpd: %s", msg);
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
    atomic_init(&h->suspended, 0);
    struct sockaddr_storage ss;
    memcpy(&ss, ai->ai_addr, ai->ai_addrlen);
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL | MHD_ALLOW_SUSPEND_RESUME |
                     MHD_USE_ERROR_LOG;
    if (ai->ai_family == AF_INET6) flags |= MHD_USE_IPv6;
    freeaddrinfo(ai);
    int grc = conn_guard_start(d->cfg->header_timeout_s, &h->guard, err);
    if (grc != BCT_OK) {
        free(h);
        return grc;
    }
    h->daemon = MHD_start_daemon(
        flags, (uint16_t)d->cfg->port, NULL, NULL, on_request, h, MHD_OPTION_EXTERNAL_LOGGER,
        mhd_log, h, MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&ss, MHD_OPTION_NOTIFY_COMPLETED,
        on_completed, h,
        MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)d->cfg->connection_timeout_s,
        MHD_OPTION_CONNECTION_LIMIT, (unsigned)d->cfg->max_connections,
        /* Issue 17: one client cannot take every slot (0 = no cap), and
         * headers have a deadline that trickled bytes do not reset. */
        MHD_OPTION_PER_IP_CONNECTION_LIMIT, (unsigned)d->cfg->max_connections_per_client,
        MHD_OPTION_NOTIFY_CONNECTION, conn_guard_notify, h->guard,
        MHD_OPTION_URI_LOG_CALLBACK, conn_guard_uri_log, h->guard,
        MHD_OPTION_END);
    if (!h->daemon) {
        conn_guard_stop(h->guard);
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

int http_suspended(srv_http *h) { return atomic_load(&h->suspended); }

void http_stop(srv_http *h) {
    if (!h) return;
    MHD_stop_daemon(h->daemon);
    conn_guard_stop(h->guard);
    free(h);
}
