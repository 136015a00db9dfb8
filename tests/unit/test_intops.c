/* Integer GELU / softmax / LayerNorm / isqrt / row quantizer against
 * double-precision references.  Each accuracy test prints the measured
 * max errors so they are visible in the test log; the asserted bounds are
 * the measured figures plus a small margin (they fail if the arithmetic
 * regresses, e.g. a lost rounding or a wrong shift). */
#include <float.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/intops.h"
#include "util/status.h"
#include "test_util.h"

/* ---- deterministic random numbers ---- */
static uint64_t rng_state = 88172645463325252ull;
static void rng_seed(uint64_t s) { rng_state = s ? s : 1; }
static uint64_t rng_u64(void) { /* xorshift64* */
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return rng_state * 2685821657736338717ull;
}
static double rng_unif(void) { return (double)(rng_u64() >> 11) * 0x1p-53; } /* [0,1) */
static double rng_normal(void) {
    double u = rng_unif(), v = rng_unif();
    return sqrt(-2.0 * log(u + 1e-300)) * cos(2.0 * M_PI * v);
}

static double gelu_ref(double x) { return 0.5 * x * (1.0 + erf(x * M_SQRT1_2)); }

/* ---- isqrt ---- */
static uint64_t isqrt_ref(uint64_t v) {
    uint64_t r = (uint64_t)sqrtl((long double)v);
    if (r > 0xFFFFFFFFull) r = 0xFFFFFFFFull;
    while (r * r > v) r--;
    while (r < 0xFFFFFFFFull && (r + 1) * (r + 1) <= v) r++;
    return r;
}

START_TEST(isqrt_exhaustive_small) {
    uint64_t r = 0;
    for (uint64_t v = 0; v <= (1u << 20); v++) {
        /* The floor root only steps up at perfect squares. */
        if ((r + 1) * (r + 1) == v) r++;
        uint64_t got = iop_isqrt64(v);
        if (got != r) ck_abort_msg("isqrt(%llu) = %llu, want %llu", (unsigned long long)v,
                                   (unsigned long long)got, (unsigned long long)r);
    }
}
END_TEST

START_TEST(isqrt_random_large) {
    rng_seed(7);
    const uint64_t edge[] = {0, 1, 2, 3, 4, UINT64_MAX, UINT64_MAX - 1, 0xFFFFFFFE00000001ull,
                             0xFFFFFFFE00000000ull, 1ull << 62, (1ull << 62) - 1, 1ull << 63,
                             (1ull << 63) - 1, 4294967296ull, 4294967295ull};
    for (size_t i = 0; i < sizeof edge / sizeof edge[0]; i++)
        ck_assert_uint_eq(iop_isqrt64(edge[i]), isqrt_ref(edge[i]));
    for (int i = 0; i < 1000000; i++) {
        uint64_t v;
        switch (i % 4) {
        case 0: v = rng_u64(); break;
        case 1: v = rng_u64() >> (rng_u64() % 64); break; /* all magnitudes */
        case 2: { uint64_t k = rng_u64() >> 32; v = k * k; break; }
        default: { uint64_t k = (rng_u64() >> 32) | 1; v = k * k - 1; break; }
        }
        uint64_t got = iop_isqrt64(v), want = isqrt_ref(v);
        if (got != want) ck_abort_msg("isqrt(%llu) = %llu, want %llu", (unsigned long long)v,
                                      (unsigned long long)got, (unsigned long long)want);
    }
}
END_TEST

/* ---- iop_quantize_row ---- */
static void check_roundtrip(const float *x, int n, int bits) {
    int32_t *q = malloc((size_t)n * sizeof(*q));
    float s = iop_quantize_row(x, n, bits, q);
    int b = bits < 2 ? 2 : bits > 24 ? 24 : bits;
    int32_t qmax = (1 << (b - 1)) - 1, seen = 0;
    ck_assert(s > 0 && isfinite(s));
    for (int i = 0; i < n; i++) {
        ck_assert_int_le(abs(q[i]), qmax);
        if (abs(q[i]) > seen) seen = abs(q[i]);
        double err = fabs((double)x[i] - (double)q[i] * s);
        if (err > 0.5 * (double)s * (1 + 1e-12))
            ck_abort_msg("bits %d: x=%g q=%d s=%g err=%g", bits, x[i], q[i], s, err);
    }
    int nonzero = 0;
    for (int i = 0; i < n; i++) nonzero |= x[i] != 0;
    if (nonzero && s > FLT_MIN) ck_assert_int_eq(seen, qmax); /* absmax maps to qmax */
    free(q);
}

START_TEST(quantize_row_roundtrip) {
    rng_seed(11);
    float x[300];
    for (int bits = 1; bits <= 26; bits++)
        for (int rep = 0; rep < 20; rep++) {
            double mag = pow(10.0, -4 + 8 * rng_unif());
            for (int i = 0; i < 300; i++) x[i] = (float)(rng_normal() * mag);
            check_roundtrip(x, 300, bits);
        }
    /* Half-away-from-zero: 0.5 and -0.5 steps at bits 2 (qmax 1, s = 1). */
    float h[3] = {1.0f, 0.5f, -0.5f};
    int32_t q[3];
    ck_assert(iop_quantize_row(h, 3, 2, q) == 1.0f);
    ck_assert_int_eq(q[1], 1);
    ck_assert_int_eq(q[2], -1);
}
END_TEST

START_TEST(quantize_row_edges) {
    int32_t q[4] = {5, 5, 5, 5};
    float z[4] = {0, -0.0f, 0, 0};
    ck_assert(iop_quantize_row(z, 4, 8, q) == 1.0f);
    for (int i = 0; i < 4; i++) ck_assert_int_eq(q[i], 0);
    float big[4] = {FLT_MAX, -FLT_MAX, 1e30f, -3.0f};
    check_roundtrip(big, 4, 8);
    check_roundtrip(big, 4, 24);
    float tiny[4] = {1e-45f, -1e-44f, 1e-40f, 0}; /* denormals: scale floored at FLT_MIN */
    check_roundtrip(tiny, 4, 8);
    float mixed[4] = {1e30f, 1e-30f, -1e-30f, -1e30f};
    float s = iop_quantize_row(mixed, 4, 16, q);
    ck_assert_int_eq(q[0], 32767);
    ck_assert_int_eq(q[1], 0);
    ck_assert_int_eq(q[3], -32767);
    ck_assert(fabsf(s * 32767 - 1e30f) <= 1e24f);
    /* n == 0: nothing written, scale 1. */
    ck_assert(iop_quantize_row(z, 0, 8, q) == 1.0f);
}
END_TEST

/* ---- i-GELU ---- */
/* Max |i-GELU - GELU| over x in [lo, hi] sampled at n points, codes at
 * `bits`.  op: against GELU of the dequantized input (the op's own error);
 * tot: against GELU of the original x (adds the input quantization). */
static void gelu_errors(double lo, double hi, int n, int bits, double *op, double *tot) {
    float *x = calloc((size_t)n, sizeof(*x));
    int32_t *q = malloc((size_t)n * sizeof(*q)), *o = malloc((size_t)n * sizeof(*o));
    for (int i = 0; i < n; i++) x[i] = (float)(lo + (hi - lo) * i / (n - 1));
    float s = iop_quantize_row(x, n, bits, q), os;
    iop_gelu(q, n, s, o, &os);
    ck_assert(os == s / 32768.0f);
    *op = *tot = 0;
    for (int i = 0; i < n; i++) {
        /* out = q (2^14 +- erf_q14): never more than |q| 2^15 in magnitude */
        ck_assert(llabs((long long)o[i]) <= llabs((long long)q[i]) * 32768);
        double got = (double)o[i] * os;
        double e1 = fabs(got - gelu_ref((double)q[i] * s)), e2 = fabs(got - gelu_ref(x[i]));
        if (e1 > *op) *op = e1;
        if (e2 > *tot) *tot = e2;
    }
    free(x);
    free(q);
    free(o);
}

START_TEST(gelu_accuracy) {
    double op8, tot8, op16, tot16, op16s, tot16s, op8s, tot8s;
    gelu_errors(-10, 10, 20001, 8, &op8, &tot8);
    gelu_errors(-10, 10, 20001, 16, &op16, &tot16);
    gelu_errors(-6, 6, 24001, 16, &op16s, &tot16s);
    gelu_errors(-6, 6, 24001, 8, &op8s, &tot8s);
    printf("i-GELU max|err| [-10,10]: 8-bit op %.5f total %.5f | 16-bit op %.5f total %.5f\n", op8,
           tot8, op16, tot16);
    printf("i-GELU max|err| [-6,6]:   8-bit op %.5f total %.5f | 16-bit op %.5f total %.5f\n", op8s,
           tot8s, op16s, tot16s);
    fflush(stdout);
    /* I-BERT's polynomial itself is off by at most 0.01815 (at x = -2.35). */
    ck_assert_double_le(op16, 0.0183);
    ck_assert_double_le(op16s, 0.0183);
    ck_assert_double_le(tot16, 0.0185);
    ck_assert_double_le(tot16s, 0.0185);
    ck_assert_double_le(op8, 0.0183);
    ck_assert_double_le(op8s, 0.0183);
    /* 8-bit codes add half a step (10/127/2, 6/127/2) times the GELU slope
     * (<= 1.129) to the polynomial's 0.0182. */
    ck_assert_double_le(tot8, 0.0182 + 1.129 * 10.0 / 127 / 2);
    ck_assert_double_le(tot8s, 0.0182 + 1.129 * 6.0 / 127 / 2);
    /* The arithmetic must reach the polynomial's own error: at 16 bits the
     * worst point is sampled, so the error is not much below 0.018 either
     * (a broken erf would show up as a much larger or zero error). */
    ck_assert_double_ge(op16s, 0.017);
}
END_TEST

START_TEST(gelu_extremes) {
    int32_t q[6] = {0, 1, -1, 65535, -65535, 2000000000}, o[6];
    float os;
    /* Huge scale: every non-zero code is past the clip: GELU(x) = x or 0. */
    iop_gelu(q, 6, 1e6f, o, &os);
    ck_assert_int_eq(o[0], 0);
    ck_assert_int_eq(o[1], 32768);
    ck_assert_int_eq(o[2], 0);
    ck_assert_int_eq(o[3], 65535 * 32768);
    ck_assert_int_eq(o[4], 0);
    ck_assert_int_eq(o[5], 65535 * 32768); /* clamped to IOP_GELU_MAX_CODE */
    /* Moderate scale, max codes: x = +-6.55: exact x / 0 after the clip. */
    iop_gelu(q, 6, 1e-4f, o, &os);
    ck_assert_int_eq(o[3], 65535 * 32768);
    ck_assert_int_eq(o[4], 0);
    /* Tiny scale: x ~ 1e-8; GELU(x) ~ x/2, the polynomial gives x/2 * 1.096. */
    iop_gelu(q, 6, 1e-12f, o, &os);
    double x = 65535 * 1e-12, got = (double)o[3] * os;
    ck_assert_double_le(fabs(got - 0.5 * x), 0.1 * 0.5 * x);
    ck_assert_int_eq(o[1], 16384 + 1576); /* q (1 + 0.0962): the jump at 0+ */
    /* ReLU */
    int32_t r[3] = {-5, 0, 7};
    iop_relu(r, 3, r);
    ck_assert_int_eq(r[0], 0);
    ck_assert_int_eq(r[1], 0);
    ck_assert_int_eq(r[2], 7);
}
END_TEST

/* Whole chain: float -> 8-bit codes -> i-GELU -> float, vs fp32 GELU. */
START_TEST(gelu_chain_cosine) {
    rng_seed(5);
    enum { N = 512 };
    float x[N];
    int32_t q[N], o[N];
    double worst = 1;
    for (int rep = 0; rep < 20; rep++) {
        /* FFN pre-activations: mean < 0, spread ~1.5, a couple of outliers */
        for (int i = 0; i < N; i++) x[i] = (float)(rng_normal() * 1.5 - 0.3);
        if (rep % 2) {
            x[rng_u64() % N] = 9.0f;
            x[rng_u64() % N] = -7.0f;
        }
        float s = iop_quantize_row(x, N, 8, q), os;
        iop_gelu(q, N, s, o, &os);
        double dot = 0, na = 0, nb = 0;
        for (int i = 0; i < N; i++) {
            double a = (double)o[i] * os;
            double b = 0.5f * x[i] * (1.0f + erff(x[i] * (float)M_SQRT1_2));
            dot += a * b;
            na += a * a;
            nb += b * b;
        }
        double cs = dot / sqrt(na * nb);
        if (cs < worst) worst = cs;
    }
    printf("i-GELU 8-bit chain: min cosine vs fp32 GELU over 20 rows of 512 = %.6f\n", worst);
    fflush(stdout);
    ck_assert_double_ge(worst, 0.999);
}
END_TEST

/* ---- i-softmax ---- */
static void softmax_ref(const int32_t *q, int n, double s, double *p) {
    int32_t mx = q[0];
    for (int j = 1; j < n; j++)
        if (q[j] > mx) mx = q[j];
    double sum = 0;
    for (int j = 0; j < n; j++) sum += p[j] = exp(((double)q[j] - mx) * s);
    for (int j = 0; j < n; j++) p[j] /= sum;
}

static const int32_t *cmp_x;
static int cmp_idx(const void *a, const void *b) {
    int32_t xa = cmp_x[*(const int *)a], xb = cmp_x[*(const int *)b];
    return (xa > xb) - (xa < xb);
}

/* Checks p for x: sum, monotonicity, argmax; returns max |p - prob|. */
static double check_softmax_row(const int32_t *x, int n, float s, int ob, double clear_gap) {
    int32_t *p = malloc((size_t)n * sizeof(*p));
    double *ref = malloc((size_t)n * sizeof(*ref));
    int *idx = malloc((size_t)n * sizeof(*idx));
    iop_softmax(x, n, s, p, ob);
    softmax_ref(x, n, s, ref);
    double one = ldexp(1.0, ob), err = 0;
    long long sum = 0;
    for (int j = 0; j < n; j++) {
        ck_assert_int_ge(p[j], 0);
        sum += p[j];
        double e = fabs(p[j] / one - ref[j]);
        if (e > err) err = e;
    }
    /* sum: n roundings of half a unit plus the fixed-point normalisation */
    double tol = n / 2.0 + 1 + one * (n / 2.0 + 2) * 0x1p-30;
    if (fabs((double)sum - one) > tol)
        ck_abort_msg("n=%d ob=%d sum(p)=%lld want %.0f +- %.0f", n, ob, sum, one, tol);
    /* monotone: larger x never gets smaller p */
    for (int j = 0; j < n; j++) idx[j] = j;
    cmp_x = x;
    qsort(idx, (size_t)n, sizeof(*idx), cmp_idx);
    for (int j = 1; j < n; j++)
        if (p[idx[j]] < p[idx[j - 1]])
            ck_abort_msg("not monotone: x=%d p=%d < x=%d p=%d", x[idx[j]], p[idx[j]],
                         x[idx[j - 1]], p[idx[j - 1]]);
    /* argmax kept when the reference top-2 gap is clear */
    if (n >= 2) {
        int top = idx[n - 1];
        double second = ref[idx[n - 2]];
        if (ref[top] - second > clear_gap)
            for (int j = 0; j < n; j++)
                if (j != top) ck_assert_int_gt(p[top], p[j]);
    }
    free(p);
    free(ref);
    free(idx);
    return err;
}

/* Max |p - prob| from the polynomial: its relative error per exp lies in
 * [-3.3e-3, +2.2e-3], so |dp| <= ~1.4e-3 in the worst case; random rows
 * measure 7.0e-4.  Asserted: measured + margin. */
#define SM_BOUND 9e-4

START_TEST(softmax_accuracy) {
    rng_seed(3);
    const int ns[] = {1, 2, 7, 64, 128, 512, 4096};
    const double spreads[] = {0, 1e-3, 1e-2, 0.1, 1, 3, 10, 100};
    const int obs[] = {8, 16, 24, 30};
    const int in_bits[] = {8, 16, 20};
    double worst[4] = {0}, worst_poly = 0;
    for (size_t a = 0; a < sizeof ns / sizeof ns[0]; a++)
        for (size_t b = 0; b < sizeof spreads / sizeof spreads[0]; b++)
            for (int dom = 0; dom < 2; dom++)
                for (size_t c = 0; c < sizeof in_bits / sizeof in_bits[0]; c++) {
                    int n = ns[a];
                    float *xf = malloc((size_t)n * sizeof(*xf));
                    int32_t *q = malloc((size_t)n * sizeof(*q));
                    for (int j = 0; j < n; j++) xf[j] = (float)(rng_normal() * spreads[b] + 2.0);
                    if (dom) xf[rng_u64() % n] += (float)(8 + 4 * spreads[b]); /* one dominant */
                    float s = iop_quantize_row(xf, n, in_bits[c], q);
                    for (size_t o = 0; o < 4; o++) {
                        /* argmax: 2 x the error bound below + one output step */
                        double gap = 2 * (SM_BOUND + ldexp(1.0, -obs[o])) + ldexp(1.0, -obs[o]);
                        double e = check_softmax_row(q, n, s, obs[o], gap);
                        if (e > worst[o]) worst[o] = e;
                        if (obs[o] == 30 && e > worst_poly) worst_poly = e;
                    }
                    free(xf);
                    free(q);
                }
    printf("i-softmax max|p - prob|: out_bits 8 %.2e, 16 %.2e, 24 %.2e, 30 %.2e\n", worst[0],
           worst[1], worst[2], worst[3]);
    fflush(stdout);
    for (int o = 0; o < 4; o++) ck_assert_double_le(worst[o], SM_BOUND + ldexp(1.0, -obs[o] - 1));
    /* the fixed point must not add visibly to the polynomial's error */
    ck_assert_double_le(worst_poly, SM_BOUND);
}
END_TEST

START_TEST(softmax_edges) {
    int32_t p[8];
    /* n = 1: exactly 2^out_bits */
    int32_t one = -123;
    for (int ob = 8; ob <= 30; ob++) {
        iop_softmax(&one, 1, 0.37f, p, ob);
        ck_assert_int_eq(p[0], 1 << ob);
    }
    /* out_bits clamped */
    iop_softmax(&one, 1, 1.0f, p, 3);
    ck_assert_int_eq(p[0], 256);
    iop_softmax(&one, 1, 1.0f, p, 40);
    ck_assert_int_eq(p[0], 1 << 30);
    /* all equal: uniform */
    int32_t eq[7] = {5, 5, 5, 5, 5, 5, 5};
    iop_softmax(eq, 7, 0.1f, p, 16);
    for (int j = 0; j < 7; j++) ck_assert_int_eq(p[j], (int)lround(65536.0 / 7));
    /* full int32 range: the far ones vanish, no overflow */
    int32_t ext[4] = {INT32_MAX, INT32_MIN, 0, INT32_MAX};
    for (int k = 0; k < 3; k++) {
        float sc = k == 0 ? 1.0f : k == 1 ? 1e-6f : 1e-12f;
        iop_softmax(ext, 4, sc, p, 30);
        double ref[4];
        softmax_ref(ext, 4, sc, ref);
        for (int j = 0; j < 4; j++) ck_assert_double_le(fabs(p[j] * 0x1p-30 - ref[j]), 2e-3);
    }
    iop_softmax(ext, 4, 1.0f, p, 30);
    ck_assert_int_eq(p[0], 1 << 29);
    ck_assert_int_eq(p[1], 0);
    ck_assert_int_eq(p[2], 0);
    /* huge scale: only the max survive; scale 0 or NaN: uniform */
    int32_t v[3] = {1, 2, 2};
    iop_softmax(v, 3, 1e30f, p, 16);
    ck_assert_int_eq(p[0], 0);
    ck_assert_int_eq(p[1], 32768);
    iop_softmax(v, 3, 0.0f, p, 16);
    ck_assert_int_eq(p[0], p[2]);
    iop_softmax(v, 3, NAN, p, 16);
    ck_assert_int_eq(p[0], p[2]);
    /* in place */
    int32_t w[3] = {0, 100, 200};
    iop_softmax(w, 3, 0.01f, w, 16);
    double ref[3];
    int32_t w0[3] = {0, 100, 200};
    softmax_ref(w0, 3, 0.01, ref);
    for (int j = 0; j < 3; j++) ck_assert_double_le(fabs(w[j] / 65536.0 - ref[j]), 2e-3);
}
END_TEST

/* A decreasing ramp crosses every ln2 step and the 32 ln2 cut: p must be
 * non-increasing along it and match the reference everywhere. */
START_TEST(softmax_ramp_monotone) {
    enum { N = 4096 };
    static int32_t x[N];
    const float scales[] = {1e-4f, 3.3e-3f, 0.0173f, 0.05f, 0.7f};
    double worst = 0;
    for (size_t k = 0; k < sizeof scales / sizeof scales[0]; k++) {
        for (int j = 0; j < N; j++) x[j] = -j;
        double e = check_softmax_row(x, N, scales[k], 30, 1);
        if (e > worst) worst = e;
    }
    printf("i-softmax ramp (n=4096, 30 bits) max|err| %.2e\n", worst);
    fflush(stdout);
    ck_assert_double_le(worst, 2e-4);
}
END_TEST

/* Rows straddling the z-th ln2 step (scale ln2/2^16: the step is at code
 * z 2^16, one code = 16 exp-domain units).  I-BERT's unmodified polynomial
 * gives 0.49998 at r = -ln2, so p would jump UP just past each step. */
START_TEST(softmax_ln2_boundaries) {
    enum { N = 64 };
    int32_t x[N];
    const float s = (float)(M_LN2 / 65536.0);
    double worst = 0;
    for (int z = 1; z <= 12; z++) {
        x[0] = 0;
        for (int j = 1; j < N; j++) x[j] = -(z * 65536 - 32 + j);
        worst = fmax(worst, check_softmax_row(x, N, s, 30, 1));
    }
    ck_assert_double_le(worst, SM_BOUND);
}
END_TEST

/* ---- i-LayerNorm ---- */
static void ln_ref(const double *x, int n, const float *g, const float *b, double eps, double *y) {
    double mean = 0, var = 0;
    for (int i = 0; i < n; i++) mean += x[i];
    mean /= n;
    for (int i = 0; i < n; i++) var += (x[i] - mean) * (x[i] - mean);
    var /= n;
    double inv = 1.0 / sqrt(var + eps);
    for (int i = 0; i < n; i++) y[i] = (x[i] - mean) * inv * g[i] + b[i];
}

static void random_gamma_beta(float *g, float *b, int n) {
    for (int i = 0; i < n; i++) {
        g[i] = (float)(1.0 + 0.2 * rng_normal());
        b[i] = (float)(0.1 * rng_normal());
    }
}

START_TEST(layernorm_accuracy) {
    rng_seed(9);
    const int ns[] = {128, 768};
    const double mags[] = {1e-2, 1e-1, 1, 10, 1e3};
    const int bits[] = {16, 24};
    double op[2] = {0}, tot[2] = {0}, op_noeps = 0;
    for (size_t a = 0; a < 2; a++) {
        int n = ns[a];
        float *g = malloc(n * sizeof(float)), *b = malloc(n * sizeof(float));
        float *xf = malloc(n * sizeof(float)), *y = malloc(n * sizeof(float));
        double *xd = malloc(n * sizeof(double)), *ref = malloc(n * sizeof(double));
        double *ref0 = malloc(n * sizeof(double));
        int32_t *q = malloc(n * sizeof(int32_t));
        random_gamma_beta(g, b, n);
        iop_ln_params p;
        ck_assert_int_eq(iop_ln_init(&p, g, b, n, 1e-12f), BCT_OK);
        for (size_t m = 0; m < sizeof mags / sizeof mags[0]; m++)
            for (int rep = 0; rep < 10; rep++) {
                /* residual-stream-like rows: offset mean, and on odd reps
                 * an outlier feature 20x the rest (as BERT has) */
                for (int i = 0; i < n; i++) xf[i] = (float)(mags[m] * (rng_normal() + 0.3));
                if (rep % 2) xf[rng_u64() % n] = (float)(-20 * mags[m]);
                for (size_t c = 0; c < 2; c++) {
                    float s = iop_quantize_row(xf, n, bits[c], q);
                    for (int i = 0; i < n; i++) xd[i] = (double)q[i] * s;
                    ln_ref(xd, n, g, b, 1e-12, ref);
                    for (int i = 0; i < n; i++) xd[i] = xf[i];
                    ln_ref(xd, n, g, b, 1e-12, ref0);
                    iop_layernorm_scaled(&p, q, s, y);
                    for (int i = 0; i < n; i++) {
                        double e1 = fabs(y[i] - ref[i]), e2 = fabs(y[i] - ref0[i]);
                        if (e1 > op[c]) op[c] = e1;
                        if (e2 > tot[c]) tot[c] = e2;
                    }
                    iop_layernorm(&p, q, y);
                    for (int i = 0; i < n; i++)
                        if (fabs(y[i] - ref[i]) > op_noeps) op_noeps = fabs(y[i] - ref[i]);
                }
            }
        iop_ln_free(&p);
        free(g);
        free(b);
        free(xf);
        free(y);
        free(xd);
        free(ref);
        free(ref0);
        free(q);
    }
    printf("i-LayerNorm max|err| op (vs LN of the codes): 16-bit %.2e, 24-bit %.2e, no-eps %.2e\n",
           op[0], op[1], op_noeps);
    printf("i-LayerNorm max|err| total (vs LN of the floats): 16-bit %.2e, 24-bit %.2e\n", tot[0],
           tot[1]);
    fflush(stdout);
    /* op: float output rounding of |y| <= ~27 is ~1e-6 */
    ck_assert_double_le(op[0], 2e-6);
    ck_assert_double_le(op[1], 2e-6);
    ck_assert_double_le(op_noeps, 2e-6);
    /* total: dominated by the input codes (half a step of max|x|/32767) */
    ck_assert_double_le(tot[0], 6e-4);
    ck_assert_double_le(tot[1], 4e-6);
}
END_TEST

START_TEST(layernorm_constant_and_eps) {
    enum { N = 64 };
    float g[N], b[N], y[N];
    int32_t q[N];
    rng_seed(4);
    random_gamma_beta(g, b, N);
    iop_ln_params p;
    ck_assert_int_eq(iop_ln_init(&p, g, b, N, 1e-5f), BCT_OK);
    const int32_t consts[] = {0, 1, -7, 123456, INT32_MAX, INT32_MIN};
    for (size_t c = 0; c < sizeof consts / sizeof consts[0]; c++) {
        for (int i = 0; i < N; i++) q[i] = consts[c];
        iop_layernorm(&p, q, y);
        for (int i = 0; i < N; i++) ck_assert_double_le(fabs(y[i] - b[i]), 1e-7);
        iop_layernorm_scaled(&p, q, 0.01f, y); /* eps only: still beta */
        for (int i = 0; i < N; i++) ck_assert_double_le(fabs(y[i] - b[i]), 1e-7);
    }
    /* eps matters (var 1e-6 vs eps 1e-5): the scaled form applies it. */
    float xf[N];
    double xd[N], ref[N];
    for (int i = 0; i < N; i++) xf[i] = (float)(1e-3 * rng_normal());
    float s = iop_quantize_row(xf, N, 16, q);
    for (int i = 0; i < N; i++) xd[i] = (double)q[i] * s;
    ln_ref(xd, N, g, b, 1e-5, ref);
    iop_layernorm_scaled(&p, q, s, y);
    double err = 0;
    for (int i = 0; i < N; i++) err = fmax(err, fabs(y[i] - ref[i]));
    ck_assert_double_le(err, 1e-6);
    /* eps huge in code units (tiny scale): capped, y ~ beta, no overflow */
    iop_layernorm_scaled(&p, q, 1e-30f, y);
    for (int i = 0; i < N; i++) ck_assert_double_le(fabs(y[i] - b[i]), 1e-6);
    iop_ln_free(&p);
}
END_TEST

/* Overflow guard: n = 8192 codes over the whole int32 range, and |x| = 2^24. */
START_TEST(layernorm_overflow_guard) {
    enum { N = IOP_LN_MAX_N };
    static float g[N], b[N], y[N];
    static int32_t q[N];
    static double xd[N], ref[N];
    rng_seed(21);
    random_gamma_beta(g, b, N);
    iop_ln_params p;
    ck_assert_int_eq(iop_ln_init(&p, g, b, N, 1e-12f), BCT_OK);
    double worst = 0;
    for (int k = 0; k < 4; k++) {
        for (int i = 0; i < N; i++) {
            if (k == 0) q[i] = (int32_t)(rng_u64() >> 32);        /* any int32 */
            else if (k == 1) q[i] = (i & 1) ? INT32_MAX : INT32_MIN; /* max variance */
            else if (k == 2) q[i] = (i & 1) ? (1 << 24) : -(1 << 24);
            else q[i] = (int32_t)((rng_u64() % (1u << 25)) - (1u << 24));
            xd[i] = q[i];
        }
        ln_ref(xd, N, g, b, 0, ref);
        iop_layernorm(&p, q, y);
        for (int i = 0; i < N; i++) worst = fmax(worst, fabs(y[i] - ref[i]));
    }
    printf("i-LayerNorm n=8192 full int32 range max|err| %.2e\n", worst);
    fflush(stdout);
    ck_assert_double_le(worst, 1e-6);
    iop_ln_free(&p);
}
END_TEST

START_TEST(layernorm_init_errors) {
    float g[4] = {1, 1, 1, 1}, b[4] = {0, 0, 0, 0};
    iop_ln_params p;
    ck_assert_int_eq(iop_ln_init(&p, g, b, 0, 1e-12f), BCT_EINVAL);
    ck_assert_int_eq(iop_ln_init(&p, g, b, IOP_LN_MAX_N + 1, 1e-12f), BCT_EINVAL);
    ck_assert_int_eq(iop_ln_init(&p, g, b, 4, -1.0f), BCT_EINVAL);
    ck_assert_int_eq(iop_ln_init(&p, NULL, b, 4, 0), BCT_EINVAL);
    g[2] = NAN;
    ck_assert_int_eq(iop_ln_init(&p, g, b, 4, 0), BCT_EINVAL);
    g[2] = 1;
    b[1] = 1e30f;
    ck_assert_int_eq(iop_ln_init(&p, g, b, 4, 0), BCT_EINVAL);
    iop_ln_free(&p); /* safe after a failed init */
    /* extreme but valid parameters still round-trip */
    b[1] = IOP_LN_MAX_PARAM;
    g[0] = IOP_LN_MAX_PARAM;
    g[3] = 1e-30f;
    ck_assert_int_eq(iop_ln_init(&p, g, b, 4, 0), BCT_OK);
    int32_t q[4] = {1, 2, 3, 4};
    float y[4];
    double xd[4] = {1, 2, 3, 4}, ref[4];
    iop_layernorm(&p, q, y);
    ln_ref(xd, 4, g, b, 0, ref);
    for (int i = 0; i < 4; i++) ck_assert_double_le(fabs(y[i] - ref[i]), 1e-6 * fmax(1, fabs(ref[i])));
    iop_ln_free(&p);
    iop_ln_free(&p);
}
END_TEST

static Suite *suite(void) {
    Suite *s = suite_create("intops");
    TCase *tc = tcase_create("intops");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, isqrt_exhaustive_small);
    tcase_add_test(tc, isqrt_random_large);
    tcase_add_test(tc, quantize_row_roundtrip);
    tcase_add_test(tc, quantize_row_edges);
    tcase_add_test(tc, gelu_accuracy);
    tcase_add_test(tc, gelu_extremes);
    tcase_add_test(tc, gelu_chain_cosine);
    tcase_add_test(tc, softmax_accuracy);
    tcase_add_test(tc, softmax_edges);
    tcase_add_test(tc, softmax_ramp_monotone);
    tcase_add_test(tc, softmax_ln2_boundaries);
    tcase_add_test(tc, layernorm_accuracy);
    tcase_add_test(tc, layernorm_constant_and_eps);
    tcase_add_test(tc, layernorm_overflow_guard);
    tcase_add_test(tc, layernorm_init_errors);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) { return test_run_suite(suite()); }
