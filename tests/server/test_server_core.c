/* The server's core without HTTP: registry -> job -> batcher -> workers
 * on the bundled model, under concurrent submits, client hang-ups
 * (cancel) and hot swaps of the model being served (unconditional, and
 * conditional ones that must fail once the entry changed).  Every job must end
 * exactly once; finished ones must carry the logits the model gives the
 * text alone; nothing may leak or touch freed memory (run it under ASan).
 */
#include <check.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "batcher.h"
#include "job.h"
#include "log.h"
#include "metrics.h"
#include "registry.h"
#include "workers.h"

#define MODEL BCT_SOURCE_DIR "/models/sst2-tiny.bct"
#define THREADS 4
#define JOBS_PER_THREAD 150

static const char *const texts[] = {"a charming and often affecting journey", "dull", "the film is fine",
                                    "an utterly incompetent conclusion", "good"};
#define N_TEXTS ((int)(sizeof(texts) / sizeof(texts[0])))

static srv_registry *reg;
static batcher *bat;
static srv_workers *wk;
static float ref[N_TEXTS][2];
static atomic_int done_ok, done_cancelled, done_other, done_twice, swaps, full;
static atomic_int stop_swapping;

typedef struct tjob {
    int text0, n;
    atomic_int calls;
    int peer; /* the "client" end of the socket pair, or -1 */
} tjob;

static void on_done(srv_job *job) {
    tjob *t = job->user;
    if (atomic_fetch_add(&t->calls, 1) != 0) atomic_fetch_add(&done_twice, 1);
    if (job->status == JOB_OK) {
        int bad = 0;
        for (int i = 0; i < t->n; i++)
            for (int l = 0; l < 2; l++)
                bad |= !(fabsf(job->logits[i * 2 + l] - ref[(t->text0 + i) % N_TEXTS][l]) <= 1e-4f);
        atomic_fetch_add(bad ? &done_other : &done_ok, 1);
    } else if (job->status == JOB_CANCELLED) {
        atomic_fetch_add(&done_cancelled, 1);
    } else {
        atomic_fetch_add(&done_other, 1);
    }
    if (job->fd >= 0) close(job->fd);
    if (t->peer >= 0) close(t->peer);
    job_free(job);
    free(t);
}

static void *submitter(void *arg) {
    int id = (int)(intptr_t)arg;
    for (int k = 0; k < JOBS_PER_THREAD; k++) {
        tjob *t = calloc(1, sizeof(*t));
        ck_assert_ptr_nonnull(t);
        t->text0 = (id + k) % N_TEXTS;
        t->n = 1 + (k % 3);
        t->peer = -1;
        srv_text in[3];
        for (int i = 0; i < t->n; i++) {
            const char *s = texts[(t->text0 + i) % N_TEXTS];
            in[i] = (srv_text){.a = s, .alen = strlen(s)};
        }
        srv_model *m = registry_acquire(reg, NULL);
        ck_assert_ptr_nonnull(m);
        srv_job *job;
        srv_err err;
        ck_assert_int_eq(job_create(m, in, t->n, JOB_TRUNCATE, &job, &err), 0);
        int r;
        while ((r = batcher_reserve(bat, job)) == BATCHER_FULL) { /* the client retries */
            atomic_fetch_add(&full, 1);
            usleep(500);
        }
        ck_assert_int_eq(r, BATCHER_OK);
        /* Every third job has a client socket; half of those hang up. */
        if (k % 3 == 0) {
            int sv[2];
            ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
            job->fd = sv[0];
            t->peer = sv[1];
            if (k % 6 == 0) {
                shutdown(sv[1], SHUT_RDWR);
            }
        }
        job->done = on_done;
        job->user = t;
        batcher_submit(bat, job);
    }
    return NULL;
}

/* Swaps the model in, alternately unconditionally (registry_put) and as
 * the store watcher does (registry_put_if on the entry it saw); a
 * conditional swap on an entry replaced meanwhile must be refused with
 * BCT_ECONFLICT and change nothing. */
static void *swapper(void *arg) {
    (void)arg;
    for (int k = 0; !atomic_load(&stop_swapping); k++) {
        srv_model *m, *seen = registry_acquire(reg, "sst2");
        bct_error err = {{0}};
        ck_assert_ptr_nonnull(seen);
        ck_assert_int_eq(registry_open("sst2", MODEL, 128, &m, &err), BCT_OK);
        if (k % 2) {
            ck_assert_int_eq(registry_put(reg, m, &err), BCT_OK);
        } else {
            ck_assert_int_eq(registry_put_if(reg, m, seen, &err), BCT_OK);
            ck_assert_int_eq(registry_open("sst2", MODEL, 128, &m, &err), BCT_OK);
            ck_assert_int_eq(registry_put_if(reg, m, seen, &err), BCT_ECONFLICT); /* seen is stale */
            srv_model *cur = registry_acquire(reg, "sst2");
            ck_assert_ptr_ne(cur, seen);
            registry_release(cur);
        }
        registry_release(seen);
        atomic_fetch_add(&swaps, 1);
        usleep(1000);
    }
    return NULL;
}

START_TEST(core_concurrent_submit_cancel_swap) {
    bct_error err = {{0}};
    ck_assert_int_eq(registry_create(&reg), BCT_OK);
    ck_assert_int_eq(registry_load(reg, "sst2", MODEL, 128, &err), BCT_OK);
    ck_assert_int_eq(registry_set_default(reg, "sst2", &err), BCT_OK);
    /* Reference logits: each text alone. */
    srv_model *m = registry_acquire(reg, NULL);
    ck_assert_ptr_nonnull(m);
    for (int i = 0; i < N_TEXTS; i++) {
        srv_text in = {.a = texts[i], .alen = strlen(texts[i])};
        srv_job *job;
        srv_err e;
        srv_model *mm = registry_acquire(reg, NULL);
        ck_assert_int_eq(job_create(mm, &in, 1, JOB_TRUNCATE, &job, &e), 0);
        bert_ws *ws = bert_ws_create();
        ck_assert_ptr_nonnull(ws);
        bert_seq seq = {.ids = job->in[0].ids, .type_ids = job->in[0].types, .len = job->in[0].len};
        ck_assert_int_eq(bert_forward(m->m, &seq, 1, ref[i], ws, &err), BCT_OK);
        bert_ws_free(ws);
        job_free(job);
    }
    registry_release(m);
    ck_assert_int_eq(workers_start(2, 1, &wk, &err), BCT_OK);
    srv_metrics *metrics;
    ck_assert_int_eq(metrics_create(&metrics), 0);
    srv_log lg = {.level = SRV_LOG_WARN, .fd = 2};
    batcher_opts bo = {.max_batch_size = 8, .max_batch_tokens = 512, .max_wait_us = 500,
                       .queue_size = 64, .workers = wk, .metrics = metrics, .log = &lg};
    ck_assert_int_eq(batcher_start(&bo, &bat, &err), BCT_OK);

    pthread_t th[THREADS], sw;
    ck_assert_int_eq(pthread_create(&sw, NULL, swapper, NULL), 0);
    for (int i = 0; i < THREADS; i++) ck_assert_int_eq(pthread_create(&th[i], NULL, submitter, (void *)(intptr_t)i), 0);
    for (int i = 0; i < THREADS; i++) pthread_join(th[i], NULL);
    ck_assert_int_eq(batcher_wait_idle(bat, 120000), BCT_OK);
    atomic_store(&stop_swapping, 1);
    pthread_join(sw, NULL);

    int ok = atomic_load(&done_ok), cancelled = atomic_load(&done_cancelled);
    fprintf(stderr, "jobs: %d ok, %d cancelled, %d queue-full retries, %d swaps\n", ok, cancelled,
            atomic_load(&full), atomic_load(&swaps));
    ck_assert_int_eq(atomic_load(&done_twice), 0);
    ck_assert_int_eq(atomic_load(&done_other), 0);
    ck_assert_int_eq(ok + cancelled, THREADS * JOBS_PER_THREAD);
    ck_assert_int_gt(ok, THREADS * JOBS_PER_THREAD / 2);
    ck_assert_int_gt(cancelled, 0); /* a sixth of the clients hung up before their job ran */
    ck_assert_int_gt(atomic_load(&swaps), 0);
    ck_assert_int_eq(batcher_queue_depth(bat), 0);
    ck_assert_int_eq(batcher_in_flight(bat), 0);

    /* Shutdown with work queued: every job ends with JOB_SHUTDOWN or OK. */
    batcher_stop(bat);
    workers_stop(wk);
    metrics_free(metrics);
    registry_free(reg);
}
END_TEST

int main(void) {
    Suite *s = suite_create("server_core");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 600);
    tcase_add_test(tc, core_concurrent_submit_cancel_swap);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
