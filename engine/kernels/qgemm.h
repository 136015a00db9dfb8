/* qgemm.h - int8 block GEMM: blockwise-quantized weights x int8 activations.
 *
 *   y[r][o] = bias[o] + sum_b  w.d[o][b] * x.d[r][b] * sum_{i in block b} w.q[o][i] * x.q[r][i]
 *
 * Weights are a qmat of 8 or 4 bits, activations a qmat of 8 bits with the
 * same cols and block.  Products accumulate exactly in int32 per block
 * (|q| <= 127 and block <= 4096 cannot overflow); only the per-block
 * rescale is in fp32, in this order: acc = bias (or 0), then for each
 * block acc += (w.d * x.d) * (float)dot.  Every kernel keeps that order
 * with separate roundings, so all ISAs give bit-identical y.
 *
 * Kernels (chosen at run time, see cpu_features.h):
 *   scalar      the reference below
 *   avx2        vpmaddubsw + vpmaddwd (sign trick for q8; biased nibbles for q4)
 *   avxvnni     vpdpbusd on 256-bit vectors (AVX-VNNI), biased-unsigned weights
 *   avx512vnni  vpdpbusd on 512-bit vectors, biased-unsigned weights
 *   amx         AMX-INT8 tdpbssd (signed x signed) on 16-row tiles, one
 *               block (or 64-column step of it) per K-step, each block's
 *               int32 tile rescaled with AVX-512
 * int4 weights are unpacked inside the kernels (never a dequantized copy).
 * The best supported kernel is used; the environment variable
 * BCT_ISA=scalar|avx2|avxvnni|avx512vnni|amx overrides it (read once, at first
 * use).  Asking for an ISA this CPU/OS lacks (for amx: the CPU flags, the
 * tile state in XCR0 and, on Linux, the process's tile permission, see
 * cpu_features.h) prints a warning on stderr and uses the best supported
 * one.
 *
 * SIMD kernels read weights pre-packed in their layout (qgemm_kern.h:
 * QPK1 for avx2, avxvnni and avx512vnni, QPA1 for amx): qgemm_prepare() packs a
 * weight once (the .bct loader does it); matrices made at run time, and
 * weights packed for another kernel than the active one, are packed per
 * call.  Activation codes must be in
 * [-127, 127] (what qmat_quantize_act produces).
 */
#ifndef BCT_QGEMM_H
#define BCT_QGEMM_H

#include <stddef.h>
#include <stdint.h>

#include "cpu_features.h"
#include "qmat.h"

struct bct_pool;

/* int32 dot products of n codes (n a multiple of 32), the GEMM primitive. */
int32_t qdot_q8q8_scalar(const int8_t *w, const int8_t *x, int n);
int32_t qdot_q4q8_scalar(const uint8_t *w4, const int8_t *x, int n);

/* The kernel in use (BCT_ISA or the best supported). */
bct_isa qgemm_isa(void);
/* Switches kernels (tests, benchmarks; not while GEMMs run).  BCT_OK, or
 * BCT_EUNSUPPORTED when this CPU/OS cannot run `isa`. */
int qgemm_set_isa(bct_isa isa);

/* y (row stride ldy) = x W^T (+ bias if not NULL).  Requires
 * w->cols == x->cols and w->block == x->block.  Uses w->pack when set. */
void qgemm(const qmat *w, const qmat *x, const float *bias, float *y, int ldy);
void qgemm_scalar(const qmat *w, const qmat *x, const float *bias, float *y, int ldy);

/* As qgemm, with an explicit pack (from qgemm_pack or qgemm_prepare for
 * this w, or NULL: then w is packed into a temporary if the kernel needs
 * it) and a thread pool (NULL: on the calling thread).  Rows and output
 * tiles are split into tasks; each output element is computed by one
 * thread in the order above, so results do not depend on threading. */
void qgemm_run(const qmat *w, const void *pack, const qmat *x, const float *bias, float *y, int ldy,
               struct bct_pool *pool);

/* Bytes of w's packed copy for the active kernel; 0 when it reads w as is. */
size_t qgemm_pack_bytes(const qmat *w);
/* Packs w into buf (64-byte aligned, qgemm_pack_bytes(w) bytes, not 0);
 * returns buf. */
const void *qgemm_pack(const qmat *w, void *buf);

/* Packs a weight for the active kernel into w->pack (malloc'd; whoever
 * owns w frees it: qmat_free does, the model loader hands it to the
 * model's storage).  No-op when the kernel reads w as is.  Returns BCT_OK
 * or BCT_ENOMEM.
 *
 * Once w->pack is set, its owner may drop the codes (free or discard them
 * and set w->codes = NULL: the .bct loader does, so a weight is not
 * resident twice).  qgemm then reads the pack alone: the kernels as
 * always, the scalar reference (BCT_ISA=scalar after load, the
 * out-of-memory fallback) and the repack for another kernel (after
 * qgemm_set_isa) from its records.  Nothing outside qgemm may read such a
 * weight's codes (qmat_dequantize_row, qmat_code). */
int qgemm_prepare(qmat *w);

/* Activation quantization (qmat_quantize_act) split into row tasks. */
void qmat_quantize_act_mt(qmat *m, const float *x, int ld, struct bct_pool *pool);

/* Tests: the int32 block dots out[r][o][b] (x->rows x w->rows x nb) as
 * the kernels of `isa` compute them.  BCT_EUNSUPPORTED when the CPU lacks
 * isa, BCT_ENOMEM. */
int qgemm_block_dots(bct_isa isa, const qmat *w, const qmat *x, int32_t *out);
/* Tests: qmat_quantize_act with the kernels of `isa`. */
int qmat_quantize_act_isa(bct_isa isa, qmat *m, const float *x, int ld);

#endif
