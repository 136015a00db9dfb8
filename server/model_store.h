/* model_store.h - the model store on disk: its layout, how readers find
 * the current version of every model, and the operations of its one
 * writer (the admin replica).
 *
 * Layout of <store>:
 *
 *   <name>.bct             a compressed model: version 1
 *   <name>/config.json     a Hugging Face checkpoint folder (with vocab.txt
 *                          and model.safetensors): version 1
 *   <name>/<n>.report.json the evaluation version n was published with (an
 *                          upload's evaluation set or held-back calibration
 *                          text: admin_jobs.h), if any
 *   <name>/<n>.bct         version n (1, 2, ...) of a model; the highest is
 *                          served, the ones below it are kept for rollback
 *                          (admin_keep_versions).  A <name>.bct next to the
 *                          folder counts as version 1 (and is moved to
 *                          <name>/1.bct when version 2 is published).
 *   .job-<id>.bct          a finished compression being verified
 *   .staging/              uploads being received or compressed
 *   .trash/                pruned versions and deleted models, removed
 *                          STORE_TRASH_DELAY_S later (replicas may still
 *                          have them mapped until they rescan)
 *
 * Hidden entries (".x") and the .bct writer's temp files (*.bct.tmp.*)
 * are never models, so no reader ever sees a partial file: the .bct
 * writer renames a complete temp file into place, a new version is
 * written under a hidden name, verified, then renamed to <n>.bct, and a
 * deleted model's files are renamed into .trash/ first.
 *
 * A model_store object holds the directory and one mutex: the admin's
 * publish / remove and the store watcher's scan-and-compare take it, so
 * within one process neither sees the other half-way.  Everything else
 * is plain functions of the directory, safe from any thread.
 */
#ifndef BCT_MODEL_STORE_H
#define BCT_MODEL_STORE_H

#include <pthread.h>

#include "log.h"
#include "registry.h"
#include "util/status.h"

#define STORE_NAME_MAX 64
#define STORE_TRASH_DELAY_S 600

/* One model of the store as a reader sees it now. */
typedef struct store_entry {
    char name[SRV_MODEL_NAME_LEN];
    char path[4096];   /* the .bct file to load, or the checkpoint folder */
    int version;       /* >= 1 */
    int checkpoint;    /* path is a checkpoint folder */
    srv_file_id id;    /* of the .bct file, or of the folder's model.safetensors */
} store_entry;

typedef struct model_store {
    char dir[4096];
    pthread_mutex_t mu;
} model_store;

int store_init(model_store *s, const char *dir, bct_error *err);
void store_destroy(model_store *s);
void store_lock(model_store *s);
void store_unlock(model_store *s);

/* An upload's model name: [a-z0-9._-]{1,64}, not starting with '.' (hidden
 * entries are not models), so never "." or ".." nor a path.  BCT_OK, or
 * BCT_EINVAL saying why. */
int store_name_check(const char *name, bct_error *err);

/* The current entry of every model, sorted by name (*out malloc'ed, free()
 * it).  BCT_EIO when dir cannot be read. */
int store_scan(const char *dir, store_entry **out, int *n, bct_error *err);

/* Identity of the file at path (size, mtime, inode): tells a replaced file
 * from the one that was loaded.  For a checkpoint folder, of its
 * model.safetensors. */
int store_file_id(const char *path, int checkpoint, srv_file_id *id);

/* What NAME is in the store now. */
enum { STORE_ABSENT, STORE_FLAT, STORE_VERSIONED, STORE_CHECKPOINT, STORE_OTHER };
int store_kind(const char *dir, const char *name);

/* The hidden path a compression for NAME is written to and verified at:
 * <dir>/.job-<job_id>.bct.  BCT_EINVAL when NAME is a checkpoint folder
 * or some other non-model entry. */
int store_pending_path(const char *dir, const char *name, const char *job_id, char *out,
                       size_t size, bct_error *err);

/* Publishes a verified pending file as the next version: renames it to
 * <dir>/<name>/<n>.bct (n = 1 + the highest version there; the folder is
 * created if needed), syncs the
 * folder, moves a flat <name>.bct to <name>/1.bct, and moves versions
 * beyond the newest `keep` to the trash.  Call with the store locked.
 * *version and final (size bytes) receive the new version and path. */
int store_publish(model_store *s, const char *name, const char *pending, int keep, int *version,
                  char *final, size_t size, const srv_log *lg, bct_error *err);

/* store_publish, and report (a JSON text, or NULL) written beside the new
 * version (store_report_path) before the version appears: every reader
 * that sees the version sees its report.  Pruned versions take their
 * report to the trash. */
int store_publish_report(model_store *s, const char *name, const char *pending, const char *report,
                         int keep, int *version, char *final, size_t size, const srv_log *lg,
                         bct_error *err);

/* The report beside a version: "<x>.bct" -> "<x>.report.json".  BCT_EINVAL
 * when bct_path does not end in .bct or out is too small. */
int store_report_path(const char *bct_path, char *out, size_t size);
/* Its contents (malloc'd, NUL-terminated), or NULL when there is none or
 * it is larger than STORE_REPORT_MAX. */
#define STORE_REPORT_MAX (64 * 1024)
char *store_report_read(const char *bct_path);

/* Moves every file of NAME (flat file, versions, checkpoint folder) to the
 * trash.  *removed: how many versions went.  BCT_EINVAL if there is no
 * such model.  Call with the store locked. */
int store_remove(model_store *s, const char *name, int *removed, bct_error *err);

/* Start-up cleanup.  Every replica removes temp files of crashed .bct
 * writers (the writer's flock protects live ones); the writer (admin) also
 * removes unpublished .job-*.bct files and trash older than
 * STORE_TRASH_DELAY_S.  Failures (e.g. a read-only store) are logged at
 * debug level and otherwise ignored.  Returns the number of entries
 * removed. */
int store_cleanup(const char *dir, int writer, const srv_log *lg);

/* The staging area of uploads: one STORE_UPLOAD_PREFIX folder per upload,
 * holding STORE_UPLOAD_MARKER from its creation on.  Only such folders are
 * ever deleted (issue 17: a staging dir set to the store, or to a folder
 * of other files, was emptied at start). */
#define STORE_UPLOAD_PREFIX "up-"
#define STORE_UPLOAD_MARKER ".bct-upload"

/* Checks staging_dir before the admin API uses it and removes the upload
 * folders that crashed or interrupted uploads left.  It must not be a
 * symlink, must not be the model store itself, and may hold nothing but
 * upload folders (a folder of STORE_UPLOAD_PREFIX name without the marker
 * is a crash between mkdtemp and the marker: empty ones are removed too).
 * A missing staging_dir is fine (created on the first upload).  BCT_EINVAL
 * naming the offending entry, or BCT_EIO. */
int store_staging_prepare(const char *staging_dir, const char *store_dir, const srv_log *lg,
                          bct_error *err);

/* Removes an upload folder, its marker last: a crash in the middle leaves
 * a folder that start-up still recognises as bct's (marker, or empty),
 * never one of files without the marker, which it would refuse to delete
 * and start with (found by tests/fault/test_fault_kill.sh).  BCT_OK or
 * BCT_EIO. */
int store_remove_upload(const char *dir);

/* Removes trash older than STORE_TRASH_DELAY_S (writer only). */
void store_empty_trash(const char *dir, const srv_log *lg);

/* Admin unloads: a marker <dir>/.unloaded/<name> hides NAME from
 * store_scan (so from every replica's start-up and watcher) while its
 * files stay.  store_set_unloaded: call with the store locked. */
int store_is_unloaded(const char *dir, const char *name);
int store_set_unloaded(model_store *s, const char *name, int unloaded, bct_error *err);

/* The current entry of NAME (store_scan's); BCT_EINVAL when there is none. */
int store_find(const char *dir, const char *name, store_entry *out, bct_error *err);

/* Opens an entry as a served model: loads it, records its origin
 * (version, file identity) and runs model_probe.  *out is the caller's
 * (registry_put it, or registry_release it). */
int store_open_entry(const store_entry *e, int max_seq_len, srv_model **out, bct_error *err);

/* rm -rf of a directory we own (never follows symlinks).  BCT_OK or
 * BCT_EIO. */
int store_rmtree(const char *path);

#endif
