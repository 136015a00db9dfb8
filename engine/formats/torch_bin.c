/* torch_bin.c - PyTorch zip checkpoints as an st_file (torch_bin.h).
 *
 * The zip reader knows only what torch.save writes: one disk, stored
 * entries, sizes from the central directory (torch's local headers leave
 * them zero and append a data descriptor), ZIP64 records when the archive
 * is large.  Layouts from APPNOTE.TXT (PKWARE), section 4.3.
 */
#include "torch_bin.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "pickle.h"
#include "util/extent.h"
#include "util/le.h"
#include "util/mapped_file.h"
#include "util/name_index.h"

/* Record sizes and signatures (APPNOTE 4.3.7, 4.3.12, 4.3.14-16). */
#define ZIP_LOCAL_SIG 0x04034b50u
#define ZIP_LOCAL_LEN 30u
#define ZIP_CENTRAL_SIG 0x02014b50u
#define ZIP_CENTRAL_LEN 46u
#define ZIP_EOCD_SIG 0x06054b50u
#define ZIP_EOCD_LEN 22u
#define ZIP_EOCD_MAX_COMMENT 0xffffu
#define ZIP64_LOCATOR_SIG 0x07064b50u
#define ZIP64_LOCATOR_LEN 20u
#define ZIP64_EOCD_SIG 0x06064b50u
#define ZIP64_EOCD_LEN 56u
#define ZIP64_EXTRA_ID 0x0001u
#define ZIP_FLAG_ENCRYPTED 0x0001u
#define ZIP_METHOD_STORED 0u

/* An archive with more entries than this is not a checkpoint (BERT-large
 * has ~400 storages). */
#define ZIP_MAX_ENTRIES (1u << 20)

/* Names are quoted in error messages; cap them so the rest still fits. */
#define NAME_FMT "%.200s"

/* Legacy (torch < 1.6) files start with a protocol-2 pickle of a LONG1
 * magic number. */
static const uint8_t legacy_head[3] = {0x80, 0x02, 0x8a};

typedef struct zip_entry {
    const char *name; /* malloc'd; first, for name_index.h */
    uint64_t header;  /* local header offset */
    uint64_t data;    /* data offset */
    uint64_t size;
    uint32_t crc;
} zip_entry;

_Static_assert(offsetof(zip_entry, name) == 0, "name_index.h needs name first");

typedef struct zip {
    zip_entry *e; /* sorted by name */
    size_t n;
} zip;

static void zip_free(zip *z) {
    for (size_t i = 0; i < z->n; i++) free((char *)z->e[i].name);
    free(z->e);
    z->e = NULL;
    z->n = 0;
}

int torch_bin_sniff(const void *head, size_t n) {
    const uint8_t *p = head;
    return (n >= 4 && le_read32(p) == ZIP_LOCAL_SIG) ||
           (n >= sizeof(legacy_head) && !memcmp(p, legacy_head, sizeof(legacy_head)));
}

/* Finds the end-of-central-directory record: the last one whose comment
 * reaches exactly the end of the file. */
static int find_eocd(const uint8_t *buf, size_t len, size_t *at,
                     bct_error *err) {
    if (len >= sizeof(legacy_head) && !memcmp(buf, legacy_head, sizeof(legacy_head)))
        return bct_fail(err, BCT_EUNSUPPORTED,
                        "this is a legacy (PyTorch < 1.6) checkpoint; only "
                        "the zip format torch.save writes since 1.6 is "
                        "supported (load and re-save it, or convert it to "
                        "safetensors)");
    if (len < ZIP_EOCD_LEN)
        return bct_fail(err, BCT_EFORMAT,
                        "file is %zu bytes, too short for a zip archive "
                        "(truncated?)",
                        len);
    size_t lo = len - ZIP_EOCD_LEN > ZIP_EOCD_MAX_COMMENT
                    ? len - ZIP_EOCD_LEN - ZIP_EOCD_MAX_COMMENT
                    : 0;
    for (size_t p = len - ZIP_EOCD_LEN + 1; p-- > lo;) {
        if (le_read32(buf + p) == ZIP_EOCD_SIG &&
            p + ZIP_EOCD_LEN + le_read16(buf + p + 20) == len) {
            *at = p;
            return BCT_OK;
        }
    }
    return bct_fail(err, BCT_EFORMAT,
                    "no zip end-of-central-directory record at the end of "
                    "the file (truncated, or not a torch.save checkpoint)");
}

/* Central directory position, size and entry count, from the EOCD and,
 * when present, the ZIP64 records before it. */
static int read_directory_end(const uint8_t *buf, size_t len, uint64_t *cd_off,
                              uint64_t *cd_size, uint64_t *count,
                              uint64_t *cd_limit, bct_error *err) {
    size_t eocd = 0;
    int rc = find_eocd(buf, len, &eocd, err);
    if (rc != BCT_OK) return rc;
    const uint8_t *e = buf + eocd;
    if (le_read16(e + 4) || le_read16(e + 6))
        return bct_fail(err, BCT_EUNSUPPORTED,
                        "multi-disk zip archives are not supported");
    *count = le_read16(e + 10);
    *cd_size = le_read32(e + 12);
    *cd_off = le_read32(e + 16);
    *cd_limit = eocd;
    if (le_read16(e + 8) != *count)
        return bct_fail(err, BCT_EFORMAT,
                        "zip end record counts %u entries on this disk but "
                        "%" PRIu64 " in all",
                        le_read16(e + 8), *count);

    if (eocd < ZIP64_LOCATOR_LEN ||
        le_read32(e - ZIP64_LOCATOR_LEN) != ZIP64_LOCATOR_SIG)
        return BCT_OK;
    const uint8_t *loc = e - ZIP64_LOCATOR_LEN;
    uint64_t z64 = le_read64(loc + 8);
    if (le_read32(loc + 4) || le_read32(loc + 16) > 1)
        return bct_fail(err, BCT_EUNSUPPORTED,
                        "multi-disk zip archives are not supported");
    uint64_t z64_limit = eocd - ZIP64_LOCATOR_LEN;
    if (z64 > z64_limit || z64_limit - z64 < ZIP64_EOCD_LEN ||
        le_read32(buf + z64) != ZIP64_EOCD_SIG)
        return bct_fail(err, BCT_EFORMAT,
                        "ZIP64 locator points to offset %" PRIu64 ", where "
                        "there is no ZIP64 end record",
                        z64);
    const uint8_t *r = buf + z64;
    if (le_read32(r + 16) || le_read32(r + 20))
        return bct_fail(err, BCT_EUNSUPPORTED,
                        "multi-disk zip archives are not supported");
    if (le_read64(r + 24) != le_read64(r + 32))
        return bct_fail(err, BCT_EFORMAT,
                        "ZIP64 end record: entry counts disagree");
    *count = le_read64(r + 32);
    *cd_size = le_read64(r + 40);
    *cd_off = le_read64(r + 48);
    *cd_limit = z64;
    return BCT_OK;
}

/* Replaces 0xffffffff sizes and offset with the ZIP64 extra field's. */
static int read_zip64_extra(const uint8_t *x, size_t xlen, uint64_t *usize,
                            uint64_t *csize, uint64_t *off, const char *name,
                            bct_error *err) {
    while (xlen >= 4) {
        unsigned id = le_read16(x), n = le_read16(x + 2);
        if (n > xlen - 4)
            return bct_fail(err, BCT_EFORMAT,
                            "zip entry \"" NAME_FMT "\": extra field runs "
                            "past its header",
                            name);
        if (id == ZIP64_EXTRA_ID) {
            uint64_t *fields[3] = {usize, csize, off};
            const uint8_t *p = x + 4;
            unsigned left = n;
            for (int i = 0; i < 3; i++) {
                if (*fields[i] != 0xffffffffu) continue;
                if (left < 8)
                    return bct_fail(err, BCT_EFORMAT,
                                    "zip entry \"" NAME_FMT "\": ZIP64 extra "
                                    "field is too short",
                                    name);
                *fields[i] = le_read64(p);
                p += 8;
                left -= 8;
            }
        }
        x += 4 + n;
        xlen -= 4 + n;
    }
    return BCT_OK;
}

/* One central directory record at buf[*pos]; advances *pos. */
static int read_entry(const uint8_t *buf, uint64_t *pos,
                      uint64_t cd_end, uint64_t cd_off, zip_entry *out,
                      bct_error *err) {
    uint64_t p = *pos;
    if (cd_end - p < ZIP_CENTRAL_LEN || le_read32(buf + p) != ZIP_CENTRAL_SIG)
        return bct_fail(err, BCT_EFORMAT,
                        "zip central directory is corrupt at offset %" PRIu64,
                        p);
    const uint8_t *c = buf + p;
    unsigned flags = le_read16(c + 8), method = le_read16(c + 10);
    uint64_t csize = le_read32(c + 20), usize = le_read32(c + 24);
    size_t nlen = le_read16(c + 28), xlen = le_read16(c + 30),
           clen = le_read16(c + 32);
    uint64_t hdr = le_read32(c + 42);
    if (cd_end - p - ZIP_CENTRAL_LEN < (uint64_t)nlen + xlen + clen)
        return bct_fail(err, BCT_EFORMAT,
                        "zip central directory record at offset %" PRIu64
                        " runs past the directory",
                        p);
    const uint8_t *name = c + ZIP_CENTRAL_LEN;
    if (memchr(name, '\0', nlen))
        return bct_fail(err, BCT_EFORMAT,
                        "zip entry name at offset %" PRIu64 " contains a "
                        "NUL byte",
                        p);
    char *copy = malloc(nlen + 1);
    if (!copy) return bct_fail(err, BCT_ENOMEM, "out of memory");
    memcpy(copy, name, nlen);
    copy[nlen] = '\0';
    out->name = copy; /* freed by zip_free() from here on */
    *pos = p + ZIP_CENTRAL_LEN + nlen + xlen + clen;

    int rc = read_zip64_extra(name + nlen, xlen, &usize, &csize, &hdr, copy,
                              err);
    if (rc != BCT_OK) return rc;
    if (flags & ZIP_FLAG_ENCRYPTED)
        return bct_fail(err, BCT_EUNSUPPORTED,
                        "zip entry \"" NAME_FMT "\" is encrypted", copy);
    if (method != ZIP_METHOD_STORED)
        return bct_fail(err, BCT_EUNSUPPORTED,
                        "zip entry \"" NAME_FMT "\" is compressed (method "
                        "%u); torch.save stores entries uncompressed, so "
                        "re-save the checkpoint with torch.save",
                        copy, method);
    if (csize != usize)
        return bct_fail(err, BCT_EFORMAT,
                        "zip entry \"" NAME_FMT "\" is stored but its sizes "
                        "differ (%" PRIu64 " vs %" PRIu64 ")",
                        copy, csize, usize);

    /* The local header: only its name and extra lengths are used (torch
     * writes zero sizes there and a data descriptor after the data). */
    if (hdr > cd_off || cd_off - hdr < ZIP_LOCAL_LEN ||
        le_read32(buf + hdr) != ZIP_LOCAL_SIG)
        return bct_fail(err, BCT_EFORMAT,
                        "zip entry \"" NAME_FMT "\": no local header at "
                        "offset %" PRIu64 " (the file is truncated or the "
                        "offset is wrong)",
                        copy, hdr);
    const uint8_t *l = buf + hdr;
    size_t lnlen = le_read16(l + 26), lxlen = le_read16(l + 28);
    uint64_t data = hdr + ZIP_LOCAL_LEN + lnlen + lxlen;
    if (lnlen != nlen || data > cd_off ||
        memcmp(l + ZIP_LOCAL_LEN, name, nlen))
        return bct_fail(err, BCT_EFORMAT,
                        "zip entry \"" NAME_FMT "\": its local header at "
                        "offset %" PRIu64 " does not match the central "
                        "directory",
                        copy, hdr);
    if (usize > cd_off - data)
        return bct_fail(err, BCT_EFORMAT,
                        "zip entry \"" NAME_FMT "\": %" PRIu64 " bytes at "
                        "offset %" PRIu64 " run past the entries' area "
                        "(%" PRIu64 " bytes; the sizes are wrong or the "
                        "file is truncated)",
                        copy, usize, data, cd_off);
    out->header = hdr;
    out->data = data;
    out->size = usize;
    out->crc = le_read32(c + 16);
    return BCT_OK;
}

/* Rejects entries that share bytes (local header through data). */
static int check_overlaps(const zip *z, bct_error *err) {
    extent *x = malloc((z->n ? z->n : 1) * sizeof(*x));
    if (!x) return bct_fail(err, BCT_ENOMEM, "out of memory");
    for (size_t i = 0; i < z->n; i++)
        x[i] = (extent){z->e[i].name, z->e[i].header,
                        z->e[i].data + z->e[i].size - z->e[i].header};
    extent_sort(x, z->n);
    const extent *prev = NULL, *cur = extent_first_overlap(x, z->n, &prev);
    int rc = BCT_OK;
    if (cur)
        rc = extent_overlap_fail(prev, cur, "zip entries", err);
    free(x);
    return rc;
}

static int zip_open(const uint8_t *buf, size_t len, zip *z, bct_error *err) {
    uint64_t cd_off = 0, cd_size = 0, count = 0, cd_limit = 0;
    int rc = read_directory_end(buf, len, &cd_off, &cd_size, &count,
                                &cd_limit, err);
    if (rc != BCT_OK) return rc;
    if (cd_off > cd_limit || cd_size > cd_limit - cd_off)
        return bct_fail(err, BCT_EFORMAT,
                        "zip central directory [%" PRIu64 ", +%" PRIu64
                        "] does not fit before the end record at %" PRIu64
                        " (truncated?)",
                        cd_off, cd_size, cd_limit);
    if (count > cd_size / ZIP_CENTRAL_LEN || count > ZIP_MAX_ENTRIES)
        return bct_fail(err, BCT_EFORMAT,
                        "zip archive claims %" PRIu64 " entries, more than "
                        "its %" PRIu64 "-byte directory holds (or over the "
                        "ZIP_MAX_ENTRIES limit of %u)",
                        count, cd_size, ZIP_MAX_ENTRIES);
    z->e = calloc(count ? count : 1, sizeof(*z->e));
    if (!z->e) return bct_fail(err, BCT_ENOMEM, "out of memory");
    uint64_t pos = cd_off, cd_end = cd_off + cd_size;
    for (uint64_t i = 0; i < count; i++) {
        z->n++; /* counted first so zip_free() frees a half-read name */
        if ((rc = read_entry(buf, &pos, cd_end, cd_off, &z->e[i], err)))
            return rc;
    }
    if ((rc = check_overlaps(z, err))) return rc;
    const char *dup = name_index_sort(z->e, z->n, sizeof(*z->e));
    if (dup)
        return bct_fail(err, BCT_EFORMAT,
                        "zip entry \"" NAME_FMT "\" appears twice", dup);
    return BCT_OK;
}

static const zip_entry *zip_find(const zip *z, const char *top,
                                 const char *rest) {
    char name[1024];
    int n = snprintf(name, sizeof(name), "%s/%s", top, rest);
    if (n < 0 || (size_t)n >= sizeof(name)) return NULL;
    return name_index_find(z->e, z->n, sizeof(*z->e), name);
}

/* The top folder all entries share (torch never hard-codes it). */
static int top_folder(const zip *z, char *top, size_t cap, bct_error *err) {
    if (!z->n)
        return bct_fail(err, BCT_EFORMAT, "the zip archive is empty");
    const char *first = z->e[0].name, *slash = strchr(first, '/');
    if (!slash || slash == first || (size_t)(slash - first) >= cap)
        return bct_fail(err, BCT_EFORMAT,
                        "zip entry \"" NAME_FMT "\" is not inside a top "
                        "folder, as torch.save writes",
                        first);
    size_t n = (size_t)(slash - first);
    memcpy(top, first, n);
    top[n] = '\0';
    for (size_t i = 0; i < z->n; i++)
        if (strncmp(z->e[i].name, first, n + 1))
            return bct_fail(err, BCT_EFORMAT,
                            "zip entry \"" NAME_FMT "\" is outside the "
                            "archive's top folder \"" NAME_FMT "\"",
                            z->e[i].name, top);
    return BCT_OK;
}

/* Tensors of the state dict as st_tensors pointing into buf. */
static int build(const uint8_t *buf, size_t len, st_tensor **out,
                 size_t *count, bct_error *err) {
    zip z = {0};
    pkl_state_dict sd = {0};
    st_tensor *ts = NULL;
    char top[256];
    int rc = zip_open(buf, len, &z, err);
    if (rc == BCT_OK) rc = top_folder(&z, top, sizeof(top), err);
    if (rc != BCT_OK) goto done;

    const zip_entry *bo = zip_find(&z, top, "byteorder");
    if (bo && !(bo->size == 6 && !memcmp(buf + bo->data, "little", 6))) {
        rc = bct_fail(err, BCT_EUNSUPPORTED,
                      "byteorder is not \"little\"; big-endian checkpoints "
                      "are not supported");
        goto done;
    }
    const zip_entry *pk = zip_find(&z, top, "data.pkl");
    if (!pk) {
        rc = bct_fail(err, BCT_EFORMAT, "the archive has no %s/data.pkl "
                      "(not a torch.save checkpoint?)", top);
        goto done;
    }
    if (pk->size > UINT32_MAX ||
        crc32(0, buf + pk->data, (uInt)pk->size) != pk->crc) {
        rc = bct_fail(err, BCT_EFORMAT, "data.pkl: CRC-32 mismatch (the "
                      "file is corrupt)");
        goto done;
    }
    if ((rc = pkl_load_state_dict(buf + pk->data, (size_t)pk->size, &sd,
                                  err))) {
        bct_fail_prefix(err, rc, "data.pkl");
        goto done;
    }

    ts = calloc(sd.count ? sd.count : 1, sizeof(*ts));
    if (!ts) {
        rc = bct_fail(err, BCT_ENOMEM, "out of memory");
        goto done;
    }
    for (size_t i = 0; i < sd.count; i++) {
        pkl_tensor *p = &sd.tensors[i];
        char rest[600];
        snprintf(rest, sizeof(rest), "data/%s", p->storage_key);
        const zip_entry *s = zip_find(&z, top, rest);
        if (!s) {
            rc = bct_fail(err, BCT_EFORMAT,
                          "tensor \"" NAME_FMT "\": its storage record "
                          "%s/data/" NAME_FMT " is missing",
                          p->name, top, p->storage_key);
            goto done;
        }
        size_t es = st_dtype_size(p->dtype);
        uint64_t need;
        if (__builtin_mul_overflow((uint64_t)p->storage_numel, es, &need) ||
            need != s->size) {
            rc = bct_fail(err, BCT_EFORMAT,
                          "tensor \"" NAME_FMT "\": storage %s/data/" NAME_FMT
                          " has %" PRIu64 " bytes but the pickle says %" PRId64
                          " elements of %s",
                          p->name, top, p->storage_key, s->size,
                          p->storage_numel, st_dtype_name(p->dtype));
            goto done;
        }
        /* pickle.c checked offset + numel <= storage numel. */
        st_tensor *t = &ts[i];
        t->dtype = p->dtype;
        t->ndim = p->ndim;
        memcpy(t->shape, p->shape, sizeof(t->shape));
        t->numel = p->numel;
        t->data = buf + s->data + (size_t)p->offset * es;
        t->nbytes = (size_t)p->numel * es;
        t->name = p->name;
        p->name = NULL; /* ts owns it now */
    }
    *out = ts;
    *count = sd.count;
    ts = NULL;
done:
    if (ts) {
        for (size_t i = 0; i < sd.count; i++) free((char *)ts[i].name);
        free(ts);
    }
    pkl_state_dict_free(&sd);
    zip_free(&z);
    return rc;
}

int torch_bin_open_buffer(const void *buf, size_t len, st_file **out,
                          bct_error *err) {
    *out = NULL;
    if (!buf && len)
        return bct_fail(err, BCT_EINVAL, "torch_bin_open_buffer: NULL buffer");
    st_tensor *ts;
    size_t n;
    int rc = build(buf, len, &ts, &n, err);
    if (rc != BCT_OK) return rc;
    return st_adopt(NULL, ts, n, out, err);
}

int torch_bin_open(const char *path, st_file **out, bct_error *err) {
    *out = NULL;
    mapped_file map;
    int rc = mapped_file_open(path, &map, err);
    if (rc != BCT_OK) return rc;
    st_tensor *ts;
    size_t n;
    if ((rc = build(map.data, map.len, &ts, &n, err)) == BCT_OK)
        rc = st_adopt(&map, ts, n, out, err);
    else
        mapped_file_close(&map);
    if (rc != BCT_OK) return bct_fail_prefix(err, rc, "%s", path);
    return BCT_OK;
}
