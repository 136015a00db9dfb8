#include "config.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#define FIELD(key, env, type, member, min, max, arg, help)                                        \
    {key, env, type, offsetof(srv_config, member), sizeof(((srv_config *)0)->member), min, max, \
     arg, help}

static const config_field fields[] = {
    FIELD("host", "BCT_HOST", CFG_STR, host, 1, 0, "ADDR",
          "address to bind: an IPv4/IPv6 literal or a host name (0.0.0.0 or :: for all)"),
    FIELD("port", "BCT_PORT", CFG_INT, port, 0, 65535, "N", "TCP port; 0 picks a free one"),
    FIELD("threads", "BCT_THREADS", CFG_INT, threads, 0, 256, "N",
          "inference worker threads, one batch each; 0 = one per CPU"),
    FIELD("intra_op_threads", "BCT_INTRA_OP_THREADS", CFG_INT, intra_op_threads, 0, 256, "N",
          "threads each worker splits its batch over (int8/int4 models); 0 = CPUs / threads, at least 1"),
    FIELD("max_batch_size", "BCT_MAX_BATCH_SIZE", CFG_INT, max_batch_size, 1, 4096, "N",
          "most inputs in one forward pass"),
    FIELD("max_batch_tokens", "BCT_MAX_BATCH_TOKENS", CFG_INT, max_batch_tokens, 2, 1 << 22, "N",
          "most tokens (sum of input lengths) in one forward pass"),
    FIELD("max_wait_us", "BCT_MAX_WAIT_US", CFG_INT, max_wait_us, 0, 10000000, "US",
          "how long a partial batch waits for more inputs while a worker is free"),
    FIELD("queue_size", "BCT_QUEUE_SIZE", CFG_INT, queue_size, 1, 1000000, "N",
          "inputs waiting for a worker; beyond it requests get 429"),
    FIELD("max_body_bytes", "BCT_MAX_BODY_BYTES", CFG_INT, max_body_bytes, 64, 1 << 30, "N",
          "largest request body; larger gets 413"),
    FIELD("max_inputs_per_request", "BCT_MAX_INPUTS_PER_REQUEST", CFG_INT, max_inputs_per_request,
          1, 100000, "N", "most items in one request's \"inputs\"; more gets 413"),
    FIELD("max_seq_len", "BCT_MAX_SEQ_LEN", CFG_INT, max_seq_len, 3, 8192, "N",
          "tokens per input incl. [CLS]/[SEP] (capped by each model's max positions)"),
    FIELD("model_store", "BCT_MODEL_STORE", CFG_PATH, model_store, 0, 0, "DIR",
          "directory whose entries are models (checkpoint dirs, .bct files); all are loaded"),
    FIELD("model", "BCT_MODEL", CFG_PATH, model, 0, 0, "PATH",
          "serve this model too; its name is the path's last component"),
    FIELD("default_model", "BCT_DEFAULT_MODEL", CFG_STR, default_model, 0, 0, "NAME",
          "model used when a request names none; empty: --model, else the first by name"),
    FIELD("log_level", "BCT_LOG_LEVEL", CFG_LOGLEVEL, log_level, 0, 0, "LEVEL",
          "server log threshold: debug, info, warn or error"),
    FIELD("access_log", "BCT_ACCESS_LOG", CFG_PATH, access_log, 0, 0, "FILE",
          "one JSON line per request: \"-\" = stderr, \"off\", or a file (appended)"),
    FIELD("connection_timeout_s", "BCT_CONNECTION_TIMEOUT_S", CFG_INT, connection_timeout_s, 0,
          86400, "S", "close connections idle (or stalled mid-request) this long; 0 = never"),
    FIELD("max_connections", "BCT_MAX_CONNECTIONS", CFG_INT, max_connections, 1, 1000000, "N",
          "client connections open at once; more wait to be accepted"),
    FIELD("drain_timeout_s", "BCT_DRAIN_TIMEOUT_S", CFG_INT, drain_timeout_s, 0, 86400, "S",
          "on SIGTERM/SIGINT, how long in-flight requests may take before they get 503"),
    FIELD("store_rescan_s", "BCT_STORE_RESCAN_S", CFG_INT, store_rescan_s, 0, 86400, "S",
          "follow the model store while running (file events, and a rescan every S seconds); "
          "0 = load it at start only"),
    FIELD("api_key", "BCT_API_KEY", CFG_STR, api_key, 0, 0, "KEYS",
          "API keys of the inference routes (/, /classify, /predict, /rerank, /tokenize), "
          "comma-separated; clients send \"Authorization: Bearer KEY\"; empty = open"),
    FIELD("api_key_file", "BCT_API_KEY_FILE", CFG_PATH, api_key_file, 0, 0, "FILE",
          "a file of API keys, one per line (# comments), added to api_key"),
    FIELD("admin_token", "BCT_ADMIN_TOKEN", CFG_STR, admin_token, 0, 0, "TOKEN",
          "bearer token of the /admin routes (upload, jobs, delete); empty = admin API off"),
    FIELD("admin_max_upload_mb", "BCT_ADMIN_MAX_UPLOAD_MB", CFG_INT, admin_max_upload_mb, 1,
          1048576, "MB", "largest model upload (all parts, MiB); larger gets 413"),
    FIELD("admin_staging_dir", "BCT_ADMIN_STAGING_DIR", CFG_PATH, admin_staging_dir, 0, 0, "DIR",
          "where uploads are received; empty = <model_store>/.staging"),
    FIELD("admin_max_jobs", "BCT_ADMIN_MAX_JOBS", CFG_INT, admin_max_jobs, 1, 64, "N",
          "compression jobs running at once, each on its own low-priority thread"),
    FIELD("admin_queue_size", "BCT_ADMIN_QUEUE_SIZE", CFG_INT, admin_queue_size, 1, 1000, "N",
          "compression jobs waiting (uploads being received count); more gets 429"),
    FIELD("admin_job_history", "BCT_ADMIN_JOB_HISTORY", CFG_INT, admin_job_history, 1, 100000, "N",
          "finished jobs GET /admin/jobs remembers"),
    FIELD("admin_keep_versions", "BCT_ADMIN_KEEP_VERSIONS", CFG_INT, admin_keep_versions, 2, 1000,
          "N", "versions of a model kept in the store, the served one included"),
    FIELD("strict_store", "BCT_STRICT_STORE", CFG_INT, strict_store, 0, 1, "0|1",
          "1 = a model store entry that fails to load stops the start (0: start with what loads, "
          "report the rest in the log, /models and /metrics)"),
    FIELD("max_connections_per_client", "BCT_MAX_CONNECTIONS_PER_CLIENT", CFG_INT,
          max_connections_per_client, 0, 1000000, "N",
          "client connections open at once from one IP address; more are refused; 0 = no cap"),
    FIELD("header_timeout_s", "BCT_HEADER_TIMEOUT_S", CFG_INT, header_timeout_s, 0, 86400, "S",
          "close a connection whose request headers are not all in this long after it opened "
          "(or after its previous answer); 0 = never"),
    FIELD("body_timeout_s", "BCT_BODY_TIMEOUT_S", CFG_INT, body_timeout_s, 0, 86400, "S",
          "answer 408 and close when a request's body is not all in this long after its headers, "
          "plus 1 s per MiB it announces (srv_limits.h); 0 = never"),
};

static const char *const level_names[] = {"debug", "info", "warn", "error"};

const config_field *config_fields(int *count) {
    *count = (int)(sizeof(fields) / sizeof(fields[0]));
    return fields;
}

const char *config_log_level_name(int level) {
    return level >= 0 && level < 4 ? level_names[level] : "?";
}

void config_defaults(srv_config *c) {
    memset(c, 0, sizeof(*c));
    snprintf(c->host, sizeof(c->host), "127.0.0.1");
    c->port = 8080;
    c->threads = 0;
    c->max_batch_size = 32;
    c->max_batch_tokens = 8192;
    c->max_wait_us = 0;
    c->queue_size = 1024;
    c->max_body_bytes = 1048576;
    c->max_inputs_per_request = 64;
    c->max_seq_len = 128;
    c->log_level = CFG_LOG_INFO;
    snprintf(c->access_log, sizeof(c->access_log), "-");
    c->connection_timeout_s = 30;
    c->max_connections = 1000;
    c->drain_timeout_s = 30;
    c->store_rescan_s = 5;
    c->admin_max_upload_mb = 2048;
    c->admin_max_jobs = 1;
    c->admin_queue_size = 4;
    c->admin_job_history = 100;
    c->admin_keep_versions = 3;
    c->strict_store = 0;
    c->max_connections_per_client = 64;
    c->header_timeout_s = 10;
    c->body_timeout_s = 30;
}

void config_flag_name(const config_field *f, char *buf, size_t size) {
    size_t o = 0;
    if (size < 3) return;
    buf[o++] = '-';
    buf[o++] = '-';
    for (const char *k = f->key; *k && o + 1 < size; k++) buf[o++] = *k == '_' ? '-' : *k;
    buf[o] = '\0';
}

static int set_int(srv_config *c, const config_field *f, long long v, const char *source,
                   const char *shown, bct_error *err) {
    if (v < f->min || v > f->max)
        return bct_fail(err, BCT_EINVAL, "%s: %s must be an integer in [%lld, %lld], got %s", source,
                        f->key, f->min, f->max, shown);
    *(int *)(void *)((char *)c + f->offset) = (int)v;
    return BCT_OK;
}

/* Joins base_dir and a relative path; "-" and "off" are not paths. */
static int set_string(srv_config *c, const config_field *f, const char *v, const char *source,
                      const char *base_dir, bct_error *err) {
    char *dst = (char *)c + f->offset;
    if (f->type == CFG_LOGLEVEL) {
        for (int i = 0; i < 4; i++)
            if (!strcmp(v, level_names[i])) {
                *(int *)(void *)dst = i;
                return BCT_OK;
            }
        return bct_fail(err, BCT_EINVAL,
                        "%s: log_level must be debug, info, warn or error, got \"%s\"", source, v);
    }
    if (f->min > 0 && !*v) return bct_fail(err, BCT_EINVAL, "%s: %s must not be empty", source, f->key);
    int n;
    int special = f->type == CFG_PATH && (!strcmp(v, "-") || !strcmp(v, "off"));
    if (f->type == CFG_PATH && base_dir && *v && v[0] != '/' && !special)
        n = snprintf(dst, f->size, "%s/%s", base_dir, v);
    else
        n = snprintf(dst, f->size, "%s", v);
    if (n < 0 || (size_t)n >= f->size)
        return bct_fail(err, BCT_EINVAL, "%s: %s is too long (at most %zu bytes)", source, f->key,
                        f->size - 1);
    return BCT_OK;
}

int config_set(srv_config *c, const config_field *f, const char *value, const char *source,
               bct_error *err) {
    if (f->type != CFG_INT) return set_string(c, f, value, source, NULL, err);
    char *end;
    errno = 0;
    long long v = strtoll(value, &end, 10);
    if (errno || end == value || *end) {
        char shown[64];
        snprintf(shown, sizeof(shown), "\"%.40s\"", value);
        return bct_fail(err, BCT_EINVAL, "%s: %s must be an integer in [%lld, %lld], got %s", source,
                        f->key, f->min, f->max, shown);
    }
    return set_int(c, f, v, source, value, err);
}

static const config_field *find_key(const char *key) {
    for (size_t i = 0; i < sizeof(fields) / sizeof(fields[0]); i++)
        if (!strcmp(fields[i].key, key)) return &fields[i];
    return NULL;
}

int config_apply_json(srv_config *c, const char *json, size_t len, const char *what,
                      const char *base_dir, bct_error *err) {
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts(json, len, &end, 0);
    if (!root) {
        size_t off = end && end >= json ? (size_t)(end - json) : 0;
        return bct_fail(err, BCT_EINVAL, "%s: not valid JSON (near byte %zu)", what, off);
    }
    int rc = BCT_OK;
    if (!cJSON_IsObject(root)) {
        rc = bct_fail(err, BCT_EINVAL, "%s: must be a JSON object", what);
        goto done;
    }
    for (cJSON *it = root->child; it; it = it->next) {
        const config_field *f = find_key(it->string);
        char source[600];
        snprintf(source, sizeof(source), "%s: \"%s\"", what, it->string);
        if (!f) {
            char known[1024] = "";
            size_t o = 0;
            for (size_t i = 0; i < sizeof(fields) / sizeof(fields[0]) && o < sizeof(known); i++)
                o += (size_t)snprintf(known + o, sizeof(known) - o, "%s%s", i ? ", " : "",
                                      fields[i].key);
            rc = bct_fail(err, BCT_EINVAL, "%s: unknown key \"%s\" (known keys: %s)", what,
                          it->string, known);
            goto done;
        }
        if (f->type == CFG_INT) {
            double d = cJSON_IsNumber(it) ? it->valuedouble : NAN;
            if (!cJSON_IsNumber(it) || d != floor(d) || fabs(d) > 1e15) {
                char *shown = cJSON_PrintUnformatted(it);
                rc = bct_fail(err, BCT_EINVAL, "%s: must be an integer in [%lld, %lld], got %.60s",
                              source, f->min, f->max, shown ? shown : "?");
                free(shown);
                goto done;
            }
            char shown[32];
            snprintf(shown, sizeof(shown), "%.0f", d);
            if ((rc = set_int(c, f, (long long)d, source, shown, err)) != BCT_OK) goto done;
        } else {
            if (!cJSON_IsString(it)) {
                rc = bct_fail(err, BCT_EINVAL, "%s: must be a string", source);
                goto done;
            }
            if ((rc = set_string(c, f, it->valuestring, source, base_dir, err)) != BCT_OK) goto done;
        }
    }
done:
    cJSON_Delete(root);
    return rc;
}

int config_load_file(srv_config *c, const char *path, bct_error *err) {
    FILE *f = fopen(path, "rb");
    if (!f) return bct_fail(err, BCT_EIO, "cannot open config file %s: %s", path, strerror(errno));
    char *buf = NULL;
    size_t len = 0, cap = 0;
    for (;;) {
        if (len == cap) {
            cap = cap ? cap * 2 : 4096;
            char *p = cap <= (1u << 24) ? realloc(buf, cap) : NULL;
            if (!p) {
                free(buf);
                fclose(f);
                return bct_fail(err, BCT_EIO, "config file %s is too large", path);
            }
            buf = p;
        }
        size_t n = fread(buf + len, 1, cap - len, f);
        len += n;
        if (n == 0) break;
    }
    int bad = ferror(f);
    fclose(f);
    if (bad) {
        free(buf);
        return bct_fail(err, BCT_EIO, "cannot read config file %s", path);
    }
    /* Relative paths inside the file are relative to the file. */
    char dir[4096];
    snprintf(dir, sizeof(dir), "%s", path);
    char *slash = strrchr(dir, '/');
    if (slash)
        *slash = '\0';
    else
        snprintf(dir, sizeof(dir), ".");
    if (!dir[0]) snprintf(dir, sizeof(dir), "/");
    int rc = config_apply_json(c, buf, len, path, dir, err);
    free(buf);
    return rc;
}

int config_apply_env(srv_config *c, bct_error *err) {
    for (size_t i = 0; i < sizeof(fields) / sizeof(fields[0]); i++) {
        const char *v = getenv(fields[i].env);
        if (!v) continue;
        int rc = config_set(c, &fields[i], v, fields[i].env, err);
        if (rc != BCT_OK) return rc;
    }
    return BCT_OK;
}

int config_validate(const srv_config *c, bct_error *err) {
    if (!c->model[0] && !c->model_store[0])
        return bct_fail(err, BCT_EINVAL,
                        "no model to serve: set model_store (--model-store DIR) or model "
                        "(--model PATH)");
    if (c->max_inputs_per_request > c->queue_size)
        return bct_fail(err, BCT_EINVAL,
                        "max_inputs_per_request (%d) is larger than queue_size (%d): such a "
                        "request could never be queued",
                        c->max_inputs_per_request, c->queue_size);
    if (c->max_batch_tokens < c->max_seq_len)
        return bct_fail(err, BCT_EINVAL,
                        "max_batch_tokens (%d) is smaller than max_seq_len (%d): one long input "
                        "would not fit in a batch",
                        c->max_batch_tokens, c->max_seq_len);
    if (c->admin_token[0] && !c->model_store[0])
        return bct_fail(err, BCT_EINVAL,
                        "admin_token is set but model_store is not: uploaded models are written "
                        "into the model store");
    if (strchr(c->default_model, '/'))
        return bct_fail(err, BCT_EINVAL, "default_model must be a model name, not a path: \"%s\"",
                        c->default_model);
    return BCT_OK;
}

void config_print_help(FILE *out) {
    srv_config d;
    config_defaults(&d);
    for (size_t i = 0; i < sizeof(fields) / sizeof(fields[0]); i++) {
        const config_field *f = &fields[i];
        char flag[64], left[96], def[64];
        config_flag_name(f, flag, sizeof(flag));
        snprintf(left, sizeof(left), "%s %s", flag, f->arg);
        const char *member = (const char *)&d + f->offset;
        if (f->type == CFG_INT)
            snprintf(def, sizeof(def), "%d", *(const int *)(const void *)member);
        else if (f->type == CFG_LOGLEVEL)
            snprintf(def, sizeof(def), "%s", config_log_level_name(*(const int *)(const void *)member));
        else
            snprintf(def, sizeof(def), "\"%s\"", member);
        fprintf(out, "  %-30s %s, \"%s\"; default %s\n        %s\n", left, f->env, f->key, def,
                f->help);
    }
}
