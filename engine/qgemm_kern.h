/* qgemm_kern.h - what qgemm.c shares with the per-ISA kernel files
 * (qgemm_avx2.c, qgemm_avx512.c); not for other modules.
 *
 * Packed weight layout "QPK1" (made once by qgemm_prepare, or per call for
 * unprepared matrices such as attention operands), read by the AVX2 and
 * AVX-512 kernels alike:
 *
 *   Output rows (weight rows) are grouped in tiles of 16; the last tile is
 *   padded with zero codes.  A tile's codes are one contiguous stream, in
 *   the order the kernel consumes them, so it reads them with aligned
 *   sequential 64-byte loads:
 *
 *   bits 8: for each k-quad kq (4 consecutive columns, kq = 0 .. cols/4-1):
 *           64 bytes = 16 lanes x 4 bytes, lane l holding
 *           w[16t + l][4kq + j] ^ 0x80 (j = 0..3): the codes as unsigned
 *           bytes biased by 128 (u8 = q + 128), what vpdpbusd multiplies.
 *   bits 4: for each 32-column group g and byte quad j4 = 0..3: 64 bytes =
 *           16 lanes x the 4 bytes 4*j4 .. 4*j4+3 of row (16t + l)'s group g,
 *           unchanged (ggml Q4_0 order): their low nibbles are columns
 *           32g + 4*j4 + (0..3), their high nibbles columns 32g + 16 + 4*j4 +
 *           (0..3), both biased by 8 (u8 = q + 8).
 *
 *   So every 32-bit lane accumulates 4 products of one output row with 4
 *   consecutive activation bytes, which the kernel broadcasts.  The bias
 *   of the weight codes is removed exactly in integer arithmetic, per
 *   (activation row, block): sum_i (q_i + off) x_i - off * sum_i x_i.
 *
 *   The pack holds codes only: the weight's fp32 scales are read from the
 *   qmat; each task first copies those of its tiles into a small buffer
 *   [tile][nb][16] (qk_scales_transpose), so the packed copy adds nothing
 *   but the codes to memory.
 *
 * The float rescale is done in the scalar reference's order,
 *   acc = bias;  acc += (d_w * d_x) * (float)dot  for b = 0, 1, ...
 * with separate multiplies and adds (kernel files are compiled with
 * -ffp-contract=off), so every kernel gives bit-identical outputs.
 */
#ifndef BCT_QGEMM_KERN_H
#define BCT_QGEMM_KERN_H

#include <stddef.h>
#include <stdint.h>

#include "qmat.h"

#define QPACK_MAGIC 0x314B5051u /* "QPK1" */
#define QPACK_TILE 16
#define QPACK_HEADER 64 /* codes start here (64-byte aligned) */

typedef struct qpack {
    uint32_t magic;
    int bits, rows, cols, block, tiles;
    size_t tile_bytes; /* code bytes per tile: 16 * cols (q8) or 8 * cols (q4) */
    size_t total;      /* bytes of the whole pack */
} qpack;

static inline const uint8_t *qpack_codes(const qpack *p, int t) {
    return (const uint8_t *)p + QPACK_HEADER + (size_t)t * p->tile_bytes;
}

/* Scales of tiles [t0, t1) and blocks [b0, b1) of a rows x nb scale
 * matrix, as [b - b0][t - t0][16] (0 for padding rows): the tiles of one
 * block side by side, so a panel of tiles reads one contiguous run per
 * block. */
static inline void qk_scales_transpose(const float *ws, int rows, int nb, int t0, int t1, int b0, int b1,
                                       float *out) {
    const int g = t1 - t0;
    for (int t = t0; t < t1; t++)
        for (int l = 0; l < QPACK_TILE; l++) {
            int o = t * QPACK_TILE + l;
            float *d = out + (size_t)(t - t0) * QPACK_TILE + l;
            for (int b = b0; b < b1; b++)
                d[(size_t)(b - b0) * g * QPACK_TILE] = o < rows ? ws[(size_t)o * nb + b] : 0.0f;
        }
}

/* Floats of the per-task scale buffer on the stack (32 KB); tiles are
 * processed in sub-groups that fit. */
#define QK_SCALES_MAX 8192

/* One GEMM for the kernels: y = x W^T + bias, or (raw != NULL, tests) the
 * corrected int32 block dots raw[r][o][b] (r < x->rows, o < p->rows). */
typedef struct qk_job {
    const qpack *p;
    const float *wscales; /* the weight's scales [rows][nb] */
    const qmat *x;
    const float *bias;
    float *y;
    int ldy;
    int32_t *raw;
    /* Per activation row, made once per GEMM by qk_prep_*: */
    int32_t *nc; /* -off * block sums, [row][nb] (off: the codes' bias) */
    int32_t *nq; /* the same, interleaved per 4-row tile: [row / 4][nb][4] */
    float *xq;   /* the activation scales, likewise [row / 4][nb][4] */
} qk_job;

/* Rows [r0, r1) of x against output tiles [t0, t1); r0 a multiple of 4. */
void qk_avx2(const qk_job *j, int r0, int r1, int t0, int t1);
void qk_avx512(const qk_job *j, int r0, int r1, int t0, int t1);
/* Fills nc (and nq, xq) of rows [r0, r1), r0 a multiple of 4. */
void qk_prep_avx2(const qk_job *j, int r0, int r1);
void qk_prep_avx512(const qk_job *j, int r0, int r1);
/* int32s of each of nc, nq (and floats of xq) for x. */
static inline size_t qk_prep_len(const qmat *x) { return (size_t)(x->rows + 3) / 4 * 4 * (size_t)(x->cols / x->block); }

/* qmat_quantize_act on rows [r0, r1), bit-identical to the scalar code. */
void qact_scalar(qmat *m, const float *x, int ld, int r0, int r1);
void qact_avx2(qmat *m, const float *x, int ld, int r0, int r1);
void qact_avx512(qmat *m, const float *x, int ld, int r0, int r1);

#endif
