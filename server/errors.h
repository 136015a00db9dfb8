/* errors.h - the one error shape every route returns:
 *   {"error": "<sentence>", "error_type": "<Type>"}
 *
 * status  error_type            when
 * 400     BadRequest            body is not valid JSON (or not valid multipart)
 * 400     BadRequest            also: two Content-Length headers, %00 in the path
 * 401     Unauthorized          an inference route without a valid API key;
 *                               /admin without a bearer token
 * 403     Forbidden             /admin with the wrong token
 * 404     NotFound              unknown route (or /admin with the admin API off)
 * 404     ModelNotFound         "model" names no loaded model
 * 405     MethodNotAllowed      known route, wrong method (Allow header set)
 * 408     RequestTimeout        the body was not in within its deadline
 *                               (conn_guard.h; the connection is closed)
 * 413     PayloadTooLarge       body or number of inputs over the limit
 * 409     Conflict              /admin: the model cannot be replaced or deleted
 * 415     UnsupportedMediaType  Content-Type is not application/json
 * 422     Validation            valid JSON, invalid request (types, empty
 *                               text, invalid UTF-8, too long with
 *                               truncate=false, ...)
 * 429     Overloaded            queue full (Retry-After set)
 * 500     Internal              the engine failed (never client input)
 * 503     Unavailable           loading models or shutting down
 */
#ifndef BCT_SRV_ERRORS_H
#define BCT_SRV_ERRORS_H

#include "sbuf.h"

#define ERR_BAD_REQUEST "BadRequest"
#define ERR_NOT_FOUND "NotFound"
#define ERR_MODEL_NOT_FOUND "ModelNotFound"
#define ERR_METHOD "MethodNotAllowed"
#define ERR_TIMEOUT "RequestTimeout"
#define ERR_UNAUTHORIZED "Unauthorized"
#define ERR_FORBIDDEN "Forbidden"
#define ERR_CONFLICT "Conflict"
#define ERR_TOO_LARGE "PayloadTooLarge"
#define ERR_MEDIA_TYPE "UnsupportedMediaType"
#define ERR_VALIDATION "Validation"
#define ERR_OVERLOADED "Overloaded"
#define ERR_INTERNAL "Internal"
#define ERR_UNAVAILABLE "Unavailable"

typedef struct srv_err {
    int status;       /* HTTP status */
    const char *type; /* one of the ERR_* strings */
    char msg[320];
} srv_err;

/* Fills e and returns -1, for `return srv_err_set(e, 422, ...);`. */
int srv_err_set(srv_err *e, int status, const char *type, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* The one mapping from a BCT_* code (util/status.h) to an answer: input
 * errors (BCT_EINVAL, BCT_EFORMAT, BCT_EUNSUPPORTED) are 422 Validation,
 * BCT_ERANGE 413 PayloadTooLarge, BCT_ENOMEM and BCT_EIO 500 Internal.
 * Fills e with msg and returns -1. */
int srv_err_from(srv_err *e, int code, const char *msg);

/* The JSON body for e. */
void srv_err_json(const srv_err *e, sbuf *out);

#endif
