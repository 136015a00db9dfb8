#define _GNU_SOURCE /* gettid */
#include "store_watch.h"

#include <dirent.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>


#define WATCH_SETTLE_MS 200
/* A file modified less than this long ago is still being written (cp,
 * rsync --inplace, a shell redirect that creates it before writing): it is
 * tried on a later scan, so that a half-written file is not reported as a
 * failure and then reported again once complete (issue 17, the flaky
 * admin_watch test). */
#define WATCH_QUIET_MS 1000

/* A model folder being watched. */
typedef struct watched_dir {
    char name[SRV_MODEL_NAME_LEN];
    unsigned long long ino;
    uv_fs_event_t *ev; /* heap: freed by its close callback */
    int seen;          /* still there in the last scan */
} watched_dir;

/* A file that failed to load: not tried again until it changes. */
typedef struct failed_file {
    char name[SRV_MODEL_NAME_LEN];
    char path[4096];
    srv_file_id id;
} failed_file;

struct store_watch {
    watch_opts o;
    uv_loop_t loop;
    uv_async_t stop;
    uv_timer_t periodic, settle;
    uv_fs_event_t root;
    int root_ok;
    watched_dir *dirs;
    int n_dirs, cap_dirs;
    failed_file *failed;
    int n_failed, cap_failed;
    pthread_t thread;
};

static int same_id(const srv_file_id *a, const srv_file_id *b) {
    return a->dev == b->dev && a->ino == b->ino && a->size == b->size && a->mtime_ns == b->mtime_ns;
}

static int ignored_name(const char *f) { return f && (f[0] == '.' || strstr(f, ".tmp.")); }

/* ---- failed files ---- */

static failed_file *find_failed(store_watch *w, const char *name) {
    for (int i = 0; i < w->n_failed; i++)
        if (!strcmp(w->failed[i].name, name)) return &w->failed[i];
    return NULL;
}

static void forget_failed(store_watch *w, const char *name) {
    failed_file *f = find_failed(w, name);
    if (f) *f = w->failed[--w->n_failed];
}

static void remember_failed(store_watch *w, const store_entry *e) {
    failed_file *f = find_failed(w, e->name);
    if (!f) {
        if (w->n_failed == w->cap_failed) {
            int cap = w->cap_failed ? w->cap_failed * 2 : 8;
            failed_file *p = realloc(w->failed, (size_t)cap * sizeof(*p));
            if (!p) return; /* then it is simply retried next scan */
            w->failed = p;
            w->cap_failed = cap;
        }
        f = &w->failed[w->n_failed++];
    }
    snprintf(f->name, sizeof(f->name), "%s", e->name);
    snprintf(f->path, sizeof(f->path), "%s", e->path);
    f->id = e->id;
}

/* ---- the scan ---- */

typedef struct todo {
    store_entry e;
    srv_model *expect; /* acquired: the entry it replaces, or NULL */
} todo;

/* Loads, probes and swaps in one changed entry. */
static void load_entry(store_watch *w, todo *t) {
    const store_entry *e = &t->e;
    bct_error err = {{0}};
    srv_model *m = NULL;
    uint64_t t0 = srv_now_ns();
    if (store_open_entry(e, w->o.max_seq_len, &m, &err) != BCT_OK) {
        srv_logf(w->o.log, SRV_LOG_WARN,
                 "model store: cannot load \"%s\" from %s (tried again when the file changes): %s",
                 e->name, e->path, err.msg);
        remember_failed(w, e);
        registry_note_failure(w->o.reg, e->name, err.msg);
        return;
    }
    forget_failed(w, e->name);
    store_lock(w->o.store);
    int put = registry_put_if(w->o.reg, m, t->expect, &err);
    store_unlock(w->o.store);
    if (put == BCT_OK)
        srv_logf(w->o.log, SRV_LOG_INFO, "model store: %s \"%s\" version %d from %s (%.0f ms)",
                 t->expect ? "replaced" : "loaded", e->name, e->version, e->path,
                 (double)(srv_now_ns() - t0) * 1e-6);
    else if (put != BCT_ECONFLICT) /* changed meanwhile: the next scan sees it */
        srv_logf(w->o.log, SRV_LOG_WARN, "model store: cannot add \"%s\": %s", e->name, err.msg);
}

/* Models of the registry that came from the store and are gone from it. */
static void unload_missing(store_watch *w, const store_entry *ents, int n) {
    srv_model **list;
    int cnt, def;
    if (registry_list(w->o.reg, &list, &cnt, &def) != BCT_OK) return;
    for (int i = 0; i < cnt; i++) {
        srv_model *m = list[i];
        int present = 0;
        for (int k = 0; k < n && !present; k++) present = !strcmp(ents[k].name, m->name);
        if (m->from_store && !present) {
            bct_error err = {{0}};
            if (i == def)
                srv_logf(w->o.log, SRV_LOG_DEBUG,
                         "model store: \"%s\" is gone from the store but is the default: kept",
                         m->name);
            else if (registry_remove_if(w->o.reg, m, &err) == 1)
                srv_logf(w->o.log, SRV_LOG_INFO, "model store: \"%s\" is gone from the store: unloaded",
                         m->name);
        }
        registry_release(m);
    }
    free(list);
}

/* Failures reported for entries that are gone from the store. */
static void forget_missing_failures(store_watch *w, const store_entry *ents, int n) {
    registry_failure *f;
    int nf;
    if (registry_failures(w->o.reg, &f, &nf) != BCT_OK) return;
    for (int i = 0; i < nf; i++) {
        int present = 0;
        for (int k = 0; k < n && !present; k++) present = !strcmp(ents[k].name, f[i].name);
        if (!present) {
            registry_forget_failure(w->o.reg, f[i].name);
            forget_failed(w, f[i].name);
        }
    }
    free(f);
}

static void watch_dirs(store_watch *w);
static void on_settle(uv_timer_t *t);

/* Whether e's file changed within WATCH_QUIET_MS (a clock skewed into the
 * future, e.g. on a network filesystem, does not count). */
static int still_written(const store_entry *e) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    long long age_ns = (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec - e->id.mtime_ns;
    return age_ns >= 0 && age_ns < WATCH_QUIET_MS * 1000000LL;
}

static void rescan(store_watch *w) {
    store_entry *ents;
    int n;
    bct_error err = {{0}};
    if (store_scan(w->o.store->dir, &ents, &n, &err) != BCT_OK) {
        srv_logf(w->o.log, SRV_LOG_WARN, "%s", err.msg);
        return;
    }
    todo *todos = calloc((size_t)n + 1, sizeof(*todos));
    int nt = 0;
    store_lock(w->o.store);
    for (int i = 0; todos && i < n; i++) {
        store_entry *e = &ents[i];
        srv_model *cur = registry_acquire(w->o.reg, e->name);
        if (cur && cur->from_store && !strcmp(cur->path, e->path) && same_id(&cur->file, &e->id)) {
            registry_release(cur);
            continue;
        }
        if (cur && !cur->from_store) { /* a --model of the same name wins */
            registry_release(cur);
            continue;
        }
        failed_file *f = find_failed(w, e->name);
        if (f && !strcmp(f->path, e->path) && same_id(&f->id, &e->id)) {
            registry_release(cur);
            continue;
        }
        if (still_written(e)) {
            registry_release(cur);
            if (!uv_is_active((uv_handle_t *)&w->settle))
                uv_timer_start(&w->settle, on_settle, WATCH_QUIET_MS, 0);
            continue;
        }
        todos[nt].e = *e;
        todos[nt].expect = cur;
        nt++;
    }
    unload_missing(w, ents, n);
    forget_missing_failures(w, ents, n);
    store_unlock(w->o.store);
    for (int i = 0; i < nt; i++) {
        load_entry(w, &todos[i]);
        registry_release(todos[i].expect);
    }
    free(todos);
    free(ents);
    watch_dirs(w);
}

/* ---- libuv plumbing (loop thread) ---- */

static void on_settle(uv_timer_t *t) { rescan(t->data); }
static void on_periodic(uv_timer_t *t) { rescan(t->data); }

static void on_fs_event(uv_fs_event_t *h, const char *filename, int events, int status) {
    store_watch *w = h->data;
    (void)events;
    if (status < 0 || ignored_name(filename)) return;
    if (!uv_is_active((uv_handle_t *)&w->settle)) uv_timer_start(&w->settle, on_settle, WATCH_SETTLE_MS, 0);
}

static void free_handle(uv_handle_t *h) { free(h); }

/* Watches every model folder of the store (once, by inode). */
static void watch_dirs(store_watch *w) {
    for (int i = 0; i < w->n_dirs; i++) w->dirs[i].seen = 0;
    DIR *d = opendir(w->o.store->dir);
    struct dirent *de;
    while (d && (de = readdir(d))) {
        if (ignored_name(de->d_name) || strlen(de->d_name) >= sizeof(w->dirs[0].name)) continue;
        char p[4400];
        struct stat st;
        snprintf(p, sizeof(p), "%s/%s", w->o.store->dir, de->d_name);
        if (stat(p, &st) != 0 || !S_ISDIR(st.st_mode)) continue;
        int k;
        for (k = 0; k < w->n_dirs; k++)
            if (!strcmp(w->dirs[k].name, de->d_name) && w->dirs[k].ino == (unsigned long long)st.st_ino)
                break;
        if (k < w->n_dirs) {
            w->dirs[k].seen = 1;
            continue;
        }
        if (w->n_dirs == w->cap_dirs) {
            int cap = w->cap_dirs ? w->cap_dirs * 2 : 16;
            watched_dir *q = realloc(w->dirs, (size_t)cap * sizeof(*q));
            if (!q) break;
            w->dirs = q;
            w->cap_dirs = cap;
        }
        uv_fs_event_t *ev = malloc(sizeof(*ev));
        if (!ev || uv_fs_event_init(&w->loop, ev) != 0) {
            free(ev);
            break;
        }
        ev->data = w;
        if (uv_fs_event_start(ev, on_fs_event, p, 0) != 0) {
            uv_close((uv_handle_t *)ev, free_handle);
            continue; /* the periodic rescan still covers it */
        }
        watched_dir *wd = &w->dirs[w->n_dirs++];
        snprintf(wd->name, sizeof(wd->name), "%s", de->d_name);
        wd->ino = (unsigned long long)st.st_ino;
        wd->ev = ev;
        wd->seen = 1;
    }
    if (d) closedir(d);
    for (int i = 0; i < w->n_dirs;) {
        if (w->dirs[i].seen) {
            i++;
            continue;
        }
        uv_close((uv_handle_t *)w->dirs[i].ev, free_handle);
        w->dirs[i] = w->dirs[--w->n_dirs];
    }
}

static void on_stop(uv_async_t *a) {
    store_watch *w = a->data;
    for (int i = 0; i < w->n_dirs; i++) uv_close((uv_handle_t *)w->dirs[i].ev, free_handle);
    w->n_dirs = 0;
    if (w->root_ok) uv_close((uv_handle_t *)&w->root, NULL);
    uv_close((uv_handle_t *)&w->periodic, NULL);
    uv_close((uv_handle_t *)&w->settle, NULL);
    uv_close((uv_handle_t *)&w->stop, NULL);
}

static void *watch_main(void *arg) {
    store_watch *w = arg;
    if (setpriority(PRIO_PROCESS, (id_t)gettid(), 10) != 0) { /* not fatal */ }
    rescan(w); /* what changed between the start-up load and now */
    uv_run(&w->loop, UV_RUN_DEFAULT);
    return NULL;
}

int watch_start(const watch_opts *o, store_watch **out, bct_error *err) {
    store_watch *w = calloc(1, sizeof(*w));
    if (!w) return bct_fail(err, BCT_ENOMEM, "out of memory");
    w->o = *o;
    if (w->o.rescan_s < 1) w->o.rescan_s = 1;
    int rc = uv_loop_init(&w->loop);
    if (rc != 0) {
        free(w);
        return bct_fail(err, BCT_EIO, "cannot start the store watcher: %s", uv_strerror(rc));
    }
    /* Each handle initialised is closed, in reverse, if a later one fails. */
    uv_handle_t *inited[3];
    int n_inited = 0;
    const char *what = "uv_async_init";
    if ((rc = uv_async_init(&w->loop, &w->stop, on_stop)) == 0) {
        inited[n_inited++] = (uv_handle_t *)&w->stop;
        what = "uv_timer_init";
        if ((rc = uv_timer_init(&w->loop, &w->periodic)) == 0) {
            inited[n_inited++] = (uv_handle_t *)&w->periodic;
            if ((rc = uv_timer_init(&w->loop, &w->settle)) == 0) inited[n_inited++] = (uv_handle_t *)&w->settle;
        }
    }
    if (rc != 0) {
        while (n_inited > 0) uv_close(inited[--n_inited], NULL);
        uv_run(&w->loop, UV_RUN_DEFAULT);
        uv_loop_close(&w->loop);
        free(w);
        return bct_fail(err, BCT_EIO, "cannot start the store watcher: %s: %s", what, uv_strerror(rc));
    }
    w->stop.data = w->periodic.data = w->settle.data = w;
    rc = uv_fs_event_init(&w->loop, &w->root);
    w->root.data = w;
    if (rc == 0) rc = uv_fs_event_start(&w->root, on_fs_event, o->store->dir, 0);
    if (rc == 0) w->root_ok = 1;
    else {
        srv_logf(o->log, SRV_LOG_WARN, "cannot watch %s (%s): rescanning every %d s only",
                 o->store->dir, uv_strerror(rc), w->o.rescan_s);
        if (w->root.loop) uv_close((uv_handle_t *)&w->root, NULL);
    }
    uint64_t every = (uint64_t)w->o.rescan_s * 1000;
    uv_timer_start(&w->periodic, on_periodic, every, every);
    if ((rc = pthread_create(&w->thread, NULL, watch_main, w)) != 0) {
        on_stop(&w->stop);
        uv_run(&w->loop, UV_RUN_DEFAULT);
        uv_loop_close(&w->loop);
        free(w);
        return bct_fail(err, BCT_EIO, "cannot start the store watcher thread: %s", strerror(rc));
    }
    *out = w;
    return BCT_OK;
}

void watch_stop(store_watch *w) {
    if (!w) return;
    uv_async_send(&w->stop);
    pthread_join(w->thread, NULL);
    uv_loop_close(&w->loop);
    free(w->dirs);
    free(w->failed);
    free(w);
}
