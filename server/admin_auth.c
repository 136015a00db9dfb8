#include "admin_auth.h"

#include <string.h>
#include <strings.h>

int admin_auth_equal(const char *offered, const char *secret) {
    size_t n = strlen(secret), m = strlen(offered);
    unsigned diff = (unsigned)(m != n);
    /* Read the offered bytes up to secret's length, never past their end
     * (a shorter offer is read as zeros past its NUL), accumulating
     * differences without an early exit. */
    size_t reached_end = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char o = reached_end ? 0 : (unsigned char)offered[i];
        reached_end |= (o == 0);
        diff |= (unsigned)(o ^ (unsigned char)secret[i]);
    }
    return diff == 0;
}

int admin_auth_check(const char *configured, const char *header) {
    if (!configured || !configured[0]) return AUTH_DISABLED;
    if (!header) return AUTH_MISSING;
    while (*header == ' ' || *header == '\t') header++;
    if (strncasecmp(header, "Bearer", 6) != 0 || (header[6] != ' ' && header[6] != '\t'))
        return AUTH_MISSING;
    const char *tok = header + 6;
    while (*tok == ' ' || *tok == '\t') tok++;
    size_t len = strlen(tok);
    while (len && (tok[len - 1] == ' ' || tok[len - 1] == '\t')) len--;
    if (len == 0) return AUTH_MISSING;
    char buf[1024];
    if (len >= sizeof(buf)) return AUTH_WRONG;
    memcpy(buf, tok, len);
    buf[len] = '\0';
    int ok = admin_auth_equal(buf, configured);
    memset(buf, 0, sizeof(buf));
    return ok ? AUTH_OK : AUTH_WRONG;
}
