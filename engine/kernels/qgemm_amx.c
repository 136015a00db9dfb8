/* qgemm_amx.c - AMX-INT8 kernel of the int8 block GEMM: TDPBSSD on tiles
 * of 16 activation rows x 16 outputs.  Compiled for baseline x86-64; the
 * functions carry target attributes and run only when qgemm.c has checked
 * the CPU, the OS and the process's tile permission (cpu_features.h).
 * Layout (QPA1) and rounding contract: qgemm_kern.h.
 *
 * Tiles (palette 1): C[i][c] (int32, 16 x 16) for row tile i < 2 and output
 * tile c < 2, A[i] (activation rows x kstep bytes, straight from x), B[c]
 * (kstep / 4 x 64 bytes, straight from the pack, or for q4 from the K-chunk
 * widened to int8).  One micro-kernel step is 2 A loads, 2 B loads and 4
 * TDPBSSD: 32 rows x 32 outputs x kstep columns.
 *
 * Blocks: the K-step is 64 columns when the block is a multiple of 64, else
 * 32 (every block is a multiple of 32), so a block is a whole number of
 * steps and its dot ends in the C tiles.  Per block: zero the C tiles, run
 * the block's steps, store the C tiles (int32), then rescale them into fp32
 * accumulators in the scalar reference's order (f = bias, then per block
 * f += (w.d * x.d) * (float)dot, separate multiply and add, no FMA: the
 * file is compiled with -ffp-contract=off), so the outputs are
 * bit-identical to every other kernel.  Signed x signed products need no
 * bias correction (activation codes are in [-127, 127], weight codes
 * signed).
 *
 * Loop order (qk_amx): pairs of output tiles outer; K cut into chunks of
 * at most 1024 columns (a pair's int8 weights: 32 KB, in L1); row pairs (32
 * rows) inner, so a chunk's B tiles are reused by every row of the task.
 * Partial sums wait in y between chunks (the block order of the float sum
 * is unchanged).  q4 weights are widened per chunk into a 32 KB buffer
 * (the weight as a whole never is), once for all rows of the task.
 *
 * Tile state is per thread: every call configures the calling thread's
 * tiles (LDTILECFG; again only when the edge rows change the shapes) and
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

/* Tile registers (numbers, not an enum: they are part of the instruction):
 * C of row tile i and output tile c in 2i + c, A[i] in 4 + i, B[c] in 6 + c. */
#define TC00 0
#define TC01 1
#define TC10 2
#define TC11 3
#define TA0 4
#define TA1 5
#define TB0 6
#define TB1 7

enum {
    RT = 2,        /* row tiles (of 16 activation rows) per micro-kernel */
    CT = 2,        /* output tiles (of 16 outputs) per micro-kernel */
    KCHUNK = 1024, /* columns of a K-chunk: CT tiles' int8 weights in 32 KB */
};

TARGET static inline __mmask16 lane_mask(int valid) {
    return valid >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << valid) - 1);
}

/* Palette 1 for row tiles of m0 and m1 rows (m1 0: one row tile) and
 * K-steps of kstep bytes; the tiles of an absent row tile stay unused. */
static void make_config(qamx_cfg *cfg, int m0, int m1, int kstep) {
    memset(cfg, 0, sizeof(*cfg));
    cfg->palette = 1;
    const int m[RT] = {m0, m1};
    for (int i = 0; i < RT; i++) {
        if (!m[i]) continue;
        for (int c = 0; c < CT; c++) {
            cfg->rows[TC00 + CT * i + c] = (uint8_t)m[i];
            cfg->colsb[TC00 + CT * i + c] = QAMX_COLSB; /* 16 int32 */
        }
        cfg->rows[TA0 + i] = (uint8_t)m[i];
        cfg->colsb[TA0 + i] = (uint16_t)kstep;
    }
    for (int c = 0; c < CT; c++) {
        cfg->rows[TB0 + c] = (uint8_t)(kstep / 4);
        cfg->colsb[TB0 + c] = QPACK_RECORD;
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

/* One K-chunk of up to CT output tiles. */
typedef struct panel {
    int t, C;            /* first output tile, tiles */
    int b0, b1;          /* blocks [b0, b1) */
    int kstep;           /* bytes of a K-step: 64 or 32 */
    const int8_t *w[CT]; /* each tile's QPA1 q8 records from column b0 * block on */
    const float *sc;     /* weight scales as [b - b0][C][16] (not for raw) */
    __mmask16 mask[CT];  /* outputs of each tile that exist */
} panel;

/* Rows [r, r + m[0] + m[1]) (m[1] > 0 only if m[0] == 16) against a panel:
 * the tiles are configured for these shapes. */
TARGET static void rows_x_panel(const qk_job *j, const panel *pn, int r, const int m[RT]) {
    const qmat *x = j->x;
    const int blk = j->p->block, nb = j->p->cols / blk, K = j->p->cols;
    const int kstep = pn->kstep, steps = blk / kstep, R = m[1] ? 2 : 1, C = pn->C;
    const int raw = j->raw != NULL;
    float f[RT][CT][16][16] __attribute__((aligned(64)));
    int32_t acc[RT][CT][16][16] __attribute__((aligned(64)));
    if (!raw)
        for (int i = 0; i < R; i++)
            for (int c = 0; c < C; c++) {
                const size_t col = (size_t)(pn->t + c) * QPACK_TILE;
                for (int k = 0; k < m[i]; k++) {
                    __m512 v = pn->b0 > 0   ? _mm512_maskz_loadu_ps(pn->mask[c], j->y + (size_t)(r + 16 * i + k) * j->ldy + col)
                               : j->bias ? _mm512_maskz_loadu_ps(pn->mask[c], j->bias + col)
                                         : _mm512_setzero_ps();
                    _mm512_store_ps(f[i][c][k], v);
                }
            }
    for (int b = pn->b0; b < pn->b1; b++) {
        const int8_t *xa = (const int8_t *)x->codes + (size_t)r * K + (size_t)b * blk;
        const size_t wo = (size_t)(b - pn->b0) * blk * QPACK_TILE; /* 16 bytes per column */
        T_ZERO(TC00);
        if (C > 1) T_ZERO(TC01);
        if (R > 1) {
            T_ZERO(TC10);
            if (C > 1) T_ZERO(TC11);
        }
        for (int s = 0; s < steps; s++) {
            const int8_t *xs = xa + (size_t)s * kstep;
            const size_t ws = wo + (size_t)s * kstep * QPACK_TILE;
            T_LOAD(TA0, xs, (long)K);
            if (R > 1) T_LOAD(TA1, xs + (size_t)16 * K, (long)K);
            T_LOAD(TB0, pn->w[0] + ws, (long)QPACK_RECORD);
            if (C > 1) T_LOAD(TB1, pn->w[1] + ws, (long)QPACK_RECORD);
            T_DPBSSD(TC00, TA0, TB0);
            if (C > 1) T_DPBSSD(TC01, TA0, TB1);
            if (R > 1) {
                T_DPBSSD(TC10, TA1, TB0);
                if (C > 1) T_DPBSSD(TC11, TA1, TB1);
            }
        }
        T_STORE(TC00, acc[0][0], (long)sizeof(acc[0][0][0]));
        if (C > 1) T_STORE(TC01, acc[0][1], (long)sizeof(acc[0][0][0]));
        if (R > 1) {
            T_STORE(TC10, acc[1][0], (long)sizeof(acc[0][0][0]));
            if (C > 1) T_STORE(TC11, acc[1][1], (long)sizeof(acc[0][0][0]));
        }
        if (raw) { /* tests: the block dots */
            for (int i = 0; i < R; i++)
                for (int c = 0; c < C; c++)
                    for (int k = 0; k < m[i]; k++)
                        qk_raw_store(j, r + 16 * i + k, (pn->t + c) * 16, 16, b, acc[i][c][k]);
            continue;
        }
        /* f += (w.d * x.d) * (float)dot, 16 outputs per vector. */
        for (int c = 0; c < C; c++) {
            const __m512 wd = _mm512_load_ps(pn->sc + ((size_t)(b - pn->b0) * C + c) * QPACK_TILE);
            for (int i = 0; i < R; i++)
                for (int k = 0; k < m[i]; k++) {
                    __m512 s = _mm512_mul_ps(wd, _mm512_set1_ps(x->scales[(size_t)(r + 16 * i + k) * nb + b]));
                    __m512 d = _mm512_cvtepi32_ps(_mm512_load_si512(acc[i][c][k]));
                    _mm512_store_ps(f[i][c][k], _mm512_add_ps(_mm512_load_ps(f[i][c][k]), _mm512_mul_ps(s, d)));
                }
        }
    }
    if (raw) return;
    for (int i = 0; i < R; i++)
        for (int c = 0; c < C; c++)
            for (int k = 0; k < m[i]; k++)
                _mm512_mask_storeu_ps(j->y + (size_t)(r + 16 * i + k) * j->ldy + (size_t)(pn->t + c) * QPACK_TILE,
                                      pn->mask[c], _mm512_load_ps(f[i][c][k]));
}

TARGET void QK_AMX(const qk_job *j, int r0, int r1, int t0, int t1) {
    const qpack *p = j->p;
    const int blk = p->block, nb = p->cols / blk;
    const int kstep = blk % 64 ? 32 : 64;
    /* K-chunks of whole blocks, at most KCHUNK columns unless one block is
     * wider, evened out. */
    int nbc = KCHUNK / blk < 1 ? 1 : KCHUNK / blk;
    nbc = (nb + (nb + nbc - 1) / nbc - 1) / ((nb + nbc - 1) / nbc);
    const size_t kc = (size_t)nbc * blk;
    float sc[CT * QPACK_TILE * (KCHUNK / QMAT_GROUP)] __attribute__((aligned(64))); /* nbc <= 32 */
    int8_t wide_buf[CT * QPACK_TILE * KCHUNK] __attribute__((aligned(64))); /* q4 widened */
    int8_t *wide = wide_buf;
    if (p->bits == 4 && kc > KCHUNK && posix_memalign((void **)&wide, 64, CT * QPACK_TILE * kc)) abort();
    qamx_cfg cfg __attribute__((aligned(64)));
    int cur[RT] = {-1, -1}; /* the row-tile shapes configured, -1: none yet */
    for (int t = t0; t < t1; t += CT) {
        panel pn = {.t = t, .C = t1 - t < CT ? t1 - t : CT, .kstep = kstep, .sc = sc};
        for (int c = 0; c < pn.C; c++) pn.mask[c] = lane_mask(p->rows - (t + c) * QPACK_TILE);
        for (int b0 = 0; b0 < nb; b0 += nbc) {
            pn.b0 = b0;
            pn.b1 = b0 + nbc < nb ? b0 + nbc : nb;
            for (int c = 0; c < pn.C; c++) {
                const uint8_t *codes = qpack_codes(p, t + c);
                if (p->bits == 8) {
                    pn.w[c] = (const int8_t *)codes + (size_t)b0 * blk * QPACK_TILE;
                } else {
                    int8_t *dst = wide + (size_t)c * QPACK_TILE * kc;
                    widen_q4(codes + (size_t)b0 * blk * (QPACK_TILE / 2), (pn.b1 - b0) * blk / QMAT_GROUP, dst);
                    pn.w[c] = dst;
                }
            }
            if (!j->raw) qk_scales_transpose(j->wscales, p->rows, nb, t, t + pn.C, pn.b0, pn.b1, sc);
            for (int r = r0; r < r1; r += RT * 16) {
                int m[RT] = {r1 - r < 16 ? r1 - r : 16, r1 - r - 16};
                m[1] = m[1] < 0 ? 0 : m[1] > 16 ? 16 : m[1];
                if (m[0] != cur[0] || m[1] != cur[1]) {
                    make_config(&cfg, m[0], m[1], kstep);
                    T_CONFIG(&cfg);
                    cur[0] = m[0];
                    cur[1] = m[1];
                }
                rows_x_panel(j, &pn, r, m);
            }
        }
    }
    if (cur[0] >= 0) T_RELEASE();
    if (wide != wide_buf) free(wide);
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
