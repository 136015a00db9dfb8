#include "half.h"

#include <string.h>

static float f32_from_bits(uint32_t bits) {
    float v;
    memcpy(&v, &bits, sizeof(v));
    return v;
}

/* Pure bit shuffling; subnormal halves become normal floats. */
float half_to_f32(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000) << 16;
    uint32_t exp = (h >> 10) & 0x1F;
    uint32_t mant = h & 0x3FF;

    if (exp == 0x1F) /* inf, or NaN with its payload kept */
        return f32_from_bits(sign | 0x7F800000u | (mant << 13));
    if (exp != 0) /* normal: rebias the exponent from 15 to 127 */
        return f32_from_bits(sign | ((exp + 127 - 15) << 23) | (mant << 13));
    if (mant == 0) return f32_from_bits(sign); /* signed zero */

    /* Subnormal mant * 2^-24: shift until the implicit bit (bit 10) is set;
     * each shift halves the exponent, which starts at 2^-14. */
    int shifts = 0;
    while (!(mant & 0x400)) {
        mant <<= 1;
        shifts++;
    }
    uint32_t e32 = (uint32_t)(127 - 14 - shifts);
    return f32_from_bits(sign | (e32 << 23) | ((mant & 0x3FF) << 13));
}

uint16_t f32_to_half(float f) {
    uint32_t x;
    memcpy(&x, &f, sizeof(x));
    uint16_t sign = (uint16_t)((x >> 16) & 0x8000);
    uint32_t exp = (x >> 23) & 0xFF, mant = x & 0x7FFFFF;
    if (exp == 0xFF) return sign | 0x7C00 | (mant ? 0x200 : 0); /* inf / quiet NaN */
    int e = (int)exp - 127 + 15;
    if (e >= 31) return sign | 0x7C00; /* overflow */
    if (e <= 0) {
        /* Subnormal half (or zero): value = m * 2^-24 with m = full
         * mantissa shifted right; round to nearest even. */
        if (e < -10) return sign;
        uint32_t m = mant | 0x800000;
        int shift = 14 - e;
        uint32_t half = m >> shift, rem = m & ((1u << shift) - 1), mid = 1u << (shift - 1);
        if (rem > mid || (rem == mid && (half & 1))) half++;
        return sign | (uint16_t)half;
    }
    uint32_t half = ((uint32_t)e << 10) | (mant >> 13), rem = mant & 0x1FFF;
    /* A carry out of the mantissa correctly bumps the exponent (to inf at the top). */
    if (rem > 0x1000 || (rem == 0x1000 && (half & 1))) half++;
    return sign | (uint16_t)half;
}
