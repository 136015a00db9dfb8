/* intops_simd.c - AVX-512 integer non-linear ops, bit-identical to intops.c,
 * and the fused steps of every ISA (iops_for).
 *
 * The per-call constants (dyadic multipliers, shifts, clip points) and
 * the scalar tails come from intops.c's own functions (intops_priv.h);
 * only the per-element loops are vectorised.  Every
 * per-element step is an exact integer operation, so lanes reproduce the
 * scalar results: 64-bit products use vpmuludq / vpmuldq when both factors
 * fit 32 bits (they do, see the bounds in intops.c) and vpmullq otherwise;
 * rounding shifts act on magnitudes as rshift_round does; the double
 * rounding of iop_quantize_row is trunc + "away from zero when the (exact)
 * fraction is >= 1/2", i.e. round().  The AVX2 versions (intops_avx2.c)
 * follow the same scheme.
 */
#include "intops_simd.h"
#include "intops_priv.h"

#include <string.h>

/* ------------------------------------------------------------------ */
/* fused steps (what bert_forward.c did inline), from one ISA's kernels */

void iops_gelu_block(const iops *o, float *x, int n, int bits, int32_t *ibuf) {
    int32_t *in = ibuf, *out = ibuf + n;
    float out_scale, s = o->quantize_row(x, n, bits, in);
    o->gelu(in, n, s, out, &out_scale);
    o->dequant(out, n, out_scale, x);
}

void iops_softmax_row(const iops *o, float *s, int n, float scale, int bits, int out_bits, int32_t *ibuf) {
    int32_t *in = ibuf, *p = ibuf + n;
    float qs = o->quantize_row(s, n, bits, in);
    o->softmax(in, n, qs * scale, p, out_bits);
    o->dequant(p, n, 1.0f / (float)(1 << out_bits), s);
}

void iops_layernorm(const iops *o, const iop_ln_params *p, float *x, const float *res, int bits, int32_t *ibuf) {
    if (res) o->add(x, res, p->n);
    float s = o->quantize_row(x, p->n, bits, ibuf);
    o->layernorm_scaled(p, ibuf, s, x);
}

static void dequant_scalar(const int32_t *q, int n, float scale, float *y) {
    for (int i = 0; i < n; i++) y[i] = (float)q[i] * scale;
}

static void add_scalar(float *x, const float *r, int n) {
    for (int i = 0; i < n; i++) x[i] += r[i];
}

static void transpose_scalar(const float *src, int lds, int rows, int cols, float *dst, int ldd) {
    for (int c = 0; c < cols; c++) {
        float *d = dst + (size_t)c * ldd;
        for (int r = 0; r < rows; r++) d[r] = src[(size_t)r * lds + c];
        memset(d + rows, 0, (size_t)(ldd - rows) * sizeof(float));
    }
}

static const iops scalar_ops = {iop_quantize_row,     iop_gelu,       iop_softmax,     iop_layernorm_scaled,
                                dequant_scalar,       add_scalar,     transpose_scalar};

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
    int i = 0;
    __m512 mx = _mm512_setzero_ps();
    for (; i + 16 <= n; i += 16) mx = _mm512_max_ps(_mm512_abs_ps(_mm512_loadu_ps(x + i)), mx);
    iop__quant_k k;
    float scale = iop__quant_setup(iop__absmax_range(x, i, n, _mm512_reduce_max_ps(mx)), bits, &k);
    const __m512d vinv = _mm512_set1_pd(k.inv), hi = _mm512_set1_pd(k.qmax), lo = _mm512_set1_pd(-k.qmax);
    for (i = 0; i + 8 <= n; i += 8) {
        __m512d v = round_away_pd(_mm512_mul_pd(_mm512_cvtps_pd(_mm256_loadu_ps(x + i)), vinv));
        v = _mm512_max_pd(_mm512_min_pd(v, hi), lo);
        _mm256_storeu_si256((__m256i *)(q + i), _mm512_cvttpd_epi32(v));
    }
    iop__quant_range(&k, x, i, n, q);
    return scale;
}

TARGET void iop_gelu_avx512(const int32_t *q, int n, float scale, int32_t *out, float *out_scale) {
    iop__gelu_k k;
    iop__gelu_setup(scale, &k, out_scale);
    const __m512i vmax = _mm512_set1_epi32(IOP_GELU_MAX_CODE), vmin = _mm512_set1_epi32(-IOP_GELU_MAX_CODE);
    const __m512i vB = _mm512_set1_epi32((int)k.B), vC = _mm512_set1_epi32((int)k.C);
    const __m512i vM = _mm512_set1_epi64((long long)k.M), vhalf = _mm512_set1_epi64((long long)k.half);
    const __m512i rnd = _mm512_set1_epi32(1 << (IOP__GELU_SHIFT - 1)), one = _mm512_set1_epi32(1 << IOP__GELU_SHIFT);
    const __m128i vR = _mm_cvtsi32_si128(k.R);
    int i = 0;
    for (; i + 16 <= n; i += 16) {
        __m512i v = _mm512_max_epi32(_mm512_min_epi32(_mm512_loadu_si512(q + i), vmax), vmin);
        __m512i u;
        if (k.clip_all) {
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
        __m512i e = _mm512_srai_epi32(_mm512_add_epi32(P, rnd), IOP__GELU_SHIFT);
        __mmask16 pos = _mm512_cmpgt_epi32_mask(v, _mm512_setzero_si512());
        __m512i f = _mm512_mask_add_epi32(_mm512_sub_epi32(one, e), pos, one, e);
        _mm512_storeu_si512(out + i, _mm512_mullo_epi32(v, f));
    }
    iop__gelu_range(&k, q, i, n, out);
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

    iop__sm_k k;
    iop__sm_setup(scale, &k);
    const __m512i vmx64 = _mm512_set1_epi64(mx), vdcap = _mm512_set1_epi64((long long)k.dcap);
    const __m512i vM = _mm512_set1_epi64((long long)k.M), vhalf = _mm512_set1_epi64((long long)k.half);
    const __m512i vK1 = _mm512_set1_epi64((long long)k.K1), vK2 = _mm512_set1_epi64((long long)k.K2);
    const __m512i vmask = _mm512_set1_epi64((long long)k.rmask), vq = _mm512_set1_epi64((long long)1 << IOP__SM_Q);
    const __m512i vone = _mm512_set1_epi64(1), vzcut = _mm512_set1_epi64(IOP__SM_ZCUT);
    const __m128i vR = _mm_cvtsi32_si128(k.R);
    __m512i vsum = _mm512_setzero_si512();
    for (j = 0; j + 8 <= n; j += 8) {
        __m512i d = _mm512_sub_epi64(vmx64, _mm512_cvtepi32_epi64(_mm256_loadu_si256((const __m256i *)(x + j))));
        __mmask8 ok = _mm512_cmplt_epu64_mask(d, vdcap);
        __m512i m = _mm512_srl_epi64(_mm512_add_epi64(_mm512_mul_epu32(d, vM), vhalf), vR);
        __m512i z = _mm512_srli_epi64(m, IOP__SM_F);
        ok &= _mm512_cmplt_epu64_mask(z, vzcut);
        __m512i r = _mm512_and_si512(m, vmask);
        __m512i kk = _mm512_sub_epi64(vK1, _mm512_srli_epi64(_mm512_mul_epu32(vK2, r), IOP__SM_F));
        __m512i e = _mm512_sub_epi64(vq, _mm512_srli_epi64(_mm512_mul_epu32(kk, r), IOP__SM_F));
        /* e = (e + 2^(z-1)) >> z; for z == 0 the count z-1 wraps to >= 64: adds 0. */
        e = _mm512_srlv_epi64(_mm512_add_epi64(e, _mm512_sllv_epi64(vone, _mm512_sub_epi64(z, vone))), z);
        e = _mm512_maskz_mov_epi64(ok, e);
        _mm256_storeu_si256((__m256i *)(p + j), _mm512_cvtepi64_epi32(e));
        vsum = _mm512_add_epi64(vsum, e);
    }
    uint64_t sum = (uint64_t)_mm512_reduce_add_epi64(vsum) + iop__sm_exp_range(&k, mx, x, j, n, p);

    iop__sm_norm nk;
    iop__sm_norm_setup(sum, out_bits, &nk);
    const __m512i vehalf = _mm512_set1_epi64((long long)nk.ehalf), vf = _mm512_set1_epi64((long long)nk.factor);
    const __m512i vrnd = _mm512_set1_epi64((long long)((uint64_t)1 << (nk.osh - 1)));
    const __m128i vsh = _mm_cvtsi32_si128(nk.sh), vosh = _mm_cvtsi32_si128(nk.osh);
    for (j = 0; j + 8 <= n; j += 8) {
        __m512i e = _mm512_cvtepu32_epi64(_mm256_loadu_si256((const __m256i *)(p + j)));
        e = _mm512_srl_epi64(_mm512_add_epi64(e, vehalf), vsh);
        e = _mm512_srl_epi64(_mm512_add_epi64(_mm512_mullo_epi64(e, vf), vrnd), vosh);
        _mm256_storeu_si256((__m256i *)(p + j), _mm512_cvtepi64_epi32(e));
    }
    iop__sm_norm_range(&nk, p, j, n);
}

/* n x[i] - sum for 8 lanes starting at x. */
TARGET INLINE __m512i centre8(const int32_t *x, __m512i vn, __m512i vsum) {
    return _mm512_sub_epi64(_mm512_mul_epi32(_mm512_cvtepi32_epi64(_mm256_loadu_si256((const __m256i *)x)), vn),
                            vsum);
}

TARGET void iop_layernorm_scaled_avx512(const iop_ln_params *p, const int32_t *x, float scale, float *y) {
    const int n = p->n;
    int i = 0;
    iop__ln_k k = {0};
    __m512i vs = _mm512_setzero_si512();
    for (; i + 8 <= n; i += 8)
        vs = _mm512_add_epi64(vs, _mm512_cvtepi32_epi64(_mm256_loadu_si256((const __m256i *)(x + i))));
    k.sum = _mm512_reduce_add_epi64(vs);
    for (; i < n; i++) k.sum += x[i];
    const __m512i vn = _mm512_set1_epi64(n), vsum = _mm512_set1_epi64(k.sum);
    __m512i vc = _mm512_setzero_si512();
    for (i = 0; i + 8 <= n; i += 8) vc = _mm512_max_epu64(vc, _mm512_abs_epi64(centre8(x + i, vn, vsum)));
    double ev;
    k.sh = iop__ln_shift(p, iop__ln_cmax_range(x, n, k.sum, i, _mm512_reduce_max_epu64(vc)), scale, &ev);

    __m512i vv = _mm512_setzero_si512();
    for (i = 0; i + 8 <= n; i += 8) {
        __m512i c = centre8(x + i, vn, vsum);
        if (k.sh) c = rshift_round_epi64(c, k.sh);
        __m512i a = _mm512_abs_epi64(c); /* <= 2^30 */
        vv = _mm512_add_epi64(vv, _mm512_mul_epu32(a, a));
    }
    iop__ln_finish(&k, iop__ln_var_range(x, n, &k, i, (uint64_t)_mm512_reduce_add_epi64(vv)), ev);

    const __m512i vinv = _mm512_set1_epi64(k.inv);
    const __m256 vos = _mm256_set1_ps(p->out_scale);
    for (i = 0; i + 8 <= n; i += 8) {
        __m512i c = centre8(x + i, vn, vsum);
        if (k.sh) c = rshift_round_epi64(c, k.sh);
        __m512i N = rshift_round_epi64(_mm512_mullo_epi64(c, vinv), 32 - k.k);
        __m512i g = _mm512_cvtepi32_epi64(_mm256_loadu_si256((const __m256i *)(p->gamma_q + i)));
        __m512i acc = _mm512_add_epi64(_mm512_mul_epi32(N, g), _mm512_loadu_si512(p->beta_q + i));
        _mm256_storeu_ps(y + i, _mm256_mul_ps(_mm512_cvtepi64_ps(acc), vos));
    }
    iop__ln_out_range(p, x, &k, i, y);
}

/* the float helpers of the fused steps */

TARGET static void dequant_avx512(const int32_t *q, int n, float scale, float *y) {
    int i = 0;
    const __m512 vs = _mm512_set1_ps(scale);
    for (; i + 16 <= n; i += 16)
        _mm512_storeu_ps(y + i, _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_loadu_si512(q + i)), vs));
    for (; i < n; i++) y[i] = (float)q[i] * scale;
}

TARGET static void add_avx512(float *x, const float *r, int n) {
    int i = 0;
    for (; i + 16 <= n; i += 16) _mm512_storeu_ps(x + i, _mm512_add_ps(_mm512_loadu_ps(x + i), _mm512_loadu_ps(r + i)));
    for (; i < n; i++) x[i] += r[i];
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

static const iops avx512_ops = {iop_quantize_row_avx512, iop_gelu_avx512, iop_softmax_avx512, iop_layernorm_scaled_avx512,
                                dequant_avx512,          add_avx512,      transpose_avx512};

const iops *iops_for(bct_isa isa) {
    if (isa == BCT_ISA_SCALAR || !bct_isa_supported(isa)) return &scalar_ops;
    /* AMX machines have AVX-512 too (bct_isa_supported requires it); the
     * other levels (avx2, avxvnni) are AVX2-based. */
    if (isa == BCT_ISA_AVX512VNNI || isa == BCT_ISA_AMX) return &avx512_ops;
    return bct_isa_supported(BCT_ISA_AVX2) ? &iop__avx2_ops : &scalar_ops;
}

#else
float iop_quantize_row_avx512(const float *x, int n, int bits, int32_t *q) { return iop_quantize_row(x, n, bits, q); }
void iop_gelu_avx512(const int32_t *q, int n, float scale, int32_t *out, float *out_scale) { iop_gelu(q, n, scale, out, out_scale); }
void iop_softmax_avx512(const int32_t *x, int n, float scale, int32_t *p, int out_bits) { iop_softmax(x, n, scale, p, out_bits); }
void iop_layernorm_scaled_avx512(const iop_ln_params *p, const int32_t *x, float scale, float *y) { iop_layernorm_scaled(p, x, scale, y); }
const iops *iops_for(bct_isa isa) { return &scalar_ops; }
#endif
