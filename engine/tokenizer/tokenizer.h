/* tokenizer.h - text -> token ids for BERT-family models.
 *
 * Two kinds behind one interface: the built-in BERT WordPiece tokenizer of
 * a vocab.txt (tok_create, below), and any pipeline a Hugging Face
 * tokenizer.json describes (tok_create_from_json: WordPiece, byte-level
 * BPE, Unigram; normalizers, pre-tokenizers, added tokens, templates and
 * truncation as the Rust `tokenizers` library runs them; see
 * tok_json_priv.h and tok_pipeline.c for what is supported).
 *
 * The vocab.txt tokenizer:
 * Reproduces the reference tokenizer (../shared/tools/ref_bert.py) exactly:
 *  1. clean: drop U+0000, U+FFFD and control chars (Cc, Cf except \t \n \r);
 *     whitespace (\t \n \r, Zs) becomes ' '; CJK ideographs get spaces around;
 *  2. split on whitespace (as Python's str.split());
 *  3. per word, when lowercasing: Python str.lower(), NFD, drop Mn marks;
 *  4. split off punctuation (ASCII symbol ranges and Unicode P*);
 *  5. greedy longest-match WordPiece with "##" continuations; [UNK] for a
 *     word over 100 code points or with no match;
 *  6. [CLS] a [SEP] or [CLS] a [SEP] b [SEP], token types 0/1, longest-first
 *     truncation to max_len.
 * Unicode properties and normalisation come from utf8proc.
 * Input must be valid UTF-8; anything else is BCT_EINVAL with the byte
 * offset of the first bad sequence.  A tokenizer is immutable after
 * creation and safe to use from many threads at once.
 */
#ifndef BCT_TOKENIZER_H
#define BCT_TOKENIZER_H

#include <stddef.h>
#include <stdint.h>

#include "util/status.h"
#include "vocab.h"

typedef struct tokenizer tokenizer;

/* The largest tokenizer.json (and vocab.json, merges.txt) read: XLM-R's
 * is 17 MB. */
#define TOK_JSON_MAX_BYTES (64u << 20)

typedef struct tok_options {
    int lowercase;      /* lowercase + strip accents (BERT uncased) */
    int max_word_chars; /* longer words become [UNK]; reference: 100 */
} tok_options;

/* Encoded sequence. ids/type_ids are caller-provided arrays of capacity
 * `cap` (>= max_len passed to tok_encode). */
typedef struct tok_encoding {
    int32_t *ids;
    uint8_t *type_ids;
    int cap;
    int len;          /* tokens written, including [CLS]/[SEP] */
    int untruncated;  /* length the sequence would have without truncation */
} tok_encoding;

/* The vocab is borrowed: it must outlive the tokenizer.  Fails if the vocab
 * lacks [CLS], [SEP], [UNK] or [PAD]. */
int tok_create(const vocab *v, const tok_options *opt, tokenizer **out, bct_error *err);
/* A tokenizer from the text of a tokenizer.json (copied: the tokenizer
 * owns everything it needs).  Bad files fail with BCT_EFORMAT (or
 * BCT_EUNSUPPORTED for valid components this engine cannot run), the
 * message naming the field. */
int tok_create_from_json(const char *json, size_t len, tokenizer **out, bct_error *err);
/* The same from RoBERTa's older pair vocab.json + merges.txt: byte-level
 * BPE without a prefix space, <s> A </s></s> B </s>. */
int tok_create_from_bpe(const char *vocab_json, size_t vlen, const char *merges, size_t mlen,
                        tokenizer **out, bct_error *err);
void tok_free(tokenizer *t);

/* The tokenizer.json document a tokenizer runs (for vocab.json + merges.txt
 * the equivalent one it built), NUL-terminated, or NULL for a vocab.txt
 * tokenizer. */
const char *tok_json_doc(const tokenizer *t, size_t *len);
/* 1 + the largest id the tokenizer can produce. */
int32_t tok_id_count(const tokenizer *t);

/* Encodes text a (and optional pair b; pass b = NULL for single text) into
 * at most max_len tokens (max_len >= 3 for pairs, >= 2 otherwise; for a
 * tokenizer.json, at least the template's special tokens, and the file's
 * own truncation.max_length also applies). */
int tok_encode(const tokenizer *t, const char *a, size_t alen, const char *b, size_t blen,
               int max_len, tok_encoding *out, bct_error *err);

/* tok_encode, with left != 0 cutting each text's first pieces instead of
 * its last ones (truncation_direction "left"). */
int tok_encode_dir(const tokenizer *t, const char *a, size_t alen, const char *b, size_t blen,
                   int max_len, int left, tok_encoding *out, bct_error *err);

/* Word-level pieces without special tokens or truncation: writes up to cap
 * ids, returns the total count (may exceed cap) or a negative code. */
int tok_tokenize(const tokenizer *t, const char *text, size_t len, int32_t *ids, int cap,
                 bct_error *err);

/* Special ids.  For a tokenizer.json: cls/sep are the first/last special
 * token of the single-text template (-1 without one), pad is padding.pad_id
 * or the [PAD] / <pad> token (else 0), unk the model's (-1 without one). */
int32_t tok_cls_id(const tokenizer *t);
int32_t tok_sep_id(const tokenizer *t);
int32_t tok_pad_id(const tokenizer *t);
int32_t tok_unk_id(const tokenizer *t);

#endif
