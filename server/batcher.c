#include "batcher.h"

#include <errno.h>
#include <stdio.h>
#include <uv.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* What the batcher keeps per job (job->slot), allocated by
 * batcher_reserve() and freed just before job->done runs. */
struct batcher_slot {
    int pending;   /* inputs without logits yet */
    int running;   /* inputs inside running batches */
    int cancelled; /* JOB_CANCELLED or JOB_SHUTDOWN, or 0 */
    int watching;  /* poll is initialised */
    uv_poll_t poll; /* disconnect watch on job->fd */
    srv_job *next; /* inbox link */
};

/* One forward pass.  At most one per worker exists at a time, so the
 * batcher allocates them once. */
typedef struct batch {
    srv_task task; /* first: the worker gets &task */
    batcher *b;
    const bert_model *model;
    srv_input **items;
    bert_seq *seqs;
    float *logits;
    size_t logits_cap; /* floats */
    int n;
    long long tokens;
    int failed;
    char error[sizeof(((bct_error *)0)->msg)];
    uint64_t t_start, t_end;
    struct batch *next;
} batch;

struct batcher {
    batcher_opts o;
    int n_workers;
    int n_batches;
    uv_loop_t loop;
    uv_async_t wake;
    uv_timer_t timer;
    uv_thread_t thread;
    batch *all;

    /* Shared with other threads, under mu. */
    pthread_mutex_t mu;
    pthread_cond_t idle_cv;
    srv_job *inbox_head, *inbox_tail;
    batch *done; /* finished batches */
    int want_flush, want_cancel, want_stop;
    int closed;      /* reservations refused */
    int outstanding; /* jobs reserved and not done */
    atomic_int depth; /* inputs reserved and not in a batch (written under mu or on the loop) */

    /* Loop thread only. */
    srv_input *q_head, *q_tail;
    batch *free_batches;
    int busy; /* batches running */
    int flushing, cancelling;
};

static void dispatch(batcher *b);

static void depth_sub(batcher *b, int n) { atomic_fetch_sub_explicit(&b->depth, n, memory_order_relaxed); }

/* ---- FIFO of inputs (loop thread) ---- */

static void q_push(batcher *b, srv_input *in) {
    in->next = NULL;
    in->prev = b->q_tail;
    if (b->q_tail) b->q_tail->next = in;
    else b->q_head = in;
    b->q_tail = in;
    in->queued = 1;
}

static void q_unlink(batcher *b, srv_input *in) {
    if (in->prev) in->prev->next = in->next;
    else b->q_head = in->next;
    if (in->next) in->next->prev = in->prev;
    else b->q_tail = in->prev;
    in->prev = in->next = NULL;
    in->queued = 0;
}

/* ---- finishing jobs (loop thread) ---- */

static void deliver(batcher *b, srv_job *job) {
    free(job->slot);
    job->slot = NULL;
    job->done(job); /* the job may be gone after this */
    pthread_mutex_lock(&b->mu);
    if (--b->outstanding == 0) pthread_cond_broadcast(&b->idle_cv);
    pthread_mutex_unlock(&b->mu);
}

static void on_watch_closed(uv_handle_t *h) {
    srv_job *job = h->data;
    deliver(h->loop->data, job);
}

static void finish_job(batcher *b, srv_job *job) {
    if (job->slot->cancelled) job->status = job->slot->cancelled;
    else if (job->status != JOB_FAILED) job->status = JOB_OK;
    if (job->slot->watching) {
        /* The socket goes back to MHD only after libuv has let go of it. */
        job->slot->watching = 0;
        uv_close((uv_handle_t *)&job->slot->poll, on_watch_closed);
        return;
    }
    deliver(b, job);
}

/* Drops the job's queued inputs; it finishes once none is running. */
static void cancel_job(batcher *b, srv_job *job, int why) {
    if (job->slot->cancelled) return;
    job->slot->cancelled = why;
    if (job->slot->watching) uv_poll_stop(&job->slot->poll);
    int dropped = 0;
    for (int i = 0; i < job->n; i++)
        if (job->in[i].queued) {
            q_unlink(b, &job->in[i]);
            dropped++;
        }
    job->slot->pending -= dropped;
    depth_sub(b, dropped);
    if (why == JOB_CANCELLED) metrics_dropped(b->o.metrics);
    if (job->slot->running == 0) finish_job(b, job);
}

static void on_hangup(uv_poll_t *p, int status, int events) {
    srv_job *job = p->data;
    batcher *b = p->loop->data;
    (void)status;
    (void)events; /* only UV_DISCONNECT was asked for; errors mean gone too */
    srv_logf(b->o.log, SRV_LOG_DEBUG, "client of a queued request disconnected; dropping %d inputs",
             job->slot->pending - job->slot->running);
    cancel_job(b, job, JOB_CANCELLED);
    dispatch(b);
}

static void admit(batcher *b, srv_job *job) {
    job->slot->pending = job->n;
    job->slot->running = 0;
    job->slot->cancelled = 0;
    job->slot->watching = 0;
    if (b->cancelling) {
        depth_sub(b, job->n);
        job->slot->cancelled = JOB_SHUTDOWN;
        finish_job(b, job);
        return;
    }
    if (job->fd >= 0 && uv_poll_init(&b->loop, &job->slot->poll, job->fd) == 0) {
        job->slot->poll.data = job;
        job->slot->watching = 1;
        if (uv_poll_start(&job->slot->poll, UV_DISCONNECT, on_hangup) != 0) uv_poll_stop(&job->slot->poll);
    }
    for (int i = 0; i < job->n; i++) q_push(b, &job->in[i]);
}

/* ---- batches ---- */

static void run_batch(srv_task *t, bert_ws *ws) {
    batch *bt = (batch *)t;
    batcher *b = bt->b;
    bct_error err = {{0}};
    bt->t_start = srv_now_ns();
    int rc = ws ? bert_forward(bt->model, bt->seqs, bt->n, bt->logits, ws, &err)
                : bct_fail(&err, BCT_ENOMEM, "out of memory for worker scratch space");
    if (rc == BCT_OK) {
        int nl = bt->model->cfg.num_labels;
        for (int i = 0; i < bt->n; i++)
            memcpy(bt->items[i]->logits, bt->logits + (size_t)i * nl, (size_t)nl * sizeof(float));
    } else {
        bt->failed = 1;
        snprintf(bt->error, sizeof(bt->error), "%s", err.msg);
    }
    bt->t_end = srv_now_ns();
    /* uv_async_send under mu: once the loop has seen this batch, no
     * worker touches the batcher any more, so it may be stopped. */
    pthread_mutex_lock(&b->mu);
    bt->next = b->done;
    b->done = bt;
    uv_async_send(&b->wake);
    pthread_mutex_unlock(&b->mu);
}

static void complete_batch(batcher *b, batch *bt) {
    b->busy--;
    metrics_batch(b->o.metrics, bt->n, bt->tokens, (double)(bt->t_end - bt->t_start) * 1e-9);
    if (bt->failed)
        srv_logf(b->o.log, SRV_LOG_ERROR, "inference failed for a batch of %d: %s", bt->n, bt->error);
    for (int i = 0; i < bt->n; i++) {
        srv_job *job = bt->items[i]->job;
        job->slot->running--;
        job->slot->pending--;
        if (!job->t_first_start || bt->t_start < job->t_first_start) job->t_first_start = bt->t_start;
        if (bt->t_end > job->t_last_end) job->t_last_end = bt->t_end;
        if (bt->failed && job->status != JOB_FAILED) {
            job->status = JOB_FAILED;
            snprintf(job->error, sizeof(job->error), "%s", bt->error);
        }
        if (job->slot->pending == 0 && job->slot->running == 0) finish_job(b, job);
    }
    bt->n = 0;
    bt->next = b->free_batches;
    b->free_batches = bt;
}

static int by_len(const void *x, const void *y) {
    const srv_input *a = *(srv_input *const *)x, *c = *(srv_input *const *)y;
    return a->len - c->len;
}

/* Looks at the inputs a batch would take now.  Returns their count and
 * sets *full when the batch cannot grow any more. */
static int gather(batcher *b, batch *bt, int *full) {
    const bert_model *m = b->q_head->job->model->m;
    int n = 0;
    long long tokens = 0;
    *full = 0;
    for (srv_input *in = b->q_head; in; in = in->next) {
        if (in->job->model->m != m) continue;
        if (n == b->o.max_batch_size || (n > 0 && tokens + in->len > b->o.max_batch_tokens)) {
            *full = 1;
            break;
        }
        bt->items[n++] = in;
        tokens += in->len;
    }
    if (n == b->o.max_batch_size) *full = 1;
    bt->model = m;
    bt->n = n;
    bt->tokens = tokens;
    return n;
}

static void on_timer(uv_timer_t *t) { dispatch(t->loop->data); }

/* Cuts batches while a worker is free.  Batches are cut only for free
 * workers so that, under load, queued inputs keep joining the next batch
 * while the workers are busy (continuous batching).  (Cutting one full
 * batch ahead per busy worker was measured: no gain on 2 cores.) */
static void dispatch(batcher *b) {
    while (b->busy < b->n_workers && b->q_head && b->free_batches) {
        batch *bt = b->free_batches;
        int full;
        gather(b, bt, &full);
        uint64_t now = srv_now_ns(), oldest = b->q_head->job->t_admit;
        uint64_t wait_ns = (uint64_t)b->o.max_wait_us * 1000u;
        if (!full && !b->flushing && now - oldest < wait_ns) {
            uint64_t left = oldest + wait_ns - now;
            uv_update_time(&b->loop);
            uv_timer_start(&b->timer, on_timer, (left + 999999) / 1000000, 0);
            bt->n = 0;
            return;
        }
        b->free_batches = bt->next;
        size_t need = (size_t)bt->n * (size_t)bt->model->cfg.num_labels;
        if (need > bt->logits_cap) {
            float *p = realloc(bt->logits, need * sizeof(float));
            if (!p) { /* try again when memory or a batch frees up */
                bt->next = b->free_batches;
                b->free_batches = bt;
                bt->n = 0;
                uv_timer_start(&b->timer, on_timer, 10, 0);
                return;
            }
            bt->logits = p;
            bt->logits_cap = need;
        }
        for (int i = 0; i < bt->n; i++) {
            srv_input *in = bt->items[i];
            q_unlink(b, in);
            in->job->slot->running++;
        }
        depth_sub(b, bt->n);
        /* Similar lengths side by side: attention works per sequence, so
         * this mostly helps cache locality; it costs little. */
        qsort(bt->items, (size_t)bt->n, sizeof(*bt->items), by_len);
        for (int i = 0; i < bt->n; i++)
            bt->seqs[i] = (bert_seq){bt->items[i]->ids, bt->items[i]->types, bt->items[i]->len};
        bt->failed = 0;
        b->busy++;
        workers_submit(b->o.workers, &bt->task);
    }
    if (!b->q_head) uv_timer_stop(&b->timer);
}

/* ---- the loop ---- */

static void on_wake(uv_async_t *a) {
    batcher *b = a->data;
    pthread_mutex_lock(&b->mu);
    srv_job *jobs = b->inbox_head;
    batch *done = b->done;
    b->inbox_head = b->inbox_tail = NULL;
    b->done = NULL;
    int flush = b->want_flush, cancel = b->want_cancel, stop = b->want_stop;
    pthread_mutex_unlock(&b->mu);

    while (done) {
        batch *next = done->next;
        complete_batch(b, done);
        done = next;
    }
    if (flush) b->flushing = 1;
    if (cancel && !b->cancelling) {
        b->cancelling = 1;
        b->flushing = 1;
    }
    while (jobs) {
        srv_job *next = jobs->slot->next;
        admit(b, jobs);
        jobs = next;
    }
    if (b->cancelling)
        while (b->q_head) cancel_job(b, b->q_head->job, JOB_SHUTDOWN);
    dispatch(b);
    if (stop) {
        uv_close((uv_handle_t *)&b->wake, NULL);
        uv_close((uv_handle_t *)&b->timer, NULL);
    }
}

static void loop_main(void *arg) {
    batcher *b = arg;
    uv_run(&b->loop, UV_RUN_DEFAULT);
}

static void free_batches(batcher *b) {
    if (!b->all) return;
    for (int i = 0; i < b->n_batches; i++) {
        free(b->all[i].items);
        free(b->all[i].seqs);
        free(b->all[i].logits);
    }
    free(b->all);
}

int batcher_start(const batcher_opts *o, batcher **out, bct_error *err) {
    batcher *b = calloc(1, sizeof(*b));
    if (!b) return bct_fail(err, BCT_ENOMEM, "out of memory");
    b->o = *o;
    b->n_workers = workers_count(o->workers);
    b->n_batches = b->n_workers;
    b->all = calloc((size_t)b->n_batches, sizeof(batch));
    if (!b->all) goto oom;
    for (int i = 0; i < b->n_batches; i++) {
        batch *bt = &b->all[i];
        bt->task.run = run_batch;
        bt->b = b;
        bt->items = malloc((size_t)o->max_batch_size * sizeof(*bt->items));
        bt->seqs = malloc((size_t)o->max_batch_size * sizeof(*bt->seqs));
        if (!bt->items || !bt->seqs) goto oom;
        bt->next = b->free_batches;
        b->free_batches = bt;
    }
    pthread_mutex_init(&b->mu, NULL);
    pthread_cond_init(&b->idle_cv, NULL);
    atomic_init(&b->depth, 0);
    int rc = uv_loop_init(&b->loop);
    if (rc) {
        pthread_cond_destroy(&b->idle_cv);
        pthread_mutex_destroy(&b->mu);
        free_batches(b);
        free(b);
        return bct_fail(err, BCT_EIO, "uv_loop_init: %s", uv_strerror(rc));
    }
    b->loop.data = b;
    /* Unwound in reverse on failure: handles closed, loop run and closed. */
    const char *what = "uv_async_init";
    int inited = 0;
    if ((rc = uv_async_init(&b->loop, &b->wake, on_wake)) == 0) {
        inited = 1;
        b->wake.data = b;
        what = "uv_timer_init";
        if ((rc = uv_timer_init(&b->loop, &b->timer)) == 0) {
            inited = 2;
            what = "cannot start the batcher thread";
            rc = uv_thread_create(&b->thread, loop_main, b);
        }
    }
    if (rc != 0) {
        if (inited >= 2) uv_close((uv_handle_t *)&b->timer, NULL);
        if (inited >= 1) uv_close((uv_handle_t *)&b->wake, NULL);
        uv_run(&b->loop, UV_RUN_DEFAULT);
        uv_loop_close(&b->loop);
        pthread_cond_destroy(&b->idle_cv);
        pthread_mutex_destroy(&b->mu);
        free_batches(b);
        free(b);
        return bct_fail(err, BCT_EIO, "%s: %s", what, uv_strerror(rc));
    }
    *out = b;
    return BCT_OK;
oom:
    free_batches(b);
    free(b);
    return bct_fail(err, BCT_ENOMEM, "out of memory");
}

int batcher_reserve(batcher *b, srv_job *job) {
    int rc = BATCHER_OK, n = job->n;
    struct batcher_slot *slot = calloc(1, sizeof(*slot));
    if (!slot) return BATCHER_NOMEM;
    pthread_mutex_lock(&b->mu);
    if (b->closed)
        rc = BATCHER_CLOSED;
    else if (atomic_load_explicit(&b->depth, memory_order_relaxed) + n > b->o.queue_size)
        rc = BATCHER_FULL;
    else {
        atomic_fetch_add_explicit(&b->depth, n, memory_order_relaxed);
        b->outstanding++;
    }
    pthread_mutex_unlock(&b->mu);
    if (rc == BATCHER_OK) job->slot = slot;
    else free(slot);
    return rc;
}

void batcher_submit(batcher *b, srv_job *job) {
    job->t_admit = srv_now_ns();
    job->slot->next = NULL;
    pthread_mutex_lock(&b->mu);
    if (b->inbox_tail) b->inbox_tail->slot->next = job;
    else b->inbox_head = job;
    b->inbox_tail = job;
    uv_async_send(&b->wake);
    pthread_mutex_unlock(&b->mu);
}

static void request(batcher *b, int *flag, int close) {
    pthread_mutex_lock(&b->mu);
    *flag = 1;
    if (close) b->closed = 1;
    uv_async_send(&b->wake);
    pthread_mutex_unlock(&b->mu);
}

void batcher_flush(batcher *b) { request(b, &b->want_flush, 0); }

void batcher_cancel_all(batcher *b) { request(b, &b->want_cancel, 1); }

int batcher_wait_idle(batcher *b, int timeout_ms) {
    struct timespec until = srv_deadline(timeout_ms >= 0 ? timeout_ms : 0);
    int rc = BCT_OK;
    pthread_mutex_lock(&b->mu);
    while (b->outstanding > 0) {
        if (timeout_ms < 0) {
            pthread_cond_wait(&b->idle_cv, &b->mu);
        } else if (pthread_cond_timedwait(&b->idle_cv, &b->mu, &until) == ETIMEDOUT) {
            rc = b->outstanding > 0 ? BCT_EBUSY : BCT_OK;
            break;
        }
    }
    pthread_mutex_unlock(&b->mu);
    return rc;
}

int batcher_queue_depth(batcher *b) { return atomic_load_explicit(&b->depth, memory_order_relaxed); }

int batcher_in_flight(batcher *b) {
    pthread_mutex_lock(&b->mu);
    int n = b->outstanding;
    pthread_mutex_unlock(&b->mu);
    return n;
}

void batcher_stop(batcher *b) {
    if (!b) return;
    pthread_mutex_lock(&b->mu);
    b->closed = 1;
    b->want_stop = 1;
    b->want_cancel = 1;
    uv_async_send(&b->wake);
    pthread_mutex_unlock(&b->mu);
    uv_thread_join(&b->thread);
    uv_loop_close(&b->loop);
    pthread_cond_destroy(&b->idle_cv);
    pthread_mutex_destroy(&b->mu);
    free_batches(b);
    free(b);
}
