#define _GNU_SOURCE /* pipe2 */
#include "server.h"
#include "kernels/threadpool.h"

#include <cblas.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "access_log.h"
#include "admin_jobs.h"
#include "api_admin.h"
#include "batcher.h"
#include "http.h"
#include "lifecycle.h"
#include "log.h"
#include "metrics.h"
#include "kernels/qgemm.h"
#include "model_store.h"
#include "registry.h"
#include "store_watch.h"
#include "workers.h"

/* The one piece of global mutable state: a signal handler can reach
 * nothing else.  SIGTERM/SIGINT write their number into this pipe and the
 * main thread reads it.  (Blocking the signals and using sigwait() would
 * not do: OpenBLAS starts threads before main(), with the signals
 * unblocked, and any of them could take the signal.) */
static int signal_pipe[2] = {-1, -1};

static void on_signal(int sig) {
    int saved = errno;
    unsigned char c = (unsigned char)sig;
    if (write(signal_pipe[1], &c, 1) < 0) { /* pipe full: a signal is pending anyway */ }
    errno = saved;
}

static int install_signals(void) {
    if (pipe2(signal_pipe, O_CLOEXEC | O_NONBLOCK) != 0) return -1;
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_signal;
    sa.sa_flags = SA_RESTART;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
    return 0;
}

static void restore_signals(void) {
    signal(SIGTERM, SIG_DFL);
    signal(SIGINT, SIG_DFL);
    close(signal_pipe[0]);
    close(signal_pipe[1]);
    signal_pipe[0] = signal_pipe[1] = -1;
}

/* Waits up to timeout_ms (< 0: for ever) for a signal; returns it or 0. */
static int wait_signal(int timeout_ms) {
    struct pollfd p = {.fd = signal_pipe[0], .events = POLLIN};
    for (;;) {
        int n = poll(&p, 1, timeout_ms);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) return 0;
        unsigned char c;
        if (read(signal_pipe[0], &c, 1) == 1) return c;
    }
}

static int write_port_file(const char *path, int port, const srv_log *lg) {
    char tmp[4200];
    snprintf(tmp, sizeof(tmp), "%s.tmp", path);
    FILE *f = fopen(tmp, "w");
    if (!f || fprintf(f, "%d\n", port) < 0 || fclose(f) != 0 || rename(tmp, path) != 0) {
        srv_logf(lg, SRV_LOG_ERROR, "cannot write port file %s: %s", path, strerror(errno));
        return -1;
    }
    return 0;
}

/* "…/sst2-bert-tiny/" -> "sst2-bert-tiny"; "x/m.bct" -> "m". */
static void model_name_from_path(const char *path, char *name, size_t size) {
    char buf[4096];
    snprintf(buf, sizeof(buf), "%s", path);
    size_t n = strlen(buf);
    while (n > 1 && buf[n - 1] == '/') buf[--n] = '\0';
    const char *base = strrchr(buf, '/');
    base = base ? base + 1 : buf;
    snprintf(name, size, "%s", base);
    n = strlen(name);
    struct stat st;
    if (n > 4 && !strcmp(name + n - 4, ".bct") && stat(path, &st) == 0 && S_ISREG(st.st_mode))
        name[n - 4] = '\0';
}

static void log_loaded(srv_registry *reg, const char *name, uint64_t t, const srv_log *lg) {
    srv_model *m = registry_acquire(reg, name);
    if (!m) return;
    srv_logf(lg, SRV_LOG_INFO,
             "loaded model \"%s\" version %d from %s: %s, %d labels, max_len %d, %.1f MB, %.0f ms",
             name, m->version, m->path, m->m->format, m->m->cfg.num_labels, m->m->max_len,
             (double)m->m->file_bytes / 1e6, (double)(srv_now_ns() - t) * 1e-6);
    registry_release(m);
}

/* One model of the store (model_store.h), with its version and file
 * identity so that the store watcher knows what is loaded. */
static int load_entry(srv_registry *reg, const store_entry *e, const srv_config *cfg,
                      const srv_log *lg) {
    bct_error err = {{0}};
    uint64_t t = srv_now_ns();
    srv_model *m;
    int rc = store_open_entry(e, cfg->max_seq_len, &m, &err);
    if (rc == BCT_OK && (rc = registry_put_if(reg, m, NULL, &err)) == BCT_ECONFLICT)
        rc = bct_fail(&err, BCT_EINVAL, "two models are named \"%s\" (%s)", e->name, e->path);
    if (rc < 0) {
        srv_logf(lg, cfg->strict_store ? SRV_LOG_ERROR : SRV_LOG_WARN,
                 "cannot load model \"%s\" from %s%s: %s", e->name, e->path,
                 cfg->strict_store ? "" : " (skipped; see /models)", err.msg);
        registry_note_failure(reg, e->name, err.msg);
        return -1;
    }
    log_loaded(reg, e->name, t, lg);
    return 0;
}

/* Loads --model and every model of the store; picks the default.
 * Returns 0, -1 on failure, or a signal number if one arrived. */
static int load_models(srv_registry *reg, const srv_config *cfg, const srv_log *lg) {
    char direct[256] = "";
    if (cfg->model[0]) {
        bct_error err = {{0}};
        uint64_t t = srv_now_ns();
        model_name_from_path(cfg->model, direct, sizeof(direct));
        if (registry_load(reg, direct, cfg->model, cfg->max_seq_len, &err) != BCT_OK) {
            srv_logf(lg, SRV_LOG_ERROR, "cannot load model \"%s\": %s", direct, err.msg);
            return -1;
        }
        log_loaded(reg, direct, t, lg);
    }
    if (cfg->model_store[0]) {
        store_entry *ents;
        int n;
        bct_error err = {{0}};
        if (store_scan(cfg->model_store, &ents, &n, &err) != BCT_OK) {
            srv_logf(lg, SRV_LOG_ERROR, "%s", err.msg);
            return -1;
        }
        /* One bad entry must not stop every replica from starting (issue
         * 17): skipped unless strict_store. */
        int rc = 0;
        for (int i = 0; i < n && rc == 0; i++) {
            int sig = wait_signal(0);
            if (sig) rc = sig;
            else if (load_entry(reg, &ents[i], cfg, lg) && cfg->strict_store) rc = -1;
        }
        free(ents);
        if (rc) return rc;
    }
    if (registry_count(reg) == 0) {
        srv_logf(lg, SRV_LOG_ERROR, "no models found in the model store %s", cfg->model_store);
        return -1;
    }
    bct_error err = {{0}};
    if (cfg->default_model[0]) {
        if (registry_set_default(reg, cfg->default_model, &err) != BCT_OK) {
            srv_logf(lg, SRV_LOG_ERROR, "%s", err.msg);
            return -1;
        }
    } else if (direct[0]) {
        registry_set_default(reg, direct, &err);
    } else {
        srv_model **list;
        int n, def;
        if (registry_list(reg, &list, &n, &def) != 0) return -1;
        registry_set_default(reg, list[0]->name, &err);
        for (int i = 0; i < n; i++) registry_release(list[i]);
        free(list);
    }
    return 0;
}

/* Each connection is a descriptor: raise the soft limit towards what
 * max_connections needs (plus room for models, logs and libraries). */
static void raise_fd_limit(int max_connections, const srv_log *lg) {
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0) return;
    rlim_t want = (rlim_t)max_connections + 128;
    if (rl.rlim_cur >= want) return;
    rl.rlim_cur = rl.rlim_max == RLIM_INFINITY || rl.rlim_max >= want ? want : rl.rlim_max;
    if (setrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur < want)
        srv_logf(lg, SRV_LOG_WARN,
                 "open-files limit %llu is below what max_connections (%d) needs; connections "
                 "beyond it will fail",
                 (unsigned long long)rl.rlim_cur, max_connections);
}

static const char *signal_name(int sig) { return sig == SIGINT ? "SIGINT" : sig == SIGTERM ? "SIGTERM" : "signal"; }

/* Finishes in-flight work, then makes sure nothing is queued or suspended
 * so that MHD may be stopped. */
static void drain(srv_lifecycle *life, batcher *bat, srv_http *http, const srv_config *cfg,
                  const srv_log *lg) {
    http_quiesce(http); /* first: nothing new arrives while draining */
    batcher_flush(bat);
    uint64_t deadline = srv_now_ns() + (uint64_t)cfg->drain_timeout_s * 1000000000u;
    int done = 0;
    while (!done) {
        uint64_t now = srv_now_ns();
        if (now >= deadline) {
            srv_logf(lg, SRV_LOG_WARN, "drain_timeout_s (%d) passed; answering what is left with 503",
                     cfg->drain_timeout_s);
            break;
        }
        uint64_t left_ms = (deadline - now) / 1000000u;
        done = lifecycle_drain(life, left_ms < 100 ? (int)left_ms : 100) == BCT_OK;
        if (done && http_pending(http) > 0) { /* a request on its way, or a 503 being sent */
            done = 0;
            usleep(1000);
        }
        if (!done && wait_signal(0)) {
            srv_logf(lg, SRV_LOG_WARN, "second signal: answering what is left with 503");
            break;
        }
    }
    batcher_cancel_all(bat);
    batcher_wait_idle(bat, -1);
    /* Resumed connections get their answer from MHD's thread; wait until
     * it has taken them all back (a few ms at most). */
    while (http_suspended(http) > 0) usleep(1000);
}

int srv_run(const srv_config *cfg, const char *port_file) {
    srv_log lg = {.level = cfg->log_level, .fd = STDERR_FILENO};
    int ncpu = bct_cpu_count();
    int rc = 1, threads = cfg->threads, intra = cfg->intra_op_threads;
    if (threads <= 0) threads = (int)ncpu;
    if (intra <= 0) intra = threads < ncpu ? ncpu / threads : 1;
    srv_metrics *metrics = NULL;
    srv_registry *reg = NULL;
    access_log *alog = NULL;
    srv_workers *workers = NULL;
    batcher *bat = NULL;
    srv_http *http = NULL;
    model_store store;
    int have_store = 0;
    admin_jobs *jobs = NULL;
    srv_admin *admin = NULL;
    store_watch *watch = NULL;
    srv_lifecycle life;
    bct_error err = {{0}};
    lifecycle_init(&life);

    if (install_signals() != 0) {
        srv_logf(&lg, SRV_LOG_ERROR, "cannot set up signal handling: %s", strerror(errno));
        lifecycle_destroy(&life);
        return 1;
    }
    raise_fd_limit(cfg->max_connections, &lg);
    /* One core per batch: each worker runs its own batch single-threaded. */
    openblas_set_num_threads(1);

    if (metrics_create(&metrics) != 0 || registry_create(&reg) != BCT_OK) {
        srv_logf(&lg, SRV_LOG_ERROR, "out of memory");
        goto out;
    }
    if (access_log_open(cfg->access_log, &alog, &err) != BCT_OK ||
        workers_start(threads, intra, &workers, &err) != BCT_OK) {
        srv_logf(&lg, SRV_LOG_ERROR, "%s", err.msg);
        goto out;
    }
    batcher_opts bo = {.max_batch_size = cfg->max_batch_size, .max_batch_tokens = cfg->max_batch_tokens,
                       .max_wait_us = cfg->max_wait_us, .queue_size = cfg->queue_size,
                       .workers = workers, .metrics = metrics, .log = &lg};
    if (batcher_start(&bo, &bat, &err) != BCT_OK) {
        srv_logf(&lg, SRV_LOG_ERROR, "%s", err.msg);
        goto out;
    }
    if (cfg->model_store[0]) {
        if (store_init(&store, cfg->model_store, &err) != BCT_OK) {
            srv_logf(&lg, SRV_LOG_ERROR, "%s", err.msg);
            goto out;
        }
        have_store = 1;
    }
    if (cfg->admin_token[0]) {
        jobs_opts jo = {.store = &store, .reg = reg, .log = &lg, .max_running = cfg->admin_max_jobs,
                        .queue_size = cfg->admin_queue_size, .history = cfg->admin_job_history,
                        .keep_versions = cfg->admin_keep_versions, .max_seq_len = cfg->max_seq_len};
        admin_deps ad = {.cfg = cfg, .reg = reg, .store = &store, .log = &lg};
        if (jobs_start(&jo, &jobs, &err) != BCT_OK) {
            srv_logf(&lg, SRV_LOG_ERROR, "%s", err.msg);
            goto out;
        }
        ad.jobs = jobs;
        if (admin_create(&ad, &admin, &err) != BCT_OK) {
            srv_logf(&lg, SRV_LOG_ERROR, "%s", err.msg);
            goto out;
        }
    }
    /* What crashed writers left behind (the admin replica also clears its
     * staging area and unpublished compressions). */
    if (have_store) store_cleanup(store.dir, admin != NULL, &lg);
    if (admin && store_staging_prepare(admin_staging_dir(admin), store.dir, &lg, &err) != BCT_OK) {
        srv_logf(&lg, SRV_LOG_ERROR, "%s", err.msg);
        goto out;
    }
    http_deps hd = {.cfg = cfg, .reg = reg, .bat = bat, .metrics = metrics, .alog = alog,
                    .life = &life, .log = &lg, .workers = threads, .admin = admin};
    if (http_start(&hd, &http, &err) != BCT_OK) {
        srv_logf(&lg, SRV_LOG_ERROR, "%s", err.msg);
        goto out;
    }
    srv_logf(&lg, SRV_LOG_INFO,
             "listening on %s:%d (%d workers x %d engine threads, batches of up to %d inputs / %d tokens, "
             "int8 kernels %s)",
             cfg->host, http_port(http), threads, intra, cfg->max_batch_size, cfg->max_batch_tokens,
             bct_isa_name(qgemm_isa()));
    if (port_file && write_port_file(port_file, http_port(http), &lg) != 0) goto out;

    int sig = load_models(reg, cfg, &lg);
    if (sig < 0) goto out;
    if (sig == 0 && have_store && cfg->store_rescan_s > 0) {
        watch_opts wo = {.store = &store, .reg = reg, .log = &lg, .max_seq_len = cfg->max_seq_len,
                         .rescan_s = cfg->store_rescan_s};
        if (watch_start(&wo, &watch, &err) != BCT_OK) {
            srv_logf(&lg, SRV_LOG_ERROR, "%s", err.msg);
            goto out;
        }
    }
    if (sig == 0) {
        lifecycle_set_ready(&life);
        srv_model *def = registry_acquire(reg, NULL);
        srv_logf(&lg, SRV_LOG_INFO, "ready: %d model(s), default \"%s\"; %d store entr%s failed to load",
                 registry_count(reg), def->name, registry_failure_count(reg),
                 registry_failure_count(reg) == 1 ? "y" : "ies");
        registry_release(def);
        sig = wait_signal(-1);
    }
    srv_logf(&lg, SRV_LOG_INFO, "%s: draining (in flight: %d requests, %d queued inputs)",
             signal_name(sig), batcher_in_flight(bat), batcher_queue_depth(bat));
    drain(&life, bat, http, cfg, &lg);
    rc = 0;
out:
    if (http) {
        if (rc != 0) {
            /* Failed start: no request was ever admitted (not ready), but
             * be as careful as the graceful path. */
            lifecycle_drain(&life, 0);
            batcher_cancel_all(bat);
            batcher_wait_idle(bat, -1);
            while (http_suspended(http) > 0) usleep(1000);
        }
        http_stop(http);
    }
    watch_stop(watch);
    jobs_stop(jobs); /* a running compression stops at its next tensor */
    admin_free(admin);
    batcher_stop(bat);
    workers_stop(workers);
    registry_free(reg);
    if (have_store) store_destroy(&store);
    access_log_close(alog);
    metrics_free(metrics);
    lifecycle_destroy(&life);
    restore_signals();
    if (rc == 0) srv_logf(&lg, SRV_LOG_INFO, "stopped");
    return rc;
}
