/* libFuzzer: the WordPiece tokenizer.  The input is split at its first
 * NUL byte: before it a vocab.txt (parsed with vocab_parse; when it lacks
 * the special tokens a fixed small vocabulary is used), after it the text,
 * tokenized alone and as a pair with itself, cased and uncased. */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "tokenizer/tokenizer.h"
#include "tokenizer/vocab.h"

static const char base_vocab[] = "[PAD]\n[UNK]\n[CLS]\n[SEP]\n[MASK]\nthe\ncat\n##s\nsat\n,\n.\n##at\nc\n##a\n"
                                 "un\n##aff\n##able\ne\n##\xcc\x81\n\xe4\xb8\xad\n";

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const uint8_t *nul = memchr(data, 0, size);
    size_t vlen = nul ? (size_t)(nul - data) : 0;
    const char *text = (const char *)data + (nul ? vlen + 1 : 0);
    size_t tlen = size - (nul ? vlen + 1 : 0);
    bct_error err = {{0}};
    vocab *v = NULL;
    tokenizer *t = NULL;
    for (int attempt = 0; attempt < 2 && !t; attempt++) {
        const char *vt = attempt == 0 ? (const char *)data : base_vocab;
        size_t vl = attempt == 0 ? vlen : sizeof(base_vocab) - 1;
        if (attempt == 0 && !nul) continue;
        if (vocab_parse(vt, vl, &v, &err) != BCT_OK) continue;
        tok_options o = {.lowercase = (int)(size & 1), .max_word_chars = 100};
        if (tok_create(v, &o, &t, &err) != BCT_OK) {
            vocab_free(v);
            v = NULL;
        }
    }
    if (!t) return 0;
    int32_t ids[128];
    uint8_t types[128];
    tok_encoding enc = {.ids = ids, .type_ids = types, .cap = 128};
    tok_encode(t, text, tlen, NULL, 0, 128, &enc, &err);
    tok_encode(t, text, tlen, text, tlen, 16, &enc, &err);
    tok_tokenize(t, text, tlen, ids, 128, &err);
    tok_free(t);
    vocab_free(v);
    return 0;
}
