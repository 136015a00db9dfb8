/* qgemm_avx2.c - AVX2 kernels: int8 block GEMM with vpmaddubsw / vpmaddwd
 * (avx2) or with the VEX vpdpbusd of AVX-VNNI (avxvnni: CPUs that have it
 * without AVX-512, e.g. Intel's hybrid client cores and Sierra Forest),
 * and activation quantization.  Compiled for baseline x86-64; functions
 * carry target attributes and run only when qgemm.c has checked the CPU.
 * Layout and rounding contract: qgemm_kern.h.
 *
 * vpmaddubsw multiplies unsigned by signed bytes and adds pairs into
 * int16 with saturation, so the operands must keep pair sums in range:
 *   q8: the sign trick: |w| (unsigned) times x * sign(w) (signed): pairs
 *       <= 2 * 127 * 127 = 32258, never saturated for codes in [-127, 127]
 *       (the qmat contract).  vpmaddwd by ones widens to int32.  The packed
 *       codes are biased by 128, so the kernel first flips them back.
 *   q4: the biased nibbles (0..15) times x: pairs <= 2 * 15 * 127 = 3810,
 *       so the 8 products of one 32-column group add up in int16 (<= 30480)
 *       before one vpmaddwd; the bias is removed with -8 * sum(x).
 * vpdpbusd adds the 4 products of a lane straight into int32, so the
 * avxvnni kernel multiplies the packed codes as they are (u8 = q + 128 or
 * the nibble q + 8) and removes the bias with -128 * sum(x) or -8 * sum(x),
 * like the AVX-512 kernel.
 * A 16-row tile is two 8-lane halves (bytes 0-31 and 32-63 of each
 * 64-byte record).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "qgemm_kern.h"

#if defined(__x86_64__)
#include <immintrin.h>

#define TARGET __attribute__((target("avx2")))
#define INLINE static inline __attribute__((always_inline))

enum { RMAX = 4, CMAX = 2 };
/* Row and tile steps per weight width (register budget: 16 ymm; vpmaddubsw
 * needs int16 partial sums for q4, vpdpbusd does not). */
#define RSTEP8 4
#define RSTEP4 2
#define RSTEP_VNNI 4
#define CSTEP 1

TARGET INLINE __m256i bcast4(const int8_t *p) {
    int32_t v;
    memcpy(&v, p, 4);
    return _mm256_set1_epi32(v);
}

/* acc + the 4 products u8 x s8 of each 32-bit lane: vpdpbusd in its VEX
 * form.  Inline asm, because the intrinsic needs the avxvnni target, which
 * tile() (shared with the plain AVX2 kernel) must not have. */
TARGET INLINE __m256i dpbusd(__m256i acc, __m256i u8, __m256i s8) {
    __asm__("%{vex%} vpdpbusd %2, %1, %0" : "+x"(acc) : "x"(u8), "x"(s8));
    return acc;
}

/* One R x C tile over all blocks.  bits, R, C, raw and vnni are constants
 * after inlining into the instances below. */
TARGET INLINE void tile(const qk_job *j, int r, int t, const int32_t *nc, const float *sc, int sg,
                        const int bits, const int R, const int C, const int raw, const int vnni) {
    const qpack *p = j->p;
    const qmat *x = j->x;
    const int blk = p->block, nb = p->cols / blk, K = p->cols, H = 2 * C;
    const int8_t *xr[RMAX];
    const float *xd[RMAX];
    const uint8_t *wc[CMAX];
    const float *wd[CMAX];
#pragma GCC unroll 8
    for (int i = 0; i < R; i++) {
        xr[i] = (const int8_t *)x->codes + (size_t)(r + i) * K;
        xd[i] = x->scales + (size_t)(r + i) * nb;
    }
#pragma GCC unroll 8
    for (int c = 0; c < C; c++) {
        wc[c] = qpack_codes(p, t + c);
        wd[c] = sc + (size_t)c * QPACK_TILE; /* block b at + b * sg * 16 */
    }
    /* Float accumulators (bias first), one 16-wide row segment per tile. */
    float fy[RMAX][CMAX * 16] __attribute__((aligned(32)));
    for (int c = 0; c < C; c++) {
        int o0 = (t + c) * QPACK_TILE;
        for (int l = 0; l < 16; l++) {
            float b0 = j->bias && o0 + l < p->rows ? j->bias[o0 + l] : 0.0f;
            for (int i = 0; i < R; i++) fy[i][c * 16 + l] = b0;
        }
    }
    const __m256i ones16 = _mm256_set1_epi16(1), low4 = _mm256_set1_epi8(0x0F),
                  flip = _mm256_set1_epi8((char)0x80);
    for (int b = 0; b < nb; b++) {
        __m256i acc[RMAX][2 * CMAX];
#pragma GCC unroll 8
        for (int i = 0; i < R; i++) {
            __m256i n = _mm256_set1_epi32(nc[i * nb + b]);
#pragma GCC unroll 8
            for (int h = 0; h < H; h++) acc[i][h] = n;
        }
        const int xo = b * blk;
        if (bits == 8) {
            const size_t wo = (size_t)b * blk * 16;
            for (int kq = 0; kq < blk / 4; kq++) {
                __m256i w[2 * CMAX], aw[2 * CMAX];
#pragma GCC unroll 8
                for (int h = 0; h < H; h++) {
                    w[h] = _mm256_load_si256((const __m256i *)(wc[h >> 1] + wo + (size_t)kq * 64 + (h & 1) * 32));
                    if (!vnni) {
                        w[h] = _mm256_xor_si256(w[h], flip);
                        aw[h] = _mm256_abs_epi8(w[h]);
                    }
                }
#pragma GCC unroll 8
                for (int i = 0; i < R; i++) {
                    __m256i xb = bcast4(xr[i] + xo + 4 * kq);
#pragma GCC unroll 8
                    for (int h = 0; h < H; h++) {
                        if (vnni) {
                            acc[i][h] = dpbusd(acc[i][h], w[h], xb);
                            continue;
                        }
                        __m256i m = _mm256_maddubs_epi16(aw[h], _mm256_sign_epi8(xb, w[h]));
                        acc[i][h] = _mm256_add_epi32(acc[i][h], _mm256_madd_epi16(m, ones16));
                    }
                }
            }
        } else {
            const size_t wo = (size_t)b * blk * 8;
            for (int g = 0; g < blk / 32; g++) {
                __m256i s[RMAX][2 * CMAX]; /* avx2: the group's int16 sums */
#pragma GCC unroll 8
                for (int i = 0; i < R; i++)
#pragma GCC unroll 8
                    for (int h = 0; h < H; h++) s[i][h] = _mm256_setzero_si256();
#pragma GCC unroll 4
                for (int j4 = 0; j4 < 4; j4++) {
                    const int xg = xo + g * 32 + j4 * 4;
#pragma GCC unroll 8
                    for (int h = 0; h < H; h++) {
                        __m256i v = _mm256_load_si256(
                            (const __m256i *)(wc[h >> 1] + wo + (size_t)(g * 4 + j4) * 64 + (h & 1) * 32));
                        __m256i lo = _mm256_and_si256(v, low4);
                        __m256i hi = _mm256_and_si256(_mm256_srli_epi16(v, 4), low4);
#pragma GCC unroll 8
                        for (int i = 0; i < R; i++) {
                            __m256i x0 = bcast4(xr[i] + xg), x1 = bcast4(xr[i] + xg + 16);
                            if (vnni) {
                                acc[i][h] = dpbusd(dpbusd(acc[i][h], lo, x0), hi, x1);
                            } else {
                                s[i][h] = _mm256_add_epi16(s[i][h], _mm256_maddubs_epi16(lo, x0));
                                s[i][h] = _mm256_add_epi16(s[i][h], _mm256_maddubs_epi16(hi, x1));
                            }
                        }
                    }
                }
                if (vnni) continue;
#pragma GCC unroll 8
                for (int i = 0; i < R; i++)
#pragma GCC unroll 8
                    for (int h = 0; h < H; h++)
                        acc[i][h] = _mm256_add_epi32(acc[i][h], _mm256_madd_epi16(s[i][h], ones16));
            }
        }
        if (raw) {
            for (int i = 0; i < R; i++)
                for (int h = 0; h < H; h++) {
                    int32_t tmp[8];
                    _mm256_storeu_si256((__m256i *)tmp, acc[i][h]);
                    qk_raw_store(j, r + i, (t + (h >> 1)) * 16 + (h & 1) * 8, 8, b, tmp);
                }
            continue;
        }
#pragma GCC unroll 8
        for (int h = 0; h < H; h++) {
            __m256 wdv = _mm256_load_ps(wd[h >> 1] + (size_t)b * sg * QPACK_TILE + (h & 1) * 8);
#pragma GCC unroll 8
            for (int i = 0; i < R; i++) {
                __m256 s = _mm256_mul_ps(wdv, _mm256_set1_ps(xd[i][b]));
                float *fp = &fy[i][h * 8];
                _mm256_store_ps(fp, _mm256_add_ps(_mm256_load_ps(fp),
                                                  _mm256_mul_ps(s, _mm256_cvtepi32_ps(acc[i][h]))));
            }
        }
    }
    if (raw) return;
    for (int c = 0; c < C; c++) {
        int o0 = (t + c) * QPACK_TILE, n = p->rows - o0 < 16 ? p->rows - o0 : 16;
        for (int i = 0; i < R; i++)
            memcpy(j->y + (size_t)(r + i) * j->ldy + o0, &fy[i][c * 16], (size_t)n * sizeof(float));
    }
}

typedef void (*tile_fn)(const qk_job *j, int r, int t, const int32_t *nc, const float *sc, int sg);

#define INST(v, bits, R, C, raw)                                                                 \
    TARGET static void tile_##v##_##bits##_##R##_##C##_##raw(const qk_job *j, int r, int t,     \
                                                            const int32_t *nc, const float *sc, int sg) { \
        tile(j, r, t, nc, sc, sg, bits, R, C, raw, v);                                           \
    }
#define INST_C(v, bits, R, raw) INST(v, bits, R, 1, raw) INST(v, bits, R, 2, raw)
#define INST_RC(v, bits, raw)                                                                    \
    INST_C(v, bits, 1, raw) INST_C(v, bits, 2, raw) INST_C(v, bits, 3, raw) INST_C(v, bits, 4, raw)
#define INST_ALL(v) INST_RC(v, 8, 0) INST_RC(v, 4, 0) INST_RC(v, 8, 1) INST_RC(v, 4, 1)
INST_ALL(0)
INST_ALL(1)

#define ROW(v, bits, R, raw) {tile_##v##_##bits##_##R##_1_##raw, tile_##v##_##bits##_##R##_2_##raw}
#define TABLE(v, bits, raw) {ROW(v, bits, 1, raw), ROW(v, bits, 2, raw), ROW(v, bits, 3, raw), ROW(v, bits, 4, raw)}
/* [vnni][raw][q4][R - 1][C - 1] */
static const tile_fn tiles[2][2][2][RMAX][CMAX] = {
    {{TABLE(0, 8, 0), TABLE(0, 4, 0)}, {TABLE(0, 8, 1), TABLE(0, 4, 1)}},
    {{TABLE(1, 8, 0), TABLE(1, 4, 0)}, {TABLE(1, 8, 1), TABLE(1, 4, 1)}},
};

/* -off * (sum of each block of a row): vpmaddubsw against ones, then
 * vpmaddwd; blocks are multiples of 32. */
TARGET static void neg_block_sums(const int8_t *x, int nb, int blk, int off, int32_t *s) {
    const __m256i ones8 = _mm256_set1_epi8(1), ones16 = _mm256_set1_epi16(1);
    for (int b = 0; b < nb; b++) {
        const int8_t *xb = x + (size_t)b * blk;
        __m256i acc = _mm256_setzero_si256();
        for (int i = 0; i < blk; i += 32) {
            __m256i pairs = _mm256_maddubs_epi16(ones8, _mm256_loadu_si256((const __m256i *)(xb + i)));
            acc = _mm256_add_epi32(acc, _mm256_madd_epi16(pairs, ones16));
        }
        __m128i v = _mm_add_epi32(_mm256_castsi256_si128(acc), _mm256_extracti128_si256(acc, 1));
        v = _mm_add_epi32(v, _mm_shuffle_epi32(v, 0x4E));
        v = _mm_add_epi32(v, _mm_shuffle_epi32(v, 0xB1));
        s[b] = -off * _mm_cvtsi128_si32(v);
    }
}

/* off: the bias of the codes the kernel multiplies (0 for avx2's q8, whose
 * sign trick multiplies signed codes). */
TARGET static void prep(const qk_job *j, int r0, int r1, int off) {
    const qmat *x = j->x;
    const int blk = x->block, nb = x->cols / blk;
    for (int r = r0; r < r1; r++) {
        if (off) neg_block_sums((const int8_t *)x->codes + (size_t)r * x->cols, nb, blk, off, j->nc + (size_t)r * nb);
        else memset(j->nc + (size_t)r * nb, 0, (size_t)nb * sizeof(int32_t));
    }
}

TARGET void qk_prep_avx2(const qk_job *j, int r0, int r1) { prep(j, r0, r1, j->p->bits == 4 ? 8 : 0); }
TARGET void qk_prep_avxvnni(const qk_job *j, int r0, int r1) { prep(j, r0, r1, j->p->bits == 4 ? 8 : 128); }

TARGET static void run(const qk_job *j, int r0, int r1, int t0, int t1, int vnni) {
    const qpack *p = j->p;
    const int nb = p->cols / p->block, q4 = p->bits == 4;
    const int rstep = vnni ? RSTEP_VNNI : q4 ? RSTEP4 : RSTEP8, cstep = CSTEP;
    float scl[QK_SCALES_MAX] __attribute__((aligned(64)));
    int gs = QK_SCALES_MAX / (QPACK_TILE * nb);
    if (gs < 1) gs = 1;
    float *sc = scl;
    if ((size_t)gs * QPACK_TILE * nb > QK_SCALES_MAX &&
        posix_memalign((void **)&sc, 64, (size_t)QPACK_TILE * nb * sizeof(float)))
        sc = NULL;
    if (!sc) abort();
    const tile_fn(*tab)[CMAX] = tiles[vnni][j->raw != NULL][q4];
    for (int tg = t0; tg < t1; tg += gs) {
        int tg1 = tg + gs < t1 ? tg + gs : t1;
        qk_scales_transpose(j->wscales, p->rows, nb, tg, tg1, 0, nb, sc);
        for (int r = r0; r < r1; r += rstep) {
            int R = r1 - r < rstep ? r1 - r : rstep;
            for (int t = tg; t < tg1; t += cstep) {
                int C = tg1 - t < cstep ? tg1 - t : cstep;
                tab[R - 1][C - 1](j, r, t, j->nc + (size_t)r * nb, sc + (size_t)(t - tg) * QPACK_TILE, tg1 - tg);
            }
        }
    }
    if (sc != scl) free(sc);
}

TARGET void qk_avx2(const qk_job *j, int r0, int r1, int t0, int t1) { run(j, r0, r1, t0, t1, 0); }
TARGET void qk_avxvnni(const qk_job *j, int r0, int r1, int t0, int t1) { run(j, r0, r1, t0, t1, 1); }

/* ------------------------------------------------------------------ */
/* activation quantization                                             */

/* lroundf(v) for |v| < 128 as trunc(v + copysign(0.5 - 2^-25, v)): exact
 * (checked for every float with |v| <= 128; see qgemm_avx512.c). */
TARGET INLINE __m256i round_away(__m256 v) {
    const __m256 sign = _mm256_set1_ps(-0.0f);
    __m256 c = _mm256_or_ps(_mm256_and_ps(v, sign), _mm256_castsi256_ps(_mm256_set1_epi32(0x3EFFFFFF)));
    __m256i i = _mm256_cvttps_epi32(_mm256_add_ps(v, c));
    /* NaN / inf (only from a degenerate block: max|x| < 127 / FLT_MAX)
     * convert to INT_MIN; the scalar (int8_t)lroundf keeps its low byte, 0. */
    return _mm256_andnot_si256(_mm256_cmpeq_epi32(i, _mm256_set1_epi32(INT32_MIN)), i);
}

TARGET void qact_avx2(qmat *m, const float *x, int ld, int r0, int r1) {
    const int blk = m->block, nb = m->cols / blk;
    const __m256 sign = _mm256_set1_ps(-0.0f);
    for (int r = r0; r < r1; r++) {
        const float *xr = x + (size_t)r * ld;
        int8_t *q = (int8_t *)m->codes + (size_t)r * m->cols;
        float *d = m->scales + (size_t)r * nb;
        for (int b = 0; b < nb; b++) {
            const float *xb = xr + (size_t)b * blk;
            __m256 mx = _mm256_setzero_ps();
            for (int i = 0; i < blk; i += 8) mx = _mm256_max_ps(_mm256_andnot_ps(sign, _mm256_loadu_ps(xb + i)), mx);
            __m128 m4 = _mm_max_ps(_mm256_castps256_ps128(mx), _mm256_extractf128_ps(mx, 1));
            m4 = _mm_max_ps(m4, _mm_movehl_ps(m4, m4));
            m4 = _mm_max_ss(m4, _mm_shuffle_ps(m4, m4, 1));
            float amax = _mm_cvtss_f32(m4);
            float scale = amax / 127.0f, inv = amax > 0 ? 127.0f / amax : 0;
            d[b] = scale;
            __m256 vi = _mm256_set1_ps(inv);
            for (int i = 0; i < blk; i += 16) {
                __m256i a = round_away(_mm256_mul_ps(_mm256_loadu_ps(xb + i), vi));
                __m256i c = round_away(_mm256_mul_ps(_mm256_loadu_ps(xb + i + 8), vi));
                __m256i w16 = _mm256_permute4x64_epi64(_mm256_packs_epi32(a, c), 0xD8);
                __m128i w8 = _mm_packs_epi16(_mm256_castsi256_si128(w16), _mm256_extracti128_si256(w16, 1));
                _mm_storeu_si128((__m128i *)(q + (size_t)b * blk + i), w8);
            }
        }
    }
}

#else
void qk_avx2(const qk_job *j, int r0, int r1, int t0, int t1) { abort(); }
void qk_avxvnni(const qk_job *j, int r0, int r1, int t0, int t1) { abort(); }
void qk_prep_avx2(const qk_job *j, int r0, int r1) { abort(); }
void qk_prep_avxvnni(const qk_job *j, int r0, int r1) { abort(); }
void qact_avx2(qmat *m, const float *x, int ld, int r0, int r1) { abort(); }
#endif
