#include "gptq.h"

#include <cblas.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "formats/qcodec.h"
#include "kernels/qmat.h"

/* LAPACK (OpenBLAS exports it): Cholesky factor and inverse from it. */
void dpotrf_(const char *uplo, const int *n, double *a, const int *lda, int *info);
void dpotri_(const char *uplo, const int *n, double *a, const int *lda, int *info);

/* The upper Cholesky factor U of H^-1 (H^-1 = U^T U), column-major in a:
 * U(i, k) = a[i + k n]. */
static int inverse_cholesky(double *a, int n) {
    int info;
    dpotrf_("L", &n, a, &n, &info);
    if (info) return info;
    dpotri_("L", &n, a, &n, &info);
    if (info) return info;
    for (int j = 0; j < n; j++) /* mirror the lower triangle up */
        for (int i = j + 1; i < n; i++) a[j + (size_t)i * n] = a[i + (size_t)j * n];
    dpotrf_("U", &n, a, &n, &info);
    return info;
}

static double round_away(double v) { return v < 0 ? -floor(-v + 0.5) : floor(v + 0.5); }

/* Scale of one block of (updated) weights x[0..n), weights h: the
 * candidates of blockquant.c, the h-weighted squared error. */
static uint32_t block_scale(const double *x, int n, const double *h, const bq_spec *spec, float base,
                            float *d_out) {
    int lo = qcodec_code_min(spec->bits), hi = qcodec_code_max(spec->bits);
    double amax = 0;
    for (int i = 0; i < n; i++) amax = fmax(amax, fabs(x[i]));
    float d, last = -1;
    uint32_t best_code = qcodec_scale_encode(spec->scale, 0, base, &d);
    *d_out = d;
    if (amax == 0) return best_code;
    int steps = spec->bits >= 8 ? 8 : 32;
    double best = INFINITY;
    for (int k = 0; k < steps; k++) {
        float target = (float)amax * (1.0f - 0.5f * (float)k / (float)steps) / (float)hi;
        uint32_t code = qcodec_scale_encode(spec->scale, target, base, &d);
        if (d == last || !(d > 0)) continue;
        last = d;
        double e = 0;
        for (int i = 0; i < n; i++) {
            double q = round_away(x[i] / d);
            q = q < lo ? lo : q > hi ? hi : q;
            double r = x[i] - (double)d * q;
            e += h[i] * r * r;
        }
        if (e < best) {
            best = e;
            best_code = code;
            *d_out = d;
        }
    }
    return best_code;
}

/* GPTQ on rows whose width cols is a whole number of blocks. */
static int gptq_core(const float *w, int rows, int cols, double *h, const bq_spec *spec, bq_result *r,
                     bct_error *err) {
    memset(r, 0, sizeof(*r));
    int rc = bq_spec_ok(spec, err);
    if (rc != BCT_OK) return rc;
    if (cols < 1 || cols % spec->block)
        return bct_fail(err, BCT_EINVAL, "block size %d does not divide rows of %d", spec->block, cols);
    int B = spec->block, lo = qcodec_code_min(spec->bits), hi = qcodec_code_max(spec->bits);
    size_t n = (size_t)cols, nw = (size_t)rows * n;
    size_t nblocks = (size_t)rows * (size_t)(cols / B);
    double *W = malloc(nw * sizeof(double)), *U = h;
    double *E = malloc((size_t)rows * B * sizeof(double)), *diag = malloc(n * sizeof(double));
    float *d = malloc((size_t)rows * sizeof(float));
    r->codes = malloc(nw + 1);
    r->scales = malloc(qcodec_scales_bytes(spec->scale, nblocks) + 1);
    if (!W || !E || !diag || !d || !r->codes || !r->scales) {
        rc = bct_fail(err, BCT_ENOMEM, "out of memory quantizing a %dx%d tensor (GPTQ)", rows, cols);
        goto done;
    }
    float amax = 0;
    for (size_t i = 0; i < nw; i++) {
        W[i] = w[i];
        amax = fmaxf(amax, fabsf(w[i]));
        r->sq_sum += (double)w[i] * w[i];
    }
    r->base = amax > 0 ? amax / (float)hi : 1.0f;
    double mean = 0;
    for (size_t j = 0; j < n; j++) {
        if (U[j * n + j] == 0) { /* never excited: no information, weight 0 */
            U[j * n + j] = 1;
            for (int row = 0; row < rows; row++) W[(size_t)row * n + j] = 0;
        }
        mean += U[j * n + j];
    }
    mean = GPTQ_DAMP * mean / (double)n;
    for (size_t j = 0; j < n; j++) diag[j] = U[j * n + j] += mean;
    if (inverse_cholesky(U, cols) != 0) {
        rc = bct_fail(err, BCT_EINVAL, "GPTQ: the calibration Hessian is not positive definite");
        goto done;
    }
    for (int c0 = 0; c0 < cols; c0 += B) {
        int c1 = c0 + B;
        size_t bi0 = (size_t)(c0 / B);
        for (int row = 0; row < rows; row++) {
            uint32_t code = block_scale(W + (size_t)row * n + c0, B, diag + c0, spec, r->base, &d[row]);
            qcodec_scale_store(spec->scale, r->scales, (size_t)row * (cols / B) + bi0, code);
        }
        for (int j = c0; j < c1; j++) {
            double ujj = U[j + (size_t)j * n];
            for (int row = 0; row < rows; row++) {
                double *wr = W + (size_t)row * n;
                double q = d[row] > 0 ? round_away(wr[j] / d[row]) : 0;
                q = q < lo ? lo : q > hi ? hi : q;
                r->codes[(size_t)row * n + j] = (int8_t)q;
                double e = (wr[j] - (double)d[row] * q) / ujj;
                E[(size_t)row * B + (j - c0)] = e;
                for (int k = j + 1; k < c1; k++) wr[k] -= e * U[j + (size_t)k * n];
            }
        }
        /* The rest of every row: W[:, c1:] -= E U[c0:c1, c1:]. */
        if (c1 < cols)
            cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasTrans, rows, cols - c1, B, -1.0, E, B,
                        U + (size_t)c1 * n + c0, (int)n, 1.0, W + c1, (int)n);
    }
    size_t bi = 0;
    for (int row = 0; row < rows; row++)
        for (int c = 0; c < cols; c += B, bi++) {
            float dd = qcodec_scale_decode(spec->scale, r->scales, bi, r->base);
            for (int k = 0; k < B; k++) {
                size_t i = (size_t)row * n + c + k;
                double e = (double)w[i] - (double)dd * r->codes[i];
                r->sq_err += e * e;
            }
        }
done:
    free(W);
    free(E);
    free(diag);
    free(d);
    if (rc != BCT_OK) bq_result_free(r);
    else r->row_len = cols;
    return rc;
}

int gptq_quantize(const float *w, int rows, int cols, double *h, const bq_spec *spec, bq_result *r,
                  bct_error *err) {
    int len = qmat_padded_cols(cols);
    if (len == cols) return gptq_core(w, rows, cols, h, spec, r, err);
    /* Padded width (qmat.h): zero weights in columns no input reaches, so
     * their Hessian rows are 0 and the core gives them code 0. */
    float *wp = calloc((size_t)rows * len + 1, sizeof(float));
    double *hp = calloc((size_t)len * len + 1, sizeof(double));
    int rc;
    if (!wp || !hp) {
        memset(r, 0, sizeof(*r));
        rc = bct_fail(err, BCT_ENOMEM, "out of memory quantizing a %dx%d tensor (GPTQ)", rows, cols);
    } else {
        for (int i = 0; i < rows; i++) memcpy(wp + (size_t)i * len, w + (size_t)i * cols, (size_t)cols * sizeof(float));
        for (int i = 0; i < cols; i++) memcpy(hp + (size_t)i * len, h + (size_t)i * cols, (size_t)cols * sizeof(double));
        rc = gptq_core(wp, rows, len, hp, spec, r, err);
    }
    free(wp);
    free(hp);
    return rc;
}
