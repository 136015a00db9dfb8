/* safetensors.c - read-only, validated view of a .safetensors file.
 *
 * Everything is checked once, in st_validate(), before the caller sees a
 * single tensor: afterwards every st_tensor's data/nbytes is known to lie
 * inside the image, so accessors never need to re-check anything.
 *
 * The JSON header is parsed with cJSON and thrown away after validation;
 * tensor names and metadata strings are copied out of the tree.
 */
#include "safetensors.h"

#include "half.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

/* Same limit as the reference Rust implementation: a larger header is
 * almost certainly a different file format read as a length. */
#define ST_MAX_HEADER_BYTES 100000000ull

/* JSON numbers arrive as doubles; above 2^53 integers stop being exact. */
#define ST_MAX_JSON_INT 9007199254740992.0

/* Names are quoted in error messages; cap them so the rest still fits. */
#define NAME_FMT "%.200s"

#define METADATA_KEY "__metadata__"

typedef struct st_meta {
    char *key;
    char *value;
} st_meta;

struct st_file {
    void *map;                 /* st_open()'s mapping, NULL for buffers */
    size_t map_len;
    st_tensor *tensors;        /* header order */
    size_t count;
    const st_tensor **by_name; /* sorted by name, for st_find() */
    st_meta *meta;             /* sorted by key, for st_metadata() */
    size_t nmeta;
};

static const struct {
    const char *name;
    size_t size;
} dtype_info[] = {
    [ST_F32] = {"F32", 4}, [ST_F16] = {"F16", 2}, [ST_BF16] = {"BF16", 2},
    [ST_F64] = {"F64", 8}, [ST_I64] = {"I64", 8}, [ST_I32] = {"I32", 4},
    [ST_I16] = {"I16", 2}, [ST_I8] = {"I8", 1},   [ST_U8] = {"U8", 1},
    [ST_BOOL] = {"BOOL", 1},
};

#define DTYPE_COUNT (sizeof(dtype_info) / sizeof(dtype_info[0]))

/* ------------------------------------------------------------------------ */
/* dtypes                                                                   */
/* ------------------------------------------------------------------------ */

const char *st_dtype_name(st_dtype dt) {
    if ((unsigned)dt >= DTYPE_COUNT) return "?";
    return dtype_info[dt].name;
}

size_t st_dtype_size(st_dtype dt) {
    if ((unsigned)dt >= DTYPE_COUNT) return 0;
    return dtype_info[dt].size;
}

int st_dtype_is_float(st_dtype dt) {
    return dt == ST_F32 || dt == ST_F16 || dt == ST_BF16;
}

static int dtype_from_name(const char *name, st_dtype *out) {
    for (size_t i = 0; i < DTYPE_COUNT; i++) {
        if (strcmp(name, dtype_info[i].name) == 0) {
            *out = (st_dtype)i;
            return 1;
        }
    }
    return 0;
}

/* ------------------------------------------------------------------------ */
/* small helpers                                                            */
/* ------------------------------------------------------------------------ */

/* The file format is little-endian whatever the host is. */
static uint64_t read_le64(const uint8_t *p) {
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--) v = (v << 8) | p[i];
    return v;
}

static int fail_too_short(bct_error *err, size_t len) {
    return bct_fail(err, BCT_EFORMAT,
                    "file is %zu bytes, too short for a safetensors file "
                    "(it must start with an 8-byte header length); the file "
                    "is empty or truncated",
                    len);
}

/* Writes "[a, b, c]" into buf (truncated if it does not fit). */
static void format_shape(const int64_t *shape, int ndim, char *buf,
                         size_t cap) {
    size_t used = 0;
    buf[0] = '\0';
    for (int i = -1; i <= ndim && used < cap; i++) {
        int n;
        if (i == -1) n = snprintf(buf + used, cap - used, "[");
        else if (i == ndim) n = snprintf(buf + used, cap - used, "]");
        else
            n = snprintf(buf + used, cap - used, "%s%" PRId64,
                         i ? ", " : "", shape[i]);
        if (n < 0) return;
        used += (size_t)n;
    }
}

/* Describes a JSON value for an error message: the number itself, or its
 * kind for anything else. */
static void describe_json(const cJSON *item, char *buf, size_t cap) {
    if (cJSON_IsNumber(item)) snprintf(buf, cap, "%.15g", item->valuedouble);
    else if (cJSON_IsString(item)) snprintf(buf, cap, "a string");
    else if (cJSON_IsArray(item)) snprintf(buf, cap, "an array");
    else if (cJSON_IsObject(item)) snprintf(buf, cap, "an object");
    else if (cJSON_IsBool(item)) snprintf(buf, cap, "a boolean");
    else if (cJSON_IsNull(item)) snprintf(buf, cap, "null");
    else snprintf(buf, cap, "an invalid value");
}

/* A JSON number that is an exact non-negative integer <= 2^53. */
static int json_to_u64(const cJSON *item, uint64_t *out) {
    if (!cJSON_IsNumber(item)) return 0;
    double d = item->valuedouble;
    /* !(d >= 0) also rejects NaN; the round trip rejects fractions. */
    if (!(d >= 0.0) || d > ST_MAX_JSON_INT) return 0;
    uint64_t v = (uint64_t)d;
    if ((double)v != d) return 0;
    *out = v;
    return 1;
}

/* Returns the offset of the first byte that is not valid UTF-8 or is a raw
 * control character (never legal in JSON text), or len if there is none.
 * *why says what is wrong.  Done by hand because cJSON accepts both. */
static size_t find_bad_text_byte(const uint8_t *s, size_t len,
                                 const char **why) {
    size_t i = 0;
    while (i < len) {
        uint8_t c = s[i];
        if (c < 0x80) {
            if (c < 0x20 && c != '\t' && c != '\n' && c != '\r') {
                *why = "a control character, which JSON does not allow";
                return i;
            }
            i++;
            continue;
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
            *why = c < 0xC0 ? "a UTF-8 continuation byte without a lead byte"
                            : "not a UTF-8 lead byte";
            return i;
        }
        if (len - i - 1 < need) {
            *why = "a UTF-8 sequence cut off by the end of the header";
            return i;
        }
        for (size_t k = 1; k <= need; k++) {
            if ((s[i + k] & 0xC0) != 0x80) {
                *why = "an incomplete UTF-8 sequence";
                return i;
            }
            cp = (cp << 6) | (s[i + k] & 0x3F);
        }
        if (cp < min) {
            *why = "an overlong UTF-8 encoding";
            return i;
        }
        if (cp >= 0xD800 && cp <= 0xDFFF) {
            *why = "a UTF-16 surrogate encoded as UTF-8";
            return i;
        }
        if (cp > 0x10FFFF) {
            *why = "a code point above U+10FFFF";
            return i;
        }
        i += need + 1;
    }
    return len;
}

/* ------------------------------------------------------------------------ */
/* validation                                                               */
/* ------------------------------------------------------------------------ */

static void free_contents(st_file *f) {
    if (f->tensors) {
        for (size_t i = 0; i < f->count; i++) free((char *)f->tensors[i].name);
    }
    for (size_t i = 0; i < f->nmeta; i++) {
        free(f->meta[i].key);
        free(f->meta[i].value);
    }
    free(f->tensors);
    free(f->by_name);
    free(f->meta);
}

/* Fills t from one header entry.  data/data_len is the data region. */
static int parse_tensor(const cJSON *entry, const uint8_t *data,
                        size_t data_len, st_tensor *t, bct_error *err) {
    const char *name = entry->string;
    char what[64];

    if (!cJSON_IsObject(entry)) {
        describe_json(entry, what, sizeof(what));
        return bct_fail(err, BCT_EFORMAT,
                        "tensor \"" NAME_FMT "\": entry is %s, expected an "
                        "object with dtype, shape and data_offsets",
                        name, what);
    }

    /* Look the fields up by hand so a repeated field is an error rather
     * than silently taking the first one; unknown fields are ignored. */
    const cJSON *dtype = NULL, *shape = NULL, *offsets = NULL, *field;
    cJSON_ArrayForEach(field, entry) {
        const cJSON **slot;
        if (strcmp(field->string, "dtype") == 0) slot = &dtype;
        else if (strcmp(field->string, "shape") == 0) slot = &shape;
        else if (strcmp(field->string, "data_offsets") == 0) slot = &offsets;
        else continue;
        if (*slot)
            return bct_fail(err, BCT_EFORMAT,
                            "tensor \"" NAME_FMT "\": field \"%s\" appears "
                            "twice",
                            name, field->string);
        *slot = field;
    }
    if (!dtype || !shape || !offsets)
        return bct_fail(err, BCT_EFORMAT,
                        "tensor \"" NAME_FMT "\": missing \"%s\" field", name,
                        !dtype ? "dtype" : !shape ? "shape" : "data_offsets");

    /* dtype */
    if (!cJSON_IsString(dtype)) {
        describe_json(dtype, what, sizeof(what));
        return bct_fail(err, BCT_EFORMAT,
                        "tensor \"" NAME_FMT "\": dtype is %s, expected a "
                        "string such as \"F32\"",
                        name, what);
    }
    if (!dtype_from_name(dtype->valuestring, &t->dtype))
        return bct_fail(err, BCT_EUNSUPPORTED,
                        "tensor \"" NAME_FMT "\": dtype \"%.40s\" is not "
                        "supported (expected one of F32 F16 BF16 F64 I64 I32 "
                        "I16 I8 U8 BOOL)",
                        name, dtype->valuestring);

    /* shape */
    if (!cJSON_IsArray(shape)) {
        describe_json(shape, what, sizeof(what));
        return bct_fail(err, BCT_EFORMAT,
                        "tensor \"" NAME_FMT "\": shape is %s, expected an "
                        "array of dimensions",
                        name, what);
    }
    int ndim = 0;
    const cJSON *dim;
    cJSON_ArrayForEach(dim, shape) {
        uint64_t v;
        if (ndim == ST_MAX_DIMS)
            return bct_fail(err, BCT_EFORMAT,
                            "tensor \"" NAME_FMT "\": shape has %d "
                            "dimensions, more than the supported %d",
                            name, cJSON_GetArraySize(shape), ST_MAX_DIMS);
        if (!json_to_u64(dim, &v)) {
            describe_json(dim, what, sizeof(what));
            return bct_fail(err, BCT_EFORMAT,
                            "tensor \"" NAME_FMT "\": shape[%d] is %s; "
                            "dimensions must be non-negative integers "
                            "(at most 2^53)",
                            name, ndim, what);
        }
        t->shape[ndim++] = (int64_t)v;
    }
    t->ndim = ndim;

    /* data_offsets */
    uint64_t range[2];
    int nranges = 0;
    if (cJSON_IsArray(offsets)) {
        const cJSON *off;
        cJSON_ArrayForEach(off, offsets) {
            if (nranges == 2) {
                nranges = 3; /* too many: report below */
                break;
            }
            if (!json_to_u64(off, &range[nranges])) {
                describe_json(off, what, sizeof(what));
                return bct_fail(err, BCT_EFORMAT,
                                "tensor \"" NAME_FMT "\": data_offsets[%d] "
                                "is %s; offsets must be non-negative "
                                "integers (at most 2^53)",
                                name, nranges, what);
            }
            nranges++;
        }
    }
    if (nranges != 2) {
        describe_json(offsets, what, sizeof(what));
        if (cJSON_IsArray(offsets))
            snprintf(what, sizeof(what), "an array of length %d",
                     cJSON_GetArraySize(offsets));
        return bct_fail(err, BCT_EFORMAT,
                        "tensor \"" NAME_FMT "\": data_offsets is %s, "
                        "expected [begin, end]",
                        name, what);
    }
    uint64_t begin = range[0], end = range[1];
    if (begin > end)
        return bct_fail(err, BCT_EFORMAT,
                        "tensor \"" NAME_FMT "\": data_offsets [%" PRIu64
                        ", %" PRIu64 "] have begin > end",
                        name, begin, end);

    /* The byte count must match the shape exactly. */
    char shape_str[200];
    format_shape(t->shape, ndim, shape_str, sizeof(shape_str));
    int64_t numel = 1;
    for (int i = 0; i < ndim; i++) {
        if (__builtin_mul_overflow(numel, t->shape[i], &numel))
            return bct_fail(err, BCT_EFORMAT,
                            "tensor \"" NAME_FMT "\": shape %s has more "
                            "elements than fit in 64 bits",
                            name, shape_str);
    }
    uint64_t need;
    if (__builtin_mul_overflow((uint64_t)numel, st_dtype_size(t->dtype),
                               &need))
        return bct_fail(err, BCT_EFORMAT,
                        "tensor \"" NAME_FMT "\": shape %s x %s needs more "
                        "bytes than fit in 64 bits",
                        name, shape_str, st_dtype_name(t->dtype));
    if (end - begin != need)
        return bct_fail(err, BCT_EFORMAT,
                        "tensor \"" NAME_FMT "\": data_offsets [%" PRIu64
                        ", %" PRIu64 "] hold %" PRIu64 " bytes but shape %s "
                        "x %s needs %" PRIu64,
                        name, begin, end, end - begin, shape_str,
                        st_dtype_name(t->dtype), need);
    if (end > data_len)
        return bct_fail(err, BCT_EFORMAT,
                        "tensor \"" NAME_FMT "\": data_offsets [%" PRIu64
                        ", %" PRIu64 "] extend past the %zu-byte data region "
                        "(the file is truncated or the offsets are wrong)",
                        name, begin, end, data_len);

    t->numel = numel;
    t->data = data + begin;
    t->nbytes = (size_t)need;
    return BCT_OK;
}

/* Copies the "__metadata__" object; only string values are allowed. */
static int parse_metadata(const cJSON *obj, st_file *f, bct_error *err) {
    char what[64];
    if (!cJSON_IsObject(obj)) {
        describe_json(obj, what, sizeof(what));
        return bct_fail(err, BCT_EFORMAT,
                        "\"" METADATA_KEY "\" is %s, expected an object of "
                        "string values",
                        what);
    }
    size_t n = (size_t)cJSON_GetArraySize(obj);
    f->meta = calloc(n ? n : 1, sizeof(*f->meta));
    if (!f->meta)
        return bct_fail(err, BCT_ENOMEM, "out of memory reading metadata");
    const cJSON *item;
    cJSON_ArrayForEach(item, obj) {
        if (!cJSON_IsString(item)) {
            describe_json(item, what, sizeof(what));
            return bct_fail(err, BCT_EFORMAT,
                            "\"" METADATA_KEY "\" entry \"" NAME_FMT "\" is "
                            "%s, expected a string",
                            item->string, what);
        }
        st_meta *m = &f->meta[f->nmeta];
        m->key = strdup(item->string);
        m->value = strdup(item->valuestring);
        f->nmeta++; /* count it now so free_contents() frees both */
        if (!m->key || !m->value)
            return bct_fail(err, BCT_ENOMEM, "out of memory reading metadata");
    }
    return BCT_OK;
}

static int cmp_tensor_name(const void *a, const void *b) {
    const st_tensor *x = *(const st_tensor *const *)a;
    const st_tensor *y = *(const st_tensor *const *)b;
    return strcmp(x->name, y->name);
}

static int cmp_tensor_data(const void *a, const void *b) {
    const st_tensor *x = *(const st_tensor *const *)a;
    const st_tensor *y = *(const st_tensor *const *)b;
    if (x->data != y->data) return x->data < y->data ? -1 : 1;
    return (x->nbytes > y->nbytes) - (x->nbytes < y->nbytes);
}

static int cmp_meta_key(const void *a, const void *b) {
    return strcmp(((const st_meta *)a)->key, ((const st_meta *)b)->key);
}

/* Sorts by_name and rejects names that occur twice. */
static int index_names(st_file *f, bct_error *err) {
    f->by_name = malloc((f->count ? f->count : 1) * sizeof(*f->by_name));
    if (!f->by_name)
        return bct_fail(err, BCT_ENOMEM, "out of memory indexing tensors");
    for (size_t i = 0; i < f->count; i++) f->by_name[i] = &f->tensors[i];
    qsort(f->by_name, f->count, sizeof(*f->by_name), cmp_tensor_name);
    for (size_t i = 1; i < f->count; i++) {
        if (strcmp(f->by_name[i - 1]->name, f->by_name[i]->name) == 0)
            return bct_fail(err, BCT_EFORMAT,
                            "tensor \"" NAME_FMT "\" appears more than once "
                            "in the header",
                            f->by_name[i]->name);
    }
    return BCT_OK;
}

/* Rejects data ranges shared by two tensors.  Empty tensors own no bytes,
 * so they may sit anywhere (including inside another tensor's range). */
static int check_overlaps(const st_file *f, const uint8_t *data,
                          bct_error *err) {
    const st_tensor **order =
        malloc((f->count ? f->count : 1) * sizeof(*order));
    if (!order)
        return bct_fail(err, BCT_ENOMEM, "out of memory checking tensors");
    for (size_t i = 0; i < f->count; i++) order[i] = &f->tensors[i];
    qsort(order, f->count, sizeof(*order), cmp_tensor_data);

    const st_tensor *prev = NULL;
    int rc = BCT_OK;
    for (size_t i = 0; i < f->count; i++) {
        const st_tensor *cur = order[i];
        if (cur->nbytes == 0) continue;
        if (prev && cur->data < prev->data + prev->nbytes) {
            size_t pb = (size_t)(prev->data - data), cb = (size_t)(cur->data - data);
            rc = bct_fail(err, BCT_EFORMAT,
                          "tensors \"" NAME_FMT "\" [%zu, %zu] and \"" NAME_FMT
                          "\" [%zu, %zu] overlap in the data region",
                          prev->name, pb, pb + prev->nbytes, cur->name, cb,
                          cb + cur->nbytes);
            break;
        }
        prev = cur;
    }
    free(order);
    return rc;
}

/* Validates header and tensors of the image buf/len and fills f. */
static int validate_image(const uint8_t *buf, size_t len, st_file *f,
                          bct_error *err) {
    if (len < 8) return fail_too_short(err, len);

    uint64_t hlen = read_le64(buf);
    if (hlen == 0)
        return bct_fail(err, BCT_EFORMAT,
                        "header length is 0; a safetensors header is a "
                        "non-empty JSON object (not a safetensors file?)");
    if (hlen > len - 8)
        return bct_fail(err, BCT_EFORMAT,
                        "header length %" PRIu64 " does not fit in the file: "
                        "8 + %" PRIu64 " > %zu bytes (the file is truncated "
                        "or not a safetensors file)",
                        hlen, hlen, len);
    if (hlen > ST_MAX_HEADER_BYTES)
        return bct_fail(err, BCT_EFORMAT,
                        "header length %" PRIu64 " is over the %llu-byte "
                        "limit (not a safetensors file?)",
                        hlen, ST_MAX_HEADER_BYTES);

    const char *header = (const char *)buf + 8;
    size_t n = (size_t)hlen;
    const char *why = NULL;
    size_t bad = find_bad_text_byte((const uint8_t *)header, n, &why);
    if (bad < n)
        return bct_fail(err, BCT_EFORMAT,
                        "header is not valid UTF-8 JSON text: byte 0x%02x at "
                        "file offset %zu is %s",
                        (unsigned char)header[bad], 8 + bad, why);

    /* cJSON_ParseWithLength() would accept trailing garbage, so ask for the
     * end of the parsed value and check that only padding follows. */
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts(header, n, &end, 0);
    if (!root) {
        size_t at = end && end >= header && end <= header + n
                        ? (size_t)(end - header) : 0;
        return bct_fail(err, BCT_EFORMAT,
                        "header is not valid JSON (parse error near file "
                        "offset %zu); the file is corrupt or not a "
                        "safetensors file",
                        8 + at);
    }
    int rc = BCT_OK;
    if (end && end >= header && end <= header + n) {
        for (const char *p = end; p < header + n; p++) {
            if (*p != ' ' && *p != '\t' && *p != '\n' && *p != '\r') {
                rc = bct_fail(err, BCT_EFORMAT,
                              "header has unexpected data after the JSON "
                              "object at file offset %zu",
                              8 + (size_t)(p - header));
                goto done;
            }
        }
    }
    if (!cJSON_IsObject(root)) {
        char what[64];
        describe_json(root, what, sizeof(what));
        rc = bct_fail(err, BCT_EFORMAT,
                      "header is %s, expected a JSON object mapping tensor "
                      "names to {dtype, shape, data_offsets}",
                      what);
        goto done;
    }

    /* Size the tensor array; "__metadata__" is the one non-tensor key. */
    size_t ntensors = 0;
    const cJSON *meta = NULL, *entry;
    cJSON_ArrayForEach(entry, root) {
        if (strcmp(entry->string, METADATA_KEY) != 0) {
            ntensors++;
        } else if (meta) {
            rc = bct_fail(err, BCT_EFORMAT,
                          "\"" METADATA_KEY "\" appears more than once in "
                          "the header");
            goto done;
        } else {
            meta = entry;
        }
    }
    f->tensors = calloc(ntensors ? ntensors : 1, sizeof(*f->tensors));
    if (!f->tensors) {
        rc = bct_fail(err, BCT_ENOMEM, "out of memory for %zu tensors",
                      ntensors);
        goto done;
    }

    const uint8_t *data = buf + 8 + n;
    size_t data_len = len - 8 - n;
    cJSON_ArrayForEach(entry, root) {
        if (entry == meta) continue;
        st_tensor *t = &f->tensors[f->count];
        rc = parse_tensor(entry, data, data_len, t, err);
        if (rc != BCT_OK) goto done;
        t->name = strdup(entry->string);
        if (!t->name) {
            rc = bct_fail(err, BCT_ENOMEM, "out of memory for tensor names");
            goto done;
        }
        f->count++;
    }
    if (meta && (rc = parse_metadata(meta, f, err)) != BCT_OK) goto done;

    if ((rc = index_names(f, err)) != BCT_OK) goto done;
    if ((rc = check_overlaps(f, data, err)) != BCT_OK) goto done;

    if (f->nmeta > 1) /* qsort() wants a non-NULL base even for 0 items */
        qsort(f->meta, f->nmeta, sizeof(*f->meta), cmp_meta_key);
    for (size_t i = 1; i < f->nmeta; i++) {
        if (strcmp(f->meta[i - 1].key, f->meta[i].key) == 0) {
            rc = bct_fail(err, BCT_EFORMAT,
                          "\"" METADATA_KEY "\" key \"" NAME_FMT "\" appears "
                          "more than once",
                          f->meta[i].key);
            goto done;
        }
    }

done:
    cJSON_Delete(root);
    return rc;
}

/* ------------------------------------------------------------------------ */
/* public API                                                               */
/* ------------------------------------------------------------------------ */

int st_open_buffer(const void *buf, size_t len, st_file **out,
                   bct_error *err) {
    *out = NULL;
    if (!buf && len)
        return bct_fail(err, BCT_EINVAL, "st_open_buffer: NULL buffer");
    st_file *f = calloc(1, sizeof(*f));
    if (!f) return bct_fail(err, BCT_ENOMEM, "out of memory");
    int rc = validate_image(buf, len, f, err);
    if (rc != BCT_OK) {
        free_contents(f);
        free(f);
        return rc;
    }
    *out = f;
    return BCT_OK;
}

int st_open(const char *path, st_file **out, bct_error *err) {
    *out = NULL;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return bct_fail(err, BCT_EIO, "cannot open %s: %s", path,
                        strerror(errno));

    struct stat sb;
    if (fstat(fd, &sb) != 0) {
        int e = errno;
        close(fd);
        return bct_fail(err, BCT_EIO, "cannot stat %s: %s", path,
                        strerror(e));
    }
    if (!S_ISREG(sb.st_mode)) {
        close(fd);
        return bct_fail(err, BCT_EIO, "%s is not a regular file", path);
    }
    /* mmap() refuses length 0, and a short file can never be valid. */
    if (sb.st_size < 8) {
        close(fd);
        fail_too_short(err, (size_t)sb.st_size);
        return bct_fail_prefix(err, BCT_EFORMAT, "%s", path);
    }
    if ((uint64_t)sb.st_size > SIZE_MAX) {
        close(fd);
        return bct_fail(err, BCT_ERANGE, "%s is too large to map", path);
    }
    size_t len = (size_t)sb.st_size;

    void *map = mmap(NULL, len, PROT_READ, MAP_PRIVATE, fd, 0);
    int map_errno = errno;
    /* The mapping keeps the file alive; the descriptor is no longer needed.
     * close() on Linux releases the fd even when it reports EINTR. */
    if (close(fd) != 0 && errno != EINTR) {
        int e = errno;
        if (map != MAP_FAILED) munmap(map, len);
        return bct_fail(err, BCT_EIO, "cannot close %s: %s", path,
                        strerror(e));
    }
    if (map == MAP_FAILED)
        return bct_fail(err, BCT_EIO, "cannot map %s: %s", path,
                        strerror(map_errno));

    st_file *f = NULL;
    int rc = st_open_buffer(map, len, &f, err);
    if (rc != BCT_OK) {
        munmap(map, len);
        return bct_fail_prefix(err, rc, "%s", path);
    }
    f->map = map;
    f->map_len = len;
    *out = f;
    return BCT_OK;
}

void st_close(st_file *f) {
    if (!f) return;
    /* Nothing useful can be done if munmap fails on our own mapping. */
    if (f->map) (void)munmap(f->map, f->map_len);
    free_contents(f);
    free(f);
}

size_t st_count(const st_file *f) {
    return f ? f->count : 0;
}

const st_tensor *st_at(const st_file *f, size_t i) {
    if (!f || i >= f->count) return NULL;
    return &f->tensors[i];
}

static int cmp_name_key(const void *key, const void *elem) {
    return strcmp((const char *)key, (*(const st_tensor *const *)elem)->name);
}

const st_tensor *st_find(const st_file *f, const char *name) {
    if (!f || !name || f->count == 0) return NULL;
    const st_tensor *const *hit =
        bsearch(name, f->by_name, f->count, sizeof(*f->by_name), cmp_name_key);
    return hit ? *hit : NULL;
}

static int cmp_meta_key_str(const void *key, const void *elem) {
    return strcmp((const char *)key, ((const st_meta *)elem)->key);
}

const char *st_metadata(const st_file *f, const char *key) {
    if (!f || !key || f->nmeta == 0) return NULL;
    const st_meta *hit =
        bsearch(key, f->meta, f->nmeta, sizeof(*f->meta), cmp_meta_key_str);
    return hit ? hit->value : NULL;
}

/* ------------------------------------------------------------------------ */
/* conversion                                                               */
/* ------------------------------------------------------------------------ */

static float f32_from_bits(uint32_t bits) {
    float v;
    memcpy(&v, &bits, sizeof(v));
    return v;
}

static uint16_t read_le16(const uint8_t *p) {
    return (uint16_t)(p[0] | (p[1] << 8));
}

int st_tensor_to_f32(const st_tensor *t, float *dst, bct_error *err) {
    size_t n = (size_t)t->numel;
    const uint8_t *p = t->data;

    switch (t->dtype) {
    case ST_F32:
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
        if (n) memcpy(dst, p, n * sizeof(float));
#else
        for (size_t i = 0; i < n; i++, p += 4) {
            uint32_t b = (uint32_t)p[0] | (uint32_t)p[1] << 8 |
                         (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
            dst[i] = f32_from_bits(b);
        }
#endif
        return BCT_OK;
    case ST_F16:
        for (size_t i = 0; i < n; i++) dst[i] = half_to_f32(read_le16(p + 2 * i));
        return BCT_OK;
    case ST_BF16:
        /* bfloat16 is the top half of a binary32. */
        for (size_t i = 0; i < n; i++)
            dst[i] = f32_from_bits((uint32_t)read_le16(p + 2 * i) << 16);
        return BCT_OK;
    default:
        return bct_fail(err, BCT_EUNSUPPORTED,
                        "tensor \"" NAME_FMT "\" has dtype %s; only F32, F16 "
                        "and BF16 tensors can be converted to fp32",
                        t->name, st_dtype_name(t->dtype));
    }
}
