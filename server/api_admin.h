/* api_admin.h - the /admin routes: model upload and compression jobs,
 * model deletion.  http.c hands every request under /admin to this module
 * and sends what it answers.
 *
 *   POST   /admin/compress       multipart/form-data upload (below) -> 202
 *                                {"job_id", "status_url", "state", "name"}
 *   GET    /admin/jobs           recent jobs, newest first
 *   GET    /admin/jobs/{id}      one job: state, stage, progress, timings,
 *                                compression report, error
 *   DELETE /admin/models/{name}  unloads the model and moves its files to
 *                                the store's trash -> 200 (409 for the default
 *                                model or one not from the store)
 *   POST /admin/models/{name}/unload  unloads it, files kept; a marker in
 *                                the store (store_set_unloaded) keeps every
 *                                replica from loading it -> 200 (409 as DELETE)
 *   POST /admin/models/{name}/load    removes the marker, loads and probes
 *                                the store's current version (on a thread
 *                                of its own, the connection suspended) -> 200
 *
 * Upload parts: files (parts with a filename) config (config.json),
 * weights (model.safetensors), vocab (vocab.txt), optional calibration
 * (text lines, TAB for pairs); fields name (required, see
 * store_name_check) and the options of `bct compress`: preset, weights
 * (as a field: the Linear weights' format), embeddings, tables, block,
 * scales, activations, nonlinear, calib_n.
 *
 * Which route, and who may call it ("Authorization: Bearer
 * <admin_token>", admin_auth.h), is decided by routes/ before admin_begin.
 *
 * A request goes: admin_begin (headers) -> admin_body (each piece of
 * body) -> admin_end (body complete).  An answer decided from the headers
 * (ADMIN_ANSWER from admin_begin) is best sent once the body is read and
 * dropped (up to admin_upload_limit), except as reply->now says.  The upload streams to a staging
 * directory (upload.h); at the end the checkpoint is validated on the job
 * runner's intake thread (admin_jobs.h) while the connection is
 * suspended, as a /load's model is loaded: admin_end returns ADMIN_SUSPEND, the caller suspends the
 * connection and calls admin_wait(), whose resume callback runs on
 * another thread once admin_take_reply() has the answer.
 */
#ifndef BCT_API_ADMIN_H
#define BCT_API_ADMIN_H

#include <microhttpd.h>

#include "admin_jobs.h"
#include "config.h"
#include "log.h"
#include "model_store.h"
#include "registry.h"

typedef struct admin_reply {
    int status;
    const char *error_type; /* NULL on success */
    char *body;             /* malloc'ed JSON */
    size_t len;
    const char *allow;      /* Allow header of a 405, or NULL */
    const char *hdr_name;   /* one more header (Location, WWW-Authenticate) or NULL */
    char hdr_value[160];
    int now;                /* send before reading the body (it is too large to read) */
} admin_reply;

typedef struct admin_deps {
    const srv_config *cfg;
    srv_registry *reg;
    model_store *store;
    admin_jobs *jobs;
    const srv_log *log;
} admin_deps;

typedef struct srv_admin srv_admin;
typedef struct admin_req admin_req;

int admin_create(const admin_deps *d, srv_admin **out, bct_error *err);
void admin_free(srv_admin *a);
/* Where uploads are staged: admin_staging_dir, or <model_store>/.staging. */
const char *admin_staging_dir(const srv_admin *a);
/* The largest upload (admin_max_upload_mb) in bytes. */
long long admin_upload_limit(const srv_admin *a);

enum { ADMIN_ANSWER, ADMIN_BODY, ADMIN_SUSPEND };

/* The admin routes (route.op of routes/table.c). */
enum { ADMIN_COMPRESS, ADMIN_JOBS, ADMIN_JOB, ADMIN_DELETE, ADMIN_LOAD, ADMIN_UNLOAD };

/* The headers are in, the route (op, with arg: the {id} or {name} of the
 * path) is matched and the caller authenticated.  accepting: the server
 * is ready (not loading or draining); uploads and changes need it.
 * ADMIN_ANSWER: *reply is the answer (reply->now: the body is too large to
 * read first); ADMIN_BODY: feed the body to *out. */
int admin_begin(srv_admin *a, struct MHD_Connection *c, int op, const char *arg, int accepting,
                admin_req **out, admin_reply *reply);

/* A piece of the body.  0, or -1 to close the connection (a failed
 * upload goes on far beyond its limit). */
int admin_body(admin_req *q, const char *data, size_t n);

/* The body is complete: ADMIN_ANSWER with *reply, or ADMIN_SUSPEND. */
int admin_end(admin_req *q, admin_reply *reply);

/* After ADMIN_SUSPEND, once the connection is suspended: resume(ud) runs
 * exactly once, on another thread, when the answer is ready. */
void admin_wait(admin_req *q, void (*resume)(void *ud), void *ud);
void admin_take_reply(admin_req *q, admin_reply *reply);

/* The model a request concerns (for the access log), or NULL. */
const char *admin_req_model(const admin_req *q);

/* Frees the request (an unfinished upload's staging directory too). */
void admin_req_free(admin_req *q);
void admin_reply_free(admin_reply *r);

#endif
