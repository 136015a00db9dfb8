#include "access_log.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"
#include "sbuf.h"
#include "srv_limits.h"

struct access_log {
    int fd; /* -1: off */
    int owned;
};

int access_log_open(const char *spec, access_log **out, bct_error *err) {
    access_log *al = calloc(1, sizeof(*al));
    if (!al) return bct_fail(err, BCT_ENOMEM, "out of memory");
    al->fd = -1;
    if (!strcmp(spec, "-")) {
        al->fd = STDERR_FILENO;
    } else if (strcmp(spec, "off") != 0) {
        al->fd = open(spec, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
        if (al->fd < 0) {
            int e = errno;
            free(al);
            return bct_fail(err, BCT_EIO, "cannot open access log %s: %s", spec, strerror(e));
        }
        al->owned = 1;
    }
    *out = al;
    return BCT_OK;
}

void access_log_write(access_log *al, const access_entry *e) {
    if (!al || al->fd < 0) return;
    sbuf b;
    sbuf_init(&b);
    sbuf_puts(&b, "{\"ts\":\"");
    srv_put_timestamp(&b);
    sbuf_puts(&b, "\"");
    if (e->remote) {
        sbuf_puts(&b, ",\"remote\":");
        sbuf_json_str(&b, e->remote, strlen(e->remote));
    }
    sbuf_puts(&b, ",\"method\":");
    sbuf_json_str(&b, e->method, strnlen(e->method, 32));
    sbuf_puts(&b, ",\"path\":");
    sbuf_json_str(&b, e->path, strnlen(e->path, SRV_PATH_LEN));
    sbuf_printf(&b, ",\"status\":%d", e->status);
    if (e->error_type) sbuf_printf(&b, ",\"error_type\":\"%s\"", e->error_type);
    if (e->model) {
        sbuf_puts(&b, ",\"model\":");
        sbuf_json_str(&b, e->model, strlen(e->model));
    }
    if (e->inputs >= 0) sbuf_printf(&b, ",\"inputs\":%d,\"tokens\":%lld", e->inputs, e->tokens);
    if (e->queue_ms >= 0) sbuf_printf(&b, ",\"queue_ms\":%.3f", e->queue_ms);
    if (e->inference_ms >= 0) sbuf_printf(&b, ",\"inference_ms\":%.3f", e->inference_ms);
    sbuf_printf(&b, ",\"total_ms\":%.3f,\"bytes_in\":%zu,\"bytes_out\":%zu", e->total_ms,
                e->bytes_in, e->bytes_out);
    if (e->request_id) {
        sbuf_puts(&b, ",\"request_id\":");
        sbuf_json_str(&b, e->request_id, strlen(e->request_id));
    }
    sbuf_puts(&b, "}\n");
    if (!b.oom) srv_write_all(al->fd, b.data, b.len);
    sbuf_free(&b);
}

void access_log_close(access_log *al) {
    if (!al) return;
    if (al->owned) close(al->fd);
    free(al);
}
