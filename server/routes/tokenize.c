/* tokenize.c - POST /tokenize, text-embeddings-inference's shape:
 *   {"inputs": "text" | ["a", "b", ...], "add_special_tokens": true,
 *    "model": "name"}
 * -> one list per input of {"id", "text", "special", "start", "stop"}.
 * The WordPiece tokenizer keeps no character offsets, so start and stop
 * are null.  Inputs are cut to the model's max length as /classify cuts
 * them (truncate, truncation_direction). */
#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>

#include "route.h"

static int begin(srv_req *rq) { return json_body_begin(rq); }

static int bad(srv_req *rq, const char *msg) { return route_fail(rq, BCT_EINVAL, "%s", msg); }

static int answer(srv_req *rq, cJSON *root) {
    const srv_deps *d = rq->d;
    srv_err err;
    if (!cJSON_IsObject(root)) return bad(rq, "the body must be a JSON object");
    const cJSON *in = cJSON_GetObjectItemCaseSensitive(root, "inputs");
    const cJSON *sp = cJSON_GetObjectItemCaseSensitive(root, "add_special_tokens");
    const cJSON *mn = cJSON_GetObjectItemCaseSensitive(root, "model");
    const cJSON *tr = cJSON_GetObjectItemCaseSensitive(root, "truncate");
    int specials = 1, left = 0, truncate = 1;
    if (sp && !cJSON_IsNull(sp)) {
        if (!cJSON_IsBool(sp)) return bad(rq, "\"add_special_tokens\" must be true or false");
        specials = cJSON_IsTrue(sp);
    }
    if (tr && !cJSON_IsNull(tr)) {
        if (!cJSON_IsBool(tr)) return bad(rq, "\"truncate\" must be true or false");
        truncate = cJSON_IsTrue(tr);
    }
    if (api_truncation_direction(root, &left, &err)) return route_fail_err(rq, &err);
    if (mn && !cJSON_IsNull(mn) && (!cJSON_IsString(mn) || !mn->valuestring[0]))
        return bad(rq, "\"model\" must be a non-empty string");
    if (!in) return bad(rq, "missing field \"inputs\"");
    int n = cJSON_IsString(in) ? 1 : cJSON_IsArray(in) ? cJSON_GetArraySize(in) : 0;
    if (n == 0) return bad(rq, "inputs must be a string or a non-empty list of strings");
    if (n > d->cfg->max_inputs_per_request)
        return route_fail(rq, BCT_ERANGE, "inputs has %d items, more than max_inputs_per_request (%d)", n,
                          d->cfg->max_inputs_per_request);
    srv_text *texts = calloc((size_t)n, sizeof(*texts));
    if (!texts) return route_fail(rq, BCT_ENOMEM, "out of memory");
    int i = 0;
    for (const cJSON *it = cJSON_IsString(in) ? in : in->child; i < n; it = it->next, i++) {
        if (!cJSON_IsString(it)) {
            free(texts);
            return route_fail(rq, BCT_EINVAL, "inputs[%d] must be a string", i);
        }
        texts[i] = (srv_text){.a = it->valuestring, .alen = strlen(it->valuestring)};
    }
    const char *name = mn && cJSON_IsString(mn) ? mn->valuestring : NULL;
    srv_model *model = registry_acquire(d->reg, name);
    if (!model) {
        free(texts);
        if (name)
            return route_fail(rq, BCT_ENOTFOUND, "no model named \"%.100s\" is loaded", name);
        return route_fail(rq, BCT_EUNAVAILABLE, "no default model is loaded");
    }
    snprintf(rq->model, sizeof(rq->model), "%s", model->name);
    const bert_model *m = model->m;
    srv_job *job; /* tokenized as an inference request would be, never queued */
    if (job_create(model, texts, n, (truncate ? JOB_TRUNCATE : 0) | (left ? JOB_TRUNCATE_LEFT : 0), &job, &err)) {
        free(texts);
        return route_fail_err(rq, &err);
    }
    free(texts);
    rq->inputs = job->n;
    rq->tokens = job->tokens;
    sbuf b;
    sbuf_init(&b);
    sbuf_putc(&b, '[');
    for (i = 0; i < n; i++) {
        const srv_input *s = &job->in[i];
        if (i) sbuf_putc(&b, ',');
        sbuf_putc(&b, '[');
        int first = 1;
        for (int t = 0; t < s->len; t++) {
            int32_t id = s->ids[t];
            int special = id == tok_cls_id(m->tok) || id == tok_sep_id(m->tok);
            if (special && !specials) continue;
            size_t len;
            const char *piece = vocab_token(m->vocab, id, &len);
            if (!first) sbuf_putc(&b, ',');
            first = 0;
            sbuf_printf(&b, "{\"id\":%d,\"text\":", (int)id);
            sbuf_json_str(&b, piece ? piece : "", piece ? len : 0);
            sbuf_printf(&b, ",\"special\":%s,\"start\":null,\"stop\":null}", special ? "true" : "false");
        }
        sbuf_putc(&b, ']');
    }
    sbuf_putc(&b, ']');
    job_free(job);
    return route_reply_sbuf(rq, 200, &b, NULL);
}

static int end(srv_req *rq) {
    size_t len;
    char *body = json_body_take(rq, &len);
    if (!body) return ROUTE_REPLY;
    if (memchr(body, '\0', len)) return route_fail(rq, SRV_EBADREQ, "malformed JSON: the body holds a NUL byte");
    cJSON *root = cJSON_ParseWithLength(body, len);
    if (!root) return route_fail(rq, SRV_EBADREQ, "malformed JSON");
    int r = answer(rq, root);
    cJSON_Delete(root);
    return r;
}

const route_handler route_tokenize = {.begin = begin, .body = json_body_chunk, .end = end};
