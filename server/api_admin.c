#include "api_admin.h"

#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "errors.h"
#include "glue_data.h"
#include "formats/qcodec.h"
#include "formats/torch_bin.h"
#include "model/bert_config.h"
#include "srv_limits.h"
#include "tokenizer/tokenizer.h"
#include "sbuf.h"
#include "upload.h"
#include "http.h"
#include "srv_limits.h"


static const char *const form_fields[] = {"name",   "preset",     "weights",   "embeddings",
                                          "tables", "block",      "scales",    "activations",
                                          "nonlinear", "calib_n", "task",   "max_drop", "prune_heads", "prune_ffn"};

struct srv_admin {
    admin_deps d;
    char staging[4096];
    upload_file files[6];
    upload_opts up;
};

struct admin_req {
    srv_admin *a;
    int route;
    char arg[160]; /* job id or model name from the path */
    upload *up;
    int reserved;  /* holds a place in the job queue */
    jobs_spec *parked; /* between admin_end and admin_wait */
    pthread_t loader;  /* POST .../load: loads off the HTTP thread */
    int loader_started;
    char name[STORE_NAME_MAX + 1];
    pthread_mutex_t mu; /* reply: written by the intake thread */
    admin_reply reply;
    void (*resume)(void *ud);
    void *ud;
};

/* ---- replies ---- */

static void reply_body(admin_reply *r, int status, sbuf *b) {
    r->status = status;
    r->body = sbuf_take(b, &r->len);
    if (!r->body) {
        static const char oom[] = "{\"error\":\"out of memory\",\"error_type\":\"Internal\"}";
        r->status = srv_err_status(BCT_ENOMEM, &r->error_type);
        r->body = strdup(oom);
        r->len = r->body ? strlen(oom) : 0;
    }
}

static int reply_error(admin_reply *r, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static int reply_error(admin_reply *r, int code, const char *fmt, ...) {
    srv_err e = {.code = code};
    const char *type;
    int status = srv_err_status(code, &type);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e.msg, sizeof(e.msg), fmt, ap);
    va_end(ap);
    sbuf b;
    sbuf_init(&b);
    srv_err_json(&e, &b);
    reply_body(r, status, &b);
    if (r->status == status) r->error_type = type;
    return ADMIN_ANSWER;
}

static int reply_srv_err(admin_reply *r, const srv_err *e) {
    return reply_error(r, e->code, "%s", e->msg);
}

void admin_reply_free(admin_reply *r) {
    free(r->body);
    r->body = NULL;
}

/* ---- set-up ---- */

int admin_create(const admin_deps *d, srv_admin **out, bct_error *err) {
    srv_admin *a = calloc(1, sizeof(*a));
    if (!a) return bct_fail(err, BCT_ENOMEM, "out of memory");
    a->d = *d;
    const srv_config *cfg = d->cfg;
    int n = cfg->admin_staging_dir[0]
                ? snprintf(a->staging, sizeof(a->staging), "%s", cfg->admin_staging_dir)
                : snprintf(a->staging, sizeof(a->staging), "%s/.staging", d->store->dir);
    if (n < 0 || (size_t)n >= sizeof(a->staging)) {
        free(a);
        return bct_fail(err, BCT_EINVAL, "admin_staging_dir is too long");
    }
    long long total = (long long)cfg->admin_max_upload_mb * SRV_MIB;
    /* The small parts: the engine's limit for each file (refused at once
     * rather than after it is on disk); the weights may use the whole
     * upload. */
    a->files[0] = (upload_file){"config", "config.json", BERT_CONFIG_MAX_BYTES};
    a->files[1] = (upload_file){"weights", "model.safetensors", total};
    a->files[2] = (upload_file){"vocab", "vocab.txt", VOCAB_MAX_BYTES};
    a->files[3] = (upload_file){"calibration", "calibration.txt", SRV_CALIB_MAX_BYTES};
    a->files[4] = (upload_file){"tokenizer", "tokenizer.json", TOK_JSON_MAX_BYTES};
    a->files[5] = (upload_file){"eval", "eval.tsv", SRV_EVAL_MAX_BYTES};
    a->up = (upload_opts){.staging_root = a->staging,
                          .max_total = total,
                          .files = a->files,
                          .n_files = (int)(sizeof(a->files) / sizeof(a->files[0])),
                          .fields = form_fields,
                          .n_fields = (int)(sizeof(form_fields) / sizeof(form_fields[0]))};
    *out = a;
    return BCT_OK;
}

void admin_free(srv_admin *a) { free(a); }

const char *admin_staging_dir(const srv_admin *a) { return a->staging; }

long long admin_upload_limit(const srv_admin *a) { return a->up.max_total; }

/* ---- the requests ---- */

int admin_begin(srv_admin *a, struct MHD_Connection *c, int op, const char *arg, int accepting,
                admin_req **out, admin_reply *reply) {
    *out = NULL;
    memset(reply, 0, sizeof(*reply));
    admin_req *q = calloc(1, sizeof(*q));
    if (!q) return reply_error(reply, BCT_ENOMEM, "out of memory");
    pthread_mutex_init(&q->mu, NULL);
    q->a = a;
    q->route = op;
    snprintf(q->arg, sizeof(q->arg), "%s", arg);
    *out = q;
    if (q->route == ADMIN_JOBS || q->route == ADMIN_JOB) return ADMIN_BODY; /* answered at the end */
    if (!accepting)
        return reply_error(reply, BCT_EUNAVAILABLE,
                           "the server is loading models or shutting down; retry shortly");
    if (q->route != ADMIN_COMPRESS) return ADMIN_BODY;
    /* POST /admin/compress */
    long long want = http_content_length(c);
    if (want > a->up.max_total) {
        reply->now = 1;
        return reply_error(reply, BCT_ERANGE,
                           "the upload is %lld bytes, more than admin_max_upload_mb (%d MiB)", want,
                           a->d.cfg->admin_max_upload_mb);
    }
    if (jobs_reserve(a->d.jobs) != BCT_OK) {
        return reply_error(reply, BCT_EBUSY,
                           "the compression queue is full (admin_queue_size %d); retry later",
                           a->d.cfg->admin_queue_size);
    }
    q->reserved = 1;
    /* A store the job could not write (a read-only mount): say so before
     * reading the body rather than in a failed job (issue 17). */
    if (access(a->d.store->dir, W_OK) != 0) {
        int e = errno;
        return reply_error(reply, srv_errno_code(e),
                           "the model store %s is not writable (%s): this server cannot take uploads",
                           a->d.store->dir, strerror(e));
    }
    srv_err e;
    if (upload_begin(c, &a->up, &q->up, &e) != 0) return reply_srv_err(reply, &e);
    return ADMIN_BODY;
}

int admin_body(admin_req *q, const char *data, size_t n) {
    if (!q->up) return 0; /* a GET's or DELETE's body: ignored */
    if (upload_feed(q->up, data, n) == 0) return 0;
    /* Failed: the rest is read and dropped, up to the upload limit. */
    return upload_received(q->up) > q->a->up.max_total + SRV_MIB ? -1 : 0;
}

/* ---- POST /admin/compress ---- */

static int parse_int(const char *v, int lo, int hi, int *out) {
    char *end;
    long x = strtol(v, &end, 10);
    if (end == v || *end || x < lo || x > hi) return -1;
    *out = (int)x;
    return 0;
}

/* The evaluation set's fields (issue 16): the eval file part needs task;
 * task and max_drop need the file.  Its rows are checked by the intake
 * thread, against the checkpoint's labels. */
static int eval_options(const upload *u, jobs_spec *s, admin_reply *reply) {
    const char *task = upload_field(u, "task"), *drop = upload_field(u, "max_drop");
    int has_eval = upload_file_bytes(u, "eval") >= 0;
    s->has_eval = has_eval;
    s->max_drop = -1;
    if (task && (s->eval_task = glue_task_parse(task)) < 0)
        return reply_error(reply, BCT_EINVAL,
                           "field task must be sst2, mrpc, rte or generic, got \"%.40s\"", task);
    if (drop) {
        char *end;
        double v = strtod(drop, &end);
        if (end == drop || *end || !isfinite(v) || v < 0 || v > 100)
            return reply_error(reply, BCT_EINVAL,
                               "field max_drop must be a number of accuracy points in [0, 100], got "
                               "\"%.40s\"",
                               drop);
        s->max_drop = v;
    }
    if (has_eval && !task)
        return reply_error(reply, BCT_EINVAL,
                           "the eval file part needs a task field (sst2, mrpc, rte or generic)");
    if (!has_eval && (task || drop))
        return reply_error(reply, BCT_EINVAL,
                           "field %s needs an eval file part (the evaluation set, TSV)",
                           task ? "task" : "max_drop");
    return ADMIN_BODY;
}

/* The form's options -> compress_opts, as `bct compress` reads its flags. */
static int form_options(const upload *u, jobs_spec *s, admin_reply *reply) {
    bct_error err = {{0}};
    const char *preset = upload_field(u, "preset");
    if (compress_preset(preset ? preset : "w8a8", &s->copts, &err) != BCT_OK)
        return reply_error(reply, BCT_EINVAL, "field preset: %s", err.msg);
    compress_opts *o = &s->copts;
    const char *v;
    int custom = 0;
    static const char *const roles[] = {"weights", "embeddings", "tables"};
    bq_spec *specs[] = {&o->weights, &o->embeddings, &o->tables};
    for (int i = 0; i < 3; i++)
        if ((v = upload_field(u, roles[i]))) {
            if (compress_format_parse(v, specs[i]) != BCT_OK)
                return reply_error(reply, BCT_EINVAL,
                                   "field %s must be q8, q4, q3 or q2, got \"%.40s\"", roles[i], v);
            custom = 1;
        }
    if ((v = upload_field(u, "block"))) {
        int block;
        if (parse_int(v, QMAT_GROUP, BQ_MAX_BLOCK, &block) != 0 || block % QMAT_GROUP)
            return reply_error(reply, BCT_EINVAL,
                               "field block must be a multiple of %d in [%d, %d], got \"%.40s\"", QMAT_GROUP,
                               QMAT_GROUP, BQ_MAX_BLOCK, v);
        o->weights.block = o->embeddings.block = o->tables.block = block;
        custom = 1;
    }
    if ((v = upload_field(u, "scales"))) {
        int enc = qcodec_scale_parse(v);
        if (enc < 0)
            return reply_error(reply, BCT_EINVAL, "field scales must be f16 or log8, got \"%.40s\"", v);
        o->weights.scale = o->embeddings.scale = o->tables.scale = (qscale_enc)enc;
        custom = 1;
    }
    if ((v = upload_field(u, "activations"))) {
        if (strcmp(v, "int8") && strcmp(v, "fp32"))
            return reply_error(reply, BCT_EINVAL,
                               "field activations must be int8 or fp32, got \"%.40s\"", v);
        o->act_int8 = !strcmp(v, "int8");
        custom = 1;
    }
    if ((v = upload_field(u, "nonlinear"))) {
        if (strcmp(v, "int") && strcmp(v, "fp32"))
            return reply_error(reply, BCT_EINVAL,
                               "field nonlinear must be int or fp32, got \"%.40s\"", v);
        o->int_nonlinear = !strcmp(v, "int");
        custom = 1;
    }
    if ((v = upload_field(u, "calib_n")) && parse_int(v, 1, 1000000, &o->calib_max) != 0)
        return reply_error(reply, BCT_EINVAL,
                           "field calib_n must be an integer in [1, 1000000], got \"%.40s\"", v);
    static const char *const prunes[] = {"prune_heads", "prune_ffn"};
    double *fracs[] = {&o->prune_heads, &o->prune_ffn};
    for (int i = 0; i < 2; i++)
        if ((v = upload_field(u, prunes[i]))) {
            char *end;
            *fracs[i] = strtod(v, &end);
            if (end == v || *end || !(*fracs[i] >= 0 && *fracs[i] <= 1))
                return reply_error(reply, BCT_EINVAL, "field %s must be a fraction in [0, 1], got \"%.40s\"",
                                   prunes[i], v);
        }
    if (custom) snprintf(o->preset, sizeof(o->preset), "custom");
    return eval_options(u, s, reply);
}

/* The weights part is staged as model.safetensors whatever it holds; a
 * PyTorch zip checkpoint is renamed pytorch_model.bin so that the loader
 * reads it with the restricted reader (torch_bin.h).  -1 if that fails. */
static int name_staged_weights(const char *dir) {
    char from[4200], to[4200];
    unsigned char head[4];
    snprintf(from, sizeof(from), "%s/model.safetensors", dir);
    FILE *f = fopen(from, "rb");
    if (!f) return -1;
    size_t n = fread(head, 1, sizeof(head), f);
    fclose(f);
    if (!torch_bin_sniff(head, n)) return 0;
    snprintf(to, sizeof(to), "%s/pytorch_model.bin", dir);
    return rename(from, to);
}

static int end_compress(admin_req *q, admin_reply *reply) {
    srv_admin *a = q->a;
    srv_err e;
    if (upload_end(q->up, &e) != 0) return reply_srv_err(reply, &e);
    const upload *u = q->up;
    const char *name = upload_field(u, "name");
    bct_error why = {{0}};
    if (!name)
        return reply_error(reply, BCT_EINVAL, "the upload has no \"name\" field (the model's name)");
    if (store_name_check(name, &why) != BCT_OK)
        return reply_error(reply, BCT_EINVAL, "field name \"%.80s\": %s", name, why.msg);
    snprintf(q->name, sizeof(q->name), "%s", name);
    /* The tokenizer: vocab.txt (WordPiece) or tokenizer.json, as a
     * checkpoint directory holds it (load_hf.c prefers vocab.txt). */
    int has_tok = upload_file_bytes(u, "vocab") >= 0 || upload_file_bytes(u, "tokenizer") >= 0;
    static const char *const required[] = {"config", "weights", "vocab"};
    for (int i = 0; i < 3; i++)
        if (upload_file_bytes(u, required[i]) < 0 && !(i == 2 && has_tok))
            return reply_error(reply, BCT_EINVAL,
                               "the upload has no \"%s\" file part (needed: config = config.json, "
                               "weights = model.safetensors or pytorch_model.bin, vocab = "
                               "vocab.txt or tokenizer = tokenizer.json)",
                               required[i]);
    if (name_staged_weights(upload_dir(u)) != 0)
        return reply_error(reply, BCT_EIO, "cannot stage the uploaded weights");
    int kind = store_kind(a->d.store->dir, name);
    if (kind == STORE_CHECKPOINT || kind == STORE_OTHER)
        return reply_error(reply, BCT_ECONFLICT,
                           "\"%s\" is a %s in the model store, not a compressed model; delete it or "
                           "choose another name",
                           name, kind == STORE_CHECKPOINT ? "checkpoint folder" : "file");
    srv_model *cur = registry_acquire(a->d.reg, name);
    int outside = cur && !cur->from_store;
    registry_release(cur);
    if (outside)
        return reply_error(reply, BCT_ECONFLICT,
                           "\"%s\" is served from outside the model store (--model); choose another "
                           "name",
                           name);
    jobs_spec s;
    memset(&s, 0, sizeof(s));
    if (form_options(u, &s, reply) == ADMIN_ANSWER) return ADMIN_ANSWER;
    snprintf(s.name, sizeof(s.name), "%s", name);
    snprintf(s.dir, sizeof(s.dir), "%s", upload_dir(u));
    s.has_calibration = upload_file_bytes(u, "calibration") >= 0;
    if ((s.copts.prune_heads > 0 || s.copts.prune_ffn > 0) && !s.has_calibration)
        return reply_error(reply, BCT_EINVAL,
                           "fields prune_heads and prune_ffn need a \"calibration\" file part");
    s.upload_bytes = upload_received(u);
    upload_keep_dir(q->up); /* the job owns it now */
    upload_free(q->up);
    q->up = NULL;
    q->reserved = 0; /* the submission takes the place over */
    /* Submitted by admin_wait(), once the connection is suspended. */
    if (!(q->parked = malloc(sizeof(*q->parked)))) {
        store_remove_upload(s.dir);
        jobs_unreserve(a->d.jobs);
        return reply_error(reply, BCT_ENOMEM, "out of memory");
    }
    *q->parked = s;
    return ADMIN_SUSPEND;
}

static void set_reply_and_resume(admin_req *q, const admin_reply *r) {
    pthread_mutex_lock(&q->mu);
    q->reply = *r;
    pthread_mutex_unlock(&q->mu);
    q->resume(q->ud); /* the last use of q: it may be freed from here on */
}

/* Intake thread: the job is queued (202) or refused. */
static void on_submitted(void *ud, const jobs_answer *ans) {
    admin_req *q = ud;
    admin_reply r;
    memset(&r, 0, sizeof(r));
    if (ans->code == BCT_OK) {
        sbuf b;
        sbuf_init(&b);
        sbuf_puts(&b, "{\"job_id\":");
        sbuf_json_str(&b, ans->id, strlen(ans->id));
        sbuf_printf(&b, ",\"status_url\":\"/admin/jobs/%s\",\"state\":\"queued\",\"name\":", ans->id);
        sbuf_json_str(&b, q->name, strlen(q->name));
        sbuf_putc(&b, '}');
        reply_body(&r, 202, &b);
        r.hdr_name = MHD_HTTP_HEADER_LOCATION;
        snprintf(r.hdr_value, sizeof(r.hdr_value), "/admin/jobs/%s", ans->id);
    } else {
        reply_error(&r, ans->code, "%s", ans->msg);
    }
    set_reply_and_resume(q, &r);
}

static void *load_main(void *arg); /* POST .../load's thread */

void admin_wait(admin_req *q, void (*resume)(void *ud), void *ud) {
    q->resume = resume;
    q->ud = ud;
    if (q->route == ADMIN_LOAD) {
        int rc = pthread_create(&q->loader, NULL, load_main, q);
        if (rc == 0) {
            q->loader_started = 1;
            return;
        }
        admin_reply r;
        memset(&r, 0, sizeof(r));
        reply_error(&r, BCT_ENOMEM, "cannot start a thread to load \"%s\": %s", q->name, strerror(rc));
        set_reply_and_resume(q, &r);
        return;
    }
    jobs_spec *s = q->parked;
    q->parked = NULL;
    jobs_submit(q->a->d.jobs, s, on_submitted, q);
    free(s);
}

void admin_take_reply(admin_req *q, admin_reply *reply) {
    pthread_mutex_lock(&q->mu);
    *reply = q->reply;
    memset(&q->reply, 0, sizeof(q->reply));
    pthread_mutex_unlock(&q->mu);
}

/* ---- the other routes ---- */

static int end_delete(admin_req *q, admin_reply *reply) {
    srv_admin *a = q->a;
    const char *name = q->arg;
    if (name[0] == '.' || !strcmp(name, ".."))
        return reply_error(reply, BCT_ENOTFOUND, "no model named \"%.100s\"", name);
    snprintf(q->name, sizeof(q->name), "%.*s", STORE_NAME_MAX, name);
    store_lock(a->d.store);
    srv_model **list;
    int n, def, found = -1;
    if (registry_list(a->d.reg, &list, &n, &def) != BCT_OK) {
        store_unlock(a->d.store);
        return reply_error(reply, BCT_ENOMEM, "out of memory");
    }
    for (int i = 0; i < n; i++)
        if (!strcmp(list[i]->name, name)) found = i;
    int is_default = found >= 0 && found == def, outside = found >= 0 && !list[found]->from_store;
    for (int i = 0; i < n; i++) registry_release(list[i]);
    free(list);
    int rc = ADMIN_ANSWER, removed = 0, kind = store_kind(a->d.store->dir, name), cancelled = 0;
    bct_error err = {{0}};
    /* Under the store lock: a job of this name cannot publish after it. */
    if (!is_default && !outside) cancelled = jobs_cancel_model(a->d.jobs, name);
    if (is_default)
        reply_error(reply, BCT_ECONFLICT,
                    "\"%s\" is the default model; make another model the default first", name);
    else if (outside)
        reply_error(reply, BCT_ECONFLICT,
                    "\"%s\" is served from outside the model store (--model) and cannot be deleted",
                    name);
    else if (found < 0 && (kind == STORE_ABSENT || kind == STORE_OTHER) && !cancelled)
        reply_error(reply, BCT_ENOTFOUND, "no model named \"%.100s\"", name);
    else {
        /* The files first: when they cannot be moved (a read-only store)
         * the model keeps serving here, as it does on the other replicas. */
        if ((kind != STORE_ABSENT && kind != STORE_OTHER) &&
            store_remove(a->d.store, name, &removed, &err) != BCT_OK) {
            reply_error(reply, BCT_EIO, "%s", err.msg);
        } else {
            if (found >= 0) registry_remove(a->d.reg, name, &err);
            sbuf b;
            sbuf_init(&b);
            sbuf_puts(&b, "{\"deleted\":");
            sbuf_json_str(&b, name, strlen(name));
            sbuf_printf(&b, ",\"versions_removed\":%d,\"jobs_cancelled\":%d}", removed, cancelled);
            reply_body(reply, 200, &b);
            srv_logf(a->d.log, SRV_LOG_INFO,
                     "model \"%s\" deleted (%d version(s) moved to the trash, %d job(s) cancelled)", name,
                     removed, cancelled);
        }
    }
    store_unlock(a->d.store);
    store_empty_trash(a->d.store->dir, a->d.log);
    return rc;
}

/* POST /admin/models/{name}/unload: out of the registry, files kept; a
 * marker in the store keeps every replica (and restarts) from loading it
 * until /load. */
static int end_unload(admin_req *q, admin_reply *reply) {
    srv_admin *a = q->a;
    const char *name = q->arg;
    if (store_name_check(name, NULL) != BCT_OK)
        return reply_error(reply, BCT_ENOTFOUND, "no model named \"%.100s\"", name);
    snprintf(q->name, sizeof(q->name), "%.*s", STORE_NAME_MAX, name);
    srv_model *cur = registry_acquire(a->d.reg, name), *def = registry_acquire(a->d.reg, NULL);
    int is_default = cur && cur == def, outside = cur && !cur->from_store;
    registry_release(cur);
    registry_release(def);
    if (is_default)
        return reply_error(reply, BCT_ECONFLICT, "\"%s\" is the default model and cannot be unloaded", name);
    if (outside)
        return reply_error(reply, BCT_ECONFLICT,
                           "\"%s\" is served from outside the model store (--model) and cannot be unloaded", name);
    int kind = store_kind(a->d.store->dir, name);
    if (kind == STORE_ABSENT || kind == STORE_OTHER)
        return reply_error(reply, BCT_ENOTFOUND, "no model named \"%.100s\" in the store", name);
    bct_error err = {{0}};
    store_lock(a->d.store);
    int rc = store_set_unloaded(a->d.store, name, 1, &err);
    if (rc == BCT_OK && cur) registry_remove(a->d.reg, name, &err);
    store_unlock(a->d.store);
    if (rc != BCT_OK) return reply_error(reply, BCT_EIO, "%s", err.msg);
    sbuf b;
    sbuf_init(&b);
    sbuf_puts(&b, "{\"unloaded\":");
    sbuf_json_str(&b, name, strlen(name));
    sbuf_printf(&b, ",\"was_loaded\":%s}", cur ? "true" : "false");
    reply_body(reply, 200, &b);
    srv_logf(a->d.log, SRV_LOG_INFO, "model \"%s\" unloaded (its files are kept)", name);
    return ADMIN_ANSWER;
}

/* POST /admin/models/{name}/load: the store's current entry, loaded and
 * probed on a thread of its own (a large model takes seconds, and the
 * HTTP thread serves every other connection meanwhile), then swapped in;
 * other replicas load it at their next rescan. */
static int end_load(admin_req *q, admin_reply *reply) {
    const char *name = q->arg;
    if (store_name_check(name, NULL) != BCT_OK)
        return reply_error(reply, BCT_ENOTFOUND, "no model named \"%.100s\"", name);
    snprintf(q->name, sizeof(q->name), "%.*s", STORE_NAME_MAX, name);
    return ADMIN_SUSPEND; /* admin_wait() starts load_main */
}

static int load(admin_req *q, admin_reply *reply) {
    srv_admin *a = q->a;
    const char *name = q->name;
    bct_error err = {{0}};
    store_entry e;
    store_lock(a->d.store);
    int rc = store_set_unloaded(a->d.store, name, 0, &err);
    if (rc == BCT_OK) rc = store_find(a->d.store->dir, name, &e, &err);
    store_unlock(a->d.store);
    if (rc == BCT_EINVAL)
        return reply_error(reply, BCT_ENOTFOUND, "no model named \"%.100s\" in the store", name);
    if (rc != BCT_OK) return reply_error(reply, BCT_EIO, "%s", err.msg);
    srv_model *m;
    if ((rc = store_open_entry(&e, a->d.cfg->max_seq_len, &m, &err)) != BCT_OK) {
        bct_fail_prefix(&err, rc, "model \"%s\" cannot be loaded", name);
        return reply_error(reply, rc, "%s", err.msg);
    }
    store_lock(a->d.store);
    rc = registry_put(a->d.reg, m, &err);
    store_unlock(a->d.store);
    if (rc != BCT_OK) return reply_error(reply, BCT_EIO, "%s", err.msg);
    sbuf b;
    sbuf_init(&b);
    sbuf_puts(&b, "{\"loaded\":");
    sbuf_json_str(&b, name, strlen(name));
    sbuf_printf(&b, ",\"version\":%d}", e.version);
    reply_body(reply, 200, &b);
    srv_logf(a->d.log, SRV_LOG_INFO, "model \"%s\" version %d loaded from %s", name, e.version, e.path);
    return ADMIN_ANSWER;
}

static void *load_main(void *arg) {
    admin_req *q = arg;
    admin_reply r;
    memset(&r, 0, sizeof(r));
    load(q, &r);
    set_reply_and_resume(q, &r);
    return NULL;
}

int admin_end(admin_req *q, admin_reply *reply) {
    memset(reply, 0, sizeof(*reply));
    sbuf b;
    sbuf_init(&b);
    switch (q->route) {
    case ADMIN_COMPRESS:
        return end_compress(q, reply);
    case ADMIN_DELETE:
        return end_delete(q, reply);
    case ADMIN_LOAD:
        return end_load(q, reply);
    case ADMIN_UNLOAD:
        return end_unload(q, reply);
    case ADMIN_JOBS:
        jobs_list_json(q->a->d.jobs, &b);
        reply_body(reply, 200, &b);
        return ADMIN_ANSWER;
    default: /* ADMIN_JOB */
        if (jobs_get_json(q->a->d.jobs, q->arg, &b) != BCT_OK) {
            sbuf_free(&b);
            return reply_error(reply, SRV_ENOROUTE,
                               "no job \"%.80s\" (GET /admin/jobs lists the recent ones)", q->arg);
        }
        reply_body(reply, 200, &b);
        return ADMIN_ANSWER;
    }
}

const char *admin_req_model(const admin_req *q) { return q && q->name[0] ? q->name : NULL; }

void admin_req_free(admin_req *q) {
    if (!q) return;
    /* It resumed the request as its last act: this waits for its return. */
    if (q->loader_started) pthread_join(q->loader, NULL);
    upload_free(q->up);
    if (q->reserved) jobs_unreserve(q->a->d.jobs);
    if (q->parked) { /* never submitted */
        store_remove_upload(q->parked->dir);
        jobs_unreserve(q->a->d.jobs);
        free(q->parked);
    }
    admin_reply_free(&q->reply);
    pthread_mutex_destroy(&q->mu);
    free(q);
}
