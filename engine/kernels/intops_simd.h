/* intops_simd.h - AVX2 and AVX-512 versions of the integer non-linear ops
 * of intops.h, bit-identical to them (same per-call constants, same integer
 * arithmetic lane by lane; tests/unit/test_kernels.c checks it).
 *
 * The _avx2 functions (intops_avx2.c) need AVX2, the _avx512 ones
 * (intops_simd.c) AVX-512 F/BW/DQ/VL.  iops_for() picks the set for the
 * GEMM kernel level (qgemm_isa()): avx512vnni and amx get AVX-512, avx2
 * and avxvnni (AVX2-based) get AVX2, scalar or a level this CPU lacks gets
 * the scalar reference.  Inputs follow intops.h (x finite for
 * quantize_row).
 */
#ifndef BCT_INTOPS_SIMD_H
#define BCT_INTOPS_SIMD_H

#include <stdint.h>

#include "cpu_features.h"
#include "intops.h"

float iop_quantize_row_avx2(const float *x, int n, int bits, int32_t *q);
void iop_gelu_avx2(const int32_t *q, int n, float scale, int32_t *out, float *out_scale);
void iop_softmax_avx2(const int32_t *x, int n, float scale, int32_t *p, int out_bits);
void iop_layernorm_scaled_avx2(const iop_ln_params *p, const int32_t *x, float scale, float *y);

float iop_quantize_row_avx512(const float *x, int n, int bits, int32_t *q);
void iop_gelu_avx512(const int32_t *q, int n, float scale, int32_t *out, float *out_scale);
void iop_softmax_avx512(const int32_t *x, int n, float scale, int32_t *p, int out_bits);
void iop_layernorm_scaled_avx512(const iop_ln_params *p, const int32_t *x, float scale, float *y);

/* One ISA's row kernels (intops.h semantics), as iops_for() picks them. */
typedef struct iops {
    float (*quantize_row)(const float *x, int n, int bits, int32_t *q);
    void (*gelu)(const int32_t *q, int n, float scale, int32_t *out, float *out_scale);
    void (*softmax)(const int32_t *x, int n, float scale, int32_t *p, int out_bits);
    void (*layernorm_scaled)(const iop_ln_params *p, const int32_t *x, float scale, float *y);
    void (*dequant)(const int32_t *q, int n, float scale, float *y); /* y = (float)q * scale */
    void (*add)(float *x, const float *r, int n);                   /* x += r */
    /* dst[c][r] = src[r][c] for r < rows, c < cols (src stride lds, dst
     * stride ldd >= rows); dst[c][rows .. ldd) = 0.  (Attention's V^T.) */
    void (*transpose)(const float *src, int lds, int rows, int cols, float *dst, int ldd);
} iops;

const iops *iops_for(bct_isa isa);

/* Fused steps of the engine, with o's kernels (the same sequence on every
 * ISA, so the same results):
 *   gelu_block:  x[0..n) = i-GELU of x quantized to `bits` codes, back in float
 *   softmax_row: s[0..n) = i-softmax(s * scale) as probabilities, out_bits
 *   layernorm:   x[0..n) = integer LayerNorm of (x + res) (res may be NULL)
 * ibuf: 2 * n int32s. */
void iops_gelu_block(const iops *o, float *x, int n, int bits, int32_t *ibuf);
void iops_softmax_row(const iops *o, float *s, int n, float scale, int bits, int out_bits, int32_t *ibuf);
void iops_layernorm(const iops *o, const iop_ln_params *p, float *x, const float *res, int bits, int32_t *ibuf);

#endif
