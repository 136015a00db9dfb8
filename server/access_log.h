/* access_log.h - one JSON line per HTTP request:
 *
 *   {"ts":"2024-05-01T12:00:00.123Z","remote":"127.0.0.1","method":"POST",
 *    "path":"/classify","status":200,"model":"sst2","inputs":2,"tokens":31,
 *    "queue_ms":0.41,"inference_ms":1.20,"total_ms":1.93,"bytes_in":57,
 *    "bytes_out":132,"request_id":"9f2c..."}
 *
 * plus "error_type" on errors.  Fields that do not apply (model, inputs,
 * tokens, queue_ms, inference_ms on GET /health, ...) are left out.  Each
 * line is one write(2) to an O_APPEND descriptor, so lines stay whole even
 * with several writers.  Thread-safe.
 */
#ifndef BCT_ACCESS_LOG_H
#define BCT_ACCESS_LOG_H

#include <stddef.h>

#include "util/status.h"

typedef struct access_log access_log;

typedef struct access_entry {
    const char *remote;      /* client address or NULL */
    const char *method;
    const char *path;
    const char *request_id;  /* X-Request-Id, taken or generated */
    int status;
    const char *error_type;  /* NULL on success */
    const char *model;       /* NULL when no model was involved */
    int inputs;              /* < 0: not an inference request */
    long long tokens;
    double queue_ms, inference_ms; /* < 0: not measured */
    double total_ms;
    size_t bytes_in, bytes_out;
} access_entry;

/* spec: "-" = stderr, "off" = nothing, otherwise a file opened for append
 * (created 0644). */
int access_log_open(const char *spec, access_log **out, bct_error *err);
void access_log_write(access_log *al, const access_entry *e);
void access_log_close(access_log *al);

#endif
