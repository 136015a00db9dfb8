#include "sbuf.h"

#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void sbuf_init(sbuf *b) { memset(b, 0, sizeof(*b)); }

void sbuf_free(sbuf *b) {
    free(b->data);
    sbuf_init(b);
}

static int grow(sbuf *b, size_t extra) {
    if (b->oom) return -1;
    if (b->len + extra + 1 <= b->cap) return 0;
    size_t cap = b->cap ? b->cap : 256;
    while (cap < b->len + extra + 1) {
        if (cap > SIZE_MAX / 2) {
            b->oom = 1;
            return -1;
        }
        cap *= 2;
    }
    char *p = realloc(b->data, cap);
    if (!p) {
        b->oom = 1;
        return -1;
    }
    b->data = p;
    b->cap = cap;
    return 0;
}

void sbuf_put(sbuf *b, const char *s, size_t n) {
    if (grow(b, n)) return;
    memcpy(b->data + b->len, s, n);
    b->len += n;
    b->data[b->len] = '\0';
}

void sbuf_puts(sbuf *b, const char *s) { sbuf_put(b, s, strlen(s)); }

void sbuf_putc(sbuf *b, char c) { sbuf_put(b, &c, 1); }

void sbuf_printf(sbuf *b, const char *fmt, ...) {
    va_list ap;
    char small[256];
    va_start(ap, fmt);
    int n = vsnprintf(small, sizeof(small), fmt, ap);
    va_end(ap);
    if (n < 0) return;
    if ((size_t)n < sizeof(small)) {
        sbuf_put(b, small, (size_t)n);
        return;
    }
    if (grow(b, (size_t)n)) return;
    va_start(ap, fmt);
    vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
}

/* Length of the valid UTF-8 sequence at s (at most n bytes), or 0. */
static size_t utf8_seq(const unsigned char *s, size_t n) {
    unsigned c = s[0];
    size_t len;
    unsigned min;
    if (c < 0x80) return 1;
    if (c >= 0xC2 && c <= 0xDF) len = 2, min = 0x80;
    else if (c >= 0xE0 && c <= 0xEF) len = 3, min = 0x800;
    else if (c >= 0xF0 && c <= 0xF4) len = 4, min = 0x10000;
    else return 0;
    if (n < len) return 0;
    unsigned cp = c & (0xFF >> (len + 1));
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xC0) != 0x80) return 0;
        cp = (cp << 6) | (s[i] & 0x3F);
    }
    if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return 0;
    return len;
}

void sbuf_json_str(sbuf *b, const char *s, size_t n) {
    const unsigned char *p = (const unsigned char *)s;
    sbuf_putc(b, '"');
    size_t run = 0; /* bytes that need no escaping, copied in one go */
    for (size_t i = 0; i < n;) {
        unsigned c = p[i];
        if (c >= 0x20 && c < 0x80 && c != '"' && c != '\\') {
            run++;
            i++;
            continue;
        }
        size_t seq = c >= 0x80 ? utf8_seq(p + i, n - i) : 0;
        if (seq) {
            run += seq;
            i += seq;
            continue;
        }
        sbuf_put(b, (const char *)p + i - run, run);
        run = 0;
        switch (c) {
        case '"': sbuf_puts(b, "\\\""); break;
        case '\\': sbuf_puts(b, "\\\\"); break;
        case '\n': sbuf_puts(b, "\\n"); break;
        case '\r': sbuf_puts(b, "\\r"); break;
        case '\t': sbuf_puts(b, "\\t"); break;
        default:
            if (c < 0x20) sbuf_printf(b, "\\u%04x", c);
            else sbuf_puts(b, "\\ufffd"); /* invalid UTF-8 byte */
        }
        i++;
    }
    sbuf_put(b, (const char *)p + n - run, run);
    sbuf_putc(b, '"');
}

void sbuf_json_float(sbuf *b, float v) {
    if (!isfinite(v)) sbuf_puts(b, "null");
    else sbuf_printf(b, "%.9g", (double)v);
}

char *sbuf_take(sbuf *b, size_t *len) {
    char *d = b->oom ? NULL : b->data;
    if (b->oom) free(b->data);
    else if (!d) d = calloc(1, 1);
    if (len) *len = d ? b->len : 0;
    sbuf_init(b);
    return d;
}
