#include "qmat.h"

#include <assert.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "qgemm_kern.h"
#include "util/status.h"

int qmat_layout_ok(int bits, int block, int cols) {
    return (bits == 8 || bits == 4) && block >= QMAT_GROUP && block % QMAT_GROUP == 0 && cols > 0 &&
           cols % block == 0;
}

int qmat_fit_block(int want, int width) {
    int cols = qmat_padded_cols(width), b = want / QMAT_GROUP * QMAT_GROUP;
    while (b > QMAT_GROUP && cols % b) b -= QMAT_GROUP;
    return b < QMAT_GROUP ? QMAT_GROUP : b;
}

static void *alloc64(size_t n) {
    void *p = NULL;
    /* Round up: aligned_alloc wants a multiple of the alignment. */
    return posix_memalign(&p, 64, (n + 63) / 64 * 64) == 0 ? p : NULL;
}

int qmat_alloc(qmat *m, int bits, int rows, int cols, int block) {
    memset(m, 0, sizeof(*m));
    if (!qmat_layout_ok(bits, block, cols) || rows < 0) return BCT_EINVAL;
    m->bits = bits;
    m->rows = rows;
    m->cols = cols;
    m->block = block;
    m->codes = alloc64(qmat_row_bytes(bits, cols) * (size_t)rows + 1);
    m->scales = alloc64((size_t)rows * (size_t)(cols / block) * sizeof(float) + 1);
    if (!m->codes || !m->scales) {
        qmat_free(m);
        return BCT_ENOMEM;
    }
    return BCT_OK;
}

void qmat_free(qmat *m) {
    free(m->codes);
    free(m->scales);
    free(m->pack);
    m->codes = NULL;
    m->scales = NULL;
    m->pack = NULL;
}

void qmat_pack_row(const qmat *m, int r, const int8_t *codes) {
    uint8_t *row = (uint8_t *)m->codes + (size_t)r * qmat_row_bytes(m->bits, m->cols);
    if (m->bits == 8) {
        memcpy(row, codes, (size_t)m->cols);
        return;
    }
    for (int g = 0; g < m->cols / QMAT_GROUP; g++) {
        const int8_t *c = codes + g * QMAT_GROUP;
        for (int j = 0; j < 16; j++)
            row[g * 16 + j] = (uint8_t)((c[j] + 8) | ((c[j + 16] + 8) << 4));
    }
}

void qmat_dequantize_row(const qmat *m, int r, float *x) {
    assert(m->codes); /* not a packed weight whose codes were dropped */
    const uint8_t *row = qmat_row_codes(m, r);
    const float *d = qmat_row_scales(m, r);
    /* Per block and 32-element group, so the compiler vectorises it; the
     * same d * (float)q as qmat_code element by element. */
    for (int b = 0; b < m->cols / m->block; b++) {
        const float db = d[b];
        float *xb = x + (size_t)b * m->block;
        if (m->bits == 8) {
            const int8_t *q = (const int8_t *)row + (size_t)b * m->block;
            for (int i = 0; i < m->block; i++) xb[i] = db * (float)q[i];
            continue;
        }
        for (int g = 0; g < m->block / QMAT_GROUP; g++) {
            const uint8_t *q = row + ((size_t)b * m->block + (size_t)g * QMAT_GROUP) / 2;
            float *xg = xb + g * QMAT_GROUP;
            for (int j = 0; j < 16; j++) {
                xg[j] = db * (float)((q[j] & 15) - 8);
                xg[j + 16] = db * (float)((q[j] >> 4) - 8);
            }
        }
    }
}

void qmat_dequantize_prefix(const qmat *m, int r, float *x, int n) {
    assert(m->codes);
    int whole = n / m->block * m->block;
    if (whole == m->cols) {
        qmat_dequantize_row(m, r, x);
        return;
    }
    /* Whole blocks through the fast path of a one-block-shorter view of
     * the row; the partial block element by element. */
    if (whole > 0) {
        qmat v = *m;
        v.rows = 1;
        v.cols = whole;
        v.codes = (void *)qmat_row_codes(m, r);
        v.scales = (float *)qmat_row_scales(m, r);
        qmat_dequantize_row(&v, 0, x);
    }
    const uint8_t *row = qmat_row_codes(m, r);
    float d = qmat_row_scales(m, r)[whole / m->block];
    for (int i = whole; i < n; i++) x[i] = d * (float)qmat_code(m, row, i);
}

/* The scalar activation quantizer (qmat_quantize_act dispatches in qgemm.c). */
void qact_scalar(qmat *m, const float *x, int ld, int r0, int r1) {
    int nb = m->cols / m->block;
    for (int r = r0; r < r1; r++) {
        const float *xr = x + (size_t)r * ld;
        int8_t *q = (int8_t *)m->codes + (size_t)r * m->cols;
        float *d = m->scales + (size_t)r * nb;
        for (int b = 0; b < nb; b++) {
            const float *xb = xr + b * m->block;
            float amax = 0;
            for (int i = 0; i < m->block; i++) amax = fmaxf(amax, fabsf(xb[i]));
            float scale = amax / 127.0f, inv = amax > 0 ? 127.0f / amax : 0;
            d[b] = scale;
            for (int i = 0; i < m->block; i++) q[b * m->block + i] = (int8_t)lroundf(xb[i] * inv);
        }
    }
}
