#define _GNU_SOURCE /* memmem */
#include "api_classify.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int hex4(const char *s, unsigned *out) {
    unsigned v = 0;
    for (int i = 0; i < 4; i++) {
        char c = s[i];
        v <<= 4;
        if (c >= '0' && c <= '9') v |= (unsigned)(c - '0');
        else if (c >= 'a' && c <= 'f') v |= (unsigned)(c - 'a' + 10);
        else if (c >= 'A' && c <= 'F') v |= (unsigned)(c - 'A' + 10);
        else return -1;
    }
    *out = v;
    return 0;
}

/* Finds a \u escape inside a JSON string that cannot become UTF-8 text:
 * a lone surrogate (cJSON rejects the whole document for it, but it is a
 * text problem, not a syntax one) or U+0000 (cJSON would silently cut the
 * string there).  Returns its byte offset and sets *nul, or -1. */
static long find_bad_escape(const char *s, size_t n, int *nul) {
    int in_str = 0;
    for (size_t i = 0; i < n; i++) {
        if (!in_str) {
            if (s[i] == '"') in_str = 1;
            continue;
        }
        if (s[i] == '"') {
            in_str = 0;
        } else if (s[i] == '\\' && i + 1 < n) {
            unsigned cp, lo;
            if (s[i + 1] != 'u' || i + 6 > n || hex4(s + i + 2, &cp)) {
                i++;
                continue;
            }
            if (cp == 0) {
                *nul = 1;
                return (long)i;
            }
            if (cp >= 0xD800 && cp <= 0xDBFF) {
                if (i + 12 <= n && s[i + 6] == '\\' && s[i + 7] == 'u' && !hex4(s + i + 8, &lo) &&
                    lo >= 0xDC00 && lo <= 0xDFFF) {
                    i += 11;
                    continue;
                }
                *nul = 0;
                return (long)i;
            }
            if (cp >= 0xDC00 && cp <= 0xDFFF) {
                *nul = 0;
                return (long)i;
            }
            i += 5;
        }
    }
    return -1;
}

static int bad_escape_error(long off, int nul, srv_err *err) {
    if (nul)
        return srv_err_set(err, BCT_EINVAL,
                           "the escape \\u0000 at byte %ld is not allowed in text", off);
    return srv_err_set(err, BCT_EINVAL,
                       "invalid Unicode at byte %ld: a \\u escape is a lone UTF-16 surrogate", off);
}

/* "name" as it appears in messages: inputs[3] or inputs. */
static void where(char *buf, size_t size, int index) {
    if (index < 0) snprintf(buf, size, "inputs");
    else snprintf(buf, size, "inputs[%d]", index);
}

static int take_text(const cJSON *s, srv_text *t, int second) {
    if (second) {
        t->b = s->valuestring;
        t->blen = strlen(s->valuestring);
    } else {
        t->a = s->valuestring;
        t->alen = strlen(s->valuestring);
    }
    return 0;
}

/* {"text": "...", "text_pair": "..."} (text_pair optional). */
static int pair_object(const cJSON *o, int index, srv_text *t, srv_err *err) {
    char w[32];
    where(w, sizeof(w), index);
    const cJSON *text = NULL, *pair = NULL;
    for (const cJSON *it = o->child; it; it = it->next) {
        if (!strcmp(it->string, "text")) text = it;
        else if (!strcmp(it->string, "text_pair")) pair = it;
        else
            return srv_err_set(err, BCT_EINVAL,
                               "%s: unknown field \"%.64s\" (expected \"text\" and optionally "
                               "\"text_pair\")",
                               w, it->string);
    }
    if (!text) return srv_err_set(err, BCT_EINVAL, "%s: missing \"text\"", w);
    if (!cJSON_IsString(text))
        return srv_err_set(err, BCT_EINVAL, "%s: \"text\" must be a string", w);
    take_text(text, t, 0);
    if (pair && !cJSON_IsNull(pair)) {
        if (!cJSON_IsString(pair))
            return srv_err_set(err, BCT_EINVAL, "%s: \"text_pair\" must be a string", w);
        take_text(pair, t, 1);
    }
    return 0;
}

static int too_many(int n, int max, srv_err *err) {
    return srv_err_set(err, BCT_ERANGE,
                       "inputs has %d items, more than max_inputs_per_request (%d)", n, max);
}

static int alloc_texts(api_request *r, int n, srv_err *err) {
    r->texts = calloc((size_t)n, sizeof(srv_text));
    r->n = n;
    return r->texts ? 0 : srv_err_set(err, BCT_ENOMEM, "out of memory");
}

static int classify_inputs(const cJSON *in, int max, api_request *r, srv_err *err) {
    static const char *shape =
        "inputs must be a string, a {\"text\", \"text_pair\"} object, or a list of them";
    if (cJSON_IsString(in) || cJSON_IsObject(in)) {
        r->single = 1;
        if (alloc_texts(r, 1, err)) return err->code;
        return cJSON_IsString(in) ? take_text(in, &r->texts[0], 0)
                                  : pair_object(in, -1, &r->texts[0], err);
    }
    if (!cJSON_IsArray(in)) return srv_err_set(err, BCT_EINVAL, "%s", shape);
    int n = cJSON_GetArraySize(in);
    if (n == 0) return srv_err_set(err, BCT_EINVAL, "inputs is an empty list");
    if (n > max) return too_many(n, max, err);
    if (alloc_texts(r, n, err)) return err->code;
    int i = 0;
    for (const cJSON *it = in->child; it; it = it->next, i++) {
        if (cJSON_IsString(it)) take_text(it, &r->texts[i], 0);
        else if (cJSON_IsObject(it)) {
            if (pair_object(it, i, &r->texts[i], err)) return err->code;
        } else
            return srv_err_set(err, BCT_EINVAL,
                               "inputs[%d] must be a string or a {\"text\", \"text_pair\"} object",
                               i);
    }
    return 0;
}

/* TEI: "a" | ["a"] | ["a", "b"] (one pair) | [["a"], ["a", "b"], ...]. */
static int predict_inputs(const cJSON *in, int max, api_request *r, srv_err *err) {
    static const char *shape = "inputs must be a string, a pair [\"a\", \"b\"], or a batch "
                               "[[\"a\"], [\"a\", \"b\"], ...]";
    if (cJSON_IsString(in)) {
        r->single = 1;
        if (alloc_texts(r, 1, err)) return err->code;
        return take_text(in, &r->texts[0], 0);
    }
    if (!cJSON_IsArray(in)) return srv_err_set(err, BCT_EINVAL, "%s", shape);
    int n = cJSON_GetArraySize(in);
    if (n == 0) return srv_err_set(err, BCT_EINVAL, "inputs is an empty list");
    if (cJSON_IsString(in->child)) {
        /* A flat list is one input: a single text or a pair. */
        if (n > 2)
            return srv_err_set(err, BCT_EINVAL,
                               "a flat list of strings is one input and holds 1 or 2 texts, got "
                               "%d; write a batch as [[\"a\"], [\"b\"], ...]",
                               n);
        r->single = 1;
        if (alloc_texts(r, 1, err)) return err->code;
        int k = 0;
        for (const cJSON *it = in->child; it; it = it->next, k++) {
            if (!cJSON_IsString(it)) return srv_err_set(err, BCT_EINVAL, "%s", shape);
            take_text(it, &r->texts[0], k);
        }
        return 0;
    }
    if (n > max) return too_many(n, max, err);
    if (alloc_texts(r, n, err)) return err->code;
    int i = 0;
    for (const cJSON *it = in->child; it; it = it->next, i++) {
        int k = cJSON_IsArray(it) ? cJSON_GetArraySize(it) : 0;
        if (k < 1 || k > 2)
            return srv_err_set(err, BCT_EINVAL,
                               "inputs[%d] must be a list of 1 or 2 strings (%s)", i, shape);
        int j = 0;
        for (const cJSON *s = it->child; s; s = s->next, j++) {
            if (!cJSON_IsString(s))
                return srv_err_set(err, BCT_EINVAL, "inputs[%d][%d] must be a string", i,
                                   j);
            take_text(s, &r->texts[i], j);
        }
    }
    return 0;
}

static int opt_bool(const cJSON *v, const char *name, int *out, srv_err *err) {
    if (!v || cJSON_IsNull(v)) return 0;
    if (!cJSON_IsBool(v))
        return srv_err_set(err, BCT_EINVAL, "\"%s\" must be true or false", name);
    *out = cJSON_IsTrue(v);
    return 0;
}

static int options(const cJSON *root, api_request *r, srv_err *err) {
    const cJSON *v;
    if (opt_bool(cJSON_GetObjectItemCaseSensitive(root, "truncate"), "truncate", &r->truncate, err) ||
        opt_bool(cJSON_GetObjectItemCaseSensitive(root, "raw_scores"), "raw_scores", &r->raw_scores,
                 err))
        return err->code;
    if ((v = cJSON_GetObjectItemCaseSensitive(root, "top_k")) && !cJSON_IsNull(v)) {
        double d = cJSON_IsNumber(v) ? v->valuedouble : 0;
        if (!cJSON_IsNumber(v) || d != floor(d) || d < 1)
            return srv_err_set(err, BCT_EINVAL, "\"top_k\" must be a positive integer");
        r->top_k = d > 1e9 ? 1000000000 : (int)d;
    }
    if ((v = cJSON_GetObjectItemCaseSensitive(root, "model")) && !cJSON_IsNull(v)) {
        if (!cJSON_IsString(v) || !v->valuestring[0])
            return srv_err_set(err, BCT_EINVAL, "\"model\" must be a non-empty string");
        r->model = v->valuestring;
    }
    return 0;
}

/* "truncation_direction": "right" (default) or "left", as TEI spells
 * them (also "Right" and "Left"). */
int api_truncation_direction(const void *json, int *left, srv_err *err) {
    const cJSON *d = cJSON_GetObjectItemCaseSensitive(json, "truncation_direction");
    if (!d || cJSON_IsNull(d)) return 0;
    if (cJSON_IsString(d) && (!strcmp(d->valuestring, "right") || !strcmp(d->valuestring, "Right"))) {
        *left = 0;
        return 0;
    }
    if (cJSON_IsString(d) && (!strcmp(d->valuestring, "left") || !strcmp(d->valuestring, "Left"))) {
        *left = 1;
        return 0;
    }
    return srv_err_set(err, BCT_EINVAL, "\"truncation_direction\" must be \"right\" or \"left\"");
}

/* The Inference API's "parameters": {"top_k", "function_to_apply"}. */
static int parameters(const cJSON *root, api_request *r, srv_err *err) {
    const cJSON *p = cJSON_GetObjectItemCaseSensitive(root, "parameters"), *v;
    if (!p || cJSON_IsNull(p)) return 0;
    if (!cJSON_IsObject(p)) return srv_err_set(err, BCT_EINVAL, "\"parameters\" must be an object");
    if (options(p, r, err)) return err->code;
    if ((v = cJSON_GetObjectItemCaseSensitive(p, "function_to_apply")) && !cJSON_IsNull(v)) {
        if (!cJSON_IsString(v) || (strcmp(v->valuestring, "none") && strcmp(v->valuestring, "softmax") &&
                                   strcmp(v->valuestring, "sigmoid")))
            return srv_err_set(err, BCT_EINVAL,
                               "parameters.function_to_apply must be \"softmax\", \"sigmoid\" or \"none\"");
        /* The model's own function (softmax, or sigmoid for multi-label) or none. */
        r->raw_scores = !strcmp(v->valuestring, "none");
    }
    return 0;
}

int api_parse(api_kind kind, const char *body, size_t len, int max_inputs, api_request *r,
              srv_err *err) {
    memset(r, 0, sizeof(*r));
    r->kind = kind;
    r->truncate = 1;
    int nul;
    if (memchr(body, '\0', len))
        return srv_err_set(err, SRV_EBADREQ, "malformed JSON: the body holds a NUL byte");
    /* Length includes the terminating NUL so that trailing garbage after
     * the JSON value is an error. */
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts(body, len + 1, &end, 1);
    if (!root) {
        long off = find_bad_escape(body, len, &nul);
        if (off >= 0) return bad_escape_error(off, nul, err);
        size_t at = end && end >= body ? (size_t)(end - body) : 0;
        return srv_err_set(err, SRV_EBADREQ, "malformed JSON near byte %zu", at);
    }
    r->root = root;
    if (memmem(body, len, "\\u0000", 6)) {
        long off = find_bad_escape(body, len, &nul);
        if (off >= 0) return bad_escape_error(off, nul, err);
    }
    if (!cJSON_IsObject(root))
        return srv_err_set(err, BCT_EINVAL, "the body must be a JSON object");
    if (kind == API_CLASSIFY)
        for (const cJSON *it = root->child; it; it = it->next) {
            static const char *const known[] = {"inputs",     "truncate", "truncation_direction",
                                                "top_k",      "raw_scores", "model"};
            int ok = 0;
            for (size_t k = 0; k < sizeof(known) / sizeof(known[0]); k++) ok |= !strcmp(it->string, known[k]);
            if (!ok)
                return srv_err_set(err, BCT_EINVAL,
                                   "unknown field \"%.64s\" (known: inputs, truncate, "
                                   "truncation_direction, top_k, raw_scores, model)",
                                   it->string);
        }
    if (options(root, r, err)) return err->code;
    if (api_truncation_direction(root, &r->trunc_left, err) || (kind == API_ROOT && parameters(root, r, err)))
        return err->code;
    const cJSON *in = cJSON_GetObjectItemCaseSensitive(root, "inputs");
    if (!in) return srv_err_set(err, BCT_EINVAL, "missing field \"inputs\"");
    if (kind == API_CLASSIFY) return classify_inputs(in, max_inputs, r, err);
    if (predict_inputs(in, max_inputs, r, err)) return err->code;
    if (kind == API_ROOT) r->single = 0; /* the Inference API: one list per input */
    return 0;
}

void api_request_free(api_request *r) {
    cJSON_Delete(r->root);
    free(r->texts);
    memset(r, 0, sizeof(*r));
}

void api_format(const api_request *r, const bert_config *cfg, const float *logits, sbuf *out) {
    int nl = cfg->num_labels;
    int k = r->top_k > 0 && r->top_k < nl ? r->top_k : nl;
    bert_label_score small[64];
    bert_label_score *order = nl <= 64 ? small : malloc((size_t)nl * sizeof(*order));
    if (!order) {
        out->oom = 1;
        return;
    }
    if (!r->single) sbuf_putc(out, '[');
    for (int i = 0; i < r->n; i++) {
        bert_rank_labels(cfg, logits + (size_t)i * nl, r->raw_scores, order);
        if (i) sbuf_putc(out, ',');
        sbuf_putc(out, '[');
        for (int j = 0; j < k; j++) {
            const char *label = cfg->labels[order[j].id];
            if (j) sbuf_putc(out, ',');
            if (r->kind == API_CLASSIFY) {
                sbuf_puts(out, "{\"label\":");
                sbuf_json_str(out, label, strlen(label));
                sbuf_puts(out, ",\"score\":");
                sbuf_json_float(out, order[j].score);
            } else {
                sbuf_puts(out, "{\"score\":");
                sbuf_json_float(out, order[j].score);
                sbuf_puts(out, ",\"label\":");
                sbuf_json_str(out, label, strlen(label));
            }
            sbuf_putc(out, '}');
        }
        sbuf_putc(out, ']');
    }
    if (!r->single) sbuf_putc(out, ']');
    if (order != small) free(order);
}
