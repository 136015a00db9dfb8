/* test_util.h - helpers shared by the Check test programs. */
#ifndef BCT_TEST_UTIL_H
#define BCT_TEST_UTIL_H

#include <check.h>
#include <stddef.h>

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
