/* batcher.h - the request queue and batch cutting, on a libuv loop that
 * runs on its own thread.
 *
 * A job's inputs join one FIFO.  Whenever a worker is free, the batcher
 * takes inputs from the front (same model as the oldest one) and cuts a
 * batch when it holds max_batch_size inputs, when the next input would
 * push it past max_batch_tokens, or when the oldest input has waited
 * max_wait_us (a uv timer; 1 ms resolution).  A batch is sorted by length
 * and handed to the worker pool; a job with many inputs may be spread over
 * several batches.  When the last input of a job has its logits, job->done
 * runs on the loop thread.
 *
 * While a job waits, its client socket (job->fd) is watched for a hang-up
 * (EPOLLRDHUP/EPOLLHUP via uv_poll): the job's queued inputs are dropped
 * at once, and job->done runs with JOB_CANCELLED as soon as none of its
 * inputs is inside a running batch.  The watch is closed before job->done
 * runs, so the caller may hand the socket back to its owner there.
 *
 * Threads: batcher_reserve/submit/flush/cancel_all/wait_idle and the
 * getters may be called from any thread; everything else in the batcher
 * happens on the loop thread.
 */
#ifndef BCT_BATCHER_H
#define BCT_BATCHER_H

#include "job.h"
#include "log.h"
#include "metrics.h"
#include "workers.h"

typedef struct batcher batcher;

typedef struct batcher_opts {
    int max_batch_size;
    int max_batch_tokens;
    int max_wait_us;
    int queue_size;       /* inputs */
    srv_workers *workers; /* at most one batch per worker is in flight */
    srv_metrics *metrics;
    const srv_log *log;
} batcher_opts;

int batcher_start(const batcher_opts *o, batcher **out, bct_error *err);

enum { BATCHER_OK = 0, BATCHER_FULL = 1, BATCHER_CLOSED = 2, BATCHER_NOMEM = 3 };

/* Reserves room for the job's inputs and the batcher's state of it
 * (job->slot).  BATCHER_FULL: the queue cannot take them now (answer
 * 429); BATCHER_CLOSED: shutting down (answer 503); BATCHER_NOMEM: out of
 * memory (500).  After BATCHER_OK the caller must batcher_submit() it. */
int batcher_reserve(batcher *b, srv_job *job);

/* Queues the job; never fails.  job->done will run exactly once, on the
 * loop thread, possibly before this call returns. */
void batcher_submit(batcher *b, srv_job *job);

/* Draining: stop waiting for batches to fill; run what is queued now. */
void batcher_flush(batcher *b);

/* Refuses new reservations and finishes every queued job with
 * JOB_SHUTDOWN (inputs already running complete first). */
void batcher_cancel_all(batcher *b);

/* Waits until no job is reserved, queued or running.  BCT_OK, or
 * BCT_EBUSY on timeout (timeout_ms < 0: wait for ever). */
int batcher_wait_idle(batcher *b, int timeout_ms);

int batcher_queue_depth(batcher *b); /* inputs reserved, not yet running */
int batcher_in_flight(batcher *b);   /* jobs reserved and not done */

/* Stops the loop thread and frees.  Call when idle, before stopping the
 * workers. */
void batcher_stop(batcher *b);

#endif
