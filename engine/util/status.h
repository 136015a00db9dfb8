/* status.h - return codes and error messages shared by every module.
 *
 * Functions return BCT_OK (0) on success or a negative BCT_E* code.  When a
 * function fails and the caller passed a bct_error, it holds a sentence a
 * user can act on (which file, which tensor, which field, what was wrong).
 */
#ifndef BCT_STATUS_H
#define BCT_STATUS_H

#include <stddef.h>

enum {
    BCT_OK = 0,
    BCT_EIO = -1,          /* open/read/mmap/write failed */
    BCT_EFORMAT = -2,      /* file contents are malformed or inconsistent */
    BCT_ENOMEM = -3,       /* allocation failed */
    BCT_EINVAL = -4,       /* bad argument or bad user input */
    BCT_EUNSUPPORTED = -5, /* well-formed but not something we can run */
    BCT_ERANGE = -6,       /* input too long / too large */
    BCT_ENOTFOUND = -7,    /* a named thing (model, store entry) does not exist */
    BCT_ECONFLICT = -8,    /* the state forbids it, or changed under the caller */
    BCT_EBUSY = -9,        /* full for now: retry later */
    BCT_EUNAVAILABLE = -10, /* not ready yet, or shutting down */
};

typedef struct bct_error {
    char msg[512];
} bct_error;

/* Formats the message into err (if not NULL) and returns code, so callers
 * can write `return bct_fail(err, BCT_EFORMAT, "...", ...);`. */
int bct_fail(bct_error *err, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Prefixes an existing message: "context: old message". Returns code. */
int bct_fail_prefix(bct_error *err, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#endif
