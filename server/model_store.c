#define _GNU_SOURCE /* nftw's FTW_DEPTH / FTW_PHYS */
#include "model_store.h"
#include "model/bert_model.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "formats/bct_file.h"
#include "model_probe.h"

#define PATH_LEN 4096

/* snprintf for paths: 0, or -1 (out emptied) when it does not fit. */
static int path_fmt(char *out, size_t size, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static int path_fmt(char *out, size_t size, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(out, size, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= size) {
        out[0] = '\0';
        return -1;
    }
    return 0;
}

int store_init(model_store *s, const char *dir, bct_error *err) {
    memset(s, 0, sizeof(*s));
    int n = snprintf(s->dir, sizeof(s->dir), "%s", dir);
    if (n < 0 || (size_t)n >= sizeof(s->dir))
        return bct_fail(err, BCT_EINVAL, "model store path is too long");
    pthread_mutex_init(&s->mu, NULL);
    return BCT_OK;
}

void store_destroy(model_store *s) { pthread_mutex_destroy(&s->mu); }
void store_lock(model_store *s) { pthread_mutex_lock(&s->mu); }
void store_unlock(model_store *s) { pthread_mutex_unlock(&s->mu); }

int store_name_check(const char *name, bct_error *err) {
    size_t n = strlen(name);
    if (n == 0 || n > STORE_NAME_MAX)
        return bct_fail(err, BCT_EINVAL, "a model name has 1 to %d characters, got %zu", STORE_NAME_MAX, n);
    if (strchr(name, '/'))
        return bct_fail(err, BCT_EINVAL, "a model name is not a path: it must not contain '/'");
    if (name[0] == '.')
        return bct_fail(err, BCT_EINVAL,
                        "a model name must not start with '.' (hidden entries of the store are not models)");
    for (size_t i = 0; i < n; i++) {
        char c = name[i];
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-'))
            return bct_fail(err, BCT_EINVAL,
                            "a model name may only hold a-z, 0-9, '.', '_' and '-'; byte %zu is not one of them", i);
    }
    return BCT_OK;
}

/* "<digits>.bct" with no leading zero -> its number, else 0. */
static int version_of(const char *file) {
    int v = 0;
    const char *p = file;
    if (*p < '1' || *p > '9') return 0;
    for (; *p >= '0' && *p <= '9'; p++) {
        if (v > 99999999) return 0;
        v = v * 10 + (*p - '0');
    }
    return strcmp(p, ".bct") == 0 ? v : 0;
}

static int ends_with(const char *s, const char *suffix) {
    size_t n = strlen(s), k = strlen(suffix);
    return n > k && !strcmp(s + n - k, suffix);
}

static void id_from_stat(const struct stat *st, srv_file_id *id) {
    id->dev = (unsigned long long)st->st_dev;
    id->ino = (unsigned long long)st->st_ino;
    id->size = (long long)st->st_size;
    id->mtime_ns = (long long)st->st_mtim.tv_sec * 1000000000LL + st->st_mtim.tv_nsec;
}

int store_file_id(const char *path, int checkpoint, srv_file_id *id) {
    char buf[PATH_LEN];
    struct stat st;
    memset(id, 0, sizeof(*id));
    if (checkpoint) {
        if (path_fmt(buf, sizeof(buf), "%s/%s", path, bert_hf_weights_file(path)) != 0) return -1;
        if (stat(buf, &st) != 0) {
            if (path_fmt(buf, sizeof(buf), "%s/config.json", path) != 0 || stat(buf, &st) != 0)
                return -1;
        }
    } else if (stat(path, &st) != 0) {
        return -1;
    }
    id_from_stat(&st, id);
    return 0;
}

/* The highest <n>.bct regular file in folder, 0 if none. */
static int highest_version(const char *folder) {
    DIR *d = opendir(folder);
    if (!d) return 0;
    int best = 0;
    struct dirent *de;
    while ((de = readdir(d))) {
        int v = version_of(de->d_name);
        if (v <= best) continue;
        char p[PATH_LEN];
        struct stat st;
        if (path_fmt(p, sizeof(p), "%s/%s", folder, de->d_name) == 0 && stat(p, &st) == 0 &&
            S_ISREG(st.st_mode))
            best = v;
    }
    closedir(d);
    return best;
}

static int has_config(const char *folder) {
    char p[PATH_LEN];
    struct stat st;
    return path_fmt(p, sizeof(p), "%s/config.json", folder) == 0 && stat(p, &st) == 0;
}

static int by_name(const void *a, const void *b) {
    return strcmp(((const store_entry *)a)->name, ((const store_entry *)b)->name);
}

int store_scan(const char *dir, store_entry **out, int *n, bct_error *err) {
    *out = NULL;
    *n = 0;
    DIR *d = opendir(dir);
    if (!d) return bct_fail(err, BCT_EIO, "model store %s: %s", dir, strerror(errno));
    store_entry *list = NULL;
    int cnt = 0, cap = 0, rc = BCT_OK;
    struct dirent *de;
    while ((de = readdir(d))) {
        const char *f = de->d_name;
        if (f[0] == '.' || strstr(f, ".tmp.")) continue;
        char path[PATH_LEN];
        struct stat st;
        store_entry e;
        memset(&e, 0, sizeof(e));
        /* (room for "/<n>.bct" after a folder's path) */
        if (strlen(f) >= sizeof(e.name) || strlen(dir) + strlen(f) + 16 >= sizeof(e.path) ||
            path_fmt(path, sizeof(path), "%s/%s", dir, f) != 0 || stat(path, &st) != 0)
            continue;
        int flat = 0;
        if (S_ISREG(st.st_mode) && ends_with(f, ".bct")) {
            flat = 1;
            memcpy(e.name, f, strlen(f) - 4);
            memcpy(e.path, path, strlen(path) + 1);
            e.version = 1;
        } else if (S_ISDIR(st.st_mode) && has_config(path)) {
            memcpy(e.name, f, strlen(f) + 1);
            memcpy(e.path, path, strlen(path) + 1);
            e.version = 1;
            e.checkpoint = 1;
        } else if (S_ISDIR(st.st_mode)) {
            int v = highest_version(path);
            if (!v) continue;
            memcpy(e.name, f, strlen(f) + 1);
            if (path_fmt(e.path, sizeof(e.path), "%s/%d.bct", path, v) != 0) continue;
            e.version = v;
        } else {
            continue;
        }
        if (store_file_id(e.path, e.checkpoint, &e.id) != 0 || store_is_unloaded(dir, e.name)) continue;
        /* A flat <name>.bct and a folder <name>/: the folder wins (the
         * flat file is its version 1). */
        int dup = -1;
        for (int i = 0; i < cnt; i++)
            if (!strcmp(list[i].name, e.name)) dup = i;
        if (dup >= 0) {
            if (!flat) list[dup] = e;
            continue;
        }
        if (cnt == cap) {
            cap = cap ? cap * 2 : 16;
            store_entry *p = realloc(list, (size_t)cap * sizeof(*p));
            if (!p) {
                rc = bct_fail(err, BCT_ENOMEM, "model store %s: out of memory", dir);
                break;
            }
            list = p;
        }
        list[cnt++] = e;
    }
    closedir(d);
    if (rc != BCT_OK) {
        free(list);
        return rc;
    }
    if (cnt) qsort(list, (size_t)cnt, sizeof(*list), by_name);
    *out = list;
    *n = cnt;
    return BCT_OK;
}

int store_kind(const char *dir, const char *name) {
    char p[PATH_LEN];
    struct stat st;
    if (path_fmt(p, sizeof(p), "%s/%s", dir, name) != 0) return STORE_OTHER;
    if (stat(p, &st) == 0) {
        if (!S_ISDIR(st.st_mode)) return STORE_OTHER;
        return has_config(p) ? STORE_CHECKPOINT : STORE_VERSIONED;
    }
    if (path_fmt(p, sizeof(p), "%s/%s.bct", dir, name) != 0) return STORE_OTHER;
    return stat(p, &st) == 0 && S_ISREG(st.st_mode) ? STORE_FLAT : STORE_ABSENT;
}

static int sync_dir(const char *path) {
    int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) return -1;
    int rc = fsync(fd);
    close(fd);
    return rc;
}

int store_pending_path(const char *dir, const char *name, const char *job_id, char *out,
                       size_t size, bct_error *err) {
    int kind = store_kind(dir, name);
    if (kind == STORE_CHECKPOINT)
        return bct_fail(err, BCT_EINVAL,
                        "\"%s\" is a checkpoint folder in the model store; delete it or choose "
                        "another name",
                        name);
    if (kind == STORE_OTHER)
        return bct_fail(err, BCT_EINVAL, "\"%s\" is taken by a file that is not a model", name);
    if (path_fmt(out, size, "%s/.job-%s.bct", dir, job_id) != 0)
        return bct_fail(err, BCT_EINVAL, "model store path is too long");
    return BCT_OK;
}

/* Moves path into <dir>/.trash/<unix time>-<label>. */
static int to_trash(const char *dir, const char *path, const char *label) {
    char trash[PATH_LEN], dst[PATH_LEN];
    if (path_fmt(trash, sizeof(trash), "%s/.trash", dir) != 0) return -1;
    if (mkdir(trash, 0755) != 0 && errno != EEXIST) return -1;
    long long now = (long long)time(NULL);
    for (int k = 0; k < 100; k++) {
        struct stat st;
        if (path_fmt(dst, sizeof(dst), "%s/%lld-%d-%s", trash, now, k, label) != 0) return -1;
        if (lstat(dst, &st) != 0 && errno == ENOENT) return rename(path, dst);
    }
    return -1;
}

/* Versions of <dir>/<name>/ sorted descending (malloc'ed). */
static int list_versions(const char *folder, int **out) {
    *out = NULL;
    DIR *d = opendir(folder);
    if (!d) return 0;
    int *v = NULL, n = 0, cap = 0;
    struct dirent *de;
    while ((de = readdir(d))) {
        int x = version_of(de->d_name);
        if (!x) continue;
        if (n == cap) {
            cap = cap ? cap * 2 : 8;
            int *p = realloc(v, (size_t)cap * sizeof(*p));
            if (!p) break;
            v = p;
        }
        v[n++] = x;
    }
    closedir(d);
    for (int i = 1; i < n; i++) /* insertion sort, descending: few entries */
        for (int j = i; j > 0 && v[j] > v[j - 1]; j--) {
            int t = v[j];
            v[j] = v[j - 1];
            v[j - 1] = t;
        }
    *out = v;
    return n;
}

int store_report_path(const char *bct_path, char *out, size_t size) {
    size_t n = strlen(bct_path);
    if (n < 4 || strcmp(bct_path + n - 4, ".bct") != 0 ||
        path_fmt(out, size, "%.*s.report.json", (int)(n - 4), bct_path) != 0)
        return BCT_EINVAL;
    return BCT_OK;
}

char *store_report_read(const char *bct_path) {
    char p[PATH_LEN];
    if (store_report_path(bct_path, p, sizeof(p)) != BCT_OK) return NULL;
    FILE *f = fopen(p, "rb");
    if (!f) return NULL;
    char *buf = malloc(STORE_REPORT_MAX + 1);
    size_t n = buf ? fread(buf, 1, STORE_REPORT_MAX + 1, f) : 0;
    fclose(f);
    if (!buf || n > STORE_REPORT_MAX) {
        free(buf);
        return NULL;
    }
    buf[n] = '\0';
    return buf;
}

/* report -> the sidecar of final, through a hidden temp file. */
static int write_report(const char *final, const char *report, bct_error *err) {
    char p[PATH_LEN], tmp[PATH_LEN];
    if (store_report_path(final, p, sizeof(p)) != BCT_OK ||
        path_fmt(tmp, sizeof(tmp), "%s.tmp", p) != 0)
        return bct_fail(err, BCT_EINVAL, "model store path is too long");
    /* "<n>.report.json.tmp" is no version to a reader (version_of). */
    FILE *f = fopen(tmp, "wb");
    size_t len = strlen(report);
    int ok = f && fwrite(report, 1, len, f) == len;
    if (f && fclose(f) != 0) ok = 0;
    if (!ok || rename(tmp, p) != 0) {
        int e = errno;
        unlink(tmp);
        return bct_fail(err, BCT_EIO, "cannot write %s: %s", p, strerror(e));
    }
    return BCT_OK;
}

int store_publish(model_store *s, const char *name, const char *pending, int keep, int *version,
                  char *final, size_t size, const srv_log *lg, bct_error *err) {
    return store_publish_report(s, name, pending, NULL, keep, version, final, size, lg, err);
}

int store_publish_report(model_store *s, const char *name, const char *pending, const char *report,
                         int keep, int *version, char *final, size_t size, const srv_log *lg,
                         bct_error *err) {
    char folder[PATH_LEN], flat[PATH_LEN], p[PATH_LEN], rp[PATH_LEN];
    if (path_fmt(folder, sizeof(folder), "%s/%s", s->dir, name) != 0 ||
        path_fmt(flat, sizeof(flat), "%s/%s.bct", s->dir, name) != 0)
        return bct_fail(err, BCT_EINVAL, "model store path is too long");
    struct stat st;
    int have_flat = stat(flat, &st) == 0 && S_ISREG(st.st_mode);
    if (mkdir(folder, 0755) != 0 && errno != EEXIST)
        return bct_fail(err, BCT_EIO, "cannot create %s: %s", folder, strerror(errno));
    int v = highest_version(folder);
    if (v == 0 && have_flat) v = 1; /* the flat file is version 1 */
    v++;
    if (path_fmt(final, size, "%s/%d.bct", folder, v) != 0)
        return bct_fail(err, BCT_EINVAL, "model store path is too long");
    /* The report first: whoever sees the version sees its report. */
    if (report && write_report(final, report, err) != BCT_OK) return BCT_EIO;
    if (!report && store_report_path(final, rp, sizeof(rp)) == BCT_OK) unlink(rp); /* a stale one */
    /* link() would refuse to replace; nothing else writes here, so a plain
     * rename of a hidden file to a free name is the atomic publish. */
    if (rename(pending, final) != 0)
        return bct_fail(err, BCT_EIO, "cannot rename %s to %s: %s", pending, final, strerror(errno));
    if (sync_dir(folder) != 0)
        srv_logf(lg, SRV_LOG_WARN, "cannot sync %s: %s", folder, strerror(errno));
    *version = v;
    /* Tidy up; the served version does not depend on any of this. */
    if (have_flat && path_fmt(p, sizeof(p), "%s/1.bct", folder) == 0 && stat(p, &st) != 0 &&
        rename(flat, p) != 0)
        srv_logf(lg, SRV_LOG_WARN, "cannot move %s to %s: %s", flat, p, strerror(errno));
    int *vers, nv = list_versions(folder, &vers);
    for (int i = keep; i < nv; i++) {
        char label[STORE_NAME_MAX * 4 + 32];
        if (path_fmt(p, sizeof(p), "%s/%d.bct", folder, vers[i]) != 0 ||
            path_fmt(label, sizeof(label), "%s-%d.bct", name, vers[i]) != 0 ||
            to_trash(s->dir, p, label) != 0)
            srv_logf(lg, SRV_LOG_WARN, "cannot move old version %s to the trash: %s", p, strerror(errno));
        else if (store_report_path(p, rp, sizeof(rp)) == BCT_OK && access(rp, F_OK) == 0 &&
                 (path_fmt(label, sizeof(label), "%s-%d.report.json", name, vers[i]) != 0 ||
                  to_trash(s->dir, rp, label) != 0))
            srv_logf(lg, SRV_LOG_WARN, "cannot move %s to the trash: %s", rp, strerror(errno));
    }
    free(vers);
    sync_dir(s->dir);
    return BCT_OK;
}

int store_remove(model_store *s, const char *name, int *removed, bct_error *err) {
    char folder[PATH_LEN], flat[PATH_LEN], label[PATH_LEN];
    int kind = store_kind(s->dir, name);
    *removed = 0;
    if (kind == STORE_ABSENT || kind == STORE_OTHER ||
        path_fmt(folder, sizeof(folder), "%s/%s", s->dir, name) != 0 ||
        path_fmt(flat, sizeof(flat), "%s/%s.bct", s->dir, name) != 0)
        return bct_fail(err, BCT_EINVAL, "the model store holds no model \"%s\"", name);
    /* The flat file first: a reader scanning in between still sees the
     * folder's version, never the flat file alone. */
    struct stat st;
    if (stat(flat, &st) == 0 && S_ISREG(st.st_mode)) {
        if (path_fmt(label, sizeof(label), "%s.bct", name) != 0 || to_trash(s->dir, flat, label) != 0)
            return bct_fail(err, BCT_EIO, "cannot move %s to the trash: %s", flat, strerror(errno));
        (*removed)++;
    }
    if (stat(folder, &st) == 0 && S_ISDIR(st.st_mode)) {
        int *vers;
        *removed += kind == STORE_CHECKPOINT ? 1 : list_versions(folder, &vers);
        if (kind != STORE_CHECKPOINT) free(vers);
        if (path_fmt(label, sizeof(label), "%s.d", name) != 0 || to_trash(s->dir, folder, label) != 0)
            return bct_fail(err, BCT_EIO, "cannot move %s to the trash: %s", folder, strerror(errno));
    }
    sync_dir(s->dir);
    return BCT_OK;
}

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw) {
    (void)st;
    (void)ftw;
    return (flag == FTW_DP ? rmdir(path) : unlink(path)) == 0 || errno == ENOENT ? 0 : -1;
}

int store_rmtree(const char *path) {
    struct stat st;
    if (lstat(path, &st) != 0) return errno == ENOENT ? BCT_OK : BCT_EIO;
    if (!S_ISDIR(st.st_mode)) return unlink(path) == 0 ? BCT_OK : BCT_EIO;
    return nftw(path, rm_entry, 16, FTW_DEPTH | FTW_PHYS) == 0 ? BCT_OK : BCT_EIO;
}

int store_remove_upload(const char *dir) {
    DIR *d = opendir(dir);
    if (!d) return errno == ENOENT ? BCT_OK : BCT_EIO;
    int rc = BCT_OK;
    struct dirent *de;
    while ((de = readdir(d))) {
        char p[PATH_LEN];
        if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, "..") || !strcmp(de->d_name, STORE_UPLOAD_MARKER))
            continue;
        if (path_fmt(p, sizeof(p), "%s/%s", dir, de->d_name) != 0 || store_rmtree(p) != BCT_OK) rc = BCT_EIO;
    }
    closedir(d);
    char m[PATH_LEN];
    if (rc != BCT_OK || path_fmt(m, sizeof(m), "%s/" STORE_UPLOAD_MARKER, dir) != 0) return BCT_EIO;
    if (unlink(m) != 0 && errno != ENOENT) return BCT_EIO;
    return rmdir(dir) == 0 || errno == ENOENT ? BCT_OK : BCT_EIO;
}

/* Removes every entry of dir that drop() picks, with remove().  Returns
 * how many went. */
static int sweep(const char *dir, int (*drop)(const char *name, void *ud), void *ud,
                 int (*remove_fn)(const char *path), const srv_log *lg) {
    DIR *d = opendir(dir);
    if (!d) return 0;
    int removed = 0;
    struct dirent *de;
    while ((de = readdir(d))) {
        if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, "..") || !drop(de->d_name, ud)) continue;
        char p[PATH_LEN];
        if (path_fmt(p, sizeof(p), "%s/%s", dir, de->d_name) != 0) continue;
        if (remove_fn(p) == 0) removed++;
        else srv_logf(lg, SRV_LOG_DEBUG, "cannot remove %s: %s", p, strerror(errno));
    }
    closedir(d);
    return removed;
}

static int drop_pending(const char *name, void *ud) {
    (void)ud;
    return !strncmp(name, ".job-", 5) && ends_with(name, ".bct");
}

static int drop_old_trash(const char *name, void *ud) {
    long long now = *(const long long *)ud;
    char *end;
    long long t = strtoll(name, &end, 10);
    return end != name && *end == '-' && now - t >= STORE_TRASH_DELAY_S;
}

void store_empty_trash(const char *dir, const srv_log *lg) {
    char trash[PATH_LEN];
    long long now = (long long)time(NULL);
    if (path_fmt(trash, sizeof(trash), "%s/.trash", dir) == 0) sweep(trash, drop_old_trash, &now, store_rmtree, lg);
}

static int stale_temps(const char *dir, const srv_log *lg) {
    int n = bctf_remove_stale_temps(dir);
    if (n < 0) {
        srv_logf(lg, SRV_LOG_DEBUG, "cannot remove stale temp files in %s", dir);
        return 0;
    }
    return n;
}

int store_cleanup(const char *dir, int writer, const srv_log *lg) {
    int removed = stale_temps(dir, lg);
    if (writer) removed += sweep(dir, drop_pending, NULL, store_rmtree, lg);
    DIR *d = opendir(dir);
    if (d) {
        struct dirent *de;
        while ((de = readdir(d))) {
            if (de->d_name[0] == '.') continue;
            char p[PATH_LEN];
            struct stat st;
            if (path_fmt(p, sizeof(p), "%s/%s", dir, de->d_name) != 0 || lstat(p, &st) != 0 ||
                !S_ISDIR(st.st_mode))
                continue;
            removed += stale_temps(p, lg);
        }
        closedir(d);
    }
    if (writer) store_empty_trash(dir, lg);
    if (removed)
        srv_logf(lg, SRV_LOG_INFO, "model store %s: removed %d leftover file(s) of interrupted writes",
                 dir, removed);
    return removed;
}

/* <dir>/.unloaded/<name>: an empty file per model unloaded by an admin. */
#define UNLOADED_DIR ".unloaded"

int store_is_unloaded(const char *dir, const char *name) {
    char path[PATH_LEN];
    struct stat st;
    return path_fmt(path, sizeof(path), "%s/" UNLOADED_DIR "/%s", dir, name) == 0 && lstat(path, &st) == 0;
}

int store_set_unloaded(model_store *s, const char *name, int unloaded, bct_error *err) {
    char path[PATH_LEN];
    if (path_fmt(path, sizeof(path), "%s/" UNLOADED_DIR, s->dir) != 0)
        return bct_fail(err, BCT_EINVAL, "model store path is too long");
    if (unloaded && mkdir(path, 0755) != 0 && errno != EEXIST)
        return bct_fail(err, BCT_EIO, "cannot create %s: %s", path, strerror(errno));
    if (path_fmt(path, sizeof(path), "%s/" UNLOADED_DIR "/%s", s->dir, name) != 0)
        return bct_fail(err, BCT_EINVAL, "model store path is too long");
    if (!unloaded) {
        if (unlink(path) != 0 && errno != ENOENT)
            return bct_fail(err, BCT_EIO, "cannot remove %s: %s", path, strerror(errno));
        return BCT_OK;
    }
    int fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0644);
    if (fd < 0) return bct_fail(err, BCT_EIO, "cannot create %s: %s", path, strerror(errno));
    close(fd);
    return BCT_OK;
}

int store_find(const char *dir, const char *name, store_entry *out, bct_error *err) {
    store_entry *list;
    int n, rc = store_scan(dir, &list, &n, err);
    if (rc != BCT_OK) return rc;
    rc = bct_fail(err, BCT_EINVAL, "no model named \"%s\" in the store %s", name, dir);
    for (int i = 0; i < n; i++)
        if (!strcmp(list[i].name, name)) {
            *out = list[i];
            rc = BCT_OK;
        }
    free(list);
    return rc;
}

int store_open_entry(const store_entry *e, int max_seq_len, srv_model **out, bct_error *err) {
    srv_model *m = NULL;
    int rc = registry_open(e->name, e->path, max_seq_len, &m, err);
    if (rc == BCT_OK) rc = registry_set_origin(m, e->path, e->version, 1, &e->id, err);
    if (rc == BCT_OK) rc = model_probe(m->m, err);
    if (rc != BCT_OK) {
        registry_release(m);
        return rc;
    }
    *out = m;
    return BCT_OK;
}

/* 1 if <staging>/<name> is an upload folder bct made: a real directory
 * named STORE_UPLOAD_PREFIX... holding the marker, or empty (mkdtemp done,
 * marker not yet written). */
static int is_upload_dir(const char *staging, const char *name) {
    char p[PATH_LEN];
    struct stat st;
    if (strncmp(name, STORE_UPLOAD_PREFIX, strlen(STORE_UPLOAD_PREFIX)) != 0 ||
        path_fmt(p, sizeof(p), "%s/%s", staging, name) != 0 || lstat(p, &st) != 0 || !S_ISDIR(st.st_mode))
        return 0;
    char m[PATH_LEN];
    if (path_fmt(m, sizeof(m), "%s/" STORE_UPLOAD_MARKER, p) == 0 && lstat(m, &st) == 0 && S_ISREG(st.st_mode))
        return 1;
    DIR *d = opendir(p);
    if (!d) return 0;
    int empty = 1;
    struct dirent *de;
    while (empty && (de = readdir(d))) empty = !strcmp(de->d_name, ".") || !strcmp(de->d_name, "..");
    closedir(d);
    return empty;
}

static int drop_upload(const char *name, void *ud) { return is_upload_dir(ud, name); }

int store_staging_prepare(const char *staging, const char *store_dir, const srv_log *lg, bct_error *err) {
    struct stat st, sd;
    if (lstat(staging, &st) != 0) {
        if (errno == ENOENT) return BCT_OK;
        return bct_fail(err, BCT_EIO, "admin_staging_dir %s: %s", staging, strerror(errno));
    }
    if (S_ISLNK(st.st_mode))
        return bct_fail(err, BCT_EINVAL,
                        "admin_staging_dir %s is a symlink; bct deletes in its staging directory, so "
                        "it must be a real directory (give its target instead)",
                        staging);
    if (!S_ISDIR(st.st_mode))
        return bct_fail(err, BCT_EINVAL, "admin_staging_dir %s is not a directory", staging);
    if (stat(store_dir, &sd) == 0 && sd.st_dev == st.st_dev && sd.st_ino == st.st_ino)
        return bct_fail(err, BCT_EINVAL,
                        "admin_staging_dir %s is the model store; give it a folder of its own "
                        "(the default is <model_store>/.staging)",
                        staging);
    DIR *d = opendir(staging);
    if (!d) return bct_fail(err, BCT_EIO, "admin_staging_dir %s: %s", staging, strerror(errno));
    int rc = BCT_OK;
    struct dirent *de;
    while (rc == BCT_OK && (de = readdir(d))) {
        if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, "..") || is_upload_dir(staging, de->d_name)) continue;
        rc = bct_fail(err, BCT_EINVAL,
                      "admin_staging_dir %s holds \"%.200s\", which bct did not create; bct only "
                      "deletes its own upload folders there: move it away or choose an empty folder",
                      staging, de->d_name);
    }
    closedir(d);
    if (rc != BCT_OK) return rc;
    int removed = sweep(staging, drop_upload, (void *)staging, store_remove_upload, lg);
    if (removed)
        srv_logf(lg, SRV_LOG_INFO, "admin_staging_dir %s: removed %d upload folder(s) of interrupted uploads",
                 staging, removed);
    return BCT_OK;
}
