/* libFuzzer: a .bct image: the container (bctf_open_buffer, every blob),
 * then, when the container is valid, the model loader on it (header meta,
 * config, vocabulary, tensors) through a memfd.  The preamble's lengths
 * and both CRC-32s are recomputed first (docs/bct-format.md), so that
 * mutations reach the header and the loader instead of stopping at the
 * checksum; the checksum checks themselves are covered by test_bct_file. */
#define _GNU_SOURCE /* memfd_create */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <zlib.h>

#include "formats/bct_file.h"
#include "util/le.h"
#include "model/bert_model.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    /* Blobs are 64-byte aligned relative to the image: give it an aligned copy. */
    void *copy = NULL;
    if (posix_memalign(&copy, 64, size ? size : 1) != 0) return 0;
    memcpy(copy, data, size);
    uint8_t *b = copy;
    uint64_t hoff = size >= BCTF_PREAMBLE_SIZE ? le_read64(b + 16) : 0;
    if (hoff >= BCTF_PREAMBLE_SIZE && hoff <= size) {
        le_write64(b + 24, size - hoff);
        le_write64(b + 32, size);
        le_write32(b + 40, (uint32_t)crc32(crc32(0L, Z_NULL, 0), b + hoff, (uInt)(size - hoff)));
        le_write32(b + 44, (uint32_t)crc32(crc32(0L, Z_NULL, 0), b + BCTF_PREAMBLE_SIZE,
                                           (uInt)(hoff - BCTF_PREAMBLE_SIZE)));
    }
    bctf_file *f = NULL;
    bct_error err = {{0}};
    int valid = bctf_open_buffer(copy, size, &f, &err) == BCT_OK;
    if (valid) {
        volatile uint8_t sink = 0;
        for (size_t i = 0; i < bctf_blob_count(f); i++) {
            const char *name;
            const void *blob;
            size_t n;
            if (bctf_blob_at(f, i, &name, &blob, &n) == BCT_OK && n) sink ^= ((const uint8_t *)blob)[n - 1];
        }
        (void)sink;
        bctf_close(f);
    }
    if (!valid) {
        free(copy);
        return 0;
    }
    int fd = memfd_create("fuzz.bct", MFD_CLOEXEC);
    if (fd < 0) {
        free(copy);
        return 0;
    }
    if (write(fd, copy, size) == (ssize_t)size) {
        char path[64];
        snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
        bert_model *m = NULL;
        if (bert_model_load_bct(path, &m, &err) == BCT_OK) bert_model_free(m);
    }
    close(fd);
    free(copy);
    return 0;
}
