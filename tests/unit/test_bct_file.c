/* test_bct_file.c - .bct container: writer/reader round trips, crash-safe
 * commit and cleanup, every kind of corruption the reader promises to
 * catch (crafted with valid CRCs so each check is reached), zlib helpers,
 * and a mutation fuzz loop that must never crash (run under ASan). */
#include <check.h>
#include <dirent.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <zlib.h>

#include "formats/bct_file.h"
#include "util/le.h"
#include "test_util.h"

TEST_READER(bct_reader, bctf_file, bctf_open_buffer, bctf_open, bctf_close);

/* Every failure is checked through both ways of opening (test_util.h). */
#define expect_fail2(...) test_expect_open_fail(&bct_reader, __VA_ARGS__)
#define expect_fail(img, n, code, what) expect_fail2(img, n, code, what, NULL)

/* ------------------------------------------------------------------------ */
/* helpers                                                                  */
/* ------------------------------------------------------------------------ */

static char *make_tmpdir(void) {
    char *d = strdup("/tmp/bctf_test_XXXXXX");
    ck_assert_ptr_nonnull(d);
    ck_assert_ptr_nonnull(mkdtemp(d));
    return d;
}

static const char *path_in(const char *dir, const char *name) {
    static char buf[8][4096];
    static int next;
    char *p = buf[next++ & 7];
    snprintf(p, 4096, "%s/%s", dir, name);
    return p;
}

/* Number of entries in dir (without . and ..); names joined in *names. */
static int count_entries(const char *dir, char *names, size_t cap) {
    DIR *d = opendir(dir);
    ck_assert_ptr_nonnull(d);
    int n = 0;
    if (names && cap) names[0] = '\0';
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, "..")) continue;
        n++;
        if (names) {
            strncat(names, de->d_name, cap - strlen(names) - 1);
            strncat(names, " ", cap - strlen(names) - 1);
        }
    }
    closedir(d);
    return n;
}

/* Removes dir and everything in it (one level of subdirectories). */
static void rm_tmpdir(char *dir) {
    DIR *d = opendir(dir);
    if (d) {
        struct dirent *de;
        while ((de = readdir(d)) != NULL) {
            if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, "..")) continue;
            const char *p = path_in(dir, de->d_name);
            if (unlink(p) != 0) rmdir(p);
        }
        closedir(d);
    }
    rmdir(dir);
    free(dir);
}

static uint8_t *pattern(size_t n, unsigned seed) {
    uint8_t *p = malloc(n ? n : 1);
    ck_assert_ptr_nonnull(p);
    uint32_t x = seed * 2654435761u + 1;
    for (size_t i = 0; i < n; i++) {
        x = x * 1664525u + 1013904223u;
        p[i] = (uint8_t)(x >> 24);
    }
    return p;
}

static void add_ok(bctf_writer *w, const char *name, const void *data,
                   size_t n) {
    bct_error err = {{0}};
    int rc = bctf_writer_add(w, name, data, n, &err);
    ck_assert_msg(rc == BCT_OK, "add %s: %s", name, err.msg);
}

static void commit_ok(bctf_writer *w, const cJSON *meta) {
    bct_error err = {{0}};
    int rc = bctf_writer_commit(w, meta, &err);
    ck_assert_msg(rc == BCT_OK, "commit: %s", err.msg);
}

static bctf_writer *writer_ok(const char *path) {
    bct_error err = {{0}};
    bctf_writer *w = NULL;
    int rc = bctf_writer_open(path, &w, &err);
    ck_assert_msg(rc == BCT_OK, "writer_open: %s", err.msg);
    ck_assert_ptr_nonnull(w);
    return w;
}

static bctf_file *open_ok(const char *path) {
    bct_error err = {{0}};
    bctf_file *f = NULL;
    int rc = bctf_open(path, &f, &err);
    ck_assert_msg(rc == BCT_OK, "open %s: %s", path, err.msg);
    return f;
}

static void expect_blob(const bctf_file *f, const char *name,
                        const void *want, size_t n) {
    bct_error err = {{0}};
    const void *data = NULL;
    size_t size = 12345;
    int rc = bctf_blob(f, name, &data, &size, &err);
    ck_assert_msg(rc == BCT_OK, "blob %s: %s", name, err.msg);
    ck_assert_uint_eq(size, n);
    ck_assert_ptr_nonnull(data);
    if (n) ck_assert_int_eq(memcmp(data, want, n), 0);
}

/* A small but complete valid image produced by the real writer: several
 * blobs (one empty, one needing padding before the next), nested meta. */
static uint8_t *writer_image(size_t *len) {
    char *dir = make_tmpdir();
    const char *path = path_in(dir, "v.bct");
    bctf_writer *w = writer_ok(path);
    uint8_t *p = pattern(200, 1);
    add_ok(w, "codes", p, 130);
    add_ok(w, "empty", NULL, 0);
    add_ok(w, "scales", p + 130, 70);
    add_ok(w, "tail", "xyz", 3);
    cJSON *meta = cJSON_Parse("{\"config\":{\"hidden\":8,\"layers\":[1,2]},"
                              "\"labels\":[\"neg\",\"pos\"],\"x\":null}");
    ck_assert_ptr_nonnull(meta);
    commit_ok(w, meta);
    cJSON_Delete(meta);
    free(p);
    uint8_t *img = (uint8_t *)test_read_file(path, len);
    ck_assert_ptr_nonnull(img);
    rm_tmpdir(dir);
    return img;
}

/* ------------------------------------------------------------------------ */
/* test-only builder: preamble + blob region + header with valid CRCs        */
/* ------------------------------------------------------------------------ */

/* Recomputes both CRCs from the preamble's own (possibly lying) header
 * offset/length, clamped to the image, so a test reaches the check after
 * the CRC one. */
static void fix_crcs(uint8_t *img, size_t len) {
    if (len < 64) return;
    uint64_t hoff = le_read64(img + 16), hlen = le_read64(img + 24);
    if (hoff < 64) hoff = 64;
    if (hoff > len) hoff = len;
    if (hlen > len - hoff) hlen = len - hoff;
    le_write32(img + 44, (uint32_t)crc32(0, img + 64, (uInt)(hoff - 64)));
    le_write32(img + 40, (uint32_t)crc32(0, img + hoff, (uInt)hlen));
}

static uint8_t *craft(const char *header, const void *region, size_t rlen,
                      size_t *len) {
    size_t hlen = strlen(header);
    *len = 64 + rlen + hlen;
    uint8_t *img = calloc(1, *len);
    ck_assert_ptr_nonnull(img);
    memcpy(img, "BCTMODEL", 8);
    le_write32(img + 8, 1);
    le_write64(img + 16, 64 + rlen);
    le_write64(img + 24, hlen);
    le_write64(img + 32, *len);
    if (rlen) memcpy(img + 64, region, rlen);
    memcpy(img + 64 + rlen, header, hlen);
    fix_crcs(img, *len);
    return img;
}

/* Header text from a blobs object and a meta value (both JSON text). */
static char *hdr(const char *blobs, const char *meta) {
    char *h = malloc(strlen(blobs) + strlen(meta) + 100);
    ck_assert_ptr_nonnull(h);
    sprintf(h, "{\"format\":\"bct\",\"version\":1,\"blobs\":%s,\"meta\":%s}",
            blobs, meta);
    return h;
}

/* Crafted image with `blobs`/`meta`, region of rlen bytes of 0x11 (or
 * zeros), expected to fail. */
static void expect_crafted_fail(const char *blobs, const char *meta,
                                size_t rlen, const char *needle,
                                const char *needle2) {
    char *h = hdr(blobs, meta);
    uint8_t *region = malloc(rlen ? rlen : 1);
    ck_assert_ptr_nonnull(region);
    memset(region, 0x11, rlen);
    size_t len;
    uint8_t *img = craft(h, region, rlen, &len);
    expect_fail2(img, len, BCT_EFORMAT, needle, needle2);
    free(img);
    free(region);
    free(h);
}

static void expect_header_fail(const char *header, const char *needle) {
    size_t len;
    uint8_t *img = craft(header, NULL, 0, &len);
    expect_fail(img, len, BCT_EFORMAT, needle);
    free(img);
}

/* ------------------------------------------------------------------------ */
/* round trips                                                              */
/* ------------------------------------------------------------------------ */

#define BIG_N (5u * 1024 * 1024 + 3)

START_TEST(test_round_trip) {
    char *dir = make_tmpdir();
    const char *path = path_in(dir, "model.bct");
    uint8_t *big = pattern(BIG_N, 7);
    float f32[10];
    for (int i = 0; i < 10; i++) f32[i] = (float)i * 0.5f - 1.0f;
    static const char uname[] = "enc\xc3\xbc/layer.0/q.codes";

    bctf_writer *w = writer_ok(path);
    add_ok(w, "a.small", "abc", 3);
    add_ok(w, "empty", NULL, 0);
    add_ok(w, "big", big, BIG_N);
    add_ok(w, "f32", f32, sizeof(f32));
    add_ok(w, uname, "\x01\x02", 2);
    add_ok(w, "empty.last", "", 0);
    cJSON *meta = cJSON_Parse(
        "{\"config\":{\"hidden_size\":128,\"layers\":[1,2,{\"x\":null}],"
        "\"eps\":1e-12},\"labels\":[\"neg\",\"pos\"],\"note\":\"h\xc3\xa9\","
        "\"quant\":{\"block\":64,\"bits\":4,\"sym\":true},\"empty\":{}}");
    ck_assert_ptr_nonnull(meta);
    commit_ok(w, meta);

    /* Only the final file remains: no temp left behind. */
    char names[512];
    ck_assert_int_eq(count_entries(dir, names, sizeof(names)), 1);
    ck_assert_str_eq(names, "model.bct ");

    bctf_file *f = open_ok(path);
    struct stat sb;
    ck_assert_int_eq(stat(path, &sb), 0);
    ck_assert_uint_eq(bctf_file_size(f), (size_t)sb.st_size);
    ck_assert_int_eq(sb.st_mode & 0777, 0644);

    ck_assert(cJSON_Compare(bctf_meta(f), meta, 1));
    expect_blob(f, "a.small", "abc", 3);
    expect_blob(f, "empty", NULL, 0);
    expect_blob(f, "big", big, BIG_N);
    expect_blob(f, "f32", f32, sizeof(f32));
    expect_blob(f, uname, "\x01\x02", 2);
    expect_blob(f, "empty.last", NULL, 0);

    /* f32 can be used in place. */
    const void *d;
    size_t n;
    bct_error err = {{0}};
    ck_assert_int_eq(bctf_blob(f, "f32", &d, &n, &err), BCT_OK);
    const float *fp = d;
    ck_assert_float_eq(fp[9], 3.5f);

    /* Listing in name order; every blob pointer 64-byte aligned. */
    ck_assert_uint_eq(bctf_blob_count(f), 6);
    const char *want[] = {"a.small", "big", "empty", "empty.last", uname,
                          "f32"};
    for (size_t i = 0; i < 6; i++) {
        const char *nm;
        ck_assert_int_eq(bctf_blob_at(f, i, &nm, &d, &n), BCT_OK);
        ck_assert_str_eq(nm, want[i]);
        ck_assert_msg((uintptr_t)d % 64 == 0, "blob %s at %p not aligned", nm,
                      d);
    }
    ck_assert_int_eq(bctf_blob_at(f, 6, NULL, &d, &n), BCT_EINVAL);

    /* Missing blob. */
    ck_assert_int_eq(bctf_blob(f, "nope", &d, &n, &err), BCT_EFORMAT);
    ck_assert_str_eq(err.msg, "missing blob \"nope\"");

    /* Preamble fields as documented. */
    uint8_t *raw = (uint8_t *)test_read_file(path, &n);
    ck_assert_ptr_nonnull(raw);
    ck_assert_int_eq(memcmp(raw, "BCTMODEL", 8), 0);
    ck_assert_uint_eq(le_read32(raw + 8), 1);
    ck_assert_uint_eq(le_read32(raw + 12), 0);
    ck_assert_uint_eq(le_read64(raw + 32), n);
    ck_assert_uint_eq(le_read64(raw + 16) + le_read64(raw + 24), n);
    for (int i = 48; i < 64; i++) ck_assert_int_eq(raw[i], 0);
    ck_assert_int_eq(raw[le_read64(raw + 16)], '{');
    ck_assert_int_eq(raw[n - 1], '}');

    /* The same bytes through bctf_open_buffer (64-aligned copy). */
    uint8_t *copy = aligned_alloc(64, (n + 63) / 64 * 64);
    ck_assert_ptr_nonnull(copy);
    memcpy(copy, raw, n);
    bctf_file *g = NULL;
    ck_assert_int_eq(bctf_open_buffer(copy, n, &g, &err), BCT_OK);
    ck_assert(cJSON_Compare(bctf_meta(g), meta, 1));
    expect_blob(g, "big", big, BIG_N);
    for (size_t i = 0; i < bctf_blob_count(g); i++) {
        ck_assert_int_eq(bctf_blob_at(g, i, NULL, &d, &n), BCT_OK);
        ck_assert_uint_eq(((const uint8_t *)d - copy) % 64, 0);
    }
    bctf_close(g);
    free(copy);
    free(raw);

    bctf_close(f);
    bctf_close(NULL);
    cJSON_Delete(meta);
    free(big);
    rm_tmpdir(dir);
}
END_TEST

START_TEST(test_no_blobs_null_meta) {
    char *dir = make_tmpdir();
    const char *path = path_in(dir, "e.bct");
    bctf_writer *w = writer_ok(path);
    commit_ok(w, NULL);
    bctf_file *f = open_ok(path);
    ck_assert_uint_eq(bctf_blob_count(f), 0);
    ck_assert(cJSON_IsObject(bctf_meta(f)));
    ck_assert_ptr_null(bctf_meta(f)->child);
    bct_error err = {{0}};
    ck_assert_int_eq(bctf_blob(f, "x", NULL, NULL, &err), BCT_EFORMAT);
    bctf_close(f);
    rm_tmpdir(dir);
}
END_TEST

START_TEST(test_streaming_parts) {
    char *dir = make_tmpdir();
    const char *pa = path_in(dir, "a.bct"), *pb = path_in(dir, "b.bct");
    size_t n = 300000;
    uint8_t *p = pattern(n, 3);
    bct_error err = {{0}};

    bctf_writer *w = writer_ok(pa);
    add_ok(w, "first", "q", 1);
    add_ok(w, "streamed", p, n);
    add_ok(w, "after", "zz", 2);
    commit_ok(w, NULL);

    w = writer_ok(pb);
    add_ok(w, "first", "q", 1);
    ck_assert_int_eq(bctf_writer_begin(w, "streamed", &err), BCT_OK);
    size_t pos = 0, step = 1;
    while (pos < n) {
        size_t k = step < n - pos ? step : n - pos;
        ck_assert_int_eq(bctf_writer_append(w, p + pos, k, &err), BCT_OK);
        ck_assert_int_eq(bctf_writer_append(w, NULL, 0, &err), BCT_OK);
        pos += k;
        step = step * 3 + 1;
    }
    ck_assert_int_eq(bctf_writer_end(w, &err), BCT_OK);
    add_ok(w, "after", "zz", 2);
    commit_ok(w, NULL);

    /* Deterministic: both files are byte-identical. */
    size_t la, lb;
    char *a = test_read_file(pa, &la), *b = test_read_file(pb, &lb);
    ck_assert_ptr_nonnull(a);
    ck_assert_ptr_nonnull(b);
    ck_assert_uint_eq(la, lb);
    ck_assert_int_eq(memcmp(a, b, la), 0);
    free(a);
    free(b);

    bctf_file *f = open_ok(pb);
    expect_blob(f, "streamed", p, n);
    expect_blob(f, "after", "zz", 2);
    bctf_close(f);
    free(p);
    rm_tmpdir(dir);
}
END_TEST

START_TEST(test_writer_misuse) {
    char *dir = make_tmpdir();
    const char *path = path_in(dir, "m.bct");
    bct_error err = {{0}};
    bctf_writer *w = writer_ok(path);

    add_ok(w, "a", "one", 3);
    ck_assert_int_eq(bctf_writer_add(w, "a", "two", 3, &err), BCT_EINVAL);
    ck_assert_ptr_nonnull(strstr(err.msg, "\"a\""));
    ck_assert_ptr_nonnull(strstr(err.msg, "already"));
    ck_assert_int_eq(bctf_writer_add(w, "", "x", 1, &err), BCT_EINVAL);
    ck_assert_int_eq(bctf_writer_add(w, NULL, "x", 1, &err), BCT_EINVAL);
    ck_assert_int_eq(bctf_writer_add(w, "bad\xff", "x", 1, &err), BCT_EINVAL);
    ck_assert_ptr_nonnull(strstr(err.msg, "UTF-8"));
    ck_assert_int_eq(bctf_writer_add(w, "nul", NULL, 5, &err), BCT_EINVAL);
    ck_assert_int_eq(bctf_writer_append(w, "x", 1, &err), BCT_EINVAL);
    ck_assert_int_eq(bctf_writer_end(w, &err), BCT_EINVAL);
    ck_assert_int_eq(bctf_writer_begin(w, "s", &err), BCT_OK);
    ck_assert_int_eq(bctf_writer_append(w, NULL, 3, &err), BCT_EINVAL);
    ck_assert_int_eq(bctf_writer_begin(w, "t", &err), BCT_EINVAL);
    ck_assert_ptr_nonnull(strstr(err.msg, "still open"));
    ck_assert_int_eq(bctf_writer_add(w, "t", "x", 1, &err), BCT_EINVAL);
    ck_assert_int_eq(bctf_writer_append(w, "ss", 2, &err), BCT_OK);
    ck_assert_int_eq(bctf_writer_end(w, &err), BCT_OK);
    /* Still usable after all those rejections. */
    commit_ok(w, NULL);

    bctf_file *f = open_ok(path);
    ck_assert_uint_eq(bctf_blob_count(f), 2);
    expect_blob(f, "a", "one", 3);
    expect_blob(f, "s", "ss", 2);
    bctf_close(f);
    ck_assert_int_eq(unlink(path), 0);

    /* Commit with an open blob: fails, frees w, leaves nothing. */
    w = writer_ok(path);
    ck_assert_int_eq(bctf_writer_begin(w, "open", &err), BCT_OK);
    ck_assert_int_eq(bctf_writer_commit(w, NULL, &err), BCT_EINVAL);
    ck_assert_ptr_nonnull(strstr(err.msg, "still open"));
    ck_assert_int_eq(count_entries(dir, NULL, 0), 0);

    /* meta that is not an object. */
    w = writer_ok(path);
    cJSON *arr = cJSON_CreateArray();
    ck_assert_int_eq(bctf_writer_commit(w, arr, &err), BCT_EINVAL);
    ck_assert_ptr_nonnull(strstr(err.msg, "meta"));
    cJSON_Delete(arr);
    ck_assert_int_eq(count_entries(dir, NULL, 0), 0);

    /* meta a reader would refuse (invalid UTF-8 in a string). */
    w = writer_ok(path);
    add_ok(w, "x", "x", 1);
    cJSON *bad = cJSON_CreateObject();
    cJSON_AddStringToObject(bad, "s", "bad\xc3(");
    ck_assert_int_eq(bctf_writer_commit(w, bad, &err), BCT_EINVAL);
    ck_assert_ptr_nonnull(strstr(err.msg, "UTF-8"));
    cJSON_Delete(bad);
    ck_assert_int_eq(count_entries(dir, NULL, 0), 0);

    /* NULL writer. */
    ck_assert_int_eq(bctf_writer_add(NULL, "a", "x", 1, &err), BCT_EINVAL);
    ck_assert_int_eq(bctf_writer_commit(NULL, NULL, &err), BCT_EINVAL);
    rm_tmpdir(dir);
}
END_TEST

START_TEST(test_abort_leaves_nothing) {
    char *dir = make_tmpdir();
    const char *path = path_in(dir, "x.bct");
    bctf_writer *w = writer_ok(path);
    ck_assert_int_eq(count_entries(dir, NULL, 0), 1); /* the temp file */
    uint8_t *p = pattern(100000, 9);
    add_ok(w, "a", p, 100000);
    bct_error err = {{0}};
    ck_assert_int_eq(bctf_writer_begin(w, "half", &err), BCT_OK);
    ck_assert_int_eq(bctf_writer_append(w, p, 10, &err), BCT_OK);
    bctf_writer_abort(w);
    ck_assert_int_eq(count_entries(dir, NULL, 0), 0);
    bctf_writer_abort(NULL);

    /* An existing final file is untouched by an aborted rewrite. */
    w = writer_ok(path);
    add_ok(w, "v", "old", 3);
    commit_ok(w, NULL);
    w = writer_ok(path);
    add_ok(w, "v", "new", 3);
    bctf_writer_abort(w);
    ck_assert_int_eq(count_entries(dir, NULL, 0), 1);
    bctf_file *f = open_ok(path);
    expect_blob(f, "v", "old", 3);
    bctf_close(f);
    free(p);
    rm_tmpdir(dir);
}
END_TEST

START_TEST(test_commit_replaces_atomically) {
    char *dir = make_tmpdir();
    const char *path = path_in(dir, "model.bct");
    bctf_writer *w = writer_ok(path);
    add_ok(w, "v", "old", 3);
    commit_ok(w, NULL);
    bctf_file *old = open_ok(path);

    w = writer_ok(path);
    uint8_t *p = pattern(1 << 20, 5);
    add_ok(w, "v", "new", 3);
    add_ok(w, "big", p, 1 << 20);
    /* Mid-write, the final path still holds the complete old file. */
    bctf_file *mid = open_ok(path);
    expect_blob(mid, "v", "old", 3);
    bctf_close(mid);
    ck_assert_int_eq(count_entries(dir, NULL, 0), 2);
    commit_ok(w, NULL);

    /* The old mapping still sees the old file; a new open the new one. */
    expect_blob(old, "v", "old", 3);
    bctf_file *f = open_ok(path);
    expect_blob(f, "v", "new", 3);
    expect_blob(f, "big", p, 1 << 20);
    bctf_close(f);
    bctf_close(old);
    ck_assert_int_eq(count_entries(dir, NULL, 0), 1);
    free(p);
    rm_tmpdir(dir);
}
END_TEST

START_TEST(test_writer_io_errors) {
    bct_error err = {{0}};
    bctf_writer *w = (bctf_writer *)1;
    ck_assert_int_eq(bctf_writer_open("/nonexistent/dir/m.bct", &w, &err),
                     BCT_EIO);
    ck_assert_ptr_null(w);
    ck_assert_ptr_nonnull(strstr(err.msg, "/nonexistent/dir/m.bct"));

    /* rename() onto a non-empty directory fails: temp removed, message
     * names both paths. */
    char *dir = make_tmpdir();
    char target[4096], sub[4200];
    snprintf(target, sizeof(target), "%s/d.bct", dir);
    snprintf(sub, sizeof(sub), "%s/sub", target);
    ck_assert_int_eq(mkdir(target, 0755), 0);
    ck_assert_int_eq(mkdir(sub, 0755), 0);
    w = writer_ok(target);
    add_ok(w, "a", "x", 1);
    ck_assert_int_eq(bctf_writer_commit(w, NULL, &err), BCT_EIO);
    ck_assert_ptr_nonnull(strstr(err.msg, target));
    ck_assert_ptr_nonnull(strstr(err.msg, "rename"));
    ck_assert_int_eq(count_entries(dir, NULL, 0), 1);
    rmdir(sub);
    rm_tmpdir(dir);

    /* Reader I/O errors. */
    test_expect_open_io_errors(&bct_reader, "/nonexistent/m.bct");
}
END_TEST

static void touch(const char *path) {
    FILE *fp = fopen(path, "w");
    ck_assert_ptr_nonnull(fp);
    fputs("junk", fp);
    fclose(fp);
}

START_TEST(test_remove_stale_temps) {
    char *dir = make_tmpdir();
    touch(path_in(dir, "m.bct.tmp.AbC123"));   /* stale: removed */
    touch(path_in(dir, "n.bct.tmp.zzzzzz"));   /* stale: removed */
    touch(path_in(dir, "m.bct"));              /* a model: kept */
    touch(path_in(dir, "notes.txt"));          /* kept */
    touch(path_in(dir, "m.bct.tmp.short"));    /* not mkstemp's: kept */
    touch(path_in(dir, "m.bct.tmp.ABCDEFG"));  /* 7 chars: kept */
    touch(path_in(dir, "m.bin.tmp.ABCDEF"));   /* not .bct: kept */
    ck_assert_int_eq(mkdir(path_in(dir, "d.bct.tmp.QWERTY"), 0755), 0);
    ck_assert_int_eq(symlink("m.bct", path_in(dir, "l.bct.tmp.SYMLNK")), 0);

    /* A live writer's temp file is skipped (it holds a lock). */
    const char *live = path_in(dir, "live.bct");
    bctf_writer *w = writer_ok(live);
    add_ok(w, "a", "x", 1);

    ck_assert_int_eq(bctf_remove_stale_temps(dir), 2);
    char names[1024];
    ck_assert_int_eq(count_entries(dir, names, sizeof(names)), 8);
    ck_assert_ptr_null(strstr(names, "AbC123"));
    ck_assert_ptr_null(strstr(names, "zzzzzz"));
    ck_assert_ptr_nonnull(strstr(names, "live.bct.tmp."));
    ck_assert_ptr_nonnull(strstr(names, "SYMLNK"));

    commit_ok(w, NULL);
    bctf_file *f = open_ok(live);
    expect_blob(f, "a", "x", 1);
    bctf_close(f);

    /* A writer that dies mid-file leaves an unlocked temp: removed. */
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        bct_error e;
        bctf_writer *cw = NULL;
        if (bctf_writer_open(path_in(dir, "crash.bct"), &cw, &e) != BCT_OK ||
            bctf_writer_add(cw, "a", "partial", 7, &e) != BCT_OK)
            _exit(1);
        _exit(0); /* "crash": no commit, no abort */
    }
    int status;
    ck_assert_int_eq(waitpid(pid, &status, 0), pid);
    ck_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    char keep[1024];
    ck_assert_int_eq(count_entries(dir, keep, sizeof(keep)), 9);
    ck_assert_ptr_nonnull(strstr(keep, "crash.bct.tmp."));
    ck_assert_ptr_null(strstr(keep, "crash.bct "));
    ck_assert_int_eq(bctf_remove_stale_temps(dir), 1);
    count_entries(dir, keep, sizeof(keep));
    ck_assert_ptr_null(strstr(keep, "crash.bct.tmp."));

    ck_assert_int_eq(bctf_remove_stale_temps("/nonexistent/dir"), BCT_EIO);
    rmdir(path_in(dir, "d.bct.tmp.QWERTY"));
    rm_tmpdir(dir);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* corrupt files                                                            */
/* ------------------------------------------------------------------------ */

START_TEST(test_truncation_sweep) {
    size_t len;
    uint8_t *img = writer_image(&len);
    test_expect_prefixes_fail(&bct_reader, img, len, 64, "truncated");
    /* Through files too, including files shorter than the preamble. */
    size_t cuts[] = {0, 5, 8, 63, 64, 65, len / 2, len - 1};
    for (size_t i = 0; i < sizeof(cuts) / sizeof(cuts[0]); i++)
        expect_fail(img, cuts[i], BCT_EFORMAT,
                    cuts[i] >= 64 ? "truncated" : "too short");
    char msg[128];
    snprintf(msg, sizeof(msg), "truncated: header says %zu bytes, file has %zu",
             len, len - 1);
    expect_fail(img, len - 1, BCT_EFORMAT, msg);
    free(img);
}
END_TEST

START_TEST(test_bad_preamble) {
    size_t len;
    uint8_t *img = writer_image(&len);
    uint8_t *c = malloc(len + 1);
    ck_assert_ptr_nonnull(c);

    memcpy(c, img, len);
    c[0] = 'X';
    expect_fail(c, len, BCT_EFORMAT, "not a .bct file");
    expect_fail(c, 10, BCT_EFORMAT, "not a .bct file");

    memcpy(c, img, len);
    le_write32(c + 8, 7);
    expect_fail2(c, len, BCT_EUNSUPPORTED, "version 7", "not supported");
    le_write32(c + 8, 0);
    expect_fail(c, len, BCT_EUNSUPPORTED, "version 0");

    memcpy(c, img, len);
    le_write32(c + 12, 4);
    expect_fail(c, len, BCT_EFORMAT, "flags");

    for (int i = 48; i < 64; i += 5) {
        memcpy(c, img, len);
        c[i] = 1;
        expect_fail(c, len, BCT_EFORMAT, "reserved");
    }

    /* Trailing byte after the header. */
    memcpy(c, img, len);
    c[len] = ' ';
    expect_fail(c, len + 1, BCT_EFORMAT, "unexpected data at the end");

    /* file_len lying either way. */
    memcpy(c, img, len);
    le_write64(c + 32, len + 100);
    expect_fail(c, len, BCT_EFORMAT, "truncated");
    le_write64(c + 32, (uint64_t)-1);
    expect_fail(c, len, BCT_EFORMAT, "truncated");
    le_write64(c + 32, len - 1);
    expect_fail(c, len, BCT_EFORMAT, "unexpected data");

    free(c);
    free(img);
}
END_TEST

START_TEST(test_header_range_lies) {
    size_t len;
    uint8_t *img = writer_image(&len);
    uint64_t hoff = le_read64(img + 16), hlen = le_read64(img + 24);
    uint8_t *c = malloc(len);
    ck_assert_ptr_nonnull(c);

    uint64_t bad_offs[] = {0, 63, len + 1, (uint64_t)-1, (uint64_t)1 << 63};
    for (size_t i = 0; i < sizeof(bad_offs) / sizeof(bad_offs[0]); i++) {
        memcpy(c, img, len);
        le_write64(c + 16, bad_offs[i]);
        fix_crcs(c, len);
        expect_fail(c, len, BCT_EFORMAT, "header offset");
    }
    /* Offset and length that do not end at EOF. */
    uint64_t pairs[][2] = {{hoff, hlen - 1}, {hoff, hlen + 1},
                           {hoff + 1, hlen}, {hoff - 1, hlen},
                           {hoff, (uint64_t)-1}, {64, hlen}};
    for (size_t i = 0; i < sizeof(pairs) / sizeof(pairs[0]); i++) {
        memcpy(c, img, len);
        le_write64(c + 16, pairs[i][0]);
        le_write64(c + 24, pairs[i][1]);
        fix_crcs(c, len);
        expect_fail(c, len, BCT_EFORMAT, "does not end at the end");
    }
    /* Consistent but shifted: the header then starts with the last byte
     * of a blob and is not JSON. */
    memcpy(c, img, len);
    le_write64(c + 16, hoff - 1);
    le_write64(c + 24, hlen + 1);
    fix_crcs(c, len);
    expect_fail(c, len, BCT_EFORMAT, "not valid JSON");
    /* Header of length 0 at the very end. */
    memcpy(c, img, len);
    le_write64(c + 16, len);
    le_write64(c + 24, 0);
    fix_crcs(c, len);
    expect_fail(c, len, BCT_EFORMAT, "header length is 0");
    free(c);
    free(img);
}
END_TEST

START_TEST(test_checksums) {
    size_t len;
    uint8_t *img = writer_image(&len);
    uint64_t hoff = le_read64(img + 16);
    uint8_t *c = malloc(len);
    ck_assert_ptr_nonnull(c);

    /* A flipped byte in a blob, in padding, in the header, in each CRC. */
    size_t spots[] = {64, 64 + 129, 64 + 150, (size_t)hoff - 1, (size_t)hoff,
                      (size_t)hoff + 10, len - 1, 40, 44};
    for (size_t i = 0; i < sizeof(spots) / sizeof(spots[0]); i++) {
        memcpy(c, img, len);
        c[spots[i]] ^= 0x20;
        expect_fail2(c, len, BCT_EFORMAT, "checksum mismatch",
                     "file is corrupt");
    }
    /* With the CRC fixed, non-zero padding is still caught. */
    memcpy(c, img, len);
    c[64 + 150] = 7; /* between "codes" (130 bytes) and "empty"/"scales" */
    fix_crcs(c, len);
    expect_fail(c, len, BCT_EFORMAT, "padding byte at offset 214");
    free(c);
    free(img);
}
END_TEST

START_TEST(test_bad_blob_entries) {
    /* Each crafted with valid CRCs so the blob check itself is reached. */
    expect_crafted_fail("{\"w\":{\"offset\":65,\"size\":1}}", "{}", 128,
                        "\"w\"", "multiple of 64");
    expect_crafted_fail("{\"w\":{\"offset\":96,\"size\":0}}", "{}", 128,
                        "\"w\"", "multiple of 64");
    expect_crafted_fail("{\"lo\":{\"offset\":0,\"size\":8}}", "{}", 128,
                        "\"lo\"", "outside");
    expect_crafted_fail("{\"hi\":{\"offset\":128,\"size\":65}}", "{}", 128,
                        "\"hi\"", "outside");
    expect_crafted_fail("{\"far\":{\"offset\":256,\"size\":0}}", "{}", 128,
                        "\"far\"", "outside");
    expect_crafted_fail("{\"a\":{\"offset\":64,\"size\":65},"
                        "\"b\":{\"offset\":128,\"size\":1}}",
                        "{}", 128, "\"a\"", "overlap");
    expect_crafted_fail("{\"b\":{\"offset\":128,\"size\":64},"
                        "\"a\":{\"offset\":64,\"size\":128}}",
                        "{}", 128, "\"b\"", "overlap");
    expect_crafted_fail("{\"same\":{\"offset\":64,\"size\":1},"
                        "\"other\":{\"offset\":64,\"size\":1}}",
                        "{}", 128, "overlap", NULL);
    expect_crafted_fail("{\"neg\":{\"offset\":-64,\"size\":1}}", "{}", 128,
                        "\"neg\"", "non-negative integer");
    expect_crafted_fail("{\"frac\":{\"offset\":64,\"size\":0.5}}", "{}", 128,
                        "\"frac\"", "non-negative integer");
    expect_crafted_fail("{\"huge\":{\"offset\":64,\"size\":1e300}}", "{}",
                        128, "\"huge\"", "2^53");
    expect_crafted_fail("{\"big\":{\"offset\":18446744073709551616,"
                        "\"size\":1}}",
                        "{}", 128, "\"big\"", "2^53");
    expect_crafted_fail("{\"str\":{\"offset\":\"64\",\"size\":1}}", "{}", 128,
                        "\"str\"", "a string");
    expect_crafted_fail("{\"nosize\":{\"offset\":64}}", "{}", 128,
                        "\"nosize\"", "missing \"size\"");
    expect_crafted_fail("{\"nooff\":{\"size\":1}}", "{}", 128, "\"nooff\"",
                        "missing \"offset\"");
    expect_crafted_fail("{\"twice\":{\"offset\":64,\"size\":1,\"size\":2}}",
                        "{}", 128, "\"twice\"", "twice");
    expect_crafted_fail("{\"arr\":[64,1]}", "{}", 128, "\"arr\"",
                        "an array");
    expect_crafted_fail("{\"\":{\"offset\":64,\"size\":1}}", "{}", 128,
                        "empty name", NULL);
    expect_crafted_fail("{\"dup\":{\"offset\":64,\"size\":1},"
                        "\"x\":{\"offset\":128,\"size\":1},"
                        "\"dup\":{\"offset\":192,\"size\":1}}",
                        "{}", 256, "\"dup\"", "more than once");
    /* Names that differ only after an embedded NUL collapse to one. */
    expect_crafted_fail("{\"n\\u0000a\":{\"offset\":64,\"size\":1},"
                        "\"n\\u0000b\":{\"offset\":128,\"size\":1}}",
                        "{}", 256, "\"n\"", "more than once");
}
END_TEST

START_TEST(test_valid_crafted_layouts) {
    /* Empty blobs own no bytes: one at the end of the region, one inside
     * another blob's range; gaps are zero; unknown keys are ignored. */
    uint8_t region[192] = {0};
    memset(region, 0xAA, 70);
    memset(region + 128, 0xBB, 64);
    char *h = hdr("{\"a\":{\"offset\":64,\"size\":70,\"note\":1},"
                  "\"e1\":{\"offset\":256,\"size\":0},"
                  "\"e2\":{\"offset\":128,\"size\":0},"
                  "\"c\":{\"offset\":192,\"size\":64}}",
                  "{\"k\":[1,{\"deep\":true}]}");
    char h2[1024];
    snprintf(h2, sizeof(h2), "  %.*s,\"future\":{\"x\":1}}\n\t",
             (int)strlen(h) - 1, h);
    size_t len;
    uint8_t *img = craft(h2, region, sizeof(region), &len);
    bct_error err = {{0}};
    bctf_file *f = NULL;
    int rc = bctf_open_buffer(img, len, &f, &err);
    ck_assert_msg(rc == BCT_OK, "%s", err.msg);
    const void *d;
    size_t n;
    ck_assert_int_eq(bctf_blob(f, "e1", &d, &n, &err), BCT_OK);
    ck_assert_uint_eq(n, 0);
    ck_assert_ptr_eq(d, img + 256);
    ck_assert_int_eq(bctf_blob(f, "c", &d, &n, &err), BCT_OK);
    ck_assert_uint_eq(n, 64);
    ck_assert_int_eq(((const uint8_t *)d)[63], 0xBB);
    ck_assert_ptr_nonnull(cJSON_GetObjectItem(bctf_meta(f), "k"));
    bctf_close(f);
    free(img);
    free(h);
}
END_TEST

START_TEST(test_bad_header_json) {
    expect_header_fail("not json", "not valid JSON");
    expect_header_fail("{\"format\":\"bct\",", "not valid JSON");
    expect_header_fail("[1,2]", "an array");
    expect_header_fail("\"bct\"", "a string");

    char *h = hdr("{}", "{}");
    char buf[512];
    snprintf(buf, sizeof(buf), "%s x", h);
    expect_header_fail(buf, "unexpected data after the JSON");
    snprintf(buf, sizeof(buf), "%s{}", h);
    expect_header_fail(buf, "unexpected data after the JSON");
    free(h);

    expect_header_fail("{\"format\":\"bct\",\"version\":1,\"blobs\":{},"
                       "\"meta\":{\"s\":\"\xc3\x28\"}}",
                       "UTF-8");
    expect_header_fail("{\"format\":\"bct\",\"version\":1,\"blobs\":{},"
                       "\"meta\":{\"s\":\"a\x01\"}}",
                       "control character");
    expect_header_fail("{\"format\":\"bct\",\"version\":1,\"blobs\":{}}",
                       "missing \"meta\"");
    expect_header_fail("{\"format\":\"bct\",\"version\":1,\"meta\":{}}",
                       "missing \"blobs\"");
    expect_header_fail("{\"version\":1,\"blobs\":{},\"meta\":{}}",
                       "missing \"format\"");
    expect_header_fail("{\"format\":\"bct\",\"blobs\":{},\"meta\":{}}",
                       "missing \"version\"");
    expect_header_fail("{\"format\":\"gguf\",\"version\":1,\"blobs\":{},"
                       "\"meta\":{}}",
                       "\"gguf\"");
    expect_header_fail("{\"format\":1,\"version\":1,\"blobs\":{},"
                       "\"meta\":{}}",
                       "format is 1");
    expect_header_fail("{\"format\":\"bct\",\"version\":2,\"blobs\":{},"
                       "\"meta\":{}}",
                       "version is 2");
    expect_header_fail("{\"format\":\"bct\",\"version\":\"1\",\"blobs\":{},"
                       "\"meta\":{}}",
                       "version is a string");
    expect_header_fail("{\"format\":\"bct\",\"version\":1,\"blobs\":[],"
                       "\"meta\":{}}",
                       "blobs is an array");
    expect_header_fail("{\"format\":\"bct\",\"version\":1,\"blobs\":{},"
                       "\"meta\":null}",
                       "meta is null");
    expect_header_fail("{\"format\":\"bct\",\"version\":1,\"blobs\":{},"
                       "\"meta\":{},\"meta\":{}}",
                       "\"meta\" appears twice");

    /* Nesting beyond what cJSON parses: refused by the structure budget
     * before cJSON sees it. */
    size_t depth = 2000;
    char *deep = malloc(2 * depth + 200);
    ck_assert_ptr_nonnull(deep);
    strcpy(deep, "{\"format\":\"bct\",\"version\":1,\"blobs\":{},\"meta\":{\"d\":");
    size_t p = strlen(deep);
    for (size_t i = 0; i < depth; i++) deep[p++] = '[';
    for (size_t i = 0; i < depth; i++) deep[p++] = ']';
    strcpy(deep + p, "}}");
    expect_header_fail(deep, "nests deeper than");
    free(deep);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* zlib helpers                                                             */
/* ------------------------------------------------------------------------ */

/* Issue 17 (5), the .bct side: a header of one huge array (3M entries,
 * 6 MB of text) or of too many values is refused before cJSON builds a
 * tree of 64 bytes per value. */
START_TEST(test_header_budget) {
    size_t n = 3000000, cap = 2 * n + 64;
    char *meta = malloc(cap);
    ck_assert_ptr_nonnull(meta);
    size_t o = (size_t)snprintf(meta, cap, "{\"x\":[");
    for (size_t i = 0; i < n; i++, o += 2) memcpy(meta + o, i ? ",0" : " 0", 2);
    snprintf(meta + o, cap - o, "]}");
    char *h = hdr("[]", meta);
    expect_header_fail(h, "array of more than");
    free(h);
    o = (size_t)snprintf(meta, cap, "{");
    for (size_t i = 0; o + 40 < cap && i < 400000; i++)
        o += (size_t)snprintf(meta + o, cap - o, "%s\"k%zu\":{}", i ? "," : "", i);
    snprintf(meta + o, cap - o, "}");
    h = hdr("[]", meta);
    expect_header_fail(h, "values");
    free(h);
    free(meta);
}
END_TEST

static void inflate_fail(const void *z, size_t zn, size_t expected,
                         const char *needle) {
    bct_error err = {{0}};
    void *out = (void *)1;
    uint8_t *copy = test_copy(z, zn);
    int rc = bctf_inflate(copy, zn, expected, &out, &err);
    ck_assert_msg(rc == BCT_EFORMAT, "inflate rc %d: %s", rc, err.msg);
    ck_assert_ptr_null(out);
    ck_assert_msg(strstr(err.msg, needle), "message lacks \"%s\": %s", needle,
                  err.msg);
    free(copy);
}

START_TEST(test_deflate_inflate) {
    bct_error err = {{0}};
    /* vocab-like text */
    size_t n = 0, cap = 1 << 20;
    char *text = malloc(cap);
    ck_assert_ptr_nonnull(text);
    for (int i = 0; n < cap - 32; i++)
        n += (size_t)snprintf(text + n, cap - n, "##tok%d\n", i % 5000);
    void *z;
    size_t zn;
    ck_assert_int_eq(bctf_deflate(text, n, &z, &zn, &err), BCT_OK);
    ck_assert_uint_lt(zn, n / 4);
    void *back;
    ck_assert_int_eq(bctf_inflate(z, zn, n, &back, &err), BCT_OK);
    ck_assert_int_eq(memcmp(back, text, n), 0);
    ck_assert_int_eq(((char *)back)[n], '\0');
    free(back);

    /* Wrong expected sizes. */
    inflate_fail(z, zn, n - 1, "more than the expected");
    inflate_fail(z, zn, 0, "more than the expected");
    inflate_fail(z, zn, n + 1, "expands to");
    /* Cut short, trailing junk, corrupted bytes. */
    inflate_fail(z, zn - 1, n, "");
    inflate_fail(z, zn / 2, n, "truncated");
    uint8_t *junk = malloc(zn + 3);
    ck_assert_ptr_nonnull(junk);
    memcpy(junk, z, zn);
    memcpy(junk + zn, "abc", 3);
    inflate_fail(junk, zn + 3, n, "after the end of the stream");
    memcpy(junk, z, zn);
    junk[zn / 2] ^= 0xFF;
    inflate_fail(junk, zn, n, "");
    memcpy(junk, z, zn);
    junk[zn - 1] ^= 1; /* adler32 */
    inflate_fail(junk, zn, n, "corrupt");
    memcpy(junk, z, zn);
    junk[0] = 0x00; /* zlib header */
    inflate_fail(junk, zn, n, "corrupt");
    inflate_fail("not zlib at all", 15, 100, "corrupt");
    inflate_fail("", 0, 10, "truncated");
    free(junk);
    free(z);
    free(text);

    /* Empty input round trip. */
    ck_assert_int_eq(bctf_deflate(NULL, 0, &z, &zn, &err), BCT_OK);
    ck_assert_uint_gt(zn, 0);
    ck_assert_int_eq(bctf_inflate(z, zn, 0, &back, &err), BCT_OK);
    ck_assert_int_eq(((char *)back)[0], '\0');
    free(back);
    inflate_fail(z, zn, 1, "expands to 0 bytes, expected 1");
    free(z);

    /* Incompressible data round trip. */
    uint8_t *rnd = pattern(1 << 20, 11);
    ck_assert_int_eq(bctf_deflate(rnd, 1 << 20, &z, &zn, &err), BCT_OK);
    ck_assert_int_eq(bctf_inflate(z, zn, 1 << 20, &back, &err), BCT_OK);
    ck_assert_int_eq(memcmp(back, rnd, 1 << 20), 0);
    free(back);
    free(z);
    free(rnd);

    /* Zip bomb: 64 MiB of zeros compresses to ~64 KiB; asking for 4 KiB
     * must fail without producing more. */
    size_t bomb_n = (size_t)64 << 20;
    uint8_t *zeros = calloc(1, bomb_n);
    ck_assert_ptr_nonnull(zeros);
    ck_assert_int_eq(bctf_deflate(zeros, bomb_n, &z, &zn, &err), BCT_OK);
    free(zeros);
    ck_assert_uint_lt(zn, 1 << 20);
    inflate_fail(z, zn, 4096, "more than the expected 4096 bytes");
    free(z);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* fuzz                                                                     */
/* ------------------------------------------------------------------------ */

static uint64_t rng_state = 0x9E3779B97F4A7C15ull;

static uint64_t rng(void) {
    uint64_t x = rng_state;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    rng_state = x;
    return x * 0x2545F4914F6CDD1Dull;
}

START_TEST(test_fuzz) {
    size_t len;
    uint8_t *img = writer_image(&len);
    uint64_t hoff = le_read64(img + 16);
    static const uint8_t interesting[] = {0,   1,   '"', '{', '}', '[', ']',
                                          ',', ':', '-', '9', 0x80, 0xC3,
                                          0xFF, '\\', 'e', '.'};
    int ok = 0, fails = 0;
    for (int iter = 0; iter < 20000; iter++) {
        size_t n = len;
        uint8_t *c = malloc(len + 64);
        ck_assert_ptr_nonnull(c);
        memcpy(c, img, len);
        int mode = (int)(rng() % 5);
        int flips = 1 + (int)(rng() % 6);
        for (int k = 0; k < flips; k++) {
            size_t at;
            if (mode == 0) at = rng() % len;                       /* anywhere */
            else if (mode == 1) at = rng() % 64;                   /* preamble */
            else at = hoff + rng() % (len - hoff);                 /* header */
            if (rng() % 2) c[at] = interesting[rng() % sizeof(interesting)];
            else c[at] ^= (uint8_t)(1u << (rng() % 8));
        }
        if (mode == 3) { /* truncate or extend, then make the preamble agree */
            n = rng() % (len + 64);
            if (n > len) memset(c + len, ' ', n - len);
            le_write64(c + 32, n);
            if (n > hoff) le_write64(c + 24, n - hoff);
        }
        if (mode >= 2) fix_crcs(c, n); /* reach the JSON validator */

        uint8_t *exact = test_copy(c, n);
        bct_error err = {{0}};
        bctf_file *f = (bctf_file *)1;
        int rc = bctf_open_buffer(exact, n, &f, &err);
        ck_assert_msg(rc == BCT_OK || rc == BCT_EFORMAT ||
                          rc == BCT_EUNSUPPORTED,
                      "iter %d: rc %d", iter, rc);
        if (rc == BCT_OK) {
            ok++;
            /* Touch every byte of every blob: ASan checks the bounds. */
            unsigned sum = 0;
            for (size_t i = 0; i < bctf_blob_count(f); i++) {
                const void *d;
                size_t sz;
                ck_assert_int_eq(bctf_blob_at(f, i, NULL, &d, &sz), BCT_OK);
                for (size_t j = 0; j < sz; j++) sum += ((const uint8_t *)d)[j];
            }
            (void)sum;
            ck_assert(cJSON_IsObject(bctf_meta(f)));
            bctf_close(f);
        } else {
            fails++;
            ck_assert_ptr_null(f);
            ck_assert(err.msg[0] != '\0');
        }
        free(exact);
        free(c);
    }
    ck_assert_int_gt(fails, 10000);
    free(img);
}
END_TEST

static Suite *bct_file_suite(void) {
    Suite *s = suite_create("bct_file");
    TCase *tc = tcase_create("writer");
    tcase_add_test(tc, test_round_trip);
    tcase_add_test(tc, test_no_blobs_null_meta);
    tcase_add_test(tc, test_streaming_parts);
    tcase_add_test(tc, test_writer_misuse);
    tcase_add_test(tc, test_abort_leaves_nothing);
    tcase_add_test(tc, test_commit_replaces_atomically);
    tcase_add_test(tc, test_writer_io_errors);
    tcase_add_test(tc, test_remove_stale_temps);
    tcase_set_timeout(tc, 120);
    suite_add_tcase(s, tc);

    tc = tcase_create("corrupt");
    tcase_add_test(tc, test_truncation_sweep);
    tcase_add_test(tc, test_bad_preamble);
    tcase_add_test(tc, test_header_range_lies);
    tcase_add_test(tc, test_checksums);
    tcase_add_test(tc, test_bad_blob_entries);
    tcase_add_test(tc, test_valid_crafted_layouts);
    tcase_add_test(tc, test_bad_header_json);
    tcase_add_test(tc, test_header_budget);
    suite_add_tcase(s, tc);

    tc = tcase_create("zlib");
    tcase_add_test(tc, test_deflate_inflate);
    tcase_set_timeout(tc, 120);
    suite_add_tcase(s, tc);

    tc = tcase_create("fuzz");
    tcase_add_test(tc, test_fuzz);
    tcase_set_timeout(tc, 300);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) {
    return test_run_suite(bct_file_suite());
}
