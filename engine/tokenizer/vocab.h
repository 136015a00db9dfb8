/* vocab.h - WordPiece vocabulary: token string <-> id.
 *
 * The file format is vocab.txt: one token per line, id = line number
 * (0-based).  Lines end at "\n", "\r\n" or a lone "\r" (Python's universal
 * newlines, as the reference reads the file); nothing else is stripped.
 * The file must be UTF-8.  As in the reference tokenizer, a token that
 * appears twice maps to its last line.
 * Lookup is a hash table (open addressing, FNV-1a); each slot holds the
 * token's hash beside its id, so a probe that misses costs one cache line.
 * The table is read-only after loading, so one vocab can be shared by any
 * number of threads.
 */
#ifndef BCT_VOCAB_H
#define BCT_VOCAB_H

#include <stddef.h>
#include <stdint.h>

#include "util/status.h"

typedef struct vocab vocab;

/* The largest vocab.txt (bert-base's is 232 KB, a 250k-token multilingual
 * one ~4 MB): bounds what loading one costs in memory (the text, then
 * ~20 bytes of index per line), from a file, an upload or a .bct. */
#define VOCAB_MAX_BYTES (64u << 20)

/* One hash table slot (8 bytes). */
typedef struct vocab_slot {
    uint32_t hash;
    int32_t id;
} vocab_slot;
_Static_assert(sizeof(vocab_slot) == 8, "vocab_slot is two 32-bit words");

/* The lookup hash, incrementally: hash(s[0..a+b)) ==
 * vocab_hash_more(vocab_hash_more(VOCAB_HASH_SEED, s, a), s + a, b), so a
 * caller trying every prefix of a string (WordPiece) hashes it once. */
#define VOCAB_HASH_SEED 2166136261u
static inline uint32_t vocab_hash_more(uint32_t h, const char *s, size_t len) {
    for (size_t i = 0; i < len; i++) {
        h ^= (unsigned char)s[i];
        h *= 16777619u;
    }
    return h;
}

int vocab_load(const char *path, vocab **out, bct_error *err);
/* Parses vocab.txt contents from memory (copied). */
int vocab_parse(const char *buf, size_t len, vocab **out, bct_error *err);
void vocab_free(vocab *v);

/* Number of ids (= number of lines). */
int32_t vocab_size(const vocab *v);
/* Id of the token s[0..len), or -1. */
int32_t vocab_find(const vocab *v, const char *s, size_t len);
/* The same, with h = the hash of s[0..len) computed by the caller. */
int32_t vocab_find_hashed(const vocab *v, const char *s, size_t len, uint32_t h);
/* Token text of id (NUL-terminated), or NULL when out of range. */
const char *vocab_token(const vocab *v, int32_t id, size_t *len);

#endif
