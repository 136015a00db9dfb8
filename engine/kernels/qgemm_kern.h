/* qgemm_kern.h - what qgemm.c shares with the per-ISA kernel files
 * (qgemm_avx2.c: avx2 and avxvnni, qgemm_avx512.c, qgemm_amx.c) and the kernel tests; not for
 * other modules.
 *
 * Packed weight layout "QPK1" (made once by qgemm_prepare, or per call for
 * unprepared matrices such as attention operands), read by the AVX2,
 * AVX-VNNI and AVX-512 kernels alike:
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
 * Packed weight layout "QPA1" (AMX-INT8, qgemm_amx.c): the QPK1 tiles and
 * record order, except that q8 codes are stored as they are (signed, no
 * 0x80 bias: TDPBSSD multiplies signed by signed, so no bias correction):
 *
 *   bits 8: tile t, k-quad kq: 64 bytes, byte 4l + j = w[16t + l][4kq + j].
 *           That is the B operand of TDPBSSD in its "VNNI" shape: for a
 *           K-step of kstep columns starting at column k0 (a multiple of
 *           kstep), the kstep / 4 records from kq = k0 / 4 on are one B tile
 *           of kstep / 4 rows x 64 bytes (16 outputs x 4 codes), stride 64,
 *           contiguous at byte 16 * k0 of the tile:
 *             B[k4][4n + j] = w[16t + n][k0 + 4 k4 + j]
 *           and with the A tile = activation rows x the same kstep columns
 *           (loaded straight from x, stride x->cols), C[m][n] += the dot of
 *           activation row m and output 16t + n over those columns.
 *   bits 4: QPK1's records unchanged (ggml Q4_0 nibble order, biased by 8).
 *           The kernel widens the records of one tile (16 x K bytes, on
 *           its stack up to K = 4096) into the bits-8 form above, nibble - 8
 *           as int8, in a buffer of its own, then loads B tiles from there:
 *           record (g, j4) gives k-quads 8g + j4 (low nibbles) and
 *           8g + 4 + j4 (high nibbles).  The weight is never widened as a
 *           whole.
 *   padding rows of the last tile: zero codes (q8 0x00, q4 0x88).
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

#include "cpu_features.h"

struct bct_pool;

#define QPACK_MAGIC 0x314B5051u /* "QPK1": AVX2, AVX-512 */
#define QPACK_AMX_MAGIC 0x31415051u /* "QPA1": AMX */
#define QPACK_TILE 16
#define QPACK_HEADER 64 /* codes start here (64-byte aligned) */
#define QPACK_RECORD 64 /* bytes of one k-quad record: 16 lanes x 4 bytes */

typedef struct qpack {
    uint32_t magic;
    int bits, rows, cols, block, tiles;
    size_t tile_bytes; /* code bytes per tile: 16 * cols (q8) or 8 * cols (q4) */
    size_t total;      /* bytes of the whole pack */
} qpack;

_Static_assert(sizeof(qpack) <= QPACK_HEADER, "the pack header fits before the codes");
_Static_assert(QPACK_RECORD == QPACK_TILE * 4, "a record is 4 codes of each of a tile's 16 rows");
_Static_assert(QPACK_RECORD == 64, "a record is one row of an AMX B tile (64 bytes at most)");

/* AMX tile configuration, palette 1 (what LDTILECFG reads): 8 tiles of at
 * most 16 rows x 64 bytes; unused tiles have rows = colsb = 0. */
typedef struct qamx_cfg {
    uint8_t palette;    /* 1 */
    uint8_t start_row;  /* 0 (for restarting an interrupted load/store) */
    uint8_t reserved[14];
    uint16_t colsb[16]; /* bytes per row of tile 0 .. 15 (8 .. 15: 0) */
    uint8_t rows[16];
} qamx_cfg;

_Static_assert(sizeof(qamx_cfg) == 64, "LDTILECFG reads 64 bytes");
#define QAMX_TILES 8
#define QAMX_ROWS 16
#define QAMX_COLSB 64

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

/* Raw mode (tests): block b's dots of activation row r with outputs
 * o0 .. o0 + n - 1 (those that exist; the rest are padding lanes). */
static inline void qk_raw_store(const qk_job *j, int r, int o0, int n, int b, const int32_t *dots) {
    const int W = j->p->rows, nb = j->p->cols / j->p->block;
    for (int l = 0; l < n && o0 + l < W; l++) j->raw[((size_t)r * W + (size_t)o0 + l) * nb + b] = dots[l];
}

/* Rows [r0, r1) of x against output tiles [t0, t1); r0 a multiple of 4. */
typedef void (*qk_fn)(const qk_job *j, int r0, int r1, int t0, int t1);
void qk_avx2(const qk_job *j, int r0, int r1, int t0, int t1);
void qk_avxvnni(const qk_job *j, int r0, int r1, int t0, int t1);
void qk_avx512(const qk_job *j, int r0, int r1, int t0, int t1);
/* AMX (pack QPA1, any r0; nc, nq, xq unused): configures the calling
 * thread's tiles, and releases them before returning. */
void qk_amx(const qk_job *j, int r0, int r1, int t0, int t1);
/* Fills nc (and nq, xq) of rows [r0, r1), r0 a multiple of 4. */
void qk_prep_avx2(const qk_job *j, int r0, int r1);
void qk_prep_avxvnni(const qk_job *j, int r0, int r1);
void qk_prep_avx512(const qk_job *j, int r0, int r1);
/* int32s of each of nc, nq (and floats of xq) for x. */
static inline size_t qk_prep_len(const qmat *x) { return (size_t)(x->rows + 3) / 4 * 4 * (size_t)(x->cols / x->block); }

/* qmat_quantize_act on rows [r0, r1), bit-identical to the scalar code. */
void qact_scalar(qmat *m, const float *x, int ld, int r0, int r1);
void qact_avx2(qmat *m, const float *x, int ld, int r0, int r1);
void qact_avx512(qmat *m, const float *x, int ld, int r0, int r1);

/* Tests of a kernel this CPU cannot run (the AMX kernel's emulated build,
 * tests/unit/test_amx_emu.c): qgemm_pack_bytes / qgemm_pack /
 * qgemm_run / qgemm_block_dots for `isa` rather than the active one, with
 * `kern` (when not NULL) in place of isa's kernel.  With kern NULL, isa
 * must be supported. */
size_t qgemm_pack_bytes_isa(bct_isa isa, const qmat *w);
const void *qgemm_pack_isa(bct_isa isa, const qmat *w, void *buf);
void qgemm_run_kern(bct_isa isa, qk_fn kern, const qmat *w, const void *pack, const qmat *x, const float *bias,
                    float *y, int ldy, struct bct_pool *pool);
int qgemm_block_dots_kern(bct_isa isa, qk_fn kern, const qmat *w, const qmat *x, int32_t *out);

#endif
