/* tokenizer.c - BERT uncased Basic + WordPiece tokenizer.
 *
 * The behaviour is defined by the Python reference (Tokenizer in
 * ../shared/tools/ref_bert.py); comments point out where a Python built-in
 * (str.split, str.lower, unicodedata.normalize) has a subtlety we copy.
 *
 * The text is processed as one stream of code points: cleaning and
 * whitespace splitting happen on the fly, and each word is then lowercased,
 * decomposed (NFD), stripped of Mn marks, split on punctuation and run
 * through WordPiece.  All buffers belong to one call (struct scratch), so a
 * tokenizer can be shared by threads.
 */
#include "tokenizer.h"

#include "tok_json_priv.h"
#include "util/utf8.h"

#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include <utf8proc.h>

struct tokenizer {
    tjson *j; /* a tokenizer.json pipeline; NULL for vocab.txt (the rest) */
    const vocab *v;
    int lowercase;
    int max_word_chars;
    int32_t cls, sep, unk, pad;
    size_t max_token_bytes; /* longest vocab entry: bounds the WordPiece search */
};

/* Growable buffers for one tokenize call; every array only grows. */
struct scratch {
    int32_t *word; /* current whitespace-delimited word (cleaned) */
    size_t word_n, word_cap;
    int32_t *norm; /* the word lowercased, NFD, without Mn */
    size_t norm_n, norm_cap;
    char *bytes; /* 2 spare bytes + UTF-8 of one WordPiece word */
    size_t bytes_cap;
    size_t *offs; /* byte offset of each code point in bytes + 2 */
    size_t offs_cap;
    uint32_t *hash; /* vocab hash of each WordPiece candidate, by end */
    size_t hash_cap;
    int32_t *ids; /* output token ids */
    size_t ids_n, ids_cap;
};

static void scratch_free(struct scratch *s) {
    free(s->word);
    free(s->norm);
    free(s->bytes);
    free(s->offs);
    free(s->hash);
    free(s->ids);
}

/* Capacity for `need` elements of `elem` bytes, doubling from cap; 0 on
 * overflow. */
static size_t grown_cap(size_t cap, size_t need, size_t elem) {
    size_t n = cap ? cap : 16;
    while (n < need) {
        if (n > SIZE_MAX / 2 / elem) return 0;
        n *= 2;
    }
    return n;
}

/* reserve_<T>(&array, &cap, need): makes array hold `need` elements;
 * returns 0, or -1 when out of memory (the array is then unchanged). */
#define DEFINE_RESERVE(name, T)                        \
    static int name(T **p, size_t *cap, size_t need) { \
        if (need <= *cap) return 0;                    \
        size_t n = grown_cap(*cap, need, sizeof(T));   \
        T *q = n ? realloc(*p, n * sizeof(T)) : NULL;  \
        if (!q) return -1;                             \
        *p = q;                                        \
        *cap = n;                                      \
        return 0;                                      \
    }
DEFINE_RESERVE(reserve_i32, int32_t)
DEFINE_RESERVE(reserve_char, char)
DEFINE_RESERVE(reserve_size, size_t)
DEFINE_RESERVE(reserve_u32, uint32_t)

static int push_id(struct scratch *s, int32_t id) {
    if (reserve_i32(&s->ids, &s->ids_cap, s->ids_n + 1)) return -1;
    s->ids[s->ids_n++] = id;
    return 0;
}

/* ------------------------------------------------------------ char classes */

static int category(int32_t c) { return utf8proc_category(c); }

/* Reference _is_ctrl: Cc or Cf, except the three whitespace controls. */
static int is_ctrl(int32_t c) {
    if (c == '\t' || c == '\n' || c == '\r') return 0;
    if (c < 0x80) return c < 0x20 || c == 0x7F; /* ASCII's Cc; it has no Cf */
    int cat = category(c);
    return cat == UTF8PROC_CATEGORY_CC || cat == UTF8PROC_CATEGORY_CF;
}

/* Reference _is_ws: becomes ' ' while cleaning. */
static int is_ws(int32_t c) {
    if (c < 0x80) return c == ' ' || c == '\t' || c == '\n' || c == '\r'; /* ASCII's only Zs is ' ' */
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || category(c) == UTF8PROC_CATEGORY_ZS;
}

/* str.split() also breaks on the other Python whitespace characters.  After
 * cleaning the only ones left are U+2028 (Zl) and U+2029 (Zp): the rest are
 * Cc (\v \f U+001C..U+001F U+0085), dropped, or Zs, already ' '. */
static int splits_word(int32_t c) { return c == ' ' || c == 0x2028 || c == 0x2029; }

/* Reference _is_punct: ASCII symbol ranges plus every P* category. */
static int is_punct(int32_t c) {
    if ((c >= 33 && c <= 47) || (c >= 58 && c <= 64) || (c >= 91 && c <= 96) || (c >= 123 && c <= 126))
        return 1;
    if (c < 0x80) return 0; /* every ASCII P* character is in the ranges above */
    int cat = category(c);
    return cat >= UTF8PROC_CATEGORY_PC && cat <= UTF8PROC_CATEGORY_PO;
}

/* Reference _is_cjk: the CJK ideograph blocks BERT pads with spaces. */
static int is_cjk(int32_t c) {
    return (c >= 0x4E00 && c <= 0x9FFF) || (c >= 0x3400 && c <= 0x4DBF) || (c >= 0x20000 && c <= 0x2A6DF) ||
           (c >= 0x2A700 && c <= 0x2B73F) || (c >= 0x2B740 && c <= 0x2B81F) ||
           (c >= 0x2B820 && c <= 0x2CEAF) || (c >= 0xF900 && c <= 0xFAFF) || (c >= 0x2F800 && c <= 0x2FA1F);
}

/* Unicode Case_Ignorable (used by Python's final-sigma rule): Mn Me Cf Lm Sk
 * plus the Word_Break MidLetter / MidNumLet / Single_Quote characters, which
 * utf8proc does not expose, hence the short list (WordBreakProperty.txt). */
static int is_case_ignorable(int32_t c) {
    static const int32_t mid[] = {0x27,   0x2E,   0x3A,   0xB7,   0x387,  0x55F,  0x5F4,  0x2018, 0x2019,
                                  0x2024, 0x2027, 0xFE13, 0xFE52, 0xFE55, 0xFF07, 0xFF0E, 0xFF1A};
    switch (category(c)) {
    case UTF8PROC_CATEGORY_MN:
    case UTF8PROC_CATEGORY_ME:
    case UTF8PROC_CATEGORY_CF:
    case UTF8PROC_CATEGORY_LM:
    case UTF8PROC_CATEGORY_SK: return 1;
    }
    for (size_t i = 0; i < sizeof(mid) / sizeof(mid[0]); i++)
        if (mid[i] == c) return 1;
    return 0;
}

/* Unicode Cased = Lu Ll Lt + Other_Lowercase + Other_Uppercase.  Only asked
 * for characters that are not case-ignorable; of those, Other_* holds the
 * characters with a case mapping (Roman numerals, circled letters), the
 * ordinal indicators and three blocks of squared / circled capitals. */
static int is_cased(int32_t c) {
    int cat = category(c);
    if (cat == UTF8PROC_CATEGORY_LU || cat == UTF8PROC_CATEGORY_LL || cat == UTF8PROC_CATEGORY_LT) return 1;
    if (utf8proc_tolower(c) != c || utf8proc_toupper(c) != c) return 1;
    return c == 0xAA || c == 0xBA || (c >= 0x1F130 && c <= 0x1F149) || (c >= 0x1F150 && c <= 0x1F169) ||
           (c >= 0x1F170 && c <= 0x1F189);
}

/* Python's str.lower() maps capital sigma to final sigma when it ends a
 * cased word: a cased letter before it and none after it, skipping
 * case-ignorable characters both ways (CPython handle_capital_sigma). */
static int is_final_sigma(const int32_t *w, size_t n, size_t i) {
    size_t j = i;
    while (j > 0 && is_case_ignorable(w[j - 1])) j--;
    if (j == 0 || !is_cased(w[j - 1])) return 0;
    j = i + 1;
    while (j < n && is_case_ignorable(w[j])) j++;
    return j == n || !is_cased(w[j]);
}

/* ------------------------------------------------------------- the word */

/* Appends one lowercased code point to s->norm as NFD with Mn marks removed.
 * NFD puts runs of non-zero combining classes in canonical (stable sorted)
 * order.  Removing the marks first and sorting what is left gives the same
 * result, as long as a removed class-0 mark still ends the run; *run_start
 * is the index where the current run of kept non-zero classes began, or
 * SIZE_MAX when there is none.  The kept ones are a few rare Mc characters,
 * so the insertion sort stays trivial. */
static int append_nfd(struct scratch *s, int32_t c, size_t *run_start) {
    utf8proc_int32_t d[8];
    utf8proc_ssize_t nd = utf8proc_decompose_char(c, d, 8, UTF8PROC_DECOMPOSE, NULL);
    if (nd < 0 || nd > 8) {
        d[0] = c; /* cannot happen for a valid code point */
        nd = 1;
    }
    if (reserve_i32(&s->norm, &s->norm_cap, s->norm_n + (size_t)nd)) return -1;
    for (utf8proc_ssize_t k = 0; k < nd; k++) {
        int ccc = utf8proc_get_property(d[k])->combining_class;
        if (category(d[k]) == UTF8PROC_CATEGORY_MN) {
            if (ccc == 0) *run_start = SIZE_MAX;
            continue;
        }
        size_t j = s->norm_n++;
        s->norm[j] = d[k];
        if (ccc == 0) {
            *run_start = SIZE_MAX;
            continue;
        }
        if (*run_start == SIZE_MAX) *run_start = j;
        for (; j > *run_start && utf8proc_get_property(s->norm[j - 1])->combining_class > ccc; j--) {
            int32_t t = s->norm[j - 1];
            s->norm[j - 1] = s->norm[j];
            s->norm[j] = t;
        }
    }
    return 0;
}

/* norm = NFD(word.lower()) without Mn, or a plain copy when not lowercasing. */
static int normalize_word(const tokenizer *t, struct scratch *s) {
    s->norm_n = 0;
    if (!t->lowercase) {
        if (reserve_i32(&s->norm, &s->norm_cap, s->word_n)) return -1;
        memcpy(s->norm, s->word, s->word_n * sizeof(*s->word));
        s->norm_n = s->word_n;
        return 0;
    }
    size_t run_start = SIZE_MAX;
    for (size_t i = 0; i < s->word_n; i++) {
        /* str.lower() uses the full mappings; the only one that differs
         * from utf8proc's simple mapping is U+0130 -> "i" U+0307, and that
         * Mn mark is removed right away, so the simple "i" is equivalent. */
        int32_t c = s->word[i];
        if (c < 0x80) { /* ASCII: no decomposition, no marks, combining class 0 */
            if (reserve_i32(&s->norm, &s->norm_cap, s->norm_n + 1)) return -1;
            s->norm[s->norm_n++] = c >= 'A' && c <= 'Z' ? c + ('a' - 'A') : c;
            run_start = SIZE_MAX;
            continue;
        }
        if (c == 0x3A3)
            c = is_final_sigma(s->word, s->word_n, i) ? 0x3C2 : 0x3C3;
        else
            c = utf8proc_tolower(c);
        if (append_nfd(s, c, &run_start)) return -1;
    }
    return 0;
}

/* Greedy longest-match WordPiece of cps[0..n): pushes its ids, or one [UNK]
 * when the word is too long or some position matches nothing. */
static int wordpiece(const tokenizer *t, struct scratch *s, const int32_t *cps, size_t n) {
    if (n > (size_t)t->max_word_chars) return push_id(s, t->unk);
    /* UTF-8 goes to bytes + 2 so "##" can be written just before any
     * continuation start; those bytes are never needed again. */
    if (reserve_char(&s->bytes, &s->bytes_cap, 2 + 4 * n) || reserve_size(&s->offs, &s->offs_cap, n + 1) ||
        reserve_u32(&s->hash, &s->hash_cap, n + 1))
        return -1;
    char *b = s->bytes + 2;
    size_t nb = 0;
    for (size_t i = 0; i < n; i++) {
        s->offs[i] = nb;
        nb += (size_t)utf8proc_encode_char(cps[i], (utf8proc_uint8_t *)b + nb);
    }
    s->offs[n] = nb;

    size_t first = s->ids_n;
    for (size_t start = 0; start < n;) {
        char *p = b + s->offs[start];
        size_t pre = 0;
        if (start > 0) {
            p -= 2;
            p[0] = '#';
            p[1] = '#';
            pre = 2;
        }
        int32_t id = -1;
        /* Skip candidates longer than any vocab entry (a code point is at
         * least one byte), so a long word costs O(n * longest token). */
        size_t end = n - start > t->max_token_bytes ? start + t->max_token_bytes : n;
        while (end > start && pre + s->offs[end] - s->offs[start] > t->max_token_bytes) end--;
        /* Hash every candidate prefix in one pass (longest is tried first). */
        uint32_t h = vocab_hash_more(VOCAB_HASH_SEED, p, pre);
        for (size_t k = start; k < end; k++)
            s->hash[k + 1] = h = vocab_hash_more(h, b + s->offs[k], s->offs[k + 1] - s->offs[k]);
        for (; end > start; end--) {
            id = vocab_find_hashed(t->v, p, pre + s->offs[end] - s->offs[start], s->hash[end]);
            if (id >= 0) break;
        }
        if (id < 0) {
            s->ids_n = first; /* any unmatched position makes the whole word [UNK] */
            return push_id(s, t->unk);
        }
        if (push_id(s, id)) return -1;
        start = end;
    }
    return 0;
}

/* Lowercases/normalizes the buffered word, splits it on punctuation and
 * WordPieces each part. */
static int flush_word(const tokenizer *t, struct scratch *s) {
    if (s->word_n == 0) return 0;
    if (normalize_word(t, s)) return -1;
    s->word_n = 0;
    size_t start = 0;
    for (size_t i = 0; i < s->norm_n; i++) {
        if (!is_punct(s->norm[i])) continue;
        if (i > start && wordpiece(t, s, s->norm + start, i - start)) return -1;
        if (wordpiece(t, s, s->norm + i, 1)) return -1;
        start = i + 1;
    }
    if (s->norm_n > start && wordpiece(t, s, s->norm + start, s->norm_n - start)) return -1;
    return 0;
}

static int push_word_char(struct scratch *s, int32_t c) {
    if (reserve_i32(&s->word, &s->word_cap, s->word_n + 1)) return -1;
    s->word[s->word_n++] = c;
    return 0;
}

/* Checks strict UTF-8 (no overlongs, surrogates or values over U+10FFFF):
 * exactly what utf8proc_iterate() decodes, so the loop below needs no
 * error path (test_utf8_matches_utf8proc). */
static int validate_utf8(const char *text, size_t len, bct_error *err) {
    size_t bad = utf8_find_invalid((const uint8_t *)text, len, 0, NULL);
    if (bad < len)
        return bct_fail(err, BCT_EINVAL, "text is not valid UTF-8 (bad byte sequence at byte offset %zu)", bad);
    return BCT_OK;
}

/* Appends the WordPiece ids of text to s->ids. */
static int tokenize_text(const tokenizer *t, struct scratch *s, const char *text, size_t len,
                         bct_error *err) {
    if (len > 0 && !text) return bct_fail(err, BCT_EINVAL, "text is NULL");
    if (len > (size_t)PTRDIFF_MAX) return bct_fail(err, BCT_ERANGE, "text is too long");
    int rc = validate_utf8(text, len, err);
    if (rc != BCT_OK) return rc;

    s->word_n = 0;
    size_t pos = 0;
    while (pos < len) {
        utf8proc_int32_t c;
        pos +=
            (size_t)utf8proc_iterate((const utf8proc_uint8_t *)text + pos, (utf8proc_ssize_t)(len - pos), &c);
        /* Cleaning: drop NUL, U+FFFD and controls; whitespace separates
         * words; a CJK ideograph is a word of its own. */
        if (c == 0 || c == 0xFFFD || is_ctrl(c)) continue;
        if (is_ws(c) || splits_word(c)) {
            if (flush_word(t, s)) goto nomem;
        } else if (is_cjk(c)) {
            if (flush_word(t, s) || push_word_char(s, c) || flush_word(t, s)) goto nomem;
        } else if (push_word_char(s, c)) {
            goto nomem;
        }
    }
    if (flush_word(t, s)) goto nomem;
    return BCT_OK;
nomem:
    return bct_fail(err, BCT_ENOMEM, "out of memory tokenizing a text of %zu bytes", len);
}

/* --------------------------------------------------------------- public */

static int32_t find_special(const vocab *v, const char *name, bct_error *err) {
    int32_t id = vocab_find(v, name, strlen(name));
    if (id < 0) bct_fail(err, BCT_EFORMAT, "vocab has no %s token", name);
    return id;
}

int tok_create(const vocab *v, const tok_options *opt, tokenizer **out, bct_error *err) {
    if (!out) return bct_fail(err, BCT_EINVAL, "tok_create: out is NULL");
    *out = NULL;
    if (!v) return bct_fail(err, BCT_EINVAL, "tok_create: vocab is NULL");
    tok_options def = {.lowercase = 1, .max_word_chars = 100};
    if (!opt) opt = &def;
    if (opt->max_word_chars <= 0)
        return bct_fail(err, BCT_EINVAL, "max_word_chars must be positive (got %d)", opt->max_word_chars);

    tokenizer t = {.v = v, .lowercase = opt->lowercase != 0, .max_word_chars = opt->max_word_chars};
    if ((t.cls = find_special(v, "[CLS]", err)) < 0 || (t.sep = find_special(v, "[SEP]", err)) < 0 ||
        (t.unk = find_special(v, "[UNK]", err)) < 0 || (t.pad = find_special(v, "[PAD]", err)) < 0)
        return BCT_EFORMAT;
    for (int32_t i = 0; i < vocab_size(v); i++) {
        size_t len;
        vocab_token(v, i, &len);
        if (len > t.max_token_bytes) t.max_token_bytes = len;
    }
    tokenizer *p = malloc(sizeof(*p));
    if (!p) return bct_fail(err, BCT_ENOMEM, "out of memory creating a tokenizer");
    *p = t;
    *out = p;
    return BCT_OK;
}

static int wrap_json(tjson *j, tokenizer **out, bct_error *err) {
    tokenizer *p = calloc(1, sizeof(*p));
    if (!p) {
        tjson_free(j);
        return bct_fail(err, BCT_ENOMEM, "out of memory creating a tokenizer");
    }
    p->j = j;
    p->cls = j->cls;
    p->sep = j->sep;
    p->unk = j->unk;
    p->pad = j->pad;
    *out = p;
    return BCT_OK;
}

int tok_create_from_json(const char *json, size_t len, tokenizer **out, bct_error *err) {
    if (!out) return bct_fail(err, BCT_EINVAL, "tok_create_from_json: out is NULL");
    *out = NULL;
    tjson *j;
    int rc = tjson_build(json, len, &j, err);
    return rc ? rc : wrap_json(j, out, err);
}

int tok_create_from_bpe(const char *vocab_json, size_t vlen, const char *merges, size_t mlen, tokenizer **out,
                        bct_error *err) {
    if (!out) return bct_fail(err, BCT_EINVAL, "tok_create_from_bpe: out is NULL");
    *out = NULL;
    if ((!vocab_json && vlen) || (!merges && mlen)) return bct_fail(err, BCT_EINVAL, "tok_create_from_bpe: NULL text");
    tjson *j;
    int rc = tjson_from_bpe_files(vocab_json, vlen, merges, mlen, &j, err);
    return rc ? rc : wrap_json(j, out, err);
}

const char *tok_json_doc(const tokenizer *t, size_t *len) {
    if (!t->j) return NULL;
    if (len) *len = t->j->doc_len;
    return t->j->doc;
}

int32_t tok_id_count(const tokenizer *t) { return t->j ? t->j->model.n_ids : vocab_size(t->v); }

void tok_free(tokenizer *t) {
    if (t) tjson_free(t->j);
    free(t);
}

int tok_encode(const tokenizer *t, const char *a, size_t alen, const char *b, size_t blen, int max_len,
               tok_encoding *out, bct_error *err) {
    return tok_encode_dir(t, a, alen, b, blen, max_len, 0, out, err);
}

int tok_encode_dir(const tokenizer *t, const char *a, size_t alen, const char *b, size_t blen, int max_len,
                   int left, tok_encoding *out, bct_error *err) {
    if (!t || !out) return bct_fail(err, BCT_EINVAL, "tok_encode: tokenizer or output is NULL");
    if (t->j) return tjson_encode(t->j, a, alen, b, blen, max_len, out, err);
    int min_len = b ? 3 : 2;
    if (max_len < min_len)
        return bct_fail(err, BCT_EINVAL, "max_len %d is too small (need at least %d for %s)", max_len,
                        min_len, b ? "a text pair" : "a single text");
    if (!out->ids || !out->type_ids || out->cap < max_len)
        return bct_fail(err, BCT_EINVAL, "output arrays hold %d tokens, less than max_len %d", out->cap,
                        max_len);

    struct scratch s = {0};
    int rc = tokenize_text(t, &s, a, alen, err);
    if (rc != BCT_OK && b) bct_fail_prefix(err, rc, "first text");
    size_t na = s.ids_n;
    if (rc == BCT_OK && b) {
        rc = tokenize_text(t, &s, b, blen, err);
        if (rc != BCT_OK) bct_fail_prefix(err, rc, "second text");
    }
    if (rc != BCT_OK) goto done;
    size_t nb = s.ids_n - na;
    size_t total = na + nb + (size_t)min_len;
    if (total > INT_MAX) {
        rc = bct_fail(err, BCT_ERANGE, "text has %zu tokens, too many to count", total);
        goto done;
    }
    out->untruncated = (int)total;

    /* Truncation: a single text keeps its first max_len-2 pieces; a pair
     * drops pieces from the end of the longer side (from b on a tie). */
    size_t keep_a = na, keep_b = nb, room = (size_t)(max_len - min_len);
    if (!b) {
        if (keep_a > room) keep_a = room;
    } else {
        while (keep_a + keep_b > room) {
            if (keep_a > keep_b)
                keep_a--;
            else
                keep_b--;
        }
    }

    int n = 0;
    out->ids[n] = t->cls;
    out->type_ids[n++] = 0;
    /* left keeps each side's last pieces instead. */
    size_t skip_a = left ? na - keep_a : 0, skip_b = left ? nb - keep_b : 0;
    for (size_t i = 0; i < keep_a; i++) {
        out->ids[n] = s.ids[skip_a + i];
        out->type_ids[n++] = 0;
    }
    out->ids[n] = t->sep;
    out->type_ids[n++] = 0;
    if (b) {
        for (size_t i = 0; i < keep_b; i++) {
            out->ids[n] = s.ids[na + skip_b + i];
            out->type_ids[n++] = 1;
        }
        out->ids[n] = t->sep;
        out->type_ids[n++] = 1;
    }
    out->len = n;
done:
    scratch_free(&s);
    return rc;
}

int tok_tokenize(const tokenizer *t, const char *text, size_t len, int32_t *ids, int cap, bct_error *err) {
    if (!t) return bct_fail(err, BCT_EINVAL, "tok_tokenize: tokenizer is NULL");
    if (cap < 0 || (cap > 0 && !ids)) return bct_fail(err, BCT_EINVAL, "tok_tokenize: bad output array");
    struct scratch s = {0};
    int rc = t->j ? tjson_tokenize(t->j, text, len, &s.ids, &s.ids_n, &s.ids_cap, err)
                  : tokenize_text(t, &s, text, len, err);
    if (rc == BCT_OK) {
        if (s.ids_n > INT_MAX) {
            rc = bct_fail(err, BCT_ERANGE, "text has %zu tokens, too many to count", s.ids_n);
        } else {
            size_t n = s.ids_n < (size_t)cap ? s.ids_n : (size_t)cap;
            if (n) memcpy(ids, s.ids, n * sizeof(*ids));
            rc = (int)s.ids_n;
        }
    }
    scratch_free(&s);
    return rc;
}

int32_t tok_cls_id(const tokenizer *t) { return t->cls; }
int32_t tok_sep_id(const tokenizer *t) { return t->sep; }
int32_t tok_pad_id(const tokenizer *t) { return t->pad; }
int32_t tok_unk_id(const tokenizer *t) { return t->unk; }
