/* workers.h - a fixed pool of plain pthreads that run inference tasks.
 *
 * Not libuv's threadpool: that one is process-wide and shared with file
 * and DNS work.  Each worker owns one bert_ws (engine scratch memory)
 * for its whole life and passes it to every task it runs, so buffers are
 * reused across batches; with intra_op > 1 the bert_ws also carries the
 * worker's own engine thread pool of that many threads (the worker is
 * one of them), which splits each batch.  Tasks run in submission order,
 * one per worker at a time; workers_submit() never blocks.
 */
#ifndef BCT_WORKERS_H
#define BCT_WORKERS_H

#include "model/bert_forward.h"

typedef struct srv_task srv_task;
struct srv_task {
    void (*run)(srv_task *t, bert_ws *ws); /* on a worker thread */
    srv_task *next;                        /* queue link (pool-owned) */
};

typedef struct srv_workers srv_workers;

/* Starts n workers, each with an engine pool of intra_op threads (>= 1).
 * BCT_OK, BCT_ENOMEM, or BCT_EIO if a thread could not be created (err
 * says which). */
int workers_start(int n, int intra_op, srv_workers **out, bct_error *err);
void workers_submit(srv_workers *w, srv_task *t);
int workers_count(const srv_workers *w);
/* Runs every task already submitted, then joins the threads and frees. */
void workers_stop(srv_workers *w);

#endif
