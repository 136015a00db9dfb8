/* gptq.h - Hessian-aware blockwise quantization of a Linear weight (GPTQ).
 *
 * Frantar et al. 2022 (arXiv 2210.17323), fitted to the file's block
 * formats.  With H = sum over calibration inputs of x x^T (cols x cols),
 * the columns of W are quantized left to right; the error each column
 * makes, divided by the pivot of the upper Cholesky factor U of H^-1, is
 * spread over the columns not yet quantized (W[:, k] -= e U[j, k]), so
 * later columns compensate for earlier ones within each row's K
 * dimension.  Updates inside a block are immediate; the rest of the row
 * gets one matrix product per block (GPTQ's lazy batch).
 *
 * Scales: when the loop reaches a block's first column, that block's
 * scale is chosen for every row from the already-updated weights (as
 * GPTQ does with groups), by the same search as blockquant.c (clipping
 * ratios 1 .. 1/2, among the scales the encoding can represent), with
 * each column's error weighted by H's diagonal.  Codes round half away
 * from zero, clamped to the code range.
 *
 * Before inversion: a column no input ever excited (H_jj = 0) gets
 * H_jj = 1 and a zero weight; then GPTQ_DAMP x mean(diag H) is added to
 * the diagonal.  Everything is in double.
 */
#ifndef BCT_GPTQ_H
#define BCT_GPTQ_H

#include "blockquant.h"
#include "util/status.h"

/* Dampening of H's diagonal, relative to its mean (GPTQ's default). */
#define GPTQ_DAMP 0.01

/* w: rows x cols (not modified); h: cols x cols symmetric (both triangles
 * read), overwritten (it becomes U: no second cols^2 copy, which is 75 MB
 * for bert-base's FFN output).  Fills r as bq_quantize does (sq_err is
 * the plain squared error of the stored weights against w). */
int gptq_quantize(const float *w, int rows, int cols, double *h, const bq_spec *spec, bq_result *r,
                  bct_error *err);

#endif
