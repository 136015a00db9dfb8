/* route.h - what a route is, and the one shape every route's handler has.
 *
 * The request path through the server reads from the file names:
 *   http.c (transport: sockets, bodies, suspend/resume, headers, logs)
 *   -> routes/table.c (which route: path pattern, methods, auth class,
 *      metric label; 404/405 texts and /openapi.json come from it)
 *   -> routes/<name>.c (the handler: begin / body / end -> reply or
 *      suspend, then resume -> reply)
 *   -> job.c (tokenized inputs) -> batcher.c -> workers.c -> engine/.
 *
 * A handler's calls, all on MHD's thread unless said otherwise:
 *   begin(rq)        the headers are in.  ROUTE_BODY: feed the body to
 *                    body(); ROUTE_REPLY: rq->reply is the answer, sent
 *                    once the body is read and dropped (or at once when
 *                    rq->reply.now, or when the body announced is over
 *                    rq->body_limit; the connection then closes).
 *   body(rq, p, n)   one piece of the body: 0, or -1 to close.
 *   end(rq)          the body is complete: ROUTE_REPLY, or ROUTE_SUSPEND
 *                    after calling srv_req_suspend() (before handing the
 *                    request to another thread, which may answer at once).
 *   resume(rq)       after srv_req_resume() (any thread): fill rq->reply
 *                    (or set rq->reply.close: the client is gone).
 *   done(rq)         free the handler's state (always called).
 * NULL members: begin accepts the body, body drops it, resume and done do
 * nothing.
 */
#ifndef BCT_ROUTE_H
#define BCT_ROUTE_H

#include <stddef.h>
#include <stdint.h>

#include "access_log.h"
#include "api_admin.h"
#include "api_classify.h"
#include "batcher.h"
#include "config.h"
#include "errors.h"
#include "lifecycle.h"
#include "log.h"
#include "metrics.h"
#include "registry.h"
#include "sbuf.h"
#include "srv_limits.h"

/* What every handler may use. */
typedef struct srv_deps {
    const srv_config *cfg;
    srv_registry *reg;
    batcher *bat;
    srv_metrics *metrics;
    access_log *alog;
    srv_lifecycle *life;
    const srv_log *log;
    int workers;
    srv_admin *admin; /* the /admin routes; NULL: admin API off (404) */
    /* Filled by http_start from api_key and api_key_file. */
    char **api_keys;
    int n_api_keys;
} srv_deps;

enum { ROUTE_BODY, ROUTE_REPLY, ROUTE_SUSPEND };

/* Who may call a route. */
enum {
    AUTH_OPEN,    /* anyone: health, readiness, metrics, descriptions */
    AUTH_API_KEY, /* inference: a key of api_key / api_key_file when any is set */
    AUTH_ADMIN,   /* the admin token (admin_auth.h) */
};

/* The info handler's routes (route.op). */
enum { INFO_HEALTH, INFO_READY, INFO_MODELS, INFO_MODEL, INFO_METRICS, INFO_OPENAPI };

enum { M_GET = 1, M_POST = 2, M_DELETE = 4 }; /* M_GET admits HEAD too */

#define ROUTE_MAX_HEADERS 10
/* Bytes of a path argument ({name}, {id}); longer ones match no route. */
#define ROUTE_ARG_MAX 160

typedef struct route_reply {
    int status;             /* 0: none yet */
    const char *error_type; /* NULL on success (access log, metrics) */
    char *body;             /* malloc'ed */
    size_t len;
    const char *ctype;      /* NULL: application/json */
    const char *allow;      /* Allow header of a 405 */
    int now;                /* send before reading the body, then close */
    int close;              /* no answer: close (the client is gone) */
    int n_hdr;
    struct {
        const char *name;
        char value[160];
    } hdr[ROUTE_MAX_HEADERS];
} route_reply;

typedef struct srv_req srv_req;

typedef struct route_handler {
    int (*begin)(srv_req *rq);
    int (*body)(srv_req *rq, const char *data, size_t n);
    int (*end)(srv_req *rq);
    void (*resume)(srv_req *rq);
    void (*done)(srv_req *rq);
} route_handler;

typedef struct route {
    const char *pattern; /* "/models/{name}": one {arg} segment at most */
    unsigned methods;    /* M_* */
    const route_handler *handler;
    const char *label;   /* metric label; rows may share one */
    int auth;            /* AUTH_* */
    int op;              /* the handler's own sub-route (admin) */
    const char *summary; /* one line, for /openapi.json */
} route;

struct srv_req {
    const srv_deps *d;
    const route *route;          /* NULL: no route (404) */
    int route_index;             /* into the table; routes_count() for none */
    struct MHD_Connection *conn;
    char method[16];
    char path[SRV_PATH_LEN];
    char arg[ROUTE_ARG_MAX];     /* the {arg} of the pattern */
    char request_id[2 * SRV_REQUEST_ID_MAX + 1];
    int draining;                /* arrived while draining */
    uint64_t t0;
    long long body_limit;        /* a body announced over it is refused at once */
    route_reply reply;
    void *state;                 /* the handler's */

    /* The body, as json_body_chunk() reads it. */
    char *body;
    size_t len, cap;
    int too_large;

    /* For the access log. */
    char model[SRV_MODEL_NAME_LEN];
    int inputs;
    long long tokens;
    double queue_ms, inference_ms;
};

/* ---- the table (routes/table.c) ---- */

int routes_count(void);
const route *routes_at(int i);
/* Finds the route of path and method.  0: found (*index, arg filled);
 * else 404 or 405 with rq->reply filled from the table. */
int routes_match(srv_req *rq);
/* Metric label of route i (i == routes_count(): "other"). */
const char *routes_label(int i);
/* The OpenAPI 3 document of every route. */
void routes_openapi(sbuf *out);

/* ---- replies (routes/table.c) ---- */

/* Takes b's text as the body; returns ROUTE_REPLY. */
int route_reply_sbuf(srv_req *rq, int status, sbuf *b, const char *ctype);
/* An error body for a BCT_E* / SRV_E* code (errors.h); returns ROUTE_REPLY. */
int route_fail(srv_req *rq, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
int route_fail_err(srv_req *rq, const srv_err *e);
/* One more response header (name must be a literal). */
void route_header(srv_req *rq, const char *name, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void route_reply_free(route_reply *r);

/* ---- transport (http.c) ---- */

const char *srv_req_header(srv_req *rq, const char *name);
/* The client socket, or -1. */
int srv_req_fd(srv_req *rq);
/* Call before handing rq to another thread; then return ROUTE_SUSPEND. */
void srv_req_suspend(srv_req *rq);
/* From any thread, once: the handler's resume() then runs on MHD's. */
void srv_req_resume(srv_req *rq);

/* ---- inference (routes/classify.c) ---- */

typedef struct infer_state {
    srv_req *rq;
    srv_job *job;
    double tokenize_ms;
    /* The 200 body, on the batcher's loop thread. */
    void (*format)(srv_req *rq, const srv_job *job, sbuf *out);
} infer_state;

/* Acquires the model (NULL: the default), tokenizes texts (flags:
 * JOB_TRUNCATE*) and queues them; the answer is st->format's once the
 * logits are in.  Returns ROUTE_SUSPEND, or ROUTE_REPLY with an error. */
int infer_run(srv_req *rq, infer_state *st, const char *model, const srv_text *texts, int n, int flags);
void infer_free(infer_state *st);

/* ---- the handlers ---- */

extern const route_handler route_classify;  /* POST /classify, /predict, / */
extern const route_handler route_rerank;    /* POST /rerank */
extern const route_handler route_tokenize;  /* POST /tokenize */
extern const route_handler route_info;      /* GET /health, /ready, /models..., /metrics, ... */
extern const route_handler route_admin;     /* /admin/... */

/* The JSON routes' shared body reader (routes/json_body.c). */
int json_body_begin(srv_req *rq);
int json_body_chunk(srv_req *rq, const char *data, size_t n);
/* The body read (NUL-terminated), or NULL after a 413 was decided
 * (rq->reply filled): over max_body_bytes, or holding more JSON values
 * than max_inputs_per_request inputs need (srv_limits.h). */
char *json_body_take(srv_req *rq, size_t *len);
void json_body_free(srv_req *rq);

#endif
