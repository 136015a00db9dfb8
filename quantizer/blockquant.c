#include "blockquant.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

int bq_spec_ok(const bq_spec *spec, bct_error *err) {
    if (!qcodec_bits_ok(spec->bits))
        return bct_fail(err, BCT_EINVAL, "%d-bit codes are not supported (8, 4, 3, 2)", spec->bits);
    if (spec->block < QMAT_GROUP || spec->block % QMAT_GROUP || spec->block > BQ_MAX_BLOCK)
        return bct_fail(err, BCT_EINVAL, "block size %d must be a multiple of %d in [%d, %d]", spec->block,
                        QMAT_GROUP, QMAT_GROUP, BQ_MAX_BLOCK);
    return BCT_OK;
}

bq_spec bq_fit(const bq_spec *spec, int cols) {
    bq_spec s = *spec;
    s.block = qmat_fit_block(spec->block, cols);
    return s;
}

double bq_bits_per_weight(const bq_spec *spec, int cols) {
    if (spec->bits == 32 || cols <= 0) return 32;
    double padded = qmat_padded_cols(cols);
    double scale_bits = spec->scale == QSCALE_F16 ? 16.0 : 8.0;
    return (spec->bits * padded + scale_bits * padded / spec->block) / cols;
}

double bq_rel_error(const bq_result *r) { return r->sq_sum > 0 ? sqrt(r->sq_err / r->sq_sum) : 0; }

/* Codes of x[0..n) for scale d; returns the weighted squared error. */
static double quantize_block(const float *x, int n, float d, int lo, int hi, const float *w,
                             int8_t *q) {
    double err = 0;
    float inv = d > 0 ? 1.0f / d : 0;
    for (int i = 0; i < n; i++) {
        long c = lroundf(x[i] * inv);
        c = c < lo ? lo : c > hi ? hi : c;
        q[i] = (int8_t)c;
        double e = (double)x[i] - (double)d * (double)c;
        err += w ? w[i] * e * e : e * e;
    }
    return err;
}

/* Clipping ratios tried: 1.0 down to 0.5 (fewer for 8 bits, where clipping
 * rarely pays). */
static int search_steps(int bits) { return bits >= 8 ? 8 : 32; }

static void quantize_row_block(const float *x, int n, const bq_spec *spec, float base,
                               const float *w, int8_t *q, uint8_t *scales, size_t bi,
                               double *sq_err) {
    int lo = qcodec_code_min(spec->bits), hi = qcodec_code_max(spec->bits);
    float amax = 0;
    for (int i = 0; i < n; i++) amax = fmaxf(amax, fabsf(x[i]));
    float d;
    if (amax == 0) {
        uint32_t code = qcodec_scale_encode(spec->scale, 0, base, &d);
        qcodec_scale_store(spec->scale, scales, bi, code);
        memset(q, 0, (size_t)n);
        return;
    }
    int8_t tmp[BQ_MAX_BLOCK];
    int steps = search_steps(spec->bits);
    double best = INFINITY;
    float last = -1;
    for (int k = 0; k < steps; k++) {
        float target = amax * (1.0f - 0.5f * (float)k / (float)steps) / (float)hi;
        uint32_t code = qcodec_scale_encode(spec->scale, target, base, &d);
        if (d == last || !(d > 0)) continue;
        last = d;
        double e = quantize_block(x, n, d, lo, hi, w, tmp);
        if (e < best) {
            best = e;
            memcpy(q, tmp, (size_t)n);
            qcodec_scale_store(spec->scale, scales, bi, code);
        }
    }
    /* Unweighted error for the report. */
    float dd = qcodec_scale_decode(spec->scale, scales, bi, base);
    for (int i = 0; i < n; i++) {
        double e = (double)x[i] - (double)dd * q[i];
        *sq_err += e * e;
    }
}

int bq_quantize(const float *x, int rows, int cols, const bq_spec *spec, const float *col_weight,
                bq_result *r, bct_error *err) {
    memset(r, 0, sizeof(*r));
    int rc = bq_spec_ok(spec, err);
    if (rc != BCT_OK) return rc;
    int len = qmat_padded_cols(cols);
    if (cols < 1 || len % spec->block)
        return bct_fail(err, BCT_EINVAL, "block size %d does not divide rows of %d (%d padded)",
                        spec->block, cols, len);
    size_t nblocks = (size_t)rows * (size_t)(len / spec->block);
    r->row_len = len;
    r->codes = calloc((size_t)rows * (size_t)len + 1, 1); /* zero: the padding's codes */
    r->scales = malloc(qcodec_scales_bytes(spec->scale, nblocks) + 1);
    if (!r->codes || !r->scales) {
        bq_result_free(r);
        return bct_fail(err, BCT_ENOMEM, "out of memory quantizing a %dx%d tensor", rows, cols);
    }
    /* log8 scales are relative to the largest block scale of the tensor. */
    int hi = qcodec_code_max(spec->bits);
    float amax = 0;
    for (size_t i = 0; i < (size_t)rows * cols; i++) {
        amax = fmaxf(amax, fabsf(x[i]));
        r->sq_sum += (double)x[i] * x[i];
    }
    r->base = amax > 0 ? amax / (float)hi : 1.0f;
    size_t bi = 0;
    for (int row = 0; row < rows; row++)
        for (int c = 0; c < len; c += spec->block, bi++) {
            /* The last block of a padded row: its real elements only (at
             * least one, since the padding is < QMAT_GROUP <= block). */
            int n = cols - c < spec->block ? cols - c : spec->block;
            quantize_row_block(x + (size_t)row * cols + (size_t)c, n, spec, r->base,
                               col_weight ? col_weight + c : NULL, r->codes + (size_t)row * len + (size_t)c,
                               r->scales, bi, &r->sq_err);
        }
    return BCT_OK;
}

void bq_result_free(bq_result *r) {
    free(r->codes);
    free(r->scales);
    r->codes = NULL;
    r->scales = NULL;
}
