#include "errors.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

int srv_err_set(srv_err *e, int code, const char *fmt, ...) {
    va_list ap;
    e->code = code;
    va_start(ap, fmt);
    vsnprintf(e->msg, sizeof(e->msg), fmt, ap);
    va_end(ap);
    return code;
}

int srv_err_status(int code, const char **type) {
    int status;
    const char *t;
    switch (code) {
    case SRV_EBADREQ: status = 400, t = "BadRequest"; break;
    case SRV_EUNAUTH: status = 401, t = "Unauthorized"; break;
    case SRV_EFORBIDDEN: status = 403, t = "Forbidden"; break;
    case SRV_ENOROUTE: status = 404, t = "NotFound"; break;
    case BCT_ENOTFOUND: status = 404, t = "ModelNotFound"; break;
    case SRV_EMETHOD: status = 405, t = "MethodNotAllowed"; break;
    case SRV_ETIMEOUT: status = 408, t = "RequestTimeout"; break;
    case BCT_ECONFLICT: status = 409, t = "Conflict"; break;
    case BCT_ERANGE: status = 413, t = "PayloadTooLarge"; break;
    case SRV_EMEDIA: status = 415, t = "UnsupportedMediaType"; break;
    case BCT_EINVAL:
    case BCT_EFORMAT:
    case BCT_EUNSUPPORTED: status = 422, t = "Validation"; break;
    case BCT_EBUSY: status = 429, t = "Overloaded"; break;
    case BCT_EUNAVAILABLE: status = 503, t = "Unavailable"; break;
    case SRV_ESTORAGE: status = 507, t = "InsufficientStorage"; break;
    default: status = 500, t = "Internal"; /* BCT_ENOMEM, BCT_EIO: never the client's fault */
    }
    if (type) *type = t;
    return status;
}

int srv_errno_code(int e) { return e == ENOSPC || e == EDQUOT || e == EROFS ? SRV_ESTORAGE : BCT_EIO; }

void srv_err_json(const srv_err *e, sbuf *out) {
    const char *type;
    srv_err_status(e->code, &type);
    sbuf_puts(out, "{\"error\":");
    sbuf_json_str(out, e->msg, strnlen(e->msg, sizeof(e->msg)));
    sbuf_puts(out, ",\"error_type\":");
    sbuf_json_str(out, type, strlen(type));
    sbuf_puts(out, "}");
}
