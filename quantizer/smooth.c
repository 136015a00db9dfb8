#include "smooth.h"

#include <cblas.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "formats/qcodec.h"
#include "kernels/qmat.h"

/* Exponents tried per Linear (besides no smoothing): SmoothQuant's 0.5
 * and the neighbourhood the IPEX/INC "auto" search covers. */
static const float alphas[] = {0.3f, 0.4f, 0.5f, 0.6f, 0.7f, 0.8f};
/* s is kept inside [1/S_LIMIT, S_LIMIT] times its geometric mean, so a
 * dead channel (max|x| = 0) cannot blow its weight column up. */
#define S_LIMIT 1e3f

/* x (n x cols) quantized to int8 blocks and back, as qact_scalar does. */
static void act_roundtrip(const float *x, int n, int cols, int block, float *out) {
    for (size_t r = 0; r < (size_t)n; r++)
        for (int b = 0; b < cols; b += block) {
            const float *xb = x + r * cols + b;
            float amax = 0;
            for (int i = 0; i < block; i++) amax = fmaxf(amax, fabsf(xb[i]));
            float scale = amax / 127.0f, inv = amax > 0 ? 127.0f / amax : 0;
            for (int i = 0; i < block; i++) out[r * cols + b + i] = scale * (float)lroundf(xb[i] * inv);
        }
}

double smooth_linear_error(const float *x, int n, const float *w, int rows, int cols, const float *s,
                           const bq_spec *asked, const float *col_weight, const float *y_ref) {
    /* As the engine runs it: the block fitted to the width, rows padded
     * with zero codes and inputs with zeros (kernels/qmat.h). */
    bq_spec fit = bq_fit(asked, cols);
    const bq_spec *spec = &fit;
    int len = qmat_padded_cols(cols);
    size_t nw = (size_t)rows * cols, nx = (size_t)n * len;
    float *ws = malloc(nw * sizeof(float)), *xs = calloc(nx + 1, sizeof(float)), *cw = NULL;
    float *wq = malloc((size_t)rows * len * sizeof(float) + 1);
    float *y = malloc((size_t)n * rows * sizeof(float));
    double e = INFINITY;
    if (col_weight && s) cw = malloc((size_t)cols * sizeof(float));
    if (!ws || !xs || !wq || !y || (col_weight && s && !cw)) goto done;
    for (int j = 0; col_weight && s && j < cols; j++) cw[j] = col_weight[j] / (s[j] * s[j]);
    for (size_t i = 0; i < nw; i++) ws[i] = s ? w[i] * s[i % cols] : w[i];
    bq_result q;
    bct_error err;
    if (bq_quantize(ws, rows, cols, spec, cw ? cw : col_weight, &q, &err) != BCT_OK) goto done;
    size_t bi = 0;
    for (size_t r = 0; r < (size_t)rows; r++)
        for (int c = 0; c < len; c += spec->block, bi++) {
            float d = qcodec_scale_decode(spec->scale, q.scales, bi, q.base);
            for (int k = 0; k < spec->block; k++) wq[r * len + c + k] = d * q.codes[r * len + c + k];
        }
    bq_result_free(&q);
    for (size_t r = 0; r < (size_t)n; r++)
        for (int c = 0; c < cols; c++) {
            float v = x[r * cols + c];
            xs[r * len + c] = s ? v / s[c] : v;
        }
    act_roundtrip(xs, n, len, spec->block, xs);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, n, rows, len, 1.0f, xs, len, wq, len, 0.0f, y, rows);
    double num = 0, den = 0;
    for (size_t i = 0; i < (size_t)n * rows; i++) {
        double d = (double)y[i] - y_ref[i];
        num += d * d;
        den += (double)y_ref[i] * y_ref[i];
    }
    e = den > 0 ? num / den : 0;
done:
    free(ws);
    free(xs);
    free(wq);
    free(y);
    free(cw);
    return e;
}

static int find_slot(const bert_slot *slots, int n, const char *name) {
    for (int i = 0; i < n; i++)
        if (strcmp(slots[i].name, name) == 0) return i;
    return -1;
}

/* s_j = max|x_j|^a / max_{rows of every w}|w_:,j|^(1-a), clamped. */
static void smoothing_factors(const float *xmax, const float *const *w, const int *rows, int nw, int cols,
                              float a, float *s) {
    double logsum = 0;
    int live = 0;
    for (int j = 0; j < cols; j++) {
        float wm = 0;
        for (int k = 0; k < nw; k++)
            for (int r = 0; r < rows[k]; r++) wm = fmaxf(wm, fabsf(w[k][(size_t)r * cols + j]));
        s[j] = xmax[j] > 0 && wm > 0 ? powf(xmax[j], a) / powf(wm, 1 - a) : 0;
        if (s[j] > 0) {
            logsum += log(s[j]);
            live++;
        }
    }
    float g = live ? (float)exp(logsum / live) : 1;
    for (int j = 0; j < cols; j++)
        s[j] = s[j] <= 0 ? g : fminf(fmaxf(s[j], g / S_LIMIT), g * S_LIMIT);
}

/* y = x w^T (n x rows), no bias: the reference output of the search. */
static float *reference(const float *x, int n, const float *w, int rows, int cols) {
    float *y = malloc((size_t)n * rows * sizeof(float) + 1);
    if (y) cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, n, rows, cols, 1.0f, x, cols, w, cols, 0.0f, y, rows);
    return y;
}

/* Chooses s for the Linears idx[0..nw) that share one input (slot idx[0]'s
 * calibration rows).  *s_out = NULL when no smoothing wins. */
static int search(const bert_slot *slots, const calib_stats *c, const int *idx, int nw, const bq_spec *spec,
                  float fixed_alpha, float **s_out, float *alpha_out, double *before, double *after) {
    int i0 = idx[0], cols = slots[i0].cols, n = c->n_rows[i0];
    const float *x = c->rows[i0];
    const float *w[3];
    int rows[3];
    float *y[3] = {0};
    float *s = malloc((size_t)cols * sizeof(float)), *best = malloc((size_t)cols * sizeof(float));
    int rc = s && best ? BCT_OK : BCT_ENOMEM;
    for (int k = 0; k < nw; k++) {
        w[k] = *slots[idx[k]].f;
        rows[k] = slots[idx[k]].rows;
        if (rc == BCT_OK && !(y[k] = reference(x, n, w[k], rows[k], cols))) rc = BCT_ENOMEM;
    }
    *s_out = NULL;
    *alpha_out = -1;
    if (rc != BCT_OK || n == 0) goto done;
    double e0 = 0;
    for (int k = 0; k < nw; k++)
        e0 += smooth_linear_error(x, n, w[k], rows[k], cols, NULL, spec, c->col_weight[idx[k]], y[k]);
    double best_e = fixed_alpha > 0 ? INFINITY : e0;
    int na = fixed_alpha > 0 ? 1 : (int)(sizeof(alphas) / sizeof(alphas[0]));
    for (int ai = 0; ai < na; ai++) {
        float a = fixed_alpha > 0 ? fixed_alpha : alphas[ai];
        smoothing_factors(c->col_absmax[i0], w, rows, nw, cols, a, s);
        double e = 0;
        for (int k = 0; k < nw; k++)
            e += smooth_linear_error(x, n, w[k], rows[k], cols, s, spec, c->col_weight[idx[k]], y[k]);
        if (e < best_e) {
            best_e = e;
            *alpha_out = a;
            memcpy(best, s, (size_t)cols * sizeof(float));
        }
    }
    *before = e0 / nw;
    *after = best_e / nw;
    if (*alpha_out >= 0) {
        *s_out = best;
        best = NULL;
    }
done:
    for (int k = 0; k < nw; k++) free(y[k]);
    free(s);
    free(best);
    return rc;
}

static float *inverse(const float *s, int n) {
    float *v = malloc((size_t)n * sizeof(float));
    for (int j = 0; v && j < n; j++) v[j] = 1.0f / s[j];
    return v;
}

/* Per head dimension: query row j x t_j, key row j / t_j, with
 * t_j = sqrt(max|k_j| / max|q_j|) over the calibration rows (bias
 * included, as the engine computes q and k). */
static int balance_qk(const bert_slot *slots, const calib_stats *c, int iq, int ik, smooth_plan *p) {
    /* The key's rows: in the last layer the query sees only [CLS] rows. */
    int H = slots[iq].rows, cols = slots[iq].cols, n = c->n_rows[ik];
    if (n == 0) return BCT_OK;
    float *yq = reference(c->rows[ik], n, *slots[iq].f, H, cols);
    float *yk = reference(c->rows[ik], n, *slots[ik].f, H, cols);
    float *tq = malloc((size_t)H * sizeof(float)), *tk = malloc((size_t)H * sizeof(float));
    if (!yq || !yk || !tq || !tk) {
        free(yq), free(yk), free(tq), free(tk);
        return BCT_ENOMEM;
    }
    const float *bq = *slots[iq + 1].f, *bk = *slots[ik + 1].f;
    for (int j = 0; j < H; j++) {
        float mq = 0, mk = 0;
        for (int r = 0; r < n; r++) {
            mq = fmaxf(mq, fabsf(yq[(size_t)r * H + j] + bq[j]));
            mk = fmaxf(mk, fabsf(yk[(size_t)r * H + j] + bk[j]));
        }
        float t = mq > 0 && mk > 0 ? sqrtf(mk / mq) : 1;
        t = fminf(fmaxf(t, 1 / S_LIMIT), S_LIMIT);
        tq[j] = t;
        tk[j] = 1 / t;
    }
    free(yq);
    free(yk);
    float *copies[2] = {malloc((size_t)H * sizeof(float)), malloc((size_t)H * sizeof(float))};
    if (!copies[0] || !copies[1]) {
        free(copies[0]), free(copies[1]), free(tq), free(tk);
        return BCT_ENOMEM;
    }
    memcpy(copies[0], tq, (size_t)H * sizeof(float));
    memcpy(copies[1], tk, (size_t)H * sizeof(float));
    p->slot[iq].row_mul = tq;
    p->slot[iq + 1].row_mul = copies[0]; /* the bias */
    p->slot[ik].row_mul = tk;
    p->slot[ik + 1].row_mul = copies[1];
    return BCT_OK;
}

int smooth_plan_make(const bert_model *m, const bert_slot *slots, int n_slots, const calib_stats *calib,
                     const bq_spec *weights, float alpha, smooth_plan *out, bct_error *err) {
    memset(out, 0, sizeof(*out));
    if (!calib->rows || !calib->col_absmax)
        return bct_fail(err, BCT_EINVAL, "smoothing needs calibration rows");
    out->n_slots = n_slots;
    out->slot = calloc((size_t)n_slots, sizeof(smooth_slot));
    if (!out->slot) return bct_fail(err, BCT_ENOMEM, "out of memory");
    for (int i = 0; i < n_slots; i++) out->slot[i].alpha = -1;
    if (weights->bits == 32) return BCT_OK; /* fp32 weights take fp32 inputs */
    char name[128];
    int rc = BCT_OK;
#define SLOT(fmt, ...) (snprintf(name, sizeof(name), fmt, __VA_ARGS__), find_slot(slots, n_slots, name))
    for (int li = 0; li <= m->cfg.layers && rc == BCT_OK; li++) {
        int groups[4][3], ng[4], owner[4], nset = 0;
        if (li < m->cfg.layers) {
            const char *p = "bert.encoder.layer";
            int q = SLOT("%s.%d.attention.self.query.weight", p, li);
            int k = SLOT("%s.%d.attention.self.key.weight", p, li);
            int v = SLOT("%s.%d.attention.self.value.weight", p, li);
            int o = SLOT("%s.%d.attention.output.dense.weight", p, li);
            int fi = SLOT("%s.%d.intermediate.dense.weight", p, li);
            int fo = SLOT("%s.%d.output.dense.weight", p, li);
            if (q < 0 || k < 0 || v < 0 || o < 0 || fi < 0 || fo < 0) {
                rc = bct_fail(err, BCT_EINVAL, "layer %d: Linear weights not found", li);
                break;
            }
            if ((rc = balance_qk(slots, calib, q, k, out)) != BCT_OK) break;
            /* key first: the engine quantizes the shared input for it */
            groups[0][0] = k, groups[0][1] = q, groups[0][2] = v, ng[0] = 3, owner[0] = k;
            groups[1][0] = o, ng[1] = 1, owner[1] = -1; /* folded into value */
            groups[2][0] = fi, ng[2] = 1, owner[2] = fi;
            groups[3][0] = fo, ng[3] = 1, owner[3] = fo;
            nset = 4;
        } else {
            int pl = SLOT("%s", "bert.pooler.dense.weight");
            if (pl >= 0) groups[0][0] = pl, ng[0] = 1, owner[0] = pl, nset = 1;
        }
        for (int g = 0; g < nset && rc == BCT_OK; g++) {
            float *s, a;
            double before = 0, after = 0;
            if ((rc = search(slots, calib, groups[g], ng[g], weights, alpha, &s, &a, &before, &after)) != BCT_OK)
                break;
            for (int k = 0; k < ng[g]; k++) {
                smooth_slot *ss = &out->slot[groups[g][k]];
                ss->alpha = a;
                ss->err_before = before;
                ss->err_after = after;
            }
            if (!s) continue;
            int cols = slots[groups[g][0]].cols;
            if (owner[g] < 0) {
                /* attention output: context / s comes from value rows / s. */
                int v = groups[0][2];
                float *rv = inverse(s, cols), *rb = inverse(s, cols);
                if (!rv || !rb) {
                    free(rv), free(rb), free(s);
                    rc = BCT_ENOMEM;
                    break;
                }
                float *old = out->slot[v].row_mul;
                out->slot[v].row_mul = rv;
                out->slot[v + 1].row_mul = rb;
                free(old);
                out->slot[groups[g][0]].col_mul = s;
                continue;
            }
            float *act = inverse(s, cols);
            if (!act) {
                free(s);
                rc = BCT_ENOMEM;
                break;
            }
            for (int k = 0; k < ng[g]; k++) {
                smooth_slot *ss = &out->slot[groups[g][k]];
                ss->col_mul = k == 0 ? s : malloc((size_t)cols * sizeof(float));
                if (!ss->col_mul) {
                    rc = BCT_ENOMEM;
                    break;
                }
                if (k) memcpy(ss->col_mul, s, (size_t)cols * sizeof(float));
                ss->act_scale = act;
                ss->act_owner = k == 0;
                snprintf(ss->act_blob, sizeof(ss->act_blob), "%s.act_scale", slots[owner[g]].name);
            }
        }
    }
#undef SLOT
    if (rc != BCT_OK) {
        smooth_plan_free(out);
        return bct_fail(err, rc, "out of memory planning the smoothing");
    }
    return BCT_OK;
}

void smooth_plan_free(smooth_plan *p) {
    for (int i = 0; p->slot && i < p->n_slots; i++) {
        free(p->slot[i].col_mul);
        free(p->slot[i].row_mul);
        if (p->slot[i].act_owner) free((void *)p->slot[i].act_scale);
    }
    free(p->slot);
    memset(p, 0, sizeof(*p));
}

int smooth_apply(const smooth_plan *p, const bert_slot *slots, int i, const float **out, float **owned) {
    const bert_slot *s = &slots[i];
    *out = *s->f;
    *owned = NULL;
    const smooth_slot *ss = p && p->slot ? &p->slot[i] : NULL;
    if (!ss || (!ss->col_mul && !ss->row_mul)) return BCT_OK;
    int rows = s->rows, cols = s->cols ? s->cols : 1;
    float *d = malloc((size_t)rows * cols * sizeof(float));
    if (!d) return BCT_ENOMEM;
    for (int r = 0; r < rows; r++)
        for (int c = 0; c < cols; c++) {
            float v = (*s->f)[(size_t)r * cols + c];
            if (ss->row_mul) v *= ss->row_mul[r];
            if (ss->col_mul) v *= ss->col_mul[c];
            d[(size_t)r * cols + c] = v;
        }
    *out = d;
    *owned = d;
    return BCT_OK;
}
