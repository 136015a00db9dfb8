/* qgemm.h - int8 block GEMM: blockwise-quantized weights x int8 activations.
 *
 *   y[r][o] = bias[o] + sum_b  w.d[o][b] * x.d[r][b] * sum_{i in block b} w.q[o][i] * x.q[r][i]
 *
 * Weights are a qmat of 8 or 4 bits, activations a qmat of 8 bits with the
 * same cols and block.  Products accumulate exactly in int32 per block
 * (|q| <= 127 and block <= 4096 cannot overflow); only the per-block
 * rescale is in fp32.  The scalar kernels here are the reference that SIMD
 * kernels are tested against.
 */
#ifndef BCT_QGEMM_H
#define BCT_QGEMM_H

#include <stdint.h>

#include "qmat.h"

/* int32 dot products of n codes (n a multiple of 32), the GEMM primitive. */
int32_t qdot_q8q8_scalar(const int8_t *w, const int8_t *x, int n);
int32_t qdot_q4q8_scalar(const uint8_t *w4, const int8_t *x, int n);

/* y (row stride ldy) = x W^T (+ bias if not NULL).  Requires
 * w->cols == x->cols and w->block == x->block. */
void qgemm(const qmat *w, const qmat *x, const float *bias, float *y, int ldy);
void qgemm_scalar(const qmat *w, const qmat *x, const float *bias, float *y, int ldy);

#endif
