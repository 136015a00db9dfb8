/* bct_file.c - the .bct container: validated reader, crash-safe streaming
 * writer, zlib helpers.  Format: docs/bct-format.md.
 *
 * Reader: everything is checked once, in validate_image(), before the
 * caller sees a blob; afterwards every blob range is known to lie inside
 * the blob region, so accessors never re-check.  The parsed header tree is
 * kept (blob names and "meta" point into it).
 *
 * Writer: blobs are written sequentially to a temp file while the blob
 * region CRC is updated; commit appends the header, pwrites the preamble
 * and renames.  The header text is run through the reader's own header
 * validator before it is written, so a committed file always reopens.
 */
#define _GNU_SOURCE /* mkostemp */
#include "bct_file.h"

#include "util/extent.h"
#include "util/json_util.h"
#include "util/le.h"
#include "util/mapped_file.h"
#include "util/name_index.h"
#include "util/utf8.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

/* A larger header is almost certainly not ours (the vocab and tensors live
 * in blobs; meta is config-sized). */
#define BCTF_MAX_HEADER_BYTES 100000000ull

/* Offsets and sizes are JSON numbers, exact only up to 2^53. */
#define BCTF_MAX_FILE_BYTES ((uint64_t)1 << 53)

/* Significant digits of numbers quoted in messages (17 round-trip any
 * double). */
#define DESCRIBE_DIGITS 17

/* Names are quoted in error messages; cap them so the rest still fits. */
#define NAME_FMT "%.200s"

/* zlib takes uInt lengths; feed it at most this much per call. */
#define ZCHUNK ((size_t)1 << 30)

/* Preamble field offsets. */
enum {
    OFF_MAGIC = 0,
    OFF_VERSION = 8,
    OFF_FLAGS = 12,
    OFF_HEADER_OFFSET = 16,
    OFF_HEADER_LEN = 24,
    OFF_FILE_LEN = 32,
    OFF_HEADER_CRC = 40,
    OFF_BLOB_CRC = 44,
    OFF_RESERVED = 48,
};

struct bctf_file {
    mapped_file map; /* bctf_open()'s mapping, zeroed for buffers */
    const uint8_t *base;
    size_t len;
    cJSON *root;
    const cJSON *meta;
    extent *blobs; /* sorted by name; names point into root */
    size_t nblobs;
};

static const json_header_words header_words = {
    .text = "text",
    .corrupt = "the file is corrupt",
    .object = "a JSON object with format, version, blobs and meta",
    .digits = DESCRIBE_DIGITS,
};

/* ------------------------------------------------------------------------ */
/* small helpers                                                            */
/* ------------------------------------------------------------------------ */

static uint32_t crc_update(uint32_t crc, const void *data, size_t n) {
    const Bytef *p = data;
    while (n > 0) {
        size_t k = n < ZCHUNK ? n : ZCHUNK;
        crc = (uint32_t)crc32(crc, p, (uInt)k);
        p += k;
        n -= k;
    }
    return crc;
}

static uint32_t crc_init(void) {
    return (uint32_t)crc32(0L, Z_NULL, 0);
}

/* Describes a JSON value for an error message. */
static void describe(const cJSON *item, char *buf, size_t cap) {
    json_describe(item, DESCRIBE_DIGITS, buf, cap);
}

/* ------------------------------------------------------------------------ */
/* header validation (shared by the reader and the writer's self-check)     */
/* ------------------------------------------------------------------------ */

typedef struct parsed_header {
    cJSON *root;
    const cJSON *meta;
    extent *blobs; /* sorted by name; names point into root */
    size_t nblobs;
} parsed_header;

static void free_parsed(parsed_header *h) {
    cJSON_Delete(h->root);
    free(h->blobs);
    memset(h, 0, sizeof(*h));
}

/* Fills e from one "blobs" entry; hoff is the header offset (the end of
 * the blob region). */
static int parse_blob(const cJSON *entry, uint64_t hoff, extent *e,
                      bct_error *err) {
    const char *name = entry->string;
    char what[64], ctx[256];
    snprintf(ctx, sizeof(ctx), "blob \"" NAME_FMT "\"", name);

    if (name[0] == '\0')
        return bct_fail(err, BCT_EFORMAT,
                        "a blob has an empty name; blob names must be "
                        "non-empty");
    if (!cJSON_IsObject(entry)) {
        describe(entry, what, sizeof(what));
        return bct_fail(err, BCT_EFORMAT,
                        "%s: entry is %s, expected {\"offset\": N, "
                        "\"size\": N}",
                        ctx, what);
    }
    static const char *const keys[2] = {"offset", "size"};
    const cJSON *f[2];
    int rc = json_pick_fields(entry, keys, f, 2, ctx, err);
    if (rc != BCT_OK) return rc;

    uint64_t v[2];
    for (int i = 0; i < 2; i++) {
        if (!f[i])
            return bct_fail(err, BCT_EFORMAT, "%s: missing \"%s\" field",
                            ctx, keys[i]);
        if (!json_to_u64(f[i], &v[i])) {
            describe(f[i], what, sizeof(what));
            return bct_fail(err, BCT_EFORMAT,
                            "%s: %s is %s; it must be a non-negative "
                            "integer (at most 2^53)",
                            ctx, keys[i], what);
        }
    }
    uint64_t off = v[0], size = v[1];
    if (off % BCTF_ALIGN != 0)
        return bct_fail(err, BCT_EFORMAT,
                        "%s: offset %" PRIu64 " is not a multiple of %u",
                        ctx, off, BCTF_ALIGN);
    /* Both are <= 2^53, so the sum cannot overflow. */
    if (off < BCTF_PREAMBLE_SIZE || off + size > hoff)
        return bct_fail(err, BCT_EFORMAT,
                        "%s: bytes [%" PRIu64 ", %" PRIu64 ") lie outside "
                        "the blob region [%u, %" PRIu64 ")",
                        ctx, off, off + size, BCTF_PREAMBLE_SIZE, hoff);
    e->name = name;
    e->offset = off;
    e->size = size;
    return BCT_OK;
}

/* Rejects a non-zero byte of base in [from, to) (none if base is NULL). */
static int check_padding(const uint8_t *base, uint64_t from, uint64_t to,
                         bct_error *err) {
    for (uint64_t k = from; base && k < to; k++) {
        if (base[k] != 0)
            return bct_fail(err, BCT_EFORMAT,
                            "padding byte at offset %" PRIu64 " is 0x%02x, "
                            "not zero (bytes outside every blob must be "
                            "zero)",
                            k, base[k]);
    }
    return BCT_OK;
}

/* Rejects shared byte ranges and (if base is not NULL) non-zero padding
 * outside every blob in [64, hoff).  The first problem in file order is
 * the one reported, so padding is checked up to the first overlap. */
static int check_layout(const parsed_header *h, const uint8_t *base,
                        uint64_t hoff, bct_error *err) {
    extent *order = malloc((h->nblobs ? h->nblobs : 1) * sizeof(*order));
    if (!order)
        return bct_fail(err, BCT_ENOMEM, "out of memory checking blobs");
    if (h->nblobs) memcpy(order, h->blobs, h->nblobs * sizeof(*order));
    extent_sort(order, h->nblobs);

    const extent *prev = NULL;
    const extent *bad = extent_first_overlap(order, h->nblobs, &prev);
    const extent *stop = bad ? bad : order + h->nblobs;
    uint64_t pos = BCTF_PREAMBLE_SIZE; /* end of the last owned byte */
    int rc = BCT_OK;
    for (const extent *e = order; e < stop && rc == BCT_OK; e++) {
        if (e->size == 0) continue; /* owns no bytes */
        rc = check_padding(base, pos, e->offset, err);
        pos = extent_end(e);
    }
    if (rc == BCT_OK && bad)
        rc = extent_overlap_fail(prev, bad, "blobs", err);
    else if (rc == BCT_OK)
        rc = check_padding(base, pos, hoff, err);
    free(order);
    return rc;
}

/* The header's structure, bounded before cJSON builds a tree (json_util.h):
 * bert-large's header has ~10k values in arrays of ~800 (one entry per
 * blob and per tensor), nested 6 deep; these limits leave room for models
 * 25 times as big and cap the tree at ~16 MB. */
static const json_budget header_budget = {1u << 18, 1 << 16, 16,
                                           "a model of 16k tensors needs less"};

/* Parses and validates header text (n bytes at file offset hoff) into h.
 * base, if not NULL, is the whole image (for the padding check). */
static int parse_header(const char *text, size_t n, uint64_t hoff,
                        uint32_t version, const uint8_t *base,
                        parsed_header *h, bct_error *err) {
    memset(h, 0, sizeof(*h));
    int rc = json_check_budget(text, n, hoff, &header_budget, err);
    if (rc != BCT_OK) return rc;
    rc = json_parse_header(text, n, hoff, &header_words, &h->root, err);
    if (rc != BCT_OK) return rc;

    char what[64];
    static const char *const keys[4] = {"format", "version", "blobs", "meta"};
    const cJSON *f[4];
    if ((rc = json_pick_fields(h->root, keys, f, 4, "header", err)) != BCT_OK)
        goto fail;
    for (int i = 0; i < 4; i++) {
        if (!f[i]) {
            rc = bct_fail(err, BCT_EFORMAT, "header: missing \"%s\" field",
                          keys[i]);
            goto fail;
        }
    }
    if (!cJSON_IsString(f[0]) || strcmp(f[0]->valuestring, "bct") != 0) {
        if (cJSON_IsString(f[0]))
            snprintf(what, sizeof(what), "\"%.40s\"", f[0]->valuestring);
        else describe(f[0], what, sizeof(what));
        rc = bct_fail(err, BCT_EFORMAT,
                      "header: format is %s, expected \"bct\"", what);
        goto fail;
    }
    uint64_t hv;
    if (!json_to_u64(f[1], &hv) || hv != version) {
        describe(f[1], what, sizeof(what));
        rc = bct_fail(err, BCT_EFORMAT,
                      "header: version is %s but the preamble says %" PRIu32,
                      what, version);
        goto fail;
    }
    const cJSON *blobs = f[2];
    if (!cJSON_IsObject(blobs)) {
        describe(blobs, what, sizeof(what));
        rc = bct_fail(err, BCT_EFORMAT,
                      "header: blobs is %s, expected an object mapping "
                      "names to {offset, size}",
                      what);
        goto fail;
    }
    if (!cJSON_IsObject(f[3])) {
        describe(f[3], what, sizeof(what));
        rc = bct_fail(err, BCT_EFORMAT,
                      "header: meta is %s, expected an object", what);
        goto fail;
    }
    h->meta = f[3];

    size_t count = 0;
    const cJSON *entry;
    cJSON_ArrayForEach(entry, blobs) count++;
    h->blobs = calloc(count ? count : 1, sizeof(*h->blobs));
    if (!h->blobs) {
        rc = bct_fail(err, BCT_ENOMEM, "out of memory for %zu blobs", count);
        goto fail;
    }
    cJSON_ArrayForEach(entry, blobs) {
        if ((rc = parse_blob(entry, hoff, &h->blobs[h->nblobs], err)) !=
            BCT_OK)
            goto fail;
        h->nblobs++;
    }
    const char *dup = name_index_sort(h->blobs, h->nblobs, sizeof(*h->blobs));
    if (dup) {
        rc = bct_fail(err, BCT_EFORMAT,
                      "blob \"" NAME_FMT "\" appears more than once in the "
                      "header",
                      dup);
        goto fail;
    }
    if ((rc = check_layout(h, base, hoff, err)) != BCT_OK) goto fail;
    return BCT_OK;

fail:
    free_parsed(h);
    return rc;
}

/* ------------------------------------------------------------------------ */
/* reader                                                                   */
/* ------------------------------------------------------------------------ */

static int validate_image(const uint8_t *buf, size_t len, parsed_header *h,
                          bct_error *err) {
    if (len >= 8 && memcmp(buf, BCTF_MAGIC, 8) != 0)
        return bct_fail(err, BCT_EFORMAT,
                        "not a .bct file: it does not start with \"%s\"",
                        BCTF_MAGIC);
    if (len < BCTF_PREAMBLE_SIZE)
        return bct_fail(err, BCT_EFORMAT,
                        "file is %zu bytes, too short for a .bct file (the "
                        "preamble alone is %u bytes); it is empty or "
                        "truncated",
                        len, BCTF_PREAMBLE_SIZE);

    uint32_t version = le_read32(buf + OFF_VERSION);
    if (version != BCTF_VERSION)
        return bct_fail(err, BCT_EUNSUPPORTED,
                        ".bct format version %" PRIu32 " is not supported "
                        "(this build reads version %u); a newer bct wrote it",
                        version, BCTF_VERSION);
    uint32_t flags = le_read32(buf + OFF_FLAGS);
    if (flags != 0)
        return bct_fail(err, BCT_EFORMAT,
                        "preamble flags are 0x%08" PRIx32 "; version 1 "
                        "defines no flags (must be 0)",
                        flags);
    for (size_t i = OFF_RESERVED; i < BCTF_PREAMBLE_SIZE; i++) {
        if (buf[i] != 0)
            return bct_fail(err, BCT_EFORMAT,
                            "reserved preamble byte %zu is 0x%02x, must be "
                            "zero",
                            i, buf[i]);
    }

    uint64_t file_len = le_read64(buf + OFF_FILE_LEN);
    if (file_len > len)
        return bct_fail(err, BCT_EFORMAT,
                        "truncated: header says %" PRIu64 " bytes, file has "
                        "%zu",
                        file_len, len);
    if (file_len < len)
        return bct_fail(err, BCT_EFORMAT,
                        "file has %zu bytes but its preamble says %" PRIu64
                        "; unexpected data at the end",
                        len, file_len);

    uint64_t hoff = le_read64(buf + OFF_HEADER_OFFSET);
    uint64_t hlen = le_read64(buf + OFF_HEADER_LEN);
    if (hoff < BCTF_PREAMBLE_SIZE || hoff > len)
        return bct_fail(err, BCT_EFORMAT,
                        "header offset %" PRIu64 " is outside [%u, %zu]; the "
                        "preamble is corrupt",
                        hoff, BCTF_PREAMBLE_SIZE, len);
    if (hlen != len - hoff)
        return bct_fail(err, BCT_EFORMAT,
                        "header [%" PRIu64 ", +%" PRIu64 ") does not end at "
                        "the end of the file (%zu bytes); the preamble is "
                        "corrupt",
                        hoff, hlen, len);
    if (hlen == 0)
        return bct_fail(err, BCT_EFORMAT,
                        "header length is 0; the file has no JSON header");
    if (hlen > BCTF_MAX_HEADER_BYTES)
        return bct_fail(err, BCT_EFORMAT,
                        "header length %" PRIu64 " is over the %llu-byte "
                        "limit",
                        hlen, BCTF_MAX_HEADER_BYTES);

    uint32_t want_hcrc = le_read32(buf + OFF_HEADER_CRC);
    uint32_t want_bcrc = le_read32(buf + OFF_BLOB_CRC);
    uint32_t bcrc = crc_update(crc_init(), buf + BCTF_PREAMBLE_SIZE,
                               (size_t)hoff - BCTF_PREAMBLE_SIZE);
    if (bcrc != want_bcrc)
        return bct_fail(err, BCT_EFORMAT,
                        "checksum mismatch: file is corrupt (blob region "
                        "[%u, %" PRIu64 ") has crc32 %08" PRIx32 ", preamble "
                        "says %08" PRIx32 ")",
                        BCTF_PREAMBLE_SIZE, hoff, bcrc, want_bcrc);
    uint32_t hcrc = crc_update(crc_init(), buf + hoff, (size_t)hlen);
    if (hcrc != want_hcrc)
        return bct_fail(err, BCT_EFORMAT,
                        "checksum mismatch: file is corrupt (header has "
                        "crc32 %08" PRIx32 ", preamble says %08" PRIx32 ")",
                        hcrc, want_hcrc);

    return parse_header((const char *)buf + hoff, (size_t)hlen, hoff,
                        version, buf, h, err);
}

int bctf_open_buffer(const void *buf, size_t len, bctf_file **out,
                     bct_error *err) {
    *out = NULL;
    if (!buf && len)
        return bct_fail(err, BCT_EINVAL, "bctf_open_buffer: NULL buffer");
    parsed_header h;
    int rc = validate_image(buf, len, &h, err);
    if (rc != BCT_OK) return rc;
    bctf_file *f = calloc(1, sizeof(*f));
    if (!f) {
        free_parsed(&h);
        return bct_fail(err, BCT_ENOMEM, "out of memory");
    }
    f->base = buf;
    f->len = len;
    f->root = h.root;
    f->meta = h.meta;
    f->blobs = h.blobs;
    f->nblobs = h.nblobs;
    *out = f;
    return BCT_OK;
}

int bctf_open(const char *path, bctf_file **out, bct_error *err) {
    *out = NULL;
    mapped_file map;
    int rc = mapped_file_open(path, &map, err);
    if (rc != BCT_OK) return rc;
    /* Short files are mapped too: the validator says what is wrong. */
    bctf_file *f = NULL;
    rc = bctf_open_buffer(map.data, map.len, &f, err);
    if (rc != BCT_OK) {
        mapped_file_close(&map);
        return bct_fail_prefix(err, rc, "%s", path);
    }
    f->map = map;
    *out = f;
    return BCT_OK;
}

void bctf_close(bctf_file *f) {
    if (!f) return;
    mapped_file_close(&f->map);
    cJSON_Delete(f->root);
    free(f->blobs);
    free(f);
}

const cJSON *bctf_meta(const bctf_file *f) {
    return f ? f->meta : NULL;
}

int bctf_blob(const bctf_file *f, const char *name, const void **data,
              size_t *size, bct_error *err) {
    if (!f || !name)
        return bct_fail(err, BCT_EINVAL, "bctf_blob: NULL argument");
    const extent *e =
        name_index_find(f->blobs, f->nblobs, sizeof(*f->blobs), name);
    if (!e)
        return bct_fail(err, BCT_EFORMAT, "missing blob \"" NAME_FMT "\"",
                        name);
    if (data) *data = f->base + e->offset;
    if (size) *size = (size_t)e->size;
    return BCT_OK;
}

size_t bctf_blob_count(const bctf_file *f) {
    return f ? f->nblobs : 0;
}

int bctf_blob_at(const bctf_file *f, size_t i, const char **name,
                 const void **data, size_t *size) {
    if (!f || i >= f->nblobs) return BCT_EINVAL;
    const extent *e = &f->blobs[i];
    if (name) *name = e->name;
    if (data) *data = f->base + e->offset;
    if (size) *size = (size_t)e->size;
    return BCT_OK;
}

size_t bctf_file_size(const bctf_file *f) {
    return f ? f->len : 0;
}

/* ------------------------------------------------------------------------ */
/* writer                                                                   */
/* ------------------------------------------------------------------------ */

struct bctf_writer {
    char *final_path;
    char *tmp_path;
    int fd;
    uint64_t pos;           /* bytes written so far = file size */
    uint32_t crc;           /* of [64, pos) */
    extent *blobs;          /* in write order; names malloc'd */
    size_t nblobs, cap;
    int open_blob; /* 1 between begin and end: blobs[nblobs-1] growing */
    int broken;    /* an I/O error happened; only abort/commit remain */
};

/* Writes all n bytes at offset off, or at the file position when off < 0. */
static int pwrite_all(int fd, const void *data, size_t n, off_t off,
                      const char *path, bct_error *err) {
    const uint8_t *p = data;
    while (n > 0) {
        ssize_t r = off < 0 ? write(fd, p, n) : pwrite(fd, p, n, off);
        if (r < 0) {
            if (errno == EINTR) continue;
            return bct_fail(err, BCT_EIO, "cannot write %s: %s", path,
                            strerror(errno));
        }
        if (r == 0)
            return bct_fail(err, BCT_EIO, "cannot write %s: no progress",
                            path);
        p += r;
        n -= (size_t)r;
        if (off >= 0) off += r;
    }
    return BCT_OK;
}

/* Writes blob-region bytes, updating pos and the CRC.  Any failure breaks
 * the writer (the file position is then unknown). */
static int region_write(bctf_writer *w, const void *data, size_t n,
                        bct_error *err) {
    if (n == 0) return BCT_OK;
    if ((uint64_t)n > BCTF_MAX_FILE_BYTES - w->pos) {
        w->broken = 1;
        return bct_fail(err, BCT_ERANGE,
                        "%s: file would exceed 2^53 bytes", w->tmp_path);
    }
    int rc = pwrite_all(w->fd, data, n, -1, w->tmp_path, err);
    if (rc != BCT_OK) {
        w->broken = 1;
        return rc;
    }
    w->crc = crc_update(w->crc, data, n);
    w->pos += n;
    return BCT_OK;
}

static int check_usable(const bctf_writer *w, const char *op, bct_error *err) {
    if (!w) return bct_fail(err, BCT_EINVAL, "%s: NULL writer", op);
    if (w->broken)
        return bct_fail(err, BCT_EIO,
                        "%s: an earlier write to %s failed; abort the "
                        "writer",
                        op, w->tmp_path);
    return BCT_OK;
}

static void free_writer(bctf_writer *w) {
    for (size_t i = 0; i < w->nblobs; i++) free((char *)w->blobs[i].name);
    free(w->blobs);
    free(w->tmp_path);
    free(w->final_path);
    free(w);
}

/* Closes (if open), unlinks the temp file and frees w. */
static void discard_writer(bctf_writer *w) {
    if (w->fd >= 0) close(w->fd);
    w->fd = -1;
    if (w->tmp_path) (void)unlink(w->tmp_path);
    free_writer(w);
}

int bctf_writer_open(const char *final_path, bctf_writer **out,
                     bct_error *err) {
    *out = NULL;
    if (!final_path || !final_path[0])
        return bct_fail(err, BCT_EINVAL, "bctf_writer_open: empty path");
    bctf_writer *w = calloc(1, sizeof(*w));
    if (!w) return bct_fail(err, BCT_ENOMEM, "out of memory");
    w->fd = -1;
    size_t n = strlen(final_path);
    w->final_path = strdup(final_path);
    w->tmp_path = malloc(n + sizeof(".tmp.XXXXXX"));
    if (!w->final_path || !w->tmp_path) {
        free_writer(w);
        return bct_fail(err, BCT_ENOMEM, "out of memory");
    }
    memcpy(w->tmp_path, final_path, n);
    memcpy(w->tmp_path + n, ".tmp.XXXXXX", sizeof(".tmp.XXXXXX"));

    w->fd = mkostemp(w->tmp_path, O_CLOEXEC);
    if (w->fd < 0) {
        int e = errno;
        int rc = bct_fail(err, BCT_EIO, "cannot create a temp file for %s: %s",
                          final_path, strerror(e));
        free(w->tmp_path);
        w->tmp_path = NULL; /* nothing to unlink */
        free_writer(w);
        return rc;
    }
    /* The lock tells bctf_remove_stale_temps() the file is in use; it goes
     * away with the process, so a crashed writer's file is removable. */
    int rc = BCT_OK;
    if (flock(w->fd, LOCK_EX | LOCK_NB) != 0)
        rc = bct_fail(err, BCT_EIO, "cannot lock %s: %s", w->tmp_path,
                      strerror(errno));
    else if (fchmod(w->fd, 0644) != 0)
        rc = bct_fail(err, BCT_EIO, "cannot chmod %s: %s", w->tmp_path,
                      strerror(errno));
    if (rc == BCT_OK) {
        uint8_t zero[BCTF_PREAMBLE_SIZE] = {0};
        rc = pwrite_all(w->fd, zero, sizeof(zero), -1, w->tmp_path, err);
    }
    if (rc != BCT_OK) {
        discard_writer(w);
        return rc;
    }
    w->pos = BCTF_PREAMBLE_SIZE;
    w->crc = crc_init();
    *out = w;
    return BCT_OK;
}

int bctf_writer_begin(bctf_writer *w, const char *name, bct_error *err) {
    int rc = check_usable(w, "bctf_writer_begin", err);
    if (rc != BCT_OK) return rc;
    if (!name || !name[0])
        return bct_fail(err, BCT_EINVAL, "blob names must be non-empty");
    if (w->open_blob)
        return bct_fail(err, BCT_EINVAL,
                        "cannot start blob \"" NAME_FMT "\": blob \""
                        NAME_FMT "\" is still open",
                        name, w->blobs[w->nblobs - 1].name);
    /* Control characters are fine in a name: JSON escapes them. */
    utf8_problem why;
    size_t n = strlen(name);
    size_t bad = utf8_find_invalid((const uint8_t *)name, n, 0, &why);
    if (bad < n) {
        char what[96];
        return bct_fail(err, BCT_EINVAL,
                        "blob name is not valid UTF-8: byte %zu is %s", bad,
                        utf8_describe(why, "text", what, sizeof(what)));
    }
    for (size_t i = 0; i < w->nblobs; i++) {
        if (strcmp(w->blobs[i].name, name) == 0)
            return bct_fail(err, BCT_EINVAL,
                            "blob \"" NAME_FMT "\" was already added", name);
    }
    if (w->nblobs == w->cap) {
        size_t cap = w->cap ? 2 * w->cap : 32;
        extent *b = realloc(w->blobs, cap * sizeof(*b));
        if (!b) return bct_fail(err, BCT_ENOMEM, "out of memory");
        w->blobs = b;
        w->cap = cap;
    }
    char *copy = strdup(name);
    if (!copy) return bct_fail(err, BCT_ENOMEM, "out of memory");

    static const uint8_t zero[BCTF_ALIGN];
    size_t pad = (size_t)((BCTF_ALIGN - w->pos % BCTF_ALIGN) % BCTF_ALIGN);
    if ((rc = region_write(w, zero, pad, err)) != BCT_OK) {
        free(copy);
        return rc;
    }
    w->blobs[w->nblobs++] = (extent){copy, w->pos, 0};
    w->open_blob = 1;
    return BCT_OK;
}

int bctf_writer_append(bctf_writer *w, const void *data, size_t size,
                       bct_error *err) {
    int rc = check_usable(w, "bctf_writer_append", err);
    if (rc != BCT_OK) return rc;
    if (!w->open_blob)
        return bct_fail(err, BCT_EINVAL,
                        "bctf_writer_append: no blob is open (call "
                        "bctf_writer_begin first)");
    if (!data && size)
        return bct_fail(err, BCT_EINVAL, "bctf_writer_append: NULL data");
    if ((rc = region_write(w, data, size, err)) != BCT_OK) return rc;
    w->blobs[w->nblobs - 1].size += size;
    return BCT_OK;
}

int bctf_writer_end(bctf_writer *w, bct_error *err) {
    int rc = check_usable(w, "bctf_writer_end", err);
    if (rc != BCT_OK) return rc;
    if (!w->open_blob)
        return bct_fail(err, BCT_EINVAL, "bctf_writer_end: no blob is open");
    w->open_blob = 0;
    return BCT_OK;
}

int bctf_writer_add(bctf_writer *w, const char *name, const void *data,
                    size_t size, bct_error *err) {
    if (w && !w->broken && !w->open_blob && !data && size)
        return bct_fail(err, BCT_EINVAL, "bctf_writer_add: NULL data");
    int rc = bctf_writer_begin(w, name, err);
    if (rc != BCT_OK) return rc;
    if ((rc = bctf_writer_append(w, data, size, err)) != BCT_OK) return rc;
    return bctf_writer_end(w, err);
}

/* Builds and self-checks the header text; *out is malloc'd. */
static int build_header(const bctf_writer *w, const cJSON *meta, char **out,
                        bct_error *err) {
    *out = NULL;
    if (meta && !cJSON_IsObject(meta)) {
        char what[64];
        describe(meta, what, sizeof(what));
        return bct_fail(err, BCT_EINVAL, "meta is %s, expected an object",
                        what);
    }
    cJSON *root = cJSON_CreateObject();
    cJSON *blobs = cJSON_CreateObject();
    cJSON *m = meta ? cJSON_Duplicate(meta, 1) : cJSON_CreateObject();
    int ok = root && blobs && m;
    if (ok) {
        ok = cJSON_AddStringToObject(root, "format", "bct") &&
             cJSON_AddNumberToObject(root, "version", BCTF_VERSION);
        cJSON_AddItemToObject(root, "blobs", blobs);
        blobs = NULL;
        cJSON_AddItemToObject(root, "meta", m);
        m = NULL;
    }
    for (size_t i = 0; ok && i < w->nblobs; i++) {
        cJSON *e = cJSON_CreateObject();
        ok = e && cJSON_AddNumberToObject(e, "offset",
                                          (double)w->blobs[i].offset) &&
             cJSON_AddNumberToObject(e, "size", (double)w->blobs[i].size);
        if (e)
            cJSON_AddItemToObject(cJSON_GetObjectItemCaseSensitive(root,
                                                                   "blobs"),
                                  w->blobs[i].name, e);
    }
    char *text = ok ? cJSON_PrintUnformatted(root) : NULL;
    cJSON_Delete(root);
    cJSON_Delete(blobs);
    cJSON_Delete(m);
    if (!text) return bct_fail(err, BCT_ENOMEM, "out of memory for header");

    /* The reader's own checks: catches meta a reader would refuse (invalid
     * UTF-8 in a string, nesting deeper than cJSON parses) before a file
     * nobody can open is written. */
    size_t n = strlen(text);
    if (n > BCTF_MAX_HEADER_BYTES) {
        free(text);
        return bct_fail(err, BCT_EINVAL,
                        "meta cannot be stored in a .bct header: the header "
                        "would be %zu bytes, over the %llu-byte limit (put "
                        "large data in a blob)",
                        n, BCTF_MAX_HEADER_BYTES);
    }
    parsed_header h;
    int rc = parse_header(text, n, w->pos, BCTF_VERSION, NULL, &h, err);
    if (rc != BCT_OK) {
        free(text);
        return bct_fail_prefix(err, rc == BCT_ENOMEM ? rc : BCT_EINVAL,
                               "meta cannot be stored in a .bct header");
    }
    free_parsed(&h);
    *out = text;
    return BCT_OK;
}

/* Opens and fsyncs the directory holding path. */
static int fsync_parent_dir(const char *path, bct_error *err) {
    const char *slash = strrchr(path, '/');
    char *dir;
    if (!slash) dir = strdup(".");
    else if (slash == path) dir = strdup("/");
    else dir = strndup(path, (size_t)(slash - path));
    if (!dir) return bct_fail(err, BCT_ENOMEM, "out of memory");
    int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    int rc = BCT_OK;
    if (dfd < 0) {
        rc = bct_fail(err, BCT_EIO, "cannot open directory %s: %s", dir,
                      strerror(errno));
    } else {
        if (fsync(dfd) != 0)
            rc = bct_fail(err, BCT_EIO, "cannot fsync directory %s: %s", dir,
                          strerror(errno));
        close(dfd);
    }
    free(dir);
    return rc;
}

int bctf_writer_commit(bctf_writer *w, const cJSON *meta, bct_error *err) {
    int rc = check_usable(w, "bctf_writer_commit", err);
    if (rc != BCT_OK) {
        if (w) discard_writer(w);
        return rc;
    }
    if (w->open_blob) {
        rc = bct_fail(err, BCT_EINVAL,
                      "cannot commit %s: blob \"" NAME_FMT "\" is still open",
                      w->final_path, w->blobs[w->nblobs - 1].name);
        discard_writer(w);
        return rc;
    }

    char *header = NULL;
    if ((rc = build_header(w, meta, &header, err)) != BCT_OK) {
        discard_writer(w);
        return rc;
    }
    size_t hlen = strlen(header);
    uint64_t hoff = w->pos;
    rc = pwrite_all(w->fd, header, hlen, -1, w->tmp_path, err);
    uint32_t hcrc = crc_update(crc_init(), header, hlen);
    free(header);

    if (rc == BCT_OK) {
        uint8_t pre[BCTF_PREAMBLE_SIZE] = {0};
        memcpy(pre + OFF_MAGIC, BCTF_MAGIC, 8);
        le_write32(pre + OFF_VERSION, BCTF_VERSION);
        le_write32(pre + OFF_FLAGS, 0);
        le_write64(pre + OFF_HEADER_OFFSET, hoff);
        le_write64(pre + OFF_HEADER_LEN, hlen);
        le_write64(pre + OFF_FILE_LEN, hoff + hlen);
        le_write32(pre + OFF_HEADER_CRC, hcrc);
        le_write32(pre + OFF_BLOB_CRC, w->crc);
        rc = pwrite_all(w->fd, pre, sizeof(pre), 0, w->tmp_path, err);
    }
    if (rc == BCT_OK && fsync(w->fd) != 0)
        rc = bct_fail(err, BCT_EIO, "cannot fsync %s: %s", w->tmp_path,
                      strerror(errno));
    if (rc == BCT_OK) {
        /* Linux releases the descriptor even when close() reports EINTR,
         * and the data is already on disk. */
        int c = close(w->fd);
        int e = errno;
        w->fd = -1;
        if (c != 0 && e != EINTR)
            rc = bct_fail(err, BCT_EIO, "cannot close %s: %s", w->tmp_path,
                          strerror(e));
    }
    if (rc == BCT_OK && rename(w->tmp_path, w->final_path) != 0)
        rc = bct_fail(err, BCT_EIO, "cannot rename %s to %s: %s",
                      w->tmp_path, w->final_path, strerror(errno));
    if (rc != BCT_OK) {
        discard_writer(w);
        return rc;
    }

    /* Renamed: the temp name is gone and must not be unlinked. */
    rc = fsync_parent_dir(w->final_path, err);
    if (rc != BCT_OK)
        bct_fail_prefix(err, rc, "%s was written but may not be durable",
                        w->final_path);
    free_writer(w);
    return rc;
}

void bctf_writer_abort(bctf_writer *w) {
    if (w) discard_writer(w);
}

/* "<anything>.bct.tmp.XXXXXX", XXXXXX being mkstemp's six characters. */
static int is_temp_name(const char *name) {
    static const char mid[] = ".bct.tmp.";
    size_t n = strlen(name), m = sizeof(mid) - 1;
    if (n < m + 6 + 1) return 0;
    if (memcmp(name + n - 6 - m, mid, m) != 0) return 0;
    for (size_t i = n - 6; i < n; i++) {
        char c = name[i];
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') ||
              (c >= 'A' && c <= 'Z')))
            return 0;
    }
    return 1;
}

int bctf_remove_stale_temps(const char *dir) {
    DIR *d = opendir(dir);
    if (!d) return BCT_EIO;
    int dfd = dirfd(d);
    int removed = 0, failed = 0;
    for (;;) {
        errno = 0;
        struct dirent *de = readdir(d);
        if (!de) {
            if (errno != 0) failed = 1;
            break;
        }
        if (!is_temp_name(de->d_name)) continue;
        int fd = openat(dfd, de->d_name,
                        O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
        if (fd < 0) {
            if (errno != ENOENT && errno != ELOOP) failed = 1;
            continue; /* vanished, or a symlink: not ours */
        }
        struct stat sb;
        if (fstat(fd, &sb) != 0) {
            failed = 1;
        } else if (S_ISREG(sb.st_mode)) {
            /* A live writer holds an exclusive flock. */
            if (flock(fd, LOCK_EX | LOCK_NB) == 0) {
                if (unlinkat(dfd, de->d_name, 0) == 0) removed++;
                else if (errno != ENOENT) failed = 1;
            } else if (errno != EWOULDBLOCK) {
                failed = 1;
            }
        }
        close(fd);
    }
    closedir(d);
    return failed ? BCT_EIO : removed;
}

/* ------------------------------------------------------------------------ */
/* zlib helpers                                                             */
/* ------------------------------------------------------------------------ */

/* zlib counts in uInt: hands it the next ZCHUNK bytes of input once it
 * has used up the last ones. */
static void feed_input(z_stream *zs, const uint8_t **src, size_t *left) {
    if (zs->avail_in || !*left) return;
    size_t k = *left < ZCHUNK ? *left : ZCHUNK;
    zs->next_in = (Bytef *)(uintptr_t)*src;
    zs->avail_in = (uInt)k;
    *src += k;
    *left -= k;
}

int bctf_deflate(const void *in, size_t n, void **out, size_t *out_n,
                 bct_error *err) {
    *out = NULL;
    *out_n = 0;
    if (!in && n) return bct_fail(err, BCT_EINVAL, "bctf_deflate: NULL input");
    z_stream zs;
    memset(&zs, 0, sizeof(zs));
    if (deflateInit(&zs, 9) != Z_OK)
        return bct_fail(err, BCT_ENOMEM, "cannot initialise zlib deflate");
    size_t cap = (size_t)deflateBound(&zs, (uLong)n);
    uint8_t *buf = malloc(cap ? cap : 1);
    if (!buf) {
        deflateEnd(&zs);
        return bct_fail(err, BCT_ENOMEM, "out of memory compressing %zu bytes",
                        n);
    }
    const uint8_t *src = in;
    size_t in_left = n, done = 0;
    int zrc;
    do {
        feed_input(&zs, &src, &in_left);
        if (zs.avail_out == 0) {
            size_t k = cap - done < ZCHUNK ? cap - done : ZCHUNK;
            zs.next_out = buf + done;
            zs.avail_out = (uInt)k;
        }
        size_t before = zs.avail_out;
        zrc = deflate(&zs, in_left || zs.avail_in ? Z_NO_FLUSH : Z_FINISH);
        done += before - zs.avail_out;
        /* deflateBound() guarantees the output fits, so running out of
         * room is a zlib contract violation (and would loop forever). */
        if (zrc == Z_STREAM_ERROR ||
            (zrc != Z_STREAM_END && done == cap)) {
            deflateEnd(&zs);
            free(buf);
            return bct_fail(err, BCT_EIO, "zlib deflate failed");
        }
    } while (zrc != Z_STREAM_END);
    deflateEnd(&zs);
    *out = buf;
    *out_n = done;
    return BCT_OK;
}

int bctf_inflate(const void *in, size_t n, size_t expected_n, void **out,
                 bct_error *err) {
    *out = NULL;
    if (!in && n) return bct_fail(err, BCT_EINVAL, "bctf_inflate: NULL input");
    if (expected_n == SIZE_MAX)
        return bct_fail(err, BCT_ERANGE, "expected size is too large");
    uint8_t *buf = malloc(expected_n + 1);
    if (!buf)
        return bct_fail(err, BCT_ENOMEM,
                        "out of memory for %zu decompressed bytes",
                        expected_n);
    z_stream zs;
    memset(&zs, 0, sizeof(zs));
    if (inflateInit(&zs) != Z_OK) {
        free(buf);
        return bct_fail(err, BCT_ENOMEM, "cannot initialise zlib inflate");
    }
    const uint8_t *src = in;
    size_t in_left = n, done = 0;
    uint8_t probe; /* a 1-byte window once buf is full, to detect excess */
    int zrc = Z_OK, rc = BCT_OK;
    for (;;) {
        feed_input(&zs, &src, &in_left);
        int full = done == expected_n;
        size_t room;
        if (full) {
            zs.next_out = &probe;
            room = 1;
        } else {
            room = expected_n - done < ZCHUNK ? expected_n - done : ZCHUNK;
            zs.next_out = buf + done;
        }
        zs.avail_out = (uInt)room;
        uInt avail_in_before = zs.avail_in;
        zrc = inflate(&zs, Z_NO_FLUSH);
        size_t produced = room - zs.avail_out;
        if (full && produced) {
            rc = bct_fail(err, BCT_EFORMAT,
                          "compressed data expands to more than the "
                          "expected %zu bytes",
                          expected_n);
            break;
        }
        done += produced;
        if (zrc == Z_STREAM_END) break;
        if (zrc == Z_NEED_DICT || zrc == Z_DATA_ERROR) {
            rc = bct_fail(err, BCT_EFORMAT,
                          "compressed data is corrupt (%s)",
                          zs.msg ? zs.msg : "invalid zlib stream");
            break;
        }
        if (zrc == Z_MEM_ERROR) {
            rc = bct_fail(err, BCT_ENOMEM, "out of memory in zlib inflate");
            break;
        }
        /* No progress at all: with nothing left to feed, the stream is
         * cut short; otherwise zlib is stuck (never loop forever). */
        if (produced == 0 && zs.avail_in == avail_in_before) {
            if (zs.avail_in == 0 && in_left == 0)
                rc = bct_fail(err, BCT_EFORMAT,
                              "compressed data is truncated (%zu of %zu "
                              "bytes decompressed)",
                              done, expected_n);
            else
                rc = bct_fail(err, BCT_EFORMAT,
                              "compressed data is corrupt (zlib made no "
                              "progress)");
            break;
        }
        if (zrc != Z_OK && zrc != Z_BUF_ERROR) {
            rc = bct_fail(err, BCT_EFORMAT,
                          "zlib inflate failed (code %d)", zrc);
            break;
        }
    }
    if (rc == BCT_OK && done != expected_n)
        rc = bct_fail(err, BCT_EFORMAT,
                      "compressed data expands to %zu bytes, expected %zu",
                      done, expected_n);
    if (rc == BCT_OK && (zs.avail_in || in_left))
        rc = bct_fail(err, BCT_EFORMAT,
                      "compressed data has %zu unexpected bytes after the "
                      "end of the stream",
                      (size_t)zs.avail_in + in_left);
    inflateEnd(&zs);
    if (rc != BCT_OK) {
        free(buf);
        return rc;
    }
    buf[expected_n] = 0;
    *out = buf;
    return BCT_OK;
}
