/* json_body.c - what every JSON route checks from the headers, and the
 * body read into memory up to max_body_bytes. */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "http.h"
#include "route.h"
#include "srv_limits.h"
#include "util/json_util.h"

/* The first buffer of a body sent without Content-Length (chunked); it
 * doubles as it fills, up to max_body_bytes. */
#define JSON_BODY_FIRST_CAP 4096

/* application/json, optionally with "; charset=utf-8". */
static int is_json_type(const char *ct) {
    if (!ct) return 0;
    while (*ct == ' ' || *ct == '\t') ct++;
    if (strncasecmp(ct, "application/json", 16) != 0) return 0;
    const char *p = ct + 16;
    for (;;) {
        while (*p == ' ' || *p == '\t') p++;
        if (!*p) return 1;
        if (*p != ';') return 0;
        p++;
        while (*p == ' ' || *p == '\t') p++;
        const char *name = p;
        while (*p && *p != '=' && *p != ';') p++;
        size_t nlen = (size_t)(p - name);
        while (nlen && (name[nlen - 1] == ' ' || name[nlen - 1] == '\t')) nlen--;
        const char *val = "";
        size_t vlen = 0;
        if (*p == '=') {
            p++;
            while (*p == ' ' || *p == '\t') p++;
            int quoted = *p == '"';
            if (quoted) p++;
            val = p;
            while (*p && (quoted ? *p != '"' : (*p != ';' && *p != ' ' && *p != '\t'))) p++;
            vlen = (size_t)(p - val);
            if (quoted && *p == '"') p++;
        }
        if (nlen == 7 && !strncasecmp(name, "charset", 7) &&
            !((vlen == 5 && !strncasecmp(val, "utf-8", 5)) || (vlen == 4 && !strncasecmp(val, "utf8", 4))))
            return 0;
        while (*p && *p != ';') p++;
    }
}

int json_body_begin(srv_req *rq) {
    int phase = lifecycle_phase(rq->d->life);
    if (phase == PHASE_LOADING)
        return route_fail(rq, BCT_EUNAVAILABLE, "models are loading; retry shortly");
    if (rq->draining) return route_fail(rq, BCT_EUNAVAILABLE, "the server is shutting down");
    const char *ct = srv_req_header(rq, "Content-Type");
    if (!is_json_type(ct))
        return route_fail(rq, SRV_EMEDIA, "Content-Type must be application/json, got %.100s",
                          ct ? ct : "none");
    const char *enc = srv_req_header(rq, "Content-Encoding");
    if (enc && strcasecmp(enc, "identity") != 0)
        return route_fail(rq, SRV_EMEDIA,
                          "Content-Encoding %.60s is not supported; send the body uncompressed", enc);
    long long want = http_content_length(rq->conn);
    if (want > rq->body_limit) {
        rq->reply.now = 1;
        return route_fail(rq, BCT_ERANGE, "the body is %lld bytes, more than max_body_bytes (%lld)",
                          want, rq->body_limit);
    }
    rq->cap = (want > 0 ? (size_t)want : JSON_BODY_FIRST_CAP) + 1;
    if (!(rq->body = malloc(rq->cap))) return route_fail(rq, BCT_ENOMEM, "out of memory");
    rq->body[0] = '\0';
    return ROUTE_BODY;
}

int json_body_chunk(srv_req *rq, const char *data, size_t n) {
    size_t max = (size_t)rq->body_limit;
    if (!rq->too_large && rq->len + n > max) {
        /* Chunked uploads have no Content-Length to check in advance.
         * MHD can only answer once the body is read, so the rest is
         * dropped up to a bound, past which the connection is cut. */
        rq->too_large = 1;
        free(rq->body);
        rq->body = NULL;
        rq->len = rq->cap = 0;
    }
    if (rq->too_large) {
        rq->len += n; /* counts what was dropped */
        return rq->len > 2 * max + SRV_DROP_SLACK ? -1 : 0;
    }
    if (rq->len + n + 1 > rq->cap) {
        size_t cap = rq->cap * 2;
        while (cap < rq->len + n + 1) cap *= 2;
        if (cap > max + 1) cap = max + 1;
        char *p = realloc(rq->body, cap);
        if (!p) return -1;
        rq->body = p;
        rq->cap = cap;
    }
    memcpy(rq->body + rq->len, data, n);
    rq->len += n;
    rq->body[rq->len] = '\0';
    return 0;
}

char *json_body_take(srv_req *rq, size_t *len) {
    if (rq->too_large) {
        route_fail(rq, BCT_ERANGE, "the body is more than max_body_bytes (%lld)", rq->body_limit);
        return NULL;
    }
    /* The structure a request can need, before cJSON builds a tree. */
    unsigned max_values =
        (unsigned)rq->d->cfg->max_inputs_per_request * SRV_JSON_VALUES_PER_INPUT + SRV_JSON_VALUES_SLACK;
    json_budget b = {.max_values = max_values, .max_array = (int)max_values, .max_depth = SRV_JSON_MAX_DEPTH,
                     .need = ""};
    bct_error err = {{0}};
    if (rq->body && json_check_budget(rq->body, rq->len, 0, &b, &err) != BCT_OK) {
        route_fail(rq, BCT_ERANGE,
                   "the body holds more JSON values (or nests deeper) than a request of "
                   "max_inputs_per_request (%d) inputs needs: at most %u values, %d levels",
                   rq->d->cfg->max_inputs_per_request, max_values, SRV_JSON_MAX_DEPTH);
        return NULL;
    }
    *len = rq->len;
    return rq->body;
}

void json_body_free(srv_req *rq) {
    free(rq->body);
    rq->body = NULL;
    rq->len = rq->cap = 0;
}
