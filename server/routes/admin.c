/* admin.c - the /admin routes' handler: the table has matched the route
 * and checked the admin token; api_admin.h does the work (uploads, jobs,
 * model control).  A finished upload suspends the connection while the
 * job runner's intake thread validates it, and a /load while its model
 * loads. */
#include <stdlib.h>
#include <string.h>

#include "route.h"

/* admin_reply -> rq->reply. */
static int take(srv_req *rq, admin_reply *a) {
    route_reply *r = &rq->reply;
    free(r->body);
    r->body = a->body;
    a->body = NULL;
    r->len = a->len;
    r->status = a->status;
    r->error_type = a->error_type;
    r->allow = a->allow;
    r->now = a->now;
    if (a->hdr_name) route_header(rq, a->hdr_name, "%s", a->hdr_value);
    if (!r->body) return route_fail(rq, BCT_ENOMEM, "out of memory");
    return ROUTE_REPLY;
}

static int begin(srv_req *rq) {
    const srv_deps *d = rq->d;
    admin_reply a;
    int accepting = !rq->draining && lifecycle_phase(d->life) == PHASE_READY;
    admin_req *q = NULL;
    rq->body_limit = admin_upload_limit(d->admin);
    int r = admin_begin(d->admin, rq->conn, rq->route->op, rq->arg, accepting, &q, &a);
    rq->state = q;
    if (r == ADMIN_BODY) return ROUTE_BODY;
    return take(rq, &a);
}

static int body(srv_req *rq, const char *data, size_t n) { return admin_body(rq->state, data, n); }

static void on_ready(void *ud) { srv_req_resume(ud); }

static int end(srv_req *rq) {
    admin_reply a;
    if (admin_end(rq->state, &a) == ADMIN_ANSWER) {
        take(rq, &a);
        return ROUTE_REPLY;
    }
    /* Suspend first: the answer may come before admin_wait() returns. */
    srv_req_suspend(rq);
    admin_wait(rq->state, on_ready, rq);
    return ROUTE_SUSPEND;
}

static void resume(srv_req *rq) {
    admin_reply a;
    admin_take_reply(rq->state, &a);
    take(rq, &a);
}

static void done(srv_req *rq) {
    const char *model = admin_req_model(rq->state);
    if (model && !rq->model[0]) snprintf(rq->model, sizeof(rq->model), "%s", model);
    admin_req_free(rq->state);
    rq->state = NULL;
}

const route_handler route_admin = {.begin = begin, .body = body, .end = end, .resume = resume, .done = done};
