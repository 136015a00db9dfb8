/* vocab.h - WordPiece vocabulary: token string <-> id.
 *
 * The file format is vocab.txt: one token per line, id = line number
 * (0-based).  Lines end at "\n", "\r\n" or a lone "\r" (Python's universal
 * newlines, as the reference reads the file); nothing else is stripped.
 * The file must be UTF-8.  As in the reference tokenizer, a token that
 * appears twice maps to its last line.
 * Lookup is a hash table (open addressing); the table is read-only after
 * loading, so one vocab can be shared by any number of threads.
 */
#ifndef BCT_VOCAB_H
#define BCT_VOCAB_H

#include <stddef.h>
#include <stdint.h>

#include "status.h"

typedef struct vocab vocab;

int vocab_load(const char *path, vocab **out, bct_error *err);
/* Parses vocab.txt contents from memory (copied). */
int vocab_parse(const char *buf, size_t len, vocab **out, bct_error *err);
void vocab_free(vocab *v);

/* Number of ids (= number of lines). */
int32_t vocab_size(const vocab *v);
/* Id of the token s[0..len), or -1. */
int32_t vocab_find(const vocab *v, const char *s, size_t len);
/* Token text of id (NUL-terminated), or NULL when out of range. */
const char *vocab_token(const vocab *v, int32_t id, size_t *len);

#endif
