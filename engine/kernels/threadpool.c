#define _GNU_SOURCE /* sched_getaffinity, CPU_COUNT */
#include "threadpool.h"

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#ifndef BCT_POOL_SPIN_US
#define BCT_POOL_SPIN_US 100
#endif

/* Job protocol.  `gen` is odd while a job is open.  The caller publishes a
 * job (fn, ctx, ntasks, next = 0, done = 0), opens it (gen++), runs tasks
 * itself, waits until `done` == ntasks, closes it (gen++) and waits until
 * no helper is inside it (`inside` == 0); only then may the fields change.
 * A helper that sees an open gen enters (inside++), checks that the job
 * is still open, claims tasks from `next`, and leaves (inside--).  So the
 * caller never waits for a helper that was asleep or descheduled when the
 * job ran: only for tasks actually started.  inside++ / gen re-check on
 * one side and gen++ / inside check on the other are sequentially
 * consistent, which is what makes the hand-off safe. */
struct bct_pool {
    int threads;
    pthread_t *tid;
    pthread_mutex_t run_lock; /* held by the thread whose run is in progress */
    pthread_mutex_t mu;       /* guards sleeping and waking */
    pthread_cond_t wake;
    bct_pool_fn fn;
    void *ctx;
    int ntasks;
    atomic_int next;   /* next task index to hand out */
    atomic_int done;   /* tasks finished */
    atomic_int inside; /* helpers inside the current job */
    atomic_uint gen;   /* odd: a job is open */
    atomic_int stop;
};

struct helper_arg {
    bct_pool *p;
    int worker;
};

static inline void cpu_relax(void) {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#endif
}

static long long now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000000000ll + ts.tv_nsec;
}

static void run_tasks(bct_pool *p, int worker) {
    bct_pool_fn fn = p->fn;
    void *ctx = p->ctx;
    int n = p->ntasks;
    for (int t; (t = atomic_fetch_add_explicit(&p->next, 1, memory_order_relaxed)) < n;) {
        fn(ctx, t, worker);
        atomic_fetch_add_explicit(&p->done, 1, memory_order_release);
    }
}

static int is_new_job(unsigned g, unsigned seen) { return (g & 1) && g != seen; }

/* Waits until a job other than `seen` is open (or stop); returns its gen. */
static unsigned wait_job(bct_pool *p, unsigned seen) {
    long long deadline = 0;
    for (int i = 0;; i++) {
        unsigned g = atomic_load(&p->gen);
        if (is_new_job(g, seen) || atomic_load_explicit(&p->stop, memory_order_relaxed)) return g;
        cpu_relax();
        if ((i & 255) != 255) continue;
        long long t = now_ns();
        if (!deadline) deadline = t + BCT_POOL_SPIN_US * 1000ll;
        else if (t > deadline) break;
    }
    pthread_mutex_lock(&p->mu);
    unsigned g;
    while (!is_new_job(g = atomic_load(&p->gen), seen) && !atomic_load_explicit(&p->stop, memory_order_relaxed))
        pthread_cond_wait(&p->wake, &p->mu);
    pthread_mutex_unlock(&p->mu);
    return g;
}

static void *helper(void *arg) {
    struct helper_arg *a = arg;
    bct_pool *p = a->p;
    int worker = a->worker;
    free(a);
    unsigned seen = 0;
    for (;;) {
        unsigned g = wait_job(p, seen);
        if (atomic_load_explicit(&p->stop, memory_order_relaxed)) break;
        atomic_fetch_add(&p->inside, 1);
        if (atomic_load(&p->gen) == g) run_tasks(p, worker);
        atomic_fetch_sub_explicit(&p->inside, 1, memory_order_release);
        seen = g;
    }
    return NULL;
}

int bct_cpu_count(void) {
    /* The CPUs this process may run on (taskset, cpusets of containers),
     * as nproc counts them: more threads than that only time-share and
     * spin against each other. */
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof(set), &set) == 0 && CPU_COUNT(&set) > 0) return CPU_COUNT(&set);
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (int)n : 1;
}

bct_pool *bct_pool_create(int threads) {
    if (threads <= 0) threads = bct_cpu_count();
    bct_pool *p = calloc(1, sizeof(*p));
    if (!p) return NULL;
    p->threads = 1;
    pthread_mutex_init(&p->run_lock, NULL);
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->wake, NULL);
    if (threads > 1 && !(p->tid = calloc((size_t)threads - 1, sizeof(pthread_t)))) {
        bct_pool_free(p);
        return NULL;
    }
    for (int i = 1; i < threads; i++) {
        struct helper_arg *a = malloc(sizeof(*a));
        if (!a) break;
        *a = (struct helper_arg){p, i};
        if (pthread_create(&p->tid[i - 1], NULL, helper, a) != 0) {
            free(a);
            break;
        }
        p->threads++;
    }
    if (p->threads != threads) {
        bct_pool_free(p);
        return NULL;
    }
    return p;
}

void bct_pool_free(bct_pool *p) {
    if (!p) return;
    pthread_mutex_lock(&p->mu);
    atomic_store(&p->stop, 1);
    pthread_cond_broadcast(&p->wake);
    pthread_mutex_unlock(&p->mu);
    for (int i = 0; i < p->threads - 1; i++) pthread_join(p->tid[i], NULL);
    free(p->tid);
    pthread_cond_destroy(&p->wake);
    pthread_mutex_destroy(&p->mu);
    pthread_mutex_destroy(&p->run_lock);
    free(p);
}

int bct_pool_threads(const bct_pool *p) { return p ? p->threads : 1; }

/* Spins until *v reaches `want` (or 0 when want < 0: until *v <= 0). */
static void spin_until(atomic_int *v, int want) {
    for (int i = 1; want >= 0 ? atomic_load_explicit(v, memory_order_acquire) < want
                              : atomic_load(v) > 0;
         i++) {
        cpu_relax();
        if ((i & 1023) == 0) sched_yield(); /* in case a thread we wait for needs this core */
    }
}

void bct_pool_run(bct_pool *p, int ntasks, bct_pool_fn fn, void *ctx) {
    if (ntasks <= 0) return;
    if (!p || p->threads == 1 || ntasks == 1 || pthread_mutex_trylock(&p->run_lock) != 0) {
        for (int t = 0; t < ntasks; t++) fn(ctx, t, 0);
        return;
    }
    p->fn = fn;
    p->ctx = ctx;
    p->ntasks = ntasks;
    atomic_store_explicit(&p->next, 0, memory_order_relaxed);
    atomic_store_explicit(&p->done, 0, memory_order_relaxed);
    pthread_mutex_lock(&p->mu);
    atomic_fetch_add(&p->gen, 1); /* open */
    pthread_cond_broadcast(&p->wake);
    pthread_mutex_unlock(&p->mu);
    run_tasks(p, 0);
    spin_until(&p->done, ntasks);
    atomic_fetch_add(&p->gen, 1); /* close */
    spin_until(&p->inside, -1);
    pthread_mutex_unlock(&p->run_lock);
}
