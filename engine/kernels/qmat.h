/* qmat.h - blockwise-quantized matrices, as the engine holds them in memory.
 *
 * A matrix [rows][cols] is cut into blocks of `block` consecutive elements
 * along each row (the reduction dimension of a matmul).  Every block has
 * its own scale d and integer codes q, and stands for x = d * q.  One
 * outlier therefore costs precision only inside its own block.
 *
 * In-memory layouts (what the kernels read):
 *
 *   bits 8: codes  int8_t [rows][cols], q in [-127, 127]
 *   bits 4: codes uint8_t [rows][cols / 2]; each group of 32 elements is 16
 *           bytes, byte j holding element j in its low nibble and element
 *           j + 16 in its high nibble, stored biased by 8 (q = nibble - 8,
 *           q in [-8, 7]).  This is ggml's Q4_0 nibble order, which lets
 *           SIMD code unpack 32 codes with one shift and two masks.
 *   scales: float [rows][cols / block]
 *
 * block is a multiple of 32 that divides cols.  Codes of narrower formats
 * stored in files (3 or 2 bits) are widened to the 4-bit layout at load, so
 * kernels only know 8 and 4 bits.  Activations are bits-8 qmats quantized
 * at run time (absmax per block).
 *
 * Widths that fit no block: a tensor whose rows have `width` elements
 * (e.g. TinyBERT's hidden 312) is held with cols = qmat_padded_cols(width),
 * the trailing columns [width, cols) having code 0, and block =
 * qmat_fit_block(wanted, width).  Whoever multiplies such a weight feeds
 * activations padded with zeros to cols, so the padding adds exact zeros
 * and the kernels never know: they only see a matrix of cols columns.
 */
#ifndef BCT_QMAT_H
#define BCT_QMAT_H

#include <stddef.h>
#include <stdint.h>

#define QMAT_GROUP 32 /* elements per nibble group; blocks are multiples of it */

typedef struct qmat {
    int bits; /* 8 or 4 */
    int rows, cols, block;
    void *codes;   /* layout above; NULL for a weight whose owner dropped them once packed (qgemm.h) */
    float *scales; /* rows * (cols / block) */
    void *pack;    /* weights only: the GEMM kernel's packed copy (qgemm_prepare), or NULL */
} qmat;

static inline size_t qmat_row_bytes(int bits, int cols) {
    return bits == 8 ? (size_t)cols : (size_t)cols / 2;
}
static inline int qmat_blocks_per_row(const qmat *m) { return m->cols / m->block; }
static inline const uint8_t *qmat_row_codes(const qmat *m, int r) {
    return (const uint8_t *)m->codes + (size_t)r * qmat_row_bytes(m->bits, m->cols);
}
static inline const float *qmat_row_scales(const qmat *m, int r) {
    return m->scales + (size_t)r * (size_t)qmat_blocks_per_row(m);
}

/* Row length that a row of `width` elements is stored with: width rounded
 * up to QMAT_GROUP (the 4-bit layout needs whole nibble groups). */
static inline int qmat_padded_cols(int width) {
    return (width + QMAT_GROUP - 1) / QMAT_GROUP * QMAT_GROUP;
}
/* The block used for rows of `width` elements when `want` (a multiple of
 * QMAT_GROUP) is asked: want if it divides qmat_padded_cols(width), else
 * the largest multiple of QMAT_GROUP below want that does (QMAT_GROUP
 * always does).  Padding only to the group, not to `want`, keeps the
 * wasted codes and MACs under 32 per row; the price is smaller blocks
 * (more scales) on odd widths, e.g. 312 -> 320 in blocks of 64. */
int qmat_fit_block(int want, int width);

/* 1 when (bits, block, cols) form a valid layout. */
int qmat_layout_ok(int bits, int block, int cols);

/* Allocates codes and scales for a rows x cols matrix (64-byte aligned).
 * Returns 0 or BCT_ENOMEM.  qmat_free releases what qmat_alloc made (and
 * a pack made by qgemm_prepare). */
int qmat_alloc(qmat *m, int bits, int rows, int cols, int block);
void qmat_free(qmat *m);

/* Code of element i of a row (any layout), as a signed integer. */
static inline int qmat_code(const qmat *m, const uint8_t *row, int i) {
    if (m->bits == 8) return (int8_t)row[i];
    int g = i / QMAT_GROUP, j = i % QMAT_GROUP;
    uint8_t byte = row[g * 16 + (j & 15)];
    return (j < 16 ? byte & 15 : byte >> 4) - 8;
}

/* Writes signed codes (int8 values in range for `bits`) of one row into
 * the row's storage in the layout above. */
void qmat_pack_row(const qmat *m, int r, const int8_t *codes);

/* x[cols] = d * q for row r. */
void qmat_dequantize_row(const qmat *m, int r, float *x);
/* x[0..n) = d * q for the first n <= cols elements of row r (a padded
 * matrix's logical row, without the padding). */
void qmat_dequantize_prefix(const qmat *m, int r, float *x, int n);

/* Activations: quantizes rows x cols floats (row stride ld) into m (bits 8,
 * absmax per block: d = max|x| / 127, q = round-half-away(x * (127 / max|x|))).
 * x must be finite.  Runs the SIMD version of the active GEMM kernel
 * (qgemm.h), bit-identical to the scalar one; qmat_quantize_act_mt there
 * splits rows over a thread pool. */
void qmat_quantize_act(qmat *m, const float *x, int ld);

#endif
