/* intops.h - integer-only non-linear ops (I-BERT style) for the quantized engine.
 *
 * Contract
 * --------
 * Every op takes a vector of integer codes that share ONE float scale
 * (x = q * scale).  The engine makes these codes right before the op with
 * iop_quantize_row() ("blockwise intermediate results").  Per element the
 * ops use only integer arithmetic (int32/int64 multiply, shift, add,
 * compare).  Floating point is used only for per-call or per-init
 * constants (multipliers, shift counts), and LayerNorm writes float output
 * with one multiply per element at the very end.
 *
 * The fp32 references (exact-erf GELU, expf softmax, two-pass LayerNorm)
 * stay in bert_forward.c.  The engine picks one or the other, so the error
 * of each integer op can be measured on its own.
 *
 * Overflow: every intermediate is bounded for the input ranges documented
 * at each function (no signed overflow for any int32 input; inputs outside
 * the documented precision range are clamped, never wrapped).  Rounding
 * is half away from zero everywhere (same rule as the weight quantizer).
 * All functions are reentrant, allocate nothing (except iop_ln_init) and
 * allow out == in (in place).
 *
 * Measured accuracy (tests/unit/test_intops.c prints the figures):
 *   i-GELU   max |err| vs exact GELU of the same codes ~ 0.0182 (I-BERT's
 *            polynomial itself; arithmetic adds < 1e-4).
 *   i-softmax max |p - prob| 7e-4 measured, <= ~1.4e-3 worst case
 *            (2nd-order exp, rel. err in [-3.3e-3, +2.2e-3]) plus the
 *            output rounding 2^-(out_bits+1).
 *   i-LayerNorm vs LN of the same codes: ~1e-6 (fixed point and the
 *            final float rounding); the input quantization dominates.
 */
#ifndef BCT_INTOPS_H
#define BCT_INTOPS_H

#include <stdint.h>

/* Largest |code| iop_gelu accepts; larger codes are clamped to it. */
#define IOP_GELU_MAX_CODE 65535
/* iop_softmax output precision range (out_bits is clamped to it). */
#define IOP_SOFTMAX_MIN_BITS 8
#define IOP_SOFTMAX_MAX_BITS 30
/* iop_ln_init limits: hidden size and |gamma|, |beta|. */
#define IOP_LN_MAX_N 8192
#define IOP_LN_MAX_PARAM 16777216.0f /* 2^24 */

/* Symmetric absmax quantization of n floats to signed `bits`-bit codes
 * (bits clamped to 2..24): scale = max|x| / (2^(bits-1) - 1), q = round(x /
 * scale) half away from zero, |q| <= 2^(bits-1) - 1.  Returns the scale;
 * an all-zero row gives scale 1 and codes 0.  The scale is never below
 * FLT_MIN, so |x - q*scale| <= scale/2 holds for every finite x.  x must
 * be finite. */
float iop_quantize_row(const float *x, int n, int bits, int32_t *q);

/* Exact floor(sqrt(v)) for every uint64 v (Newton iteration from a power
 * of two above the root; at most ~6 iterations for 64-bit v). */
uint64_t iop_isqrt64(uint64_t v);

/* GELU (erf form, HF "gelu") of x = q*scale with I-BERT's i-GELU:
 *   erf(u) ~ sgn(u) [a (min(|u|, -b) + b)^2 + 1],  a = -0.2888, b = -1.769,
 *   GELU(x) ~ x/2 (1 + erf(x/sqrt 2)).
 * The codes are first mapped (one int64 multiply + rounding shift, a dyadic
 * multiplier computed per call) onto a fixed erf domain in which the
 * polynomial constants are exact integers (1 == 2^28); the polynomial is
 * then shifted right by 14 bits (I-BERT's overflow trick) so that
 * out = q * (2^14 + sgn(q) erf_q14) fits int32.
 * Input: |q| <= IOP_GELU_MAX_CODE (65535, covers 16-bit codes), clamped
 * beyond; scale > 0 and finite.  Output: out[i] codes with
 * *out_scale = scale / 2^15, |out[i]| <= |q[i]| * 2^15 < 2^31. */
void iop_gelu(const int32_t *q, int n, float scale, int32_t *out, float *out_scale);

/* ReLU on codes; the scale is unchanged (exact). */
void iop_relu(const int32_t *q, int n, int32_t *out);

/* Softmax of x*scale over one row of n >= 1 codes (any int32 values;
 * n < 2^31) with I-BERT's i-exp:
 *   d = max - x (int64), mapped by a per-call dyadic multiplier to a fixed
 *   domain in which ln2 == 2^20; z = d >> 20, r = d & (2^20-1);
 *   exp(-r) ~ 0.35815147 r^2 - 0.96963238 r + 1 in Q30 (Horner), then >> z.
 *   Differences beyond 32 ln2 give 0 (that term is < 2^-31 of the max).
 *   Normalisation: one integer division per row (factor = 2^62 / sum).
 * The quadratic coefficient is nudged by 2.3e-5 (k2 = k1 - 1/2 in ln2
 * units) so that the polynomial gives exactly 1/2 at r = ln2: the result
 * is then continuous across ln2 steps and p is monotone in x.
 * Output: p[j] = round(prob_j * 2^out_bits), out_bits clamped to [8, 30];
 * sum(p) = 2^out_bits within about n/2.  Precision: |p/2^out_bits - prob|
 * <= ~1.4e-3 worst case, 7e-4 measured (polynomial: rel. err. per exp in
 * [-3.3e-3, +2.2e-3]) + 2^-(out_bits+1) + a few 2^-31 (fixed point).  scale <= 0 or NaN gives the uniform row;
 * p may alias x. */
void iop_softmax(const int32_t *x, int n, float scale, int32_t *p, int out_bits);

/* Integer LayerNorm (I-BERT style): centred values, variance as an int64
 * sum of squares, exact integer sqrt, fixed-point 1/std, fixed-point
 * gamma/beta; float only for the final one-multiply-per-element output.
 * Centring: c = n*x - sum(x) = n*(x - mean) exactly (the factor n cancels
 * in the normalisation).  I-BERT's rounded integer mean would cost up to
 * half a code unit: measured 4e-4 max error at 16-bit codes.
 * Overflow guard (I-BERT's right shift): c is shifted right (rounding) by
 * the smallest sh with n (max|c| >> sh)^2 <= 2^61, before squaring, so the
 * sum of squares stays <= 2^61 and |c| * (1/std) <= 2^62.  No shift (exact)
 * for 16-bit codes at n <= 768 (|c| < 2^25.6); with a shift the centred
 * values keep >= 2^-23 relative precision of the largest one (n <= 8192),
 * for ANY int32 input (|n x - sum| < 2^45), not only |x| <= 2^24.
 * eps: the codes' scale cancels out of (x - mean)/std, but eps does not:
 * eps in code units is eps/scale^2.  iop_layernorm_scaled() takes the
 * scale and adds the matching per-call constant n^3 eps/scale^2 (capped)
 * to the sum of squares, exactly like the fp32 op.  iop_layernorm() does
 * not know the scale and ignores eps, which changes the result by a
 * relative eps/(2 var) (1e-12/var for BERT: negligible).  A constant row
 * (zero variance) gives y = beta in both, never a division by zero. */
typedef struct iop_ln_params {
    int n;            /* hidden size */
    float eps;        /* as in the config; used by iop_layernorm_scaled */
    int frac;         /* fraction bits of the accumulator (30 + gamma bits) */
    float out_scale;  /* 2^-frac: the one float multiply per element */
    int32_t *gamma_q; /* round(gamma * sqrt(n) * 2^(frac-30)), |.| < 2^30 */
    int64_t *beta_q;  /* round(beta * 2^frac), |.| < 2^62 */
} iop_ln_params;

/* Precomputes gamma/beta in fixed point.  n in [1, IOP_LN_MAX_N]; gamma and
 * beta finite with |.| <= IOP_LN_MAX_PARAM; eps >= 0.  Returns BCT_OK,
 * BCT_EINVAL or BCT_ENOMEM (p is then zeroed and safe to free). */
int iop_ln_init(iop_ln_params *p, const float *gamma, const float *beta, int n, float eps);
void iop_ln_free(iop_ln_params *p);

/* y[i] = LayerNorm(x)[i] for p->n codes x sharing one scale (eps ignored,
 * see above).  y is float; x may be any int32 values. */
void iop_layernorm(const iop_ln_params *p, const int32_t *x, float *y);
/* Same, with the codes' scale so that eps is applied exactly
 * (scale <= 0 means unknown: eps ignored). */
void iop_layernorm_scaled(const iop_ln_params *p, const int32_t *x, float scale, float *y);

#endif
