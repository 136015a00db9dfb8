/* safetensors.c - read-only, validated view of a .safetensors file.
 *
 * Everything is checked once, in st_validate(), before the caller sees a
 * single tensor: afterwards every st_tensor's data/nbytes is known to lie
 * inside the image, so accessors never need to re-check anything.
 *
 * The JSON header is parsed with cJSON (through json_util.h, which rejects
 * what cJSON lets through) and thrown away after validation; tensor names
 * and metadata strings are copied out of the tree.
 */
#include "safetensors.h"

#include "util/extent.h"
#include "util/half.h"
#include "util/json_util.h"
#include "util/le.h"
#include "util/mapped_file.h"
#include "util/name_index.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Same limit as the reference Rust implementation: a larger header is
 * almost certainly a different file format read as a length. */
#define ST_MAX_HEADER_BYTES 100000000ull

/* What a model's header can need, checked on the raw text before cJSON
 * builds a tree (each value is a 64-byte cJSON node, so a 100 MB header of
 * one 50M-entry shape array took 3 GB): a tensor entry is an object of
 * dtype, shape (<= ST_MAX_DIMS values) and data_offsets (2 values), about
 * 16 values; ST_MAX_HEADER_VALUES allows 16k such tensors (BERT-large has
 * ~400) and caps the tree at 16 MB.  Arrays longer than ST_MAX_ARRAY and
 * nesting deeper than ST_MAX_DEPTH are refused outright; the limits sit
 * above what the field checks accept so those still give their precise
 * messages. */
#define ST_MAX_HEADER_VALUES (1u << 18)
#define ST_MAX_ARRAY 64
#define ST_MAX_DEPTH 4

/* Names are quoted in error messages; cap them so the rest still fits. */
#define NAME_FMT "%.200s"

#define METADATA_KEY "__metadata__"

/* Significant digits of numbers quoted in messages (a double holds 15). */
#define DESCRIBE_DIGITS 15

/* Records for name_index.h: the name comes first. */
typedef struct st_meta {
    const char *key; /* malloc'd, like value */
    char *value;
} st_meta;

typedef struct st_name {
    const char *name;
    const st_tensor *tensor;
} st_name;

_Static_assert(offsetof(st_meta, key) == 0, "name_index.h needs key first");
_Static_assert(offsetof(st_name, name) == 0, "name_index.h needs name first");

struct st_file {
    mapped_file map;    /* st_open()'s mapping, zeroed for buffers */
    st_tensor *tensors; /* header order */
    size_t count;
    st_name *by_name;   /* sorted by name, for st_find() */
    st_meta *meta;      /* sorted by key, for st_metadata() */
    size_t nmeta;
};

static const json_header_words header_words = {
    .text = "header",
    .corrupt = "the file is corrupt or not a safetensors file",
    .object = "a JSON object mapping tensor names to {dtype, shape, "
              "data_offsets}",
    .digits = DESCRIBE_DIGITS,
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

/* Describes a JSON value for an error message. */
static void describe(const cJSON *item, char *buf, size_t cap) {
    json_describe(item, DESCRIBE_DIGITS, buf, cap);
}

/* ------------------------------------------------------------------------ */
/* validation                                                               */
/* ------------------------------------------------------------------------ */

static void free_contents(st_file *f) {
    if (f->tensors) {
        for (size_t i = 0; i < f->count; i++) free((char *)f->tensors[i].name);
    }
    for (size_t i = 0; i < f->nmeta; i++) {
        free((char *)f->meta[i].key);
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
        describe(entry, what, sizeof(what));
        return bct_fail(err, BCT_EFORMAT,
                        "tensor \"" NAME_FMT "\": entry is %s, expected an "
                        "object with dtype, shape and data_offsets",
                        name, what);
    }

    static const char *const keys[3] = {"dtype", "shape", "data_offsets"};
    const cJSON *fields[3];
    char ctx[256];
    snprintf(ctx, sizeof(ctx), "tensor \"" NAME_FMT "\"", name);
    int rc = json_pick_fields(entry, keys, fields, 3, ctx, err);
    if (rc != BCT_OK) return rc;
    for (int i = 0; i < 3; i++) {
        if (!fields[i])
            return bct_fail(err, BCT_EFORMAT, "%s: missing \"%s\" field", ctx,
                            keys[i]);
    }
    const cJSON *dtype = fields[0], *shape = fields[1], *offsets = fields[2];

    /* dtype */
    if (!cJSON_IsString(dtype)) {
        describe(dtype, what, sizeof(what));
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
        describe(shape, what, sizeof(what));
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
            describe(dim, what, sizeof(what));
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
                describe(off, what, sizeof(what));
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
        describe(offsets, what, sizeof(what));
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
        describe(obj, what, sizeof(what));
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
            describe(item, what, sizeof(what));
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

/* Sorts by_name and rejects names that occur twice. */
static int index_names(st_file *f, bct_error *err) {
    f->by_name = malloc((f->count ? f->count : 1) * sizeof(*f->by_name));
    if (!f->by_name)
        return bct_fail(err, BCT_ENOMEM, "out of memory indexing tensors");
    for (size_t i = 0; i < f->count; i++)
        f->by_name[i] = (st_name){f->tensors[i].name, &f->tensors[i]};
    const char *dup =
        name_index_sort(f->by_name, f->count, sizeof(*f->by_name));
    if (dup)
        return bct_fail(err, BCT_EFORMAT,
                        "tensor \"" NAME_FMT "\" appears more than once in "
                        "the header",
                        dup);
    return BCT_OK;
}

/* Sorts the metadata by key and rejects keys that occur twice. */
static int index_metadata(st_file *f, bct_error *err) {
    const char *dup = name_index_sort(f->meta, f->nmeta, sizeof(*f->meta));
    if (dup)
        return bct_fail(err, BCT_EFORMAT,
                        "\"" METADATA_KEY "\" key \"" NAME_FMT "\" appears "
                        "more than once",
                        dup);
    return BCT_OK;
}

/* Rejects data ranges shared by two tensors (see extent.h). */
static int check_overlaps(const st_file *f, const uint8_t *data,
                          bct_error *err) {
    extent *spans = malloc((f->count ? f->count : 1) * sizeof(*spans));
    if (!spans)
        return bct_fail(err, BCT_ENOMEM, "out of memory checking tensors");
    for (size_t i = 0; i < f->count; i++) {
        const st_tensor *t = &f->tensors[i];
        spans[i] = (extent){t->name, (uint64_t)(t->data - data), t->nbytes};
    }
    extent_sort(spans, f->count);

    const extent *prev = NULL;
    const extent *cur = extent_first_overlap(spans, f->count, &prev);
    int rc = BCT_OK;
    if (cur)
        rc = extent_overlap_fail(prev, cur, "tensors", err);
    free(spans);
    return rc;
}

static const json_budget header_budget = {ST_MAX_HEADER_VALUES, ST_MAX_ARRAY, ST_MAX_DEPTH,
                                           "a model of 16k tensors of up to 8 dimensions needs less"};

/* Validates header and tensors of the image buf/len and fills f. */
static int validate_image(const uint8_t *buf, size_t len, st_file *f,
                          bct_error *err) {
    if (len < 8)
        return bct_fail(err, BCT_EFORMAT,
                        "file is %zu bytes, too short for a safetensors file "
                        "(it must start with an 8-byte header length); the "
                        "file is empty or truncated",
                        len);

    uint64_t hlen = le_read64(buf);
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

    size_t n = (size_t)hlen;
    cJSON *root;
    int rc = json_check_budget((const char *)buf + 8, n, 8, &header_budget, err);
    if (rc != BCT_OK) return rc;
    rc = json_parse_header((const char *)buf + 8, n, 8, &header_words,
                               &root, err);
    if (rc != BCT_OK) return rc;

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

    rc = index_metadata(f, err);

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
    mapped_file map;
    int rc = mapped_file_open(path, &map, err);
    if (rc != BCT_OK) return rc;
    st_file *f = NULL;
    if ((rc = st_open_buffer(map.data, map.len, &f, err)) != BCT_OK) {
        mapped_file_close(&map);
        return bct_fail_prefix(err, rc, "%s", path);
    }
    f->map = map;
    *out = f;
    return BCT_OK;
}

int st_adopt(mapped_file *map, st_tensor *tensors, size_t count,
             st_file **out, bct_error *err) {
    *out = NULL;
    st_file *f = calloc(1, sizeof(*f));
    if (!f) {
        for (size_t i = 0; i < count; i++) free((char *)tensors[i].name);
        free(tensors);
        if (map) mapped_file_close(map);
        return bct_fail(err, BCT_ENOMEM, "out of memory");
    }
    f->tensors = tensors;
    f->count = count;
    if (map) {
        f->map = *map;
        memset(map, 0, sizeof(*map));
    }
    int rc = index_names(f, err);
    if (rc != BCT_OK) {
        st_close(f);
        return rc;
    }
    *out = f;
    return BCT_OK;
}

void st_close(st_file *f) {
    if (!f) return;
    mapped_file_close(&f->map);
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

const st_tensor *st_find(const st_file *f, const char *name) {
    if (!f) return NULL;
    const st_name *hit =
        name_index_find(f->by_name, f->count, sizeof(*f->by_name), name);
    return hit ? hit->tensor : NULL;
}

const char *st_metadata(const st_file *f, const char *key) {
    if (!f) return NULL;
    const st_meta *hit =
        name_index_find(f->meta, f->nmeta, sizeof(*f->meta), key);
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

int st_tensor_to_f32(const st_tensor *t, float *dst, bct_error *err) {
    size_t n = (size_t)t->numel;
    const uint8_t *p = t->data;

    switch (t->dtype) {
    case ST_F32:
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
        if (n) memcpy(dst, p, n * sizeof(float));
#else
        for (size_t i = 0; i < n; i++, p += 4)
            dst[i] = f32_from_bits(le_read32(p));
#endif
        return BCT_OK;
    case ST_F16:
        for (size_t i = 0; i < n; i++)
            dst[i] = half_to_f32(le_read16(p + 2 * i));
        return BCT_OK;
    case ST_BF16:
        /* bfloat16 is the top half of a binary32. */
        for (size_t i = 0; i < n; i++)
            dst[i] = f32_from_bits((uint32_t)le_read16(p + 2 * i) << 16);
        return BCT_OK;
    default:
        return bct_fail(err, BCT_EUNSUPPORTED,
                        "tensor \"" NAME_FMT "\" has dtype %s; only F32, F16 "
                        "and BF16 tensors can be converted to fp32",
                        t->name, st_dtype_name(t->dtype));
    }
}
