/* The AMX-INT8 kernel without AMX hardware: engine/qgemm_amx.c compiled
 * against an emulation of the tile instructions (engine/qgemm_amx_emu.h),
 * run through qgemm's own driver (QPA1 packing, task split, thread pool)
 * and against the scalar reference: int32 block dots exactly, float
 * outputs bit for bit, for q8 and q4 weights, every legal block size up to
 * 4096 (and wider), edge rows and columns, extreme codes, with and without
 * bias, packed or not, 1 to 3 threads.  The emulation itself is checked
 * against the instruction's definition, and it traps what the hardware
 * would.  The kernel's non-tile code is AVX-512 (as on every AMX CPU), so
 * without AVX-512 the test is skipped; on a CPU with AMX, test_kernels
 * runs the real kernel the same way. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/cpu_features.h"
#include "kernels/qgemm.h"
#include "kernels/qgemm_amx_emu.h"
#include "kernels/qgemm_kern.h"
#include "kernels/qmat.h"
#define QF_SEED 4242
#include "qgemm_fixtures.h"
#include "test_util.h"
#include "kernels/threadpool.h"

/* ------------------------------------------------------------------ */
/* the emulation                                                       */

/* A palette-1 config with the given shapes for tiles 0..2. */
static void config3(int rows0, int colsb0, int rows1, int colsb1, int rows2, int colsb2) {
    qamx_cfg c;
    memset(&c, 0, sizeof(c));
    c.palette = 1;
    c.rows[0] = (uint8_t)rows0, c.colsb[0] = (uint16_t)colsb0;
    c.rows[1] = (uint8_t)rows1, c.colsb[1] = (uint16_t)colsb1;
    c.rows[2] = (uint8_t)rows2, c.colsb[2] = (uint16_t)colsb2;
    amx_emu_loadconfig(&c);
}

/* TDPBSSD of the emulation against its definition, written out here
 * independently: random shapes, random and extreme bytes (-128 included),
 * a C that starts non-zero, and int32 wraparound. */
START_TEST(emulated_tdpbssd_matches_definition) {
    static int8_t a[16][64], b[16][64];
    static int32_t c0[16][16], c[16][16], want[16][16];
    for (int round = 0; round < 300; round++) {
        int M = irand(1, 16), K4 = irand(1, 16), N = irand(1, 16), pattern = round % 4;
        for (int m = 0; m < 16; m++)
            for (int k = 0; k < 64; k++) {
                a[m][k] = (int8_t)(pattern == 1 ? -128 : pattern == 2 ? 127 : irand(-128, 127));
                b[m][k] = (int8_t)(pattern == 1 ? -128 : pattern == 2 ? -128 : irand(-128, 127));
            }
        for (int m = 0; m < 16; m++)
            for (int n = 0; n < 16; n++)
                c0[m][n] = pattern == 3 ? (m + n) % 2 ? INT32_MAX - 5 : INT32_MIN + 5 : (int32_t)urand() - (1 << 23);
        for (int m = 0; m < M; m++)
            for (int n = 0; n < N; n++) {
                uint32_t s = (uint32_t)c0[m][n];
                for (int k = 0; k < 4 * K4; k++) s += (uint32_t)((int32_t)a[m][k] * (int32_t)b[k / 4][4 * n + k % 4]);
                want[m][n] = (int32_t)s;
            }
        config3(M, 4 * N, M, 4 * K4, K4, 4 * N); /* C, A, B */
        amx_emu_loadd(0, c0, sizeof(c0[0]));
        amx_emu_loadd(1, a, sizeof(a[0]));
        amx_emu_loadd(2, b, sizeof(b[0]));
        amx_emu_dpbssd(0, 1, 2);
        memset(c, 0x5A, sizeof(c));
        amx_emu_stored(0, c, sizeof(c[0]));
        for (int m = 0; m < 16; m++)
            for (int n = 0; n < 16; n++) {
                if (m < M && n < N)
                    ck_assert_msg(c[m][n] == want[m][n], "round %d C[%d][%d] = %d, want %d", round, m, n, c[m][n],
                                  want[m][n]);
                else /* outside the shape: untouched by the store */
                    ck_assert_int_eq((uint32_t)c[m][n], 0x5A5A5A5Au);
            }
        amx_emu_release();
    }
    /* LDTILECFG zeroes the tiles; TILEZERO too. */
    memset(a, 7, sizeof(a));
    config3(16, 64, 16, 64, 0, 0);
    amx_emu_loadd(0, a, sizeof(a[0]));
    amx_emu_loadd(1, a, sizeof(a[0]));
    config3(16, 64, 16, 64, 0, 0);
    amx_emu_zero(1);
    for (int t = 0; t < 2; t++) {
        memset(b, 7, sizeof(b));
        amx_emu_stored(t, b, sizeof(b[0]));
        for (int m = 0; m < 16; m++)
            for (int k = 0; k < 64; k++) ck_assert_int_eq(b[m][k], 0);
    }
    amx_emu_release();
}
END_TEST

/* The emulation traps what the hardware would: a tile instruction on a
 * thread whose tiles are not configured (each pool worker must configure
 * its own), and a TDPBSSD whose shapes do not fit. */
START_TEST(emulation_traps_unconfigured_tiles) {
    static int8_t buf[16][64];
    fprintf(stderr, "(expected trap) ");
    amx_emu_release();
    amx_emu_loadd(0, buf, 64);
}
END_TEST

START_TEST(emulation_traps_bad_shapes) {
    fprintf(stderr, "(expected trap) ");
    config3(16, 64, 16, 60, 16, 64); /* A 60 bytes wide against B of 16 rows */
    amx_emu_dpbssd(0, 1, 2);
}
END_TEST

/* ------------------------------------------------------------------ */
/* the kernel                                                          */

/* TDPBSSD executed by the emulation on this thread so far; and the tiles
 * must be released after every kernel call. */
static long dps_here(void) {
    int configured;
    long dps;
    qk_amx_emu_state(&configured, &dps);
    ck_assert_msg(!configured, "the kernel left this thread's tiles configured");
    return dps;
}

/* (weight bits, weight rows, activation rows, cols, block): edges of every
 * loop of the kernel. */
static const int shapes[][5] = {
    {8, 16, 16, 64, 64},     {4, 16, 16, 64, 64},     /* one tile of each, one step */
    {8, 1, 1, 32, 32},       {4, 1, 1, 32, 32},       /* the smallest: K-step 32 */
    {8, 32, 32, 128, 64},    {4, 32, 32, 128, 64},    /* one full 2 x 2 micro-kernel, 2 blocks */
    {8, 17, 5, 96, 32},      {4, 17, 5, 96, 32},      /* K not a multiple of 64 */
    {8, 33, 31, 160, 32},    {4, 33, 31, 160, 32},    /* second row tile of 15 rows */
    {8, 50, 47, 192, 64},    {4, 50, 47, 192, 64},    /* block 64 (the presets), edges */
    {8, 3, 13, 288, 96},     {4, 3, 13, 288, 96},     /* block 96: three 32-steps per block */
    {8, 47, 33, 256, 128},   {4, 47, 33, 256, 128},   /* block 128: two 64-steps, a row tile of 1 */
    {8, 64, 6, 768, 768},    {4, 64, 6, 768, 768},    /* one block per row */
    {8, 33, 64, 256, 256},   {4, 33, 64, 256, 256},   /* one block per row: row-tile pairs, odd output tiles */
    {8, 48, 47, 320, 320},   {4, 48, 47, 320, 320},   /* ... a pair then a full tile and 15 rows, 32-steps */
    {8, 16, 17, 1024, 1024}, {4, 16, 17, 1024, 1024}, /* ... one output tile, a full tile and 1 row */
    {8, 31, 40, 3072, 64},   {4, 31, 40, 3072, 64},   /* three K-chunks of 1024: partial sums in y */
    {8, 18, 17, 2112, 1056}, {4, 18, 17, 2112, 1056}, /* block wider than a K-chunk, 32-steps */
    {8, 40, 2, 4096, 4096},  {4, 40, 2, 4096, 4096},  /* the largest preset block */
    {8, 100, 70, 320, 64},   {4, 100, 70, 320, 64},   /* several tile pairs and row pairs */
    {8, 17, 2, 16416, 32},   {4, 17, 2, 16416, 32},   /* 513 blocks */
    {8, 5, 3, 16416, 16416}, {4, 5, 3, 16416, 16416}, /* one huge odd block */
};
#define NSHAPES (int)(sizeof(shapes) / sizeof(shapes[0]))

static void check_dots(const qmat *w, const qmat *x, const char *what, int edge) {
    size_t n = (size_t)x->rows * w->rows * (w->cols / w->block);
    int32_t *want = malloc(n * sizeof(int32_t)), *got = malloc(n * sizeof(int32_t));
    ck_assert(want && got);
    reference_dots(w, x, want);
    memset(got, 0x55, n * sizeof(int32_t));
    long before = dps_here();
    ck_assert_int_eq(qgemm_block_dots_kern(BCT_ISA_AMX, qk_amx_emu, w, x, got), BCT_OK);
    ck_assert(dps_here() > before);
    for (size_t i = 0; i < n; i++)
        ck_assert_msg(got[i] == want[i], "%s q%d %dx%dx%d block %d edge %d: dot %zu is %d, want %d", what, w->bits,
                      x->rows, w->rows, w->cols, w->block, edge, i, got[i], want[i]);
    free(want);
    free(got);
}

START_TEST(block_dots_exact) {
    int checked = 0;
    for (int s = 0; s < NSHAPES; s++)
        for (int edge = 0; edge < EDGE_COUNT; edge++) {
            qmat w, x;
            ck_assert_int_eq(qmat_alloc(&w, shapes[s][0], shapes[s][1], shapes[s][3], shapes[s][4]), BCT_OK);
            ck_assert_int_eq(qmat_alloc(&x, 8, shapes[s][2], shapes[s][3], shapes[s][4]), BCT_OK);
            fill(&w, &x, edge);
            check_dots(&w, &x, "shape", edge);
            checked++;
            qmat_free(&w);
            qmat_free(&x);
        }
    printf("amx (emulated) block dots: %d (shape, pattern) cases equal to the int64 reference\n", checked);
}
END_TEST

/* y of the emulated kernel through qgemm's driver, bit for bit against
 * qgemm_scalar: no pack, the QPA1 pack, a pack of the wrong layout (QPK1:
 * must be ignored), 1 to 3 threads, bias or not; y's padding columns
 * untouched. */
static void check_outputs(const qmat *w, const qmat *x, bct_pool *pools[3], const char *what) {
    const int W = w->rows, X = x->rows, ldy = W + 3;
    size_t ny = (size_t)X * ldy;
    float *bias = malloc((size_t)W * sizeof(float)), *want = malloc(ny * sizeof(float)),
          *nob = malloc(ny * sizeof(float)), *got = malloc(ny * sizeof(float));
    void *amx_pack = NULL, *qpk1_pack = NULL;
    ck_assert(bias && want && nob && got);
    ck_assert_int_eq(posix_memalign(&amx_pack, 64, qgemm_pack_bytes_isa(BCT_ISA_AMX, w)), 0);
    ck_assert_int_eq(posix_memalign(&qpk1_pack, 64, qgemm_pack_bytes_isa(BCT_ISA_AVX512VNNI, w)), 0);
    qgemm_pack_isa(BCT_ISA_AMX, w, amx_pack);
    qgemm_pack_isa(BCT_ISA_AVX512VNNI, w, qpk1_pack);
    for (int o = 0; o < W; o++) bias[o] = frand();
    for (size_t i = 0; i < ny; i++) want[i] = nob[i] = -7.0f;
    qgemm_scalar(w, x, bias, want, ldy);
    qgemm_scalar(w, x, NULL, nob, ldy);
    for (int variant = 0; variant < 3 * 4; variant++) {
        int threads = variant / 4 + 1, kind = variant % 4; /* 0 no pack, 1 QPA1, 2 QPK1, 3 QPA1 without bias */
        const void *pack = kind == 0 ? NULL : kind == 2 ? qpk1_pack : amx_pack;
        for (size_t i = 0; i < ny; i++) got[i] = -7.0f;
        long before = dps_here();
        qgemm_run_kern(BCT_ISA_AMX, qk_amx_emu, w, pack, x, kind == 3 ? NULL : bias, got, ldy, pools[threads - 1]);
        if (threads == 1) ck_assert(dps_here() > before);
        const float *ref = kind == 3 ? nob : want;
        for (size_t i = 0; i < ny; i++)
            ck_assert_msg(memcmp(&ref[i], &got[i], sizeof(float)) == 0,
                          "%s q%d %dx%dx%d block %d, %d threads, pack kind %d: y[%zu] = %.9g, scalar %.9g", what,
                          w->bits, X, W, w->cols, w->block, threads, kind, i, got[i], ref[i]);
    }
    free(amx_pack);
    free(qpk1_pack);
    free(bias);
    free(want);
    free(nob);
    free(got);
}

START_TEST(gemm_outputs_bit_identical) {
    bct_pool *pools[3] = {NULL, bct_pool_create(2), bct_pool_create(3)};
    ck_assert(pools[1] && pools[2]);
    for (int s = 0; s < NSHAPES; s++) {
        qmat w, x;
        ck_assert_int_eq(qmat_alloc(&w, shapes[s][0], shapes[s][1], shapes[s][3], shapes[s][4]), BCT_OK);
        ck_assert_int_eq(qmat_alloc(&x, 8, shapes[s][2], shapes[s][3], shapes[s][4]), BCT_OK);
        fill(&w, &x, s % 4 == 2 ? EDGE_MIN : s % 2 ? EDGE_MIXED : EDGE_RANDOM);
        check_outputs(&w, &x, pools, "shape");
        qmat_free(&w);
        qmat_free(&x);
    }
    bct_pool_free(pools[1]);
    bct_pool_free(pools[2]);
}
END_TEST

/* Every legal block up to 4096 (a multiple of 32: K-steps of 64 or 32,
 * K-chunks of several blocks or one), 1 to 3 blocks per row, q8 and q4,
 * odd row counts; dots exact and outputs bit-identical. */
START_TEST(every_block_size) {
    bct_pool *pools[3] = {NULL, bct_pool_create(2), bct_pool_create(3)};
    ck_assert(pools[1] && pools[2]);
    int cases = 0;
    for (int blk = 32; blk <= 4096; blk += 32)
        for (int bits = 8; bits >= 4; bits -= 4) {
            int nb = 1 + (blk / 32 + bits) % 3, W = 1 + (blk / 32 * 5 + bits) % 37, X = 1 + (blk / 32 * 7) % 35;
            qmat w, x;
            ck_assert_int_eq(qmat_alloc(&w, bits, W, nb * blk, blk), BCT_OK);
            ck_assert_int_eq(qmat_alloc(&x, 8, X, nb * blk, blk), BCT_OK);
            fill(&w, &x, blk % 320 == 0 ? EDGE_MIN : EDGE_RANDOM);
            check_dots(&w, &x, "block sweep", 0);
            if (blk % 96 == 32 || blk >= 4000) check_outputs(&w, &x, pools, "block sweep");
            qmat_free(&w);
            qmat_free(&x);
            cases++;
        }
    printf("amx (emulated): %d (block, bits) cases\n", cases);
    bct_pool_free(pools[1]);
    bct_pool_free(pools[2]);
}
END_TEST

/* The kernel on arbitrary task rectangles (rows from any offset, any
 * tile range, as a thread pool could hand out): the pieces make the same
 * y as the scalar reference. */
START_TEST(any_task_split) {
    for (int round = 0; round < 12; round++) {
        int bits = round % 2 ? 4 : 8, blk = round % 3 == 0 ? 32 : round % 3 == 1 ? 64 : 192;
        int W = irand(1, 90), X = irand(1, 80), K = blk * irand(1, 6);
        qmat w, x;
        ck_assert_int_eq(qmat_alloc(&w, bits, W, K, blk), BCT_OK);
        ck_assert_int_eq(qmat_alloc(&x, 8, X, K, blk), BCT_OK);
        fill(&w, &x, EDGE_RANDOM);
        float *bias = malloc((size_t)W * sizeof(float)), *want = malloc((size_t)X * W * sizeof(float)),
              *got = malloc((size_t)X * W * sizeof(float));
        void *pack = NULL;
        ck_assert(bias && want && got);
        ck_assert_int_eq(posix_memalign(&pack, 64, qgemm_pack_bytes_isa(BCT_ISA_AMX, &w)), 0);
        const qpack *p = qgemm_pack_isa(BCT_ISA_AMX, &w, pack);
        for (int o = 0; o < W; o++) bias[o] = frand();
        qgemm_scalar(&w, &x, bias, want, W);
        memset(got, 0xFF, (size_t)X * W * sizeof(float)); /* NaN: every element must be written */
        qk_job j = {p, w.scales, &x, bias, got, W, NULL, NULL, NULL, NULL};
        for (int r0 = 0; r0 < X;) {
            int r1 = r0 + irand(1, 40);
            r1 = r1 < X ? r1 : X;
            for (int t0 = 0; t0 < p->tiles;) {
                int t1 = t0 + irand(1, 3);
                t1 = t1 < p->tiles ? t1 : p->tiles;
                qk_amx_emu(&j, r0, r1, t0, t1);
                dps_here();
                t0 = t1;
            }
            r0 = r1;
        }
        ck_assert_msg(memcmp(want, got, (size_t)X * W * sizeof(float)) == 0, "round %d: q%d %dx%dx%d block %d",
                      round, bits, X, W, K, blk);
        free(pack);
        free(bias);
        free(want);
        free(got);
        qmat_free(&w);
        qmat_free(&x);
    }
}
END_TEST

/* QPA1 as qgemm_kern.h spells it out: q8 records are the signed codes
 * (byte 4l + j of record kq = w[16t + l][4kq + j], padding 0); q4 records
 * are QPK1's; the header names the layout. */
START_TEST(qpa1_layout) {
    for (int bits = 8; bits >= 4; bits -= 4) {
        qmat w, x;
        ck_assert_int_eq(qmat_alloc(&w, bits, 21, 128, 64), BCT_OK);
        ck_assert_int_eq(qmat_alloc(&x, 8, 1, 128, 64), BCT_OK);
        fill(&w, &x, EDGE_RANDOM);
        size_t n = qgemm_pack_bytes_isa(BCT_ISA_AMX, &w);
        ck_assert_uint_eq(n, qgemm_pack_bytes_isa(BCT_ISA_AVX512VNNI, &w));
        void *a = NULL, *q = NULL;
        ck_assert_int_eq(posix_memalign(&a, 64, n), 0);
        ck_assert_int_eq(posix_memalign(&q, 64, n), 0);
        const qpack *p = qgemm_pack_isa(BCT_ISA_AMX, &w, a);
        qgemm_pack_isa(BCT_ISA_AVX512VNNI, &w, q);
        ck_assert_uint_eq(p->magic, QPACK_AMX_MAGIC);
        ck_assert_int_eq(p->tiles, 2);
        for (int t = 0; t < p->tiles; t++) {
            const uint8_t *codes = qpack_codes(p, t), *qpk1 = qpack_codes(q, t);
            if (bits == 4) {
                ck_assert(memcmp(codes, qpk1, p->tile_bytes) == 0);
                continue;
            }
            for (int kq = 0; kq < w.cols / 4; kq++)
                for (int l = 0; l < 16; l++)
                    for (int jj = 0; jj < 4; jj++) {
                        int o = 16 * t + l;
                        int want = o < w.rows ? qmat_code(&w, qmat_row_codes(&w, o), 4 * kq + jj) : 0;
                        ck_assert_int_eq((int8_t)codes[(size_t)kq * QPACK_RECORD + 4 * l + jj], want);
                    }
        }
        free(a);
        free(q);
        qmat_free(&w);
        qmat_free(&x);
    }
}
END_TEST

int main(void) {
    const cpu_features *f = cpu_features_get();
    if (!(f->avx512f && f->avx512bw && f->avx512dq && f->avx512vl)) {
        printf("skipped: the AMX kernel's emulated build needs AVX-512 F/BW/DQ/VL\n");
        return 77;
    }
    printf("AMX on this CPU: %s (the kernel runs here on the emulation)\n",
           bct_isa_supported(BCT_ISA_AMX) ? "yes" : "no");
    Suite *s = suite_create("amx_emu");
    TCase *tc = tcase_create("amx_emu");
    tcase_set_timeout(tc, 600);
    tcase_add_test(tc, emulated_tdpbssd_matches_definition);
    tcase_add_test_raise_signal(tc, emulation_traps_unconfigured_tiles, SIGABRT);
    tcase_add_test_raise_signal(tc, emulation_traps_bad_shapes, SIGABRT);
    tcase_add_test(tc, qpa1_layout);
    tcase_add_test(tc, block_dots_exact);
    tcase_add_test(tc, gemm_outputs_bit_identical);
    tcase_add_test(tc, any_task_split);
    tcase_add_test(tc, every_block_size);
    suite_add_tcase(s, tc);
    return test_run_suite(s);
}
