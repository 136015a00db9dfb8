/* tok_json_priv.h - the tokenizer.json pipeline, shared by its parser
 * (tok_json.c) and its runner (tok_pipeline.c).  Not a public header.
 *
 * A tokenizer.json describes five stages; each becomes a plain array of
 * steps here, Sequence components flattened while parsing:
 *   added tokens -> normalizer steps -> pre-tokenizer steps -> model
 *   -> post-processor template (+ truncation).
 * Text is handled as arrays of code points; the model sees each pre-token
 * as UTF-8.  Everything is read-only after tjson_build(), so one pipeline
 * serves any number of threads.
 */
#ifndef BCT_TOK_JSON_PRIV_H
#define BCT_TOK_JSON_PRIV_H

#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#include "util/status.h"

/* Limits on untrusted tokenizer files, named once. */
#define TJ_MAX_DEPTH 64               /* JSON nesting; real files use < 10 */
#define TJ_MAX_VOCAB 4000000          /* vocabulary entries */
#define TJ_MAX_STEPS 64               /* normalizer / pre-tokenizer steps */
#define TJ_MAX_TOKEN_BYTES 1024       /* one vocab entry or added token */
#define TJ_MAX_TEMPLATE 16            /* items of one post-processor template */

/* Byte string -> id map (open addressing, FNV-1a); strings may hold any
 * byte, NUL included. */
typedef struct tj_map {
    char *pool;
    size_t pool_n, pool_cap;
    size_t *off;
    uint32_t *len;
    int32_t *val;
    size_t n, cap;
    int32_t *slots; /* entry index, -1 empty */
    size_t mask;
} tj_map;

int tj_map_put(tj_map *m, const char *s, size_t len, int32_t val); /* 0, 1 if present, -1 nomem */
int32_t tj_map_get(const tj_map *m, const char *s, size_t len);    /* -1 if absent */
void tj_map_free(tj_map *m);

enum tj_norm_kind {
    TJN_BERT,
    TJN_NFC,
    TJN_NFD,
    TJN_NFKC,
    TJN_NFKD,
    TJN_LOWER,
    TJN_STRIP_ACCENTS,
    TJN_REPLACE,
    TJN_STRIP,
    TJN_PREPEND,
    TJN_PRECOMPILED, /* SentencePiece charsmap (NFKC when the file has none) */
};

typedef struct tj_norm {
    enum tj_norm_kind kind;
    int clean, chinese, strip_accents, lower; /* BERT */
    int left, right;                          /* Strip */
    int32_t *pat, *rep;                       /* Replace: pattern -> content; Prepend: rep */
    size_t pat_n, rep_n;
    uint32_t *units;                          /* Precompiled: darts-clone double array */
    size_t n_units;
    char *pool;                               /* Precompiled: NUL-terminated replacements */
    size_t pool_n;
} tj_norm;

enum tj_split_behavior { TJB_REMOVED, TJB_ISOLATED, TJB_MERGED_PREV, TJB_MERGED_NEXT, TJB_CONTIGUOUS };

enum tj_pre_kind {
    TJP_BERT,
    TJP_BYTELEVEL,
    TJP_METASPACE,
    TJP_WHITESPACE,
    TJP_WS_SPLIT,
    TJP_PUNCT,
    TJP_DIGITS,
    TJP_SPLIT,    /* literal pattern */
    TJP_GPT2,     /* Split with the GPT-2 regex, recognised by its text */
};

enum tj_prepend { TJ_PREPEND_ALWAYS, TJ_PREPEND_FIRST, TJ_PREPEND_NEVER };

typedef struct tj_pre {
    enum tj_pre_kind kind;
    enum tj_split_behavior behavior;
    int add_prefix_space, use_regex; /* ByteLevel */
    int32_t replacement;             /* Metaspace */
    enum tj_prepend prepend;
    int split;                /* Metaspace split; Digits individual_digits */
    int32_t *pat;             /* Split */
    size_t pat_n;
} tj_pre;

enum tj_model_kind { TJM_WORDPIECE, TJM_BPE, TJM_UNIGRAM };

/* BPE merge: (left id, right id) -> rank and merged id. */
typedef struct tj_merge {
    uint64_t key; /* left << 32 | right, 0 = empty slot */
    int32_t rank, id;
} tj_merge;

/* Key and first slot of the merge (left, right).  The 64-bit mixer spreads
 * both ids over the low bits (a plain multiplicative hash of left << 32 |
 * right leaves them depending on right only: long probe chains). */
static inline uint64_t tj_merge_key(int32_t a, int32_t b) { return ((uint64_t)(uint32_t)a << 32 | (uint32_t)b) + 1; }
static inline size_t tj_merge_slot(uint64_t key, size_t mask) {
    key ^= key >> 33;
    key *= 0xFF51AFD7ED558CCDull;
    key ^= key >> 33;
    return (size_t)key & mask;
}

typedef struct tj_model {
    enum tj_model_kind kind;
    tj_map vocab;
    int32_t n_ids;   /* 1 + largest id */
    int32_t unk;     /* -1 when there is none */
    char *prefix, *suffix; /* continuing_subword_prefix / end_of_word_suffix */
    size_t prefix_n, suffix_n;
    int max_word_chars;           /* WordPiece */
    int fuse_unk, byte_fallback, ignore_merges;
    int32_t byte_ids[256];        /* <0xAB> ids, -1 where absent */
    tj_merge *merges;             /* BPE hash table */
    size_t merge_mask;
    double *scores;               /* Unigram, by id */
    double unk_score;             /* min score - 10 */
    size_t max_piece_bytes;       /* longest vocab entry */
} tj_model;

typedef struct tj_added {
    int32_t *cps;  /* content, or its normalized form when normalized */
    size_t n;
    int32_t id;
    int single_word, lstrip, rstrip, normalized, special;
} tj_added;

typedef struct tj_item {
    int seq;       /* 0 special, 1 sequence A, 2 sequence B */
    int type_id;
    int32_t *ids;  /* special: its ids */
    int n_ids;
} tj_item;

enum tj_trunc { TJT_LONGEST_FIRST, TJT_ONLY_FIRST, TJT_ONLY_SECOND };

typedef struct tjson {
    char *doc;            /* the document (owned), for saving */
    size_t doc_len;
    tj_norm *norm;
    int n_norm;
    tj_pre *pre;
    int n_pre;
    tj_model model;
    tj_added *added;
    int n_added;
    tj_item single[TJ_MAX_TEMPLATE], pair[TJ_MAX_TEMPLATE];
    int n_single, n_pair;
    int specials_single, specials_pair; /* ids the templates add */
    int trunc_max;        /* 0: none in the file */
    int trunc_left;       /* direction */
    enum tj_trunc trunc_strategy;
    int32_t cls, sep, pad, unk;
} tjson;

/* Parses doc[0..len) (copied) into *out. Errors name the field. */
int tjson_build(const char *doc, size_t len, tjson **out, bct_error *err);
void tjson_free(tjson *j);

/* Appends the model ids of text (no specials, no truncation) to a growable
 * array; ids, n and cap as realloc'd by the callee. */
int tjson_tokenize(const tjson *j, const char *text, size_t len, int32_t **ids, size_t *n, size_t *cap,
                   bct_error *err);

/* Tokenizes a (and b) and lays them out by the template, truncated to
 * max_len (and the file's own max_length); see tok_encode(). */
struct tok_encoding;
int tjson_encode(const tjson *j, const char *a, size_t alen, const char *b, size_t blen, int max_len,
                 struct tok_encoding *out, bct_error *err);

/* Builds the tokenizer.json of a RoBERTa-style vocab.json + merges.txt
 * (ByteLevel, BPE, <s> A </s></s> B </s>) and parses it. */
int tjson_from_bpe_files(const char *vocab_json, size_t vlen, const char *merges, size_t mlen, tjson **out,
                         bct_error *err);

/* Normalizes cps[0..n) by the normalizer steps into *out (malloc'd). */
int tjson_normalize(const tjson *j, const int32_t *cps, size_t n, int32_t **out, size_t *out_n);

/* GPT-2 pre-tokenizer split of cps[0..n): writes piece end offsets into
 * ends (capacity n), returns the count. */
size_t tjson_gpt2_split(const int32_t *cps, size_t n, size_t *ends);

#endif
