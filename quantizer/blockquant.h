/* blockquant.h - quantizes one fp32 tensor into blockwise integer codes.
 *
 * Rows are cut into blocks of spec.block elements; each block gets the
 * scale, among those its scale encoding can represent, that minimises the
 * block's (optionally importance-weighted) squared error, searching
 * clipping ratios from the block's absmax down to half of it.  Codes are
 * round-half-away-from-zero of x / d clamped to the code range.
 */
#ifndef BCT_BLOCKQUANT_H
#define BCT_BLOCKQUANT_H

#include <stddef.h>
#include <stdint.h>

#include "formats/qcodec.h"
#include "util/status.h"

typedef struct bq_spec {
    int bits;  /* 2, 3, 4, 8; or 32 = keep fp32 */
    int block; /* multiple of 32 dividing the row length */
    qscale_enc scale;
} bq_spec;

typedef struct bq_result {
    int8_t *codes;   /* rows * cols signed codes */
    uint8_t *scales; /* qcodec_scales_bytes(spec.scale, blocks) */
    float base;      /* per-tensor base of log8 scales */
    double sq_err;   /* sum of squared errors */
    double sq_sum;   /* sum of squares of the input */
} bq_result;

/* col_weight: optional per-column importance (e.g. mean squared input of
 * that channel), NULL for plain MSE.  Fills r (free with bq_result_free). */
int bq_quantize(const float *x, int rows, int cols, const bq_spec *spec, const float *col_weight,
                bq_result *r, bct_error *err);
void bq_result_free(bq_result *r);

/* Relative Frobenius error sqrt(sq_err / sq_sum). */
double bq_rel_error(const bq_result *r);
/* Stored bits per element, codes and scales. */
double bq_bits_per_weight(const bq_spec *spec);

/* 1 when spec is usable for a row of `cols` elements; else writes why. */
int bq_spec_ok(const bq_spec *spec, int cols, bct_error *err);

#endif
