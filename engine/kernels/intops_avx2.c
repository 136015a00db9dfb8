/* intops_avx2.c - AVX2 integer non-linear ops, bit-identical to intops.c.
 *
 * Same scheme as the AVX-512 versions (intops_simd.c): intops.c's setup
 * functions give the per-call constants, its range functions the scalar
 * tails, and every lane does the scalar's exact integer steps.  AVX2 lacks
 * some AVX-512 instructions; their exact replacements here:
 *   - int64 abs: (v ^ s) - s with s = (v < 0 ? -1 : 0), which also gives
 *     back the sign of a magnitude (rshift_round works on magnitudes);
 *   - unsigned 64-bit compare / max: every value compared is in [0, 2^63),
 *     so the signed vpcmpgtq does;
 *   - 64-bit products: vpmuludq / vpmuldq when both factors fit 32 bits;
 *     softmax's factor and LayerNorm's inv reach 2^32 (33 bits), so those
 *     products are built from two 32-bit ones (mul_u32_u64);
 *   - int64 -> int32 packing: int32 rows are split into even and odd lanes
 *     (zero-extension with an AND / a 32-bit shift) and the results put
 *     back with one blend;
 *   - int64 -> float: exact double first, then one rounding (cvt_epi64_ps).
 * Only AVX2 is needed (no FMA: no contraction, -ffp-contract=off).
 */
#include "intops_simd.h"
#include "intops_priv.h"

#include <string.h>

#if defined(__x86_64__)
#include <immintrin.h>

#define TARGET __attribute__((target("avx2")))
#define INLINE static inline __attribute__((always_inline))

/* round() of doubles: half away from zero, exactly (v - trunc(v) is exact). */
TARGET INLINE __m256d round_away_pd(__m256d v) {
    const __m256d sign = _mm256_set1_pd(-0.0);
    __m256d t = _mm256_round_pd(v, _MM_FROUND_TO_ZERO | _MM_FROUND_NO_EXC);
    __m256d up = _mm256_cmp_pd(_mm256_andnot_pd(sign, _mm256_sub_pd(v, t)), _mm256_set1_pd(0.5), _CMP_GE_OQ);
    __m256d one = _mm256_or_pd(_mm256_and_pd(v, sign), _mm256_set1_pd(1.0));
    return _mm256_add_pd(t, _mm256_and_pd(up, one));
}

/* |v| for int64 lanes, and in *s the sign mask to restore it: (a ^ s) - s. */
TARGET INLINE __m256i abs_epi64(__m256i v, __m256i *s) {
    *s = _mm256_cmpgt_epi64(_mm256_setzero_si256(), v);
    return _mm256_sub_epi64(_mm256_xor_si256(v, *s), *s);
}

TARGET INLINE __m256i apply_sign_epi64(__m256i a, __m256i s) { return _mm256_sub_epi64(_mm256_xor_si256(a, s), s); }

/* a * b mod 2^64 for a < 2^32 and any b: a b_lo + (a b_hi << 32). */
TARGET INLINE __m256i mul_u32_u64(__m256i a, __m256i b) {
    __m256i hi = _mm256_mul_epu32(a, _mm256_srli_epi64(b, 32));
    return _mm256_add_epi64(_mm256_mul_epu32(a, b), _mm256_slli_epi64(hi, 32));
}

/* 8 int32 lanes from the low halves of the even (ev) and odd (od) int64 lanes. */
TARGET INLINE __m256i join_even_odd(__m256i ev, __m256i od) {
    return _mm256_blend_epi32(ev, _mm256_slli_epi64(od, 32), 0xAA);
}

/* (float)v for int64 lanes with |v| < 2^63, rounded like C's conversion
 * (once, to nearest even).  |v| < 2^53 is exact in double.  Above, the
 * float ulp is >= 2^30 and bits below 2^11 only matter as "nonzero": they
 * are folded into bit 11 (round to odd), which leaves bits [11, 63), exact
 * in double, and the float rounding unchanged.  The double is built from
 * the 32-bit halves (hi 2^32 + lo with the 2^84 and 2^52 magic numbers;
 * the one add is exact), signed, and rounded to float once. */
TARGET INLINE __m128 cvt_epi64_ps(__m256i v) {
    const __m256i low = _mm256_set1_epi64x(0x7FF);
    __m256i s, a = abs_epi64(v, &s);
    __m256i sticky = _mm256_andnot_si256(_mm256_cmpeq_epi64(_mm256_and_si256(a, low), _mm256_setzero_si256()),
                                         _mm256_set1_epi64x(0x800));
    __m256i big = _mm256_cmpgt_epi64(a, _mm256_set1_epi64x(((int64_t)1 << 53) - 1));
    a = _mm256_blendv_epi8(a, _mm256_or_si256(_mm256_andnot_si256(low, a), sticky), big);
    __m256i hi = _mm256_or_si256(_mm256_srli_epi64(a, 32), _mm256_castpd_si256(_mm256_set1_pd(0x1p84)));
    __m256i lo = _mm256_blend_epi32(a, _mm256_castpd_si256(_mm256_set1_pd(0x1p52)), 0xAA);
    __m256d d = _mm256_add_pd(_mm256_sub_pd(_mm256_castsi256_pd(hi), _mm256_set1_pd(0x1p84 + 0x1p52)),
                              _mm256_castsi256_pd(lo));
    d = _mm256_or_pd(d, _mm256_and_pd(_mm256_castsi256_pd(s), _mm256_set1_pd(-0.0)));
    return _mm256_cvtpd_ps(d);
}

/* Horizontal reductions (once per row). */
TARGET INLINE float hmax_ps(__m256 v) {
    float t[8];
    _mm256_storeu_ps(t, v);
    return iop__absmax_range(t, 0, 8, 0.0f); /* the lanes are >= 0 */
}

TARGET INLINE int32_t hmax_epi32(__m256i v) {
    __m128i m = _mm_max_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
    m = _mm_max_epi32(m, _mm_shuffle_epi32(m, 0x4E));
    m = _mm_max_epi32(m, _mm_shuffle_epi32(m, 0xB1));
    return _mm_cvtsi128_si32(m);
}

/* Lanes in [0, 2^63): the signed compare orders them. */
TARGET INLINE uint64_t hmax_epu64(__m256i v) {
    __m128i a = _mm256_castsi256_si128(v), b = _mm256_extracti128_si256(v, 1);
    __m128i m = _mm_blendv_epi8(a, b, _mm_cmpgt_epi64(b, a));
    uint64_t lo = (uint64_t)_mm_cvtsi128_si64(m), hi = (uint64_t)_mm_extract_epi64(m, 1);
    return lo > hi ? lo : hi;
}

TARGET INLINE uint64_t hsum_epi64(__m256i v) {
    uint64_t t[4];
    _mm256_storeu_si256((__m256i *)t, v);
    return t[0] + t[1] + t[2] + t[3];
}

/* ------------------------------------------------------------------ */

TARGET float iop_quantize_row_avx2(const float *x, int n, int bits, int32_t *q) {
    const __m256 abs = _mm256_castsi256_ps(_mm256_set1_epi32(0x7FFFFFFF));
    int i = 0;
    __m256 mx = _mm256_setzero_ps();
    for (; i + 8 <= n; i += 8) mx = _mm256_max_ps(_mm256_and_ps(_mm256_loadu_ps(x + i), abs), mx);
    iop__quant_k k;
    float scale = iop__quant_setup(iop__absmax_range(x, i, n, hmax_ps(mx)), bits, &k);
    const __m256d vinv = _mm256_set1_pd(k.inv), hi = _mm256_set1_pd(k.qmax), lo = _mm256_set1_pd(-k.qmax);
    for (i = 0; i + 4 <= n; i += 4) {
        __m256d v = round_away_pd(_mm256_mul_pd(_mm256_cvtps_pd(_mm_loadu_ps(x + i)), vinv));
        v = _mm256_max_pd(_mm256_min_pd(v, hi), lo);
        _mm_storeu_si128((__m128i *)(q + i), _mm256_cvttpd_epi32(v));
    }
    iop__quant_range(&k, x, i, n, q);
    return scale;
}

TARGET void iop_gelu_avx2(const int32_t *q, int n, float scale, int32_t *out, float *out_scale) {
    iop__gelu_k k;
    iop__gelu_setup(scale, &k, out_scale);
    const __m256i vmax = _mm256_set1_epi32(IOP_GELU_MAX_CODE), vmin = _mm256_set1_epi32(-IOP_GELU_MAX_CODE);
    const __m256i vB = _mm256_set1_epi32((int)k.B), vC = _mm256_set1_epi32((int)k.C);
    const __m256i vM = _mm256_set1_epi64x((long long)k.M), vhalf = _mm256_set1_epi64x((long long)k.half);
    const __m256i rnd = _mm256_set1_epi32(1 << (IOP__GELU_SHIFT - 1)), one = _mm256_set1_epi32(1 << IOP__GELU_SHIFT);
    const __m128i vR = _mm_cvtsi32_si128(k.R);
    int i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256i v = _mm256_max_epi32(_mm256_min_epi32(_mm256_loadu_si256((const __m256i *)(q + i)), vmax), vmin);
        __m256i u;
        if (k.clip_all) {
            u = vB;
        } else {
            /* |v| M < 2^47 in 64 bits, even and odd lanes apart; u < 2^30 fits back. */
            __m256i a = _mm256_abs_epi32(v);
            __m256i u0 = _mm256_srl_epi64(_mm256_add_epi64(_mm256_mul_epu32(a, vM), vhalf), vR);
            __m256i u1 = _mm256_srl_epi64(_mm256_add_epi64(_mm256_mul_epu32(_mm256_srli_epi64(a, 32), vM), vhalf), vR);
            u = _mm256_min_epi32(join_even_odd(u0, u1), vB);
        }
        __m256i d = _mm256_sub_epi32(vB, u);
        __m256i P = _mm256_sub_epi32(vC, _mm256_mullo_epi32(d, d));
        __m256i e = _mm256_srai_epi32(_mm256_add_epi32(P, rnd), IOP__GELU_SHIFT);
        __m256i pos = _mm256_cmpgt_epi32(v, _mm256_setzero_si256());
        __m256i f = _mm256_blendv_epi8(_mm256_sub_epi32(one, e), _mm256_add_epi32(one, e), pos);
        _mm256_storeu_si256((__m256i *)(out + i), _mm256_mullo_epi32(v, f));
    }
    iop__gelu_range(&k, q, i, n, out);
}

/* Softmax pass 1's constants as vectors. */
typedef struct sm_vk {
    __m256i dcap, M, half, K1, K2, mask, q, one, zcut;
    __m128i R;
} sm_vk;

/* exp(x - max) in Q30 for d = max - x in [0, 2^32) in int64 lanes:
 * iop__sm_exp_range's steps (all products of factors < 2^32). */
TARGET INLINE __m256i sm_exp(const sm_vk *c, __m256i d) {
    __m256i ok = _mm256_cmpgt_epi64(c->dcap, d);
    __m256i m = _mm256_srl_epi64(_mm256_add_epi64(_mm256_mul_epu32(d, c->M), c->half), c->R);
    __m256i z = _mm256_srli_epi64(m, IOP__SM_F);
    ok = _mm256_and_si256(ok, _mm256_cmpgt_epi64(c->zcut, z));
    __m256i r = _mm256_and_si256(m, c->mask);
    __m256i kk = _mm256_sub_epi64(c->K1, _mm256_srli_epi64(_mm256_mul_epu32(c->K2, r), IOP__SM_F));
    __m256i e = _mm256_sub_epi64(c->q, _mm256_srli_epi64(_mm256_mul_epu32(kk, r), IOP__SM_F));
    /* e = (e + 2^(z-1)) >> z; for z == 0 the count z-1 wraps to >= 64: adds 0. */
    e = _mm256_srlv_epi64(_mm256_add_epi64(e, _mm256_sllv_epi64(c->one, _mm256_sub_epi64(z, c->one))), z);
    return _mm256_and_si256(e, ok);
}

/* Pass 2 on e in [0, 2^32) in int64 lanes (iop__sm_norm_range). */
TARGET INLINE __m256i sm_norm(__m256i e, __m256i ehalf, __m128i sh, __m256i factor, __m256i rnd, __m128i osh) {
    e = _mm256_srl_epi64(_mm256_add_epi64(e, ehalf), sh);
    return _mm256_srl_epi64(_mm256_add_epi64(mul_u32_u64(e, factor), rnd), osh);
}

TARGET void iop_softmax_avx2(const int32_t *x, int n, float scale, int32_t *p, int out_bits) {
    if (n <= 0) return;
    if (out_bits < IOP_SOFTMAX_MIN_BITS) out_bits = IOP_SOFTMAX_MIN_BITS;
    if (out_bits > IOP_SOFTMAX_MAX_BITS) out_bits = IOP_SOFTMAX_MAX_BITS;
    int j = 0;
    __m256i vmx = _mm256_set1_epi32(INT32_MIN);
    for (; j + 8 <= n; j += 8) vmx = _mm256_max_epi32(vmx, _mm256_loadu_si256((const __m256i *)(x + j)));
    int32_t mx = hmax_epi32(vmx);
    for (; j < n; j++)
        if (x[j] > mx) mx = x[j];

    iop__sm_k k;
    iop__sm_setup(scale, &k);
    /* d < 2^32, so a dcap above 2^32 (UINT64_MAX: no cap) acts as 2^32 and
     * the signed compare does. */
    const uint64_t dcap = k.dcap < ((uint64_t)1 << 32) ? k.dcap : (uint64_t)1 << 32;
    const sm_vk c = {
        .dcap = _mm256_set1_epi64x((long long)dcap),
        .M = _mm256_set1_epi64x((long long)k.M),
        .half = _mm256_set1_epi64x((long long)k.half),
        .K1 = _mm256_set1_epi64x((long long)k.K1),
        .K2 = _mm256_set1_epi64x((long long)k.K2),
        .mask = _mm256_set1_epi64x((long long)k.rmask),
        .q = _mm256_set1_epi64x((long long)1 << IOP__SM_Q),
        .one = _mm256_set1_epi64x(1),
        .zcut = _mm256_set1_epi64x(IOP__SM_ZCUT),
        .R = _mm_cvtsi32_si128(k.R),
    };
    const __m256i vmx32 = _mm256_set1_epi32(mx), lo32 = _mm256_set1_epi64x(0xFFFFFFFF);
    __m256i vsum = _mm256_setzero_si256();
    for (j = 0; j + 8 <= n; j += 8) {
        /* mx - x in [0, 2^32): exact as uint32 lanes (the int32 difference wraps). */
        __m256i d = _mm256_sub_epi32(vmx32, _mm256_loadu_si256((const __m256i *)(x + j)));
        __m256i e0 = sm_exp(&c, _mm256_and_si256(d, lo32)), e1 = sm_exp(&c, _mm256_srli_epi64(d, 32));
        _mm256_storeu_si256((__m256i *)(p + j), join_even_odd(e0, e1));
        vsum = _mm256_add_epi64(vsum, _mm256_add_epi64(e0, e1));
    }
    uint64_t sum = hsum_epi64(vsum) + iop__sm_exp_range(&k, mx, x, j, n, p);

    iop__sm_norm nk;
    iop__sm_norm_setup(sum, out_bits, &nk);
    const __m256i vehalf = _mm256_set1_epi64x((long long)nk.ehalf), vf = _mm256_set1_epi64x((long long)nk.factor);
    const __m256i vrnd = _mm256_set1_epi64x((long long)((uint64_t)1 << (nk.osh - 1)));
    const __m128i vsh = _mm_cvtsi32_si128(nk.sh), vosh = _mm_cvtsi32_si128(nk.osh);
    for (j = 0; j + 8 <= n; j += 8) {
        __m256i e = _mm256_loadu_si256((const __m256i *)(p + j)); /* read as uint32 */
        __m256i e0 = sm_norm(_mm256_and_si256(e, lo32), vehalf, vsh, vf, vrnd, vosh);
        __m256i e1 = sm_norm(_mm256_srli_epi64(e, 32), vehalf, vsh, vf, vrnd, vosh);
        _mm256_storeu_si256((__m256i *)(p + j), join_even_odd(e0, e1));
    }
    iop__sm_norm_range(&nk, p, j, n);
}

/* n x[i] - sum for 4 lanes starting at x (|.| < 2^45). */
TARGET INLINE __m256i centre4(const int32_t *x, __m256i vn, __m256i vsum) {
    return _mm256_sub_epi64(_mm256_mul_epi32(_mm256_cvtepi32_epi64(_mm_loadu_si128((const __m128i *)x)), vn), vsum);
}

/* |rshift_round(n x - sum, sh)| (<= 2^30) for 4 lanes, and its sign mask. */
TARGET INLINE __m256i centred_abs(const int32_t *x, __m256i vn, __m256i vsum, const iop__ln_k *k, __m256i vshalf,
                                  __m128i vsh, __m256i *s) {
    __m256i a = abs_epi64(centre4(x, vn, vsum), s);
    return k->sh ? _mm256_srl_epi64(_mm256_add_epi64(a, vshalf), vsh) : a;
}

TARGET void iop_layernorm_scaled_avx2(const iop_ln_params *p, const int32_t *x, float scale, float *y) {
    const int n = p->n;
    int i = 0;
    iop__ln_k k = {0};
    __m256i vs = _mm256_setzero_si256();
    for (; i + 4 <= n; i += 4)
        vs = _mm256_add_epi64(vs, _mm256_cvtepi32_epi64(_mm_loadu_si128((const __m128i *)(x + i))));
    k.sum = (int64_t)hsum_epi64(vs);
    for (; i < n; i++) k.sum += x[i];
    const __m256i vn = _mm256_set1_epi64x(n), vsum = _mm256_set1_epi64x(k.sum);
    __m256i vc = _mm256_setzero_si256(), s;
    for (i = 0; i + 4 <= n; i += 4) {
        __m256i a = abs_epi64(centre4(x + i, vn, vsum), &s);
        vc = _mm256_blendv_epi8(vc, a, _mm256_cmpgt_epi64(a, vc));
    }
    double ev;
    k.sh = iop__ln_shift(p, iop__ln_cmax_range(x, n, k.sum, i, hmax_epu64(vc)), scale, &ev);

    const __m256i vshalf = _mm256_set1_epi64x(k.sh ? (long long)1 << (k.sh - 1) : 0);
    const __m128i vsh = _mm_cvtsi32_si128(k.sh);
    __m256i vv = _mm256_setzero_si256();
    for (i = 0; i + 4 <= n; i += 4) {
        __m256i a = centred_abs(x + i, vn, vsum, &k, vshalf, vsh, &s);
        vv = _mm256_add_epi64(vv, _mm256_mul_epu32(a, a));
    }
    iop__ln_finish(&k, iop__ln_var_range(x, n, &k, i, hsum_epi64(vv)), ev);

    /* N = rshift_round(c inv, 32 - k) on magnitudes: c inv <= 2^62, inv <= 2^32. */
    const __m256i vinv = _mm256_set1_epi64x(k.inv), vNhalf = _mm256_set1_epi64x((long long)1 << (31 - k.k));
    const __m128i vNsh = _mm_cvtsi32_si128(32 - k.k);
    const __m128 vos = _mm_set1_ps(p->out_scale);
    for (i = 0; i + 4 <= n; i += 4) {
        __m256i a = centred_abs(x + i, vn, vsum, &k, vshalf, vsh, &s);
        __m256i N = _mm256_srl_epi64(_mm256_add_epi64(mul_u32_u64(a, vinv), vNhalf), vNsh);
        N = apply_sign_epi64(N, s); /* |N| <= 2^30 + 2: vpmuldq's 32 bits */
        __m256i g = _mm256_cvtepi32_epi64(_mm_loadu_si128((const __m128i *)(p->gamma_q + i)));
        __m256i acc = _mm256_add_epi64(_mm256_mul_epi32(N, g), _mm256_loadu_si256((const __m256i *)(p->beta_q + i)));
        _mm_storeu_ps(y + i, _mm_mul_ps(cvt_epi64_ps(acc), vos));
    }
    iop__ln_out_range(p, x, &k, i, y);
}

/* ------------------------------------------------------------------ */
/* fused steps                                                         */

TARGET static void dequant_avx2(const int32_t *q, int n, float scale, float *y) {
    int i = 0;
    const __m256 vs = _mm256_set1_ps(scale);
    for (; i + 8 <= n; i += 8)
        _mm256_storeu_ps(y + i, _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_loadu_si256((const __m256i *)(q + i))), vs));
    for (; i < n; i++) y[i] = (float)q[i] * scale;
}

TARGET static void add_avx2(float *x, const float *r, int n) {
    int i = 0;
    for (; i + 8 <= n; i += 8) _mm256_storeu_ps(x + i, _mm256_add_ps(_mm256_loadu_ps(x + i), _mm256_loadu_ps(r + i)));
    for (; i < n; i++) x[i] += r[i];
}

/* Columns gathered 8 rows at a time. */
TARGET static void transpose_avx2(const float *src, int lds, int rows, int cols, float *dst, int ldd) {
    const __m256i idx = _mm256_mullo_epi32(_mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7), _mm256_set1_epi32(lds));
    for (int c = 0; c < cols; c++) {
        float *d = dst + (size_t)c * ldd;
        int r = 0;
        for (; r + 8 <= rows; r += 8) _mm256_storeu_ps(d + r, _mm256_i32gather_ps(src + (size_t)r * lds + c, idx, 4));
        for (; r < rows; r++) d[r] = src[(size_t)r * lds + c];
        memset(d + rows, 0, (size_t)(ldd - rows) * sizeof(float));
    }
}

const iops iop__avx2_ops = {iop_quantize_row_avx2, iop_gelu_avx2, iop_softmax_avx2, iop_layernorm_scaled_avx2,
                            dequant_avx2,          add_avx2,      transpose_avx2};

#else
/* Not x86-64: the scalar ops (iops_for never picks AVX2 here). */
float iop_quantize_row_avx2(const float *x, int n, int bits, int32_t *q) { return iop_quantize_row(x, n, bits, q); }
void iop_gelu_avx2(const int32_t *q, int n, float scale, int32_t *out, float *out_scale) {
    iop_gelu(q, n, scale, out, out_scale);
}
void iop_softmax_avx2(const int32_t *x, int n, float scale, int32_t *p, int out_bits) {
    iop_softmax(x, n, scale, p, out_bits);
}
void iop_layernorm_scaled_avx2(const iop_ln_params *p, const int32_t *x, float scale, float *y) {
    iop_layernorm_scaled(p, x, scale, y);
}
#endif
