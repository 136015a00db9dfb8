/* registry.h - the loaded models, by name, with reference counts.
 *
 * Every user of a model (a request, a batch) holds a reference from
 * registry_acquire() until registry_release(); the registry's own table
 * holds one more.  A model is freed when its last reference goes, so a
 * later hot swap can replace a table entry while batches still run on the
 * old model.  All functions are thread-safe; a srv_model's fields never
 * change after it is published.
 *
 * Names: a checkpoint directory's name, or a .bct file's name without the
 * suffix (model_store.h).  Names are unique, non-empty and contain no '/'.
 */
#ifndef BCT_REGISTRY_H
#define BCT_REGISTRY_H

#include <stdatomic.h>

#include "model/bert_model.h"
#include "util/status.h"

/* A model's name with its NUL: a file name of the model store (NAME_MAX
 * is 255), or the name given to --model. */
#define SRV_MODEL_NAME_LEN 256

/* Identity of a file on disk: tells a replaced file from the one loaded. */
typedef struct srv_file_id {
    unsigned long long dev, ino;
    long long size, mtime_ns;
} srv_file_id;

typedef struct srv_model {
    char *name;
    char *path;
    bert_model *m;
    atomic_int refs;
    /* Where it came from (set by registry_set_origin before publishing). */
    int version;     /* version in the model store; 1 when unversioned */
    int from_store;  /* 0: served from a path outside the store (--model) */
    srv_file_id file;
} srv_model;

typedef struct srv_registry srv_registry;

int registry_create(srv_registry **out);
/* Drops the table's references; models still acquired live on until
 * their last release. */
void registry_free(srv_registry *r);

/* Loads PATH (checkpoint directory or .bct file) as NAME, truncating to
 * min(max_seq_len, the model's max positions). */
int registry_load(srv_registry *r, const char *name, const char *path, int max_seq_len,
                  bct_error *err);

/* Loads PATH as a model named NAME without publishing it (one reference,
 * the caller's): registry_put() it, or registry_release() it. */
int registry_open(const char *name, const char *path, int max_seq_len, srv_model **out,
                  bct_error *err);
/* Records where an unpublished model came from. */
int registry_set_origin(srv_model *m, const char *path, int version, int from_store,
                        const srv_file_id *file, bct_error *err);

/* Hot swap.  Publishes m under m->name, taking over the caller's
 * reference (released on failure too): a new entry, or in place of the
 * current one, which stays alive for the requests and batches holding it
 * and is freed with its last reference; if it was the default, m becomes
 * the default.  New acquisitions see m at once. */
int registry_put(srv_registry *r, srv_model *m, bct_error *err);
/* The same, only while the entry of that name is still `expect` (NULL: no
 * entry); BCT_ECONFLICT (m released) when it had changed. */
int registry_put_if(srv_registry *r, srv_model *m, const srv_model *expect, bct_error *err);

/* Removes NAME from the table (holders keep it until they release).
 * BCT_EINVAL if it is the default or not loaded. */
int registry_remove(srv_registry *r, const char *name, bct_error *err);
/* Removes m if it is still the entry of its name and not the default:
 * 1 removed, 0 not. */
int registry_remove_if(srv_registry *r, const srv_model *m, bct_error *err);

/* Makes NAME the default; it must be loaded. */
int registry_set_default(srv_registry *r, const char *name, bct_error *err);

/* NULL name: the default model.  NULL when no such model is loaded. */
srv_model *registry_acquire(srv_registry *r, const char *name);
void registry_release(srv_model *m);

/* Every loaded model, acquired, sorted by name (release each, free the
 * array).  *default_index is the default's position or -1. */
int registry_list(srv_registry *r, srv_model ***out, int *n, int *default_index);

int registry_count(srv_registry *r);

/* Model store entries that failed to load (issue 17: the server starts
 * without them and says so in the log, /models and /metrics).  An entry
 * leaves the list when a model of its name is published, or when
 * registry_forget_failure() says it is gone from the store. */
typedef struct registry_failure {
    char name[SRV_MODEL_NAME_LEN];
    char error[768];
} registry_failure;

/* Records (or updates) NAME's failure; BCT_ENOMEM if it cannot. */
int registry_note_failure(srv_registry *r, const char *name, const char *error);
void registry_forget_failure(srv_registry *r, const char *name);
int registry_failure_count(srv_registry *r);
/* A copy of the list (free it); BCT_ENOMEM. */
int registry_failures(srv_registry *r, registry_failure **out, int *n);

/* The model's Hugging Face class ("BertForSequenceClassification", ...). */
const char *registry_architecture(const srv_model *m);

#endif
