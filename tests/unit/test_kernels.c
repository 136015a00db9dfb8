/* SIMD kernels against the scalar reference: the int32 block accumulators
 * of every kernel must equal the scalar ones exactly (random and extreme
 * codes, odd shapes), the float outputs and the activation quantizer must
 * be bit-identical, whole-model logits must be identical across ISAs and
 * thread counts, and the thread pool must run every task exactly once.
 * ISAs this CPU lacks are skipped (and named on stdout). */
#include <math.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#if defined(__linux__)
#include <sys/syscall.h>
#endif

#include "model/bert_forward.h"
#include "model/bert_model.h"
#include "compress.h"
#include "kernels/cpu_features.h"
#include "kernels/intops.h"
#include "kernels/intops_simd.h"
#include "kernels/qgemm.h"
#include "kernels/qmat.h"
#include "qgemm_fixtures.h"
#include "test_util.h"
#include "kernels/threadpool.h"

static const bct_isa simd_isas[] = {BCT_ISA_AVX2, BCT_ISA_AVXVNNI, BCT_ISA_AVX512VNNI, BCT_ISA_AMX};

/* ISAs to compare against the scalar reference on this machine. */
static int available(bct_isa isa) {
    static int said[BCT_ISA_COUNT];
    if (bct_isa_supported(isa)) return 1;
    if (!said[isa]) {
        printf("skipped: ISA %s is not available on this CPU/build\n", bct_isa_name(isa));
        said[isa] = 1;
    }
    return 0;
}

/* The cases: (weight bits, weight rows, activation rows, cols, block). */
static const int shapes[][5] = {
    {8, 16, 4, 32, 32},     {4, 16, 4, 32, 32},     /* one tile, one micro-tile */
    {8, 1, 1, 32, 32},      {4, 1, 1, 32, 32},      /* the smallest */
    {8, 17, 5, 96, 32},     {4, 17, 5, 96, 32},     /* K not a multiple of 64 */
    {8, 33, 7, 160, 32},    {4, 33, 7, 160, 32},    /* odd rows, 5 blocks */
    {8, 50, 9, 192, 64},    {4, 50, 9, 192, 64},    /* block 64 (the presets) */
    {8, 3, 13, 288, 96},    {4, 3, 13, 288, 96},    /* block 96, 3 outputs (a classifier) */
    {8, 47, 3, 256, 128},   {4, 47, 3, 256, 128},   /* block 128 */
    {8, 64, 6, 768, 768},   {4, 64, 6, 768, 768},   /* one block per row */
    {8, 33, 64, 256, 256},  {4, 33, 64, 256, 256},  /* one block per row: amx row-tile pairs, odd tiles */
    {8, 48, 47, 320, 320},  {4, 48, 47, 320, 320},  /* ... a pair, then a full tile and 15 rows */
    {8, 40, 2, 4096, 4096}, {4, 40, 2, 4096, 4096}, /* the largest block */
    {8, 100, 11, 320, 64},  {4, 100, 11, 320, 64},  /* several tile groups */
    {8, 17, 2, 16416, 32},  {4, 17, 2, 16416, 32},  /* 513 blocks: scales beyond the stack buffer */
};
#define NSHAPES (int)(sizeof(shapes) / sizeof(shapes[0]))

START_TEST(block_dots_exact) {
    int checked = 0;
    for (int s = 0; s < NSHAPES; s++)
        for (int edge = 0; edge < EDGE_COUNT; edge++) {
            int bits = shapes[s][0], W = shapes[s][1], X = shapes[s][2], K = shapes[s][3], blk = shapes[s][4];
            qmat w, x;
            ck_assert_int_eq(qmat_alloc(&w, bits, W, K, blk), BCT_OK);
            ck_assert_int_eq(qmat_alloc(&x, 8, X, K, blk), BCT_OK);
            fill(&w, &x, edge);
            size_t n = (size_t)X * W * (K / blk);
            int32_t *want = malloc(n * sizeof(int32_t)), *got = malloc(n * sizeof(int32_t));
            reference_dots(&w, &x, want);
            ck_assert_int_eq(qgemm_block_dots(BCT_ISA_SCALAR, &w, &x, got), BCT_OK);
            ck_assert_msg(memcmp(want, got, n * sizeof(int32_t)) == 0, "scalar q%d shape %d", bits, s);
            for (size_t k = 0; k < sizeof(simd_isas) / sizeof(simd_isas[0]); k++) {
                bct_isa isa = simd_isas[k];
                if (!available(isa)) continue;
                memset(got, 0x55, n * sizeof(int32_t));
                ck_assert_int_eq(qgemm_block_dots(isa, &w, &x, got), BCT_OK);
                for (size_t i = 0; i < n; i++)
                    ck_assert_msg(got[i] == want[i], "%s q%d %dx%dx%d block %d edge %d: dot %zu is %d, want %d",
                                  bct_isa_name(isa), bits, X, W, K, blk, edge, i, got[i], want[i]);
                checked++;
            }
            free(want);
            free(got);
            qmat_free(&w);
            qmat_free(&x);
        }
    printf("block dots: %d (ISA, shape, pattern) cases equal to the int64 reference\n", checked);
}
END_TEST

/* Float outputs of every kernel, packed or not, threaded or not, are
 * bit-identical to the scalar reference. */
START_TEST(gemm_outputs_bit_identical) {
    bct_pool *pool = bct_pool_create(3);
    ck_assert_ptr_nonnull(pool);
    bct_isa saved = qgemm_isa();
    for (int s = 0; s < NSHAPES; s++) {
        int bits = shapes[s][0], W = shapes[s][1], X = shapes[s][2], K = shapes[s][3], blk = shapes[s][4];
        qmat w, x;
        ck_assert_int_eq(qmat_alloc(&w, bits, W, K, blk), BCT_OK);
        ck_assert_int_eq(qmat_alloc(&x, 8, X, K, blk), BCT_OK);
        fill(&w, &x, EDGE_RANDOM);
        float *bias = malloc((size_t)W * sizeof(float));
        for (int o = 0; o < W; o++) bias[o] = frand();
        int ldy = W + 3;
        size_t ny = (size_t)X * ldy;
        float *want = malloc(ny * sizeof(float)), *got = malloc(ny * sizeof(float));
        for (size_t i = 0; i < ny; i++) want[i] = got[i] = -7.0f; /* padding columns stay */
        qgemm_scalar(&w, &x, bias, want, ldy);
        for (size_t k = 0; k < sizeof(simd_isas) / sizeof(simd_isas[0]); k++) {
            bct_isa isa = simd_isas[k];
            if (!available(isa)) continue;
            ck_assert_int_eq(qgemm_set_isa(isa), BCT_OK);
            for (int variant = 0; variant < 4; variant++) {
                int prepared = variant & 1, threaded = variant >> 1;
                if (prepared) ck_assert_int_eq(qgemm_prepare(&w), BCT_OK);
                memset(got, 0, ny * sizeof(float));
                for (size_t i = 0; i < ny; i++) got[i] = -7.0f;
                qgemm_run(&w, prepared ? w.pack : NULL, &x, variant == 3 ? NULL : bias, got, ldy,
                          threaded ? pool : NULL);
                if (variant == 3) { /* no bias: compare with the reference without one */
                    float *nob = malloc(ny * sizeof(float));
                    for (size_t i = 0; i < ny; i++) nob[i] = -7.0f;
                    qgemm_scalar(&w, &x, NULL, nob, ldy);
                    ck_assert_msg(memcmp(nob, got, ny * sizeof(float)) == 0, "%s shape %d no bias",
                                  bct_isa_name(isa), s);
                    free(nob);
                } else {
                    for (size_t i = 0; i < ny; i++)
                        ck_assert_msg(memcmp(&want[i], &got[i], sizeof(float)) == 0,
                                      "%s q%d shape %d variant %d: y[%zu] = %.9g, scalar %.9g", bct_isa_name(isa),
                                      bits, s, variant, i, got[i], want[i]);
                }
                free(w.pack);
                w.pack = NULL;
            }
        }
        ck_assert_int_eq(qgemm_set_isa(saved), BCT_OK);
        free(bias);
        free(want);
        free(got);
        qmat_free(&w);
        qmat_free(&x);
    }
    bct_pool_free(pool);
}
END_TEST

/* A weight whose owner dropped its codes after qgemm_prepare (what the
 * .bct loader does): the scalar reference reads the pack, and another
 * kernel repacks from it, with the same dots and outputs as with codes. */
START_TEST(dropped_codes_read_from_pack) {
    bct_isa saved = qgemm_isa();
    int checked = 0;
    for (int s = 0; s < NSHAPES; s++)
        for (size_t pk = 0; pk < sizeof(simd_isas) / sizeof(simd_isas[0]); pk++) {
            if (!bct_isa_supported(simd_isas[pk])) continue;
            int bits = shapes[s][0], W = shapes[s][1], X = shapes[s][2], K = shapes[s][3], blk = shapes[s][4];
            qmat w, x;
            ck_assert_int_eq(qmat_alloc(&w, bits, W, K, blk), BCT_OK);
            ck_assert_int_eq(qmat_alloc(&x, 8, X, K, blk), BCT_OK);
            fill(&w, &x, (s + (int)pk) % EDGE_COUNT);
            size_t n = (size_t)X * W * (K / blk), ny = (size_t)X * W;
            int32_t *want = malloc(n * sizeof(int32_t)), *got = malloc(n * sizeof(int32_t));
            float *ywant = malloc(ny * sizeof(float)), *y = malloc(ny * sizeof(float));
            reference_dots(&w, &x, want);
            qgemm_scalar(&w, &x, NULL, ywant, W);
            ck_assert_int_eq(qgemm_set_isa(simd_isas[pk]), BCT_OK);
            ck_assert_int_eq(qgemm_prepare(&w), BCT_OK);
            qmat packed = w;
            packed.codes = NULL;
            for (int q = 0; q < BCT_ISA_COUNT; q++) {
                if (!bct_isa_supported((bct_isa)q)) continue;
                memset(got, 0x55, n * sizeof(int32_t));
                ck_assert_int_eq(qgemm_block_dots((bct_isa)q, &packed, &x, got), BCT_OK);
                ck_assert_msg(memcmp(want, got, n * sizeof(int32_t)) == 0, "packed for %s, run on %s: q%d shape %d",
                              bct_isa_name(simd_isas[pk]), bct_isa_name((bct_isa)q), bits, s);
                ck_assert_int_eq(qgemm_set_isa((bct_isa)q), BCT_OK);
                memset(y, 0, ny * sizeof(float));
                qgemm(&packed, &x, NULL, y, W);
                ck_assert_msg(memcmp(ywant, y, ny * sizeof(float)) == 0, "packed for %s, run on %s: q%d shape %d y",
                              bct_isa_name(simd_isas[pk]), bct_isa_name((bct_isa)q), bits, s);
                checked++;
            }
            free(want);
            free(got);
            free(ywant);
            free(y);
            qmat_free(&w);
            qmat_free(&x);
        }
    ck_assert_int_eq(qgemm_set_isa(saved), BCT_OK);
    printf("dropped codes: %d (packing ISA, running ISA, shape) cases equal to the reference\n", checked);
}
END_TEST

/* Rounding sweep: with max|x| = 127 the quantizer's multiplier is exactly
 * 1, so codes are lroundf(x): run ~16M floats of [-127, 127] (every 64th
 * bit pattern, plus each half-integer and its neighbours) through every
 * ISA's quantizer. */
static void rounding_sweep(bct_isa isa) {
    enum { N = 4096 };
    static float x[N];
    qmat a, b;
    ck_assert_int_eq(qmat_alloc(&a, 8, 1, N, N), BCT_OK);
    ck_assert_int_eq(qmat_alloc(&b, 8, 1, N, N), BCT_OK);
    uint32_t u = 0;
    const uint32_t top = 0x42FE0000u; /* 127.0f */
    for (int done = 0; !done;) {
        x[0] = 127.0f;
        for (int i = 1; i < N; i++) {
            float v;
            if (i < 64) { /* half-integers and neighbours */
                uint32_t h;
                float base = (float)(u % 127) + 0.5f;
                memcpy(&h, &base, 4);
                h += (uint32_t)(i % 3) - 1;
                memcpy(&v, &h, 4);
            } else {
                memcpy(&v, &u, 4);
                u += 64;
                if (u > top) done = 1, u = top;
            }
            x[i] = i & 1 ? -v : v;
        }
        qmat_quantize_act_isa(BCT_ISA_SCALAR, &a, x, N);
        qmat_quantize_act_isa(isa, &b, x, N);
        ck_assert_msg(memcmp(a.codes, b.codes, N) == 0, "%s rounding near %a", bct_isa_name(isa), x[N - 1]);
    }
    qmat_free(&a);
    qmat_free(&b);
}

START_TEST(quantize_act_bit_identical) {
    for (size_t k = 0; k < sizeof(simd_isas) / sizeof(simd_isas[0]); k++)
        if (available(simd_isas[k])) rounding_sweep(simd_isas[k]);
    const int cols[] = {32, 64, 96, 768, 4096}, blocks[] = {32, 32, 96, 64, 4096};
    for (size_t c = 0; c < sizeof(cols) / sizeof(cols[0]); c++) {
        int rows = 9, n = cols[c], ld = n + 5;
        float *x = malloc((size_t)rows * ld * sizeof(float));
        for (int r = 0; r < rows; r++)
            for (int i = 0; i < ld; i++) {
                float v = frand() * (r == 1 ? 1e-30f : r == 2 ? 3e4f : 2.0f);
                if (r == 3) v = 0.0f;                                  /* all-zero row */
                if (r == 4) v = (float)irand(-127, 127) * 0.5f;          /* exact halves: ties */
                if (r == 5) v = i % 32 == 0 ? 127.0f : (float)(i % 255) - 127.0f + 0.5f;
                if (r == 6) v = i % 2 ? -0.0f : 1e-45f;                 /* denormal */
                x[(size_t)r * ld + i] = v;
            }
        qmat want, got;
        ck_assert_int_eq(qmat_alloc(&want, 8, rows, n, blocks[c]), BCT_OK);
        ck_assert_int_eq(qmat_alloc(&got, 8, rows, n, blocks[c]), BCT_OK);
        ck_assert_int_eq(qmat_quantize_act_isa(BCT_ISA_SCALAR, &want, x, ld), BCT_OK);
        for (size_t k = 0; k < sizeof(simd_isas) / sizeof(simd_isas[0]); k++) {
            if (!available(simd_isas[k])) continue;
            memset(got.codes, 0x55, (size_t)rows * n);
            ck_assert_int_eq(qmat_quantize_act_isa(simd_isas[k], &got, x, ld), BCT_OK);
            ck_assert_msg(memcmp(want.codes, got.codes, (size_t)rows * n) == 0, "%s codes, cols %d",
                          bct_isa_name(simd_isas[k]), n);
            ck_assert_msg(memcmp(want.scales, got.scales, (size_t)rows * (n / blocks[c]) * sizeof(float)) == 0,
                          "%s scales, cols %d", bct_isa_name(simd_isas[k]), n);
        }
        /* The row-split version gives the same codes. */
        bct_pool *pool = bct_pool_create(2);
        memset(got.codes, 0x55, (size_t)rows * n);
        qmat_quantize_act_mt(&got, x, ld, pool);
        qmat tmp;
        ck_assert_int_eq(qmat_alloc(&tmp, 8, rows, n, blocks[c]), BCT_OK);
        qmat_quantize_act(&tmp, x, ld);
        ck_assert(memcmp(tmp.codes, got.codes, (size_t)rows * n) == 0);
        qmat_free(&tmp);
        bct_pool_free(pool);
        qmat_free(&want);
        qmat_free(&got);
        free(x);
    }
}
END_TEST

/* ------------------------------------------------------------------ */
/* integer non-linear ops                                              */

/* Random codes of a given magnitude, with some extremes. */
static void random_codes(int32_t *q, int n, int32_t mag) {
    for (int i = 0; i < n; i++) {
        int32_t v = (int32_t)((int64_t)(urand() % (2u * (uint32_t)mag + 1)) - mag);
        if (i % 17 == 3) v = mag;
        if (i % 19 == 5) v = -mag;
        if (i % 23 == 7) v = 0;
        q[i] = v;
    }
}

/* Every case of one ISA against the scalar ops; returns the number of
 * (length, magnitude, bits) cases. */
static int intops_check(bct_isa isa) {
    const char *name = bct_isa_name(isa);
    const iops *o = iops_for(isa);
    enum { N = 3100 };
    static float x[N], ya[N], yb[N];
    static int32_t qa[N], qb[N], pa[N], pb[N];
    const int lens[] = {1, 7, 8, 15, 16, 17, 31, 64, 128, 129, 500, 768, 3072};
    const float mags[] = {1e-30f, 1e-3f, 0.5f, 3.0f, 70.0f, 1e6f};
    int cases = 0;
    /* Exact ties: max |x| = qmax gives scale 1, so x = k + 1/2 rounds away from zero. */
    for (int bits = 8; bits <= 24; bits += 8) {
        for (int i = 0; i < 101; i++) x[i] = (float)(i - 50) + 0.5f;
        x[7] = (float)((1 << (bits - 1)) - 1);
        ck_assert(iop_quantize_row(x, 101, bits, qa) == 1.0f && o->quantize_row(x, 101, bits, qb) == 1.0f);
        ck_assert_msg(memcmp(qa, qb, 101 * sizeof(int32_t)) == 0, "%s quantize ties bits %d", name, bits);
    }
    /* Near ties after scaling, where a fast float path must agree with the
     * reference's double arithmetic (or fall back to it): x = (k + 1/2)
     * scale moved by 0-3 ulps either way, for random scales. */
    for (int rep = 0; rep < 400; rep++) {
        int bits = rep % 3 == 2 ? 12 : rep % 2 ? 16 : 8, n = 1000, qmax = (1 << (bits - 1)) - 1;
        float amax = 1e-3f + 100.0f * (float)(urand() % 100000) / 100000.0f;
        x[0] = amax;
        for (int i = 1; i < n; i++) {
            float v = ((float)irand(-qmax, qmax - 1) + 0.5f) * (amax / (float)qmax);
            for (int u = irand(0, 3), dir = irand(0, 1); u > 0; u--) v = nextafterf(v, dir ? INFINITY : -INFINITY);
            x[i] = fabsf(v) > amax ? amax : v;
        }
        float sa = iop_quantize_row(x, n, bits, qa), sb = o->quantize_row(x, n, bits, qb);
        ck_assert(memcmp(&sa, &sb, sizeof(float)) == 0);
        ck_assert_msg(memcmp(qa, qb, (size_t)n * sizeof(int32_t)) == 0, "%s quantize near ties bits %d rep %d", name,
                      bits, rep);
    }
    for (size_t li = 0; li < sizeof(lens) / sizeof(lens[0]); li++)
        for (size_t mi = 0; mi < sizeof(mags) / sizeof(mags[0]); mi++)
            for (int bits = 8; bits <= 24; bits += 8) {
                int n = lens[li];
                for (int i = 0; i < n; i++) x[i] = frand() * mags[mi];
                if (n > 3) x[n / 2] = (float)(1 << (bits - 1)) * 0.5f; /* ties after scaling */
                float sa = iop_quantize_row(x, n, bits, qa), sb = o->quantize_row(x, n, bits, qb);
                ck_assert(memcmp(&sa, &sb, sizeof(float)) == 0);
                ck_assert_msg(memcmp(qa, qb, (size_t)n * sizeof(int32_t)) == 0, "%s quantize n %d bits %d mag %g",
                              name, n, bits, mags[mi]);
                /* GELU over the codes' range and beyond its clamp. */
                for (int clamp = 0; clamp < 2; clamp++) {
                    random_codes(qa, n, clamp ? 100000 : (1 << (bits - 1)) - 1);
                    float osa, osb, scale = mags[mi] / 1000.0f;
                    iop_gelu(qa, n, scale, pa, &osa);
                    o->gelu(qa, n, scale, pb, &osb);
                    ck_assert(memcmp(&osa, &osb, sizeof(float)) == 0);
                    ck_assert_msg(memcmp(pa, pb, (size_t)n * sizeof(int32_t)) == 0, "%s gelu n %d scale %g", name, n,
                                  scale);
                }
                /* Softmax: several scales, including all-equal rows and huge ranges
                 * (a single survivor or a uniform row of 2^k codes: factor 2^32). */
                for (int k = 0; k < 4; k++) {
                    random_codes(qa, n, k == 3 ? 2000000000 : (1 << (bits - 1)) - 1);
                    if (k == 2)
                        for (int i = 0; i < n; i++) qa[i] = 42;
                    float scale = k == 1 ? 0.0f : mags[mi] / (float)(1 << (bits - 1));
                    for (int ob = 8; ob <= 30; ob += 11) {
                        iop_softmax(qa, n, scale, pa, ob);
                        o->softmax(qa, n, scale, pb, ob);
                        ck_assert_msg(memcmp(pa, pb, (size_t)n * sizeof(int32_t)) == 0, "%s softmax n %d k %d ob %d",
                                      name, n, k, ob);
                    }
                }
                cases++;
            }
    /* LayerNorm: the engine's sizes, with gamma/beta of several ranges. */
    const int ln_n[] = {1, 9, 64, 96, 768, 1024};
    for (size_t li = 0; li < sizeof(ln_n) / sizeof(ln_n[0]); li++)
        for (int r = 0; r < 8; r++) {
            int n = ln_n[li];
            float *g = malloc((size_t)n * sizeof(float)), *b = malloc((size_t)n * sizeof(float));
            for (int i = 0; i < n; i++) {
                g[i] = r == 7 ? 1.0f : 1.0f + frand() * (r == 4 ? 1000.0f : 0.3f);
                b[i] = r == 7 ? 0x1p-24f + 0x1p-47f : frand() * (r == 5 ? 5000.0f : 0.2f);
            }
            iop_ln_params p;
            ck_assert_int_eq(iop_ln_init(&p, g, b, n, 1e-12f), BCT_OK);
            int32_t mag = r == 0 ? 3 : r == 1 ? 32767 : r == 2 ? 2000000000 : 8388607;
            random_codes(qa, n, mag);
            if (r == 3)
                for (int i = 0; i < n; i++) qa[i] = 5; /* constant row */
            /* +-1: sum of squares n^3, for n = 64, 1024 a power of 4 (1/std =
             * 2^32).  With r == 7's gamma/beta the outputs are exact float ties
             * decided by bits below 2^11: acc = 2^56 + 2^32 + 2^9 (n = 64),
             * 2^54 + 2^30 + 2^7 (n = 1024). */
            if (r >= 6)
                for (int i = 0; i < n; i++) qa[i] = i % 2 ? 1 : -1;
            for (int sc = 0; sc < 3; sc++) {
                float scale = sc == 0 ? 0.0f : sc == 1 ? 1e-3f : 1e-9f;
                iop_layernorm_scaled(&p, qa, scale, ya);
                o->layernorm_scaled(&p, qa, scale, yb);
                for (int i = 0; i < n; i++)
                    ck_assert_msg(memcmp(&ya[i], &yb[i], sizeof(float)) == 0,
                                  "%s layernorm n %d r %d sc %d i %d: %.9g vs %.9g", name, n, r, sc, i, yb[i], ya[i]);
            }
            iop_ln_free(&p);
            free(g);
            free(b);
        }
    /* N = round(c inv / 2^s) has more bits than the float output: make it
     * exact there (n = 16, gamma 1, beta 0: y = N 2^-28 when |N| < 2^24).
     * Equal codes v and two outliers v + d, v - d - c give the 14 v's the
     * centred value c and a small N.  About one row in 1000 meets an exact
     * tie of N's rounding (c a power of two, d in [3c, 6c]) and as many the
     * residue just below one (c = 1..3, d up to 204); with d ~ 2^25 the
     * centred values are shifted by 1 and every odd c is a tie there. */
    {
        enum { LN = 16 };
        float g[LN], b[LN];
        for (int i = 0; i < LN; i++) g[i] = 1.0f, b[i] = 0.0f;
        iop_ln_params p;
        ck_assert_int_eq(iop_ln_init(&p, g, b, LN, 0.0f), BCT_OK);
        for (int row = 0; row < 30000; row++) {
            int32_t v = (int32_t)(urand() % 2001) - 1000, c, d;
            switch (row % 3) {
            case 0:
                c = 1 + (int32_t)(urand() % 3);
                d = 5 + (int32_t)(urand() % 200);
                break;
            case 1:
                c = 1 << (urand() % 7);
                d = 3 * c + (int32_t)(urand() % (3 * (unsigned)c + 1));
                break;
            default:
                c = 1 + 2 * (int32_t)(urand() % 500);
                d = (1 << 25) + (int32_t)(urand() % (1 << 20));
                break;
            }
            for (int i = 0; i < LN; i++) qa[i] = v;
            qa[3] = v + d;
            qa[9] = v - d - c;
            iop_layernorm_scaled(&p, qa, 0.0f, ya);
            o->layernorm_scaled(&p, qa, 0.0f, yb);
            ck_assert_msg(memcmp(ya, yb, LN * sizeof(float)) == 0, "%s layernorm small N, row %d", name, row);
        }
        iop_ln_free(&p);
    }
    /* The fused steps and the V^T transpose, through the dispatch table. */
    const iops *sc = iops_for(BCT_ISA_SCALAR), *vx = o;
    ck_assert_ptr_ne(sc, vx);
    for (int rows = 1; rows <= 40; rows += 13) {
        static float src[40 * 70], da[70 * 48], db[70 * 48];
        for (int i = 0; i < 40 * 70; i++) src[i] = frand();
        memset(da, 0x7f, sizeof(da));
        memset(db, 0x7f, sizeof(db));
        sc->transpose(src, 70, rows, 64, da, 48);
        vx->transpose(src, 70, rows, 64, db, 48);
        ck_assert_msg(memcmp(da, db, 64 * 48 * sizeof(float)) == 0, "%s transpose rows %d", name, rows);
        for (int i = 0; i < rows; i++) ck_assert(da[5 * 48 + i] == src[i * 70 + 5]);
    }
    for (int n = 32; n <= 512; n *= 4) { /* ibuf (qa, qb) holds 2 n */
        for (int i = 0; i < n; i++) ya[i] = yb[i] = frand() * 4.0f;
        iops_gelu_block(sc, ya, n, 16, qa);
        iops_gelu_block(vx, yb, n, 16, qb);
        ck_assert_msg(memcmp(ya, yb, (size_t)n * sizeof(float)) == 0, "%s gelu_block n %d", name, n);
        for (int i = 0; i < n; i++) ya[i] = yb[i] = frand() * 9.0f;
        iops_softmax_row(sc, ya, n, 0.125f, 16, 16, qa);
        iops_softmax_row(vx, yb, n, 0.125f, 16, 16, qb);
        ck_assert_msg(memcmp(ya, yb, (size_t)n * sizeof(float)) == 0, "%s softmax_row n %d", name, n);
    }
    /* LayerNorm step with and without the residual, in place. */
    static const int ln_step_n[] = {9, 96, 768};
    for (size_t li = 0; li < sizeof(ln_step_n) / sizeof(ln_step_n[0]); li++) {
        int n = ln_step_n[li];
        float *g = malloc((size_t)n * sizeof(float)), *b = malloc((size_t)n * sizeof(float));
        float *res = malloc((size_t)n * sizeof(float));
        for (int i = 0; i < n; i++) {
            g[i] = 1.0f + frand() * 0.3f;
            b[i] = frand() * 0.2f;
            res[i] = frand() * 3.0f;
        }
        iop_ln_params p;
        ck_assert_int_eq(iop_ln_init(&p, g, b, n, 1e-12f), BCT_OK);
        for (int withres = 0; withres < 2; withres++) {
            for (int i = 0; i < n; i++) ya[i] = yb[i] = frand() * 5.0f;
            iops_layernorm(sc, &p, ya, withres ? res : NULL, 16, qa);
            iops_layernorm(vx, &p, yb, withres ? res : NULL, 16, qb);
            ck_assert_msg(memcmp(ya, yb, (size_t)n * sizeof(float)) == 0, "%s layernorm step n %d res %d", name, n,
                          withres);
        }
        iop_ln_free(&p);
        free(g);
        free(b);
        free(res);
    }
    return cases;
}

START_TEST(intops_simd_bit_identical) {
    /* The ISAs with a set of their own (iops_for). */
    static const bct_isa sets[] = {BCT_ISA_AVX2, BCT_ISA_AVX512VNNI};
    for (size_t k = 0; k < sizeof(sets) / sizeof(sets[0]); k++) {
        if (!available(sets[k])) continue;
        int cases = intops_check(sets[k]);
        printf("integer ops %s: %d (length, magnitude, bits) cases bit-identical\n", bct_isa_name(sets[k]), cases);
    }
    /* Levels without their own set use the one they build on. */
    if (available(BCT_ISA_AVXVNNI)) ck_assert_ptr_eq(iops_for(BCT_ISA_AVXVNNI), iops_for(BCT_ISA_AVX2));
    if (available(BCT_ISA_AMX)) ck_assert_ptr_eq(iops_for(BCT_ISA_AMX), iops_for(BCT_ISA_AVX512VNNI));
    if (available(BCT_ISA_AVX2) && available(BCT_ISA_AVX512VNNI))
        ck_assert_ptr_ne(iops_for(BCT_ISA_AVX2), iops_for(BCT_ISA_AVX512VNNI));
}
END_TEST

/* ------------------------------------------------------------------ */
/* thread pool                                                         */

typedef struct count_ctx {
    atomic_int *hits;
    atomic_int calls;
    bct_pool *pool;
    int bad_worker;
} count_ctx;

static void count_fn(void *ctx, int task, int worker) {
    count_ctx *c = ctx;
    atomic_fetch_add(&c->hits[task], 1);
    atomic_fetch_add(&c->calls, 1);
    if (worker < 0 || worker >= bct_pool_threads(c->pool)) c->bad_worker = 1;
}

static void nested_fn(void *ctx, int task, int worker) {
    count_ctx *c = ctx;
    count_ctx inner = {c->hits, 0, c->pool, 0};
    bct_pool_run(c->pool, 3, count_fn, &inner); /* busy pool: runs inline */
    atomic_fetch_add(&c->calls, atomic_load(&inner.calls));
}

START_TEST(pool_runs_every_task_once) {
    for (int threads = 1; threads <= 4; threads++) {
        bct_pool *p = bct_pool_create(threads);
        ck_assert_ptr_nonnull(p);
        ck_assert_int_eq(bct_pool_threads(p), threads);
        for (int round = 0; round < 200; round++) {
            int n = round % 37;
            atomic_int hits[64];
            for (int i = 0; i < 64; i++) atomic_init(&hits[i], 0);
            count_ctx c = {hits, 0, p, 0};
            bct_pool_run(p, n, count_fn, &c);
            for (int i = 0; i < 64; i++) ck_assert_int_eq(atomic_load(&hits[i]), i < n ? 1 : 0);
            ck_assert(!c.bad_worker);
            if (round % 50 == 0) usleep(2000); /* let helpers fall asleep */
        }
        atomic_int hits[3];
        for (int i = 0; i < 3; i++) atomic_init(&hits[i], 0);
        count_ctx c = {hits, 0, p, 0};
        bct_pool_run(p, 5, nested_fn, &c);
        ck_assert_int_eq(atomic_load(&c.calls), 15);
        bct_pool_free(p);
    }
    bct_pool_run(NULL, 4, count_fn, &(count_ctx){(atomic_int[4]){0}, 0, NULL, 0});
}
END_TEST

/* ------------------------------------------------------------------ */
/* whole model                                                         */

static const char *const tiny_vocab[] = {"[PAD]", "[UNK]", "[CLS]", "[SEP]", "hello", "world", "##s", ",",
                                    "the", "cat", "sat", "on", "mat", "a", "dog"};

/* Logits of 5 sequences of different lengths, with `threads` threads. */
static void run_model(const char *path, int threads, float *logits) {
    bct_error err = {{0}};
    bert_model *m;
    ck_assert_msg(bert_model_load(path, &m, &err) == BCT_OK, "%s", err.msg);
    enum { NS = 5, MAXLEN = 40 };
    int32_t ids[NS][MAXLEN];
    uint8_t types[NS][MAXLEN];
    bert_seq seqs[NS];
    unsigned s = 99;
    for (int i = 0; i < NS; i++) {
        int len = 3 + i * 9;
        for (int t = 0; t < len; t++) {
            s = s * 1103515245u + 12345u;
            ids[i][t] = t == 0 ? 2 : t == len - 1 ? 3 : 4 + (int)((s >> 8) % 11);
            types[i][t] = t > len / 2;
        }
        seqs[i] = (bert_seq){ids[i], types[i], len};
    }
    bert_ws *ws = bert_ws_create();
    bct_pool *pool = threads > 1 ? bct_pool_create(threads) : NULL;
    bert_ws_set_pool(ws, pool);
    ck_assert_msg(bert_forward(m, seqs, NS, logits, ws, &err) == BCT_OK, "%s", err.msg);
    bert_ws_free(ws);
    bct_pool_free(pool);
    bert_model_free(m);
}

START_TEST(model_logits_identical_across_isas) {
    char dir[64], hf[96], path[128];
    snprintf(dir, sizeof(dir), "/tmp/bct_k_XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(dir));
    snprintf(hf, sizeof(hf), "%s/hf", dir);
    /* hidden 96 = 3 heads of 32; FFN 192. */
    ck_assert_int_eq(test_write_tiny_bert(hf, 2, 96, 3, 192, tiny_vocab, 15, 0, 11), 0);
    bct_isa saved = qgemm_isa();
    const char *presets[] = {"w8a8", "w4a8", "w8a8r"};
    for (int pi = 0; pi < 3; pi++) {
        bct_error err = {{0}};
        compress_opts o;
        ck_assert_int_eq(compress_preset(presets[pi], &o, &err), BCT_OK);
        o.embeddings.block = o.tables.block = 32;
        if (pi < 2) o.weights.block = 32; /* w8a8r: one block per weight row */
        snprintf(path, sizeof(path), "%s/%s.bct", dir, presets[pi]);
        compress_report rep;
        ck_assert_msg(compress_checkpoint(hf, path, &o, &rep, &err) == BCT_OK, "%s", err.msg);
        compress_report_free(&rep);
        float want[5 * 3], got[5 * 3];
        ck_assert_int_eq(qgemm_set_isa(BCT_ISA_SCALAR), BCT_OK);
        run_model(path, 1, want);
        for (int i = 0; i < 15; i++) ck_assert(isfinite(want[i]));
        for (int isa = 0; isa < BCT_ISA_COUNT; isa++) {
            if (!available((bct_isa)isa)) continue;
            ck_assert_int_eq(qgemm_set_isa((bct_isa)isa), BCT_OK);
            for (int threads = 1; threads <= 3; threads += 2) {
                run_model(path, threads, got);
                for (int i = 0; i < 15; i++)
                    ck_assert_msg(memcmp(&want[i], &got[i], sizeof(float)) == 0,
                                  "%s %s threads %d: logit %d = %.9g, scalar %.9g", presets[pi],
                                  bct_isa_name((bct_isa)isa), threads, i, got[i], want[i]);
            }
        }
    }
    ck_assert_int_eq(qgemm_set_isa(saved), BCT_OK);
    char cmd[160];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    ck_assert_int_eq(system(cmd), 0);
}
END_TEST

START_TEST(isa_names_and_detection) {
    for (int i = 0; i < BCT_ISA_COUNT; i++) ck_assert_int_eq(bct_isa_parse(bct_isa_name((bct_isa)i)), i);
    ck_assert_int_eq(bct_isa_parse("AVX2"), BCT_ISA_AVX2);
    ck_assert_int_eq(bct_isa_parse("AvxVnni"), BCT_ISA_AVXVNNI);
    ck_assert_int_eq(bct_isa_parse("sse9"), -1);
    ck_assert(bct_isa_supported(BCT_ISA_SCALAR));
    ck_assert(bct_isa_supported(bct_isa_best()));
    const cpu_features *f = cpu_features_get();
    printf("cpu: %s (%s); best kernel %s; active %s\n", f->brand, f->vendor, bct_isa_name(bct_isa_best()),
           bct_isa_name(qgemm_isa()));
    /* AMX: CPU flags, tile state in XCR0, the process's permission, and the
     * AVX-512 level its kernel also uses; all consistent with cpu_features. */
    const unsigned long long tiles = 3ull << 17; /* XCR0 XTILECFG, XTILEDATA */
    ck_assert_int_eq(f->amx_ok, f->amx_tile && f->amx_int8 && (f->xcr0 & tiles) == tiles);
    if (!f->amx_ok) ck_assert(!f->amx_perm); /* asked for only when it can work */
    int amx = f->amx_ok && f->amx_perm && bct_isa_supported(BCT_ISA_AVX512VNNI);
    ck_assert_int_eq(bct_isa_supported(BCT_ISA_AMX), amx);
    printf("amx: cpu flags %d/%d, xcr0 tiles %d, permission %d -> %s\n", f->amx_tile, f->amx_int8,
           (f->xcr0 & tiles) == tiles, f->amx_perm, amx ? "supported" : "not supported");
#if defined(__linux__) && defined(__x86_64__)
    if (f->amx_perm) { /* the kernel agrees: tile data is permitted to this process */
        unsigned long long perm = 0;
        ck_assert_int_eq(syscall(SYS_arch_prctl, 0x1022 /* ARCH_GET_XCOMP_PERM */, &perm), 0);
        ck_assert(perm & (1ull << 18));
    }
#endif
    bct_isa saved = qgemm_isa();
    ck_assert_int_eq(qgemm_set_isa(BCT_ISA_AMX), amx ? BCT_OK : BCT_EUNSUPPORTED);
    ck_assert_int_eq(qgemm_set_isa(saved), BCT_OK);
    ck_assert_int_eq(bct_isa_supported(BCT_ISA_AVXVNNI), f->avx2 && f->avxvnni);
    /* An ISA implies the ones below it (but AVX-512 CPUs need not have AVX-VNNI). */
    if (bct_isa_supported(BCT_ISA_AVX512VNNI)) ck_assert(f->avx2);
    if (amx) ck_assert(bct_isa_supported(BCT_ISA_AVX512VNNI));
}
END_TEST

int main(void) {
    Suite *s = suite_create("kernels");
    TCase *tc = tcase_create("kernels");
    tcase_set_timeout(tc, 600);
    tcase_add_test(tc, isa_names_and_detection);
    tcase_add_test(tc, block_dots_exact);
    tcase_add_test(tc, gemm_outputs_bit_identical);
    tcase_add_test(tc, dropped_codes_read_from_pack);
    tcase_add_test(tc, quantize_act_bit_identical);
    tcase_add_test(tc, intops_simd_bit_identical);
    tcase_add_test(tc, pool_runs_every_task_once);
    tcase_add_test(tc, model_logits_identical_across_isas);
    suite_add_tcase(s, tc);
    return test_run_suite(s);
}
