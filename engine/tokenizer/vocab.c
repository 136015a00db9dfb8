/* vocab.c - vocab.txt loader and token -> id hash table.
 *
 * Lines are split the way Python's text-mode open() does it (the reference
 * reads vocab.txt with open(path, encoding="utf-8")): universal newlines,
 * so "\n", "\r\n" and a lone "\r" each end a line, and a last line without
 * a terminator still counts.  All token texts live in one buffer; the hash
 * table (open addressing, linear probing, FNV-1a) maps text to the id of the
 * LAST line holding it, like the reference's dict.
 */
#include "vocab.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <utf8proc.h>

#define VOCAB_MAX_LINES 10000000

struct vocab {
    char *text;       /* token texts, each NUL-terminated in place */
    size_t *off;      /* start of token i in text */
    uint32_t *tlen;   /* byte length of token i */
    int32_t n;        /* number of ids */
    vocab_slot *slots; /* hash table, id -1 = empty */
    size_t mask;       /* table size - 1 (power of two) */
};

static uint32_t fnv1a(const char *s, size_t len) { return vocab_hash_more(VOCAB_HASH_SEED, s, len); }

void vocab_free(vocab *v) {
    if (!v) return;
    free(v->text);
    free(v->off);
    free(v->tlen);
    free(v->slots);
    free(v);
}

/* Builds the vocab from buf[0..len), taking ownership of buf (which must
 * have room for len + 1 bytes). */
static int vocab_build(char *buf, size_t len, vocab **out, bct_error *err) {
    *out = NULL;
    if (len == 0) {
        free(buf);
        return bct_fail(err, BCT_EFORMAT, "vocab is empty");
    }
    buf[len] = '\0';

    /* Count lines first so every array is allocated once. */
    size_t lines = 0;
    for (size_t i = 0; i < len; i++) {
        if (buf[i] == '\n' || (buf[i] == '\r' && (i + 1 == len || buf[i + 1] != '\n'))) lines++;
    }
    if (buf[len - 1] != '\n' && buf[len - 1] != '\r') lines++; /* unterminated last line */
    if (lines > VOCAB_MAX_LINES) {
        free(buf);
        return bct_fail(err, BCT_EFORMAT, "vocab has %zu lines, more than the limit of %d", lines,
                        VOCAB_MAX_LINES);
    }

    vocab *v = calloc(1, sizeof(*v));
    size_t tsize = 16;
    while (tsize < 2 * lines) tsize <<= 1; /* load factor <= 0.5 */
    if (v) {
        v->text = buf;
        v->off = malloc(lines * sizeof(*v->off));
        v->tlen = malloc(lines * sizeof(*v->tlen));
        v->slots = malloc(tsize * sizeof(*v->slots));
    } else {
        free(buf);
    }
    if (!v || !v->off || !v->tlen || !v->slots) {
        vocab_free(v);
        return bct_fail(err, BCT_ENOMEM, "out of memory loading a vocab of %zu lines", lines);
    }
    memset(v->slots, 0xff, tsize * sizeof(*v->slots));
    v->mask = tsize - 1;

    size_t start = 0;
    for (size_t i = 0; i <= len && (size_t)v->n < lines; i++) {
        if (i < len && buf[i] != '\n' && buf[i] != '\r') continue;
        size_t tl = i - start;
        /* The reference decodes the file as strict UTF-8. */
        utf8proc_int32_t cp;
        for (size_t p = start; p < i;) {
            utf8proc_ssize_t n =
                utf8proc_iterate((const utf8proc_uint8_t *)buf + p, (utf8proc_ssize_t)(i - p), &cp);
            if (n < 0) {
                int line = v->n + 1;
                vocab_free(v);
                return bct_fail(err, BCT_EFORMAT, "vocab line %d is not valid UTF-8 (byte offset %zu)", line,
                                p);
            }
            p += (size_t)n;
        }
        if (tl > UINT32_MAX) {
            int line = v->n + 1;
            vocab_free(v);
            return bct_fail(err, BCT_EFORMAT, "vocab line %d is too long", line);
        }
        int32_t id = v->n++;
        v->off[id] = start;
        v->tlen[id] = (uint32_t)tl;
        uint32_t h = fnv1a(buf + start, tl);
        size_t s = h & v->mask;
        while (v->slots[s].id >= 0) {
            int32_t o = v->slots[s].id;
            if (v->slots[s].hash == h && v->tlen[o] == tl && memcmp(buf + v->off[o], buf + start, tl) == 0)
                break; /* duplicate: the later line wins */
            s = (s + 1) & v->mask;
        }
        v->slots[s] = (vocab_slot){h, id};
        if (i < len && buf[i] == '\r' && i + 1 < len && buf[i + 1] == '\n') buf[i++] = '\0';
        buf[i] = '\0';
        start = i + 1;
    }
    *out = v;
    return BCT_OK;
}

static int too_large(const char *what, size_t len, bct_error *err) {
    return bct_fail(err, BCT_ERANGE, "vocab%s%s is %zu bytes, more than the limit of %u (VOCAB_MAX_BYTES)",
                    what ? " " : "", what ? what : "", len, VOCAB_MAX_BYTES);
}

int vocab_parse(const char *buf, size_t len, vocab **out, bct_error *err) {
    *out = NULL;
    if (len > VOCAB_MAX_BYTES) return too_large(NULL, len, err);
    char *copy = malloc(len + 1);
    if (!copy) return bct_fail(err, BCT_ENOMEM, "out of memory copying a vocab of %zu bytes", len);
    if (len) memcpy(copy, buf, len);
    return vocab_build(copy, len, out, err);
}

int vocab_load(const char *path, vocab **out, bct_error *err) {
    *out = NULL;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return bct_fail(err, BCT_EIO, "cannot open vocab %s: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        return bct_fail(err, BCT_EIO, "vocab %s is not a regular file", path);
    }
    size_t size = (size_t)st.st_size;
    if (size > VOCAB_MAX_BYTES) {
        close(fd);
        return too_large(path, size, err);
    }
    char *buf = malloc(size + 1);
    if (!buf) {
        close(fd);
        return bct_fail(err, BCT_ENOMEM, "out of memory reading vocab %s (%zu bytes)", path, size);
    }
    size_t got = 0;
    while (got < size) {
        ssize_t r = read(fd, buf + got, size - got);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) {
            int e = r < 0 ? errno : 0;
            free(buf);
            close(fd);
            return bct_fail(err, BCT_EIO, "cannot read vocab %s: %s", path,
                            e ? strerror(e) : "file shrank while reading");
        }
        got += (size_t)r;
    }
    close(fd);
    int rc = vocab_build(buf, size, out, err);
    if (rc != BCT_OK) return bct_fail_prefix(err, rc, "%s", path);
    return BCT_OK;
}

int32_t vocab_size(const vocab *v) { return v->n; }

int32_t vocab_find(const vocab *v, const char *s, size_t len) { return vocab_find_hashed(v, s, len, fnv1a(s, len)); }

int32_t vocab_find_hashed(const vocab *v, const char *s, size_t len, uint32_t h) {
    for (size_t i = h & v->mask;; i = (i + 1) & v->mask) {
        int32_t id = v->slots[i].id;
        if (id < 0) return -1;
        if (v->slots[i].hash == h && v->tlen[id] == len && memcmp(v->text + v->off[id], s, len) == 0) return id;
    }
}

const char *vocab_token(const vocab *v, int32_t id, size_t *len) {
    if (id < 0 || id >= v->n) return NULL;
    if (len) *len = v->tlen[id];
    return v->text + v->off[id];
}
