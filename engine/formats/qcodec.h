/* qcodec.h - how blockwise-quantized tensors are stored in .bct files.
 *
 * Codes, one row after another (rows are stored padded to a multiple of 32
 * codes, qmat_padded_cols, so they end on byte boundaries; the padding's
 * codes are 0; `cols` below means the padded row length):
 *   bits 8: int8_t per code (the in-memory layout, usable in place)
 *   bits 4: the in-memory nibble layout of qmat.h (usable in place)
 *   bits 3, 2: a little-endian bit stream of (q + 2^(bits-1)), least
 *           significant bit first; widened to the 4-bit layout at load.
 * Codes are symmetric signed integers in [-2^(bits-1), 2^(bits-1) - 1]
 * (8 bits: [-127, 127]).
 *
 * Scales, one per block, row-major:
 *   QSCALE_F16:  IEEE half per block (2 bytes)
 *   QSCALE_LOG8: one byte c per block, d = base * 2^(-c/16), where base is
 *                a per-tensor float (the largest block scale); c = 255
 *                means d = 0.  Steps of 4.4%: the quantizer searches over
 *                representable scales, so coarse steps cost little error
 *                but halve the scale overhead of f16.
 */
#ifndef BCT_QCODEC_H
#define BCT_QCODEC_H

#include <stddef.h>
#include <stdint.h>

#include "kernels/qmat.h"
#include "util/status.h"

typedef enum qscale_enc { QSCALE_F16 = 0, QSCALE_LOG8 = 1 } qscale_enc;

#define QLOG8_STEPS 16 /* codes per octave */
#define QLOG8_ZERO 255

/* 1 when bits is a storable code width. */
int qcodec_bits_ok(int bits);
/* In-memory width that codes of `bits` are widened to (8 or 4). */
int qcodec_mem_bits(int bits);
int qcodec_code_min(int bits);
int qcodec_code_max(int bits);

size_t qcodec_codes_bytes(int bits, int rows, int cols);

/* A codes blob may be stored zlib-deflated (the tensor entry's
 * "codes_encoding": "zlib"; the blob then holds the zlib stream of the
 * qcodec_codes_bytes layout).  The writer tries it for codes of at most
 * QCODEC_ZLIB_MAX_BITS bits and keeps it when it saves at least
 * QCODEC_ZLIB_MIN_GAIN of the bytes.  Measured on bert-mini (SST-2):
 * 2-bit codes deflate by about 18% (their levels are far from equally
 * used), 8- and 4-bit ones by 5% (not worth inflating at every load). */
#define QCODEC_CODES_ZLIB "zlib"
#define QCODEC_ZLIB_MAX_BITS 3
#define QCODEC_ZLIB_MIN_GAIN 0.08
size_t qcodec_scales_bytes(qscale_enc enc, size_t nblocks);

/* Packs rows x cols signed codes into the file layout (out has
 * qcodec_codes_bytes bytes). */
void qcodec_pack_codes(int bits, const int8_t *codes, int rows, int cols, uint8_t *out);
/* Decodes file codes into m (already allocated with qcodec_mem_bits). */
void qcodec_unpack_codes(int bits, const uint8_t *in, qmat *m);

float qcodec_scale_decode(qscale_enc enc, const uint8_t *scales, size_t i, float base);
void qcodec_scale_store(qscale_enc enc, uint8_t *scales, size_t i, uint32_t code);
/* The representable scale nearest d (rounding in the log domain for LOG8),
 * as its code; *decoded receives the scale it stands for. */
uint32_t qcodec_scale_encode(qscale_enc enc, float d, float base, float *decoded);

const char *qcodec_scale_name(qscale_enc enc);
/* "f16" | "log8" -> enc; -1 if unknown. */
int qcodec_scale_parse(const char *name);

#endif
