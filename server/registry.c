#include "registry.h"

#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

struct srv_registry {
    pthread_mutex_t mu;
    srv_model **models; /* sorted by name */
    int n, cap;
    srv_model *def;
};

int registry_create(srv_registry **out) {
    srv_registry *r = calloc(1, sizeof(*r));
    if (!r) return BCT_ENOMEM;
    pthread_mutex_init(&r->mu, NULL);
    *out = r;
    return BCT_OK;
}

static void model_destroy(srv_model *m) {
    bert_model_free(m->m);
    free(m->name);
    free(m->path);
    free(m);
}

void registry_release(srv_model *m) {
    if (m && atomic_fetch_sub_explicit(&m->refs, 1, memory_order_acq_rel) == 1) model_destroy(m);
}

void registry_free(srv_registry *r) {
    if (!r) return;
    for (int i = 0; i < r->n; i++) registry_release(r->models[i]);
    free(r->models);
    pthread_mutex_destroy(&r->mu);
    free(r);
}

static int valid_name(const char *name) {
    return name[0] && !strchr(name, '/') && strcmp(name, ".") && strcmp(name, "..");
}

int registry_load(srv_registry *r, const char *name, const char *path, int max_seq_len,
                  bct_error *err) {
    if (!valid_name(name)) return bct_fail(err, BCT_EINVAL, "invalid model name \"%s\"", name);
    srv_model *m = calloc(1, sizeof(*m));
    if (!m || !(m->name = strdup(name)) || !(m->path = strdup(path))) {
        if (m) model_destroy(m);
        return bct_fail(err, BCT_ENOMEM, "out of memory");
    }
    atomic_init(&m->refs, 1);
    int rc = bert_model_load(path, &m->m, err);
    if (rc != BCT_OK) {
        model_destroy(m);
        return rc;
    }
    int len = max_seq_len < m->m->cfg.max_pos ? max_seq_len : m->m->cfg.max_pos;
    if ((rc = bert_model_set_max_len(m->m, len, err)) != BCT_OK) {
        model_destroy(m);
        return bct_fail_prefix(err, rc, "%s", path);
    }
    pthread_mutex_lock(&r->mu);
    int pos = 0;
    while (pos < r->n && strcmp(r->models[pos]->name, name) < 0) pos++;
    if (pos < r->n && !strcmp(r->models[pos]->name, name)) {
        pthread_mutex_unlock(&r->mu);
        model_destroy(m);
        return bct_fail(err, BCT_EINVAL, "two models are named \"%s\" (%s)", name, path);
    }
    if (r->n == r->cap) {
        int cap = r->cap ? r->cap * 2 : 8;
        srv_model **p = realloc(r->models, (size_t)cap * sizeof(*p));
        if (!p) {
            pthread_mutex_unlock(&r->mu);
            model_destroy(m);
            return bct_fail(err, BCT_ENOMEM, "out of memory");
        }
        r->models = p;
        r->cap = cap;
    }
    memmove(r->models + pos + 1, r->models + pos, (size_t)(r->n - pos) * sizeof(*r->models));
    r->models[pos] = m;
    r->n++;
    pthread_mutex_unlock(&r->mu);
    return BCT_OK;
}

static int by_str(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

void registry_free_list(char **list, int n) {
    if (!list) return;
    for (int i = 0; i < n; i++) free(list[i]);
    free(list);
}

int registry_scan_store(const char *dir, char ***names, char ***paths, int *n, bct_error *err) {
    *names = *paths = NULL;
    *n = 0;
    DIR *d = opendir(dir);
    if (!d) return bct_fail(err, BCT_EIO, "model store %s: %s", dir, strerror(errno));
    char **ent = NULL;
    int cnt = 0, cap = 0, rc = BCT_OK;
    struct dirent *de;
    while ((de = readdir(d))) {
        if (de->d_name[0] == '.') continue;
        if (cnt == cap) {
            cap = cap ? cap * 2 : 16;
            char **p = realloc(ent, (size_t)cap * sizeof(*p));
            if (!p) {
                rc = BCT_ENOMEM;
                break;
            }
            ent = p;
        }
        if (!(ent[cnt] = strdup(de->d_name))) {
            rc = BCT_ENOMEM;
            break;
        }
        cnt++;
    }
    closedir(d);
    if (rc == BCT_OK && cnt) qsort(ent, (size_t)cnt, sizeof(*ent), by_str);
    char **nm = rc == BCT_OK ? calloc((size_t)cnt + 1, sizeof(*nm)) : NULL;
    char **pt = rc == BCT_OK ? calloc((size_t)cnt + 1, sizeof(*pt)) : NULL;
    if (!nm || !pt) rc = BCT_ENOMEM;
    int k = 0;
    for (int i = 0; rc == BCT_OK && i < cnt; i++) {
        char path[8192], probe[8300];
        struct stat st;
        snprintf(path, sizeof(path), "%s/%s", dir, ent[i]);
        if (stat(path, &st) != 0) continue;
        size_t len = strlen(ent[i]);
        if (S_ISDIR(st.st_mode)) {
            snprintf(probe, sizeof(probe), "%s/config.json", path);
            if (stat(probe, &st) != 0) continue;
            nm[k] = strdup(ent[i]);
        } else if (S_ISREG(st.st_mode) && len > 4 && !strcmp(ent[i] + len - 4, ".bct")) {
            nm[k] = strndup(ent[i], len - 4);
        } else {
            continue;
        }
        pt[k] = strdup(path);
        if (!nm[k] || !pt[k]) {
            rc = BCT_ENOMEM;
            k++;
            break;
        }
        k++;
    }
    registry_free_list(ent, cnt);
    if (rc != BCT_OK) {
        registry_free_list(nm, k);
        registry_free_list(pt, k);
        return bct_fail(err, rc, "model store %s: out of memory", dir);
    }
    *names = nm;
    *paths = pt;
    *n = k;
    return BCT_OK;
}

static srv_model *find(srv_registry *r, const char *name) {
    int lo = 0, hi = r->n - 1;
    while (lo <= hi) {
        int mid = (lo + hi) / 2, c = strcmp(r->models[mid]->name, name);
        if (!c) return r->models[mid];
        if (c < 0) lo = mid + 1;
        else hi = mid - 1;
    }
    return NULL;
}

int registry_set_default(srv_registry *r, const char *name, bct_error *err) {
    pthread_mutex_lock(&r->mu);
    srv_model *m = find(r, name);
    if (m) r->def = m;
    pthread_mutex_unlock(&r->mu);
    return m ? BCT_OK : bct_fail(err, BCT_EINVAL, "default model \"%s\" is not loaded", name);
}

srv_model *registry_acquire(srv_registry *r, const char *name) {
    pthread_mutex_lock(&r->mu);
    srv_model *m = name ? find(r, name) : r->def;
    if (m) atomic_fetch_add_explicit(&m->refs, 1, memory_order_relaxed);
    pthread_mutex_unlock(&r->mu);
    return m;
}

int registry_list(srv_registry *r, srv_model ***out, int *n, int *default_index) {
    pthread_mutex_lock(&r->mu);
    srv_model **list = malloc(((size_t)r->n + 1) * sizeof(*list));
    if (!list) {
        pthread_mutex_unlock(&r->mu);
        return BCT_ENOMEM;
    }
    *default_index = -1;
    for (int i = 0; i < r->n; i++) {
        list[i] = r->models[i];
        atomic_fetch_add_explicit(&list[i]->refs, 1, memory_order_relaxed);
        if (r->models[i] == r->def) *default_index = i;
    }
    *n = r->n;
    pthread_mutex_unlock(&r->mu);
    *out = list;
    return BCT_OK;
}

int registry_count(srv_registry *r) {
    pthread_mutex_lock(&r->mu);
    int n = r->n;
    pthread_mutex_unlock(&r->mu);
    return n;
}

const char *registry_architecture(const srv_model *m) {
    (void)m;
    return "BertForSequenceClassification";
}
