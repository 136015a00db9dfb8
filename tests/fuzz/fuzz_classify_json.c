/* libFuzzer: the request bodies of /classify and /predict (api_parse),
 * NUL-terminated as http.c hands them over; api_request_free() always
 * follows, as on_completed does. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "api_classify.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char *body = malloc(size + 1);
    if (!body) return 0;
    memcpy(body, data, size);
    body[size] = '\0';
    for (int kind = API_CLASSIFY; kind <= API_PREDICT; kind++) {
        api_request r;
        srv_err err;
        api_parse((api_kind)kind, body, size, 64, &r, &err);
        api_request_free(&r);
    }
    free(body);
    return 0;
}
