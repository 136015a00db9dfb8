/* utf8.h - strict UTF-8 validation of untrusted text.
 *
 * Strict as in RFC 3629: no overlong forms, no UTF-16 surrogates, nothing
 * above U+10FFFF, no sequence cut off by the end of the buffer.  With
 * UTF8_JSON, raw control characters (illegal in JSON text, but accepted by
 * cJSON) are rejected too.  Pure function of its input, no allocation.
 */
#ifndef BCT_UTF8_H
#define BCT_UTF8_H

#include <stddef.h>
#include <stdint.h>

/* Flag for utf8_find_invalid(): also reject C0 controls except \t \n \r. */
#define UTF8_JSON 1u

/* Why the byte utf8_find_invalid() stopped at is invalid. */
typedef enum utf8_problem {
    UTF8_OK = 0,
    UTF8_CONTROL,    /* raw control character (UTF8_JSON only) */
    UTF8_STRAY,      /* continuation byte without a lead byte */
    UTF8_BAD_LEAD,   /* 0xF8..0xFF, never a lead byte */
    UTF8_CUT_OFF,    /* sequence cut off by the end of the buffer */
    UTF8_INCOMPLETE, /* lead byte not followed by enough continuations */
    UTF8_OVERLONG,
    UTF8_SURROGATE,
    UTF8_TOO_BIG, /* above U+10FFFF */
} utf8_problem;

/* Returns the offset of the first byte of s[0, len) that starts an invalid
 * sequence, or len when all of it is valid.  *why (if not NULL) gets the
 * reason, UTF8_OK when there is none. */
size_t utf8_find_invalid(const uint8_t *s, size_t len, unsigned flags,
                         utf8_problem *why);

/* The reason as a phrase for error messages ("an overlong UTF-8
 * encoding").  `whole` names the buffer for UTF8_CUT_OFF ("... cut off by
 * the end of the header").  Writes into buf (cap bytes) and returns it. */
const char *utf8_describe(utf8_problem why, const char *whole, char *buf,
                          size_t cap);

#endif
