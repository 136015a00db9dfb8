/* libFuzzer: the tokenizer.json reader and pipeline (tok_create_from_json)
 * and the vocab.json + merges.txt reader (tok_create_from_bpe).  The input
 * is split at its first NUL byte: before it a tokenizer.json, after it a
 * text, encoded alone, as a pair with itself (both truncation directions)
 * and as word pieces.  When the input has a second NUL, the part between
 * the two is also tried as merges.txt beside the first part as vocab.json. */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "tokenizer/tokenizer.h"

/* Bounds the work per input (the server's own max_len is far lower). */
#define FUZZ_MAX_LEN 128

static void run(const tokenizer *t, const char *text, size_t tlen) {
    bct_error err = {{0}};
    int32_t ids[FUZZ_MAX_LEN];
    uint8_t types[FUZZ_MAX_LEN];
    tok_encoding enc = {.ids = ids, .type_ids = types, .cap = FUZZ_MAX_LEN};
    tok_encode(t, text, tlen, NULL, 0, FUZZ_MAX_LEN, &enc, &err);
    tok_encode_dir(t, text, tlen, text, tlen, 16, 0, &enc, &err);
    tok_encode_dir(t, text, tlen, text, tlen, 16, 1, &enc, &err);
    tok_tokenize(t, text, tlen, ids, FUZZ_MAX_LEN, &err);
    (void)tok_id_count(t);
    (void)tok_cls_id(t);
    (void)tok_sep_id(t);
    (void)tok_pad_id(t);
    (void)tok_unk_id(t);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const uint8_t *nul = memchr(data, 0, size);
    if (!nul) return 0;
    size_t jlen = (size_t)(nul - data);
    const char *rest = (const char *)nul + 1;
    size_t rlen = size - jlen - 1;
    bct_error err = {{0}};
    tokenizer *t = NULL;
    if (tok_create_from_json((const char *)data, jlen, &t, &err) == BCT_OK) {
        size_t dlen = 0;
        (void)tok_json_doc(t, &dlen);
        run(t, rest, rlen);
        tok_free(t);
    }
    const char *nul2 = memchr(rest, 0, rlen);
    if (nul2) {
        size_t mlen = (size_t)(nul2 - rest);
        t = NULL;
        if (tok_create_from_bpe((const char *)data, jlen, rest, mlen, &t, &err) == BCT_OK) {
            run(t, nul2 + 1, rlen - mlen - 1);
            tok_free(t);
        }
    }
    return 0;
}
