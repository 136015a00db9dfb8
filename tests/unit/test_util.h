/* test_util.h - helpers shared by the Check test programs. */
#ifndef BCT_TEST_UTIL_H
#define BCT_TEST_UTIL_H

#include <check.h>
#include <stddef.h>
#include <stdint.h>

#include "util/status.h"

/* Path under ../shared, or NULL if the shared folder is absent. */
const char *test_shared_path(const char *rel);
/* Path under tests/data (always present). */
const char *test_data_path(const char *rel);
/* Reads a whole file; returns malloc'd buffer (NUL-terminated) or NULL. */
char *test_read_file(const char *path, size_t *len);
/* Writes len bytes to a fresh temporary file; returns its path (static
 * buffer per call index 0..7, reused cyclically). */
const char *test_write_temp(const void *data, size_t len);
/* Runs the suite; returns the process exit status (77 = all skipped). */
int test_run_suite(Suite *s);

/* Exact-size heap copy of n bytes, so ASan flags any read past them. */
uint8_t *test_copy(const void *src, size_t n);

/* A file reader under test (safetensors, .bct), its functions behind one
 * signature so the checks below serve every format.  Define one with
 * TEST_READER; the adapters pass the caller's *out through, so a reader
 * that fails without setting *out to NULL is caught. */
typedef struct test_reader {
    int (*open_buffer)(const void *buf, size_t len, void **out, bct_error *err);
    int (*open_path)(const char *path, void **out, bct_error *err);
    void (*close)(void *f);
} test_reader;

#define TEST_READER(name, T, open_buffer_fn, open_path_fn, close_fn)                         \
    static int name##_open_buffer(const void *buf, size_t len, void **out, bct_error *err) { \
        T *f = *out;                                                                         \
        int rc = open_buffer_fn(buf, len, &f, err);                                          \
        *out = f;                                                                            \
        return rc;                                                                           \
    }                                                                                        \
    static int name##_open_path(const char *path, void **out, bct_error *err) {              \
        T *f = *out;                                                                         \
        int rc = open_path_fn(path, &f, err);                                                \
        *out = f;                                                                            \
        return rc;                                                                           \
    }                                                                                        \
    static void name##_close(void *f) { close_fn(f); }                                       \
    static const test_reader name = {name##_open_buffer, name##_open_path, name##_close}

/* Expects opening img both from an exact-size copy and from a temp file to
 * fail with code and a message containing needle (and needle2 unless
 * NULL); the file's message must also name its path. */
void test_expect_open_fail(const test_reader *r, const uint8_t *img, size_t len, int code, const char *needle,
                           const char *needle2);

/* Opens every proper prefix of img (exact-size copies), expecting
 * BCT_EFORMAT with a message, containing needle for prefixes of at least
 * from bytes (unless needle is NULL); then the whole img must open. */
void test_expect_prefixes_fail(const test_reader *r, const uint8_t *img, size_t len, size_t from, const char *needle);

/* Expects BCT_EIO naming the path for a missing file, and "regular file"
 * for a directory. */
void test_expect_open_io_errors(const test_reader *r, const char *missing_path);

#endif

/* Builds safetensors files for tests: add F32 tensors, then write. */
typedef struct test_st_builder test_st_builder;
test_st_builder *test_st_new(void);
/* shape: ndim dims; data: product(shape) floats (copied). */
void test_st_add(test_st_builder *b, const char *name, int ndim, const long *shape, const float *data);
/* Writes the file; returns 0 on success. Frees the builder. */
int test_st_write(test_st_builder *b, const char *path);

/* Writes a tiny random BERT checkpoint (L layers, hidden H, A heads,
 * intermediate I, vocab from `vocab_lines`) into dir.  name_style 0: HF
 * names with "bert." prefix; 1: no prefix and LayerNorm gamma/beta. */
int test_write_tiny_bert(const char *dir, int L, int H, int A, int I, const char *const *vocab_lines,
                         int nvocab, int name_style, unsigned seed);
