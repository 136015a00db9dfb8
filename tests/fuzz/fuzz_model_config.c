/* libFuzzer: a checkpoint's config.json (bert_config_parse). */
#include <stddef.h>
#include <stdint.h>

#include "model/bert_config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    bert_config c;
    bct_error err = {{0}};
    if (bert_config_parse((const char *)data, size, &c, &err) == BCT_OK) {
        bert_config_label_id(&c, "LABEL_0");
        bert_config_free(&c);
    }
    return 0;
}
