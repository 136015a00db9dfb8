#include "calibrate.h"

#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cblas.h>

#include "model/bert_forward.h"

enum { CALIB_BATCH = 16 };

typedef struct accum {
    const bert_slot *slots;
    int n_slots;
    double **sum; /* per slot: sum of x^2 per column */
    long long *rows;
    calib_stats *out; /* col_absmax, rows, n_rows */
    int keep;         /* rows sampled per slot */
    uint64_t rng;
} accum;

/* xorshift64*: the reservoir's fixed-seed generator. */
static uint64_t next_rand(uint64_t *s) {
    *s ^= *s >> 12;
    *s ^= *s << 25;
    *s ^= *s >> 27;
    return *s * 2685821657736338717ull;
}

static void observe(void *ud, const bert_linear *l, const float *x, int ldx, int rows) {
    accum *a = ud;
    for (int i = 0; i < a->n_slots; i++) {
        if (a->slots[i].f != &l->w || !a->sum[i]) continue;
        float *amax = a->out->col_absmax[i];
        for (int r = 0; r < rows; r++) {
            const float *xr = x + (size_t)r * ldx;
            for (int c = 0; c < l->in; c++) {
                double v = xr[c];
                a->sum[i][c] += v * v;
                amax[c] = fmaxf(amax[c], fabsf(xr[c]));
            }
            /* Reservoir: row number t replaces a kept one with p = keep/t. */
            long long t = a->rows[i] + r;
            long long slot = t < a->keep ? t : (long long)(next_rand(&a->rng) % (uint64_t)(t + 1));
            if (slot < a->keep) {
                memcpy(a->out->rows[i] + (size_t)slot * l->in, xr, (size_t)l->in * sizeof(float));
                if (t < a->keep) a->out->n_rows[i] = (int)t + 1;
            }
        }
        a->rows[i] += rows;
        return;
    }
}

typedef struct batch {
    int32_t ids[CALIB_BATCH][512];
    uint8_t types[CALIB_BATCH][512];
    bert_seq seqs[CALIB_BATCH];
    int n;
} batch;

static int run_batch(const bert_model *m, batch *b, bert_ws *ws, float *logits, bct_error *err) {
    int rc = b->n ? bert_forward(m, b->seqs, b->n, logits, ws, err) : BCT_OK;
    b->n = 0;
    return rc;
}

static int add_line(const bert_model *m, char *line, size_t len, batch *b, calib_stats *out,
                    bct_error *err) {
    char *tab = memchr(line, '\t', len);
    size_t alen = tab ? (size_t)(tab - line) : len;
    tok_encoding e = {b->ids[b->n], b->types[b->n], 512, 0, 0};
    int rc = bert_model_encode(m, line, alen, tab ? tab + 1 : NULL, tab ? len - alen - 1 : 0, &e, err);
    if (rc != BCT_OK) return rc;
    b->seqs[b->n] = (bert_seq){b->ids[b->n], b->types[b->n], e.len};
    b->n++;
    out->sentences++;
    out->tokens += e.len;
    return BCT_OK;
}

static int run_file(const bert_model *m, FILE *f, int max_sentences, int layers, bert_observer fn, void *ud,
                    calib_stats *out, bct_error *err) {
    bert_ws *ws = bert_ws_create();
    batch *b = calloc(1, sizeof(batch));
    float *logits = malloc((size_t)CALIB_BATCH * m->cfg.num_labels * sizeof(float));
    char *line = NULL;
    size_t cap = 0;
    ssize_t n;
    int rc = ws && b && logits ? BCT_OK : bct_fail(err, BCT_ENOMEM, "out of memory");
    if (rc == BCT_OK) {
        bert_ws_observe(ws, fn, ud);
        bert_ws_stop_after(ws, layers);
    }
    for (int lineno = 1; rc == BCT_OK && out->sentences < max_sentences &&
                         (n = getline(&line, &cap, f)) >= 0;
         lineno++) {
        while (n && (line[n - 1] == '\n' || line[n - 1] == '\r')) line[--n] = '\0';
        if (n == 0) continue;
        if ((rc = add_line(m, line, (size_t)n, b, out, err)) != BCT_OK)
            rc = bct_fail_prefix(err, rc, "calibration line %d", lineno);
        else if (b->n == CALIB_BATCH)
            rc = run_batch(m, b, ws, logits, err);
    }
    if (rc == BCT_OK) rc = run_batch(m, b, ws, logits, err);
    free(line);
    free(logits);
    free(b);
    bert_ws_free(ws);
    return rc;
}

int calib_collect(const bert_model *m, const bert_slot *slots, int n_slots, const char *path,
                  int max_sentences, int keep_rows, calib_stats *out, bct_error *err) {
    memset(out, 0, sizeof(*out));
    if (m->mode.act_int8) return bct_fail(err, BCT_EINVAL, "calibration needs the fp32 model");
    FILE *f = fopen(path, "rb");
    if (!f) return bct_fail(err, BCT_EIO, "%s: %s", path, strerror(errno));
    accum a = {slots, n_slots, calloc((size_t)n_slots, sizeof(double *)),
               calloc((size_t)n_slots, sizeof(long long)), out, keep_rows, 0x9e3779b97f4a7c15ull};
    out->n_slots = n_slots;
    out->col_weight = calloc((size_t)n_slots, sizeof(float *));
    out->col_absmax = calloc((size_t)n_slots, sizeof(float *));
    out->rows = calloc((size_t)n_slots, sizeof(float *));
    out->n_rows = calloc((size_t)n_slots, sizeof(int));
    int rc = a.sum && a.rows && out->col_weight && out->col_absmax && out->rows && out->n_rows
                 ? BCT_OK
                 : BCT_ENOMEM;
    for (int i = 0; i < n_slots && rc == BCT_OK; i++) {
        if (slots[i].role != BERT_ROLE_WEIGHT) continue;
        size_t cols = (size_t)slots[i].cols;
        if (!(a.sum[i] = calloc(cols, sizeof(double))) || !(out->col_absmax[i] = calloc(cols, sizeof(float))) ||
            (keep_rows > 0 && !(out->rows[i] = malloc((size_t)keep_rows * cols * sizeof(float)))))
            rc = BCT_ENOMEM;
    }
    if (rc != BCT_OK) bct_fail(err, rc, "out of memory");
    else rc = run_file(m, f, max_sentences, 0, observe, &a, out, err);
    fclose(f);
    if (rc == BCT_OK && out->sentences == 0) rc = bct_fail(err, BCT_EINVAL, "%s: no calibration text", path);
    for (int i = 0; i < n_slots && rc == BCT_OK; i++) {
        if (!a.sum[i] || !a.rows[i]) continue;
        int cols = slots[i].cols;
        float *w = malloc((size_t)cols * sizeof(float));
        if (!w) {
            rc = bct_fail(err, BCT_ENOMEM, "out of memory");
            break;
        }
        double mean = 0;
        for (int c = 0; c < cols; c++) mean += a.sum[i][c] / (double)a.rows[i];
        mean /= cols;
        /* A floor keeps channels that calibration never excited from
         * being quantized as if they did not matter at all. */
        for (int c = 0; c < cols; c++) {
            double v = a.sum[i][c] / (double)a.rows[i];
            w[c] = (float)(v > 1e-2 * mean ? v : 1e-2 * mean);
        }
        out->col_weight[i] = w;
    }
    for (int i = 0; a.sum && i < n_slots; i++) free(a.sum[i]);
    free(a.sum);
    free(a.rows);
    if (rc != BCT_OK) calib_free(out);
    return rc;
}

void calib_free(calib_stats *s) {
    for (int i = 0; i < s->n_slots; i++) {
        if (s->col_weight) free(s->col_weight[i]);
        if (s->col_absmax) free(s->col_absmax[i]);
        if (s->rows) free(s->rows[i]);
    }
    free(s->col_weight);
    free(s->col_absmax);
    free(s->rows);
    free(s->n_rows);
    memset(s, 0, sizeof(*s));
}

typedef struct hess_accum {
    const bert_slot *slots;
    int n_slots;
    float **h;
} hess_accum;

static void observe_hessian(void *ud, const bert_linear *l, const float *x, int ldx, int rows) {
    hess_accum *a = ud;
    for (int i = 0; i < a->n_slots; i++) {
        if (a->slots[i].f != &l->w) continue;
        if (a->h[i])
            cblas_ssyrk(CblasRowMajor, CblasUpper, CblasTrans, l->in, rows, 1.0f, x, ldx, 1.0f, a->h[i], l->in);
        return;
    }
}

int calib_hessians(const bert_model *m, const bert_slot *slots, int n_slots, const char *path,
                   int max_sentences, const int *want, float **h, bct_error *err) {
    if (m->mode.act_int8) return bct_fail(err, BCT_EINVAL, "calibration needs the fp32 model");
    int rc = BCT_OK;
    for (int i = 0; i < n_slots; i++) h[i] = NULL;
    for (int i = 0; i < n_slots && rc == BCT_OK; i++)
        if (want[i] && slots[i].role == BERT_ROLE_WEIGHT &&
            !(h[i] = calloc((size_t)slots[i].cols * (size_t)slots[i].cols, sizeof(float))))
            rc = bct_fail(err, BCT_ENOMEM, "out of memory for the Hessian of %s", slots[i].name);
    FILE *f = rc == BCT_OK ? fopen(path, "rb") : NULL;
    if (rc == BCT_OK && !f) rc = bct_fail(err, BCT_EIO, "%s: %s", path, strerror(errno));
    if (rc == BCT_OK) {
        hess_accum a = {slots, n_slots, h};
        calib_stats counts = {0};
        rc = run_file(m, f, max_sentences, 0, observe_hessian, &a, &counts, err);
    }
    if (f) fclose(f);
    for (int i = 0; i < n_slots && rc == BCT_OK; i++) {
        int n = slots[i].cols;
        for (int r = 0; h[i] && r < n; r++) /* mirror the upper triangle down */
            for (int c = 0; c < r; c++) h[i][(size_t)r * n + c] = h[i][(size_t)c * n + r];
    }
    if (rc != BCT_OK)
        for (int i = 0; i < n_slots; i++) {
            free(h[i]);
            h[i] = NULL;
        }
    return rc;
}

int calib_run(const bert_model *m, const char *path, int max_sentences, int layers, bert_observer fn, void *ud,
              bct_error *err) {
    if (m->mode.act_int8) return bct_fail(err, BCT_EINVAL, "calibration needs the fp32 model");
    FILE *f = fopen(path, "rb");
    if (!f) return bct_fail(err, BCT_EIO, "%s: %s", path, strerror(errno));
    calib_stats counts = {0};
    int rc = run_file(m, f, max_sentences, layers, fn, ud, &counts, err);
    fclose(f);
    return rc;
}
