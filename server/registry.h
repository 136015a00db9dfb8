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
 * suffix.  Names are unique, non-empty and contain no '/'.
 */
#ifndef BCT_REGISTRY_H
#define BCT_REGISTRY_H

#include <stdatomic.h>

#include "bert_model.h"
#include "status.h"

typedef struct srv_model {
    char *name;
    char *path;
    bert_model *m;
    atomic_int refs;
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

/* The model entries of a store directory: sub-directories holding a
 * config.json and *.bct files, sorted by name; hidden entries and other
 * files are skipped.  *names and *paths are malloc'ed arrays of malloc'ed
 * strings (free with registry_free_list). */
int registry_scan_store(const char *dir, char ***names, char ***paths, int *n, bct_error *err);
void registry_free_list(char **list, int n);

/* Makes NAME the default; it must be loaded. */
int registry_set_default(srv_registry *r, const char *name, bct_error *err);

/* NULL name: the default model.  NULL when no such model is loaded. */
srv_model *registry_acquire(srv_registry *r, const char *name);
void registry_release(srv_model *m);

/* Every loaded model, acquired, sorted by name (release each, free the
 * array).  *default_index is the default's position or -1. */
int registry_list(srv_registry *r, srv_model ***out, int *n, int *default_index);

int registry_count(srv_registry *r);

/* "BertForSequenceClassification": the one architecture the engine runs. */
const char *registry_architecture(const srv_model *m);

#endif
