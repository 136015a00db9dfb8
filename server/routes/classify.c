/* classify.c - POST /classify, /predict and /: parse -> acquire the model
 * -> tokenize (job) -> queue (batcher) -> suspend; on the batcher's loop
 * thread: format -> resume.  infer_run() is that pipeline after parsing,
 * shared with /rerank. */
#include <stdlib.h>
#include <string.h>

#include "route.h"

static double ms_between(uint64_t a, uint64_t b) { return b > a ? (double)(b - a) * 1e-6 : 0; }

/* The batcher's loop thread: the job is done. */
static void on_job_done(srv_job *job) {
    infer_state *st = job->user;
    srv_req *rq = st->rq;
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
        st->format(rq, job, &b);
        route_reply_sbuf(rq, 200, &b, NULL);
        if (rq->reply.status == 200) {
            /* text-embeddings-inference's headers; times in milliseconds. */
            route_header(rq, "x-model", "%s", rq->model);
            route_header(rq, "x-compute-type", "cpu");
            route_header(rq, "x-compute-tokens", "%lld", rq->tokens);
            route_header(rq, "x-compute-characters", "%lld", job->chars);
            route_header(rq, "x-total-time", "%.3f", ms_between(rq->t0, srv_now_ns()));
            route_header(rq, "x-tokenization-time", "%.3f", st->tokenize_ms);
            route_header(rq, "x-queue-time", "%.3f", rq->queue_ms);
            route_header(rq, "x-inference-time", "%.3f", rq->inference_ms);
        }
        metrics_job(rq->d->metrics, rq->queue_ms * 1e-3, rq->inference_ms * 1e-3, job->truncated);
        break;
    }
    case JOB_FAILED:
        route_fail(rq, BCT_EIO, "inference failed: %.300s", job->error);
        break;
    case JOB_SHUTDOWN:
        route_fail(rq, BCT_EUNAVAILABLE, "the server is shutting down and could not finish this request");
        break;
    default:
        rq->reply.close = 1; /* the client is gone */
    }
    srv_req_resume(rq);
}

int infer_run(srv_req *rq, infer_state *st, const char *model_name, const srv_text *texts, int n, int flags) {
    const srv_deps *d = rq->d;
    srv_err err;
    srv_model *model = registry_acquire(d->reg, model_name);
    if (!model) {
        if (model_name)
            return route_fail(rq, BCT_ENOTFOUND,
                              "no model named \"%.100s\" is loaded (GET /models lists them)", model_name);
        return route_fail(rq, BCT_EUNAVAILABLE, "no default model is loaded");
    }
    snprintf(rq->model, sizeof(rq->model), "%s", model->name);
    uint64_t t = srv_now_ns();
    srv_job *job;
    if (job_create(model, texts, n, flags, &job, &err)) return route_fail_err(rq, &err);
    st->tokenize_ms = ms_between(t, srv_now_ns());
    st->job = job;
    st->rq = rq;
    rq->inputs = job->n;
    rq->tokens = job->tokens;
    switch (batcher_reserve(d->bat, job)) {
    case BATCHER_FULL:
        return route_fail(rq, BCT_EBUSY, "the queue is full (queue_size %d inputs); retry after a moment",
                          d->cfg->queue_size);
    case BATCHER_CLOSED:
        return route_fail(rq, BCT_EUNAVAILABLE, "the server is shutting down");
    case BATCHER_NOMEM:
        return route_fail(rq, BCT_ENOMEM, "out of memory");
    }
    job->fd = srv_req_fd(rq);
    job->done = on_job_done;
    job->user = st;
    srv_req_suspend(rq);
    /* From here the loop thread owns rq until it resumes the connection. */
    batcher_submit(d->bat, job);
    return ROUTE_SUSPEND;
}

void infer_free(infer_state *st) {
    job_free(st->job);
    st->job = NULL;
}

/* ---- the handler ---- */

typedef struct classify_state {
    infer_state inf; /* first */
    api_request api;
} classify_state;

static void format(srv_req *rq, const srv_job *job, sbuf *out) {
    classify_state *st = rq->state;
    api_format(&st->api, &job->model->m->cfg, job->logits, out);
}

static int begin(srv_req *rq) { return json_body_begin(rq); }

static int end(srv_req *rq) {
    size_t len;
    char *body = json_body_take(rq, &len);
    if (!body) return ROUTE_REPLY;
    classify_state *st = calloc(1, sizeof(*st));
    if (!st) return route_fail(rq, BCT_ENOMEM, "out of memory");
    rq->state = st;
    st->inf.format = format;
    srv_err err;
    if (api_parse((api_kind)rq->route->op, body, len, rq->d->cfg->max_inputs_per_request, &st->api, &err))
        return route_fail_err(rq, &err);
    json_body_free(rq); /* the parsed tree holds what is needed */
    int flags = (st->api.truncate ? JOB_TRUNCATE : 0) | (st->api.trunc_left ? JOB_TRUNCATE_LEFT : 0);
    return infer_run(rq, &st->inf, st->api.model, st->api.texts, st->api.n, flags);
}

static void done(srv_req *rq) {
    classify_state *st = rq->state;
    if (!st) return;
    infer_free(&st->inf);
    api_request_free(&st->api);
    free(st);
    rq->state = NULL;
}

const route_handler route_classify = {.begin = begin, .body = json_body_chunk, .end = end, .done = done};
