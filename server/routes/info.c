/* info.c - the GET routes: /health, /ready, /models, /models/{name},
 * /metrics, /openapi.json (route.op says which). */
#include <stdlib.h>

#include "api_info.h"
#include "errors.h"
#include "model_store.h"
#include "route.h"

/* These bodies are not the error shape (a 503 /ready still says its
 * status), but their status comes from the one mapping. */
static int info_status(int rc) { return rc == BCT_OK ? 200 : srv_err_status(rc, NULL); }

static int end(srv_req *rq) {
    const srv_deps *d = rq->d;
    sbuf b;
    sbuf_init(&b);
    int status = 200;
    const char *ctype = NULL;
    switch (rq->route->op) {
    case INFO_HEALTH:
        sbuf_puts(&b, "{\"status\":\"ok\"}");
        break;
    case INFO_READY:
        status = info_status(api_ready_json(lifecycle_phase(d->life), &b));
        break;
    case INFO_MODELS:
        status = info_status(api_models_json(d->reg, &b));
        break;
    case INFO_MODEL: {
        int in_store = d->cfg->model_store[0] && store_name_check(rq->arg, NULL) == BCT_OK &&
                       store_kind(d->cfg->model_store, rq->arg) != STORE_ABSENT;
        int rc = api_model_json(d->reg, rq->arg, lifecycle_phase(d->life), in_store, &b);
        status = info_status(rc);
        if (rc == BCT_ENOTFOUND) {
            sbuf_free(&b);
            return route_fail(rq, BCT_ENOTFOUND, "no model named \"%.100s\" (GET /models lists them)",
                              rq->arg);
        }
        break;
    }
    case INFO_OPENAPI:
        routes_openapi(&b);
        break;
    default: { /* INFO_METRICS */
        metrics_gauges g = {.queue_depth = batcher_queue_depth(d->bat),
                            .queue_capacity = d->cfg->queue_size,
                            .in_flight = batcher_in_flight(d->bat),
                            .active = lifecycle_busy(d->life),
                            .workers = d->workers,
                            .ready = lifecycle_phase(d->life) == PHASE_READY};
        if (registry_list(d->reg, &g.models, &g.n_models, &g.default_index) != 0) g.n_models = 0;
        g.store_failed = registry_failure_count(d->reg);
        metrics_render(d->metrics, &g, &b);
        for (int i = 0; i < g.n_models; i++) registry_release(g.models[i]);
        free(g.models);
        ctype = "text/plain; version=0.0.4; charset=utf-8";
    }
    }
    if (b.oom) {
        sbuf_free(&b);
        return route_fail(rq, BCT_ENOMEM, "out of memory");
    }
    route_reply_sbuf(rq, status, &b, ctype);
    if (status == 503) srv_err_status(BCT_EUNAVAILABLE, &rq->reply.error_type);
    return ROUTE_REPLY;
}

const route_handler route_info = {.end = end};
