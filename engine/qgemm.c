#include "qgemm.h"

#include <assert.h>

int32_t qdot_q8q8_scalar(const int8_t *w, const int8_t *x, int n) {
    int32_t sum = 0;
    for (int i = 0; i < n; i++) sum += (int32_t)w[i] * x[i];
    return sum;
}

int32_t qdot_q4q8_scalar(const uint8_t *w4, const int8_t *x, int n) {
    int32_t sum = 0;
    for (int g = 0; g < n / QMAT_GROUP; g++, w4 += 16, x += QMAT_GROUP)
        for (int j = 0; j < 16; j++)
            sum += ((w4[j] & 15) - 8) * x[j] + ((w4[j] >> 4) - 8) * x[j + 16];
    return sum;
}

void qgemm_scalar(const qmat *w, const qmat *x, const float *bias, float *y, int ldy) {
    assert(w->cols == x->cols && w->block == x->block && x->bits == 8);
    int nb = w->cols / w->block, blk = w->block;
    size_t wblk_bytes = w->bits == 8 ? (size_t)blk : (size_t)blk / 2;
    for (int r = 0; r < x->rows; r++) {
        const int8_t *xq = (const int8_t *)qmat_row_codes(x, r);
        const float *xd = qmat_row_scales(x, r);
        for (int o = 0; o < w->rows; o++) {
            const uint8_t *wq = qmat_row_codes(w, o);
            const float *wd = qmat_row_scales(w, o);
            float acc = bias ? bias[o] : 0.0f;
            for (int b = 0; b < nb; b++) {
                const uint8_t *wb = wq + (size_t)b * wblk_bytes;
                const int8_t *xb = xq + (size_t)b * blk;
                int32_t dot = w->bits == 8 ? qdot_q8q8_scalar((const int8_t *)wb, xb, blk)
                                           : qdot_q4q8_scalar(wb, xb, blk);
                acc += wd[b] * xd[b] * (float)dot;
            }
            y[(size_t)r * ldy + o] = acc;
        }
    }
}

void qgemm(const qmat *w, const qmat *x, const float *bias, float *y, int ldy) {
    qgemm_scalar(w, x, bias, y, ldy);
}
