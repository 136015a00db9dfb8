#include "errors.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "util/status.h"

int srv_err_set(srv_err *e, int status, const char *type, const char *fmt, ...) {
    va_list ap;
    e->status = status;
    e->type = type;
    va_start(ap, fmt);
    vsnprintf(e->msg, sizeof(e->msg), fmt, ap);
    va_end(ap);
    return -1;
}

void srv_err_json(const srv_err *e, sbuf *out) {
    sbuf_puts(out, "{\"error\":");
    sbuf_json_str(out, e->msg, strnlen(e->msg, sizeof(e->msg)));
    sbuf_puts(out, ",\"error_type\":");
    sbuf_json_str(out, e->type, strlen(e->type));
    sbuf_puts(out, "}");
}

int srv_err_from(srv_err *e, int code, const char *msg) {
    switch (code) {
    case BCT_EINVAL:
    case BCT_EFORMAT:
    case BCT_EUNSUPPORTED: return srv_err_set(e, 422, ERR_VALIDATION, "%s", msg);
    case BCT_ERANGE: return srv_err_set(e, 413, ERR_TOO_LARGE, "%s", msg);
    default: return srv_err_set(e, 500, ERR_INTERNAL, "%s", msg);
    }
}

int srv_err_errno_status(int e, const char **type) {
    if (e == ENOSPC || e == EDQUOT || e == EROFS) {
        *type = ERR_STORAGE;
        return 507;
    }
    *type = ERR_INTERNAL;
    return 500;
}
