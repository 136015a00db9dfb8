/* qgemm_amx.c - AMX-INT8 kernel of the int8 block GEMM: TDPBSSD on tiles
 * of 16 activation rows x 16 outputs.  Compiled for baseline x86-64; the
 * functions carry target attributes and run only when qgemm.c has checked
 * the CPU, the OS and the process's tile permission (cpu_features.h).
 * Layout (QPA1) and rounding contract: qgemm_kern.h.
 *
 * Unit of work: one C tile (16 rows x 16 outputs) over all of K, its 16 x
 * 16 float accumulators in 16 zmm registers from the bias to the final
 * store (no partial sums in memory).  Per block: zero C, TDPBSSD of the
 * block's K-steps (64 columns when the block is a multiple of 64, else 32,
 * so a block is whole steps and its dot ends in C), store C (int32), then
 * f += (w.d * x.d) * (float)dot with AVX-512 in the scalar reference's
 * order (separate multiply and add, no FMA: the file is compiled with
 * -ffp-contract=off), so outputs are bit-identical to every other kernel.
 * Signed x signed products need no bias correction.
 *
 * Why this shape (measured on a Sapphire Rapids VM, docs/performance.md):
 * at block 64 every 16 x 16 x 64 TDPBSSD (~16 cycles) needs a tile store
 * (~16 cycles) and a 16-vector rescale (~32 cycles of AVX-512 multiplies
 * and adds), so the kernel is bound by the rescale, and what matters is
 * that the tile unit and the AVX-512 units overlap.  C is double-buffered
 * by block parity: while block b's products run in one C tile, the other
 * (block b - 1) is stored, and block b - 2 (stored one step earlier) is
 * rescaled, its 16 rows cut in four and spread between the tile
 * instructions.  The 2 x 2 tile blocking used before (4 C tiles, every
 * block's partial sums through memory) ran 1.2 - 1.7x slower.
 *
 * Loop order (qk_amx): output tiles outer (q4 records widened to int8 and
 * weight scales transposed once per tile, its B records then stay in L1/L2
 * for all rows of the task), row tiles inner: full ones first, then the
 * short last one (one reconfiguration).  The rows' activation scales are
 * gathered once per call as [row tile][block][16].
 *
 * Tile state is per thread: every call configures the calling thread's
 * tiles (LDTILECFG; again only when the row-tile height changes) and
 * releases them before it returns (TILERELEASE), so pool workers and the
 * OS never see tiles left in use.
 *
 * The same source compiles against an emulation of the tile instructions
 * (QAMX_EMU, qgemm_amx_emu.h; test_amx_emu only), which is how it is tested
 * on CPUs without AMX: the tile operations go through the T_* macros below
 * and nothing else differs.
 */
#include <stdlib.h>
#include <string.h>

#include "qgemm_kern.h"

#if defined(__x86_64__)
#include <immintrin.h>

#ifdef QAMX_EMU
#include "qgemm_amx_emu.h"
#define TARGET __attribute__((target("avx512f,avx512bw,avx512dq,avx512vl")))
#define QK_AMX qk_amx_emu
#define T_CONFIG(cfg) amx_emu_loadconfig(cfg)
#define T_RELEASE() amx_emu_release()
#define T_ZERO(t) amx_emu_zero(t)
#define T_LOAD(t, base, stride) amx_emu_loadd(t, base, stride)
#define T_STORE(t, base, stride) amx_emu_stored(t, base, stride)
#define T_DPBSSD(c, a, b) amx_emu_dpbssd(c, a, b)
#else
#define TARGET __attribute__((target("amx-tile,amx-int8,avx512f,avx512bw,avx512dq,avx512vl")))
#define QK_AMX qk_amx
/* GCC's tile intrinsics are asm statements that do not tell the compiler
 * what memory they read (LDTILECFG names 8 of its 64 bytes, TILELOADD
 * none), so a compiler barrier goes first: the config and the widened q4
 * weights are really stored before the tiles read them.  TILESTORED
 * already clobbers memory. */
#define MEM_BARRIER() __asm__ volatile("" ::: "memory")
#define T_CONFIG(cfg)                                                                            \
    do {                                                                                         \
        MEM_BARRIER();                                                                           \
        _tile_loadconfig(cfg);                                                                   \
    } while (0)
#define T_RELEASE() _tile_release()
#define T_ZERO(t) _tile_zero(t)
#define T_LOAD(t, base, stride)                                                                  \
    do {                                                                                         \
        MEM_BARRIER();                                                                           \
        _tile_loadd(t, base, stride);                                                            \
    } while (0)
#define T_STORE(t, base, stride) _tile_stored(t, base, stride)
#define T_DPBSSD(c, a, b) _tile_dpbssd(c, a, b)
#endif

/* Tile registers (numbers, not an enum: they are part of the instruction).
 * C is double-buffered by block parity (one block's int32 dots are stored
 * and rescaled while the next block's TDPBSSD run); A and B alternate by
 * K-step, so a step's loads do not wait for the previous step's product. */
#define TC0 0
#define TC1 1
#define TA0 2
#define TA1 3
#define TB0 4
#define TB1 5

enum {
    STACK_FLOATS = 4096,          /* scale buffers on the stack; larger ones are malloc'd */
    STACK_WIDE = 16 * 4096,       /* q4 widened to int8: one tile of K <= 4096 */
    ROWS_CT = QAMX_ROWS,          /* activation rows of a C tile */
};

TARGET static inline __mmask16 lane_mask(int valid) {
    return valid >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << valid) - 1);
}

/* Palette 1 for row tiles of m rows and K-steps of kstep bytes. */
static void make_config(qamx_cfg *cfg, int m, int kstep) {
    memset(cfg, 0, sizeof(*cfg));
    cfg->palette = 1;
    for (int t = TC0; t <= TC1; t++) {
        cfg->rows[t] = (uint8_t)m;
        cfg->colsb[t] = QAMX_COLSB; /* 16 int32 */
    }
    for (int t = TA0; t <= TA1; t++) {
        cfg->rows[t] = (uint8_t)m;
        cfg->colsb[t] = (uint16_t)kstep;
    }
    for (int t = TB0; t <= TB1; t++) {
        cfg->rows[t] = (uint8_t)(kstep / 4);
        cfg->colsb[t] = QPACK_RECORD;
    }
}

/* q4 records of `groups` 32-column groups of one tile (QPK1 order) ->
 * the q8 QPA1 records of the same columns: nibble - 8 as int8. */
TARGET static void widen_q4(const uint8_t *src, int groups, int8_t *dst) {
    const __m512i low4 = _mm512_set1_epi8(0x0F), eight = _mm512_set1_epi8(8);
    for (int g = 0; g < groups; g++, src += 4 * QPACK_RECORD, dst += 8 * QPACK_RECORD)
        for (int j4 = 0; j4 < 4; j4++) {
            __m512i v = _mm512_loadu_si512(src + j4 * QPACK_RECORD);
            __m512i lo = _mm512_sub_epi8(_mm512_and_si512(v, low4), eight);
            __m512i hi = _mm512_sub_epi8(_mm512_and_si512(_mm512_srli_epi16(v, 4), low4), eight);
            _mm512_store_si512(dst + j4 * QPACK_RECORD, lo);       /* columns 32g + 4 j4 .. */
            _mm512_store_si512(dst + (4 + j4) * QPACK_RECORD, hi); /* columns 32g + 16 + 4 j4 .. */
        }
}

/* What the row tiles of one output tile share. */
typedef struct otile {
    int t;             /* output tile */
    const int8_t *w;   /* its q8 QPA1 records from column 0 */
    const float *sc;   /* its weight scales as [b][16] (not for raw) */
    __mmask16 mask;    /* its outputs that exist */
} otile;

/* Rescales rows [k0, k1) of a stored block: f += (w.d * x.d) * (float)dot,
 * in the scalar order. */
#define RESCALE(k0, k1)                                                                          \
    do {                                                                                         \
        _Pragma("GCC unroll 16") for (int k = (k0); k < (k1); k++) {                             \
            __m512 s_ = _mm512_mul_ps(wd, _mm512_set1_ps(xd[k]));                                 \
            __m512 d_ = _mm512_cvtepi32_ps(_mm512_load_si512(a + 16 * k));                        \
            f[k] = _mm512_add_ps(f[k], _mm512_mul_ps(s_, d_));                                   \
        }                                                                                        \
    } while (0)

/* One pipeline step (see rows_x_tile) with C = block b's tile, Q = the
 * other C tile (block b - 1, stored into buf[q]), A/B = step 0's operand
 * tiles, A2/B2 the other pair.  The rescale of block b - 2 is cut in four
 * and spread between the tile instructions, so that the AVX-512 work and
 * the tile loads, products and store overlap without needing a large
 * out-of-order window. */
#define PIPE_STEP(C, Q, A, B, A2, B2, q)                                                         \
    do {                                                                                         \
        const size_t k0 = (size_t)b * blk;                                                       \
        if (dots) {                                                                              \
            T_ZERO(C);                                                                           \
            T_LOAD(A, xr + k0, (long)K);                                                         \
        }                                                                                        \
        if (resc) RESCALE(0, 4);                                                                 \
        if (dots) T_LOAD(B, ot->w + k0 * QPACK_TILE, (long)QPACK_RECORD);                        \
        if (resc) RESCALE(4, 8);                                                                 \
        if (dots) {                                                                              \
            T_DPBSSD(C, A, B);                                                                   \
            for (int s = 1; s < steps; s++) {                                                    \
                const size_t ks = k0 + (size_t)s * kstep;                                        \
                if (s & 1) {                                                                     \
                    T_LOAD(A2, xr + ks, (long)K);                                                \
                    T_LOAD(B2, ot->w + ks * QPACK_TILE, (long)QPACK_RECORD);                     \
                    T_DPBSSD(C, A2, B2);                                                         \
                } else {                                                                         \
                    T_LOAD(A, xr + ks, (long)K);                                                 \
                    T_LOAD(B, ot->w + ks * QPACK_TILE, (long)QPACK_RECORD);                      \
                    T_DPBSSD(C, A, B);                                                           \
                }                                                                                \
            }                                                                                    \
        }                                                                                        \
        if (resc) RESCALE(8, 12);                                                                \
        if (store) T_STORE(Q, buf[q], 16 * (long)sizeof(int32_t));                               \
        if (resc) RESCALE(12, 16);                                                               \
    } while (0)

/* Rows [r, r + m) (m <= 16; the tiles are configured for m rows) against
 * one output tile, all blocks.  xs: the rows' activation scales as
 * [b][16].  The 16 x 16 float accumulators stay in registers across K.
 * Pipeline: at step b the products of block b run in one C tile while the
 * other C tile (block b - 1) is stored, and block b - 2 (stored one step
 * earlier) is rescaled with AVX-512; the float order per output is still
 * block 0, 1, ... */
TARGET static void rows_x_tile(const qk_job *j, const otile *ot, int r, int m, const float *xs) {
    const int blk = j->p->block, nb = j->p->cols / blk, K = j->p->cols;
    const int kstep = blk % 64 ? 32 : 64, steps = blk / kstep;
    const int8_t *xr = (const int8_t *)j->x->codes + (size_t)r * K;
    int32_t buf[2][ROWS_CT * 16] __attribute__((aligned(64)));
    __m512 f[ROWS_CT];
    const __m512 f0 = j->raw || !j->bias ? _mm512_setzero_ps()
                                         : _mm512_maskz_loadu_ps(ot->mask, j->bias + (size_t)ot->t * QPACK_TILE);
#pragma GCC unroll 16
    for (int k = 0; k < ROWS_CT; k++) f[k] = f0;
    if (m < ROWS_CT) memset(buf, 0, sizeof(buf)); /* rows >= m: rescaled, never stored */
    for (int b = 0; b < nb + 2; b++) {
        const int dots = b < nb, store = b >= 1 && b <= nb;
        const int bb = b < 2 ? 0 : b - 2; /* the block rescaled at this step */
        const int32_t *a = buf[b & 1];
        if (j->raw) { /* tests: the block dots, no rescale */
            if (b >= 2)
                for (int k = 0; k < m; k++) qk_raw_store(j, r + k, ot->t * QPACK_TILE, QPACK_TILE, bb, a + 16 * k);
        }
        const int resc = b >= 2 && !j->raw;
        const __m512 wd = resc ? _mm512_load_ps(ot->sc + (size_t)bb * QPACK_TILE) : _mm512_setzero_ps();
        const float *xd = resc ? xs + (size_t)bb * ROWS_CT : NULL;
        if (b & 1) PIPE_STEP(TC1, TC0, TA1, TB1, TA0, TB0, 0);
        else PIPE_STEP(TC0, TC1, TA0, TB0, TA1, TB1, 1);
    }
    if (j->raw) return;
#pragma GCC unroll 16
    for (int k = 0; k < ROWS_CT; k++)
        if (k < m) _mm512_mask_storeu_ps(j->y + (size_t)(r + k) * j->ldy + (size_t)ot->t * QPACK_TILE, ot->mask, f[k]);
}

static void *scratch(void *stack, size_t stack_bytes, size_t bytes) {
    if (bytes <= stack_bytes) return stack;
    void *p = NULL;
    if (posix_memalign(&p, 64, bytes)) abort();
    return p;
}

/* ---- one block per row (block == cols): C stays in the tiles over K ----
 *
 * With a single block the scales factor out of K, so no partial sum ever
 * leaves the tiles: 2 row tiles x 2 output tiles (4 C tiles, the other 4
 * for 2 A and 2 B operands) take every K-step's TDPBSSD into the same C
 * tiles, each A and B load feeding two products, and are stored once at
 * the end, then y = bias + (w.d * x.d) * (float)dot as in the scalar
 * reference.  Four independent accumulators keep the tile unit busy (one
 * C tile's chain of products would wait for each previous one). */
#define RC00 0
#define RC01 1
#define RC10 2
#define RC11 3
#define RA0 4
#define RA1 5
#define RB0 6
#define RB1 7

/* Row tiles of m0 and m1 rows (m1 0: one row tile), K-steps of kstep. */
static void make_config_row(qamx_cfg *cfg, int m0, int m1, int kstep) {
    memset(cfg, 0, sizeof(*cfg));
    cfg->palette = 1;
    const int h[2] = {m0, m1 ? m1 : m0}; /* an unused row tile keeps a valid shape */
    for (int i = 0; i < 2; i++) {
        cfg->rows[RC00 + 2 * i] = cfg->rows[RC01 + 2 * i] = (uint8_t)h[i];
        cfg->colsb[RC00 + 2 * i] = cfg->colsb[RC01 + 2 * i] = QAMX_COLSB;
        cfg->rows[RA0 + i] = (uint8_t)h[i];
        cfg->colsb[RA0 + i] = (uint16_t)kstep;
        cfg->rows[RB0 + i] = (uint8_t)(kstep / 4);
        cfg->colsb[RB0 + i] = QPACK_RECORD;
    }
}

/* C tile c (rows r .. r + m - 1 x output tile ot) -> y, or raw dots. */
TARGET static void row_finish(const qk_job *j, int c, int r, int m, const otile *ot) {
    int32_t buf[ROWS_CT * 16] __attribute__((aligned(64)));
    switch (c) { /* the tile number is part of the instruction */
    case RC00: T_STORE(RC00, buf, 16 * (long)sizeof(int32_t)); break;
    case RC01: T_STORE(RC01, buf, 16 * (long)sizeof(int32_t)); break;
    case RC10: T_STORE(RC10, buf, 16 * (long)sizeof(int32_t)); break;
    default: T_STORE(RC11, buf, 16 * (long)sizeof(int32_t)); break;
    }
    if (j->raw) {
        for (int k = 0; k < m; k++) qk_raw_store(j, r + k, ot->t * QPACK_TILE, QPACK_TILE, 0, buf + 16 * k);
        return;
    }
    const __m512 wd = _mm512_load_ps(ot->sc);
    const __m512 f0 = j->bias ? _mm512_maskz_loadu_ps(ot->mask, j->bias + (size_t)ot->t * QPACK_TILE)
                              : _mm512_setzero_ps();
    for (int k = 0; k < m; k++) {
        __m512 s_ = _mm512_mul_ps(wd, _mm512_set1_ps(j->x->scales[r + k]));
        __m512 d_ = _mm512_cvtepi32_ps(_mm512_load_si512(buf + 16 * k));
        _mm512_mask_storeu_ps(j->y + (size_t)(r + k) * j->ldy + (size_t)ot->t * QPACK_TILE, ot->mask,
                              _mm512_add_ps(f0, _mm512_mul_ps(s_, d_)));
    }
}

/* Row tiles at r (m0 rows) and r + 16 (m1 rows, 0: none) against output
 * tiles ot[0] and, when two, ot[1]: all of K in the C tiles. */
TARGET static void row_block(const qk_job *j, const otile *ot, int two, int r, int m0, int m1, int kstep) {
    const int K = j->p->cols;
    const int8_t *x0 = (const int8_t *)j->x->codes + (size_t)r * K, *x1 = x0 + (size_t)ROWS_CT * K;
    const int8_t *w0 = ot[0].w, *w1 = two ? ot[1].w : NULL;
    T_ZERO(RC00);
    if (two) T_ZERO(RC01);
    if (m1) T_ZERO(RC10);
    if (m1 && two) T_ZERO(RC11);
    for (int k0 = 0; k0 < K; k0 += kstep) {
        T_LOAD(RA0, x0 + k0, (long)K);
        T_LOAD(RB0, w0 + (size_t)k0 * QPACK_TILE, (long)QPACK_RECORD);
        T_DPBSSD(RC00, RA0, RB0);
        if (m1) {
            T_LOAD(RA1, x1 + k0, (long)K);
            T_DPBSSD(RC10, RA1, RB0);
        }
        if (two) {
            T_LOAD(RB1, w1 + (size_t)k0 * QPACK_TILE, (long)QPACK_RECORD);
            T_DPBSSD(RC01, RA0, RB1);
            if (m1) T_DPBSSD(RC11, RA1, RB1);
        }
    }
    row_finish(j, RC00, r, m0, &ot[0]);
    if (two) row_finish(j, RC01, r, m0, &ot[1]);
    if (m1) row_finish(j, RC10, r + ROWS_CT, m1, &ot[0]);
    if (m1 && two) row_finish(j, RC11, r + ROWS_CT, m1, &ot[1]);
}

/* qk_amx for block == cols.  Rows go in pairs of full row tiles, then
 * what is left (a full tile and the short one, or one of them) with its
 * own configuration; output tiles in pairs within each. */
TARGET static void qk_amx_row(const qk_job *j, int r0, int r1, int t0, int t1, int8_t *wide) {
    const qpack *p = j->p;
    const int K = p->cols, kstep = K % 64 ? 32 : 64;
    const int n = r1 - r0, full = n / ROWS_CT, tail = n % ROWS_CT;
    const int pairs = full / 2, left = full % 2;
    float sc[2][QPACK_TILE] __attribute__((aligned(64)));
    qamx_cfg cfg __attribute__((aligned(64)));
    int configured = 0;
    /* group 0: the pairs of full tiles; group 1: the rest (m0, m1). */
    for (int g = 0; g < 2; g++) {
        const int m0 = g == 0 ? ROWS_CT : left ? ROWS_CT : tail, m1 = g == 0 ? ROWS_CT : left ? tail : 0;
        const int count = g == 0 ? pairs : m0 > 0;
        if (!count) continue;
        make_config_row(&cfg, m0, m1, kstep);
        T_CONFIG(&cfg);
        configured = 1;
        for (int t = t0; t < t1; t += 2) {
            const int two = t + 1 < t1;
            otile ot[2];
            for (int i = 0; i <= two; i++) {
                ot[i] = (otile){.t = t + i, .sc = sc[i], .mask = lane_mask(p->rows - (t + i) * QPACK_TILE)};
                const uint8_t *codes = qpack_codes(p, t + i);
                if (p->bits == 8) {
                    ot[i].w = (const int8_t *)codes;
                } else {
                    widen_q4(codes, K / QMAT_GROUP, wide + (size_t)i * QPACK_TILE * K);
                    ot[i].w = wide + (size_t)i * QPACK_TILE * K;
                }
                qk_scales_transpose(j->wscales, p->rows, 1, t + i, t + i + 1, 0, 1, sc[i]);
            }
            if (g == 0)
                for (int rp = 0; rp < pairs; rp++) row_block(j, ot, two, r0 + 2 * rp * ROWS_CT, ROWS_CT, ROWS_CT, kstep);
            else
                row_block(j, ot, two, r0 + 2 * pairs * ROWS_CT, m0, m1, kstep);
        }
    }
    if (configured) T_RELEASE();
}


TARGET void QK_AMX(const qk_job *j, int r0, int r1, int t0, int t1) {
    const qpack *p = j->p;
    const int blk = p->block, nb = p->cols / blk, K = p->cols;
    const int kstep = blk % 64 ? 32 : 64, raw = j->raw != NULL;
    const int rtiles = (r1 - r0 + ROWS_CT - 1) / ROWS_CT;
    float xs_stack[STACK_FLOATS] __attribute__((aligned(64)));
    float sc_stack[STACK_FLOATS] __attribute__((aligned(64)));
    int8_t wide_stack[STACK_WIDE] __attribute__((aligned(64)));
    if (nb == 1) { /* one block per row: q4 widens two output tiles at a time */
        int8_t *w2 = p->bits == 4 ? scratch(wide_stack, sizeof(wide_stack), (size_t)2 * QPACK_TILE * K) : NULL;
        qk_amx_row(j, r0, r1, t0, t1, w2);
        if (w2 && w2 != wide_stack) free(w2);
        return;
    }
    /* Activation scales of the task's rows as [row tile][b][16] (0 past r1),
     * weight scales of one output tile as [b][16], q4 codes of one tile widened. */
    float *xs = raw ? NULL : scratch(xs_stack, sizeof(xs_stack), (size_t)rtiles * nb * ROWS_CT * sizeof(float));
    float *sc = raw ? NULL : scratch(sc_stack, sizeof(sc_stack), (size_t)nb * QPACK_TILE * sizeof(float));
    int8_t *wide = p->bits == 4 ? scratch(wide_stack, sizeof(wide_stack), (size_t)QPACK_TILE * K) : NULL;
    if (!raw)
        for (int rt = 0; rt < rtiles; rt++)
            for (int k = 0; k < ROWS_CT; k++) {
                const int row = r0 + rt * ROWS_CT + k;
                for (int b = 0; b < nb; b++)
                    xs[((size_t)rt * nb + b) * ROWS_CT + k] = row < r1 ? j->x->scales[(size_t)row * nb + b] : 0.0f;
            }
    qamx_cfg cfg __attribute__((aligned(64)));
    int cur = -1; /* the row-tile height configured, -1: none yet */
    /* Full row tiles first, then the short last one (one reconfiguration). */
    const int full = (r1 - r0) / ROWS_CT, tail = (r1 - r0) % ROWS_CT;
    for (int t = t0; t < t1; t++) {
        otile ot = {.t = t, .sc = sc, .mask = lane_mask(p->rows - t * QPACK_TILE)};
        const uint8_t *codes = qpack_codes(p, t);
        if (p->bits == 8) {
            ot.w = (const int8_t *)codes;
        } else {
            widen_q4(codes, K / QMAT_GROUP, wide);
            ot.w = wide;
        }
        if (!raw) qk_scales_transpose(j->wscales, p->rows, nb, t, t + 1, 0, nb, sc);
        if (full && cur != ROWS_CT) {
            make_config(&cfg, ROWS_CT, kstep);
            T_CONFIG(&cfg);
            cur = ROWS_CT;
        }
        for (int rt = 0; rt < full; rt++)
            rows_x_tile(j, &ot, r0 + rt * ROWS_CT, ROWS_CT, raw ? NULL : xs + (size_t)rt * nb * ROWS_CT);
        if (!tail) continue;
        if (cur != tail) {
            make_config(&cfg, tail, kstep);
            T_CONFIG(&cfg);
            cur = tail;
        }
        rows_x_tile(j, &ot, r0 + full * ROWS_CT, tail, raw ? NULL : xs + (size_t)full * nb * ROWS_CT);
    }
    if (cur >= 0) T_RELEASE();
    if (xs != xs_stack) free(xs);
    if (sc != sc_stack) free(sc);
    if (wide && wide != wide_stack) free(wide);
}

#ifdef QAMX_EMU
void qk_amx_emu_state(int *configured, long *dp_count) {
    *configured = amx_emu.configured;
    *dp_count = amx_emu.dp_count;
}
#endif

#else /* not x86-64: never called (bct_isa_supported says no) */
#ifdef QAMX_EMU
void qk_amx_emu(const qk_job *j, int r0, int r1, int t0, int t1) { abort(); }
void qk_amx_emu_state(int *configured, long *dp_count) { abort(); }
#else
void qk_amx(const qk_job *j, int r0, int r1, int t0, int t1) { abort(); }
#endif
#endif
