/* errors.h - the one error shape every route returns:
 *   {"error": "<sentence>", "error_type": "<Type>"}
 *
 * Server code follows the engine's convention (util/status.h): 0, or a
 * negative code with a sentence.  The codes below continue BCT_E* with the
 * distinctions only HTTP makes, and srv_err_status() is the one place a
 * code becomes a status and an error_type:
 *
 * code              status  error_type            when
 * SRV_EBADREQ       400     BadRequest            body is not valid JSON (or multipart);
 *                                                 two Content-Length headers, %00 in the path
 * SRV_EUNAUTH       401     Unauthorized          an inference route without a valid API key;
 *                                                 /admin without a bearer token
 * SRV_EFORBIDDEN    403     Forbidden             /admin with the wrong token
 * SRV_ENOROUTE      404     NotFound              unknown route (or /admin with the admin API off)
 * BCT_ENOTFOUND     404     ModelNotFound         "model" names no loaded model
 * SRV_EMETHOD       405     MethodNotAllowed      known route, wrong method (Allow header set)
 * SRV_ETIMEOUT      408     RequestTimeout        the body was not in within its deadline
 *                                                 (conn_guard.h; the connection is closed)
 * BCT_ECONFLICT     409     Conflict              /admin: the model cannot be replaced or deleted
 * BCT_ERANGE        413     PayloadTooLarge       body or number of inputs over the limit
 * SRV_EMEDIA        415     UnsupportedMediaType  Content-Type is not application/json
 * BCT_EINVAL,       422     Validation            valid JSON, invalid request (types, empty
 * BCT_EFORMAT,                                    text, invalid UTF-8, too long with
 * BCT_EUNSUPPORTED                                truncate=false, a bad checkpoint, ...)
 * BCT_EBUSY         429     Overloaded            queue full (Retry-After set)
 * BCT_ENOMEM,       500     Internal              the engine failed (never client input)
 * BCT_EIO, others
 * BCT_EUNAVAILABLE  503     Unavailable           loading models or shutting down
 * SRV_ESTORAGE      507     InsufficientStorage   /admin: the upload cannot be stored (the
 *                                                 disk is full, a quota, a read-only store)
 */
#ifndef BCT_SRV_ERRORS_H
#define BCT_SRV_ERRORS_H

#include "sbuf.h"
#include "util/status.h"

enum {
    SRV_EBADREQ = -100, /* the request cannot be parsed */
    SRV_EUNAUTH = -101, /* no credential */
    SRV_EFORBIDDEN = -102, /* a wrong credential */
    SRV_ENOROUTE = -103, /* no such path */
    SRV_EMETHOD = -104, /* the path does not take this method */
    SRV_EMEDIA = -105, /* the body's Content-Type is not one the route reads */
    SRV_ESTORAGE = -106, /* the store cannot take more: full, over quota, read-only */
    SRV_ETIMEOUT = -107, /* the body did not arrive within its deadline */
};

typedef struct srv_err {
    int code; /* BCT_E* or SRV_E* */
    char msg[320];
} srv_err;

/* Fills e and returns code, for `return srv_err_set(e, BCT_EINVAL, ...);`. */
int srv_err_set(srv_err *e, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* The one mapping from a code to an answer: its HTTP status, and its
 * error_type in *type (a static string). */
int srv_err_status(int code, const char **type);

/* The code of a failed file-system call (errno e) on a server-side file:
 * SRV_ESTORAGE when the store cannot take more (ENOSPC, EDQUOT, EROFS: a
 * 507, not a retry-in-a-second 503), else BCT_EIO. */
int srv_errno_code(int e);

/* The JSON body for e. */
void srv_err_json(const srv_err *e, sbuf *out);

#endif
