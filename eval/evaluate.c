#include "evaluate.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "model/bert_forward.h"
#include "tokenizer/tokenizer.h"

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

int eval_argmax(const float *v, int n) {
    int best = 0;
    for (int i = 1; i < n; i++)
        if (v[i] > v[best]) best = i;
    return best;
}

typedef struct encoded {
    int32_t *ids;
    uint8_t *types;
    int len;
    int index;
} encoded;

static int by_length(const void *a, const void *b) {
    const encoded *x = a, *y = b;
    return x->len != y->len ? x->len - y->len : x->index - y->index;
}

static int encode_all(const bert_model *m, const eval_text *texts, int n, encoded *enc, bct_error *err) {
    int cap = m->max_len;
    for (int i = 0; i < n; i++) {
        tok_encoding e = {.ids = malloc((size_t)cap * sizeof(int32_t)), .type_ids = malloc((size_t)cap),
                          .cap = cap};
        enc[i].ids = e.ids;
        enc[i].types = e.type_ids;
        enc[i].index = i;
        if (!e.ids || !e.type_ids) return bct_fail(err, BCT_ENOMEM, "out of memory");
        const char *b = texts[i].b;
        int rc = bert_model_encode(m, texts[i].a, strlen(texts[i].a), b, b ? strlen(b) : 0, &e, err);
        if (rc != BCT_OK) return bct_fail_prefix(err, rc, "example %d", i + 1);
        enc[i].len = e.len;
    }
    return BCT_OK;
}

int eval_run_texts(const bert_model *m, const eval_text *texts, int n, int batch, struct bct_pool *pool,
                   eval_progress_fn progress, void *ud, float *logits, bct_error *err) {
    int nl = m->cfg.num_labels, rc = BCT_OK;
    encoded *enc = calloc((size_t)n + 1, sizeof(encoded));
    bert_seq *seqs = calloc((size_t)batch, sizeof(bert_seq));
    float *out = malloc((size_t)batch * nl * sizeof(float));
    bert_ws *ws = bert_ws_create();
    if (!enc || !seqs || !out || !ws) {
        rc = bct_fail(err, BCT_ENOMEM, "out of memory");
        goto done;
    }
    bert_ws_set_pool(ws, pool);
    if ((rc = encode_all(m, texts, n, enc, err)) != BCT_OK) goto done;
    /* Similar lengths in a batch: less padding-free work imbalance and
     * better cache use in attention. */
    qsort(enc, (size_t)n, sizeof(encoded), by_length);
    for (int start = 0; start < n; start += batch) {
        int cnt = n - start < batch ? n - start : batch;
        for (int j = 0; j < cnt; j++)
            seqs[j] = (bert_seq){enc[start + j].ids, enc[start + j].types, enc[start + j].len};
        if ((rc = bert_forward(m, seqs, cnt, out, ws, err)) != BCT_OK) goto done;
        for (int j = 0; j < cnt; j++)
            memcpy(logits + (size_t)enc[start + j].index * nl, out + (size_t)j * nl,
                   (size_t)nl * sizeof(float));
        if (progress && progress(ud, (size_t)(start + cnt), (size_t)n)) {
            rc = bct_fail(err, BCT_EINVAL, "cancelled");
            goto done;
        }
    }
done:
    if (enc)
        for (int i = 0; i < n; i++) {
            free(enc[i].ids);
            free(enc[i].types);
        }
    free(enc);
    free(seqs);
    free(out);
    bert_ws_free(ws);
    return rc;
}

int glue_eval_run(const bert_model *m, const glue_set *set, int batch, struct bct_pool *pool,
                  eval_progress_fn progress, void *ud, float *logits, eval_result *r, bct_error *err) {
    int nl = m->cfg.num_labels;
    *r = (eval_result){.n = set->n};
    eval_text *texts = malloc((size_t)(set->n + 1) * sizeof(eval_text));
    if (!texts) return bct_fail(err, BCT_ENOMEM, "out of memory");
    for (int i = 0; i < set->n; i++) texts[i] = (eval_text){set->ex[i].a, set->ex[i].b};
    double t0 = now_s();
    int rc = eval_run_texts(m, texts, set->n, batch, pool, progress, ud, logits, err);
    r->seconds = now_s() - t0;
    free(texts);
    if (rc != BCT_OK) return rc;
    for (int i = 0; i < set->n; i++) {
        int pred = eval_argmax(logits + (size_t)i * nl, nl), gold = set->ex[i].label;
        r->correct += pred == gold;
        r->tp += pred == 1 && gold == 1;
        r->fp += pred == 1 && gold != 1;
        r->fn += pred != 1 && gold == 1;
    }
    return BCT_OK;
}

double eval_accuracy(const eval_result *r) { return r->n ? (double)r->correct / r->n : 0; }

double eval_f1(const eval_result *r) {
    int denom = 2 * r->tp + r->fp + r->fn;
    return denom ? 2.0 * r->tp / denom : 0;
}

void eval_result_json(cJSON *o, const eval_result *r) {
    cJSON_AddNumberToObject(o, "n", r->n);
    cJSON_AddNumberToObject(o, "correct", r->correct);
    cJSON_AddNumberToObject(o, "accuracy", eval_accuracy(r));
    cJSON_AddNumberToObject(o, "f1", eval_f1(r));
    cJSON_AddNumberToObject(o, "seconds", r->seconds);
    cJSON_AddNumberToObject(o, "sentences_per_s", r->seconds > 0 ? r->n / r->seconds : 0);
}

void eval_compare(const float *a, const float *b, int n, int nl, eval_diff *out) {
    *out = (eval_diff){.n = n};
    double sum = 0;
    for (int i = 0; i < n; i++) {
        const float *la = a + (size_t)i * nl, *lb = b + (size_t)i * nl;
        out->agree += eval_argmax(la, nl) == eval_argmax(lb, nl);
        for (int j = 0; j < nl; j++) {
            double d = fabs((double)la[j] - lb[j]);
            out->max_abs = d > out->max_abs ? d : out->max_abs;
            sum += d;
        }
    }
    out->mean_abs = n && nl ? sum / ((double)n * nl) : 0;
}

double eval_agreement(const eval_diff *d) { return d->n ? (double)d->agree / d->n : 0; }
