/* intops.c - integer-only GELU, softmax and LayerNorm (see intops.h). */
#include "intops.h"
#include "intops_priv.h"

#include <assert.h>
#include <float.h>
#include <math.h>
#include <stdlib.h>

#include "util/status.h"

/* iop__rshift_round (intops_priv.h) works on magnitudes: right shifts of
 * negative numbers are implementation-defined. */

/* Dyadic multiplier: M / 2^R ~ ratio with M in [2^(mbits-1), 2^mbits)
 * (fewer bits when R would exceed 62, i.e. for tiny ratios).  ratio must
 * be positive, finite and < 2^(mbits-1), so R >= 1. */
static void dyadic(double ratio, int mbits, uint64_t *M, int *R) {
    int e;
    frexp(ratio, &e); /* ratio = f * 2^e, f in [0.5, 1) */
    int r = mbits - e;
    if (r > 62) r = 62;
    *R = r;
    *M = (uint64_t)llround(ldexp(ratio, r));
}

/* ------------------------------------------------------------------ */

/* iop_quantize_row as setup + ranges (intops_priv.h), shared with the
 * SIMD versions. */
float iop__absmax_range(const float *x, int i0, int n, float amax) {
    for (int i = i0; i < n; i++) {
        float a = fabsf(x[i]);
        if (a > amax) amax = a;
    }
    return amax;
}

float iop__quant_setup(float amax, int bits, iop__quant_k *k) {
    if (bits < 2) bits = 2;
    if (bits > 24) bits = 24;
    k->qmax = (int32_t)((1L << (bits - 1)) - 1);
    k->inv = 0; /* all-zero row: every code round(+-0 * 0) = 0 */
    if (amax == 0.0f) return 1.0f;
    float scale = (float)((double)amax / k->qmax);
    if (scale < FLT_MIN) scale = FLT_MIN; /* denormal rows: keep 1/scale finite */
    /* Divide in double by the returned (float) scale, so that the round
     * trip bound |x - q*scale| <= scale/2 holds for that exact scale. */
    k->inv = 1.0 / (double)scale;
    return scale;
}

void iop__quant_range(const iop__quant_k *k, const float *x, int i0, int n, int32_t *q) {
    const int32_t qmax = k->qmax;
    for (int i = i0; i < n; i++) {
        double v = round((double)x[i] * k->inv);
        if (v > qmax) v = qmax; /* only reachable by ~1 ulp at x = +-amax */
        if (v < -qmax) v = -qmax;
        q[i] = (int32_t)v;
    }
}

float iop_quantize_row(const float *x, int n, int bits, int32_t *q) {
    iop__quant_k k;
    float scale = iop__quant_setup(iop__absmax_range(x, 0, n, 0.0f), bits, &k);
    iop__quant_range(&k, x, 0, n, q);
    return scale;
}

uint64_t iop_isqrt64(uint64_t v) {
    if (v < 2) return v;
    /* Start above the root: v < 2^bits, so sqrt(v) < 2^ceil(bits/2) <= 2^32.
     * From above, Newton's integer step decreases monotonically to
     * floor(sqrt(v)) and stops there (the next step is not smaller).
     * x + v/x <= 2^33, so nothing overflows. */
    uint64_t x = (uint64_t)1 << ((iop__bitlen64(v) + 1) / 2);
    for (;;) {
        uint64_t y = (x + v / x) >> 1;
        if (y >= x) return x;
        x = y;
    }
}

/* ------------------------------------------------------------------ */
/* i-GELU.
 * erf domain: units S_u chosen so that 1/(|a| S_u^2) == 2^28 exactly, i.e.
 * erf(u) ~ (2^28 - (B - min(|u|, B))^2) / 2^28 with B = round(|b| / S_u)
 * = 15576; (B - u)^2 <= 2.43e8 < 2^28 so P = 2^28 - (B-u)^2 is in
 * [0.096, 1] * 2^28.  P >> 14 gives erf in Q14 (I-BERT's shift by 14), so
 * out = q (2^14 + sgn erf_q14) is at most |q| 2^15 < 2^31. */
#define GELU_A 0.2888 /* |a| */
#define GELU_B 1.769  /* |b| */
#define GELU_C_BITS IOP__GELU_C_BITS
#define GELU_SHIFT IOP__GELU_SHIFT

void iop__gelu_setup(float scale, iop__gelu_k *k, float *out_scale) {
    const int64_t C = (int64_t)1 << GELU_C_BITS;
    const double su = 1.0 / sqrt(GELU_A * (double)C);
    *k = (iop__gelu_k){.B = llround(GELU_B / su), .C = C};
    *out_scale = scale / (float)(1 << (GELU_SHIFT + 1));

    /* u = round(|q| * M / 2^R) = |x|/sqrt(2) in erf units. */
    double ratio = (double)scale / (M_SQRT2 * su);
    if (!(ratio > 0))
        k->M = 0; /* scale 0: *out_scale = 0, every output is 0 (scale must be > 0) */
    else if (ratio >= (double)k->B)
        k->clip_all = 1; /* one code step is past the clip point: erf = sgn */
    else
        dyadic(ratio, 31, &k->M, &k->R); /* R >= 17 since ratio < 2^14 */
    k->half = k->R ? (uint64_t)1 << (k->R - 1) : 0;
}

void iop__gelu_range(const iop__gelu_k *k, const int32_t *q, int i0, int n, int32_t *out) {
    const int64_t B = k->B, C = k->C;
    for (int i = i0; i < n; i++) {
        int64_t v = q[i];
        if (v > IOP_GELU_MAX_CODE) v = IOP_GELU_MAX_CODE;
        if (v < -IOP_GELU_MAX_CODE) v = -IOP_GELU_MAX_CODE;
        if (v == 0) {
            out[i] = 0;
            continue;
        }
        uint64_t a = (uint64_t)(v < 0 ? -v : v);
        int64_t u;
        if (k->clip_all) {
            u = B;
        } else {
            u = (int64_t)((a * k->M + k->half) >> k->R); /* a*M < 2^47 */
            if (u > B) u = B;
        }
        int64_t d = B - u;
        int64_t P = C - d * d;                                        /* erf * 2^28, > 0 */
        int64_t e = (P + ((int64_t)1 << (GELU_SHIFT - 1))) >> GELU_SHIFT; /* Q14, <= 2^14 */
        int64_t one = (int64_t)1 << GELU_SHIFT;
        out[i] = (int32_t)(v * (v > 0 ? one + e : one - e));
    }
}

void iop_gelu(const int32_t *q, int n, float scale, int32_t *out, float *out_scale) {
    assert(n >= 0);
    iop__gelu_k k;
    iop__gelu_setup(scale, &k, out_scale);
    iop__gelu_range(&k, q, 0, n, out);
}

void iop_relu(const int32_t *q, int n, int32_t *out) {
    for (int i = 0; i < n; i++) out[i] = q[i] > 0 ? q[i] : 0;
}

/* ------------------------------------------------------------------ */
/* i-softmax.
 * exp domain: ln2 == 2^SM_F units.  exp(-m units) = 2^-z * exp(-r) with
 * z = m >> SM_F and r = m mod 2^SM_F.  With v = r / 2^SM_F in [0, 1):
 *   exp(-v ln2) ~ 1 - k1 v + k2 v^2,  k1 = 0.96963238 ln2,
 *   k2 = 0.35815147 ln2^2 (I-BERT), nudged to k1 - 1/2 (see intops.h).
 * Evaluated in Q30 as 2^30 - (((K1 - (K2 r >> F)) r) >> F): all terms are
 * non-negative (k1 > k2), products stay below 2^50. */
#define SM_F IOP__SM_F
#define SM_Q IOP__SM_Q
#define SM_ZCUT IOP__SM_ZCUT

/* Per-call constants: m = round(d * M / 2^R) ~ d * scale / ln2 * 2^F,
 * with d = mx - x in [0, 2^32).  Differences d >= dcap are certainly
 * past SM_ZCUT ln2 and give 0; capping d also keeps d*M < 2^62. */
void iop__sm_setup(float scale, iop__sm_k *k) {
    const double ratio = (double)scale * (double)(1 << SM_F) / M_LN2;
    const double zlim = (double)(SM_ZCUT + 1) * (double)(1 << SM_F);
    *k = (iop__sm_k){.dcap = UINT64_MAX};
    if (!(ratio > 0)) {
        k->M = 0; /* scale 0 or NaN: every m = 0, the uniform row */
    } else if (ratio >= zlim) {
        k->dcap = 1; /* one code step is past the cut: only the max survive */
    } else {
        dyadic(ratio, 30, &k->M, &k->R); /* M <= 2^30; R >= 4 since ratio < 2^26 */
        double c = ceil(zlim / ratio);
        k->dcap = c < 4294967296.0 ? (uint64_t)c : (uint64_t)1 << 32;
    }
    k->half = k->R ? (uint64_t)1 << (k->R - 1) : 0;
    k->K1 = (uint64_t)llround(0.96963238 * M_LN2 * (double)(1 << SM_Q));
    k->K2 = k->K1 - ((uint64_t)1 << (SM_Q - 1)); /* exp(-ln2) == 1/2 exactly */
    k->rmask = ((uint64_t)1 << SM_F) - 1;
}

/* Pass 1: e_j = exp(x_j - max) in Q30 (<= 2^30, stored in p), and the
 * sum (<= n 2^30 < 2^61). */
uint64_t iop__sm_exp_range(const iop__sm_k *k, int32_t mx, const int32_t *x, int j0, int n, int32_t *p) {
    uint64_t sum = 0;
    for (int j = j0; j < n; j++) {
        uint64_t d = (uint64_t)((int64_t)mx - x[j]);
        uint64_t e = 0;
        if (d < k->dcap) {
            uint64_t m = (d * k->M + k->half) >> k->R;
            uint64_t z = m >> SM_F;
            if (z < SM_ZCUT) {
                uint64_t r = m & k->rmask;
                uint64_t t = ((k->K1 - ((k->K2 * r) >> SM_F)) * r) >> SM_F;
                e = ((uint64_t)1 << SM_Q) - t; /* in (2^29, 2^30] */
                if (z) e = (e + ((uint64_t)1 << (z - 1))) >> z;
            }
        }
        p[j] = (int32_t)e;
        sum += e;
    }
    return sum;
}

/* Pass 2: p = round(e * 2^out_bits / sum) with one division per row.
 * sum >= 2^30 (the max contributes 2^30).  Bring it to 31 bits
 * (s_hi in [2^30, 2^31)) and scale e the same way; then
 * factor = 2^62 / s_hi is in (2^31, 2^32] and e' * factor <=
 * (s_hi + 1) * factor <= 2^62 + 2^32: no overflow. */
void iop__sm_norm_setup(uint64_t sum, int out_bits, iop__sm_norm *k) {
    k->sh = iop__bitlen64(sum) - 31;
    if (k->sh < 0) k->sh = 0;
    k->factor = ((uint64_t)1 << 62) / (sum >> k->sh);
    k->osh = 62 - out_bits; /* in [32, 54] */
    k->ehalf = k->sh ? (uint64_t)1 << (k->sh - 1) : 0;
}

void iop__sm_norm_range(const iop__sm_norm *k, int32_t *p, int j0, int n) {
    for (int j = j0; j < n; j++) {
        uint64_t e = ((uint64_t)(uint32_t)p[j] + k->ehalf) >> k->sh;
        p[j] = (int32_t)((e * k->factor + ((uint64_t)1 << (k->osh - 1))) >> k->osh);
    }
}

void iop_softmax(const int32_t *x, int n, float scale, int32_t *p, int out_bits) {
    assert(n >= 0);
    if (n <= 0) return;
    if (out_bits < IOP_SOFTMAX_MIN_BITS) out_bits = IOP_SOFTMAX_MIN_BITS;
    if (out_bits > IOP_SOFTMAX_MAX_BITS) out_bits = IOP_SOFTMAX_MAX_BITS;
    int32_t mx = x[0];
    for (int j = 1; j < n; j++)
        if (x[j] > mx) mx = x[j];
    iop__sm_k k;
    iop__sm_norm nk;
    iop__sm_setup(scale, &k);
    iop__sm_norm_setup(iop__sm_exp_range(&k, mx, x, 0, n, p), out_bits, &nk);
    iop__sm_norm_range(&nk, p, 0, n);
}

/* ------------------------------------------------------------------ */
/* Integer LayerNorm. */

int iop_ln_init(iop_ln_params *p, const float *gamma, const float *beta, int n, float eps) {
    p->n = 0;
    p->gamma_q = NULL;
    p->beta_q = NULL;
    if (n < 1 || n > IOP_LN_MAX_N || !gamma || !beta || !(eps >= 0) || !isfinite(eps))
        return BCT_EINVAL;
    double gmax = 0, bmax = 0;
    for (int i = 0; i < n; i++) {
        if (!isfinite(gamma[i]) || !isfinite(beta[i]) || fabsf(gamma[i]) > IOP_LN_MAX_PARAM ||
            fabsf(beta[i]) > IOP_LN_MAX_PARAM)
            return BCT_EINVAL;
        if (fabs(gamma[i]) > gmax) gmax = fabs(gamma[i]);
        if (fabs(beta[i]) > bmax) bmax = fabs(beta[i]);
    }
    const double sqn = sqrt((double)n);
    gmax *= sqn;
    /* gamma*sqrt(n) gets gbits fraction bits with |gamma_q| < 2^30, and
     * beta lives in the accumulator's format Q(30+gbits) with |beta_q| <
     * 2^62: then |N * gamma_q| + |beta_q| < 2^61 + 2^62 (N <= 2^30 + 2). */
    int gbits = 60, e;
    if (gmax > 0) {
        frexp(gmax, &e); /* gmax < 2^e */
        if (30 - e < gbits) gbits = 30 - e;
    }
    if (bmax > 0) {
        frexp(bmax, &e);
        if (32 - e < gbits) gbits = 32 - e;
    }
    p->gamma_q = malloc((size_t)n * sizeof(*p->gamma_q));
    p->beta_q = malloc((size_t)n * sizeof(*p->beta_q));
    if (!p->gamma_q || !p->beta_q) {
        iop_ln_free(p);
        return BCT_ENOMEM;
    }
    p->n = n;
    p->eps = eps;
    p->frac = 30 + gbits; /* gbits in [-1, 60]: 2^-frac is a normal float */
    p->out_scale = ldexpf(1.0f, -p->frac);
    for (int i = 0; i < n; i++) {
        p->gamma_q[i] = (int32_t)llround(ldexp((double)gamma[i] * sqn, gbits));
        p->beta_q[i] = (int64_t)llround(ldexp((double)beta[i], p->frac));
    }
    return BCT_OK;
}

void iop_ln_free(iop_ln_params *p) {
    free(p->gamma_q);
    free(p->beta_q);
    p->gamma_q = NULL;
    p->beta_q = NULL;
    p->n = 0;
}

/* eps: (x - mean)/sqrt(S/n + eps) = sqrt(n) c / sqrt(sum c^2 + n^3 eps),
 * with eps in code units eps/scale^2: a per-call constant (may be inf),
 * returned in *ev.
 * Overflow guard (I-BERT's right shift): returns the smallest sh with
 * n |c >> sh|^2 <= 2^61 and |c >> sh| <= 2^30 (then c * inv <= 2^62),
 * bounding |c >> sh| by (cmax >> sh) + 1; shifted further if eps alone
 * would exceed 2^61 (then y is beta up to ~2^-30 anyway).  Shift only
 * when needed: rounding every c the same way biases the variance by
 * ~2^sh / rms(c).  Shared by the scalar and SIMD LayerNorm. */
int iop__ln_shift(const iop_ln_params *p, uint64_t cmax, float scale, double *ev) {
    int n = p->n, sh = 0;
    *ev = 0;
    if (scale > 0 && p->eps > 0) *ev = (double)n * n * n * p->eps / ((double)scale * scale);
    for (; sh < 62; sh++) {
        uint64_t cm = (cmax >> sh) + 1;
        if (cm <= ((uint64_t)1 << 30) && cm * cm <= ((uint64_t)1 << 61) / (uint64_t)n) break;
    }
    while (sh < 62 && ldexp(*ev, -2 * sh) > 0x1p61) sh++;
    return sh;
}

/* 1. Centre exactly: c = n x - sum = n (x - mean), |c| < 2^13 2^32.
 * Normalisation is scale invariant, so the factor n cancels; unlike
 * I-BERT's integer mean (rounded), this loses nothing (the rounded mean
 * costs up to half a code: 4e-4 at 16-bit codes). */
uint64_t iop__ln_cmax_range(const int32_t *x, int n, int64_t sum, int i0, uint64_t cmax) {
    for (int i = i0; i < n; i++) {
        int64_t c = (int64_t)n * x[i] - sum;
        uint64_t a = (uint64_t)(c < 0 ? -c : c);
        if (a > cmax) cmax = a;
    }
    return cmax;
}

/* 3. Sum of squares of the shifted centred values (<= 2^61). */
uint64_t iop__ln_var_range(const int32_t *x, int n, const iop__ln_k *k, int i0, uint64_t var) {
    for (int i = i0; i < n; i++) {
        int64_t c = iop__rshift_round((int64_t)n * x[i] - k->sum, k->sh);
        var += (uint64_t)(c * c);
    }
    return var;
}

/* 4. Plus eps in the same units (<= 2^61).  std with ~31 significant
 * bits: std_fx = isqrt(var 4^k) in [2^30, 2^31], inv = 2^62 / std_fx in
 * [2^31, 2^32].  Then N = c * inv / 2^(32-k) = c / sqrt(var) * 2^30,
 * |N| <= 2^30 + 2.  A constant row (c == 0, no eps) gets inv = 0: y = beta. */
int iop__ln_finish(iop__ln_k *k, uint64_t var, double ev) {
    ev = ldexp(ev, -2 * k->sh);
    var += ev < 0x1p61 ? (uint64_t)llround(ev) : (uint64_t)1 << 61;
    if (var == 0) {
        k->k = 0;
        k->inv = 0;
        return 0;
    }
    k->k = (62 - iop__bitlen64(var)) / 2; /* 0..30 */
    k->inv = (int64_t)(((uint64_t)1 << 62) / iop_isqrt64(var << (2 * k->k)));
    return 1;
}

/* 5. Affine in Q(frac): gamma_q carries the sqrt(n). */
void iop__ln_out_range(const iop_ln_params *p, const int32_t *x, const iop__ln_k *k, int i0, float *y) {
    const int n = p->n;
    for (int i = i0; i < n; i++) {
        int64_t c = iop__rshift_round((int64_t)n * x[i] - k->sum, k->sh); /* |c| <= 2^30 */
        int64_t N = iop__rshift_round(c * k->inv, 32 - k->k);             /* c*inv <= 2^62 */
        int64_t acc = N * p->gamma_q[i] + p->beta_q[i];
        y[i] = (float)acc * p->out_scale;
    }
}

void iop_layernorm_scaled(const iop_ln_params *p, const int32_t *x, float scale, float *y) {
    const int n = p->n;
    iop__ln_k k = {0};
    for (int i = 0; i < n; i++) k.sum += x[i];
    double ev;
    k.sh = iop__ln_shift(p, iop__ln_cmax_range(x, n, k.sum, 0, 0), scale, &ev);
    iop__ln_finish(&k, iop__ln_var_range(x, n, &k, 0, 0), ev);
    iop__ln_out_range(p, x, &k, 0, y);
}

void iop_layernorm(const iop_ln_params *p, const int32_t *x, float *y) {
    iop_layernorm_scaled(p, x, 0.0f, y);
}
