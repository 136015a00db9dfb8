#include "status.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

int bct_fail(bct_error *err, int code, const char *fmt, ...) {
    if (err) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
        va_end(ap);
    }
    return code;
}

int bct_fail_prefix(bct_error *err, int code, const char *fmt, ...) {
    if (err) {
        char old[sizeof(err->msg)];
        va_list ap;
        memcpy(old, err->msg, sizeof(old));
        old[sizeof(old) - 1] = '\0';
        va_start(ap, fmt);
        int n = vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
        va_end(ap);
        size_t used = n < 0 ? 0 : (size_t)n < sizeof(err->msg) ? (size_t)n : sizeof(err->msg) - 1;
        /* Append ": old", truncated to what is left of the buffer. */
        snprintf(err->msg + used, sizeof(err->msg) - used, ": %.*s", (int)(sizeof(err->msg) - used), old);
    }
    return code;
}
