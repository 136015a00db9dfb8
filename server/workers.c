#include "workers.h"

#include "kernels/threadpool.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

struct srv_workers {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    srv_task *head, *tail;
    int stopping;
    int n;
    pthread_t *threads;
    bct_pool **pools; /* per worker; NULL entries when intra_op is 1 */
};

typedef struct worker_arg {
    srv_workers *w;
    bct_pool *pool;
} worker_arg;

static void *worker_main(void *arg) {
    srv_workers *w = ((worker_arg *)arg)->w;
    bct_pool *pool = ((worker_arg *)arg)->pool;
    free(arg);
    bert_ws *ws = bert_ws_create();
    if (ws && pool) bert_ws_set_pool(ws, pool);
    pthread_mutex_lock(&w->mu);
    for (;;) {
        while (!w->head && !w->stopping) pthread_cond_wait(&w->cv, &w->mu);
        srv_task *t = w->head;
        if (!t) break; /* stopping and nothing left */
        w->head = t->next;
        if (!w->head) w->tail = NULL;
        pthread_mutex_unlock(&w->mu);
        /* A NULL ws (out of memory at start) is passed on; the task
         * (batcher.c's run_batch) fails that batch with an error. */
        t->run(t, ws);
        pthread_mutex_lock(&w->mu);
    }
    pthread_mutex_unlock(&w->mu);
    bert_ws_free(ws);
    return NULL;
}

int workers_start(int n, int intra_op, srv_workers **out, bct_error *err) {
    srv_workers *w = calloc(1, sizeof(*w));
    if (!w || !(w->threads = calloc((size_t)n, sizeof(pthread_t))) ||
        !(w->pools = calloc((size_t)n, sizeof(bct_pool *)))) {
        if (w) free(w->threads);
        free(w);
        return bct_fail(err, BCT_ENOMEM, "out of memory");
    }
    pthread_mutex_init(&w->mu, NULL);
    pthread_cond_init(&w->cv, NULL);
    for (int i = 0; i < n; i++) {
        worker_arg *a = malloc(sizeof(*a));
        if (intra_op > 1 && a && !(w->pools[i] = bct_pool_create(intra_op))) {
            free(a);
            a = NULL;
        }
        if (!a) {
            workers_stop(w);
            return bct_fail(err, BCT_ENOMEM, "out of memory (or threads) for worker %d's engine pool", i + 1);
        }
        *a = (worker_arg){w, w->pools[i]};
        int rc = pthread_create(&w->threads[i], NULL, worker_main, a);
        if (rc != 0) {
            free(a);
            bct_pool_free(w->pools[i]);
            w->pools[i] = NULL;
            workers_stop(w);
            return bct_fail(err, BCT_EIO, "cannot start worker thread %d: %s", i + 1, strerror(rc));
        }
        w->n++;
    }
    *out = w;
    return BCT_OK;
}

void workers_submit(srv_workers *w, srv_task *t) {
    t->next = NULL;
    pthread_mutex_lock(&w->mu);
    if (w->tail) w->tail->next = t;
    else w->head = t;
    w->tail = t;
    pthread_cond_signal(&w->cv);
    pthread_mutex_unlock(&w->mu);
}

int workers_count(const srv_workers *w) { return w->n; }

void workers_stop(srv_workers *w) {
    if (!w) return;
    pthread_mutex_lock(&w->mu);
    w->stopping = 1;
    pthread_cond_broadcast(&w->cv);
    pthread_mutex_unlock(&w->mu);
    for (int i = 0; i < w->n; i++) {
        pthread_join(w->threads[i], NULL);
        bct_pool_free(w->pools[i]);
    }
    pthread_cond_destroy(&w->cv);
    pthread_mutex_destroy(&w->mu);
    free(w->pools);
    free(w->threads);
    free(w);
}
