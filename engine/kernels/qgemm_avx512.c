/* qgemm_avx512.c - AVX-512 VNNI kernels: int8 block GEMM with vpdpbusd and
 * activation quantization.  Compiled for baseline x86-64; every function
 * carries its target attribute and runs only when qgemm.c has checked the
 * CPU (cpu_features.h).  Layout and rounding contract: qgemm_kern.h.
 *
 * Micro-kernel: R = 4 activation rows x C = 3 tiles of 16 output rows.  Per
 * block: 12 int32 accumulators start at -off * (block sum of the row), then
 * per k-quad one 64-byte load per tile (q4: one load per two k-quads, split
 * into low and high nibbles with an and / shift+and) and one vpdpbusd per
 * (row, tile) with the row's 4 activation bytes broadcast; then the block
 * is rescaled into 12 float accumulators, which start at the bias:
 * f += (w.d * x.d) * (float)acc with separate roundings, as the scalar code.
 * The 4 x 3 case, all blocks of a tile, is one inline-asm loop with fixed
 * registers (GCC's version of the intrinsics below adds a register copy
 * per accumulator update); other shapes (edges) use the intrinsics.
 *
 * Loop order (qk_avx512): panels of 3 tiles outer, row tiles inner, so a
 * panel's codes stay in L1 while all rows of the task go by; K is cut into
 * chunks whose panel fits PANEL_L1 (partial sums wait in y: the block order
 * of the float sum is unchanged).  The first row tile of a panel prefetches
 * the code streams (they come from L2 or memory), the next ones do not.
 *
 * Measured on Zen 5: vpdpbusd zmm issues 2 per cycle and shares its pipes
 * with vmulps only (adds, converts, broadcasts, loads are free), so the two
 * multiplies per block and accumulator cost ~11% at block 64.
 */
#include <stdlib.h>
#include <string.h>

#include "qgemm_kern.h"

#if defined(__x86_64__)
#include <immintrin.h>

#define TARGET __attribute__((target("avx512f,avx512bw,avx512dq,avx512vl,avx512vnni")))
#define INLINE static inline __attribute__((always_inline))

enum { RMAX = 4, CMAX = 3 };
/* Software prefetch distance along each tile's code stream (bytes). */
#define PREFETCH 1024

TARGET INLINE __m512i bcast4(const int8_t *p) {
    int32_t v;
    memcpy(&v, p, 4);
    return _mm512_set1_epi32(v);
}

TARGET INLINE __mmask16 lane_mask(int valid) {
    return valid >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << valid) - 1);
}


/* The 64-byte record at byte off of each of C tiles' code streams, with a
 * software prefetch PREFETCH bytes ahead when pf. */
TARGET INLINE void load_records(const uint8_t *const *wc, size_t off, const int C, int pf, __m512i *out) {
#pragma GCC unroll 8
    for (int c = 0; c < C; c++) {
        out[c] = _mm512_load_si512(wc[c] + off);
        if (pf) _mm_prefetch((const char *)(wc[c] + off + PREFETCH), _MM_HINT_T0);
    }
}

/* Inline asm of the 4 x 3 micro-kernel.  Fixed registers: accumulators
 * zmm0-11 (row i, tile c in zmm(3i+c)), weights zmm12-14, high nibbles
 * zmm16-18, the broadcast zmm15, float accumulators zmm19-30.  Two forms
 * share the k-loop steps: the whole tile with the rescale (production),
 * and one block with the int32 accumulators stored (ACC_INIT / ACC_STORE:
 * the tests' raw block dots).  AT&T order: "vpdpbusd s8, u8, acc" adds
 * u8 * s8. */
#define STR_(x) #x
#define STR(x) STR_(x)
/* q8: broadcast each row's 4 bytes once into zmm15 for the 3 tiles (the
 * loads of q8 weights already keep the load ports busy); q4: broadcast
 * from memory inside vpdpbusd ({1to16}), one load per product. */
#define ROW4_REG(addr, a0, a1, a2, r0, r1, r2)                                                   \
    "vpbroadcastd " addr ", %%zmm15\n\t"                                                        \
    "vpdpbusd %%zmm15, %%" r0 ", %%" a0 "\n\t"                                                  \
    "vpdpbusd %%zmm15, %%" r1 ", %%" a1 "\n\t"                                                  \
    "vpdpbusd %%zmm15, %%" r2 ", %%" a2 "\n\t"
#define ROW4_MEM(addr, a0, a1, a2, r0, r1, r2)                                                   \
    "vpdpbusd " addr "%{1to16%}, %%" r0 ", %%" a0 "\n\t"                                          \
    "vpdpbusd " addr "%{1to16%}, %%" r1 ", %%" a1 "\n\t"                                          \
    "vpdpbusd " addr "%{1to16%}, %%" r2 ", %%" a2 "\n\t"
#define ROWS4(ROW, XO, r0, r1, r2)                                                               \
    ROW(XO "(%[x0])", "zmm0", "zmm1", "zmm2", r0, r1, r2)                                       \
    ROW(XO "(%[x0],%[ld])", "zmm3", "zmm4", "zmm5", r0, r1, r2)                                 \
    ROW(XO "(%[x0],%[ld],2)", "zmm6", "zmm7", "zmm8", r0, r1, r2)                               \
    ROW(XO "(%[x3])", "zmm9", "zmm10", "zmm11", r0, r1, r2)
/* PF(...) expands to a prefetch or to nothing. */
#define PF_ON(WO, w) "prefetcht0 " STR(PREFETCH) "+" WO "(%[" w "])\n\t"
#define PF_OFF(WO, w) ""
#define Q8_STEP(PF, WO, XO)                                                                      \
    "vmovdqa64 " WO "(%[w0]), %%zmm12\n\t"                                                      \
    "vmovdqa64 " WO "(%[w1]), %%zmm13\n\t"                                                      \
    "vmovdqa64 " WO "(%[w2]), %%zmm14\n\t"                                                      \
    PF(WO, "w0") PF(WO, "w1") PF(WO, "w2")                                                      \
    ROWS4(ROW4_REG, XO, "zmm12", "zmm13", "zmm14")
#define Q4_LOAD(PF, WO, v, h, w)                                                                 \
    "vmovdqa64 " WO "(%[" w "]), %%" v "\n\t"                                                   \
    PF(WO, w)                                                                                   \
    "vpsrlw $4, %%" v ", %%" h "\n\t"                                                           \
    "vpandd %[m], %%" v ", %%" v "\n\t"                                                         \
    "vpandd %[m], %%" h ", %%" h "\n\t"
#define Q4_STEP(PF, WO, XLO, XHI)                                                                \
    Q4_LOAD(PF, WO, "zmm12", "zmm16", "w0")                                                     \
    Q4_LOAD(PF, WO, "zmm13", "zmm17", "w1")                                                     \
    Q4_LOAD(PF, WO, "zmm14", "zmm18", "w2")                                                     \
    ROWS4(ROW4_MEM, XLO, "zmm12", "zmm13", "zmm14")                                             \
    ROWS4(ROW4_MEM, XHI, "zmm16", "zmm17", "zmm18")
/* Each row's start value (in zmm0, 3, 6, 9) to its other two tiles. */
#define ACC_SPREAD                                                                               \
    "vmovdqa64 %%zmm0, %%zmm1\n\t"                                                              \
    "vmovdqa64 %%zmm0, %%zmm2\n\t"                                                              \
    "vmovdqa64 %%zmm3, %%zmm4\n\t"                                                              \
    "vmovdqa64 %%zmm3, %%zmm5\n\t"                                                              \
    "vmovdqa64 %%zmm6, %%zmm7\n\t"                                                              \
    "vmovdqa64 %%zmm6, %%zmm8\n\t"                                                              \
    "vmovdqa64 %%zmm9, %%zmm10\n\t"                                                             \
    "vmovdqa64 %%zmm9, %%zmm11\n\t"
#define ACC_INIT                                                                                 \
    "vpbroadcastd (%[nc]), %%zmm0\n\t"                                                          \
    "vpbroadcastd (%[nc],%[ncs]), %%zmm3\n\t"                                                   \
    "vpbroadcastd (%[nc],%[ncs],2), %%zmm6\n\t"                                                 \
    "vpbroadcastd (%[nc3]), %%zmm9\n\t"                                                         \
    ACC_SPREAD
#define ACC_STORE                                                                                \
    "vmovdqa64 %%zmm0, 0(%[out])\n\t"                                                           \
    "vmovdqa64 %%zmm1, 64(%[out])\n\t"                                                          \
    "vmovdqa64 %%zmm2, 128(%[out])\n\t"                                                         \
    "vmovdqa64 %%zmm3, 192(%[out])\n\t"                                                         \
    "vmovdqa64 %%zmm4, 256(%[out])\n\t"                                                         \
    "vmovdqa64 %%zmm5, 320(%[out])\n\t"                                                         \
    "vmovdqa64 %%zmm6, 384(%[out])\n\t"                                                         \
    "vmovdqa64 %%zmm7, 448(%[out])\n\t"                                                         \
    "vmovdqa64 %%zmm8, 512(%[out])\n\t"                                                         \
    "vmovdqa64 %%zmm9, 576(%[out])\n\t"                                                         \
    "vmovdqa64 %%zmm10, 640(%[out])\n\t"                                                        \
    "vmovdqa64 %%zmm11, 704(%[out])\n\t"
#define ASM_CLOBBERS                                                                             \
    "memory", "xmm0", "xmm1", "xmm2", "xmm3", "xmm4", "xmm5", "xmm6", "xmm7", "xmm8", "xmm9",      \
        "xmm10", "xmm11", "xmm12", "xmm13", "xmm14", "xmm15", "xmm16", "xmm17", "xmm18"

/* Whole-tile variant: accumulators start from the 4 rows' block sums
 * (interleaved: nc[4 b + i]), and after each block are rescaled into float
 * accumulators zmm19-30 in the scalar order: f += (wd * xd) * dot, with xd
 * interleaved the same way and the 3 tiles' wd side by side. */
#define ACC_INIT2                                                                                \
    "vpbroadcastd 0(%[nc]), %%zmm0\n\t"                                                         \
    "vpbroadcastd 4(%[nc]), %%zmm3\n\t"                                                         \
    "vpbroadcastd 8(%[nc]), %%zmm6\n\t"                                                         \
    "vpbroadcastd 12(%[nc]), %%zmm9\n\t"                                                        \
    ACC_SPREAD
#define EPI_ONE(w, a, f)                                                                         \
    "vmulps %%zmm15, %%" w ", %%zmm16\n\t"                                                      \
    "vcvtdq2ps %%" a ", %%" a "\n\t"                                                            \
    "vmulps %%" a ", %%zmm16, %%zmm16\n\t"                                                      \
    "vaddps %%zmm16, %%" f ", %%" f "\n\t"
#define EPI_ROW(addr, a0, a1, a2, f0, f1, f2)                                                    \
    "vbroadcastss " addr ", %%zmm15\n\t"                                                        \
    EPI_ONE("zmm12", a0, f0) EPI_ONE("zmm13", a1, f1) EPI_ONE("zmm14", a2, f2)
#define EPILOGUE                                                                                 \
    "vmovaps 0(%[wd]), %%zmm12\n\t"                                                             \
    "vmovaps 64(%[wd]), %%zmm13\n\t"                                                            \
    "vmovaps 128(%[wd]), %%zmm14\n\t"                                                           \
    EPI_ROW("0(%[xd])", "zmm0", "zmm1", "zmm2", "zmm19", "zmm20", "zmm21")                       \
    EPI_ROW("4(%[xd])", "zmm3", "zmm4", "zmm5", "zmm22", "zmm23", "zmm24")                       \
    EPI_ROW("8(%[xd])", "zmm6", "zmm7", "zmm8", "zmm25", "zmm26", "zmm27")                       \
    EPI_ROW("12(%[xd])", "zmm9", "zmm10", "zmm11", "zmm28", "zmm29", "zmm30")                    \
    "add $16, %[nc]\n\t"                                                                        \
    "add $16, %[xd]\n\t"                                                                        \
    "add $192, %[wd]\n\t"
#define F_LOAD                                                                                   \
    "vmovaps 0(%[f]), %%zmm19\n\t" "vmovaps 64(%[f]), %%zmm20\n\t" "vmovaps 128(%[f]), %%zmm21\n\t"    \
    "vmovaps 192(%[f]), %%zmm22\n\t" "vmovaps 256(%[f]), %%zmm23\n\t" "vmovaps 320(%[f]), %%zmm24\n\t" \
    "vmovaps 384(%[f]), %%zmm25\n\t" "vmovaps 448(%[f]), %%zmm26\n\t" "vmovaps 512(%[f]), %%zmm27\n\t" \
    "vmovaps 576(%[f]), %%zmm28\n\t" "vmovaps 640(%[f]), %%zmm29\n\t" "vmovaps 704(%[f]), %%zmm30\n\t"
#define F_STORE                                                                                  \
    "vmovaps %%zmm19, 0(%[f])\n\t" "vmovaps %%zmm20, 64(%[f])\n\t" "vmovaps %%zmm21, 128(%[f])\n\t"    \
    "vmovaps %%zmm22, 192(%[f])\n\t" "vmovaps %%zmm23, 256(%[f])\n\t" "vmovaps %%zmm24, 320(%[f])\n\t" \
    "vmovaps %%zmm25, 384(%[f])\n\t" "vmovaps %%zmm26, 448(%[f])\n\t" "vmovaps %%zmm27, 512(%[f])\n\t" \
    "vmovaps %%zmm28, 576(%[f])\n\t" "vmovaps %%zmm29, 640(%[f])\n\t" "vmovaps %%zmm30, 704(%[f])\n\t"
#define ALL_CLOBBERS                                                                             \
    ASM_CLOBBERS, "xmm19", "xmm20", "xmm21", "xmm22", "xmm23", "xmm24", "xmm25", "xmm26", "xmm27",  \
        "xmm28", "xmm29", "xmm30"

/* One R x C tile over all blocks.  bits, R, C and raw are constants after
 * inlining into the instantiations below. */
/* One R x C tile over blocks [b0, b1).  nc: the R rows' -off * block
 * sums ([R][nb]); sc: the C tiles' scales of blocks b0.. as [b - b0][C][16].
 * The float accumulators start at the bias when b0 == 0, else at the
 * partial sums in y, and end in y (or, raw, the block dots go to j->raw).
 * bits, R, C and raw are constants after inlining into the instances. */
TARGET INLINE void tile(const qk_job *j, int r, int t, const int32_t *nc, const int32_t *nq, const float *xq,
                        const float *sc, int b0, int b1, int pf, const int bits, const int R, const int C,
                        const int raw) {
    const qpack *p = j->p;
    const qmat *x = j->x;
    const int blk = p->block, nb = p->cols / blk, K = p->cols;
    const int8_t *xr[RMAX];
    const float *xd[RMAX];
    const uint8_t *wc[CMAX];
    float *yr[RMAX];
    __mmask16 mask[CMAX];
#pragma GCC unroll 8
    for (int i = 0; i < R; i++) {
        xr[i] = (const int8_t *)x->codes + (size_t)(r + i) * K;
        xd[i] = x->scales + (size_t)(r + i) * nb;
        yr[i] = raw ? NULL : j->y + (size_t)(r + i) * j->ldy + (size_t)t * QPACK_TILE;
    }
#pragma GCC unroll 8
    for (int c = 0; c < C; c++) {
        wc[c] = qpack_codes(p, t + c);
        mask[c] = lane_mask(p->rows - (t + c) * QPACK_TILE);
    }
    __m512 f[RMAX][CMAX];
    if (!raw) {
#pragma GCC unroll 8
        for (int c = 0; c < C; c++) {
            if (b0 == 0) {
                __m512 b = j->bias ? _mm512_maskz_loadu_ps(mask[c], j->bias + (size_t)(t + c) * QPACK_TILE)
                                   : _mm512_setzero_ps();
#pragma GCC unroll 8
                for (int i = 0; i < R; i++) f[i][c] = b;
            } else {
#pragma GCC unroll 8
                for (int i = 0; i < R; i++) f[i][c] = _mm512_maskz_loadu_ps(mask[c], yr[i] + c * QPACK_TILE);
            }
        }
    }
    const __m512i low4 = _mm512_set1_epi8(0x0F);
    if (R == 4 && C == 3 && !raw) {
        /* The hot case: the whole tile in asm (macros above). */
        float fbuf[12 * 16] __attribute__((aligned(64)));
        const int n = b1 - b0;
#pragma GCC unroll 8
        for (int i = 0; i < 4; i++)
#pragma GCC unroll 8
            for (int c = 0; c < 3; c++) _mm512_store_ps(fbuf + (i * 3 + c) * 16, f[i][c]);
        const size_t wo = (size_t)b0 * blk * (bits == 8 ? 16 : 8);
        const uint8_t *w0 = wc[0] + wo, *w1 = wc[1] + wo, *w2 = wc[2] + wo;
        const int8_t *x0 = xr[0] + (size_t)b0 * blk, *x3 = xr[3] + (size_t)b0 * blk;
        const int32_t *ncr = nq + 4 * (size_t)b0;
        const float *xdr = xq + 4 * (size_t)b0, *wdp = sc;
        long ld = K, kn = bits == 8 ? blk / 8 : blk / 32, ib = n, k;
#define TILE_Q8(PF)                                                                              \
    F_LOAD ".p2align 4\n"                                                                       \
    "2:\n\t" ACC_INIT2 "mov %[kn], %[k]\n\t"                                                    \
    ".p2align 4\n"                                                                              \
    "1:\n\t" Q8_STEP(PF, "0", "0") Q8_STEP(PF, "64", "4")                                       \
    "add $128, %[w0]\n\tadd $128, %[w1]\n\tadd $128, %[w2]\n\tadd $8, %[x0]\n\tadd $8, %[x3]\n\t" \
    "dec %[k]\n\tjnz 1b\n\t" EPILOGUE "dec %[ib]\n\tjnz 2b\n\t" F_STORE
#define TILE_Q4(PF)                                                                              \
    F_LOAD ".p2align 4\n"                                                                       \
    "2:\n\t" ACC_INIT2 "mov %[kn], %[k]\n\t"                                                    \
    ".p2align 4\n"                                                                              \
    "1:\n\t" Q4_STEP(PF, "0", "0", "16") Q4_STEP(PF, "64", "4", "20")                           \
        Q4_STEP(PF, "128", "8", "24") Q4_STEP(PF, "192", "12", "28")                            \
    "add $256, %[w0]\n\tadd $256, %[w1]\n\tadd $256, %[w2]\n\tadd $32, %[x0]\n\tadd $32, %[x3]\n\t" \
    "dec %[k]\n\tjnz 1b\n\t" EPILOGUE "dec %[ib]\n\tjnz 2b\n\t" F_STORE
#define TILE_OUT                                                                                 \
    [w0] "+r"(w0), [w1] "+r"(w1), [w2] "+r"(w2), [x0] "+r"(x0), [x3] "+r"(x3), [nc] "+r"(ncr),    \
        [xd] "+r"(xdr), [wd] "+r"(wdp), [ib] "+r"(ib), [k] "=&r"(k)
#define TILE_IN [ld] "r"(ld), [kn] "m"(kn), [f] "r"(fbuf), [m] "v"(low4)
        /* Prefetch along the weight streams only on the first pass over a
         * panel chunk (from L2 or memory); later row tiles find it in L1. */
        if (bits == 8 && pf) __asm__ volatile(TILE_Q8(PF_ON) : TILE_OUT : TILE_IN : ALL_CLOBBERS);
        else if (bits == 8) __asm__ volatile(TILE_Q8(PF_OFF) : TILE_OUT : TILE_IN : ALL_CLOBBERS);
        else if (pf) __asm__ volatile(TILE_Q4(PF_ON) : TILE_OUT : TILE_IN : ALL_CLOBBERS);
        else __asm__ volatile(TILE_Q4(PF_OFF) : TILE_OUT : TILE_IN : ALL_CLOBBERS);
#pragma GCC unroll 8
        for (int i = 0; i < 4; i++)
#pragma GCC unroll 8
            for (int c = 0; c < 3; c++) f[i][c] = _mm512_load_ps(fbuf + (i * 3 + c) * 16);
        goto store;
    }
    for (int b = b0; b < b1; b++) {
        __m512i acc[RMAX][CMAX];
        const int xo = b * blk;
        if ((bits == 8 || bits == 4) && R == 4 && C == 3) {
            /* Tests (raw): the same asm k-loop, one block at a time. */
            const size_t wo = (size_t)b * blk * (bits == 8 ? 16 : 8);
            const uint8_t *w0 = wc[0] + wo, *w1 = wc[1] + wo, *w2 = wc[2] + wo;
            const int8_t *x0 = xr[0] + xo, *x3 = xr[3] + xo;
            const int32_t *nc0 = nc + b, *nc3 = nc + 3 * nb + b;
            long ld = K, ncs = (long)nb * 4;
            int32_t accbuf[12 * 16] __attribute__((aligned(64)));
            if (bits == 8) {
                long n = blk / 8;
                __asm__ volatile(ACC_INIT
                                 ".p2align 4\n"
                                 "1:\n\t" Q8_STEP(PF_ON, "0", "0") Q8_STEP(PF_ON, "64", "4")
                                 "add $128, %[w0]\n\t"
                                 "add $128, %[w1]\n\t"
                                 "add $128, %[w2]\n\t"
                                 "add $8, %[x0]\n\t"
                                 "add $8, %[x3]\n\t"
                                 "dec %[n]\n\t"
                                 "jnz 1b\n\t" ACC_STORE
                                 : [w0] "+r"(w0), [w1] "+r"(w1), [w2] "+r"(w2), [x0] "+r"(x0), [x3] "+r"(x3),
                                   [n] "+r"(n)
                                 : [ld] "r"(ld), [nc] "r"(nc0), [nc3] "r"(nc3), [ncs] "r"(ncs), [out] "r"(accbuf)
                                 : ASM_CLOBBERS);
            } else {
                long n = blk / 32;
                __asm__ volatile(ACC_INIT
                                 ".p2align 4\n"
                                 "1:\n\t" Q4_STEP(PF_ON, "0", "0", "16") Q4_STEP(PF_ON, "64", "4", "20")
                                     Q4_STEP(PF_ON, "128", "8", "24") Q4_STEP(PF_ON, "192", "12", "28")
                                 "add $256, %[w0]\n\t"
                                 "add $256, %[w1]\n\t"
                                 "add $256, %[w2]\n\t"
                                 "add $32, %[x0]\n\t"
                                 "add $32, %[x3]\n\t"
                                 "dec %[n]\n\t"
                                 "jnz 1b\n\t" ACC_STORE
                                 : [w0] "+r"(w0), [w1] "+r"(w1), [w2] "+r"(w2), [x0] "+r"(x0), [x3] "+r"(x3),
                                   [n] "+r"(n)
                                 : [ld] "r"(ld), [nc] "r"(nc0), [nc3] "r"(nc3), [ncs] "r"(ncs), [out] "r"(accbuf),
                                   [m] "v"(low4)
                                 : ASM_CLOBBERS);
            }
#pragma GCC unroll 8
            for (int i = 0; i < 4; i++)
#pragma GCC unroll 8
                for (int c = 0; c < 3; c++) acc[i][c] = _mm512_load_si512(accbuf + (i * 3 + c) * 16);
        } else {
#pragma GCC unroll 8
            for (int i = 0; i < R; i++) {
                __m512i n = _mm512_set1_epi32(nc[i * nb + b]);
#pragma GCC unroll 8
                for (int c = 0; c < C; c++) acc[i][c] = n;
            }
            if (bits == 8) {
                const size_t wo = (size_t)b * blk * 16;
#pragma GCC unroll 4
                for (int kq = 0; kq < blk / 4; kq++) {
                    __m512i w[CMAX];
                    load_records(wc, wo + (size_t)kq * 64, C, pf, w);
#pragma GCC unroll 8
                    for (int i = 0; i < R; i++) {
                        __m512i xb = bcast4(xr[i] + xo + 4 * kq);
#pragma GCC unroll 8
                        for (int c = 0; c < C; c++) acc[i][c] = _mm512_dpbusd_epi32(acc[i][c], w[c], xb);
                    }
                }
            } else {
                const size_t wo = (size_t)b * blk * 8;
                for (int q = 0; q < blk / 8; q++) { /* q = 4 * group + j4 */
                    const int xg = xo + (q >> 2) * 32 + (q & 3) * 4;
                    __m512i v[CMAX];
                    load_records(wc, wo + (size_t)q * 64, C, pf, v);
#pragma GCC unroll 8
                    for (int i = 0; i < R; i++) {
                        __m512i xb = bcast4(xr[i] + xg);
#pragma GCC unroll 8
                        for (int c = 0; c < C; c++)
                            acc[i][c] = _mm512_dpbusd_epi32(acc[i][c], _mm512_and_si512(v[c], low4), xb);
                    }
#pragma GCC unroll 8
                    for (int i = 0; i < R; i++) {
                        __m512i xb = bcast4(xr[i] + xg + 16);
#pragma GCC unroll 8
                        for (int c = 0; c < C; c++)
                            acc[i][c] = _mm512_dpbusd_epi32(
                                acc[i][c], _mm512_and_si512(_mm512_srli_epi16(v[c], 4), low4), xb);
                    }
                }
            }
        }
        if (raw) {
            for (int i = 0; i < R; i++)
                for (int c = 0; c < C; c++) {
                    int32_t tmp[16];
                    _mm512_storeu_si512(tmp, acc[i][c]);
                    qk_raw_store(j, r + i, (t + c) * 16, 16, b, tmp);
                }
            continue;
        }
#pragma GCC unroll 8
        for (int c = 0; c < C; c++) {
            __m512 wdv = _mm512_load_ps(sc + ((size_t)(b - b0) * C + c) * QPACK_TILE);
#pragma GCC unroll 8
            for (int i = 0; i < R; i++) {
                __m512 s = _mm512_mul_ps(wdv, _mm512_set1_ps(xd[i][b]));
                f[i][c] = _mm512_add_ps(f[i][c], _mm512_mul_ps(s, _mm512_cvtepi32_ps(acc[i][c])));
            }
        }
    }
    if (raw) return;
store:
#pragma GCC unroll 8
    for (int i = 0; i < R; i++)
#pragma GCC unroll 8
        for (int c = 0; c < C; c++) _mm512_mask_storeu_ps(yr[i] + c * QPACK_TILE, mask[c], f[i][c]);
}

/* -off * (sum of each block of a row), with vpdpbusd against ones: 64 codes
 * per instruction (blocks are multiples of 32: a 32-byte tail is masked). */
TARGET static void neg_block_sums(const int8_t *x, int nb, int blk, int off, int32_t *s) {
    const __m512i ones = _mm512_set1_epi8(1);
    for (int b = 0; b < nb; b++) {
        const int8_t *xb = x + (size_t)b * blk;
        __m512i acc = _mm512_setzero_si512();
        int i = 0;
        for (; i + 64 <= blk; i += 64) acc = _mm512_dpbusd_epi32(acc, ones, _mm512_loadu_si512(xb + i));
        if (i < blk) acc = _mm512_dpbusd_epi32(acc, ones, _mm512_maskz_loadu_epi8(0xFFFFFFFFull, xb + i));
        s[b] = -off * _mm512_reduce_add_epi32(acc);
    }
}

typedef void (*tile_fn)(const qk_job *j, int r, int t, const int32_t *nc, const int32_t *nq, const float *xq,
                        const float *sc, int b0, int b1, int pf);

#define INST(bits, R, C, raw)                                                                    \
    TARGET static void tile_##bits##_##R##_##C##_##raw(const qk_job *j, int r, int t,            \
                                                       const int32_t *nc, const int32_t *nq,      \
                                                       const float *xq, const float *sc, int b0,  \
                                                       int b1, int pf) {                          \
        tile(j, r, t, nc, nq, xq, sc, b0, b1, pf, bits, R, C, raw);                              \
    }
#define INST_C(bits, R, raw) INST(bits, R, 1, raw) INST(bits, R, 2, raw) INST(bits, R, 3, raw)
#define INST_RC(bits, raw) INST_C(bits, 1, raw) INST_C(bits, 2, raw) INST_C(bits, 3, raw) INST_C(bits, 4, raw)
INST_RC(8, 0)
INST_RC(4, 0)
INST_RC(8, 1)
INST_RC(4, 1)

#define ROW(bits, R, raw) {tile_##bits##_##R##_1_##raw, tile_##bits##_##R##_2_##raw, tile_##bits##_##R##_3_##raw}
#define TABLE(bits, raw) {ROW(bits, 1, raw), ROW(bits, 2, raw), ROW(bits, 3, raw), ROW(bits, 4, raw)}
static const tile_fn tiles[2][2][RMAX][CMAX] = {
    {TABLE(8, 0), TABLE(4, 0)},
    {TABLE(8, 1), TABLE(4, 1)},
};

/* Bytes of packed codes a panel of CMAX tiles may keep in L1 per K-chunk. */
#define PANEL_L1 36864

TARGET void qk_prep_avx512(const qk_job *j, int r0, int r1) {
    const qmat *x = j->x;
    const int blk = x->block, nb = x->cols / blk, off = j->p->bits == 8 ? 128 : 8;
    for (int r = r0; r < r1; r++) {
        int32_t *n1 = j->nc + (size_t)r * nb, *n4 = j->nq + (size_t)(r / 4) * 4 * nb + r % 4;
        float *x4 = j->xq + (size_t)(r / 4) * 4 * nb + r % 4;
        const float *xs = x->scales + (size_t)r * nb;
        neg_block_sums((const int8_t *)x->codes + (size_t)r * x->cols, nb, blk, off, n1);
        for (int b = 0; b < nb; b++) {
            n4[4 * b] = n1[b];
            x4[4 * b] = xs[b];
        }
    }
}

/* qk_scales_transpose with one gather per (tile, block): the 16 scales of
 * a tile's rows for a block are nb floats apart in ws. */
TARGET static void scales_transpose(const float *ws, int rows, int nb, int t0, int t1, int b0, int b1, float *out) {
    const int g = t1 - t0;
    const __m512i idx = _mm512_mullo_epi32(_mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15),
                                           _mm512_set1_epi32(nb));
    for (int t = t0; t < t1; t++) {
        __mmask16 m = lane_mask(rows - t * QPACK_TILE);
        const float *src = ws + (size_t)t * QPACK_TILE * nb;
        for (int b = b0; b < b1; b++)
            _mm512_store_ps(out + ((size_t)(b - b0) * g + (size_t)(t - t0)) * QPACK_TILE,
                            _mm512_mask_i32gather_ps(_mm512_setzero_ps(), m, idx, src + b, 4));
    }
}

TARGET void qk_avx512(const qk_job *j, int r0, int r1, int t0, int t1) {
    const qpack *p = j->p;
    const int blk = p->block, nb = p->cols / blk;
    /* K-chunks: the blocks of a panel whose codes fit PANEL_L1, evened out. */
    const int bytes_per_block = CMAX * QPACK_TILE * blk / (p->bits == 8 ? 1 : 2);
    int nbc = PANEL_L1 / bytes_per_block;
    if (nbc < 1) nbc = 1;
    nbc = (nb + (nb + nbc - 1) / nbc - 1) / ((nb + nbc - 1) / nbc);
    float scl[CMAX * QPACK_TILE * 64] __attribute__((aligned(64)));
    float *sc = scl;
    if (nbc > 64 && posix_memalign((void **)&sc, 64, (size_t)CMAX * QPACK_TILE * nbc * sizeof(float))) sc = NULL;
    if (!sc) abort();
    const tile_fn(*tab)[CMAX] = tiles[j->raw != NULL][p->bits == 4];
    /* Panel of C tiles outer, row tiles inner: the panel's codes (one K-chunk
     * at a time) stay in L1 while every row of the task goes by; partial
     * sums wait in y between K-chunks. */
    {   /* The scales of the task's tiles (contiguous rows of w->scales)
         * come from memory once per token group: ask for all of them now
         * (into L2), the panels below find them there. */
        int o1 = t1 * QPACK_TILE < p->rows ? t1 * QPACK_TILE : p->rows;
        const char *ws = (const char *)(j->wscales + (size_t)t0 * QPACK_TILE * nb);
        size_t nbytes = (size_t)(o1 - t0 * QPACK_TILE) * nb * sizeof(float);
        for (size_t o = 0; o < nbytes; o += 64) _mm_prefetch(ws + o, _MM_HINT_T1);
    }
    for (int t = t0; t < t1; t += CMAX) {
        int C = t1 - t < CMAX ? t1 - t : CMAX;
        for (int b0 = 0; b0 < nb; b0 += nbc) {
            int b1 = b0 + nbc < nb ? b0 + nbc : nb;
            scales_transpose(j->wscales, p->rows, nb, t, t + C, b0, b1, sc);
            for (int r = r0; r < r1; r += RMAX) {
                int R = r1 - r < RMAX ? r1 - r : RMAX;
                if (r + RMAX < r1) /* the next row tile's codes, from L2 */
                    for (int i = 0; i < RMAX && r + RMAX + i < r1; i++)
                        for (int o = b0 * blk; o < b1 * blk; o += 64)
                            _mm_prefetch((const char *)j->x->codes + (size_t)(r + RMAX + i) * p->cols + o, _MM_HINT_T0);
                size_t q4 = (size_t)(r / 4) * 4 * nb;
                tab[R - 1][C - 1](j, r, t, j->nc + (size_t)r * nb, j->nq + q4, j->xq + q4, sc, b0, b1, r == r0);
            }
        }
    }
    if (sc != scl) free(sc);
}

/* ------------------------------------------------------------------ */
/* activation quantization                                             */

/* lroundf(v) for the quantizer's range |v| < 128: trunc(v + copysign(0.5 -
 * 2^-25, v)), the float add rounding to nearest.  Checked exhaustively
 * against lroundf for every float with |v| <= 128 (and +-inf / NaN, from a
 * degenerate block, give INT_MIN, whose low byte is the scalar's 0). */
TARGET INLINE __m512i round_away(__m512 v) {
    __m512i sign = _mm512_and_si512(_mm512_castps_si512(v), _mm512_set1_epi32((int)0x80000000u));
    __m512 c = _mm512_castsi512_ps(_mm512_or_si512(sign, _mm512_set1_epi32(0x3EFFFFFF))); /* +-0.49999997f */
    return _mm512_cvttps_epi32(_mm512_add_ps(v, c));
}

TARGET void qact_avx512(qmat *m, const float *x, int ld, int r0, int r1) {
    const int blk = m->block, nb = m->cols / blk;
    for (int r = r0; r < r1; r++) {
        const float *xr = x + (size_t)r * ld;
        int8_t *q = (int8_t *)m->codes + (size_t)r * m->cols;
        float *d = m->scales + (size_t)r * nb;
        for (int b = 0; b < nb; b++) {
            const float *xb = xr + (size_t)b * blk;
            __m512 mx = _mm512_setzero_ps();
            for (int i = 0; i < blk; i += 16) mx = _mm512_max_ps(_mm512_abs_ps(_mm512_loadu_ps(xb + i)), mx);
            float amax = _mm512_reduce_max_ps(mx);
            float scale = amax / 127.0f, inv = amax > 0 ? 127.0f / amax : 0;
            d[b] = scale;
            __m512 vi = _mm512_set1_ps(inv);
            for (int i = 0; i < blk; i += 16)
                _mm_storeu_si128((__m128i *)(q + (size_t)b * blk + i),
                                 _mm512_cvtepi32_epi8(round_away(_mm512_mul_ps(_mm512_loadu_ps(xb + i), vi))));
        }
    }
}

#else /* not x86-64: never called (bct_isa_supported says no) */
void qk_avx512(const qk_job *j, int r0, int r1, int t0, int t1) { abort(); }
void qact_avx512(qmat *m, const float *x, int ld, int r0, int r1) { abort(); }
#endif
