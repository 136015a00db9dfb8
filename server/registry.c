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
    registry_failure *failed; /* store entries that did not load, by name */
    int n_failed, cap_failed;
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
    free(r->failed);
    pthread_mutex_destroy(&r->mu);
    free(r);
}

static int valid_name(const char *name) {
    return name[0] && strlen(name) < SRV_MODEL_NAME_LEN && !strchr(name, '/') && strcmp(name, ".") &&
           strcmp(name, "..");
}

int registry_open(const char *name, const char *path, int max_seq_len, srv_model **out,
                  bct_error *err) {
    *out = NULL;
    if (!valid_name(name)) return bct_fail(err, BCT_EINVAL, "invalid model name \"%s\"", name);
    srv_model *m = calloc(1, sizeof(*m));
    if (!m || !(m->name = strdup(name)) || !(m->path = strdup(path))) {
        if (m) model_destroy(m);
        return bct_fail(err, BCT_ENOMEM, "out of memory");
    }
    atomic_init(&m->refs, 1);
    m->version = 1;
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
    *out = m;
    return BCT_OK;
}

int registry_set_origin(srv_model *m, const char *path, int version, int from_store,
                        const srv_file_id *file, bct_error *err) {
    char *p = strdup(path);
    if (!p) return bct_fail(err, BCT_ENOMEM, "out of memory");
    free(m->path);
    m->path = p;
    m->version = version;
    m->from_store = from_store;
    if (file) m->file = *file;
    return BCT_OK;
}

/* Index of name, or where it would go (*found 0).  r->mu held. */
static int position(srv_registry *r, const char *name, int *found) {
    int pos = 0;
    while (pos < r->n && strcmp(r->models[pos]->name, name) < 0) pos++;
    *found = pos < r->n && !strcmp(r->models[pos]->name, name);
    return pos;
}

/* Inserts m at pos.  r->mu held. */
static int insert_at(srv_registry *r, int pos, srv_model *m) {
    if (r->n == r->cap) {
        int cap = r->cap ? r->cap * 2 : 8;
        srv_model **p = realloc(r->models, (size_t)cap * sizeof(*p));
        if (!p) return -1;
        r->models = p;
        r->cap = cap;
    }
    memmove(r->models + pos + 1, r->models + pos, (size_t)(r->n - pos) * sizeof(*r->models));
    r->models[pos] = m;
    r->n++;
    return 0;
}

/* Under r->mu. */
static registry_failure *find_failure(srv_registry *r, const char *name) {
    for (int i = 0; i < r->n_failed; i++)
        if (!strcmp(r->failed[i].name, name)) return &r->failed[i];
    return NULL;
}

static void forget_failure(srv_registry *r, const char *name) {
    registry_failure *f = find_failure(r, name);
    if (f) *f = r->failed[--r->n_failed];
}

int registry_note_failure(srv_registry *r, const char *name, const char *error) {
    int rc = BCT_OK;
    pthread_mutex_lock(&r->mu);
    registry_failure *f = find_failure(r, name);
    if (!f && r->n_failed == r->cap_failed) {
        int cap = r->cap_failed ? r->cap_failed * 2 : 8;
        registry_failure *p = realloc(r->failed, (size_t)cap * sizeof(*p));
        if (p) {
            r->failed = p;
            r->cap_failed = cap;
        }
    }
    if (!f && r->n_failed < r->cap_failed) f = &r->failed[r->n_failed++];
    if (f) {
        snprintf(f->name, sizeof(f->name), "%s", name);
        snprintf(f->error, sizeof(f->error), "%s", error);
    } else {
        rc = BCT_ENOMEM;
    }
    pthread_mutex_unlock(&r->mu);
    return rc;
}

void registry_forget_failure(srv_registry *r, const char *name) {
    pthread_mutex_lock(&r->mu);
    forget_failure(r, name);
    pthread_mutex_unlock(&r->mu);
}

int registry_failure_count(srv_registry *r) {
    pthread_mutex_lock(&r->mu);
    int n = r->n_failed;
    pthread_mutex_unlock(&r->mu);
    return n;
}

int registry_failures(srv_registry *r, registry_failure **out, int *n) {
    *out = NULL;
    pthread_mutex_lock(&r->mu);
    *n = r->n_failed;
    if (*n) *out = malloc((size_t)*n * sizeof(**out));
    if (*out) memcpy(*out, r->failed, (size_t)*n * sizeof(**out));
    int rc = *n && !*out ? BCT_ENOMEM : BCT_OK;
    if (rc != BCT_OK) *n = 0;
    pthread_mutex_unlock(&r->mu);
    return rc;
}

/* expect_any: replace whatever is there. */
static int put(srv_registry *r, srv_model *m, int expect_any, const srv_model *expect, bct_error *err) {
    srv_model *old = NULL;
    int found, rc = BCT_OK;
    pthread_mutex_lock(&r->mu);
    int pos = position(r, m->name, &found);
    srv_model *cur = found ? r->models[pos] : NULL;
    if (!expect_any && cur != expect) {
        rc = bct_fail(err, BCT_ECONFLICT, "the entry \"%s\" changed meanwhile", m->name);
    } else if (found) {
        old = cur;
        r->models[pos] = m;
        if (r->def == old) r->def = m;
    } else if (insert_at(r, pos, m) != 0) {
        rc = bct_fail(err, BCT_ENOMEM, "out of memory");
    }
    if (rc == BCT_OK) forget_failure(r, m->name);
    pthread_mutex_unlock(&r->mu);
    if (rc != BCT_OK) registry_release(m);
    registry_release(old); /* the table's reference */
    return rc;
}

int registry_put(srv_registry *r, srv_model *m, bct_error *err) { return put(r, m, 1, NULL, err); }

int registry_put_if(srv_registry *r, srv_model *m, const srv_model *expect, bct_error *err) {
    return put(r, m, 0, expect, err);
}

int registry_load(srv_registry *r, const char *name, const char *path, int max_seq_len,
                  bct_error *err) {
    srv_model *m;
    int rc = registry_open(name, path, max_seq_len, &m, err);
    if (rc != BCT_OK) return rc;
    int found;
    pthread_mutex_lock(&r->mu);
    int pos = position(r, name, &found);
    rc = found ? bct_fail(err, BCT_EINVAL, "two models are named \"%s\" (%s)", name, path)
         : insert_at(r, pos, m) != 0 ? bct_fail(err, BCT_ENOMEM, "out of memory")
                                     : BCT_OK;
    pthread_mutex_unlock(&r->mu);
    if (rc != BCT_OK) registry_release(m);
    return rc;
}

static int remove_where(srv_registry *r, const char *name, const srv_model *expect, bct_error *err) {
    int found, rc;
    srv_model *old = NULL;
    pthread_mutex_lock(&r->mu);
    int pos = position(r, name, &found);
    if (!found || (expect && r->models[pos] != expect)) {
        rc = bct_fail(err, BCT_EINVAL, "no model \"%s\" is loaded", name);
    } else if (r->models[pos] == r->def) {
        rc = bct_fail(err, BCT_EINVAL, "\"%s\" is the default model", name);
    } else {
        old = r->models[pos];
        memmove(r->models + pos, r->models + pos + 1, (size_t)(r->n - pos - 1) * sizeof(*r->models));
        r->n--;
        rc = BCT_OK;
    }
    pthread_mutex_unlock(&r->mu);
    registry_release(old);
    return rc;
}

int registry_remove(srv_registry *r, const char *name, bct_error *err) {
    return remove_where(r, name, NULL, err);
}

int registry_remove_if(srv_registry *r, const srv_model *m, bct_error *err) {
    return remove_where(r, m->name, m, err) == BCT_OK;
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

const char *registry_architecture(const srv_model *m) { return bert_arch_name(m->m->cfg.arch); }
