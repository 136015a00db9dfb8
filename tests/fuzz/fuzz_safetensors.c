/* libFuzzer: a safetensors image (st_open_buffer), then every tensor read
 * as fp32 when its dtype converts. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "formats/safetensors.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    st_file *f = NULL;
    bct_error err = {{0}};
    if (st_open_buffer(data, size, &f, &err) != BCT_OK) return 0;
    for (size_t i = 0; i < st_count(f); i++) {
        const st_tensor *t = st_at(f, i);
        if (!st_dtype_is_float(t->dtype) || t->numel > (1 << 20)) continue;
        float *buf = malloc((size_t)t->numel * sizeof(float) + 1);
        if (buf) st_tensor_to_f32(t, buf, &err);
        free(buf);
        st_find(f, t->name);
    }
    st_close(f);
    return 0;
}
