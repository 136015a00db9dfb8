#include "prune.h"

#include <cblas.h>
#include <cjson/cJSON.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "calibrate.h"
#include "model/bert_forward.h"

/* LAPACK (OpenBLAS ships it): Cholesky factor and solve. */
void dpotrf_(const char *uplo, const int *n, double *a, const int *lda, int *info);
void dpotrs_(const char *uplo, const int *n, const int *nrhs, const double *a, const int *lda, double *b,
             const int *ldb, int *info);

/* Ridge of the refit, relative to the mean diagonal of the kept inputs'
 * Gram (GPTQ's 1% damping): pulls towards the original weights, so
 * columns calibration never excites keep their values. */
#define PRUNE_RIDGE 0.01
/* Ridge growth when the Gram is not positive definite, and the tries. */
#define PRUNE_RIDGE_RETRIES 6

/* Sums over the calibration rows seen by one Linear: x^T x (upper
 * triangle, float, as calib_hessians), column sums, row count. */
typedef struct gram {
    const bert_linear *l;
    int in;
    float *g;    /* [in][in] */
    double *sum; /* [in] */
    long long n;
} gram;

static void observe(void *ud, const bert_linear *l, const float *x, int ldx, int rows) {
    gram *gs = ud;
    for (int k = 0; k < 2; k++) {
        gram *g = &gs[k];
        if (g->l != l || !g->g) continue;
        cblas_ssyrk(CblasRowMajor, CblasUpper, CblasTrans, g->in, rows, 1.0f, x, ldx, 1.0f, g->g, g->in);
        for (int r = 0; r < rows; r++)
            for (int c = 0; c < g->in; c++) g->sum[c] += x[(size_t)r * ldx + c];
        g->n += rows;
    }
}

static void gram_free(gram *g) {
    free(g->g);
    free(g->sum);
    memset(g, 0, sizeof(*g));
}

static int gram_init(gram *g, const bert_linear *l) {
    g->l = l;
    g->in = l->in;
    g->n = 0;
    g->g = calloc((size_t)l->in * (size_t)l->in, sizeof(float));
    g->sum = calloc((size_t)l->in, sizeof(double));
    return g->g && g->sum ? BCT_OK : BCT_ENOMEM;
}

static void gram_mirror(gram *g) {
    for (int r = 0; r < g->in; r++)
        for (int c = 0; c < r; c++) g->g[(size_t)r * g->in + c] = g->g[(size_t)c * g->in + r];
}

/* Output-contribution importance of `count` groups of `width` adjacent
 * input columns of l (heads: width hidden / heads; neurons: 1): for group
 * S, sum over i, j in S of Cov(x)_ij (W^T W)_ij, i.e. the variance of the
 * group's share of the output. */
static void group_scores(const gram *g, int width, int count, double *score) {
    const bert_linear *l = g->l;
    double n = (double)g->n;
    for (int s = 0; s < count; s++) {
        double acc = 0;
        for (int a = s * width; a < (s + 1) * width; a++)
            for (int b = s * width; b < (s + 1) * width; b++) {
                double cov = g->g[(size_t)a * g->in + b] / n - (g->sum[a] / n) * (g->sum[b] / n), m = 0;
                for (int r = 0; r < l->out; r++) m += (double)l->w[(size_t)r * l->in + a] * l->w[(size_t)r * l->in + b];
                acc += cov * m;
            }
        score[s] = acc;
    }
}

typedef struct ranked {
    double score;
    int idx;
} ranked;

static int by_score_desc(const void *a, const void *b) {
    const ranked *x = a, *y = b;
    if (x->score != y->score) return x->score < y->score ? 1 : -1;
    return x->idx - y->idx;
}

static int by_int(const void *a, const void *b) { return *(const int *)a - *(const int *)b; }

/* The `keep` best-scored of `count` groups, ascending, into kept. */
static int select_groups(const double *score, int count, int keep, int *kept) {
    ranked *r = malloc((size_t)count * sizeof(ranked) + 1);
    if (!r) return BCT_ENOMEM;
    for (int i = 0; i < count; i++) r[i] = (ranked){score[i], i};
    qsort(r, (size_t)count, sizeof(ranked), by_score_desc);
    for (int i = 0; i < keep; i++) kept[i] = r[i].idx;
    qsort(kept, (size_t)keep, sizeof(int), by_int);
    free(r);
    return BCT_OK;
}

/* Sum over the calibration rows of ||[x 1] D||^2 with D = [dw; db]
 * (dw [in][out] as W^T, db [out]): tr(dw^T G dw) + 2 sum^T dw db + n |db|^2. */
static int quad_err(const gram *g, const float *dw, const double *db, int out, double *res) {
    int in = g->in;
    float *p = malloc((size_t)in * (size_t)out * sizeof(float) + 1);
    if (!p) return BCT_ENOMEM;
    cblas_ssymm(CblasRowMajor, CblasLeft, CblasUpper, in, out, 1.0f, g->g, in, dw, out, 0.0f, p, out);
    double t = 0, cross = 0, bb = 0;
    for (size_t i = 0; i < (size_t)in * (size_t)out; i++) t += (double)dw[i] * p[i];
    for (int o = 0; o < out; o++) {
        double sd = 0;
        for (int i = 0; i < in; i++) sd += g->sum[i] * dw[(size_t)i * out + o];
        cross += sd * db[o];
        bb += db[o] * db[o];
    }
    free(p);
    *res = t + 2 * cross + (double)g->n * bb;
    return BCT_OK;
}

/* The output Linear l over kept columns cols[0..k): refitted weight
 * w2 [out][k] and bias b2 [out] minimising sum ||[x_K 1][w2 b2]^T -
 * [x 1][W b]^T||^2 + ridge ||w2 - W_K||^2.  Also the relative errors of
 * plain removal and of the refit.  Pointers in *w2 / *b2 are malloc'd. */
static int refit(const gram *g, const int *cols, int k, float **w2, float **b2, double *removed, double *refitted) {
    const bert_linear *l = g->l;
    int in = g->in, out = l->out, K = k + 1, rc = BCT_ENOMEM;
    double n = (double)g->n;
    double *A = malloc((size_t)K * K * sizeof(double)), *Af = malloc((size_t)K * K * sizeof(double));
    double *B = malloc((size_t)out * K * sizeof(double)); /* [out][K]: column-major K x out */
    float *gk = malloc((size_t)(k ? k : 1) * in * sizeof(float)), *wt = malloc((size_t)in * out * sizeof(float));
    float *bk = malloc((size_t)(k ? k : 1) * out * sizeof(float)), *dw = malloc((size_t)in * out * sizeof(float));
    double *db = malloc((size_t)out * sizeof(double)), *mw = malloc((size_t)out * sizeof(double));
    *w2 = malloc((size_t)out * (k ? k : 1) * sizeof(float));
    *b2 = malloc((size_t)out * sizeof(float));
    if (!A || !Af || !B || !gk || !wt || !bk || !dw || !db || !mw || !*w2 || !*b2) goto done;
    for (int i = 0; i < in; i++)
        for (int o = 0; o < out; o++) wt[(size_t)i * out + o] = l->w[(size_t)o * in + i];
    /* A = [G_KK s_K; s_K^T n] */
    double diag = 0;
    for (int a = 0; a < k; a++) {
        for (int b = 0; b < k; b++) A[(size_t)a * K + b] = g->g[(size_t)cols[a] * in + cols[b]];
        A[(size_t)a * K + k] = A[(size_t)k * K + a] = g->sum[cols[a]];
        diag += A[(size_t)a * K + a];
    }
    A[(size_t)k * K + k] = n;
    /* B = [G_K,: s_K; s^T n] [W^T; b^T], the kept rows in float via sgemm. */
    for (int a = 0; a < k; a++) memcpy(gk + (size_t)a * in, g->g + (size_t)cols[a] * in, (size_t)in * sizeof(float));
    if (k) cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, k, out, in, 1.0f, gk, in, wt, out, 0.0f, bk, out);
    for (int o = 0; o < out; o++) {
        double sw = 0;
        for (int i = 0; i < in; i++) sw += g->sum[i] * wt[(size_t)i * out + o];
        mw[o] = sw / n; /* the mean of x W^T */
        for (int a = 0; a < k; a++) B[(size_t)o * K + a] = bk[(size_t)a * out + o] + g->sum[cols[a]] * l->b[o];
        B[(size_t)o * K + k] = sw + n * l->b[o];
    }
    double lambda = k ? PRUNE_RIDGE * diag / k : 0;
    int info = 1;
    for (int t = 0; t < PRUNE_RIDGE_RETRIES; t++) {
        memcpy(Af, A, (size_t)K * K * sizeof(double));
        for (int a = 0; a < k; a++) Af[(size_t)a * K + a] += lambda;
        dpotrf_("U", &K, Af, &K, &info);
        if (!info) break;
        lambda = lambda > 0 ? lambda * 10 : 1e-6 * n;
    }
    if (info) {
        rc = BCT_EINVAL;
        goto done;
    }
    /* The ridge's pull towards the original kept weights. */
    for (int o = 0; o < out; o++)
        for (int a = 0; a < k; a++) B[(size_t)o * K + a] += lambda * l->w[(size_t)o * in + cols[a]];
    dpotrs_("U", &K, &out, Af, &K, B, &K, &info);
    if (info) {
        rc = BCT_EINVAL;
        goto done;
    }
    for (int o = 0; o < out; o++) {
        for (int a = 0; a < k; a++) (*w2)[(size_t)o * k + a] = (float)B[(size_t)o * K + a];
        (*b2)[o] = (float)B[(size_t)o * K + k];
    }
    /* Errors, as D = [W^T; b^T] - (the kept rows replaced) over [x 1]. */
    double var, e_rm, e_fit;
    for (int o = 0; o < out; o++) db[o] = -mw[o];
    if ((rc = quad_err(g, wt, db, out, &var)) != BCT_OK) goto done;
    memcpy(dw, wt, (size_t)in * out * sizeof(float));
    for (int a = 0; a < k; a++) memset(dw + (size_t)cols[a] * out, 0, (size_t)out * sizeof(float));
    for (int o = 0; o < out; o++) db[o] = 0;
    if ((rc = quad_err(g, dw, db, out, &e_rm)) != BCT_OK) goto done;
    for (int a = 0; a < k; a++)
        for (int o = 0; o < out; o++)
            dw[(size_t)cols[a] * out + o] = wt[(size_t)cols[a] * out + o] - (*w2)[(size_t)o * k + a];
    for (int o = 0; o < out; o++) db[o] = l->b[o] - (*b2)[o];
    if ((rc = quad_err(g, dw, db, out, &e_fit)) != BCT_OK) goto done;
    *removed = var > 0 ? e_rm / var : 0;
    *refitted = var > 0 ? e_fit / var : 0;
    rc = BCT_OK;
done:
    free(A);
    free(Af);
    free(B);
    free(gk);
    free(wt);
    free(bk);
    free(dw);
    free(db);
    free(mw);
    if (rc != BCT_OK) {
        free(*w2);
        free(*b2);
        *w2 = *b2 = NULL;
    }
    return rc;
}

static int keep_buf(prune_result *res, void *p) {
    void **o = realloc(res->owned, (size_t)(res->n_owned + 1) * sizeof(void *));
    if (!o) {
        free(p);
        return BCT_ENOMEM;
    }
    res->owned = o;
    res->owned[res->n_owned++] = p;
    return BCT_OK;
}

/* l keeps the input rows of `groups` (kept[] of `width` rows each): its
 * weight rows and bias entries, copied into buffers owned by res. */
static int keep_rows(prune_result *res, bert_linear *l, const int *kept, int groups, int width) {
    int rows = groups * width;
    if (!rows) {
        *l = (bert_linear){0};
        return BCT_OK;
    }
    float *w = malloc((size_t)rows * l->in * sizeof(float)), *b = malloc((size_t)rows * sizeof(float));
    if (!w || !b) {
        free(w);
        free(b);
        return BCT_ENOMEM;
    }
    if (keep_buf(res, w) || keep_buf(res, b)) return BCT_ENOMEM;
    for (int gi = 0; gi < groups; gi++)
        for (int r = 0; r < width; r++) {
            int src = kept[gi] * width + r, dst = gi * width + r;
            memcpy(w + (size_t)dst * l->in, l->w + (size_t)src * l->in, (size_t)l->in * sizeof(float));
            b[dst] = l->b[src];
        }
    l->w = w;
    l->b = b;
    l->out = rows;
    return BCT_OK;
}

/* Prunes one sub-block: the input Linears `ins` (Q, K, V, or the FFN
 * input) keep the rows of the kept groups; the output Linear (g->l) gets
 * the refit over their columns. */
static int prune_block(prune_result *res, gram *g, bert_linear **ins, int n_ins, int width, int count, int keep,
                       int *kept, double *removed, double *refitted, bct_error *err) {
    bert_linear *out = (bert_linear *)g->l;
    double *score = malloc((size_t)count * sizeof(double));
    int *cols = malloc((size_t)(keep ? keep : 1) * width * sizeof(int)), rc;
    if (!score || !cols) {
        free(score);
        free(cols);
        return bct_fail(err, BCT_ENOMEM, "out of memory pruning");
    }
    gram_mirror(g);
    group_scores(g, width, count, score);
    rc = select_groups(score, count, keep, kept);
    for (int a = 0; a < keep; a++)
        for (int r = 0; r < width; r++) cols[a * width + r] = kept[a] * width + r;
    float *w2 = NULL, *b2 = NULL;
    if (rc == BCT_OK) rc = refit(g, cols, keep * width, &w2, &b2, removed, refitted);
    free(score);
    free(cols);
    if (rc == BCT_EINVAL) return bct_fail(err, rc, "pruning: the calibration inputs' Gram is singular");
    if (rc != BCT_OK) return bct_fail(err, rc, "out of memory pruning");
    if (keep_buf(res, w2) || keep_buf(res, b2)) return bct_fail(err, BCT_ENOMEM, "out of memory pruning");
    for (int i = 0; i < n_ins; i++)
        if (keep_rows(res, ins[i], kept, keep, width)) return bct_fail(err, BCT_ENOMEM, "out of memory pruning");
    out->w = keep ? w2 : NULL;
    out->b = b2;
    out->in = keep * width;
    return BCT_OK;
}

static int kept_count(int n, double frac) {
    int k = (int)lround((1.0 - frac) * n);
    return k < 0 ? 0 : k > n ? n : k;
}

int prune_model(bert_model *m, const char *calib, int max_sentences, double head_frac, double ffn_frac,
                prune_result *res, bct_error *err) {
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    memset(res, 0, sizeof(*res));
    bert_config *c = &m->cfg;
    if (!(head_frac >= 0 && head_frac <= 1 && ffn_frac >= 0 && ffn_frac <= 1))
        return bct_fail(err, BCT_EINVAL, "pruning fractions must be in [0, 1]");
    if (c->layer_heads || c->layer_inter) return bct_fail(err, BCT_EINVAL, "the model is already pruned");
    if (m->mode.act_int8 || !m->layer[0].attn_out.w)
        return bct_fail(err, BCT_EINVAL, "pruning needs the fp32 model");
    res->layers = c->layers;
    res->layer = calloc((size_t)c->layers, sizeof(prune_layer));
    c->layer_heads = malloc((size_t)c->layers * sizeof(int));
    c->layer_inter = malloc((size_t)c->layers * sizeof(int));
    if (!res->layer || !c->layer_heads || !c->layer_inter) {
        prune_result_free(res);
        return bct_fail(err, BCT_ENOMEM, "out of memory");
    }
    for (int l = 0; l < c->layers; l++) {
        c->layer_heads[l] = c->heads;
        c->layer_inter[l] = c->intermediate;
    }
    int dh = c->hidden / c->heads, rc = BCT_OK;
    int kh = kept_count(c->heads, head_frac), ki = kept_count(c->intermediate, ffn_frac);
    for (int l = 0; l < c->layers && rc == BCT_OK; l++) {
        bert_layer *L = &m->layer[l];
        prune_layer *pl = &res->layer[l];
        gram g[2] = {{0}};
        pl->heads = c->heads;
        pl->inter = c->intermediate;
        if (!(pl->kept_heads = malloc((size_t)c->heads * sizeof(int)))) rc = BCT_ENOMEM;
        for (int h = 0; rc == BCT_OK && h < c->heads; h++) pl->kept_heads[h] = h;
        if (rc == BCT_OK && kh < c->heads) rc = gram_init(&g[0], &L->attn_out);
        if (rc == BCT_OK && ki < c->intermediate) rc = gram_init(&g[1], &L->ffn_out);
        if (rc != BCT_OK) {
            rc = bct_fail(err, BCT_ENOMEM, "out of memory");
        } else if (g[0].g || g[1].g) {
            rc = calib_run(m, calib, max_sentences, l + 1, observe, g, err); /* layers past l: not needed */
            if (rc == BCT_OK && (g[0].g ? g[0].n : g[1].n) == 0)
                rc = bct_fail(err, BCT_EINVAL, "%s: no calibration text", calib);
        }
        if (rc == BCT_OK && g[0].g) {
            bert_linear *ins[3] = {&L->query, &L->key, &L->value};
            rc = prune_block(res, &g[0], ins, 3, dh, c->heads, kh, pl->kept_heads, &pl->attn_removed, &pl->attn_refit,
                             err);
            pl->heads = c->layer_heads[l] = kh;
        }
        if (rc == BCT_OK && g[1].g) {
            bert_linear *ins[1] = {&L->ffn_in};
            int *kept = malloc((size_t)c->intermediate * sizeof(int));
            rc = kept ? prune_block(res, &g[1], ins, 1, 1, c->intermediate, ki, kept, &pl->ffn_removed, &pl->ffn_refit, err)
                      : bct_fail(err, BCT_ENOMEM, "out of memory");
            free(kept);
            pl->inter = c->layer_inter[l] = ki;
        }
        gram_free(&g[0]);
        gram_free(&g[1]);
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    res->seconds = (double)(t1.tv_sec - t0.tv_sec) + (t1.tv_nsec - t0.tv_nsec) * 1e-9;
    return rc;
}

void prune_result_free(prune_result *res) {
    for (int l = 0; res->layer && l < res->layers; l++) free(res->layer[l].kept_heads);
    for (int i = 0; i < res->n_owned; i++) free(res->owned[i]);
    free(res->layer);
    free(res->owned);
    memset(res, 0, sizeof(*res));
}

cJSON *prune_meta(const bert_model *m, const prune_result *res) {
    const bert_config *c = &m->cfg;
    cJSON *p = cJSON_CreateObject();
    cJSON *h = cJSON_AddArrayToObject(p, "heads"), *in = cJSON_AddArrayToObject(p, "intermediate");
    cJSON *kept = cJSON_AddArrayToObject(p, "kept_heads"), *e = cJSON_AddArrayToObject(p, "error");
    for (int l = 0; l < c->layers; l++) {
        const prune_layer *pl = &res->layer[l];
        cJSON_AddItemToArray(h, cJSON_CreateNumber(pl->heads));
        cJSON_AddItemToArray(in, cJSON_CreateNumber(pl->inter));
        cJSON_AddItemToArray(kept, cJSON_CreateIntArray(pl->kept_heads, pl->heads));
        cJSON *le = cJSON_CreateObject();
        cJSON_AddNumberToObject(le, "attention_removed", pl->attn_removed);
        cJSON_AddNumberToObject(le, "attention_refit", pl->attn_refit);
        cJSON_AddNumberToObject(le, "ffn_removed", pl->ffn_removed);
        cJSON_AddNumberToObject(le, "ffn_refit", pl->ffn_refit);
        cJSON_AddItemToArray(e, le);
    }
    cJSON_AddStringToObject(p, "method", "output-contribution scores, least-squares refit of the output Linear "
                                         "(Kwon et al. 2022 layer-wise reconstruction)");
    if (cJSON_GetArraySize(p) != 5 || cJSON_GetArraySize(kept) != c->layers) {
        cJSON_Delete(p);
        return NULL;
    }
    return p;
}
