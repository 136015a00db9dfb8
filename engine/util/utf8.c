/* utf8.c - strict UTF-8 validation (see utf8.h).
 *
 * Decodes each sequence and checks the code point rather than matching
 * byte ranges: the reason for a rejection then falls out directly.
 */
#include "utf8.h"

#include <stdio.h>

/* Checks the sequence at s[0] (n > 0 bytes left); if it is valid, *step
 * gets its length. */
static inline utf8_problem check_one(const uint8_t *s, size_t n,
                                     unsigned flags, size_t *step) {
    uint8_t c = s[0];
    if (c < 0x80) {
        if ((flags & UTF8_JSON) && c < 0x20 && c != '\t' && c != '\n' &&
            c != '\r')
            return UTF8_CONTROL;
        *step = 1;
        return UTF8_OK;
    }

    size_t need;
    uint32_t cp, min;
    if (c >= 0xC0 && c <= 0xDF) {
        need = 1, cp = c & 0x1F, min = 0x80;
    } else if (c >= 0xE0 && c <= 0xEF) {
        need = 2, cp = c & 0x0F, min = 0x800;
    } else if (c >= 0xF0 && c <= 0xF7) {
        need = 3, cp = c & 0x07, min = 0x10000;
    } else {
        return c < 0xC0 ? UTF8_STRAY : UTF8_BAD_LEAD;
    }
    if (n - 1 < need) return UTF8_CUT_OFF;
    for (size_t k = 1; k <= need; k++) {
        if ((s[k] & 0xC0) != 0x80) return UTF8_INCOMPLETE;
        cp = (cp << 6) | (s[k] & 0x3F);
    }
    if (cp < min) return UTF8_OVERLONG;
    if (cp >= 0xD800 && cp <= 0xDFFF) return UTF8_SURROGATE;
    if (cp > 0x10FFFF) return UTF8_TOO_BIG;
    *step = need + 1;
    return UTF8_OK;
}

size_t utf8_find_invalid(const uint8_t *s, size_t len, unsigned flags,
                         utf8_problem *why) {
    utf8_problem bad = UTF8_OK;
    size_t i = 0, step = 0;
    while (i < len &&
           (bad = check_one(s + i, len - i, flags, &step)) == UTF8_OK)
        i += step;
    if (why) *why = bad;
    return i;
}

const char *utf8_describe(utf8_problem why, const char *whole, char *buf,
                          size_t cap) {
    static const char *const phrase[] = {
        [UTF8_OK] = "valid UTF-8",
        [UTF8_CONTROL] = "a control character, which JSON does not allow",
        [UTF8_STRAY] = "a UTF-8 continuation byte without a lead byte",
        [UTF8_BAD_LEAD] = "not a UTF-8 lead byte",
        [UTF8_CUT_OFF] = "a UTF-8 sequence cut off by the end of the",
        [UTF8_INCOMPLETE] = "an incomplete UTF-8 sequence",
        [UTF8_OVERLONG] = "an overlong UTF-8 encoding",
        [UTF8_SURROGATE] = "a UTF-16 surrogate encoded as UTF-8",
        [UTF8_TOO_BIG] = "a code point above U+10FFFF",
    };
    if ((unsigned)why >= sizeof(phrase) / sizeof(phrase[0]))
        snprintf(buf, cap, "invalid UTF-8");
    else if (why == UTF8_CUT_OFF)
        snprintf(buf, cap, "%s %s", phrase[why], whole);
    else
        snprintf(buf, cap, "%s", phrase[why]);
    return buf;
}
