/* intops_simd.c - AVX-512 integer non-linear ops, bit-identical to intops.c.
 *
 * The per-call constants (dyadic multipliers, shifts, clip points) are
 * computed by the same scalar code as in intops.c (copied below, it is
 * static there); only the per-element loops are vectorised.  Every
 * per-element step is an exact integer operation, so lanes reproduce the
 * scalar results: 64-bit products use vpmuludq / vpmuldq when both factors
 * fit 32 bits (they do, see the bounds in intops.c) and vpmullq otherwise;
 * rounding shifts act on magnitudes as rshift_round does; the double
 * rounding of iop_quantize_row is trunc + "away from zero when the (exact)
 * fraction is >= 1/2", i.e. round().
 */
#include "intops_simd.h"

#include <float.h>
#include <math.h>
#include <string.h>

/* ------------------------------------------------------------------ */
/* copied from intops.c: the per-call constants must be identical      */

static int bitlen64(uint64_t v) { return v ? 64 - __builtin_clzll(v) : 0; }

static void dyadic(double ratio, int mbits, uint64_t *M, int *R) {
    int e;
    frexp(ratio, &e);
    int r = mbits - e;
    if (r > 62) r = 62;
    *R = r;
    *M = (uint64_t)llround(ldexp(ratio, r));
}

static int64_t rshift_round(int64_t v, int s) {
    if (s <= 0) return v;
    uint64_t half = (uint64_t)1 << (s - 1);
    if (v >= 0) return (int64_t)(((uint64_t)v + half) >> s);
    return -(int64_t)(((uint64_t)(-(v + 1)) + 1 + half) >> s);
}

#define GELU_A 0.2888
#define GELU_B 1.769
#define GELU_C_BITS 28
#define GELU_SHIFT 14
#define SM_F 20
#define SM_Q 30
#define SM_ZCUT 32

/* ------------------------------------------------------------------ */
/* scalar fused steps (what bert_forward.c did inline)                 */

static void gelu_block_scalar(float *x, int n, int bits, int32_t *ibuf) {
    int32_t *in = ibuf, *out = ibuf + n;
    float out_scale, s = iop_quantize_row(x, n, bits, in);
    iop_gelu(in, n, s, out, &out_scale);
    for (int i = 0; i < n; i++) x[i] = (float)out[i] * out_scale;
}

static void softmax_row_scalar(float *s, int n, float scale, int bits, int out_bits, int32_t *ibuf) {
    int32_t *in = ibuf, *p = ibuf + n;
    float qs = iop_quantize_row(s, n, bits, in);
    iop_softmax(in, n, qs * scale, p, out_bits);
    for (int j = 0; j < n; j++) s[j] = (float)p[j] * (1.0f / (float)(1 << out_bits));
}

static void layernorm_scalar(const iop_ln_params *p, float *x, const float *res, int bits, int32_t *ibuf) {
    int n = p->n;
    if (res)
        for (int i = 0; i < n; i++) x[i] += res[i];
    float s = iop_quantize_row(x, n, bits, ibuf);
    iop_layernorm_scaled(p, ibuf, s, x);
}

static void transpose_scalar(const float *src, int lds, int rows, int cols, float *dst, int ldd) {
    for (int c = 0; c < cols; c++) {
        float *d = dst + (size_t)c * ldd;
        for (int r = 0; r < rows; r++) d[r] = src[(size_t)r * lds + c];
        memset(d + rows, 0, (size_t)(ldd - rows) * sizeof(float));
    }
}

static const iops scalar_ops = {gelu_block_scalar, softmax_row_scalar, layernorm_scalar, transpose_scalar};

#if defined(__x86_64__)
#include <immintrin.h>

#define TARGET __attribute__((target("avx512f,avx512bw,avx512dq,avx512vl")))
#define INLINE static inline __attribute__((always_inline))

/* round() of doubles: half away from zero, exactly. */
TARGET INLINE __m512d round_away_pd(__m512d v) {
    __m512d t = _mm512_roundscale_pd(v, _MM_FROUND_TO_ZERO | _MM_FROUND_NO_EXC);
    __m512d d = _mm512_sub_pd(v, t);
    __mmask8 up = _mm512_cmp_pd_mask(_mm512_abs_pd(d), _mm512_set1_pd(0.5), _CMP_GE_OQ);
    __m512i sign = _mm512_and_si512(_mm512_castpd_si512(v), _mm512_set1_epi64((long long)0x8000000000000000ull));
    __m512d one = _mm512_castsi512_pd(_mm512_or_si512(sign, _mm512_set1_epi64(0x3FF0000000000000ll)));
    return _mm512_mask_add_pd(t, up, t, one);
}

/* rshift_round on int64 lanes, s >= 1: sign * ((|v| + 2^(s-1)) >> s). */
TARGET INLINE __m512i rshift_round_epi64(__m512i v, int s) {
    __m512i a = _mm512_abs_epi64(v);
    __m512i r = _mm512_srl_epi64(_mm512_add_epi64(a, _mm512_set1_epi64((long long)((uint64_t)1 << (s - 1)))),
                                 _mm_cvtsi32_si128(s));
    __mmask8 neg = _mm512_cmplt_epi64_mask(v, _mm512_setzero_si512());
    return _mm512_mask_sub_epi64(r, neg, _mm512_setzero_si512(), r);
}

TARGET float iop_quantize_row_avx512(const float *x, int n, int bits, int32_t *q) {
    if (bits < 2) bits = 2;
    if (bits > 24) bits = 24;
    const int32_t qmax = (int32_t)((1L << (bits - 1)) - 1);
    int i = 0;
    __m512 mx = _mm512_setzero_ps();
    for (; i + 16 <= n; i += 16) mx = _mm512_max_ps(_mm512_abs_ps(_mm512_loadu_ps(x + i)), mx);
    float amax = _mm512_reduce_max_ps(mx);
    for (; i < n; i++) {
        float a = fabsf(x[i]);
        if (a > amax) amax = a;
    }
    if (amax == 0.0f) {
        memset(q, 0, (size_t)n * sizeof(int32_t));
        return 1.0f;
    }
    float scale = (float)((double)amax / qmax);
    if (scale < FLT_MIN) scale = FLT_MIN;
    const double inv = 1.0 / (double)scale;
    const __m512d vinv = _mm512_set1_pd(inv), hi = _mm512_set1_pd(qmax), lo = _mm512_set1_pd(-qmax);
    for (i = 0; i + 8 <= n; i += 8) {
        __m512d v = round_away_pd(_mm512_mul_pd(_mm512_cvtps_pd(_mm256_loadu_ps(x + i)), vinv));
        v = _mm512_max_pd(_mm512_min_pd(v, hi), lo);
        _mm256_storeu_si256((__m256i *)(q + i), _mm512_cvttpd_epi32(v));
    }
    for (; i < n; i++) {
        double v = round((double)x[i] * inv);
        if (v > qmax) v = qmax;
        if (v < -qmax) v = -qmax;
        q[i] = (int32_t)v;
    }
    return scale;
}

TARGET void iop_gelu_avx512(const int32_t *q, int n, float scale, int32_t *out, float *out_scale) {
    const int64_t C = (int64_t)1 << GELU_C_BITS;
    const double su = 1.0 / sqrt(GELU_A * (double)C);
    const int64_t B = llround(GELU_B / su);
    *out_scale = scale / (float)(1 << (GELU_SHIFT + 1));
    double ratio = (double)scale / (M_SQRT2 * su);
    uint64_t M = 0;
    int R = 0, clip_all = 0;
    if (!(ratio > 0)) M = 0;
    else if (ratio >= (double)B) clip_all = 1;
    else dyadic(ratio, 31, &M, &R);
    const uint64_t half = R ? (uint64_t)1 << (R - 1) : 0;

    const __m512i vmax = _mm512_set1_epi32(IOP_GELU_MAX_CODE), vmin = _mm512_set1_epi32(-IOP_GELU_MAX_CODE);
    const __m512i vB = _mm512_set1_epi32((int)B), vC = _mm512_set1_epi32((int)C);
    const __m512i vM = _mm512_set1_epi64((long long)M), vhalf = _mm512_set1_epi64((long long)half);
    const __m512i rnd = _mm512_set1_epi32(1 << (GELU_SHIFT - 1)), one = _mm512_set1_epi32(1 << GELU_SHIFT);
    const __m128i vR = _mm_cvtsi32_si128(R);
    int i = 0;
    for (; i + 16 <= n; i += 16) {
        __m512i v = _mm512_max_epi32(_mm512_min_epi32(_mm512_loadu_si512(q + i), vmax), vmin);
        __m512i u;
        if (clip_all) {
            u = vB;
        } else {
            __m512i a = _mm512_abs_epi32(v);
            __m512i a0 = _mm512_cvtepu32_epi64(_mm512_castsi512_si256(a));
            __m512i a1 = _mm512_cvtepu32_epi64(_mm512_extracti64x4_epi64(a, 1));
            __m512i u0 = _mm512_srl_epi64(_mm512_add_epi64(_mm512_mul_epu32(a0, vM), vhalf), vR);
            __m512i u1 = _mm512_srl_epi64(_mm512_add_epi64(_mm512_mul_epu32(a1, vM), vhalf), vR);
            u = _mm512_inserti64x4(_mm512_castsi256_si512(_mm512_cvtepi64_epi32(u0)), _mm512_cvtepi64_epi32(u1), 1);
            u = _mm512_min_epi32(u, vB);
        }
        __m512i d = _mm512_sub_epi32(vB, u);
        __m512i P = _mm512_sub_epi32(vC, _mm512_mullo_epi32(d, d));
        __m512i e = _mm512_srai_epi32(_mm512_add_epi32(P, rnd), GELU_SHIFT);
        __mmask16 pos = _mm512_cmpgt_epi32_mask(v, _mm512_setzero_si512());
        __m512i f = _mm512_mask_add_epi32(_mm512_sub_epi32(one, e), pos, one, e);
        _mm512_storeu_si512(out + i, _mm512_mullo_epi32(v, f));
    }
    for (; i < n; i++) { /* the scalar loop of iop_gelu */
        int64_t v = q[i];
        if (v > IOP_GELU_MAX_CODE) v = IOP_GELU_MAX_CODE;
        if (v < -IOP_GELU_MAX_CODE) v = -IOP_GELU_MAX_CODE;
        if (v == 0) {
            out[i] = 0;
            continue;
        }
        uint64_t a = (uint64_t)(v < 0 ? -v : v);
        int64_t u;
        if (clip_all) {
            u = B;
        } else {
            u = (int64_t)((a * M + half) >> R);
            if (u > B) u = B;
        }
        int64_t d = B - u;
        int64_t P = C - d * d;
        int64_t e = (P + ((int64_t)1 << (GELU_SHIFT - 1))) >> GELU_SHIFT;
        int64_t o = (int64_t)1 << GELU_SHIFT;
        out[i] = (int32_t)(v * (v > 0 ? o + e : o - e));
    }
}

TARGET void iop_softmax_avx512(const int32_t *x, int n, float scale, int32_t *p, int out_bits) {
    if (n <= 0) return;
    if (out_bits < IOP_SOFTMAX_MIN_BITS) out_bits = IOP_SOFTMAX_MIN_BITS;
    if (out_bits > IOP_SOFTMAX_MAX_BITS) out_bits = IOP_SOFTMAX_MAX_BITS;
    int j = 0;
    __m512i vmx = _mm512_set1_epi32(INT32_MIN);
    for (; j + 16 <= n; j += 16) vmx = _mm512_max_epi32(vmx, _mm512_loadu_si512(x + j));
    int32_t mx = _mm512_reduce_max_epi32(vmx);
    for (; j < n; j++)
        if (x[j] > mx) mx = x[j];

    const double ratio = (double)scale * (double)(1 << SM_F) / M_LN2;
    const double zlim = (double)(SM_ZCUT + 1) * (double)(1 << SM_F);
    uint64_t M = 0, dcap = UINT64_MAX;
    int R = 0;
    if (!(ratio > 0)) {
        M = 0;
    } else if (ratio >= zlim) {
        dcap = 1;
    } else {
        dyadic(ratio, 30, &M, &R);
        double c = ceil(zlim / ratio);
        dcap = c < 4294967296.0 ? (uint64_t)c : (uint64_t)1 << 32;
    }
    const uint64_t half = R ? (uint64_t)1 << (R - 1) : 0;
    const uint64_t K1 = (uint64_t)llround(0.96963238 * M_LN2 * (double)(1 << SM_Q));
    const uint64_t K2 = K1 - ((uint64_t)1 << (SM_Q - 1));
    const uint64_t rmask = ((uint64_t)1 << SM_F) - 1;

    const __m512i vmx64 = _mm512_set1_epi64(mx), vdcap = _mm512_set1_epi64((long long)dcap);
    const __m512i vM = _mm512_set1_epi64((long long)M), vhalf = _mm512_set1_epi64((long long)half);
    const __m512i vK1 = _mm512_set1_epi64((long long)K1), vK2 = _mm512_set1_epi64((long long)K2);
    const __m512i vmask = _mm512_set1_epi64((long long)rmask), vq = _mm512_set1_epi64((long long)1 << SM_Q);
    const __m512i vone = _mm512_set1_epi64(1), vzcut = _mm512_set1_epi64(SM_ZCUT);
    const __m128i vR = _mm_cvtsi32_si128(R);
    __m512i vsum = _mm512_setzero_si512();
    uint64_t sum = 0;
    for (j = 0; j + 8 <= n; j += 8) {
        __m512i d = _mm512_sub_epi64(vmx64, _mm512_cvtepi32_epi64(_mm256_loadu_si256((const __m256i *)(x + j))));
        __mmask8 ok = _mm512_cmplt_epu64_mask(d, vdcap);
        __m512i m = _mm512_srl_epi64(_mm512_add_epi64(_mm512_mul_epu32(d, vM), vhalf), vR);
        __m512i z = _mm512_srli_epi64(m, SM_F);
        ok &= _mm512_cmplt_epu64_mask(z, vzcut);
        __m512i r = _mm512_and_si512(m, vmask);
        __m512i k = _mm512_sub_epi64(vK1, _mm512_srli_epi64(_mm512_mul_epu32(vK2, r), SM_F));
        __m512i e = _mm512_sub_epi64(vq, _mm512_srli_epi64(_mm512_mul_epu32(k, r), SM_F));
        /* e = (e + 2^(z-1)) >> z; for z == 0 the count z-1 wraps to >= 64: adds 0. */
        e = _mm512_srlv_epi64(_mm512_add_epi64(e, _mm512_sllv_epi64(vone, _mm512_sub_epi64(z, vone))), z);
        e = _mm512_maskz_mov_epi64(ok, e);
        _mm256_storeu_si256((__m256i *)(p + j), _mm512_cvtepi64_epi32(e));
        vsum = _mm512_add_epi64(vsum, e);
    }
    sum = (uint64_t)_mm512_reduce_add_epi64(vsum);
    for (; j < n; j++) { /* the scalar pass 1 */
        uint64_t d = (uint64_t)((int64_t)mx - x[j]);
        uint64_t e = 0;
        if (d < dcap) {
            uint64_t m = (d * M + half) >> R;
            uint64_t z = m >> SM_F;
            if (z < SM_ZCUT) {
                uint64_t r = m & rmask;
                uint64_t t = ((K1 - ((K2 * r) >> SM_F)) * r) >> SM_F;
                e = ((uint64_t)1 << SM_Q) - t;
                if (z) e = (e + ((uint64_t)1 << (z - 1))) >> z;
            }
        }
        p[j] = (int32_t)e;
        sum += e;
    }

    int sh = bitlen64(sum) - 31;
    if (sh < 0) sh = 0;
    const uint64_t s_hi = sum >> sh;
    const uint64_t factor = ((uint64_t)1 << 62) / s_hi;
    const int osh = 62 - out_bits;
    const uint64_t ehalf = sh ? (uint64_t)1 << (sh - 1) : 0;
    const __m512i vehalf = _mm512_set1_epi64((long long)ehalf), vf = _mm512_set1_epi64((long long)factor);
    const __m512i vrnd = _mm512_set1_epi64((long long)((uint64_t)1 << (osh - 1)));
    const __m128i vsh = _mm_cvtsi32_si128(sh), vosh = _mm_cvtsi32_si128(osh);
    for (j = 0; j + 8 <= n; j += 8) {
        __m512i e = _mm512_cvtepu32_epi64(_mm256_loadu_si256((const __m256i *)(p + j)));
        e = _mm512_srl_epi64(_mm512_add_epi64(e, vehalf), vsh);
        e = _mm512_srl_epi64(_mm512_add_epi64(_mm512_mullo_epi64(e, vf), vrnd), vosh);
        _mm256_storeu_si256((__m256i *)(p + j), _mm512_cvtepi64_epi32(e));
    }
    for (; j < n; j++) {
        uint64_t e = ((uint64_t)(uint32_t)p[j] + ehalf) >> sh;
        p[j] = (int32_t)((e * factor + ((uint64_t)1 << (osh - 1))) >> osh);
    }
}

/* n x[i] - sum for 8 lanes starting at x. */
TARGET INLINE __m512i centre8(const int32_t *x, __m512i vn, __m512i vsum) {
    return _mm512_sub_epi64(_mm512_mul_epi32(_mm512_cvtepi32_epi64(_mm256_loadu_si256((const __m256i *)x)), vn),
                            vsum);
}

TARGET void iop_layernorm_scaled_avx512(const iop_ln_params *p, const int32_t *x, float scale, float *y) {
    const int n = p->n;
    int i = 0;
    __m512i vs = _mm512_setzero_si512();
    for (; i + 8 <= n; i += 8)
        vs = _mm512_add_epi64(vs, _mm512_cvtepi32_epi64(_mm256_loadu_si256((const __m256i *)(x + i))));
    int64_t sum = _mm512_reduce_add_epi64(vs);
    for (; i < n; i++) sum += x[i];
    const __m512i vn = _mm512_set1_epi64(n), vsum = _mm512_set1_epi64(sum);
    __m512i vc = _mm512_setzero_si512();
    for (i = 0; i + 8 <= n; i += 8) vc = _mm512_max_epu64(vc, _mm512_abs_epi64(centre8(x + i, vn, vsum)));
    uint64_t cmax = _mm512_reduce_max_epu64(vc);
    for (; i < n; i++) {
        int64_t c = (int64_t)n * x[i] - sum;
        uint64_t a = (uint64_t)(c < 0 ? -c : c);
        if (a > cmax) cmax = a;
    }
    double ev;
    int sh = iop__ln_shift(p, cmax, scale, &ev);

    __m512i vv = _mm512_setzero_si512();
    for (i = 0; i + 8 <= n; i += 8) {
        __m512i c = centre8(x + i, vn, vsum);
        if (sh) c = rshift_round_epi64(c, sh);
        __m512i a = _mm512_abs_epi64(c); /* <= 2^30 */
        vv = _mm512_add_epi64(vv, _mm512_mul_epu32(a, a));
    }
    uint64_t var = (uint64_t)_mm512_reduce_add_epi64(vv);
    for (; i < n; i++) {
        int64_t c = rshift_round((int64_t)n * x[i] - sum, sh);
        var += (uint64_t)(c * c);
    }
    ev = ldexp(ev, -2 * sh);
    var += ev < 0x1p61 ? (uint64_t)llround(ev) : (uint64_t)1 << 61;
    if (var == 0) {
        for (i = 0; i < n; i++) y[i] = (float)p->beta_q[i] * p->out_scale;
        return;
    }
    int k = (62 - bitlen64(var)) / 2;
    uint64_t std_fx = iop_isqrt64(var << (2 * k));
    int64_t inv = (int64_t)(((uint64_t)1 << 62) / std_fx);
    const __m512i vinv = _mm512_set1_epi64(inv);
    const __m256 vos = _mm256_set1_ps(p->out_scale);
    for (i = 0; i + 8 <= n; i += 8) {
        __m512i c = centre8(x + i, vn, vsum);
        if (sh) c = rshift_round_epi64(c, sh);
        __m512i N = rshift_round_epi64(_mm512_mullo_epi64(c, vinv), 32 - k);
        __m512i g = _mm512_cvtepi32_epi64(_mm256_loadu_si256((const __m256i *)(p->gamma_q + i)));
        __m512i acc = _mm512_add_epi64(_mm512_mul_epi32(N, g), _mm512_loadu_si512(p->beta_q + i));
        _mm256_storeu_ps(y + i, _mm256_mul_ps(_mm512_cvtepi64_ps(acc), vos));
    }
    for (; i < n; i++) {
        int64_t c = rshift_round((int64_t)n * x[i] - sum, sh);
        int64_t N = rshift_round(c * inv, 32 - k);
        int64_t acc = N * p->gamma_q[i] + p->beta_q[i];
        y[i] = (float)acc * p->out_scale;
    }
}

/* fused steps */

TARGET static void gelu_block_avx512(float *x, int n, int bits, int32_t *ibuf) {
    int32_t *in = ibuf, *out = ibuf + n;
    float out_scale, s = iop_quantize_row_avx512(x, n, bits, in);
    iop_gelu_avx512(in, n, s, out, &out_scale);
    int i = 0;
    const __m512 vs = _mm512_set1_ps(out_scale);
    for (; i + 16 <= n; i += 16)
        _mm512_storeu_ps(x + i, _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_loadu_si512(out + i)), vs));
    for (; i < n; i++) x[i] = (float)out[i] * out_scale;
}

TARGET static void softmax_row_avx512(float *s, int n, float scale, int bits, int out_bits, int32_t *ibuf) {
    int32_t *in = ibuf, *p = ibuf + n;
    float qs = iop_quantize_row_avx512(s, n, bits, in);
    iop_softmax_avx512(in, n, qs * scale, p, out_bits);
    const float k = 1.0f / (float)(1 << out_bits);
    int j = 0;
    const __m512 vk = _mm512_set1_ps(k);
    for (; j + 16 <= n; j += 16)
        _mm512_storeu_ps(s + j, _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_loadu_si512(p + j)), vk));
    for (; j < n; j++) s[j] = (float)p[j] * k;
}

TARGET static void layernorm_avx512(const iop_ln_params *p, float *x, const float *res, int bits, int32_t *ibuf) {
    int n = p->n, i = 0;
    if (res) {
        for (; i + 16 <= n; i += 16)
            _mm512_storeu_ps(x + i, _mm512_add_ps(_mm512_loadu_ps(x + i), _mm512_loadu_ps(res + i)));
        for (; i < n; i++) x[i] += res[i];
    }
    float s = iop_quantize_row_avx512(x, n, bits, ibuf);
    iop_layernorm_scaled_avx512(p, ibuf, s, x);
}

/* Columns gathered 16 rows at a time. */
TARGET static void transpose_avx512(const float *src, int lds, int rows, int cols, float *dst, int ldd) {
    const __m512i idx = _mm512_mullo_epi32(_mm512_set_epi32(15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0),
                                           _mm512_set1_epi32(lds));
    for (int c = 0; c < cols; c++) {
        float *d = dst + (size_t)c * ldd;
        int r = 0;
        for (; r + 16 <= rows; r += 16) _mm512_storeu_ps(d + r, _mm512_i32gather_ps(idx, src + (size_t)r * lds + c, 4));
        for (; r < rows; r++) d[r] = src[(size_t)r * lds + c];
        memset(d + rows, 0, (size_t)(ldd - rows) * sizeof(float));
    }
}

static const iops avx512_ops = {gelu_block_avx512, softmax_row_avx512, layernorm_avx512, transpose_avx512};

const iops *iops_for(bct_isa isa) {
    return isa == BCT_ISA_AVX512VNNI && bct_isa_supported(isa) ? &avx512_ops : &scalar_ops;
}

#else
float iop_quantize_row_avx512(const float *x, int n, int bits, int32_t *q) { return iop_quantize_row(x, n, bits, q); }
void iop_gelu_avx512(const int32_t *q, int n, float scale, int32_t *out, float *out_scale) { iop_gelu(q, n, scale, out, out_scale); }
void iop_softmax_avx512(const int32_t *x, int n, float scale, int32_t *p, int out_bits) { iop_softmax(x, n, scale, p, out_bits); }
void iop_layernorm_scaled_avx512(const iop_ln_params *p, const int32_t *x, float scale, float *y) { iop_layernorm_scaled(p, x, scale, y); }
const iops *iops_for(bct_isa isa) { return &scalar_ops; }
#endif
