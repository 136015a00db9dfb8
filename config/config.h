/* config.h - the settings of `bct serve` and where they come from.
 *
 * Every setting is one row of a table (config.c) that gives its JSON key,
 * its BCT_* environment variable, its command-line flag (the key with '_'
 * turned into '-'), its type, range and help line.  Sources are applied in
 * this order, each overriding the previous one:
 *
 *   compiled defaults (= config/default.json) < --config FILE (or
 *   BCT_CONFIG) < BCT_* environment < command-line flags
 *
 * Every value is range-checked when it is set; config_validate() then
 * checks the settings against each other.  Failures return BCT_EINVAL (or
 * BCT_EIO for an unreadable file) with a sentence naming the source, the
 * key and what was wrong.
 */
#ifndef BCT_CONFIG_H
#define BCT_CONFIG_H

#include <stdio.h>

#include "util/status.h"

enum { CFG_LOG_DEBUG, CFG_LOG_INFO, CFG_LOG_WARN, CFG_LOG_ERROR };

typedef struct srv_config {
    char host[256];               /* bind address */
    int port;                     /* 0: pick a free port */
    int threads;                  /* inference workers; 0: one per CPU */
    int intra_op_threads;         /* threads per worker's batch; 0: CPUs / workers */
    int max_batch_size;           /* inputs per forward pass */
    int max_batch_tokens;         /* tokens per forward pass */
    int max_wait_us;              /* how long a partial batch may wait */
    int queue_size;               /* inputs waiting for a worker */
    int max_body_bytes;           /* request body limit */
    int max_inputs_per_request;   /* items in one request's "inputs" */
    int max_seq_len;              /* tokens per input, incl. [CLS]/[SEP] */
    char model_store[4096];       /* directory of models ("" = none) */
    char model[4096];             /* one model path served directly */
    char default_model[256];      /* name; "" = --model, else first by name */
    int log_level;                /* CFG_LOG_* */
    char access_log[4096];        /* "-" stderr, "off", or a file path */
    int connection_timeout_s;     /* idle connection timeout; 0 = none */
    int max_connections;          /* open client connections at once */
    int drain_timeout_s;          /* graceful-shutdown limit */
    int store_rescan_s;           /* follow the store: rescan period; 0 = off */
    char api_key[4096];           /* inference API keys, comma-separated; "" = open */
    char api_key_file[4096];      /* more keys, one per line; "" = none */
    char admin_token[256];        /* bearer token of /admin; "" = admin off */
    int admin_max_upload_mb;      /* largest upload (all parts) */
    char admin_staging_dir[4096]; /* "" = <model_store>/.staging */
    int admin_max_jobs;           /* compression jobs running at once */
    int admin_queue_size;         /* jobs waiting (and uploads arriving) */
    int admin_job_history;        /* finished jobs remembered */
    int admin_keep_versions;      /* versions of a model kept on disk */
    int strict_store;             /* 1: a store entry that fails to load stops the start */
    int max_connections_per_client; /* open connections from one IP address; 0 = no cap */
    int header_timeout_s;         /* a request's headers must be in within this; 0 = none */
    int body_timeout_s;           /* a request's body must be in within this (+ size) of its headers */
} srv_config;

typedef enum { CFG_INT, CFG_STR, CFG_PATH, CFG_LOGLEVEL } config_type;

typedef struct config_field {
    const char *key;  /* JSON key; the flag is "--" + key with '_' -> '-' */
    const char *env;  /* environment variable */
    config_type type;
    size_t offset;    /* into srv_config */
    size_t size;      /* of the member (strings: buffer size) */
    long long min, max;
    const char *arg;  /* placeholder in --help: N, ADDR, DIR, ... */
    const char *help;
} config_field;

/* The table, in documentation order. */
const config_field *config_fields(int *count);

/* Fills c with the compiled defaults (identical to config/default.json). */
void config_defaults(srv_config *c);

/* Applies a JSON object: unknown keys, wrong types and out-of-range
 * values are errors.  Relative paths are resolved against base_dir
 * (NULL: keep them as they are).  `what` names the source in messages. */
int config_apply_json(srv_config *c, const char *json, size_t len, const char *what,
                      const char *base_dir, bct_error *err);

/* Reads FILE and applies it; relative paths are taken from FILE's folder. */
int config_load_file(srv_config *c, const char *path, bct_error *err);

/* Applies every BCT_* variable of the table that is set. */
int config_apply_env(srv_config *c, bct_error *err);

/* Sets one field from text (an environment value or a flag argument);
 * `source` names it in messages ("BCT_PORT", "--port"). */
int config_set(srv_config *c, const config_field *f, const char *value, const char *source,
               bct_error *err);

/* Cross-field checks: a model to serve, batch and queue limits that can
 * be met together. */
int config_validate(const srv_config *c, bct_error *err);

/* "--max-batch-size" for key "max_batch_size" (buf of at least 64). */
void config_flag_name(const config_field *f, char *buf, size_t size);

/* The settings section of `bct serve --help`. */
void config_print_help(FILE *out);

const char *config_log_level_name(int level);

#endif
