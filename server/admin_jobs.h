/* admin_jobs.h - compression jobs: an uploaded checkpoint becomes the
 * next version of a model in the store and is swapped into the registry,
 * on threads of their own (never the inference workers).
 *
 * A job's life:
 *
 *   jobs_submit   the intake thread validates the staging directory with
 *                 bert_model_load_hf (config, safetensors header, every
 *                 tensor's shape, vocabulary): invalid -> done(422 + the
 *                 reason); else the job is queued -> done(202 + its id)
 *   queued        until one of max_running runner threads (nice 10, so
 *                 serving keeps its latency) takes it
 *   running       stage "validating" (or "calibrating"), "quantizing
 *                 tensor i/n", "writing" (the .bct writer's temp file,
 *                 renamed to a hidden <store>/<name>/.job-<id>.bct),
 *                 "verifying" (loaded and probed: model_probe.h),
 *                 "evaluating" (fp32 and compressed on the evaluation set,
 *                 or on calibration lines held back from calibration:
 *                 the job's "evaluation"; an accuracy drop beyond
 *                 max_drop fails the job, nothing published),
 *                 "loading" (published as <store>/<name>/<n>.bct and
 *                 swapped into the registry: requests holding the old
 *                 version finish on it, new ones get the new one; the
 *                 evaluation is written beside it, store_report_path)
 *   succeeded / failed (with the error).  The staging directory is
 *                 removed either way.
 *
 * At most queue_size jobs wait; uploads still arriving hold a place too
 * (jobs_reserve), so a full queue refuses an upload before its body is
 * read (429).  The last `history` finished jobs are kept for
 * GET /admin/jobs.  jobs_stop() fails queued jobs, stops running ones at
 * their next tensor, and joins the threads.
 *
 * Thread-safe: every function may be called from any thread.
 */
#ifndef BCT_ADMIN_JOBS_H
#define BCT_ADMIN_JOBS_H

#include "compress.h"
#include "log.h"
#include "model_store.h"
#include "registry.h"
#include "sbuf.h"

typedef struct jobs_opts {
    model_store *store;
    srv_registry *reg;
    const srv_log *log;
    int max_running;   /* runner threads */
    int queue_size;    /* jobs waiting (and uploads arriving) */
    int history;       /* finished jobs remembered */
    int keep_versions; /* versions of a model kept on disk */
    int max_seq_len;   /* as the server loads models */
} jobs_opts;

/* What to compress.  copts.progress/progress_ud/cancel/calib are the
 * runner's; the calibration text, if any, is <dir>/calibration.txt, the
 * evaluation set <dir>/eval.tsv. */
typedef struct jobs_spec {
    char name[STORE_NAME_MAX + 1];
    char dir[4096]; /* staging directory: config.json, model.safetensors, vocab.txt */
    int has_calibration;
    int has_eval;    /* an evaluation set: eval.tsv, of task eval_task (a glue_task) */
    int eval_task;
    double max_drop; /* accuracy points the compressed model may lose; < 0: no limit */
    compress_opts copts;
    long long upload_bytes;
} jobs_spec;

typedef struct jobs_answer {
    int code;      /* BCT_OK (queued: 202), or the refusal's BCT_E* (errors.h maps it) */
    char msg[600]; /* the error */
    char id[40];            /* the job, with 202 */
} jobs_answer;

typedef struct admin_jobs admin_jobs;

int jobs_start(const jobs_opts *o, admin_jobs **out, bct_error *err);

/* Holds a place in the queue for an upload: BCT_OK, or BCT_EBUSY when
 * full (or stopping). */
int jobs_reserve(admin_jobs *j);
void jobs_unreserve(admin_jobs *j);

/* Takes over a reservation and spec->dir (removed whatever happens).
 * done(ud, answer) runs exactly once, on the intake thread. */
void jobs_submit(admin_jobs *j, const jobs_spec *spec, void (*done)(void *ud, const jobs_answer *a),
                 void *ud);

/* DELETE /admin/models/{name} (issue 17): cancels every job of that name,
 * queued or running (it ends "failed", "cancelled: ..."; a running one
 * stops at its next tensor, and is never published once this returned,
 * provided the caller holds the store lock), and makes uploads of that
 * name still being validated answer 409.  Returns how many it hit. */
int jobs_cancel_model(admin_jobs *j, const char *name);

/* GET /admin/jobs/{id}: BCT_OK, or BCT_ENOTFOUND when no such job is
 * remembered. */
int jobs_get_json(admin_jobs *j, const char *id, sbuf *out);
/* GET /admin/jobs: {"jobs": [...]} newest first, without reports. */
void jobs_list_json(admin_jobs *j, sbuf *out);

void jobs_stop(admin_jobs *j);

#endif
