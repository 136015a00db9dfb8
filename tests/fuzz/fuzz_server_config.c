/* libFuzzer: the `bct serve` settings file (config_apply_json), then the
 * cross-field checks. */
#include <stddef.h>
#include <stdint.h>

#include "config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    srv_config c;
    bct_error err = {{0}};
    config_defaults(&c);
    if (config_apply_json(&c, (const char *)data, size, "fuzz", "/base", &err) == BCT_OK)
        config_validate(&c, &err);
    return 0;
}
