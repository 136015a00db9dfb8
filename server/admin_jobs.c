#define _GNU_SOURCE /* gettid */
#include "admin_jobs.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "errors.h"
#include "evaluate.h"
#include "model_probe.h"
#include "srv_limits.h"
#include "formats/qcodec.h"

enum { ST_QUEUED, ST_RUNNING, ST_SUCCEEDED, ST_FAILED };
static const char *const state_names[] = {"queued", "running", "succeeded", "failed"};

typedef struct job_rec {
    char id[40];
    jobs_spec spec;
    int state;
    char stage[160];
    int progress; /* 0..100 */
    struct timespec wall_created, wall_started, wall_finished;
    uint64_t t_created, t_started, t_compressed, t_verified, t_evaluated, t_finished; /* srv_now_ns */
    double validate_ms;
    int version;       /* published version, on success */
    cJSON *report;     /* compress_report_json, once compressed */
    cJSON *evaluation; /* fp32 against compressed (issue 16), once evaluated */
    char error[600];
    atomic_int cancel; /* jobs_stop, or a DELETE of its model (issue 17) */
    struct job_rec *next_queued;
} job_rec;

/* A submission waiting for the intake thread. */
typedef struct intake_item {
    jobs_spec spec;
    int deleted; /* its model was deleted during the validation */
    void (*done)(void *ud, const jobs_answer *a);
    void *ud;
    struct intake_item *next;
} intake_item;

struct admin_jobs {
    jobs_opts o;
    pthread_mutex_t mu;
    pthread_cond_t cv;         /* runners: queue or stopping */
    pthread_cond_t intake_cv;  /* intake thread */
    int stopping;
    int reserved;              /* places held by uploads */
    int queued;                /* jobs waiting for a runner */
    job_rec *queue_head, *queue_tail;
    intake_item *intake_head, *intake_tail;
    intake_item *intake_current; /* being validated (outside the lock) */
    job_rec **jobs;            /* every remembered job, oldest first */
    int n_jobs, cap_jobs;
    unsigned seq;
    long long boot;
    pthread_t intake;
    pthread_t *runners;
    int n_runners;
    int intake_started;
};

/* ---- small helpers ---- */

static void lower_priority(void) {
    /* Linux: a thread's nice value is per thread (the tid). */
    if (setpriority(PRIO_PROCESS, (id_t)gettid(), 10) != 0) { /* not fatal */ }
}

/* Messages name files by their staging path; the client knows them by
 * their part: drop "<dir>/". */
static void strip_dir(char *msg, const char *dir) {
    size_t dl = strlen(dir);
    char *p = msg;
    while ((p = strstr(p, dir))) {
        size_t cut = dl;
        if (p[dl] == '/') cut = dl + 1;                          /* "<dir>/file" -> "file" */
        else if (p[dl] == ':' && p[dl + 1] == ' ') cut = dl + 2; /* "<dir>: ..." -> "..." */
        else {
            p += dl;
            continue;
        }
        memmove(p, p + cut, strlen(p + cut) + 1);
    }
}

static void iso_time(sbuf *b, const struct timespec *ts) {
    if (!ts->tv_sec) {
        sbuf_puts(b, "null");
        return;
    }
    sbuf_putc(b, '"');
    srv_put_time(b, ts);
    sbuf_putc(b, '"');
}

static double ms(uint64_t a, uint64_t b) { return a && b > a ? (double)(b - a) * 1e-6 : 0; }

static const char *format_name(int bits) {
    switch (bits) {
    case 8: return "q8";
    case 4: return "q4";
    case 3: return "q3";
    case 2: return "q2";
    default: return "f32";
    }
}

static void options_json(const jobs_spec *s, sbuf *b) {
    const compress_opts *o = &s->copts;
    sbuf_puts(b, "{\"preset\":");
    sbuf_json_str(b, o->preset, strlen(o->preset));
    const struct {
        const char *key;
        const bq_spec *spec;
    } roles[] = {{"weights", &o->weights}, {"embeddings", &o->embeddings}, {"tables", &o->tables}};
    for (size_t i = 0; i < 3; i++)
        sbuf_printf(b, ",\"%s\":{\"format\":\"%s\",\"block\":%d,\"scales\":\"%s\"}", roles[i].key,
                    format_name(roles[i].spec->bits), roles[i].spec->block,
                    qcodec_scale_name(roles[i].spec->scale));
    sbuf_printf(b, ",\"activations\":\"%s\",\"nonlinear\":\"%s\",\"calibration\":%s",
                o->act_int8 ? "int8" : "fp32", o->int_nonlinear ? "int" : "fp32",
                s->has_calibration ? "true" : "false");
    if (s->has_calibration) sbuf_printf(b, ",\"calib_n\":%d", o->calib_max > 0 ? o->calib_max : COMPRESS_CALIB_DEFAULT);
    if (s->has_eval) {
        sbuf_printf(b, ",\"eval_task\":\"%s\",\"max_drop\":", glue_task_name((glue_task)s->eval_task));
        if (s->max_drop >= 0) sbuf_printf(b, "%.17g", s->max_drop);
        else sbuf_puts(b, "null");
    }
    if (o->prune_heads > 0 || o->prune_ffn > 0)
        sbuf_printf(b, ",\"prune_heads\":%g,\"prune_ffn\":%g", o->prune_heads, o->prune_ffn);
    sbuf_putc(b, '}');
}

/* ,"key":<o> unless o is NULL. */
static void put_json(sbuf *b, const char *key, const cJSON *o) {
    char *text = o ? cJSON_PrintUnformatted(o) : NULL;
    if (!text) return;
    sbuf_printf(b, ",\"%s\":", key);
    sbuf_puts(b, text);
    free(text);
}

static void job_json(const job_rec *r, int with_report, sbuf *b) {
    uint64_t now = srv_now_ns();
    sbuf_puts(b, "{\"job_id\":");
    sbuf_json_str(b, r->id, strlen(r->id));
    sbuf_puts(b, ",\"name\":");
    sbuf_json_str(b, r->spec.name, strlen(r->spec.name));
    sbuf_printf(b, ",\"state\":\"%s\",\"stage\":", state_names[r->state]);
    sbuf_json_str(b, r->stage, strlen(r->stage));
    sbuf_printf(b, ",\"progress\":%d,\"status_url\":\"/admin/jobs/", r->progress);
    sbuf_puts(b, r->id);
    sbuf_printf(b, "\",\"upload_bytes\":%lld,\"options\":", r->spec.upload_bytes);
    options_json(&r->spec, b);
    sbuf_puts(b, ",\"created_at\":");
    iso_time(b, &r->wall_created);
    sbuf_puts(b, ",\"started_at\":");
    iso_time(b, &r->wall_started);
    sbuf_puts(b, ",\"finished_at\":");
    iso_time(b, &r->wall_finished);
    uint64_t end = r->t_finished ? r->t_finished : now;
    sbuf_printf(b, ",\"timings\":{\"validate_ms\":%.1f,\"queued_ms\":%.1f", r->validate_ms,
                ms(r->t_created, r->t_started ? r->t_started : end));
    if (r->t_started) {
        sbuf_printf(b, ",\"compress_ms\":%.1f", ms(r->t_started, r->t_compressed ? r->t_compressed : end));
        if (r->t_compressed)
            sbuf_printf(b, ",\"verify_ms\":%.1f", ms(r->t_compressed, r->t_verified ? r->t_verified : end));
        if (r->t_verified && r->t_evaluated)
            sbuf_printf(b, ",\"evaluate_ms\":%.1f", ms(r->t_verified, r->t_evaluated));
        if (r->t_verified)
            sbuf_printf(b, ",\"load_ms\":%.1f", ms(r->t_evaluated ? r->t_evaluated : r->t_verified, end));
    }
    sbuf_printf(b, ",\"total_ms\":%.1f}", ms(r->t_created, end) + r->validate_ms);
    if (r->state == ST_SUCCEEDED) sbuf_printf(b, ",\"version\":%d", r->version);
    if (r->state == ST_FAILED) {
        sbuf_puts(b, ",\"error\":");
        sbuf_json_str(b, r->error, strlen(r->error));
    }
    if (with_report) {
        put_json(b, "report", r->report);
        put_json(b, "evaluation", r->evaluation);
    }
    sbuf_putc(b, '}');
}

/* ---- bookkeeping (j->mu held) ---- */

static int remember(admin_jobs *j, job_rec *r) {
    if (j->n_jobs == j->cap_jobs) {
        int cap = j->cap_jobs ? j->cap_jobs * 2 : 16;
        job_rec **p = realloc(j->jobs, (size_t)cap * sizeof(*p));
        if (!p) return -1;
        j->jobs = p;
        j->cap_jobs = cap;
    }
    j->jobs[j->n_jobs++] = r;
    return 0;
}

static void forget_old(admin_jobs *j) {
    int finished = 0;
    for (int i = 0; i < j->n_jobs; i++) finished += j->jobs[i]->state >= ST_SUCCEEDED;
    for (int i = 0; i < j->n_jobs && finished > j->o.history;) {
        job_rec *r = j->jobs[i];
        if (r->state < ST_SUCCEEDED) {
            i++;
            continue;
        }
        cJSON_Delete(r->report);
        cJSON_Delete(r->evaluation);
        free(r);
        memmove(j->jobs + i, j->jobs + i + 1, (size_t)(j->n_jobs - i - 1) * sizeof(*j->jobs));
        j->n_jobs--;
        finished--;
    }
}

static void set_stage(admin_jobs *j, job_rec *r, int progress, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void set_stage(admin_jobs *j, job_rec *r, int progress, const char *fmt, ...) {
    va_list ap;
    pthread_mutex_lock(&j->mu);
    va_start(ap, fmt);
    vsnprintf(r->stage, sizeof(r->stage), fmt, ap);
    va_end(ap);
    r->progress = progress;
    pthread_mutex_unlock(&j->mu);
}

static void finish(admin_jobs *j, job_rec *r, int ok, const char *error) {
    store_remove_upload(r->spec.dir);
    pthread_mutex_lock(&j->mu);
    r->state = ok ? ST_SUCCEEDED : ST_FAILED;
    r->t_finished = srv_now_ns();
    clock_gettime(CLOCK_REALTIME, &r->wall_finished);
    if (ok) {
        r->progress = 100;
        snprintf(r->stage, sizeof(r->stage), "done");
    } else {
        snprintf(r->error, sizeof(r->error), "%s", error);
    }
    forget_old(j);
    pthread_mutex_unlock(&j->mu);
}

/* ---- the runner ---- */

typedef struct progress_ctx {
    admin_jobs *j;
    job_rec *r;
} progress_ctx;

static void on_tensor(void *ud, int i, int n, const char *tensor) {
    progress_ctx *c = ud;
    set_stage(c->j, c->r, 5 + 85 * i / (n ? n : 1), "quantizing tensor %d/%d (%.100s)", i + 1, n, tensor);
}

static void on_commit(void *ud) {
    progress_ctx *c = ud;
    set_stage(c->j, c->r, 90, "writing");
}

/* ---- evaluation (issue 16) ---- */

/* Without an evaluation set: calibration.txt's last lines (SRV_HOLDOUT_*)
 * become *held (unlabelled: label -1) and the rest is written to fit,
 * which calibrates instead (*fit_lines of them).  *held stays empty, and
 * fit unwritten, when the text is too short to spare any. */
static int split_holdout(const char *calib, const char *fit, glue_set *held, int *fit_lines, bct_error *err) {
    memset(held, 0, sizeof(*held));
    FILE *f = fopen(calib, "rb");
    if (!f) return bct_fail(err, BCT_EIO, "calibration: %s", strerror(errno));
    char *line = NULL, *text = NULL;
    size_t cap = 0, used = 0, tcap = 0;
    long long *start = NULL; /* offset of every non-empty line in text */
    int n = 0, ncap = 0, rc = BCT_OK;
    ssize_t len;
    while ((len = getline(&line, &cap, f)) >= 0) {
        while (len && (line[len - 1] == '\n' || line[len - 1] == '\r')) line[--len] = '\0';
        if (len == 0) continue; /* skipped by calibrate.c too */
        if (used + (size_t)len + 1 > tcap || n == ncap) {
            size_t nt = tcap ? tcap : 1 << 16;
            while (nt < used + (size_t)len + 1) nt *= 2;
            int nn = ncap ? ncap * 2 : 256;
            char *t2 = realloc(text, nt);
            if (t2) text = t2, tcap = nt;
            long long *s2 = realloc(start, (size_t)nn * sizeof(*s2));
            if (s2) start = s2, ncap = nn;
            if (!t2 || !s2) {
                rc = bct_fail(err, BCT_ENOMEM, "out of memory");
                break;
            }
        }
        memcpy(text + used, line, (size_t)len + 1);
        start[n++] = (long long)used;
        used += (size_t)len + 1;
    }
    free(line);
    fclose(f);
    int h = n / SRV_HOLDOUT_DIV;
    if (h < SRV_HOLDOUT_MIN) h = SRV_HOLDOUT_MIN;
    if (h > SRV_EVAL_MAX_ROWS) h = SRV_EVAL_MAX_ROWS;
    if (rc != BCT_OK || n < 2 * SRV_HOLDOUT_MIN) {
        free(text);
        free(start);
        return rc;
    }
    FILE *w = fopen(fit, "wb");
    int ok = w != NULL;
    for (int i = 0; ok && i < n - h; i++) ok = fprintf(w, "%s\n", text + start[i]) >= 0;
    if (w && fclose(w) != 0) ok = 0;
    held->ex = calloc((size_t)h, sizeof(glue_example));
    if (!ok || !held->ex) {
        free(held->ex);
        held->ex = NULL;
        free(text);
        free(start);
        return bct_fail(err, ok ? BCT_ENOMEM : BCT_EIO, ok ? "out of memory" : "cannot write %s", fit);
    }
    held->text = text;
    for (int i = 0; i < h; i++) {
        char *a = text + start[n - h + i], *tab = strchr(a, '\t');
        if (tab) *tab = '\0';
        held->ex[i] = (glue_example){a, tab ? tab + 1 : NULL, -1};
    }
    held->n = h;
    *fit_lines = n - h;
    free(start);
    return BCT_OK;
}

typedef struct eval_ctx {
    admin_jobs *j;
    job_rec *r;
    const char *which;
    int base; /* progress at the start of this pass */
} eval_ctx;

static int on_eval_batch(void *ud, size_t done, size_t total) {
    eval_ctx *c = ud;
    set_stage(c->j, c->r, c->base + (int)(2 * done / (total ? total : 1)), "evaluating %s %zu/%zu",
              c->which, done, total);
    return atomic_load(&c->r->cancel);
}

/* The fp32 checkpoint (the staging folder) and the compressed model q on
 * set, at q's max_len: *out is the evaluation.  A labelled set (eval.tsv)
 * gives accuracies; the drop is in accuracy points. */
static int evaluate(admin_jobs *j, job_rec *r, const bert_model *q, const glue_set *set, int labelled,
                    cJSON **out, bct_error *err) {
    *out = NULL;
    bert_model *f = NULL;
    int nl = q->cfg.num_labels;
    float *lf = malloc((size_t)set->n * nl * sizeof(float)), *lq = malloc((size_t)set->n * nl * sizeof(float));
    eval_result rf, rq;
    eval_ctx cf = {j, r, "fp32", 93}, cq = {j, r, "compressed", 95};
    int rc = lf && lq ? BCT_OK : bct_fail(err, BCT_ENOMEM, "out of memory");
    if (rc == BCT_OK) rc = bert_model_load_hf(r->spec.dir, &f, err);
    if (rc == BCT_OK) rc = bert_model_set_max_len(f, q->max_len, err);
    if (rc == BCT_OK && f->cfg.num_labels != nl)
        rc = bct_fail(err, BCT_EFORMAT, "the fp32 and compressed models have %d and %d labels",
                      f->cfg.num_labels, nl);
    if (rc == BCT_OK) rc = glue_eval_run(f, set, SRV_EVAL_BATCH, NULL, on_eval_batch, &cf, lf, &rf, err);
    bert_model_free(f); /* before the second pass: one model's activations at a time */
    if (rc == BCT_OK) rc = glue_eval_run(q, set, SRV_EVAL_BATCH, NULL, on_eval_batch, &cq, lq, &rq, err);
    if (rc != BCT_OK) {
        free(lf);
        free(lq);
        return bct_fail_prefix(err, rc, "evaluation");
    }
    eval_diff d;
    eval_compare(lf, lq, set->n, nl, &d);
    free(lf);
    free(lq);
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "job_id", r->id);
    cJSON_AddStringToObject(o, "source", labelled ? "eval" : "calibration_holdout");
    if (labelled) cJSON_AddStringToObject(o, "task", glue_task_name((glue_task)r->spec.eval_task));
    cJSON_AddNumberToObject(o, "rows", set->n);
    cJSON_AddNumberToObject(o, "max_len", q->max_len);
    if (labelled) {
        double drop = 100.0 * (rf.correct - rq.correct) / set->n;
        cJSON_AddNumberToObject(o, "fp32_accuracy", eval_accuracy(&rf));
        cJSON_AddNumberToObject(o, "accuracy", eval_accuracy(&rq));
        cJSON_AddNumberToObject(o, "drop", drop);
        if (r->spec.max_drop >= 0) {
            cJSON_AddNumberToObject(o, "max_drop", r->spec.max_drop);
            cJSON_AddBoolToObject(o, "passed", drop <= r->spec.max_drop);
        } else {
            cJSON_AddNullToObject(o, "max_drop");
        }
    }
    cJSON_AddNumberToObject(o, "agreement", eval_agreement(&d));
    cJSON_AddNumberToObject(o, "mean_abs_logit_diff", d.mean_abs);
    cJSON_AddNumberToObject(o, "max_abs_logit_diff", d.max_abs);
    cJSON_AddNumberToObject(o, "fp32_ms", rf.seconds * 1e3);
    cJSON_AddNumberToObject(o, "compressed_ms", rq.seconds * 1e3);
    *out = o;
    return BCT_OK;
}

static void run(admin_jobs *j, job_rec *r) {
    const jobs_opts *o = &j->o;
    bct_error err = {{0}};
    char pending[4400], calib[4200], fit[4200], evalp[4200], final[4400];
    srv_model *m = NULL;
    glue_set set = {0}; /* what the job evaluates on */
    int labelled = 0, fit_lines = 0;
    cJSON *evaluation = NULL;
    char *report_text = NULL;
    srv_logf(o->log, SRV_LOG_INFO, "job %s: compressing \"%s\" (%s)", r->id, r->spec.name,
             r->spec.copts.preset);
    if (atomic_load(&r->cancel)) {
        bct_fail(&err, BCT_EINVAL, "cancelled before it ran");
        goto failed;
    }
    set_stage(j, r, 1, r->spec.has_calibration ? "calibrating" : "validating");
    if (store_pending_path(o->store->dir, r->spec.name, r->id, pending, sizeof(pending), &err) != BCT_OK)
        goto failed;
    progress_ctx pc = {j, r};
    compress_opts co = r->spec.copts;
    co.progress = on_tensor;
    co.committing = on_commit;
    co.progress_ud = &pc;
    co.cancel = &r->cancel;
    co.calib = NULL;
    if (r->spec.has_eval) {
        /* Read here again against the same config.json: the intake
         * thread checked it. */
        bert_config cfg;
        snprintf(evalp, sizeof(evalp), "%s/config.json", r->spec.dir);
        if (bert_config_load(evalp, &cfg, &err) != BCT_OK) {
            strip_dir(err.msg, r->spec.dir);
            goto failed;
        }
        snprintf(evalp, sizeof(evalp), "%s/eval.tsv", r->spec.dir);
        int rc = glue_load(evalp, (glue_task)r->spec.eval_task, &cfg, SRV_EVAL_MAX_ROWS, &set, &err);
        bert_config_free(&cfg);
        if (rc != BCT_OK) {
            strip_dir(err.msg, r->spec.dir);
            goto failed;
        }
        labelled = 1;
    }
    if (r->spec.has_calibration) {
        snprintf(calib, sizeof(calib), "%s/calibration.txt", r->spec.dir);
        co.calib = calib;
        snprintf(fit, sizeof(fit), "%s/calibration-fit.txt", r->spec.dir);
        if (!labelled) {
            if (split_holdout(calib, fit, &set, &fit_lines, &err) != BCT_OK) goto failed;
            if (set.n) co.calib = fit;
        }
    }
    compress_report rep;
    if (compress_checkpoint(r->spec.dir, pending, &co, &rep, &err) != BCT_OK) {
        /* The writer may have renamed its file into place before a later
         * step (the folder's fsync) failed: never leave it to a restart. */
        unlink(pending);
        strip_dir(err.msg, r->spec.dir);
        goto failed;
    }
    cJSON *report = compress_report_json(&rep);
    compress_report_free(&rep);
    pthread_mutex_lock(&j->mu);
    r->report = report;
    r->t_compressed = srv_now_ns();
    pthread_mutex_unlock(&j->mu);

    set_stage(j, r, 93, "verifying");
    if (registry_open(r->spec.name, pending, o->max_seq_len, &m, &err) != BCT_OK ||
        model_probe(m->m, &err) != BCT_OK) {
        strip_dir(err.msg, o->store->dir);
        bct_fail_prefix(&err, BCT_EFORMAT, "the compressed model failed verification");
        unlink(pending);
        goto failed;
    }
    pthread_mutex_lock(&j->mu);
    r->t_verified = srv_now_ns();
    pthread_mutex_unlock(&j->mu);

    if (set.n) {
        set_stage(j, r, 93, "evaluating");
        if (evaluate(j, r, m->m, &set, labelled, &evaluation, &err) != BCT_OK) {
            unlink(pending);
            goto failed;
        }
        /* the calibration lines left after the held-back ones */
        if (!labelled) cJSON_AddNumberToObject(evaluation, "calibration_lines", fit_lines);
        const cJSON *passed = cJSON_GetObjectItem(evaluation, "passed");
        double drop = cJSON_GetNumberValue(cJSON_GetObjectItem(evaluation, "drop"));
        pthread_mutex_lock(&j->mu);
        r->evaluation = evaluation;
        r->t_evaluated = srv_now_ns();
        pthread_mutex_unlock(&j->mu);
        if (cJSON_IsFalse(passed)) {
            unlink(pending);
            bct_fail(&err, BCT_EINVAL,
                     "accuracy drop of %.2f points (fp32 %.4f, compressed %.4f on %d rows) is over "
                     "max_drop %.2f: not published; the previous version keeps serving",
                     drop, cJSON_GetNumberValue(cJSON_GetObjectItem(evaluation, "fp32_accuracy")),
                     cJSON_GetNumberValue(cJSON_GetObjectItem(evaluation, "accuracy")), set.n,
                     r->spec.max_drop);
            goto failed;
        }
        /* Persisted beside the version, for /models on every replica. */
        if (!(report_text = cJSON_PrintUnformatted(evaluation))) {
            unlink(pending);
            bct_fail(&err, BCT_ENOMEM, "out of memory");
            goto failed;
        }
    }

    set_stage(j, r, 98, "loading");
    int version = 0;
    store_lock(o->store);
    /* A DELETE of the model holds the store lock while it cancels: either
     * it came first and the job stops here, or it comes after the publish
     * and removes this version too.  Never published after a DELETE. */
    if (atomic_load(&r->cancel)) {
        store_unlock(o->store);
        unlink(pending);
        bct_fail(&err, BCT_EINVAL, "cancelled: the model was deleted or the server is stopping");
        goto failed;
    }
    if (store_publish_report(o->store, r->spec.name, pending, report_text, o->keep_versions, &version,
                             final, sizeof(final), o->log, &err) != BCT_OK) {
        store_unlock(o->store);
        unlink(pending);
        goto failed;
    }
    srv_file_id id;
    store_file_id(final, 0, &id);
    /* On failure below the version is published but not served here;
     * the store watcher will load it. */
    if (registry_set_origin(m, final, version, 1, &id, &err) != BCT_OK) {
        store_unlock(o->store);
        goto failed;
    }
    int put = registry_put(o->reg, m, &err); /* takes m over, even on failure */
    m = NULL;
    if (put != BCT_OK) {
        store_unlock(o->store);
        goto failed;
    }
    store_unlock(o->store);
    store_empty_trash(o->store->dir, o->log);
    srv_logf(o->log, SRV_LOG_INFO, "job %s: \"%s\" version %d published (%s) and serving", r->id,
             r->spec.name, version, final);
    pthread_mutex_lock(&j->mu);
    r->version = version;
    pthread_mutex_unlock(&j->mu);
    glue_free(&set);
    free(report_text);
    finish(j, r, 1, NULL);
    return;
failed:
    glue_free(&set);
    free(report_text);
    registry_release(m);
    srv_logf(o->log, SRV_LOG_WARN, "job %s (\"%s\") failed: %s", r->id, r->spec.name, err.msg);
    finish(j, r, 0, err.msg);
}

static void *runner_main(void *arg) {
    admin_jobs *j = arg;
    lower_priority();
    pthread_mutex_lock(&j->mu);
    for (;;) {
        while (!j->stopping && !j->queue_head) pthread_cond_wait(&j->cv, &j->mu);
        if (j->stopping) break;
        job_rec *r = j->queue_head;
        j->queue_head = r->next_queued;
        if (!j->queue_head) j->queue_tail = NULL;
        j->queued--;
        r->state = ST_RUNNING;
        r->t_started = srv_now_ns();
        clock_gettime(CLOCK_REALTIME, &r->wall_started);
        pthread_mutex_unlock(&j->mu);
        run(j, r);
        pthread_mutex_lock(&j->mu);
    }
    pthread_mutex_unlock(&j->mu);
    return NULL;
}

/* ---- intake: validation before the 202 ---- */

/* The evaluation set against the checkpoint m: BCT_OK, or BCT_ERANGE (too
 * many rows), BCT_ENOMEM or BCT_EINVAL with msg naming the field. */
static int check_eval(const jobs_spec *s, const bert_model *m, char *msg, size_t size) {
    if (m->cfg.problem != BERT_SINGLE_LABEL || m->cfg.num_labels < 2) {
        snprintf(msg, size, "field eval: accuracy needs a single-label classifier; this checkpoint is not one");
        return BCT_EINVAL;
    }
    char path[4200];
    bct_error err = {{0}};
    glue_set set;
    snprintf(path, sizeof(path), "%s/eval.tsv", s->dir);
    int rc = glue_load(path, (glue_task)s->eval_task, &m->cfg, SRV_EVAL_MAX_ROWS, &set, &err);
    int n = set.n, bad = -1;
    for (int i = 0; i < n && bad < 0; i++)
        if (set.ex[i].label >= m->cfg.num_labels) bad = i;
    if (bad >= 0)
        snprintf(msg, size, "field eval: example %d has label id %d; the model has %d labels", bad + 1,
                 set.ex[bad].label, m->cfg.num_labels);
    glue_free(&set);
    if (bad >= 0) return BCT_EINVAL;
    if (rc == BCT_OK && n == 0) {
        snprintf(msg, size, "field eval: no %s examples in the file", glue_task_name((glue_task)s->eval_task));
        return BCT_EINVAL;
    }
    if (rc == BCT_OK) return BCT_OK;
    strip_dir(err.msg, s->dir);
    snprintf(msg, size, "field eval: %.500s", err.msg);
    return rc == BCT_ERANGE || rc == BCT_ENOMEM ? rc : BCT_EINVAL;
}

static void intake_one(admin_jobs *j, intake_item *it) {
    jobs_answer a = {.code = BCT_OK};
    bct_error err = {{0}};
    bert_model *m = NULL;
    uint64_t t0 = srv_now_ns();
    int rc = bert_model_load_hf(it->spec.dir, &m, &err);
    /* The options are checked as compress_checkpoint checks them first:
     * say so now rather than in a failed job. */
    if (rc == BCT_OK) rc = compress_opts_check(&it->spec.copts, &err);
    int eval_rc = rc == BCT_OK && it->spec.has_eval ? check_eval(&it->spec, m, a.msg, sizeof(a.msg)) : BCT_OK;
    bert_model_free(m);
    double validate_ms = ms(t0, srv_now_ns());
    pthread_mutex_lock(&j->mu);
    j->reserved--;
    if (rc == BCT_OK && it->deleted) {
        pthread_mutex_unlock(&j->mu);
        a.code = BCT_ECONFLICT;
        snprintf(a.msg, sizeof(a.msg), "\"%s\" was deleted while this upload was validated; not queued",
                 it->spec.name);
    } else if (eval_rc != BCT_OK) {
        pthread_mutex_unlock(&j->mu);
        a.code = eval_rc;
        srv_logf(j->o.log, SRV_LOG_INFO, "upload of \"%s\" rejected: %s", it->spec.name, a.msg);
    } else if (rc != BCT_OK) {
        pthread_mutex_unlock(&j->mu);
        strip_dir(err.msg, it->spec.dir);
        a.code = rc == BCT_ENOMEM ? BCT_ENOMEM : BCT_EINVAL;
        snprintf(a.msg, sizeof(a.msg), "%s%.500s", rc == BCT_EINVAL ? "" : "invalid checkpoint: ", err.msg);
        srv_logf(j->o.log, SRV_LOG_INFO, "upload of \"%s\" rejected: %s", it->spec.name, err.msg);
    } else if (j->stopping) {
        pthread_mutex_unlock(&j->mu);
        a.code = BCT_EUNAVAILABLE;
        snprintf(a.msg, sizeof(a.msg), "the server is shutting down");
    } else {
        job_rec *r = calloc(1, sizeof(*r));
        if (!r || remember(j, r) != 0) {
            pthread_mutex_unlock(&j->mu);
            free(r);
            a.code = BCT_ENOMEM;
            snprintf(a.msg, sizeof(a.msg), "out of memory");
        } else {
            snprintf(r->id, sizeof(r->id), "%llx-%u", j->boot, ++j->seq);
            r->spec = it->spec;
            atomic_init(&r->cancel, 0);
            r->state = ST_QUEUED;
            snprintf(r->stage, sizeof(r->stage), "queued");
            r->t_created = srv_now_ns();
            r->validate_ms = validate_ms;
            clock_gettime(CLOCK_REALTIME, &r->wall_created);
            if (j->queue_tail) j->queue_tail->next_queued = r;
            else j->queue_head = r;
            j->queue_tail = r;
            j->queued++;
            snprintf(a.id, sizeof(a.id), "%s", r->id);
            srv_logf(j->o.log, SRV_LOG_INFO, "job %s queued: \"%s\", %lld bytes uploaded", a.id,
                     it->spec.name, it->spec.upload_bytes);
            pthread_cond_signal(&j->cv);
            pthread_mutex_unlock(&j->mu);
        }
    }
    if (a.code != BCT_OK) store_remove_upload(it->spec.dir);
    it->done(it->ud, &a);
}

static void *intake_main(void *arg) {
    admin_jobs *j = arg;
    lower_priority();
    pthread_mutex_lock(&j->mu);
    for (;;) {
        while (!j->intake_head && !j->stopping) pthread_cond_wait(&j->intake_cv, &j->mu);
        intake_item *it = j->intake_head;
        if (!it) break; /* stopping, nothing left */
        j->intake_head = it->next;
        if (!j->intake_head) j->intake_tail = NULL;
        j->intake_current = it;
        pthread_mutex_unlock(&j->mu);
        intake_one(j, it);
        pthread_mutex_lock(&j->mu);
        j->intake_current = NULL;
        pthread_mutex_unlock(&j->mu);
        free(it);
        pthread_mutex_lock(&j->mu);
    }
    pthread_mutex_unlock(&j->mu);
    return NULL;
}

/* ---- API ---- */

int jobs_start(const jobs_opts *o, admin_jobs **out, bct_error *err) {
    admin_jobs *j = calloc(1, sizeof(*j));
    if (!j) return bct_fail(err, BCT_ENOMEM, "out of memory");
    j->o = *o;
    if (j->o.max_running < 1) j->o.max_running = 1;
    pthread_mutex_init(&j->mu, NULL);
    pthread_cond_init(&j->cv, NULL);
    pthread_cond_init(&j->intake_cv, NULL);
    j->boot = (long long)time(NULL);
    j->runners = calloc((size_t)j->o.max_running, sizeof(*j->runners));
    int rc = j->runners ? pthread_create(&j->intake, NULL, intake_main, j) : ENOMEM;
    if (rc == 0) j->intake_started = 1;
    for (int i = 0; rc == 0 && i < j->o.max_running; i++) {
        rc = pthread_create(&j->runners[i], NULL, runner_main, j);
        if (rc == 0) j->n_runners++;
    }
    if (rc != 0) {
        jobs_stop(j);
        return bct_fail(err, BCT_EIO, "cannot start the admin job threads: %s", strerror(rc));
    }
    *out = j;
    return BCT_OK;
}

int jobs_reserve(admin_jobs *j) {
    pthread_mutex_lock(&j->mu);
    int ok = !j->stopping && j->reserved + j->queued < j->o.queue_size;
    if (ok) j->reserved++;
    pthread_mutex_unlock(&j->mu);
    return ok ? BCT_OK : BCT_EBUSY;
}

void jobs_unreserve(admin_jobs *j) {
    pthread_mutex_lock(&j->mu);
    j->reserved--;
    pthread_mutex_unlock(&j->mu);
}

void jobs_submit(admin_jobs *j, const jobs_spec *spec, void (*done)(void *ud, const jobs_answer *a),
                 void *ud) {
    intake_item *it = calloc(1, sizeof(*it));
    if (!it) {
        jobs_answer a = {.code = BCT_ENOMEM};
        snprintf(a.msg, sizeof(a.msg), "out of memory");
        store_remove_upload(spec->dir);
        jobs_unreserve(j);
        done(ud, &a);
        return;
    }
    it->spec = *spec;
    it->done = done;
    it->ud = ud;
    pthread_mutex_lock(&j->mu);
    if (j->intake_tail) j->intake_tail->next = it;
    else j->intake_head = it;
    j->intake_tail = it;
    pthread_cond_signal(&j->intake_cv);
    pthread_mutex_unlock(&j->mu);
}

int jobs_cancel_model(admin_jobs *j, const char *name) {
    int n = 0;
    pthread_mutex_lock(&j->mu);
    for (int i = 0; i < j->n_jobs; i++) {
        job_rec *r = j->jobs[i];
        if ((r->state == ST_QUEUED || r->state == ST_RUNNING) && !strcmp(r->spec.name, name)) {
            atomic_store(&r->cancel, 1);
            n++;
        }
    }
    for (intake_item *it = j->intake_current ? j->intake_current : j->intake_head; it;
         it = it == j->intake_current ? j->intake_head : it->next)
        if (!strcmp(it->spec.name, name)) {
            it->deleted = 1;
            n++;
        }
    pthread_mutex_unlock(&j->mu);
    return n;
}

int jobs_get_json(admin_jobs *j, const char *id, sbuf *out) {
    int found = BCT_ENOTFOUND;
    pthread_mutex_lock(&j->mu);
    for (int i = 0; i < j->n_jobs; i++)
        if (!strcmp(j->jobs[i]->id, id)) {
            job_json(j->jobs[i], 1, out);
            found = BCT_OK;
            break;
        }
    pthread_mutex_unlock(&j->mu);
    return found;
}

void jobs_list_json(admin_jobs *j, sbuf *out) {
    pthread_mutex_lock(&j->mu);
    sbuf_puts(out, "{\"jobs\":[");
    for (int i = j->n_jobs - 1; i >= 0; i--) {
        if (i != j->n_jobs - 1) sbuf_putc(out, ',');
        job_json(j->jobs[i], 0, out);
    }
    sbuf_printf(out, "],\"queued\":%d,\"max_running\":%d,\"queue_size\":%d}", j->queued,
                j->o.max_running, j->o.queue_size);
    pthread_mutex_unlock(&j->mu);
}

void jobs_stop(admin_jobs *j) {
    if (!j) return;
    pthread_mutex_lock(&j->mu);
    j->stopping = 1;
    for (int i = 0; i < j->n_jobs; i++) atomic_store(&j->jobs[i]->cancel, 1);
    pthread_cond_broadcast(&j->cv);
    pthread_cond_broadcast(&j->intake_cv);
    pthread_mutex_unlock(&j->mu);
    /* The intake thread answers what it still holds (503 for valid ones). */
    if (j->intake_started) pthread_join(j->intake, NULL);
    for (int i = 0; i < j->n_runners; i++) pthread_join(j->runners[i], NULL);
    for (job_rec *r = j->queue_head; r; r = r->next_queued) {
        store_remove_upload(r->spec.dir);
        r->state = ST_FAILED;
        snprintf(r->error, sizeof(r->error), "the server stopped before the job ran");
    }
    for (int i = 0; i < j->n_jobs; i++) {
        cJSON_Delete(j->jobs[i]->report);
        cJSON_Delete(j->jobs[i]->evaluation);
        free(j->jobs[i]);
    }
    free(j->jobs);
    free(j->runners);
    pthread_cond_destroy(&j->cv);
    pthread_cond_destroy(&j->intake_cv);
    pthread_mutex_destroy(&j->mu);
    free(j);
}
