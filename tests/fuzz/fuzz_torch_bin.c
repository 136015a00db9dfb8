/* fuzz_torch_bin.c - libFuzzer harness for the PyTorch .bin reader: the
 * zip reader + restricted unpickler (torch_bin_open_buffer) on the input
 * as an archive, and the unpickler alone (pkl_load_state_dict) on the
 * input as a pickle, since most mutations of an archive never reach it.
 * On success every tensor's bytes are read, so ASan sees any view outside
 * the input.  Seeds: tests/fuzz/corpus/torch_bin/ (the fixtures of
 * tests/data/torch_bin and their data.pkl pickles).
 *
 * Build (Debian clang-14, from the repository root):
 *   clang-14 -g -O1 -fsanitize=fuzzer,address,undefined -Iengine \
 *     -I/usr/include/cjson tests/fuzz/fuzz_torch_bin.c \
 *     engine/formats/{torch_bin,pickle,safetensors}.c \
 *     engine/util/{status,utf8,extent,name_index,mapped_file,half,json_util}.c \
 *     -lcjson -lz -o fuzz_torch_bin
 *   ./fuzz_torch_bin -max_total_time=300 tests/fuzz/corpus/torch_bin
 */
#include <stddef.h>
#include <stdint.h>

#include "formats/pickle.h"
#include "formats/torch_bin.h"

static volatile uint8_t sink;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    bct_error err;
    st_file *f = NULL;
    if (torch_bin_open_buffer(data, size, &f, &err) == BCT_OK) {
        uint8_t x = 0;
        for (size_t i = 0; i < st_count(f); i++) {
            const st_tensor *t = st_at(f, i);
            for (size_t k = 0; k < t->nbytes; k++) x ^= t->data[k];
        }
        sink = x;
        st_close(f);
    }
    pkl_state_dict sd;
    if (pkl_load_state_dict(data, size, &sd, &err) == BCT_OK) pkl_state_dict_free(&sd);
    return 0;
}
