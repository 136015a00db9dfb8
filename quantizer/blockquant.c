#include "blockquant.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

int bq_spec_ok(const bq_spec *spec, int cols, bct_error *err) {
    if (!qcodec_bits_ok(spec->bits)) {
        bct_fail(err, BCT_EINVAL, "%d-bit codes are not supported (8, 4, 3, 2)", spec->bits);
        return 0;
    }
    if (spec->block < 32 || spec->block % 32 || cols % spec->block) {
        bct_fail(err, BCT_EINVAL, "block size %d must be a multiple of 32 dividing %d", spec->block,
                 cols);
        return 0;
    }
    return 1;
}

double bq_bits_per_weight(const bq_spec *spec) {
    if (spec->bits == 32) return 32;
    return spec->bits + (spec->scale == QSCALE_F16 ? 16.0 : 8.0) / spec->block;
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
    int8_t tmp[4096];
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
    if (!bq_spec_ok(spec, cols, err)) return BCT_EINVAL;
    if (spec->block > 4096) return bct_fail(err, BCT_EINVAL, "block size %d > 4096", spec->block);
    size_t nblocks = (size_t)rows * (size_t)(cols / spec->block);
    r->codes = malloc((size_t)rows * (size_t)cols + 1);
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
        for (int c = 0; c < cols; c += spec->block, bi++) {
            size_t off = (size_t)row * cols + (size_t)c;
            quantize_row_block(x + off, spec->block, spec, r->base, col_weight ? col_weight + c : NULL,
                               r->codes + off, r->scales, bi, &r->sq_err);
        }
    return BCT_OK;
}

void bq_result_free(bq_result *r) {
    free(r->codes);
    free(r->scales);
    r->codes = NULL;
    r->scales = NULL;
}
