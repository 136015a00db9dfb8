/* test_safetensors.c - safetensors reader: valid images, every kind of
 * corruption the validator promises to catch, and a truncation sweep. */
#include <check.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <unistd.h>

#include "util/le.h"
#include "formats/safetensors.h"
#include "test_util.h"

TEST_READER(st_reader, st_file, st_open_buffer, st_open, st_close);

/* Every failure is checked through both ways of opening (test_util.h). */
#define expect_fail2(...) test_expect_open_fail(&st_reader, __VA_ARGS__)
#define expect_fail(img, n, code, what) expect_fail2(img, n, code, what, NULL)

/* ------------------------------------------------------------------------ */
/* image builders                                                           */
/* ------------------------------------------------------------------------ */

/* 8-byte little-endian `hlen`, then hsize header bytes, then data.  hlen
 * and hsize differ only in tests that lie about the header length. */
static uint8_t *build_raw(uint64_t hlen, const void *header, size_t hsize,
                          const void *data, size_t dlen, size_t *len) {
    *len = 8 + hsize + dlen;
    uint8_t *img = malloc(*len ? *len : 1);
    ck_assert_ptr_nonnull(img);
    le_write64(img, hlen);
    if (hsize) memcpy(img + 8, header, hsize);
    if (dlen) memcpy(img + 8 + hsize, data, dlen);
    return img;
}

/* Image with a correct length prefix for `header`. */
static uint8_t *build(const char *header, const void *data, size_t dlen,
                      size_t *len) {
    size_t h = strlen(header);
    return build_raw(h, header, h, data, dlen, len);
}

/* Image whose data region is dlen zero bytes. */
static uint8_t *build_zeros(const char *header, size_t dlen, size_t *len) {
    uint8_t *data = calloc(dlen ? dlen : 1, 1);
    ck_assert_ptr_nonnull(data);
    uint8_t *img = build(header, data, dlen, len);
    free(data);
    return img;
}

static uint32_t bits_of(float f) {
    uint32_t v;
    memcpy(&v, &f, 4);
    return v;
}

static void put_f32(uint8_t *p, float f) {
    le_write32(p, bits_of(f));
}

/* ------------------------------------------------------------------------ */
/* the valid reference image                                                */
/* ------------------------------------------------------------------------ */

#define LONG_NAME "bert.encoder.layer.0.attention.self.query.weight"

/* Header order differs from data order on purpose (st_at is header order,
 * the overlap check sorts by offset). */
static const char valid_header[] =
    "{\"h\":{\"dtype\":\"F16\",\"shape\":[9],\"data_offsets\":[24,42]},"
    "\"" LONG_NAME "\":{\"dtype\":\"F32\",\"shape\":[2,3],"
    "\"data_offsets\":[0,24]},"
    "\"__metadata__\":{\"format\":\"pt\",\"note\":\"h\xc3\xa9llo\"},"
    "\"b\":{\"dtype\":\"BF16\",\"shape\":[2,2],\"data_offsets\":[42,50]},"
    "\"i\":{\"dtype\":\"I64\",\"shape\":[2],\"data_offsets\":[50,66]},"
    "\"s\":{\"shape\":[],\"dtype\":\"F32\",\"data_offsets\":[66,70],"
    "\"extra\":{\"ignored\":[1,2]}},"
    "\"z\":{\"dtype\":\"F32\",\"shape\":[0,5],\"data_offsets\":[70,70]}}";

#define VALID_DATA_LEN 70

static const uint16_t f16_in[9] = {
    0x3C00, /* 1.0 */
    0xC100, /* -2.5 */
    0x7BFF, /* 65504, largest half */
    0x0001, /* 2^-24, smallest subnormal */
    0x03FF, /* 1023 * 2^-24, largest subnormal */
    0x7C00, /* +inf */
    0xFC00, /* -inf */
    0x7E00, /* quiet NaN */
    0x8000, /* -0.0 */
};

static const uint16_t bf16_in[4] = {
    0x3F80, /* 1.0 */
    0xC000, /* -2.0 */
    0x4049, /* 3.140625 */
    0x7F80, /* +inf */
};

/* Builds the valid image, padding the header with spaces so the data
 * region starts at an odd offset (tensor data is then unaligned). */
static uint8_t *build_valid(size_t *len) {
    uint8_t data[VALID_DATA_LEN] = {0};
    for (int i = 0; i < 6; i++) put_f32(data + 4 * i, (float)(i + 1));
    for (int i = 0; i < 9; i++) le_write16(data + 24 + 2 * i, f16_in[i]);
    for (int i = 0; i < 4; i++) le_write16(data + 42 + 2 * i, bf16_in[i]);
    for (int i = 0; i < 16; i++) data[50 + i] = (uint8_t)i;
    put_f32(data + 66, 42.5f);

    char header[sizeof(valid_header) + 8];
    strcpy(header, valid_header);
    while ((8 + strlen(header)) % 4 != 1) strcat(header, " ");
    return build(header, data, sizeof(data), len);
}

static void check_valid(const st_file *f) {
    bct_error err;
    float out[9];

    ck_assert_uint_eq(st_count(f), 6);
    const char *order[] = {"h", LONG_NAME, "b", "i", "s", "z"};
    for (size_t i = 0; i < 6; i++)
        ck_assert_str_eq(st_at(f, i)->name, order[i]);
    ck_assert_ptr_null(st_at(f, 6));

    const st_tensor *a = st_find(f, LONG_NAME);
    ck_assert_ptr_nonnull(a);
    ck_assert_int_eq(a->dtype, ST_F32);
    ck_assert_int_eq(a->ndim, 2);
    ck_assert_int_eq(a->shape[0], 2);
    ck_assert_int_eq(a->shape[1], 3);
    ck_assert_int_eq(a->numel, 6);
    ck_assert_uint_eq(a->nbytes, 24);
    ck_assert_int_eq(st_tensor_to_f32(a, out, &err), BCT_OK);
    for (int i = 0; i < 6; i++) ck_assert_float_eq(out[i], (float)(i + 1));

    const st_tensor *h = st_find(f, "h");
    ck_assert_ptr_nonnull(h);
    ck_assert_int_eq(h->dtype, ST_F16);
    ck_assert_int_eq(h->ndim, 1);
    ck_assert_int_eq(h->numel, 9);
    ck_assert_uint_eq(h->nbytes, 18);
    ck_assert_int_eq(st_tensor_to_f32(h, out, &err), BCT_OK);
    ck_assert_float_eq(out[0], 1.0f);
    ck_assert_float_eq(out[1], -2.5f);
    ck_assert_float_eq(out[2], 65504.0f);
    ck_assert_float_eq(out[3], ldexpf(1.0f, -24));
    ck_assert_float_eq(out[4], ldexpf(1023.0f, -24));
    ck_assert(isinf(out[5]) && out[5] > 0);
    ck_assert(isinf(out[6]) && out[6] < 0);
    ck_assert(isnan(out[7]));
    ck_assert_uint_eq(bits_of(out[8]), 0x80000000u);

    const st_tensor *b = st_find(f, "b");
    ck_assert_ptr_nonnull(b);
    ck_assert_int_eq(b->dtype, ST_BF16);
    ck_assert_int_eq(b->numel, 4);
    ck_assert_int_eq(st_tensor_to_f32(b, out, &err), BCT_OK);
    ck_assert_float_eq(out[0], 1.0f);
    ck_assert_float_eq(out[1], -2.0f);
    ck_assert_float_eq(out[2], 3.140625f);
    ck_assert(isinf(out[3]) && out[3] > 0);

    const st_tensor *s = st_find(f, "s");
    ck_assert_ptr_nonnull(s);
    ck_assert_int_eq(s->ndim, 0);
    ck_assert_int_eq(s->numel, 1);
    ck_assert_int_eq(st_tensor_to_f32(s, out, &err), BCT_OK);
    ck_assert_float_eq(out[0], 42.5f);

    const st_tensor *z = st_find(f, "z");
    ck_assert_ptr_nonnull(z);
    ck_assert_int_eq(z->ndim, 2);
    ck_assert_int_eq(z->numel, 0);
    ck_assert_uint_eq(z->nbytes, 0);
    ck_assert_int_eq(st_tensor_to_f32(z, NULL, &err), BCT_OK);

    const st_tensor *it = st_find(f, "i");
    ck_assert_ptr_nonnull(it);
    ck_assert_int_eq(it->dtype, ST_I64);
    uint8_t raw[16];
    memcpy(raw, it->data, 16);
    for (int i = 0; i < 16; i++) ck_assert_int_eq(raw[i], i);

    ck_assert_str_eq(st_metadata(f, "format"), "pt");
    ck_assert_str_eq(st_metadata(f, "note"), "h\xc3\xa9llo");
    ck_assert_ptr_null(st_metadata(f, "missing"));
    ck_assert_ptr_null(st_metadata(f, "h"));

    ck_assert_ptr_null(st_find(f, "missing"));
    ck_assert_ptr_null(st_find(f, ""));
    ck_assert_ptr_null(st_find(f, "__metadata__"));
}

/* Header + zero data; expects failure naming needle. */
static void expect_header_fail(const char *header, size_t dlen, int code,
                               const char *needle) {
    size_t len;
    uint8_t *img = build_zeros(header, dlen, &len);
    expect_fail(img, len, code, needle);
    free(img);
}

static st_file *open_ok(const char *header, size_t dlen) {
    size_t len;
    bct_error err = {{0}};
    st_file *f = NULL;
    uint8_t *img = build_zeros(header, dlen, &len);
    /* Go through a file: st_open()'s mapping owns the bytes, so the image
     * can be freed right away. */
    const char *path = test_write_temp(img, len);
    free(img);
    ck_assert_ptr_nonnull(path);
    int rc = st_open(path, &f, &err);
    unlink(path);
    ck_assert_msg(rc == BCT_OK, "st_open failed: %s", err.msg);
    return f;
}

/* ------------------------------------------------------------------------ */
/* valid images                                                             */
/* ------------------------------------------------------------------------ */

START_TEST(test_valid_file) {
    size_t len;
    uint8_t *img = build_valid(&len);
    const char *path = test_write_temp(img, len);
    free(img);
    ck_assert_ptr_nonnull(path);

    bct_error err = {{0}};
    st_file *f = NULL;
    int rc = st_open(path, &f, &err);
    unlink(path); /* the mapping outlives the name */
    ck_assert_msg(rc == BCT_OK, "%s", err.msg);
    check_valid(f);
    st_close(f);
}
END_TEST

START_TEST(test_valid_buffer) {
    size_t len;
    uint8_t *img = build_valid(&len);
    bct_error err = {{0}};
    st_file *f = NULL;
    ck_assert_int_eq(st_open_buffer(img, len, &f, &err), BCT_OK);
    check_valid(f);
    st_close(f);
    free(img);
}
END_TEST

START_TEST(test_empty_header_and_gaps) {
    st_file *f = open_ok("{}", 0);
    ck_assert_uint_eq(st_count(f), 0);
    ck_assert_ptr_null(st_at(f, 0));
    ck_assert_ptr_null(st_find(f, "x"));
    ck_assert_ptr_null(st_metadata(f, "x"));
    st_close(f);

    /* Gaps, trailing bytes, padding and empty tensors inside another
     * tensor's range are all harmless. */
    f = open_ok("  {\"x\":{\"dtype\":\"U8\",\"shape\":[4],"
                "\"data_offsets\":[4,8]},"
                "\"e\":{\"dtype\":\"F32\",\"shape\":[0],"
                "\"data_offsets\":[5,5]},"
                "\"e2\":{\"dtype\":\"F64\",\"shape\":[3,0],"
                "\"data_offsets\":[5,5]},"
                "\"__metadata__\":{}}  \n ",
                16);
    ck_assert_uint_eq(st_count(f), 3);
    ck_assert_int_eq(st_find(f, "e2")->numel, 0);
    ck_assert_int_eq(st_find(f, "x")->shape[0], 4);
    st_close(f);

    st_close(NULL);
}
END_TEST

START_TEST(test_many_tensors_lookup) {
    /* Enough tensors to make the sorted index matter. */
    enum { N = 500 };
    size_t cap = N * 96 + 16, used = 0;
    char *header = malloc(cap);
    ck_assert_ptr_nonnull(header);
    used += (size_t)snprintf(header + used, cap - used, "{");
    for (int i = N - 1; i >= 0; i--)
        used += (size_t)snprintf(header + used, cap - used,
                                 "%s\"layer.%d.w\":{\"dtype\":\"F32\","
                                 "\"shape\":[1],\"data_offsets\":[%d,%d]}",
                                 i == N - 1 ? "" : ",", i, 4 * i, 4 * i + 4);
    snprintf(header + used, cap - used, "}");

    uint8_t data[N * 4];
    for (int i = 0; i < N; i++) put_f32(data + 4 * i, (float)i);
    size_t len;
    uint8_t *img = build(header, data, sizeof(data), &len);
    free(header);

    bct_error err = {{0}};
    st_file *f = NULL;
    ck_assert_msg(st_open_buffer(img, len, &f, &err) == BCT_OK, "%s",
                  err.msg);
    ck_assert_uint_eq(st_count(f), N);
    for (int i = 0; i < N; i++) {
        char name[32];
        float v;
        snprintf(name, sizeof(name), "layer.%d.w", i);
        const st_tensor *t = st_find(f, name);
        ck_assert_ptr_nonnull(t);
        ck_assert_str_eq(t->name, name);
        ck_assert_int_eq(st_tensor_to_f32(t, &v, &err), BCT_OK);
        ck_assert_float_eq(v, (float)i);
    }
    ck_assert_ptr_null(st_find(f, "layer.500.w"));
    ck_assert_ptr_null(st_find(f, "layer.1"));
    st_close(f);
    free(img);
}
END_TEST

/* Reference value of a binary16 bit pattern, computed arithmetically. */
static float f16_reference(uint16_t h) {
    int sign = h >> 15, exp = (h >> 10) & 0x1F, mant = h & 0x3FF;
    float v;
    if (exp == 0x1F) v = mant ? NAN : INFINITY;
    else if (exp == 0) v = ldexpf((float)mant, -24);
    else v = ldexpf((float)(1024 + mant), exp - 25);
    return sign ? -v : v;
}

START_TEST(test_f16_exhaustive) {
    enum { N = 65536 };
    uint8_t *data = malloc(2 * N);
    ck_assert_ptr_nonnull(data);
    for (int i = 0; i < N; i++) le_write16(data + 2 * i, (uint16_t)i);
    size_t len;
    uint8_t *img = build("{\"all\":{\"dtype\":\"F16\",\"shape\":[256,256],"
                         "\"data_offsets\":[0,131072]}}",
                         data, 2 * N, &len);
    free(data);

    bct_error err = {{0}};
    st_file *f = NULL;
    ck_assert_int_eq(st_open_buffer(img, len, &f, &err), BCT_OK);
    float *out = malloc(N * sizeof(float));
    ck_assert_ptr_nonnull(out);
    ck_assert_int_eq(st_tensor_to_f32(st_find(f, "all"), out, &err), BCT_OK);
    for (int i = 0; i < N; i++) {
        float want = f16_reference((uint16_t)i);
        if (isnan(want)) {
            ck_assert_msg(isnan(out[i]), "0x%04x should be NaN", i);
            /* sign and payload survive */
            ck_assert_uint_eq(bits_of(out[i]) >> 31, (unsigned)i >> 15);
            ck_assert_uint_eq((bits_of(out[i]) >> 13) & 0x3FF, i & 0x3FF);
        } else {
            ck_assert_msg(bits_of(out[i]) == bits_of(want),
                          "0x%04x -> %g, want %g", i, out[i], want);
        }
    }
    free(out);
    st_close(f);
    free(img);
}
END_TEST

START_TEST(test_to_f32_unsupported) {
    size_t len;
    uint8_t *img = build_valid(&len);
    bct_error err = {{0}};
    st_file *f = NULL;
    ck_assert_int_eq(st_open_buffer(img, len, &f, &err), BCT_OK);
    int64_t out[2];
    ck_assert_int_eq(st_tensor_to_f32(st_find(f, "i"), (float *)out, &err),
                     BCT_EUNSUPPORTED);
    ck_assert_ptr_nonnull(strstr(err.msg, "\"i\""));
    ck_assert_ptr_nonnull(strstr(err.msg, "I64"));
    st_close(f);
    free(img);
}
END_TEST

START_TEST(test_dtype_helpers) {
    static const struct {
        st_dtype dt;
        const char *name;
        size_t size;
        int is_float;
    } want[] = {
        {ST_F32, "F32", 4, 1}, {ST_F16, "F16", 2, 1},  {ST_BF16, "BF16", 2, 1},
        {ST_F64, "F64", 8, 0}, {ST_I64, "I64", 8, 0},  {ST_I32, "I32", 4, 0},
        {ST_I16, "I16", 2, 0}, {ST_I8, "I8", 1, 0},    {ST_U8, "U8", 1, 0},
        {ST_BOOL, "BOOL", 1, 0},
    };
    for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
        ck_assert_str_eq(st_dtype_name(want[i].dt), want[i].name);
        ck_assert_uint_eq(st_dtype_size(want[i].dt), want[i].size);
        ck_assert_int_eq(st_dtype_is_float(want[i].dt), want[i].is_float);

        /* Every dtype is accepted by the parser with its size. */
        char header[160];
        snprintf(header, sizeof(header),
                 "{\"t\":{\"dtype\":\"%s\",\"shape\":[3],"
                 "\"data_offsets\":[0,%zu]}}",
                 want[i].name, 3 * want[i].size);
        st_file *f = open_ok(header, 3 * want[i].size);
        ck_assert_int_eq(st_find(f, "t")->dtype, want[i].dt);
        st_close(f);
    }
    ck_assert_str_eq(st_dtype_name((st_dtype)99), "?");
    ck_assert_uint_eq(st_dtype_size((st_dtype)99), 0);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* corrupt files                                                            */
/* ------------------------------------------------------------------------ */

START_TEST(test_truncated_data) {
    size_t len;
    uint8_t *img = build_valid(&len);
    /* Cutting the last 4 bytes leaves "s" [66, 70] past the end. */
    expect_fail2(img, len - 4, BCT_EFORMAT, "\"s\"", "truncated");
    /* Cutting more reaches "i", the first tensor in header order to break. */
    expect_fail(img, len - 10, BCT_EFORMAT, "\"i\"");
    free(img);
}
END_TEST

START_TEST(test_header_past_eof) {
    const char *h = "{}";
    size_t len;
    uint8_t *img = build_raw(1000, h, 2, NULL, 0, &len);
    expect_fail2(img, len, BCT_EFORMAT, "1000", "10 bytes");
    free(img);

    /* A length with the top bit set must not wrap any arithmetic. */
    img = build_raw(UINT64_MAX, h, 2, NULL, 0, &len);
    expect_fail(img, len, BCT_EFORMAT, "does not fit");
    free(img);
    img = build_raw(UINT64_MAX - 7, h, 2, NULL, 0, &len);
    expect_fail(img, len, BCT_EFORMAT, "does not fit");
    free(img);
}
END_TEST

START_TEST(test_header_len_zero) {
    size_t len;
    uint8_t *img = build_raw(0, "", 0, "{}", 2, &len);
    expect_fail(img, len, BCT_EFORMAT, "header length is 0");
    free(img);
}
END_TEST

START_TEST(test_short_and_empty_file) {
    const uint8_t five[5] = {2, 0, 0, 0, 0};
    expect_fail(five, 5, BCT_EFORMAT, "5 bytes");
    expect_fail(five, 0, BCT_EFORMAT, "0 bytes");
    /* 8 bytes: a length but no header at all. */
    const uint8_t eight[8] = {2, 0, 0, 0, 0, 0, 0, 0};
    expect_fail(eight, 8, BCT_EFORMAT, "does not fit");
}
END_TEST

START_TEST(test_header_over_cap) {
    /* 100 MB + 1 of header: reserve it lazily, only the prefix is touched
     * because the cap is checked before the header is read. */
    size_t hlen = 100000001, len = 8 + hlen;
    uint8_t *img = mmap(NULL, len, PROT_READ | PROT_WRITE,
                        MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    ck_assert(img != MAP_FAILED);
    le_write64(img, hlen);
    bct_error err = {{0}};
    st_file *f = NULL;
    ck_assert_int_eq(st_open_buffer(img, len, &f, &err), BCT_EFORMAT);
    ck_assert_ptr_nonnull(strstr(err.msg, "limit"));
    munmap(img, len);
}
END_TEST

/* Issue 17 (5): a header of one huge shape array used to become a cJSON
 * tree of 64 bytes per entry (100 MB of text, 3 GB of RSS).  Here 10M
 * entries (20 MB of text): rejected before any tree is built, so the peak
 * RSS grows by the image alone. */
static long max_rss_kb(void) {
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_maxrss;
}

START_TEST(test_header_value_budget) {
    enum { ENTRIES = 10000000 };
    const char *head = "{\"w\":{\"dtype\":\"U8\",\"data_offsets\":[0,1],\"shape\":[";
    size_t hlen = strlen(head) + 2 * ENTRIES + 2, len = 8 + hlen + 1;
    uint8_t *img = malloc(len);
    ck_assert_ptr_nonnull(img);
    le_write64(img, hlen);
    char *p = (char *)img + 8;
    memcpy(p, head, strlen(head));
    p += strlen(head);
    for (int i = 0; i < ENTRIES; i++, p += 2) memcpy(p, i ? ",1" : " 1", 2);
    memcpy(p, "]}}", 3);
    long before = max_rss_kb();
    bct_error err = {{0}};
    st_file *f = NULL;
    ck_assert_int_eq(st_open_buffer(img, len, &f, &err), BCT_EFORMAT);
    long grown_mb = (max_rss_kb() - before) / 1024;
    ck_assert_msg(grown_mb < 100, "peak RSS grew by %ld MB", grown_mb);
    ck_assert_msg(strstr(err.msg, "array of more than"), "%s", err.msg);
    free(img);

    /* Many small arrays: the value count is bounded too. */
    size_t cap = 8u << 20, used = 8;
    img = malloc(cap);
    ck_assert_ptr_nonnull(img);
    used += (size_t)snprintf((char *)img + used, cap - used, "{\"__metadata__\":{");
    for (int i = 0; used + 32 < cap; i++)
        used += (size_t)snprintf((char *)img + used, cap - used, "%s\"k%d\":\"v\"", i ? "," : "", i);
    used += (size_t)snprintf((char *)img + used, cap - used, "}}");
    le_write64(img, used - 8);
    ck_assert_int_eq(st_open_buffer(img, used, &f, &err), BCT_EFORMAT);
    ck_assert_msg(strstr(err.msg, "values"), "%s", err.msg);
    free(img);
}
END_TEST

START_TEST(test_overlap) {
    expect_header_fail("{\"first\":{\"dtype\":\"F32\",\"shape\":[4],"
                       "\"data_offsets\":[0,16]},"
                       "\"second\":{\"dtype\":\"F32\",\"shape\":[2],"
                       "\"data_offsets\":[12,20]}}",
                       20, BCT_EFORMAT, "overlap");
    size_t len;
    uint8_t *img = build_zeros("{\"second\":{\"dtype\":\"F32\",\"shape\":[2],"
                               "\"data_offsets\":[12,20]},"
                               "\"first\":{\"dtype\":\"F32\",\"shape\":[4],"
                               "\"data_offsets\":[0,16]}}",
                               20, &len);
    expect_fail2(img, len, BCT_EFORMAT, "\"first\"", "\"second\"");
    free(img);
    /* Identical ranges overlap too. */
    expect_header_fail("{\"a\":{\"dtype\":\"U8\",\"shape\":[4],"
                       "\"data_offsets\":[0,4]},"
                       "\"b\":{\"dtype\":\"I8\",\"shape\":[4],"
                       "\"data_offsets\":[0,4]}}",
                       4, BCT_EFORMAT, "overlap");
    /* Nested range. */
    expect_header_fail("{\"outer\":{\"dtype\":\"U8\",\"shape\":[10],"
                       "\"data_offsets\":[0,10]},"
                       "\"inner\":{\"dtype\":\"U8\",\"shape\":[2],"
                       "\"data_offsets\":[3,5]}}",
                       10, BCT_EFORMAT, "\"inner\"");
}
END_TEST

START_TEST(test_wrong_size) {
    expect_header_fail("{\"" LONG_NAME "\":{\"dtype\":\"F32\","
                       "\"shape\":[128,128],\"data_offsets\":[0,100]}}",
                       100, BCT_EFORMAT, LONG_NAME);
    expect_header_fail("{\"" LONG_NAME "\":{\"dtype\":\"F32\","
                       "\"shape\":[128,128],\"data_offsets\":[0,100]}}",
                       100, BCT_EFORMAT, "needs 65536");
    expect_header_fail("{\"w\":{\"dtype\":\"F16\",\"shape\":[2,2],"
                       "\"data_offsets\":[0,16]}}",
                       16, BCT_EFORMAT, "\"w\"");
}
END_TEST

START_TEST(test_unknown_dtype) {
    size_t len;
    uint8_t *img = build_zeros("{\"q\":{\"dtype\":\"F8_E4M3\",\"shape\":[4],"
                               "\"data_offsets\":[0,4]}}",
                               4, &len);
    expect_fail2(img, len, BCT_EUNSUPPORTED, "\"q\"", "F8_E4M3");
    free(img);
    /* dtype names are case-sensitive. */
    expect_header_fail("{\"q\":{\"dtype\":\"f32\",\"shape\":[1],"
                       "\"data_offsets\":[0,4]}}",
                       4, BCT_EUNSUPPORTED, "\"q\"");
    expect_header_fail("{\"q\":{\"dtype\":32,\"shape\":[1],"
                       "\"data_offsets\":[0,4]}}",
                       4, BCT_EFORMAT, "\"q\"");
}
END_TEST

START_TEST(test_non_json) {
    expect_header_fail("hello world", 0, BCT_EFORMAT, "not valid JSON");
    expect_header_fail("{\"a\":", 0, BCT_EFORMAT, "not valid JSON");
    expect_header_fail("{\"a\":{\"dtype\":\"F32\",}}", 0, BCT_EFORMAT,
                       "not valid JSON");
    /* Trailing garbage after a complete object. */
    expect_header_fail("{} x", 0, BCT_EFORMAT, "after the JSON object");
    expect_header_fail("{}{}", 0, BCT_EFORMAT, "after the JSON object");
    /* A raw control character (here NUL) is not JSON text. */
    size_t len;
    uint8_t *img = build_raw(4, "{}\0 ", 4, NULL, 0, &len);
    expect_fail(img, len, BCT_EFORMAT, "control character");
    free(img);
}
END_TEST

START_TEST(test_json_not_object) {
    expect_header_fail("[1,2,3]", 0, BCT_EFORMAT, "expected a JSON object");
    expect_header_fail("\"str\"", 0, BCT_EFORMAT, "expected a JSON object");
    expect_header_fail("42", 0, BCT_EFORMAT, "expected a JSON object");
    expect_header_fail("null", 0, BCT_EFORMAT, "expected a JSON object");
    /* An entry that is not an object. */
    expect_header_fail("{\"t\":[1,2]}", 0, BCT_EFORMAT, "\"t\"");
    expect_header_fail("{\"t\":\"F32\"}", 0, BCT_EFORMAT, "\"t\"");
}
END_TEST

START_TEST(test_invalid_utf8) {
    static const char *bad[] = {
        "\xc0\xaf",         /* overlong '/' */
        "\xe0\x80\xaf",     /* overlong, 3 bytes */
        "\xf0\x80\x80\xaf", /* overlong, 4 bytes */
        "\xed\xa0\x80",     /* surrogate U+D800 */
        "\xed\xbf\xbf",     /* surrogate U+DFFF */
        "\xf4\x90\x80\x80", /* U+110000 */
        "\xf8\x88\x80\x80\x80", /* 5-byte form */
        "\x80",             /* stray continuation */
        "\xc3",             /* cut-off sequence */
        "\xe2\x82",         /* cut-off sequence */
        "\xff",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char header[128];
        snprintf(header, sizeof(header),
                 "{\"n%s\":{\"dtype\":\"U8\",\"shape\":[1],"
                 "\"data_offsets\":[0,1]}}",
                 bad[i]);
        expect_header_fail(header, 1, BCT_EFORMAT, "UTF-8");
    }
    /* A sequence cut by the end of the header. */
    size_t len;
    uint8_t *img = build_raw(3, "{}\xe2", 3, NULL, 0, &len);
    expect_fail(img, len, BCT_EFORMAT, "UTF-8");
    free(img);

    /* Boundary code points that are valid. */
    st_file *f = open_ok("{\"\xed\x9f\xbf\xee\x80\x80\xf4\x8f\xbf\xbf\xc2\x80"
                         "\":{\"dtype\":\"U8\",\"shape\":[1],"
                         "\"data_offsets\":[0,1]}}",
                         1);
    ck_assert_uint_eq(st_count(f), 1);
    st_close(f);
}
END_TEST

START_TEST(test_bad_shape) {
    expect_header_fail("{\"neg\":{\"dtype\":\"F32\",\"shape\":[-1,4],"
                       "\"data_offsets\":[0,0]}}",
                       0, BCT_EFORMAT, "\"neg\"");
    expect_header_fail("{\"frac\":{\"dtype\":\"F32\",\"shape\":[1.5],"
                       "\"data_offsets\":[0,6]}}",
                       8, BCT_EFORMAT, "\"frac\"");
    expect_header_fail("{\"frac\":{\"dtype\":\"F32\",\"shape\":[1.5],"
                       "\"data_offsets\":[0,6]}}",
                       8, BCT_EFORMAT, "1.5");
    expect_header_fail("{\"big\":{\"dtype\":\"U8\",\"shape\":"
                       "[9007199254740994],\"data_offsets\":[0,1]}}",
                       1, BCT_EFORMAT, "\"big\"");
    expect_header_fail("{\"str\":{\"dtype\":\"U8\",\"shape\":[\"1\"],"
                       "\"data_offsets\":[0,1]}}",
                       1, BCT_EFORMAT, "\"str\"");
    expect_header_fail("{\"obj\":{\"dtype\":\"U8\",\"shape\":{},"
                       "\"data_offsets\":[0,1]}}",
                       1, BCT_EFORMAT, "\"obj\"");
    expect_header_fail("{\"deep\":{\"dtype\":\"U8\","
                       "\"shape\":[1,1,1,1,1,1,1,1,1],"
                       "\"data_offsets\":[0,1]}}",
                       1, BCT_EFORMAT, "\"deep\"");
    /* Exactly ST_MAX_DIMS is fine. */
    st_file *f = open_ok("{\"ok\":{\"dtype\":\"U8\","
                         "\"shape\":[1,1,1,1,1,1,1,2],"
                         "\"data_offsets\":[0,2]}}",
                         2);
    ck_assert_int_eq(st_find(f, "ok")->ndim, 8);
    st_close(f);
}
END_TEST

START_TEST(test_bad_offsets) {
    expect_header_fail("{\"rev\":{\"dtype\":\"U8\",\"shape\":[0],"
                       "\"data_offsets\":[8,4]}}",
                       8, BCT_EFORMAT, "\"rev\"");
    expect_header_fail("{\"rev\":{\"dtype\":\"U8\",\"shape\":[0],"
                       "\"data_offsets\":[8,4]}}",
                       8, BCT_EFORMAT, "begin > end");
    expect_header_fail("{\"one\":{\"dtype\":\"U8\",\"shape\":[0],"
                       "\"data_offsets\":[0]}}",
                       0, BCT_EFORMAT, "\"one\"");
    expect_header_fail("{\"three\":{\"dtype\":\"U8\",\"shape\":[0],"
                       "\"data_offsets\":[0,0,0]}}",
                       0, BCT_EFORMAT, "\"three\"");
    expect_header_fail("{\"neg\":{\"dtype\":\"U8\",\"shape\":[1],"
                       "\"data_offsets\":[-1,0]}}",
                       0, BCT_EFORMAT, "\"neg\"");
    expect_header_fail("{\"frac\":{\"dtype\":\"U8\",\"shape\":[1],"
                       "\"data_offsets\":[0,0.5]}}",
                       1, BCT_EFORMAT, "\"frac\"");
    expect_header_fail("{\"obj\":{\"dtype\":\"U8\",\"shape\":[1],"
                       "\"data_offsets\":{\"a\":0}}}",
                       1, BCT_EFORMAT, "\"obj\"");
    /* An empty tensor must still lie inside the data region. */
    expect_header_fail("{\"far\":{\"dtype\":\"U8\",\"shape\":[0],"
                       "\"data_offsets\":[9,9]}}",
                       8, BCT_EFORMAT, "\"far\"");
}
END_TEST

START_TEST(test_missing_and_duplicate_fields) {
    expect_header_fail("{\"nodt\":{\"shape\":[1],\"data_offsets\":[0,1]}}",
                       1, BCT_EFORMAT, "\"nodt\"");
    expect_header_fail("{\"nosh\":{\"dtype\":\"U8\",\"data_offsets\":[0,1]}}",
                       1, BCT_EFORMAT, "\"nosh\"");
    expect_header_fail("{\"nooff\":{\"dtype\":\"U8\",\"shape\":[1]}}", 1,
                       BCT_EFORMAT, "\"nooff\"");
    expect_header_fail("{\"twice\":{\"dtype\":\"U8\",\"dtype\":\"F32\","
                       "\"shape\":[1],\"data_offsets\":[0,1]}}",
                       4, BCT_EFORMAT, "\"twice\"");
}
END_TEST

START_TEST(test_duplicate_name) {
    size_t len;
    uint8_t *img = build_zeros("{\"dup\":{\"dtype\":\"U8\",\"shape\":[1],"
                               "\"data_offsets\":[0,1]},"
                               "\"other\":{\"dtype\":\"U8\",\"shape\":[1],"
                               "\"data_offsets\":[1,2]},"
                               "\"dup\":{\"dtype\":\"U8\",\"shape\":[1],"
                               "\"data_offsets\":[2,3]}}",
                               3, &len);
    expect_fail2(img, len, BCT_EFORMAT, "\"dup\"", "more than once");
    free(img);
    expect_header_fail("{\"__metadata__\":{},\"__metadata__\":{}}", 0,
                       BCT_EFORMAT, "__metadata__");
}
END_TEST

START_TEST(test_shape_overflow) {
    expect_header_fail("{\"huge\":{\"dtype\":\"F32\","
                       "\"shape\":[4294967296,4294967296,16],"
                       "\"data_offsets\":[0,0]}}",
                       0, BCT_EFORMAT, "\"huge\"");
    /* numel fits in int64 but numel x 8 bytes does not. */
    expect_header_fail("{\"wide\":{\"dtype\":\"F64\","
                       "\"shape\":[2147483648,2147483648],"
                       "\"data_offsets\":[0,0]}}",
                       0, BCT_EFORMAT, "\"wide\"");
    /* A zero dimension makes the product 0 whatever else is there. */
    st_file *f = open_ok("{\"zero\":{\"dtype\":\"F32\","
                         "\"shape\":[0,4294967296,4294967296],"
                         "\"data_offsets\":[0,0]}}",
                         0);
    ck_assert_int_eq(st_find(f, "zero")->numel, 0);
    st_close(f);
}
END_TEST

START_TEST(test_bad_metadata) {
    expect_header_fail("{\"__metadata__\":[\"a\"]}", 0, BCT_EFORMAT,
                       "__metadata__");
    expect_header_fail("{\"__metadata__\":\"pt\"}", 0, BCT_EFORMAT,
                       "__metadata__");
    expect_header_fail("{\"__metadata__\":{\"format\":\"pt\",\"n\":3}}", 0,
                       BCT_EFORMAT, "\"n\"");
    expect_header_fail("{\"__metadata__\":{\"k\":{\"x\":\"y\"}}}", 0,
                       BCT_EFORMAT, "\"k\"");
    expect_header_fail("{\"__metadata__\":{\"k\":\"a\",\"k\":\"b\"}}", 0,
                       BCT_EFORMAT, "\"k\"");
}
END_TEST

START_TEST(test_open_errors) {
    test_expect_open_io_errors(&st_reader,
                               "/nonexistent/dir/model.safetensors");
}
END_TEST

/* ------------------------------------------------------------------------ */
/* robustness                                                               */
/* ------------------------------------------------------------------------ */

START_TEST(test_truncation_sweep) {
    size_t len;
    uint8_t *img = build_valid(&len);
    test_expect_prefixes_fail(&st_reader, img, len, 0, NULL);
    free(img);
}
END_TEST

START_TEST(test_shared_model) {
    const char *path =
        test_shared_path("models/sst2-bert-tiny-scratch/model.safetensors");
    if (!path || access(path, R_OK) != 0) return; /* shared data absent */

    bct_error err = {{0}};
    st_file *f = NULL;
    ck_assert_msg(st_open(path, &f, &err) == BCT_OK, "%s", err.msg);
    /* 5 embedding + 2 x 16 layer + 2 pooler + 2 classifier tensors (its
     * SOURCE.md says 39, but the file itself holds 41). */
    ck_assert_uint_eq(st_count(f), 41);
    ck_assert_str_eq(st_metadata(f, "format"), "pt");
    const st_tensor *c = st_find(f, "classifier.weight");
    ck_assert_ptr_nonnull(c);
    ck_assert_int_eq(c->shape[0], 2);
    ck_assert_int_eq(c->shape[1], 128);
    const st_tensor *t = st_find(f, "bert.embeddings.word_embeddings.weight");
    ck_assert_ptr_nonnull(t);
    ck_assert_int_eq(t->dtype, ST_F32);
    ck_assert_int_eq(t->ndim, 2);
    ck_assert_int_eq(t->shape[0], 30522);
    ck_assert_int_eq(t->shape[1], 128);
    ck_assert_int_eq(t->numel, 30522 * 128);

    /* Every tensor converts and holds finite weights. */
    for (size_t i = 0; i < st_count(f); i++) {
        const st_tensor *w = st_at(f, i);
        ck_assert(st_dtype_is_float(w->dtype));
        float *buf = malloc((size_t)w->numel * sizeof(float) + 1);
        ck_assert_ptr_nonnull(buf);
        ck_assert_int_eq(st_tensor_to_f32(w, buf, &err), BCT_OK);
        for (int64_t k = 0; k < w->numel; k++)
            ck_assert_msg(isfinite(buf[k]), "%s[%lld] not finite", w->name,
                          (long long)k);
        ck_assert_ptr_eq(st_find(f, w->name), w);
        free(buf);
    }
    st_close(f);
}
END_TEST

static Suite *safetensors_suite(void) {
    Suite *s = suite_create("safetensors");
    TCase *tc = tcase_create("valid");
    tcase_add_test(tc, test_valid_file);
    tcase_add_test(tc, test_valid_buffer);
    tcase_add_test(tc, test_empty_header_and_gaps);
    tcase_add_test(tc, test_many_tensors_lookup);
    tcase_add_test(tc, test_f16_exhaustive);
    tcase_add_test(tc, test_to_f32_unsupported);
    tcase_add_test(tc, test_dtype_helpers);
    suite_add_tcase(s, tc);

    tc = tcase_create("corrupt");
    tcase_add_test(tc, test_truncated_data);
    tcase_add_test(tc, test_header_past_eof);
    tcase_add_test(tc, test_header_len_zero);
    tcase_add_test(tc, test_short_and_empty_file);
    tcase_add_test(tc, test_header_over_cap);
    tcase_add_test(tc, test_header_value_budget);
    tcase_add_test(tc, test_overlap);
    tcase_add_test(tc, test_wrong_size);
    tcase_add_test(tc, test_unknown_dtype);
    tcase_add_test(tc, test_non_json);
    tcase_add_test(tc, test_json_not_object);
    tcase_add_test(tc, test_invalid_utf8);
    tcase_add_test(tc, test_bad_shape);
    tcase_add_test(tc, test_bad_offsets);
    tcase_add_test(tc, test_missing_and_duplicate_fields);
    tcase_add_test(tc, test_duplicate_name);
    tcase_add_test(tc, test_shape_overflow);
    tcase_add_test(tc, test_bad_metadata);
    tcase_add_test(tc, test_open_errors);
    suite_add_tcase(s, tc);

    tc = tcase_create("robustness");
    tcase_add_test(tc, test_truncation_sweep);
    tcase_add_test(tc, test_shared_model);
    tcase_set_timeout(tc, 120);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) {
    return test_run_suite(safetensors_suite());
}
