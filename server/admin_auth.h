/* admin_auth.h - who may use the /admin routes.
 *
 * A bearer token (admin_token / BCT_ADMIN_TOKEN) guards them:
 *   no token configured        -> the routes do not exist (404): the admin
 *                                 API is off, not open
 *   no or malformed credential -> 401 (with WWW-Authenticate: Bearer)
 *   a token other than ours    -> 403
 * The comparison takes the same time whatever the offered token holds
 * (it depends only on the configured token's length), so the token cannot
 * be guessed byte by byte from response times.
 */
#ifndef BCT_ADMIN_AUTH_H
#define BCT_ADMIN_AUTH_H

#include <stddef.h>

enum { AUTH_OK = 0, AUTH_DISABLED = 404, AUTH_MISSING = 401, AUTH_WRONG = 403 };

/* configured: the token ("" = admin off); header: the Authorization
 * header or NULL.  Returns AUTH_*. */
int admin_auth_check(const char *configured, const char *header);

/* 1 when a and b (NUL-terminated) are equal; time depends on strlen(b)
 * only. */
int admin_auth_equal(const char *a, const char *b);

#endif
