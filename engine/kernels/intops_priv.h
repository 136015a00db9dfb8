/* intops_priv.h - what intops.c (the scalar reference) shares with the
 * SIMD versions (intops_avx2.c: AVX2, intops_simd.c: AVX-512 and the
 * dispatch); not for other modules.
 *
 * Each integer op is split into its per-call constants (a *_setup
 * function) and per-element loops over a range [i0, n).  The scalar op is
 * setup + the loops over [0, n); a SIMD op calls the same setup, runs its
 * vector loop over the first multiple of the vector width and hands the
 * rest to the same scalar range function, so both agree bit for bit by
 * construction.  The fixed-point reasoning (bounds, why nothing
 * overflows) is in intops.c next to the loops.
 */
#ifndef BCT_INTOPS_PRIV_H
#define BCT_INTOPS_PRIV_H

#include <stdint.h>

#include "intops.h"
#include "intops_simd.h"

/* Number of significant bits of v (0 for v == 0). */
static inline int iop__bitlen64(uint64_t v) { return v ? 64 - __builtin_clzll(v) : 0; }

/* iop_quantize_row: max |x| over [i0, n) and amax; the scale for that
 * max (bits clamped as documented; an all-zero row gets scale 1 and
 * inv = 0, so its codes are 0); the codes over [i0, n). */
typedef struct iop__quant_k {
    double inv; /* 1 / scale */
    int32_t qmax;
} iop__quant_k;

float iop__absmax_range(const float *x, int i0, int n, float amax);
float iop__quant_setup(float amax, int bits, iop__quant_k *k);
void iop__quant_range(const iop__quant_k *k, const float *x, int i0, int n, int32_t *q);

/* i-GELU (intops.c explains the erf domain and the bounds). */
#define IOP__GELU_C_BITS 28
#define IOP__GELU_SHIFT 14

typedef struct iop__gelu_k {
    int64_t B, C;      /* clip point and 2^28, in erf units */
    uint64_t M, half;  /* u = (|q| M + half) >> R */
    int R, clip_all;   /* clip_all: one code step is past B */
} iop__gelu_k;

void iop__gelu_setup(float scale, iop__gelu_k *k, float *out_scale);
void iop__gelu_range(const iop__gelu_k *k, const int32_t *q, int i0, int n, int32_t *out);

/* i-softmax (exp in Q30 with ln2 == 2^SM_F units; see intops.c). */
#define IOP__SM_F 20
#define IOP__SM_Q 30
#define IOP__SM_ZCUT 32 /* z >= 32: (2^30 >> 32) rounds to 0 */

typedef struct iop__sm_k {
    uint64_t M, half, dcap; /* m = (d M + half) >> R for d = max - x < dcap */
    uint64_t K1, K2, rmask; /* the quadratic in Q30 */
    int R;
} iop__sm_k;

/* Pass 2's constants: p = ((e + ehalf) >> sh) * factor, rounded >> osh. */
typedef struct iop__sm_norm {
    uint64_t ehalf, factor;
    int sh, osh;
} iop__sm_norm;

void iop__sm_setup(float scale, iop__sm_k *k);
/* Pass 1 over [j0, n): p[j] = exp(x[j] - mx) in Q30; returns their sum. */
uint64_t iop__sm_exp_range(const iop__sm_k *k, int32_t mx, const int32_t *x, int j0, int n, int32_t *p);
void iop__sm_norm_setup(uint64_t sum, int out_bits, iop__sm_norm *k);
/* Pass 2 over [j0, n), in place. */
void iop__sm_norm_range(const iop__sm_norm *k, int32_t *p, int j0, int n);

/* LayerNorm (x centred as c = n x - sum; see intops.c). */
typedef struct iop__ln_k {
    int64_t sum; /* of the row's codes */
    int sh;      /* right shift of c (overflow bound) */
    int k;       /* N = round(c inv / 2^(32-k)) */
    int64_t inv;
} iop__ln_k;

/* Largest |n x[i] - sum| over [i0, n), at least cmax. */
uint64_t iop__ln_cmax_range(const int32_t *x, int n, int64_t sum, int i0, uint64_t cmax);
/* eps in code units (*ev) and the overflow shift for centred values up
 * to cmax. */
int iop__ln_shift(const iop_ln_params *p, uint64_t cmax, float scale, double *ev);
/* Sum over [i0, n) of the squared shifted centred values, plus var. */
uint64_t iop__ln_var_range(const int32_t *x, int n, const iop__ln_k *k, int i0, uint64_t var);
/* From the sum of squares (without eps) and ev: k->k and k->inv, and 1;
 * or 0 when the row is constant (then y = beta: iop__ln_out_range with
 * k->inv == 0 gives exactly that). */
int iop__ln_finish(iop__ln_k *k, uint64_t var, double ev);
/* y over [i0, n). */
void iop__ln_out_range(const iop_ln_params *p, const int32_t *x, const iop__ln_k *k, int i0, float *y);

/* The AVX2 set (intops_avx2.c; x86-64 only). */
extern const iops iop__avx2_ops;

/* round(v / 2^s), half away from zero, for s in [0, 62]. */
static inline int64_t iop__rshift_round(int64_t v, int s) {
    if (s <= 0) return v;
    uint64_t half = (uint64_t)1 << (s - 1);
    if (v >= 0) return (int64_t)(((uint64_t)v + half) >> s);
    return -(int64_t)(((uint64_t)(-(v + 1)) + 1 + half) >> s); /* |v| even for INT64_MIN */
}

#endif
