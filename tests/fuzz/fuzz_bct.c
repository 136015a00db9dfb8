/* libFuzzer: a .bct image: the container (bctf_open_buffer, every blob),
 * then, when the container is valid, the model loader on it (header meta,
 * config, vocabulary, tensors) through a memfd. */
#define _GNU_SOURCE /* memfd_create */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "formats/bct_file.h"
#include "model/bert_model.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    /* Blobs are 64-byte aligned relative to the image: give it an aligned copy. */
    void *copy = NULL;
    if (posix_memalign(&copy, 64, size ? size : 1) != 0) return 0;
    memcpy(copy, data, size);
    bctf_file *f = NULL;
    bct_error err = {{0}};
    int valid = bctf_open_buffer(copy, size, &f, &err) == BCT_OK;
    if (valid) {
        volatile uint8_t sink = 0;
        for (size_t i = 0; i < bctf_blob_count(f); i++) {
            const char *name;
            const void *b;
            size_t n;
            if (bctf_blob_at(f, i, &name, &b, &n) == BCT_OK && n) sink ^= ((const uint8_t *)b)[n - 1];
        }
        (void)sink;
        bctf_close(f);
    }
    free(copy);
    if (!valid) return 0;
    int fd = memfd_create("fuzz.bct", MFD_CLOEXEC);
    if (fd < 0) return 0;
    if (write(fd, data, size) == (ssize_t)size) {
        char path[64];
        snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
        bert_model *m = NULL;
        if (bert_model_load_bct(path, &m, &err) == BCT_OK) bert_model_free(m);
    }
    close(fd);
    return 0;
}
