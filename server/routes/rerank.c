/* rerank.c - POST /rerank, text-embeddings-inference's shape, on top of
 * pair classification:
 *   {"query": "q", "texts": ["a", "b", ...], "raw_scores": false,
 *    "return_text": false, "truncate": false, "truncation_direction":
 *    "right", "model": "name"}
 * -> [{"index": i, "score": s, ("text": t)}, ...], highest score first.
 * Each (query, text) pair is classified; its score is the probability of
 * the model's last label (sigmoid of the logit for a one-label model),
 * or that logit with raw_scores. */
#include <cjson/cJSON.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "route.h"

typedef struct rerank_state {
    infer_state inf; /* first */
    cJSON *root;
    srv_text *texts;
    int n;
    int raw, return_text;
} rerank_state;

typedef struct rank {
    int index;
    float score;
} rank;

static int by_score(const void *a, const void *b) {
    const rank *x = a, *y = b;
    if (x->score != y->score) return x->score < y->score ? 1 : -1;
    return x->index - y->index;
}

static void format(srv_req *rq, const srv_job *job, sbuf *out) {
    rerank_state *st = rq->state;
    const bert_config *cfg = &job->model->m->cfg;
    int nl = cfg->num_labels;
    rank *r = malloc((size_t)st->n * sizeof(*r));
    float *scores = malloc((size_t)nl * sizeof(float));
    if (!r || !scores) {
        free(r);
        free(scores);
        out->oom = 1;
        return;
    }
    for (int i = 0; i < st->n; i++) {
        const float *lg = job->logits + (size_t)i * nl;
        float s = lg[nl - 1];
        if (!st->raw) {
            if (nl == 1) s = 1.0f / (1.0f + expf(-s));
            else {
                bert_scores(cfg, lg, scores);
                s = scores[nl - 1];
            }
        }
        r[i] = (rank){i, s};
    }
    qsort(r, (size_t)st->n, sizeof(*r), by_score);
    sbuf_putc(out, '[');
    for (int i = 0; i < st->n; i++) {
        if (i) sbuf_putc(out, ',');
        sbuf_printf(out, "{\"index\":%d,\"score\":", r[i].index);
        sbuf_json_float(out, r[i].score);
        if (st->return_text) {
            sbuf_puts(out, ",\"text\":");
            sbuf_json_str(out, st->texts[r[i].index].b, st->texts[r[i].index].blen);
        }
        sbuf_putc(out, '}');
    }
    sbuf_putc(out, ']');
    free(r);
    free(scores);
}

static int opt_bool(srv_req *rq, const cJSON *root, const char *name, int *out) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(root, name);
    if (!v || cJSON_IsNull(v)) return 0;
    if (!cJSON_IsBool(v)) {
        route_fail(rq, BCT_EINVAL, "\"%s\" must be true or false", name);
        return -1;
    }
    *out = cJSON_IsTrue(v);
    return 0;
}

static int begin(srv_req *rq) { return json_body_begin(rq); }

static int end(srv_req *rq) {
    const srv_deps *d = rq->d;
    size_t len;
    char *body = json_body_take(rq, &len);
    if (!body) return ROUTE_REPLY;
    rerank_state *st = calloc(1, sizeof(*st));
    if (!st) return route_fail(rq, BCT_ENOMEM, "out of memory");
    rq->state = st;
    st->inf.format = format;
    if (memchr(body, '\0', len)) return route_fail(rq, SRV_EBADREQ, "malformed JSON: the body holds a NUL byte");
    cJSON *root = st->root = cJSON_ParseWithLength(body, len);
    if (!root) return route_fail(rq, SRV_EBADREQ, "malformed JSON");
    if (!cJSON_IsObject(root)) return route_fail(rq, BCT_EINVAL, "the body must be a JSON object");
    const cJSON *q = cJSON_GetObjectItemCaseSensitive(root, "query");
    const cJSON *texts = cJSON_GetObjectItemCaseSensitive(root, "texts");
    const cJSON *mn = cJSON_GetObjectItemCaseSensitive(root, "model");
    int truncate = 0, left = 0;
    srv_err err;
    if (!cJSON_IsString(q)) return route_fail(rq, BCT_EINVAL, "\"query\" must be a string");
    if (!cJSON_IsArray(texts) || cJSON_GetArraySize(texts) == 0)
        return route_fail(rq, BCT_EINVAL, "\"texts\" must be a non-empty list of strings");
    if (opt_bool(rq, root, "raw_scores", &st->raw) || opt_bool(rq, root, "return_text", &st->return_text) ||
        opt_bool(rq, root, "truncate", &truncate))
        return ROUTE_REPLY;
    if (api_truncation_direction(root, &left, &err)) return route_fail_err(rq, &err);
    if (mn && !cJSON_IsNull(mn) && (!cJSON_IsString(mn) || !mn->valuestring[0]))
        return route_fail(rq, BCT_EINVAL, "\"model\" must be a non-empty string");
    st->n = cJSON_GetArraySize(texts);
    if (st->n > d->cfg->max_inputs_per_request)
        return route_fail(rq, BCT_ERANGE, "texts has %d items, more than max_inputs_per_request (%d)",
                          st->n, d->cfg->max_inputs_per_request);
    if (!(st->texts = calloc((size_t)st->n, sizeof(*st->texts))))
        return route_fail(rq, BCT_ENOMEM, "out of memory");
    int i = 0;
    for (const cJSON *it = texts->child; it; it = it->next, i++) {
        if (!cJSON_IsString(it)) return route_fail(rq, BCT_EINVAL, "texts[%d] must be a string", i);
        st->texts[i] = (srv_text){q->valuestring, strlen(q->valuestring), it->valuestring, strlen(it->valuestring)};
    }
    json_body_free(rq);
    int flags = (truncate ? JOB_TRUNCATE : 0) | (left ? JOB_TRUNCATE_LEFT : 0);
    return infer_run(rq, &st->inf, mn && cJSON_IsString(mn) ? mn->valuestring : NULL, st->texts, st->n, flags);
}

static void done(srv_req *rq) {
    rerank_state *st = rq->state;
    if (!st) return;
    infer_free(&st->inf);
    cJSON_Delete(st->root);
    free(st->texts);
    free(st);
    rq->state = NULL;
}

const route_handler route_rerank = {.begin = begin, .body = json_body_chunk, .end = end, .done = done};
