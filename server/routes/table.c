/* table.c - the route table, and everything derived from it: matching,
 * the 404/405 texts, metric labels, /openapi.json; reply helpers. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api_admin.h"
#include "route.h"

#define ALL_ROUTES "see GET /openapi.json"

static const route table[] = {
    {"/", M_POST, &route_classify, "/", AUTH_API_KEY, API_ROOT,
     "Classify, answered in the Hugging Face Inference API's shape (one list per input)"},
    {"/classify", M_POST, &route_classify, "/classify", AUTH_API_KEY, API_CLASSIFY,
     "Classify texts or text pairs"},
    {"/predict", M_POST, &route_classify, "/predict", AUTH_API_KEY, API_PREDICT,
     "Classify, text-embeddings-inference's /predict shape"},
    {"/rerank", M_POST, &route_rerank, "/rerank", AUTH_API_KEY, 0,
     "Rank texts against a query (text-embeddings-inference's /rerank)"},
    {"/tokenize", M_POST, &route_tokenize, "/tokenize", AUTH_API_KEY, 0,
     "Token ids and pieces of texts (text-embeddings-inference's /tokenize)"},
    {"/health", M_GET, &route_info, "/health", AUTH_OPEN, INFO_HEALTH, "Liveness"},
    {"/ready", M_GET, &route_info, "/ready", AUTH_OPEN, INFO_READY, "Readiness"},
    {"/models", M_GET, &route_info, "/models", AUTH_OPEN, INFO_MODELS, "Loaded models"},
    {"/models/{name}", M_GET, &route_info, "/models/{name}", AUTH_OPEN, INFO_MODEL,
     "One model and its readiness"},
    {"/metrics", M_GET, &route_info, "/metrics", AUTH_OPEN, INFO_METRICS,
     "Prometheus metrics"},
    {"/openapi.json", M_GET, &route_info, "/openapi.json", AUTH_OPEN, INFO_OPENAPI,
     "This document"},
    {"/admin/compress", M_POST, &route_admin, "/admin/compress", AUTH_ADMIN, ADMIN_COMPRESS,
     "Upload a checkpoint (multipart) and compress it in a job"},
    {"/admin/jobs", M_GET, &route_admin, "/admin/jobs", AUTH_ADMIN, ADMIN_JOBS, "Recent jobs"},
    {"/admin/jobs/{id}", M_GET, &route_admin, "/admin/jobs/{id}", AUTH_ADMIN, ADMIN_JOB,
     "One job"},
    {"/admin/models/{name}", M_DELETE, &route_admin, "/admin/models/{name}", AUTH_ADMIN,
     ADMIN_DELETE, "Unload a model and move its files to the store's trash"},
    {"/admin/models/{name}/load", M_POST, &route_admin, "/admin/models/{name}/load", AUTH_ADMIN,
     ADMIN_LOAD, "Load (or reload) a model of the store"},
    {"/admin/models/{name}/unload", M_POST, &route_admin, "/admin/models/{name}/unload",
     AUTH_ADMIN, ADMIN_UNLOAD, "Unload a model, keeping its files"},
};
#define N_ROUTES ((int)(sizeof(table) / sizeof(table[0])))

int routes_count(void) { return N_ROUTES; }

const route *routes_at(int i) { return i >= 0 && i < N_ROUTES ? &table[i] : NULL; }

const char *routes_label(int i) { return i >= 0 && i < N_ROUTES ? table[i].label : "other"; }

/* Matches path against pattern; the {arg} segment is copied to arg. */
static int path_match(const char *pattern, const char *path, char *arg, size_t size) {
    const char *brace = strchr(pattern, '{');
    if (!brace) {
        arg[0] = '\0';
        return !strcmp(pattern, path);
    }
    size_t pre = (size_t)(brace - pattern);
    if (strncmp(pattern, path, pre) != 0) return 0;
    const char *suffix = strchr(brace, '}') + 1;
    const char *a = path + pre, *e = strchr(a, '/');
    size_t alen = e ? (size_t)(e - a) : strlen(a);
    if (alen == 0 || alen >= size || strcmp(a + alen, suffix) != 0) return 0;
    memcpy(arg, a, alen);
    arg[alen] = '\0';
    return 1;
}

static unsigned method_bit(const char *m) {
    if (!strcmp(m, "GET") || !strcmp(m, "HEAD")) return M_GET;
    if (!strcmp(m, "POST")) return M_POST;
    if (!strcmp(m, "DELETE")) return M_DELETE;
    return 0;
}

static const char *allow_text(unsigned methods) {
    switch (methods) {
    case M_GET: return "GET, HEAD";
    case M_POST: return "POST";
    case M_DELETE: return "DELETE";
    default: return "GET, HEAD, POST, DELETE";
    }
}

int routes_match(srv_req *rq) {
    unsigned want = method_bit(rq->method), seen = 0;
    int any = -1;
    char arg[ROUTE_ARG_MAX];
    rq->route_index = N_ROUTES;
    for (int i = 0; i < N_ROUTES; i++) {
        if (!path_match(table[i].pattern, rq->path, arg, sizeof(arg))) continue;
        seen |= table[i].methods;
        if (any < 0) any = i;
        if (!(table[i].methods & want)) continue;
        rq->route = &table[i];
        rq->route_index = i;
        memcpy(rq->arg, arg, sizeof(arg));
        return 0;
    }
    if (any < 0) {
        /* The admin API off: its paths do not exist either. */
        route_fail(rq, SRV_ENOROUTE, "no route %.200s (%s)", rq->path, ALL_ROUTES);
        return -1;
    }
    rq->route_index = any; /* counted under the path's label */
    rq->reply.allow = allow_text(seen);
    route_fail(rq, SRV_EMETHOD, "%.200s does not accept %.16s; use %s", rq->path, rq->method,
               allow_text(seen));
    return -1;
}

/* ---- /openapi.json ---- */

static const char *const schemas =
    "\"ErrorResponse\":{\"type\":\"object\",\"required\":[\"error\",\"error_type\"],"
    "\"properties\":{\"error\":{\"type\":\"string\"},\"error_type\":{\"type\":\"string\"}}},"
    "\"Label\":{\"type\":\"object\",\"properties\":{\"label\":{\"type\":\"string\"},"
    "\"score\":{\"type\":\"number\"}}},"
    "\"Input\":{\"oneOf\":[{\"type\":\"string\"},{\"type\":\"object\",\"required\":[\"text\"],"
    "\"properties\":{\"text\":{\"type\":\"string\"},\"text_pair\":{\"type\":\"string\"}}}]},"
    "\"ClassifyRequest\":{\"type\":\"object\",\"required\":[\"inputs\"],\"properties\":{"
    "\"inputs\":{\"oneOf\":[{\"$ref\":\"#/components/schemas/Input\"},{\"type\":\"array\","
    "\"items\":{\"$ref\":\"#/components/schemas/Input\"}}]},\"truncate\":{\"type\":\"boolean\"},"
    "\"truncation_direction\":{\"type\":\"string\",\"enum\":[\"right\",\"left\"]},"
    "\"top_k\":{\"type\":\"integer\",\"minimum\":1},\"raw_scores\":{\"type\":\"boolean\"},"
    "\"model\":{\"type\":\"string\"}}},"
    "\"PredictRequest\":{\"type\":\"object\",\"required\":[\"inputs\"],\"properties\":{"
    "\"inputs\":{\"oneOf\":[{\"type\":\"string\"},{\"type\":\"array\",\"items\":{}}]},"
    "\"truncate\":{\"type\":\"boolean\"},\"truncation_direction\":{\"type\":\"string\","
    "\"enum\":[\"right\",\"left\"]},\"raw_scores\":{\"type\":\"boolean\"},\"top_k\":{\"type\":"
    "\"integer\"},\"model\":{\"type\":\"string\"},\"parameters\":{\"type\":\"object\","
    "\"properties\":{\"top_k\":{\"type\":\"integer\"},\"function_to_apply\":{\"type\":\"string\","
    "\"enum\":[\"softmax\",\"sigmoid\",\"none\"]}}}}},"
    "\"Predictions\":{\"type\":\"array\",\"items\":{\"oneOf\":[{\"$ref\":\"#/components/"
    "schemas/Label\"},{\"type\":\"array\",\"items\":{\"$ref\":\"#/components/schemas/Label\"}}]}},"
    "\"RerankRequest\":{\"type\":\"object\",\"required\":[\"query\",\"texts\"],\"properties\":{"
    "\"query\":{\"type\":\"string\"},\"texts\":{\"type\":\"array\",\"items\":{\"type\":\"string\"}},"
    "\"raw_scores\":{\"type\":\"boolean\"},\"return_text\":{\"type\":\"boolean\"},"
    "\"truncate\":{\"type\":\"boolean\"},\"truncation_direction\":{\"type\":\"string\"},"
    "\"model\":{\"type\":\"string\"}}},"
    "\"Rank\":{\"type\":\"object\",\"properties\":{\"index\":{\"type\":\"integer\"},"
    "\"score\":{\"type\":\"number\"},\"text\":{\"type\":\"string\"}}},"
    "\"TokenizeRequest\":{\"type\":\"object\",\"required\":[\"inputs\"],\"properties\":{"
    "\"inputs\":{\"oneOf\":[{\"type\":\"string\"},{\"type\":\"array\",\"items\":{\"type\":"
    "\"string\"}}]},\"add_special_tokens\":{\"type\":\"boolean\"},\"model\":{\"type\":\"string\"}}},"
    "\"SimpleToken\":{\"type\":\"object\",\"properties\":{\"id\":{\"type\":\"integer\"},"
    "\"text\":{\"type\":\"string\"},\"special\":{\"type\":\"boolean\"},\"start\":{\"type\":"
    "[\"integer\",\"null\"]},\"stop\":{\"type\":[\"integer\",\"null\"]}}},"
    /* Accuracy-guarded publishing (issue 16). */
    "\"CompressForm\":{\"type\":\"object\",\"required\":[\"name\",\"config\",\"weights\"],"
    "\"properties\":{\"name\":{\"type\":\"string\",\"pattern\":\"^[a-z0-9_-][a-z0-9._-]{0,63}$\"},"
    "\"config\":{\"type\":\"string\",\"format\":\"binary\"},\"weights\":{\"type\":\"string\","
    "\"description\":\"file part: model.safetensors or pytorch_model.bin; field: the Linear "
    "weights' format (q8, q4, q3, q2)\"},\"vocab\":{\"type\":\"string\",\"format\":\"binary\"},"
    "\"tokenizer\":{\"type\":\"string\",\"format\":\"binary\"},\"calibration\":{\"type\":"
    "\"string\",\"format\":\"binary\"},\"eval\":{\"type\":\"string\",\"format\":\"binary\","
    "\"description\":\"evaluation set (TSV, at most 2000 rows and 16 MiB)\"},\"task\":{\"type\":"
    "\"string\",\"enum\":[\"sst2\",\"mrpc\",\"rte\",\"generic\"]},\"max_drop\":{\"type\":"
    "\"number\",\"minimum\":0,\"maximum\":100,\"description\":\"accuracy points\"},"
    "\"preset\":{\"type\":\"string\"},\"embeddings\":{\"type\":\"string\"},\"tables\":{"
    "\"type\":\"string\"},\"block\":{\"type\":\"integer\"},\"scales\":{\"type\":\"string\"},"
    "\"activations\":{\"type\":\"string\"},\"nonlinear\":{\"type\":\"string\"},\"calib_n\":{"
    "\"type\":\"integer\"}}},"
    "\"Evaluation\":{\"type\":\"object\",\"required\":[\"job_id\",\"source\",\"rows\","
    "\"agreement\",\"mean_abs_logit_diff\",\"max_abs_logit_diff\"],\"properties\":{"
    "\"job_id\":{\"type\":\"string\"},\"source\":{\"type\":\"string\",\"enum\":[\"eval\","
    "\"calibration_holdout\"]},\"task\":{\"type\":\"string\"},\"rows\":{\"type\":\"integer\"},"
    "\"max_len\":{\"type\":\"integer\"},\"fp32_accuracy\":{\"type\":\"number\"},\"accuracy\":{"
    "\"type\":\"number\"},\"drop\":{\"type\":\"number\",\"description\":\"accuracy points\"},"
    "\"max_drop\":{\"type\":\"number\",\"nullable\":true},\"passed\":{\"type\":\"boolean\"},"
    "\"agreement\":{\"type\":\"number\"},\"mean_abs_logit_diff\":{\"type\":\"number\"},"
    "\"max_abs_logit_diff\":{\"type\":\"number\"},\"calibration_lines\":{\"type\":\"integer\"},"
    "\"fp32_ms\":{\"type\":\"number\"},\"compressed_ms\":{\"type\":\"number\"}}},"
    "\"Job\":{\"type\":\"object\",\"required\":[\"job_id\",\"name\",\"state\"],\"properties\":{"
    "\"job_id\":{\"type\":\"string\"},\"name\":{\"type\":\"string\"},\"state\":{\"type\":"
    "\"string\",\"enum\":[\"queued\",\"running\",\"succeeded\",\"failed\"]},\"stage\":{"
    "\"type\":\"string\"},\"progress\":{\"type\":\"integer\"},\"options\":{\"type\":\"object\"},"
    "\"timings\":{\"type\":\"object\"},\"version\":{\"type\":\"integer\"},\"error\":{\"type\":"
    "\"string\"},\"report\":{\"type\":\"object\"},\"evaluation\":{\"$ref\":\"#/components/"
    "schemas/Evaluation\"}}},"
    "\"Model\":{\"type\":\"object\",\"required\":[\"name\",\"version\"],\"properties\":{"
    "\"name\":{\"type\":\"string\"},\"version\":{\"type\":\"integer\"},\"format\":{\"type\":"
    "\"string\"},\"labels\":{\"type\":\"array\",\"items\":{\"type\":\"string\"}},\"evaluation\":"
    "{\"$ref\":\"#/components/schemas/Evaluation\"}}},"
    "\"ModelList\":{\"type\":\"object\",\"properties\":{\"bct_version\":{\"type\":\"string\"},"
    "\"default\":{\"type\":\"string\",\"nullable\":true},\"models\":{\"type\":\"array\",\"items\":{"
    "\"$ref\":\"#/components/schemas/Model\"}}}},"
    "\"Object\":{\"type\":\"object\"}";

/* Request and response schemas of a route row. */
static void io_schemas(const route *r, const char **req, const char **resp) {
    *req = NULL;
    *resp = "Object";
    if (r->handler == &route_classify) {
        *req = r->op == API_CLASSIFY ? "ClassifyRequest" : "PredictRequest";
        *resp = "Predictions";
    } else if (r->handler == &route_rerank) {
        *req = "RerankRequest";
        *resp = "Rank";
    } else if (r->handler == &route_tokenize) {
        *req = "TokenizeRequest";
        *resp = "SimpleToken";
    } else if (r->handler == &route_admin && r->op == ADMIN_JOB) {
        *resp = "Job";
    } else if (r->handler == &route_info && (r->op == INFO_MODELS || r->op == INFO_MODEL)) {
        *resp = r->op == INFO_MODELS ? "ModelList" : "Model";
    }
}

static void openapi_op(sbuf *o, const route *r, const char *method, int first) {
    const char *req, *resp;
    io_schemas(r, &req, &resp);
    if (!first) sbuf_putc(o, ',');
    sbuf_printf(o, "\"%s\":{\"summary\":", method);
    sbuf_json_str(o, r->summary, strlen(r->summary));
    sbuf_printf(o, ",\"operationId\":\"%s", method);
    for (const char *p = r->pattern; *p; p++)
        if ((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9')) sbuf_putc(o, *p);
        else if (*p == '/') sbuf_putc(o, '_');
    sbuf_putc(o, '"');
    if (r->auth != AUTH_OPEN)
        sbuf_printf(o, ",\"security\":[{\"%s\":[]}]", r->auth == AUTH_ADMIN ? "adminToken" : "apiKey");
    const char *brace = strchr(r->pattern, '{');
    if (brace) {
        const char *close = strchr(brace, '}');
        sbuf_printf(o, ",\"parameters\":[{\"name\":\"%.*s\",\"in\":\"path\",\"required\":true,"
                       "\"schema\":{\"type\":\"string\"}}]",
                    (int)(close - brace - 1), brace + 1);
    }
    if (req)
        sbuf_printf(o, ",\"requestBody\":{\"required\":true,\"content\":{\"application/json\":"
                       "{\"schema\":{\"$ref\":\"#/components/schemas/%s\"}}}}",
                    req);
    else if (r->op == ADMIN_COMPRESS && r->handler == &route_admin)
        sbuf_puts(o, ",\"requestBody\":{\"required\":true,\"content\":{\"multipart/form-data\":"
                     "{\"schema\":{\"$ref\":\"#/components/schemas/CompressForm\"}}}}");
    int ok = r->op == ADMIN_COMPRESS && r->handler == &route_admin ? 202 : 200;
    const char *ctype = r->handler == &route_info && r->op == INFO_METRICS ? "text/plain" : "application/json";
    sbuf_printf(o, ",\"responses\":{\"%d\":{\"description\":\"OK\",\"content\":{\"%s\":{\"schema\":"
                   "{\"$ref\":\"#/components/schemas/%s\"}}}},\"default\":{\"description\":"
                   "\"Error\",\"content\":{\"application/json\":{\"schema\":{\"$ref\":"
                   "\"#/components/schemas/ErrorResponse\"}}}}}}",
                ok, ctype, !strcmp(ctype, "text/plain") ? "Object" : resp);
}

void routes_openapi(sbuf *o) {
    sbuf_printf(o, "{\"openapi\":\"3.0.3\",\"info\":{\"title\":\"bct\",\"version\":\"%s\","
                   "\"description\":\"BERT classifiers compressed by blockwise quantization\"},"
                   "\"paths\":{",
                BCT_VERSION);
    for (int i = 0; i < N_ROUTES; i++) {
        const route *r = &table[i];
        if (i) sbuf_putc(o, ',');
        sbuf_json_str(o, r->pattern, strlen(r->pattern));
        sbuf_putc(o, ':');
        sbuf_putc(o, '{');
        int first = 1;
        if (r->methods & M_GET) openapi_op(o, r, "get", first), first = 0;
        if (r->methods & M_POST) openapi_op(o, r, "post", first), first = 0;
        if (r->methods & M_DELETE) openapi_op(o, r, "delete", first), first = 0;
        sbuf_putc(o, '}');
    }
    sbuf_printf(o, "},\"components\":{\"securitySchemes\":{\"apiKey\":{\"type\":\"http\","
                   "\"scheme\":\"bearer\"},\"adminToken\":{\"type\":\"http\",\"scheme\":"
                   "\"bearer\"}},\"schemas\":{%s}}}",
                schemas);
}

/* ---- replies ---- */

void route_reply_free(route_reply *r) {
    free(r->body);
    r->body = NULL;
}

int route_reply_sbuf(srv_req *rq, int status, sbuf *b, const char *ctype) {
    route_reply *r = &rq->reply;
    free(r->body);
    r->body = sbuf_take(b, &r->len);
    r->status = status;
    r->ctype = ctype;
    if (!r->body) {
        static const char oom[] = "{\"error\":\"out of memory\",\"error_type\":\"Internal\"}";
        r->status = srv_err_status(BCT_ENOMEM, &r->error_type);
        r->ctype = NULL;
        r->body = strdup(oom);
        r->len = r->body ? strlen(oom) : 0;
    }
    return ROUTE_REPLY;
}

int route_fail_err(srv_req *rq, const srv_err *e) {
    sbuf b;
    sbuf_init(&b);
    srv_err_json(e, &b);
    const char *type;
    int status = srv_err_status(e->code, &type);
    route_reply_sbuf(rq, status, &b, NULL);
    if (rq->reply.status == status) rq->reply.error_type = type;
    return ROUTE_REPLY;
}

int route_fail(srv_req *rq, int code, const char *fmt, ...) {
    srv_err e = {.code = code};
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e.msg, sizeof(e.msg), fmt, ap);
    va_end(ap);
    return route_fail_err(rq, &e);
}

void route_header(srv_req *rq, const char *name, const char *fmt, ...) {
    route_reply *r = &rq->reply;
    if (r->n_hdr >= ROUTE_MAX_HEADERS) return;
    r->hdr[r->n_hdr].name = name;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(r->hdr[r->n_hdr].value, sizeof(r->hdr[0].value), fmt, ap);
    va_end(ap);
    r->n_hdr++;
}
