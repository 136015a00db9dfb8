/* qgemm_fixtures.h - inputs and the exact reference shared by the GEMM
 * kernel tests (test_kernels.c, test_amx_emu.c).  Header-only, included
 * by one test program each; define QF_SEED first for another sequence. */
#ifndef BCT_QGEMM_FIXTURES_H
#define BCT_QGEMM_FIXTURES_H

#include <check.h>
#include <stdint.h>
#include <stdlib.h>

#include "kernels/qmat.h"

#ifndef QF_SEED
#define QF_SEED 777
#endif

/* The test program's random sequence (deterministic: a failure repeats). */
static unsigned rng = QF_SEED;
static inline unsigned urand(void) {
    rng = rng * 1664525u + 1013904223u;
    return rng >> 8;
}
static inline int irand(int lo, int hi) { return lo + (int)(urand() % (unsigned)(hi - lo + 1)); }
static inline float frand(void) { return (float)urand() / (float)(1u << 24) * 2.0f - 1.0f; }

enum { EDGE_RANDOM, EDGE_MIN, EDGE_MAX, EDGE_MIXED, EDGE_ZERO_X, EDGE_W128, EDGE_COUNT };

/* Fills weight codes (bits 8: [-127, 127]; 4: [-8, 7]) and activation
 * codes ([-127, 127]) with a pattern, and positive scales.  EDGE_W128:
 * 8-bit weights all -128, which the quantizer never writes (its codes are
 * symmetric) but a .bct file can hold: every kernel must still be exact
 * (the AVX2 sign trick's |w| = 128 keeps pair sums <= 2 x 128 x 127), with
 * activations alternating -127 / 127. */
static inline void fill(qmat *w, qmat *x, int edge) {
    int lo = w->bits == 8 ? -127 : -8, hi = w->bits == 8 ? 127 : 7;
    int8_t *codes = malloc((size_t)w->cols);
    ck_assert_ptr_nonnull(codes);
    for (int r = 0; r < w->rows; r++) {
        for (int i = 0; i < w->cols; i++) {
            int v = irand(lo, hi);
            if (edge == EDGE_MIN) v = lo;
            else if (edge == EDGE_MAX) v = hi;
            else if (edge == EDGE_MIXED) v = (i + r) % 3 == 0 ? lo : (i + r) % 3 == 1 ? hi : 0;
            else if (edge == EDGE_W128) v = w->bits == 8 ? -128 : lo;
            codes[i] = (int8_t)v;
        }
        qmat_pack_row(w, r, codes);
    }
    for (int r = 0; r < x->rows; r++) {
        int8_t *q = (int8_t *)x->codes + (size_t)r * x->cols;
        for (int i = 0; i < x->cols; i++) {
            int v = irand(-127, 127);
            if (edge == EDGE_MIN) v = -127;
            else if (edge == EDGE_MAX) v = 127;
            else if (edge == EDGE_MIXED || edge == EDGE_W128) v = (i * 7 + r) % 2 ? 127 : -127;
            else if (edge == EDGE_ZERO_X) v = 0;
            q[i] = (int8_t)v;
        }
    }
    int nbw = w->rows * (w->cols / w->block), nbx = x->rows * (x->cols / x->block);
    for (int i = 0; i < nbw; i++) w->scales[i] = 0.001f + 0.01f * (float)(urand() % 1000) / 1000.0f;
    for (int i = 0; i < nbx; i++) x->scales[i] = 0.002f + 0.02f * (float)(urand() % 1000) / 1000.0f;
    free(codes);
}

/* Exact block dots from the definition, in int64. */
static inline void reference_dots(const qmat *w, const qmat *x, int32_t *out) {
    int nb = w->cols / w->block;
    for (int r = 0; r < x->rows; r++)
        for (int o = 0; o < w->rows; o++)
            for (int b = 0; b < nb; b++) {
                int64_t s = 0;
                for (int i = b * w->block; i < (b + 1) * w->block; i++)
                    s += (int64_t)qmat_code(w, qmat_row_codes(w, o), i) *
                         ((const int8_t *)x->codes)[(size_t)r * x->cols + i];
                out[((size_t)r * w->rows + o) * nb + b] = (int32_t)s;
            }
}

#endif
