/* blockquant.h - quantizes one fp32 tensor into blockwise integer codes.
 *
 * Rows are cut into blocks of spec.block elements; each block gets the
 * scale, among those its scale encoding can represent, that minimises the
 * block's (optionally importance-weighted) squared error, searching
 * clipping ratios from the block's absmax down to half of it.  Codes are
 * round-half-away-from-zero of x / d clamped to the code range.
 *
 * Any row length works: rows are stored padded to qmat_padded_cols(cols)
 * with zero codes (kernels/qmat.h), and a tensor's block is the asked one
 * fitted to its padded rows (bq_fit).  The partial last block of a row
 * gets its scale from its real elements only.
 */
#ifndef BCT_BLOCKQUANT_H
#define BCT_BLOCKQUANT_H

#include <stddef.h>
#include <stdint.h>

#include "formats/qcodec.h"
#include "util/status.h"

#define BQ_MAX_BLOCK 4096 /* the quantizer's per-block scratch */

typedef struct bq_spec {
    int bits;  /* 2, 3, 4, 8; or 32 = keep fp32 */
    int block; /* multiple of 32, <= BQ_MAX_BLOCK (see bq_fit) */
    qscale_enc scale;
} bq_spec;

typedef struct bq_result {
    int row_len;     /* codes per row: qmat_padded_cols(cols) */
    int8_t *codes;   /* rows * row_len signed codes, 0 past cols */
    uint8_t *scales; /* qcodec_scales_bytes(spec.scale, blocks) */
    float base;      /* per-tensor base of log8 scales */
    double sq_err;   /* sum of squared errors */
    double sq_sum;   /* sum of squares of the input */
} bq_result;

/* col_weight: optional per-column importance (e.g. mean squared input of
 * that channel, cols entries), NULL for plain MSE.  spec->block must
 * divide qmat_padded_cols(cols) (bq_fit makes such a spec).  Fills r
 * (free with bq_result_free). */
int bq_quantize(const float *x, int rows, int cols, const bq_spec *spec, const float *col_weight,
                bq_result *r, bct_error *err);
void bq_result_free(bq_result *r);

/* Relative Frobenius error sqrt(sq_err / sq_sum). */
double bq_rel_error(const bq_result *r);
/* Stored bits per real element of rows of `cols` elements, codes
 * (padding included) and scales. */
double bq_bits_per_weight(const bq_spec *spec, int cols);

/* BCT_OK when spec can be asked for any tensor (storable bits, block a
 * multiple of 32 in [32, BQ_MAX_BLOCK]); else BCT_EINVAL saying why. */
int bq_spec_ok(const bq_spec *spec, bct_error *err);
/* The spec a tensor with rows of `cols` elements is quantized with:
 * spec's bits and scales, block qmat_fit_block(spec->block, cols). */
bq_spec bq_fit(const bq_spec *spec, int cols);

#endif
