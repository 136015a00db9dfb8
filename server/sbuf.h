/* sbuf.h - a growable byte buffer for building response bodies and log
 * lines, with JSON string escaping.
 *
 * Appends never fail visibly: on allocation failure the buffer sets `oom`
 * and ignores further appends; sbuf_take() then returns NULL.  Check once
 * at the end instead of after every append.
 */
#ifndef BCT_SBUF_H
#define BCT_SBUF_H

#include <stddef.h>

typedef struct sbuf {
    char *data; /* NUL-terminated when not NULL */
    size_t len, cap;
    int oom;
} sbuf;

void sbuf_init(sbuf *b);
void sbuf_free(sbuf *b);
void sbuf_put(sbuf *b, const char *s, size_t n);
void sbuf_puts(sbuf *b, const char *s);
void sbuf_putc(sbuf *b, char c);
void sbuf_printf(sbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Appends s[0..n) as a quoted JSON string.  Control characters are
 * escaped; bytes that are not valid UTF-8 become U+FFFD, so the output is
 * valid JSON whatever the input. */
void sbuf_json_str(sbuf *b, const char *s, size_t n);

/* A float as a JSON number ("%.9g" round-trips a float); NaN and
 * infinities, which JSON cannot hold, become null. */
void sbuf_json_float(sbuf *b, float v);

/* Detaches the malloc'ed contents (caller frees); NULL after oom.  The
 * buffer is left empty. */
char *sbuf_take(sbuf *b, size_t *len);

#endif
