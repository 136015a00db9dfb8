#include "qcodec.h"

#include <math.h>
#include <string.h>

#include "util/half.h"

int qcodec_bits_ok(int bits) { return bits == 8 || bits == 4 || bits == 3 || bits == 2; }
int qcodec_mem_bits(int bits) { return bits == 8 ? 8 : 4; }
int qcodec_code_min(int bits) { return bits == 8 ? -127 : -(1 << (bits - 1)); }
int qcodec_code_max(int bits) { return bits == 8 ? 127 : (1 << (bits - 1)) - 1; }

size_t qcodec_codes_bytes(int bits, int rows, int cols) {
    return (size_t)rows * ((size_t)cols * (size_t)bits / 8);
}

size_t qcodec_scales_bytes(qscale_enc enc, size_t nblocks) {
    return nblocks * (enc == QSCALE_F16 ? 2 : 1);
}

void qcodec_pack_codes(int bits, const int8_t *codes, int rows, int cols, uint8_t *out) {
    if (bits == 8 || bits == 4) {
        qmat m = {.bits = bits, .rows = rows, .cols = cols, .block = cols, .codes = out};
        for (int r = 0; r < rows; r++) qmat_pack_row(&m, r, codes + (size_t)r * cols);
        return;
    }
    size_t row_bytes = (size_t)cols * (size_t)bits / 8;
    memset(out, 0, row_bytes * (size_t)rows);
    for (int r = 0; r < rows; r++) {
        uint8_t *o = out + row_bytes * (size_t)r;
        const int8_t *c = codes + (size_t)r * cols;
        for (int i = 0; i < cols; i++) {
            unsigned u = (unsigned)(c[i] + (1 << (bits - 1)));
            size_t bit = (size_t)i * (size_t)bits;
            /* A code may straddle two bytes (3 bits). */
            o[bit / 8] |= (uint8_t)(u << (bit % 8));
            if (bit % 8 + (size_t)bits > 8) o[bit / 8 + 1] |= (uint8_t)(u >> (8 - bit % 8));
        }
    }
}

void qcodec_unpack_codes(int bits, const uint8_t *in, qmat *m) {
    size_t mem_row = qmat_row_bytes(m->bits, m->cols);
    if (bits == m->bits) {
        memcpy(m->codes, in, mem_row * (size_t)m->rows);
        return;
    }
    int8_t codes[4096];
    size_t row_bytes = (size_t)m->cols * (size_t)bits / 8;
    unsigned mask = (1u << bits) - 1;
    for (int r = 0; r < m->rows; r++) {
        const uint8_t *o = in + row_bytes * (size_t)r;
        /* Widen one chunk of up to 4096 codes at a time (cols may exceed it). */
        for (int base = 0; base < m->cols; base += 4096) {
            int cnt = m->cols - base < 4096 ? m->cols - base : 4096;
            for (int i = 0; i < cnt; i++) {
                size_t bit = (size_t)(base + i) * (size_t)bits;
                unsigned u = o[bit / 8] >> (bit % 8);
                if (bit % 8 + (size_t)bits > 8) u |= (unsigned)o[bit / 8 + 1] << (8 - bit % 8);
                codes[i] = (int8_t)((int)(u & mask) - (1 << (bits - 1)));
            }
            qmat part = *m;
            part.cols = cnt;
            part.codes = (uint8_t *)m->codes + (size_t)r * mem_row + (size_t)base / 2;
            qmat_pack_row(&part, 0, codes);
        }
    }
}

float qcodec_scale_decode(qscale_enc enc, const uint8_t *scales, size_t i, float base) {
    if (enc == QSCALE_F16) return half_to_f32((uint16_t)(scales[2 * i] | scales[2 * i + 1] << 8));
    return scales[i] == QLOG8_ZERO ? 0.0f : base * exp2f(-(float)scales[i] / QLOG8_STEPS);
}

void qcodec_scale_store(qscale_enc enc, uint8_t *scales, size_t i, uint32_t code) {
    if (enc == QSCALE_F16) {
        scales[2 * i] = (uint8_t)code;
        scales[2 * i + 1] = (uint8_t)(code >> 8);
    } else {
        scales[i] = (uint8_t)code;
    }
}

uint32_t qcodec_scale_encode(qscale_enc enc, float d, float base, float *decoded) {
    if (enc == QSCALE_F16) {
        uint16_t h = f32_to_half(d);
        *decoded = half_to_f32(h);
        return h;
    }
    if (!(d > 0) || !(base > 0)) {
        *decoded = 0;
        return QLOG8_ZERO;
    }
    long c = lroundf(-log2f(d / base) * QLOG8_STEPS);
    if (c < 0) c = 0;
    if (c > QLOG8_ZERO - 1) c = QLOG8_ZERO - 1;
    *decoded = base * exp2f(-(float)c / QLOG8_STEPS);
    return (uint32_t)c;
}

const char *qcodec_scale_name(qscale_enc enc) { return enc == QSCALE_F16 ? "f16" : "log8"; }

int qcodec_scale_parse(const char *name) {
    if (strcmp(name, "f16") == 0) return QSCALE_F16;
    if (strcmp(name, "log8") == 0) return QSCALE_LOG8;
    return -1;
}
