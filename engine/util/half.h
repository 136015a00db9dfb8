/* half.h - IEEE binary16 <-> binary32 conversions (portable bit code). */
#ifndef BCT_HALF_H
#define BCT_HALF_H

#include <stdint.h>

/* Exact: every half is representable as a float (subnormals included). */
float half_to_f32(uint16_t h);
/* Round to nearest even; overflow -> inf, NaN stays NaN. */
uint16_t f32_to_half(float f);

#endif
