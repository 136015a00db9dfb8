/* Unit tests of the server's pure parts: configuration sources and
 * validation, request parsing (/classify and /predict shapes, every 4xx),
 * response formatting, JSON escaping, metrics text, the model store's
 * layout (scan, publish, remove, cleanup), model names, the admin token. */
#include <check.h>
#include <cjson/cJSON.h>
#include <fcntl.h>
#include <math.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "admin_auth.h"
#include "api_classify.h"
#include "config.h"
#include "metrics.h"
#include "model_store.h"
#include "registry.h"
#include "routes/route.h"
#include "sbuf.h"
#include "test_util.h"

/* ---- config ---- */

static const config_field *field(const char *key) {
    int n;
    const config_field *f = config_fields(&n);
    for (int i = 0; i < n; i++)
        if (!strcmp(f[i].key, key)) return &f[i];
    return NULL;
}

START_TEST(config_default_json_matches_builtin) {
    srv_config a, b;
    bct_error err = {{0}};
    config_defaults(&a);
    config_defaults(&b);
    ck_assert_int_eq(config_load_file(&b, BCT_SOURCE_DIR "/config/default.json", &err), BCT_OK);
    ck_assert_msg(memcmp(&a, &b, sizeof(a)) == 0, "config/default.json differs from config_defaults()");
    /* and it names every field */
    size_t len;
    char *json = test_read_file(BCT_SOURCE_DIR "/config/default.json", &len);
    ck_assert_ptr_nonnull(json);
    int n;
    const config_field *f = config_fields(&n);
    for (int i = 0; i < n; i++) {
        char key[80];
        snprintf(key, sizeof(key), "\"%s\"", f[i].key);
        ck_assert_msg(strstr(json, key) != NULL, "default.json lacks %s", f[i].key);
    }
    free(json);
}
END_TEST

START_TEST(config_json_errors) {
    srv_config c;
    bct_error err = {{0}};
    static const struct {
        const char *json, *needle;
    } bad[] = {
        {"{\"prot\": 1}", "unknown key \"prot\""},
        {"{\"port\": \"80\"}", "must be an integer"},
        {"{\"port\": 1.5}", "must be an integer"},
        {"{\"port\": 70000}", "[0, 65535]"},
        {"{\"port\": -1}", "[0, 65535]"},
        {"{\"threads\": 1e300}", "must be an integer"},
        {"{\"host\": 1}", "must be a string"},
        {"{\"host\": \"\"}", "must not be empty"},
        {"{\"log_level\": \"loud\"}", "log_level"},
        {"{\"model\": null}", "must be a string"},
        {"[]", "JSON object"},
        {"{", "not valid JSON"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        config_defaults(&c);
        memset(&err, 0, sizeof(err));
        ck_assert_int_eq(config_apply_json(&c, bad[i].json, strlen(bad[i].json), "t.json", NULL, &err),
                         BCT_EINVAL);
        ck_assert_msg(strstr(err.msg, bad[i].needle), "%s: got \"%s\"", bad[i].json, err.msg);
        ck_assert_msg(strstr(err.msg, "t.json"), "message does not name the file: %s", err.msg);
    }
}
END_TEST

START_TEST(config_paths_relative_to_file) {
    srv_config c;
    bct_error err = {{0}};
    config_defaults(&c);
    const char *j = "{\"model_store\": \"models\", \"model\": \"/abs/m\", \"access_log\": \"-\"}";
    ck_assert_int_eq(config_apply_json(&c, j, strlen(j), "f", "/etc/bct", &err), BCT_OK);
    ck_assert_str_eq(c.model_store, "/etc/bct/models");
    ck_assert_str_eq(c.model, "/abs/m");
    ck_assert_str_eq(c.access_log, "-");
}
END_TEST

START_TEST(config_env_and_flags) {
    srv_config c;
    bct_error err = {{0}};
    config_defaults(&c);
    setenv("BCT_PORT", "9001", 1);
    setenv("BCT_LOG_LEVEL", "debug", 1);
    ck_assert_int_eq(config_apply_env(&c, &err), BCT_OK);
    ck_assert_int_eq(c.port, 9001);
    ck_assert_int_eq(c.log_level, CFG_LOG_DEBUG);
    setenv("BCT_PORT", "90x", 1);
    ck_assert_int_eq(config_apply_env(&c, &err), BCT_EINVAL);
    ck_assert_msg(strstr(err.msg, "BCT_PORT"), "%s", err.msg);
    unsetenv("BCT_PORT");
    unsetenv("BCT_LOG_LEVEL");
    ck_assert_int_eq(config_set(&c, field("max_batch_size"), "7", "--max-batch-size", &err), BCT_OK);
    ck_assert_int_eq(c.max_batch_size, 7);
    ck_assert_int_eq(config_set(&c, field("max_batch_size"), "0", "--max-batch-size", &err), BCT_EINVAL);
    ck_assert_msg(strstr(err.msg, "--max-batch-size"), "%s", err.msg);
    ck_assert_int_eq(config_set(&c, field("max_batch_size"), "", "--max-batch-size", &err), BCT_EINVAL);
    char flag[64];
    config_flag_name(field("max_inputs_per_request"), flag, sizeof(flag));
    ck_assert_str_eq(flag, "--max-inputs-per-request");
}
END_TEST

START_TEST(config_validate_cross_fields) {
    srv_config c;
    bct_error err = {{0}};
    config_defaults(&c);
    ck_assert_int_eq(config_validate(&c, &err), BCT_EINVAL); /* no model */
    snprintf(c.model, sizeof(c.model), "/m");
    ck_assert_int_eq(config_validate(&c, &err), BCT_OK);
    c.queue_size = 10;
    ck_assert_int_eq(config_validate(&c, &err), BCT_EINVAL);
    c.queue_size = 1024;
    c.max_batch_tokens = 100;
    ck_assert_int_eq(config_validate(&c, &err), BCT_EINVAL);
    c.max_batch_tokens = 8192;
    /* the admin API writes into the model store: it needs one */
    snprintf(c.admin_token, sizeof(c.admin_token), "t");
    ck_assert_int_eq(config_validate(&c, &err), BCT_EINVAL);
    ck_assert(strstr(err.msg, "model_store") != NULL);
    snprintf(c.model_store, sizeof(c.model_store), "/store");
    ck_assert_int_eq(config_validate(&c, &err), BCT_OK);
    /* at least two versions are kept (replicas may still map the previous one) */
    const config_field *f = field("admin_keep_versions");
    ck_assert_ptr_nonnull(f);
    ck_assert_int_eq(config_set(&c, f, "1", "--admin-keep-versions", &err), BCT_EINVAL);
    ck_assert_int_eq(config_set(&c, f, "2", "--admin-keep-versions", &err), BCT_OK);
}
END_TEST

/* ---- request parsing ---- */

static int parse(api_kind kind, const char *body, api_request *r, srv_err *e) {
    return api_parse(kind, body, strlen(body), 8, r, e);
}

START_TEST(api_classify_shapes) {
    api_request r;
    srv_err e;
    ck_assert_int_eq(parse(API_CLASSIFY, "{\"inputs\": \"hello\"}", &r, &e), 0);
    ck_assert_int_eq(r.n, 1);
    ck_assert_int_eq(r.single, 1);
    ck_assert_int_eq(r.truncate, 1);
    ck_assert_str_eq(r.texts[0].a, "hello");
    ck_assert_ptr_null(r.texts[0].b);
    api_request_free(&r);

    ck_assert_int_eq(parse(API_CLASSIFY, "{\"inputs\": {\"text\": \"a\", \"text_pair\": \"b\"}, "
                                         "\"top_k\": 3, \"raw_scores\": true, \"truncate\": false, "
                                         "\"model\": \"m\"}",
                           &r, &e),
                     0);
    ck_assert_int_eq(r.single, 1);
    ck_assert_str_eq(r.texts[0].b, "b");
    ck_assert_int_eq(r.top_k, 3);
    ck_assert_int_eq(r.raw_scores, 1);
    ck_assert_int_eq(r.truncate, 0);
    ck_assert_str_eq(r.model, "m");
    api_request_free(&r);

    ck_assert_int_eq(parse(API_CLASSIFY, "{\"inputs\": [\"x\", {\"text\": \"a\", \"text_pair\": \"b\"}, "
                                         "{\"text\": \"c\", \"text_pair\": null}]}",
                           &r, &e),
                     0);
    ck_assert_int_eq(r.n, 3);
    ck_assert_int_eq(r.single, 0);
    ck_assert_str_eq(r.texts[1].a, "a");
    ck_assert_str_eq(r.texts[1].b, "b");
    ck_assert_ptr_null(r.texts[2].b);
    api_request_free(&r);
}
END_TEST

START_TEST(api_predict_shapes) {
    api_request r;
    srv_err e;
    ck_assert_int_eq(parse(API_PREDICT, "{\"inputs\": \"t\"}", &r, &e), 0);
    ck_assert(r.single && r.n == 1);
    api_request_free(&r);
    ck_assert_int_eq(parse(API_PREDICT, "{\"inputs\": [\"t\"]}", &r, &e), 0);
    ck_assert(r.single && r.n == 1 && !r.texts[0].b);
    api_request_free(&r);
    /* A flat list of two is ONE pair, as in TEI. */
    ck_assert_int_eq(parse(API_PREDICT, "{\"inputs\": [\"q\", \"d\"]}", &r, &e), 0);
    ck_assert(r.single && r.n == 1);
    ck_assert_str_eq(r.texts[0].b, "d");
    api_request_free(&r);
    ck_assert_int_eq(parse(API_PREDICT, "{\"inputs\": [[\"a\"], [\"q\", \"d\"]], \"whatever\": 1}", &r, &e), 0);
    ck_assert(!r.single && r.n == 2 && !r.texts[0].b);
    ck_assert_str_eq(r.texts[1].b, "d");
    api_request_free(&r);
}
END_TEST

/* errors.h: every code maps to its row of the table, and the body names it. */
START_TEST(error_mapping) {
    static const struct {
        int code, status;
        const char *type;
    } rows[] = {
        {SRV_EBADREQ, 400, "BadRequest"},        {SRV_EUNAUTH, 401, "Unauthorized"},
        {SRV_EFORBIDDEN, 403, "Forbidden"},      {SRV_ENOROUTE, 404, "NotFound"},
        {BCT_ENOTFOUND, 404, "ModelNotFound"},   {SRV_EMETHOD, 405, "MethodNotAllowed"},
        {BCT_ECONFLICT, 409, "Conflict"},        {BCT_ERANGE, 413, "PayloadTooLarge"},
        {SRV_EMEDIA, 415, "UnsupportedMediaType"}, {BCT_EINVAL, 422, "Validation"},
        {BCT_EFORMAT, 422, "Validation"},        {BCT_EUNSUPPORTED, 422, "Validation"},
        {BCT_EBUSY, 429, "Overloaded"},          {BCT_ENOMEM, 500, "Internal"},
        {BCT_EIO, 500, "Internal"},              {BCT_EUNAVAILABLE, 503, "Unavailable"},
        {SRV_ETIMEOUT, 408, "RequestTimeout"},   {SRV_ESTORAGE, 507, "InsufficientStorage"},
    };
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        const char *type = NULL;
        ck_assert_int_eq(srv_err_status(rows[i].code, &type), rows[i].status);
        ck_assert_str_eq(type, rows[i].type);
        srv_err e;
        ck_assert_int_eq(srv_err_set(&e, rows[i].code, "row %zu", i), rows[i].code);
        sbuf b;
        sbuf_init(&b);
        srv_err_json(&e, &b);
        size_t n;
        char *json = sbuf_take(&b, &n);
        char want[128];
        snprintf(want, sizeof(want), "{\"error\":\"row %zu\",\"error_type\":\"%s\"}", i, rows[i].type);
        ck_assert_str_eq(json, want);
        free(json);
    }
    /* A failed file-system call: the store cannot take more (507), or an
     * I/O error (500). */
    ck_assert_int_eq(srv_errno_code(ENOSPC), SRV_ESTORAGE);
    ck_assert_int_eq(srv_errno_code(EDQUOT), SRV_ESTORAGE);
    ck_assert_int_eq(srv_errno_code(EROFS), SRV_ESTORAGE);
    ck_assert_int_eq(srv_errno_code(EIO), BCT_EIO);
}
END_TEST

START_TEST(api_errors) {
    static const struct {
        api_kind kind;
        const char *body;
        int status;
        const char *needle;
    } cases[] = {
        {API_CLASSIFY, "{\"inputs\": \"x\"", 400, "malformed"},
        {API_CLASSIFY, "{\"inputs\": \"x\"} x", 400, "malformed"},
        {API_CLASSIFY, "", 400, "malformed"},
        {API_CLASSIFY, "{\"inputs\": [\"1\",\"2\",\"3\",\"4\",\"5\",\"6\",\"7\",\"8\",\"9\"]}", 413, "9 items"},
        {API_PREDICT, "{\"inputs\": [[\"1\"],[\"2\"],[\"3\"],[\"4\"],[\"5\"],[\"6\"],[\"7\"],[\"8\"],[\"9\"]]}", 413, "max_inputs"},
        {API_CLASSIFY, "[]", 422, "JSON object"},
        {API_CLASSIFY, "{}", 422, "missing field"},
        {API_CLASSIFY, "{\"inputs\": []}", 422, "empty"},
        {API_CLASSIFY, "{\"inputs\": 1}", 422, "must be"},
        {API_CLASSIFY, "{\"inputs\": [1]}", 422, "inputs[0]"},
        {API_CLASSIFY, "{\"inputs\": {\"text\": 1}}", 422, "\"text\" must be a string"},
        {API_CLASSIFY, "{\"inputs\": {\"tex\": \"a\"}}", 422, "unknown field"},
        {API_CLASSIFY, "{\"inputs\": \"x\", \"topk\": 1}", 422, "unknown field \"topk\""},
        {API_CLASSIFY, "{\"inputs\": \"x\", \"top_k\": 0}", 422, "top_k"},
        {API_CLASSIFY, "{\"inputs\": \"x\", \"top_k\": 2.5}", 422, "top_k"},
        {API_CLASSIFY, "{\"inputs\": \"x\", \"truncate\": 1}", 422, "truncate"},
        {API_CLASSIFY, "{\"inputs\": \"\\ud800\"}", 422, "surrogate"},
        {API_CLASSIFY, "{\"inputs\": \"\\udc00\"}", 422, "surrogate"},
        {API_CLASSIFY, "{\"inputs\": \"\\ud800x\"}", 422, "surrogate"},
        {API_CLASSIFY, "{\"inputs\": \"a\\u0000\"}", 422, "u0000"},
        {API_PREDICT, "{\"inputs\": [\"a\", \"b\", \"c\"]}", 422, "1 or 2"},
        {API_PREDICT, "{\"inputs\": [[\"a\"], \"b\"]}", 422, "inputs[1]"},
        {API_PREDICT, "{\"inputs\": \"a\", \"truncation_direction\": \"up\"}", 422, "\"right\" or \"left\""},
        {API_ROOT, "{\"inputs\": \"a\", \"parameters\": 1}", 422, "parameters"},
        {API_ROOT, "{\"inputs\": \"a\", \"parameters\": {\"function_to_apply\": \"tanh\"}}", 422,
         "function_to_apply"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        api_request r;
        srv_err e = {0};
        ck_assert_int_eq(parse(cases[i].kind, cases[i].body, &r, &e), e.code);
        int status = srv_err_status(e.code, NULL);
        ck_assert_msg(status == cases[i].status, "%s: status %d", cases[i].body, status);
        ck_assert_msg(strstr(e.msg, cases[i].needle), "%s: \"%s\"", cases[i].body, e.msg);
        api_request_free(&r);
    }
    /* Not errors: a valid surrogate pair, an escaped backslash before u0000. */
    api_request r;
    srv_err e;
    ck_assert_int_eq(parse(API_PREDICT, "{\"inputs\": \"a\", \"truncation_direction\": \"Left\"}", &r, &e), 0);
    ck_assert_int_eq(r.trunc_left, 1);
    api_request_free(&r);
    /* POST /: one list per input even for one text; the Inference API's parameters */
    ck_assert_int_eq(parse(API_ROOT, "{\"inputs\": \"a\", \"parameters\": {\"top_k\": 1, "
                                     "\"function_to_apply\": \"none\"}}", &r, &e), 0);
    ck_assert_int_eq(r.single, 0);
    ck_assert_int_eq(r.n, 1);
    ck_assert_int_eq(r.top_k, 1);
    ck_assert_int_eq(r.raw_scores, 1);
    api_request_free(&r);
    ck_assert_int_eq(parse(API_CLASSIFY, "{\"inputs\": \"\\ud83d\\ude00\"}", &r, &e), 0);
    ck_assert_str_eq(r.texts[0].a, "\xf0\x9f\x98\x80");
    api_request_free(&r);
    ck_assert_int_eq(parse(API_CLASSIFY, "{\"inputs\": \"\\\\u0000\"}", &r, &e), 0);
    ck_assert_str_eq(r.texts[0].a, "\\u0000");
    api_request_free(&r);
}
END_TEST

/* ---- response formatting ---- */

START_TEST(api_format_sorted_topk) {
    char *labels[] = {"a", "b\"q", "c"};
    bert_config cfg = {.num_labels = 3, .labels = labels, .problem = BERT_SINGLE_LABEL};
    float logits[] = {0.f, 2.f, 1.f, 5.f, 0.f, 0.f};
    api_request r;
    srv_err e;
    sbuf b;
    ck_assert_int_eq(parse(API_CLASSIFY, "{\"inputs\": [\"x\", \"y\"], \"top_k\": 2, \"raw_scores\": true}", &r, &e), 0);
    sbuf_init(&b);
    api_format(&r, &cfg, logits, &b);
    ck_assert_str_eq(b.data, "[[{\"label\":\"b\\\"q\",\"score\":2},{\"label\":\"c\",\"score\":1}],"
                             "[{\"label\":\"a\",\"score\":5},{\"label\":\"b\\\"q\",\"score\":0}]]");
    sbuf_free(&b);
    api_request_free(&r);

    ck_assert_int_eq(parse(API_PREDICT, "{\"inputs\": \"x\"}", &r, &e), 0);
    sbuf_init(&b);
    api_format(&r, &cfg, logits, &b);
    ck_assert_msg(!strncmp(b.data, "[{\"score\":0.66", 14), "%s", b.data);
    ck_assert(strstr(b.data, "\"label\":\"b\\\"q\"}"));
    sbuf_free(&b);
    api_request_free(&r);
}
END_TEST

/* ---- JSON escaping ---- */

START_TEST(sbuf_json_escaping) {
    sbuf b;
    sbuf_init(&b);
    const char s[] = "a\"b\\c\n\x01\xc3\xa9\xff\xe2\x82";
    sbuf_json_str(&b, s, sizeof(s) - 1);
    ck_assert_str_eq(b.data, "\"a\\\"b\\\\c\\n\\u0001\xc3\xa9\\ufffd\\ufffd\\ufffd\"");
    sbuf_free(&b);
    sbuf_init(&b);
    sbuf_json_float(&b, NAN);
    sbuf_json_float(&b, 0.5f);
    ck_assert_str_eq(b.data, "null0.5");
    size_t len;
    char *d = sbuf_take(&b, &len);
    ck_assert_int_eq(len, 7);
    free(d);
}
END_TEST

/* ---- metrics ---- */

/* The table's index of a route, by pattern. */
static int route_index(const char *pattern) {
    for (int i = 0; i < routes_count(); i++)
        if (!strcmp(routes_at(i)->pattern, pattern)) return i;
    ck_abort_msg("no route %s", pattern);
    return -1;
}

START_TEST(metrics_text) {
    srv_metrics *m;
    ck_assert_int_eq(metrics_create(&m), 0);
    metrics_request(m, route_index("/classify"), 200, 0.003);
    metrics_request(m, routes_count(), 404, 0.0001);
    metrics_request(m, route_index("/classify"), 418, 0.001);
    metrics_batch(m, 3, 40, 0.002);
    metrics_dropped(m);
    metrics_gauges g = {.queue_depth = 5, .queue_capacity = 9, .workers = 2, .ready = 1};
    sbuf b;
    sbuf_init(&b);
    metrics_render(m, &g, &b);
    ck_assert(strstr(b.data, "bct_http_requests_total{route=\"/classify\",code=\"200\"} 1\n"));
    ck_assert(strstr(b.data, "bct_http_requests_total{route=\"other\",code=\"404\"} 1\n"));
    ck_assert(strstr(b.data, "bct_http_requests_total{route=\"/classify\",code=\"other\"} 1\n"));
    ck_assert(strstr(b.data, "bct_http_request_duration_seconds_bucket{route=\"/classify\",le=\"0.0025\"} 1\n"));
    ck_assert(strstr(b.data, "bct_http_request_duration_seconds_bucket{route=\"/classify\",le=\"+Inf\"} 2\n"));
    ck_assert(strstr(b.data, "bct_batch_size_bucket{le=\"2\"} 0\n"));
    ck_assert(strstr(b.data, "bct_batch_size_bucket{le=\"4\"} 1\n"));
    ck_assert(strstr(b.data, "bct_batch_tokens_sum 40\n"));
    ck_assert(strstr(b.data, "bct_inputs_total 3\n"));
    ck_assert(strstr(b.data, "bct_requests_dropped_total 1\n"));
    ck_assert(strstr(b.data, "bct_queue_depth 5\n"));
    ck_assert(strstr(b.data, "# TYPE bct_batch_size histogram\n"));
    ck_assert(strstr(b.data, "bct_build_info{version=\"" BCT_VERSION "\"} 1\n"));
    sbuf_free(&b);
    metrics_free(m);
}
END_TEST

/* ---- the route table ---- */

static int match(const char *method, const char *path, srv_req *rq) {
    memset(rq, 0, sizeof(*rq));
    snprintf(rq->method, sizeof(rq->method), "%s", method);
    snprintf(rq->path, sizeof(rq->path), "%s", path);
    return routes_match(rq);
}

START_TEST(routes_match_table) {
    srv_req rq;
    ck_assert_int_eq(match("POST", "/classify", &rq), 0);
    ck_assert_str_eq(rq.route->pattern, "/classify");
    ck_assert_int_eq(match("POST", "/", &rq), 0);
    ck_assert_str_eq(rq.route->label, "/");
    ck_assert_int_eq(match("HEAD", "/models/sst2", &rq), 0);
    ck_assert_str_eq(rq.route->pattern, "/models/{name}");
    ck_assert_str_eq(rq.arg, "sst2");
    ck_assert_int_eq(match("POST", "/admin/models/m-1/unload", &rq), 0);
    ck_assert_int_eq(rq.route->op, ADMIN_UNLOAD);
    ck_assert_str_eq(rq.arg, "m-1");
    ck_assert_int_eq(match("DELETE", "/admin/models/m-1", &rq), 0);
    ck_assert_int_eq(rq.route->op, ADMIN_DELETE);
    /* 404: an empty {arg}, a longer path, an unknown one */
    const char *none[] = {"/models/", "/models/a/b", "/nope", "/classify/x", "/admin/models//load"};
    for (size_t i = 0; i < sizeof(none) / sizeof(none[0]); i++) {
        ck_assert_int_eq(match("GET", none[i], &rq), -1);
        ck_assert_int_eq(rq.reply.status, 404);
        ck_assert_int_eq(rq.route_index, routes_count());
        ck_assert(strstr(rq.reply.body, "openapi.json"));
        route_reply_free(&rq.reply);
    }
    /* 405 from the table's methods, with Allow */
    ck_assert_int_eq(match("GET", "/classify", &rq), -1);
    ck_assert_int_eq(rq.reply.status, 405);
    ck_assert_str_eq(rq.reply.allow, "POST");
    ck_assert_str_eq(routes_label(rq.route_index), "/classify");
    route_reply_free(&rq.reply);
    ck_assert_int_eq(match("POST", "/models/x", &rq), -1);
    ck_assert_str_eq(rq.reply.allow, "GET, HEAD");
    route_reply_free(&rq.reply);
    ck_assert_str_eq(routes_label(routes_count()), "other");
}
END_TEST

/* /openapi.json parses and lists exactly the table's routes and methods. */
START_TEST(routes_openapi_matches_table) {
    sbuf b;
    sbuf_init(&b);
    routes_openapi(&b);
    ck_assert(!b.oom);
    cJSON *doc = cJSON_Parse(b.data);
    ck_assert_msg(doc != NULL, "openapi.json does not parse");
    ck_assert_str_eq(cJSON_GetObjectItem(doc, "openapi")->valuestring, "3.0.3");
    const cJSON *paths = cJSON_GetObjectItem(doc, "paths");
    ck_assert_int_eq(cJSON_GetArraySize(paths), routes_count());
    const cJSON *schemas = cJSON_GetObjectItem(cJSON_GetObjectItem(doc, "components"), "schemas");
    for (int i = 0; i < routes_count(); i++) {
        const route *r = routes_at(i);
        const cJSON *p = cJSON_GetObjectItem(paths, r->pattern);
        ck_assert_msg(p != NULL, "%s missing", r->pattern);
        ck_assert_int_eq(cJSON_GetObjectItem(p, "get") != NULL, (r->methods & M_GET) != 0);
        ck_assert_int_eq(cJSON_GetObjectItem(p, "post") != NULL, (r->methods & M_POST) != 0);
        ck_assert_int_eq(cJSON_GetObjectItem(p, "delete") != NULL, (r->methods & M_DELETE) != 0);
        ck_assert_int_eq(cJSON_GetArraySize(p), __builtin_popcount(r->methods));
        for (const cJSON *op = p->child; op; op = op->next) {
            ck_assert_int_eq(cJSON_GetObjectItem(op, "security") != NULL, r->auth != AUTH_OPEN);
            ck_assert_int_eq(cJSON_GetObjectItem(op, "parameters") != NULL, strchr(r->pattern, '{') != NULL);
            /* every $ref names a schema of the document */
            char *text = cJSON_PrintUnformatted(op);
            for (const char *q = text; (q = strstr(q, "#/components/schemas/")); ) {
                q += strlen("#/components/schemas/");
                char name[64];
                size_t n = strcspn(q, "\"");
                ck_assert(n < sizeof(name));
                memcpy(name, q, n);
                name[n] = '\0';
                ck_assert_msg(cJSON_GetObjectItem(schemas, name) != NULL, "no schema %s", name);
            }
            free(text);
        }
    }
    cJSON_Delete(doc);
    sbuf_free(&b);
}
END_TEST

/* ---- model store ---- */

static void touch(const char *dir, const char *rel) {
    char p[512];
    snprintf(p, sizeof(p), "%s/%s", dir, rel);
    int fd = open(p, O_CREAT | O_WRONLY, 0644);
    ck_assert_int_ge(fd, 0);
    close(fd);
}

static void make_dir(const char *dir, const char *rel) {
    char p[512];
    snprintf(p, sizeof(p), "%s/%s", dir, rel);
    ck_assert_int_eq(mkdir(p, 0755), 0);
}

START_TEST(store_scan_layout) {
    char dir[] = "/tmp/bct-store-XXXXXX", p[512];
    ck_assert_ptr_nonnull(mkdtemp(dir));
    make_dir(dir, "zeta"); /* a checkpoint folder */
    touch(dir, "zeta/config.json");
    make_dir(dir, "notamodel");
    make_dir(dir, ".hidden");
    touch(dir, ".hidden/3.bct");
    touch(dir, "alpha.bct");              /* flat: version 1 */
    touch(dir, "readme.txt");
    touch(dir, "beta.bct.tmp.AbC123");    /* a writer's temp file */
    make_dir(dir, "gamma");               /* versions 2 and 10 (+ debris) */
    touch(dir, "gamma/2.bct");
    touch(dir, "gamma/10.bct");
    touch(dir, "gamma/.job-1-2.bct");     /* (never written there; ignored) */
    touch(dir, ".job-1-3.bct");           /* an unpublished compression */
    touch(dir, "gamma/11.bct.tmp.XyZ987");
    touch(dir, "gamma/012.bct");
    touch(dir, "delta.bct");              /* flat + folder: the folder wins */
    make_dir(dir, "delta");
    touch(dir, "delta/3.bct");
    store_entry *e;
    int n;
    bct_error err = {{0}};
    ck_assert_int_eq(store_scan(dir, &e, &n, &err), BCT_OK);
    ck_assert_int_eq(n, 4);
    ck_assert_str_eq(e[0].name, "alpha");
    snprintf(p, sizeof(p), "%s/alpha.bct", dir);
    ck_assert_str_eq(e[0].path, p);
    ck_assert_int_eq(e[0].version, 1);
    ck_assert_str_eq(e[1].name, "delta");
    ck_assert_int_eq(e[1].version, 3);
    ck_assert_str_eq(e[2].name, "gamma");
    ck_assert_int_eq(e[2].version, 10);
    snprintf(p, sizeof(p), "%s/gamma/10.bct", dir);
    ck_assert_str_eq(e[2].path, p);
    ck_assert_str_eq(e[3].name, "zeta");
    ck_assert_int_eq(e[3].checkpoint, 1);
    free(e);
    ck_assert_int_eq(store_kind(dir, "gamma"), STORE_VERSIONED);
    ck_assert_int_eq(store_kind(dir, "alpha"), STORE_FLAT);
    ck_assert_int_eq(store_kind(dir, "zeta"), STORE_CHECKPOINT);
    ck_assert_int_eq(store_kind(dir, "readme.txt"), STORE_OTHER);
    ck_assert_int_eq(store_kind(dir, "nothing"), STORE_ABSENT);

    /* publishing alpha v2 moves the flat file to alpha/1.bct */
    model_store s;
    srv_log lg = {.level = SRV_LOG_ERROR, .fd = 2};
    ck_assert_int_eq(store_init(&s, dir, &err), BCT_OK);
    char pending[512], final[512];
    ck_assert_int_eq(store_pending_path(dir, "alpha", "j1", pending, sizeof(pending), &err), BCT_OK);
    snprintf(p, sizeof(p), "%s/.job-j1.bct", dir);
    ck_assert_str_eq(pending, p);
    int fd = open(pending, O_CREAT | O_WRONLY, 0644);
    close(fd);
    int v;
    ck_assert_int_eq(store_publish(&s, "alpha", pending, 2, &v, final, sizeof(final), &lg, &err), BCT_OK);
    ck_assert_int_eq(v, 2);
    snprintf(p, sizeof(p), "%s/alpha/2.bct", dir);
    ck_assert_str_eq(final, p);
    ck_assert_int_eq(store_kind(dir, "alpha"), STORE_VERSIONED);
    snprintf(p, sizeof(p), "%s/alpha/1.bct", dir);
    ck_assert_int_eq(access(p, F_OK), 0);
    /* v3 with keep 2: version 1 goes to the trash */
    ck_assert_int_eq(store_pending_path(dir, "alpha", "j2", pending, sizeof(pending), &err), BCT_OK);
    close(open(pending, O_CREAT | O_WRONLY, 0644));
    ck_assert_int_eq(store_publish(&s, "alpha", pending, 2, &v, final, sizeof(final), &lg, &err), BCT_OK);
    ck_assert_int_eq(v, 3);
    ck_assert_int_ne(access(p, F_OK), 0);
    /* a checkpoint folder cannot take versions */
    ck_assert_int_ne(store_pending_path(dir, "zeta", "j3", pending, sizeof(pending), &err), BCT_OK);
    /* remove: both versions go, the name is free */
    int removed;
    ck_assert_int_eq(store_remove(&s, "alpha", &removed, &err), BCT_OK);
    ck_assert_int_eq(removed, 2);
    ck_assert_int_eq(store_kind(dir, "alpha"), STORE_ABSENT);
    ck_assert_int_ne(store_remove(&s, "alpha", &removed, &err), BCT_OK);
    /* cleanup (writer): temp files and unpublished compressions go */
    ck_assert_int_ge(store_cleanup(dir, 1, &lg), 2);
    snprintf(p, sizeof(p), "%s/.job-1-3.bct", dir);
    ck_assert_int_ne(access(p, F_OK), 0);
    snprintf(p, sizeof(p), "%s/beta.bct.tmp.AbC123", dir);
    ck_assert_int_ne(access(p, F_OK), 0);
    store_destroy(&s);
    ck_assert_int_eq(store_rmtree(dir), BCT_OK);
    ck_assert_int_eq(store_scan("/nonexistent-store", &e, &n, &err), BCT_EIO);
}
END_TEST

START_TEST(store_names) {
    bct_error why = {{0}};
    static const char *const good[] = {"a", "sst2-tiny", "m.v2_final", "0", "a..b"};
    static const char *const bad[] = {"", ".", "..", ".hidden", "../x", "a/b", "Upper", "sp ace",
                                      "x\n", "0123456789012345678901234567890123456789012345678901234567890123x"};
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++)
        ck_assert_msg(store_name_check(good[i], &why) == BCT_OK, "%s: %s", good[i], why.msg);
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        ck_assert_msg(store_name_check(bad[i], &why) == BCT_EINVAL, "accepted \"%s\"", bad[i]);
}
END_TEST

START_TEST(admin_token_check) {
    ck_assert_int_eq(admin_auth_check("", "Bearer x"), AUTH_DISABLED);
    ck_assert_int_eq(admin_auth_check(NULL, NULL), AUTH_DISABLED);
    ck_assert_int_eq(admin_auth_check("s3cret", NULL), AUTH_MISSING);
    ck_assert_int_eq(admin_auth_check("s3cret", "Basic czNjcmV0"), AUTH_MISSING);
    ck_assert_int_eq(admin_auth_check("s3cret", "Bearer"), AUTH_MISSING);
    ck_assert_int_eq(admin_auth_check("s3cret", "Bearer "), AUTH_MISSING);
    ck_assert_int_eq(admin_auth_check("s3cret", "Bearer s3cret"), AUTH_OK);
    ck_assert_int_eq(admin_auth_check("s3cret", "bearer  s3cret "), AUTH_OK);
    ck_assert_int_eq(admin_auth_check("s3cret", "Bearer s3cre"), AUTH_WRONG);
    ck_assert_int_eq(admin_auth_check("s3cret", "Bearer s3cret2"), AUTH_WRONG);
    ck_assert_int_eq(admin_auth_check("s3cret", "Bearer S3cret"), AUTH_WRONG);
    ck_assert_int_eq(admin_auth_equal("", ""), 1);
    ck_assert_int_eq(admin_auth_equal("a", ""), 0);
    ck_assert_int_eq(admin_auth_equal("", "a"), 0);
}
END_TEST

static Suite *suite(void) {
    Suite *s = suite_create("server");
    TCase *tc = tcase_create("units");
    tcase_add_test(tc, config_default_json_matches_builtin);
    tcase_add_test(tc, config_json_errors);
    tcase_add_test(tc, config_paths_relative_to_file);
    tcase_add_test(tc, config_env_and_flags);
    tcase_add_test(tc, config_validate_cross_fields);
    tcase_add_test(tc, api_classify_shapes);
    tcase_add_test(tc, api_predict_shapes);
    tcase_add_test(tc, error_mapping);
    tcase_add_test(tc, api_errors);
    tcase_add_test(tc, api_format_sorted_topk);
    tcase_add_test(tc, sbuf_json_escaping);
    tcase_add_test(tc, metrics_text);
    tcase_add_test(tc, routes_match_table);
    tcase_add_test(tc, routes_openapi_matches_table);
    tcase_add_test(tc, store_scan_layout);
    tcase_add_test(tc, store_names);
    tcase_add_test(tc, admin_token_check);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) { return test_run_suite(suite()); }
