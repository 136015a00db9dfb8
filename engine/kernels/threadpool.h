/* threadpool.h - a fixed set of threads that run one parallel loop at a time.
 *
 * The engine parallelises each batch (GEMM tiles, attention per sequence
 * and head, row-wise ops) with bct_pool_run().  Threads are created once,
 * in bct_pool_create(); a run wakes them, hands out task indices from an
 * atomic counter (dynamic scheduling) and returns when every task is done.
 * The calling thread takes part as worker 0, so a pool of n threads has
 * n - 1 helpers and never more than n threads busy.
 *
 * After a run, helpers spin for a short while (BCT_POOL_SPIN_US, ~100 us)
 * before they sleep on a condition variable: the many short loops of one
 * forward pass do not pay a futex wake-up each, and an idle pool costs no
 * CPU.
 *
 * A pool is an explicit object, not global state: the engine uses the one
 * attached to a bert_ws (bert_ws_set_pool).  One run at a time: when a pool
 * is busy (another thread's run, or a task calling bct_pool_run on its own
 * pool), the new run executes inline on the calling thread, so sharing a
 * pool can never deadlock nor oversubscribe.  To serve N concurrent callers
 * on C cores, give each caller its own pool of max(1, C / N) threads.
 */
#ifndef BCT_THREADPOOL_H
#define BCT_THREADPOOL_H

typedef struct bct_pool bct_pool;

/* Runs task `task` (0 .. ntasks-1) on thread `worker` (0 .. threads-1;
 * 0 is the caller).  A given worker index runs one task at a time, so it
 * may index per-worker scratch memory. */
typedef void (*bct_pool_fn)(void *ctx, int task, int worker);

/* threads <= 0: bct_cpu_count().  Returns NULL when out of memory or
 * when threads cannot be created. */
bct_pool *bct_pool_create(int threads);
void bct_pool_free(bct_pool *p);

/* Threads of p (1 for NULL). */
int bct_pool_threads(const bct_pool *p);

/* Runs fn for every task and returns when all are done.  p may be NULL
 * (then everything runs on the caller, in order). */
void bct_pool_run(bct_pool *p, int ntasks, bct_pool_fn fn, void *ctx);

/* CPUs this process may run on (its affinity mask, else the online ones;
 * at least 1). */
int bct_cpu_count(void);

#endif
