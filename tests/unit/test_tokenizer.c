/* test_tokenizer.c - vocab + tokenizer against the Python reference.
 *
 * Golden cases come from tests/data/tokenizer_cases.tsv (regenerate with
 * tests/data/make_tokenizer_cases.py); the GLUE dev sets are compared with
 * the reference ids stored next to each model in ../shared.  Tests that need
 * ../shared pass trivially when it is absent.
 */
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sys/mman.h>
#include <sys/resource.h>
#include <unistd.h>
#include <utf8proc.h>

#include "test_util.h"
#include "tokenizer/tokenizer.h"
#include "util/utf8.h"
#include "tokenizer/vocab.h"

#define REF_VOCAB "models/sst2-bert-tiny-scratch/vocab.txt"
#define DEV_MAX_LEN 128

/* A tiny vocab for tests that must not depend on ../shared. */
static const char MINI_VOCAB[] = "[PAD]\n[UNK]\n[CLS]\n[SEP]\nhello\n##lo\nhel\nworld\n!\n";

static vocab *parse_vocab(const char *text) {
    vocab *v = NULL;
    bct_error err;
    int rc = vocab_parse(text, strlen(text), &v, &err);
    ck_assert_msg(rc == BCT_OK, "vocab_parse: %s", err.msg);
    return v;
}

static vocab *load_ref_vocab(const char *rel) {
    const char *path = test_shared_path(rel);
    if (!path) return NULL;
    vocab *v = NULL;
    bct_error err;
    int rc = vocab_load(path, &v, &err);
    ck_assert_msg(rc == BCT_OK, "vocab_load: %s", err.msg);
    return v;
}

static tokenizer *make_tok(const vocab *v, int lowercase) {
    tok_options opt = {.lowercase = lowercase, .max_word_chars = 100};
    tokenizer *t = NULL;
    bct_error err;
    int rc = tok_create(v, &opt, &t, &err);
    ck_assert_msg(rc == BCT_OK, "tok_create: %s", err.msg);
    return t;
}

/* ------------------------------------------------------------ TSV helpers */

/* Splits s in place on sep; returns the number of fields (up to max). */
static int split(char *s, char sep, char **f, int max) {
    int n = 0;
    f[n++] = s;
    for (char *p = s; *p; p++) {
        if (*p == sep) {
            *p = '\0';
            if (n == max) return -1;
            f[n++] = p + 1;
        }
    }
    return n;
}

static int hexval(int c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

static int read_u16(const char *p, int32_t *out) {
    int32_t v = 0;
    for (int i = 0; i < 4; i++) {
        int h = hexval(p[i]);
        if (h < 0) return -1;
        v = v * 16 + h;
    }
    *out = v;
    return 0;
}

/* Decodes a JSON string literal (as written by Python's json.dumps) into a
 * malloc'd UTF-8 buffer; NUL bytes are allowed, hence the length.  "null"
 * gives *out = NULL.  Returns 0, or -1 on malformed input. */
static int json_string(const char *s, char **out, size_t *len) {
    *out = NULL;
    *len = 0;
    if (strcmp(s, "null") == 0) return 0;
    size_t n = strlen(s);
    if (n < 2 || s[0] != '"' || s[n - 1] != '"') return -1;
    char *buf = malloc(n * 2 + 1); /* a 6-byte escape gives at most 4 bytes */
    size_t o = 0;
    for (size_t i = 1; i + 1 < n;) {
        if (s[i] != '\\') {
            buf[o++] = s[i++];
            continue;
        }
        char e = s[i + 1];
        i += 2;
        int32_t c;
        switch (e) {
        case '"': c = '"'; break;
        case '\\': c = '\\'; break;
        case '/': c = '/'; break;
        case 'b': c = '\b'; break;
        case 'f': c = '\f'; break;
        case 'n': c = '\n'; break;
        case 'r': c = '\r'; break;
        case 't': c = '\t'; break;
        case 'u':
            if (i + 4 > n - 1 || read_u16(s + i, &c)) goto bad;
            i += 4;
            if (c >= 0xD800 && c < 0xDC00) { /* surrogate pair */
                int32_t lo;
                if (i + 6 > n - 1 || s[i] != '\\' || s[i + 1] != 'u' || read_u16(s + i + 2, &lo) ||
                    lo < 0xDC00 || lo > 0xDFFF)
                    goto bad;
                i += 6;
                c = 0x10000 + ((c - 0xD800) << 10) + (lo - 0xDC00);
            }
            break;
        default: goto bad;
        }
        o += (size_t)utf8proc_encode_char(c, (utf8proc_uint8_t *)buf + o);
    }
    buf[o] = '\0';
    *out = buf;
    *len = o;
    return 0;
bad:
    free(buf);
    return -1;
}

/* Formats ids for failure messages. */
static const char *fmt_ids(const int32_t *ids, int n) {
    static char buf[4][2048];
    static int next;
    char *b = buf[next++ & 3];
    size_t o = 0;
    b[0] = '\0';
    for (int i = 0; i < n && o < sizeof(buf[0]) - 16; i++)
        o += (size_t)snprintf(b + o, sizeof(buf[0]) - o, i ? " %d" : "%d", ids[i]);
    return b;
}

/* Parses space-separated ids; returns the count (or -1 when > cap). */
static int parse_ids(const char *s, int32_t *ids, int cap) {
    int n = 0;
    while (*s) {
        char *end;
        long v = strtol(s, &end, 10);
        if (end == s) break;
        if (n == cap) return -1;
        ids[n++] = (int32_t)v;
        s = end;
        while (*s == ' ') s++;
    }
    return n;
}

/* ----------------------------------------------------------- golden cases */

START_TEST(test_golden_cases) {
    vocab *v = load_ref_vocab(REF_VOCAB);
    if (!v) return;
    tokenizer *tk[2] = {make_tok(v, 0), make_tok(v, 1)};
    size_t flen;
    char *file = test_read_file(test_data_path("tokenizer_cases.tsv"), &flen);
    ck_assert_msg(file != NULL, "cannot read tests/data/tokenizer_cases.tsv");

    int cases = 0, lineno = 0;
    char *save = NULL;
    for (char *line = strtok_r(file, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        lineno++;
        if (line[0] == '#') continue;
        char *f[6];
        ck_assert_msg(split(line, '\t', f, 6) == 6, "line %d: expected 6 fields", lineno);
        int lower = atoi(f[0]), max_len = atoi(f[1]);
        char *a, *b;
        size_t alen, blen;
        ck_assert_msg(json_string(f[2], &a, &alen) == 0 && a, "line %d: bad text_a", lineno);
        ck_assert_msg(json_string(f[3], &b, &blen) == 0, "line %d: bad text_b", lineno);

        int32_t want[512], got[512];
        uint8_t got_tt[512];
        int nwant = parse_ids(f[4], want, 512);
        ck_assert_msg(nwant >= 2 && nwant <= max_len, "line %d: bad ids", lineno);
        ck_assert_int_eq((int)strlen(f[5]), nwant);

        tok_encoding enc = {.ids = got, .type_ids = got_tt, .cap = 512};
        bct_error err;
        int rc = tok_encode(tk[lower != 0], a, alen, b, blen, max_len, &enc, &err);
        ck_assert_msg(rc == BCT_OK, "line %d: tok_encode: %s", lineno, err.msg);
        ck_assert_msg(enc.len == nwant && memcmp(got, want, (size_t)nwant * sizeof(*want)) == 0,
                      "line %d (%s):\n  want %s\n  got  %s", lineno, f[2], fmt_ids(want, nwant),
                      fmt_ids(got, enc.len));
        for (int i = 0; i < nwant; i++)
            ck_assert_msg(got_tt[i] == f[5][i] - '0', "line %d: type id %d differs", lineno, i);

        /* tok_tokenize gives the same pieces without specials/truncation. */
        if (!b) {
            int n = tok_tokenize(tk[lower != 0], a, alen, got, 512, &err);
            ck_assert_int_eq(n, enc.untruncated - 2);
            if (enc.untruncated <= max_len)
                ck_assert_msg(n <= 512 && memcmp(got, want + 1, (size_t)n * sizeof(*got)) == 0,
                              "line %d: tok_tokenize differs", lineno);
        }
        free(a);
        free(b);
        cases++;
    }
    ck_assert_int_ge(cases, 60);
    free(file);
    tok_free(tk[0]);
    tok_free(tk[1]);
    vocab_free(v);
}
END_TEST

/* Truncation bookkeeping on top of the golden ids. */
START_TEST(test_truncation_counts) {
    vocab *v = parse_vocab(MINI_VOCAB);
    tokenizer *t = make_tok(v, 1);
    int32_t ids[16];
    uint8_t tt[16];
    tok_encoding enc = {.ids = ids, .type_ids = tt, .cap = 16};
    bct_error err;
    /* 5 pieces: hello hello world ! ! */
    const char *a = "HELLO hello world!!";
    ck_assert_int_eq(tok_encode(t, a, strlen(a), NULL, 0, 5, &enc, &err), BCT_OK);
    ck_assert_int_eq(enc.len, 5);
    ck_assert_int_eq(enc.untruncated, 7);
    ck_assert_int_eq(ids[0], tok_cls_id(t));
    ck_assert_int_eq(ids[4], tok_sep_id(t));
    ck_assert_int_eq(ids[1], 4); /* "hello" is a whole word in this vocab */

    const char *b = "world";
    ck_assert_int_eq(tok_encode(t, a, strlen(a), b, strlen(b), 6, &enc, &err), BCT_OK);
    ck_assert_int_eq(enc.len, 6);
    ck_assert_int_eq(enc.untruncated, 9);
    const int32_t want[] = {2, 4, 4, 3, 7, 3};
    const uint8_t want_tt[] = {0, 0, 0, 0, 1, 1};
    ck_assert_mem_eq(ids, want, sizeof(want));
    ck_assert_mem_eq(tt, want_tt, sizeof(want_tt));

    /* tok_tokenize reports the full count even when cap is smaller. */
    ck_assert_int_eq(tok_tokenize(t, a, strlen(a), ids, 2, &err), 5);
    ck_assert_int_eq(tok_tokenize(t, "", 0, NULL, 0, &err), 0);
    ck_assert_int_eq(tok_unk_id(t), 1);
    ck_assert_int_eq(tok_pad_id(t), 0);
    tok_free(t);
    vocab_free(v);
}
END_TEST

START_TEST(test_encode_bad_args) {
    vocab *v = parse_vocab(MINI_VOCAB);
    tokenizer *t = make_tok(v, 1);
    int32_t ids[8];
    uint8_t tt[8];
    tok_encoding enc = {.ids = ids, .type_ids = tt, .cap = 8};
    bct_error err;
    ck_assert_int_eq(tok_encode(t, "hi", 2, NULL, 0, 1, &enc, &err), BCT_EINVAL);
    ck_assert_int_eq(tok_encode(t, "hi", 2, NULL, 0, 2, &enc, &err), BCT_OK);
    ck_assert_int_eq(enc.len, 2);
    ck_assert_int_eq(tok_encode(t, "hi", 2, "yo", 2, 2, &enc, &err), BCT_EINVAL);
    ck_assert_int_eq(tok_encode(t, "hi", 2, "yo", 2, 3, &enc, &err), BCT_OK);
    ck_assert_int_eq(enc.len, 3);
    ck_assert_int_eq(tok_encode(t, "hi", 2, NULL, 0, 9, &enc, &err), BCT_EINVAL); /* cap 8 < 9 */
    ck_assert_ptr_nonnull(strstr(err.msg, "max_len"));
    enc.ids = NULL;
    ck_assert_int_eq(tok_encode(t, "hi", 2, NULL, 0, 4, &enc, &err), BCT_EINVAL);
    ck_assert_int_eq(tok_encode(t, NULL, 0, NULL, 0, 4, NULL, &err), BCT_EINVAL);

    tok_options bad = {.lowercase = 1, .max_word_chars = 0};
    tokenizer *t2 = NULL;
    ck_assert_int_eq(tok_create(v, &bad, &t2, &err), BCT_EINVAL);
    ck_assert_ptr_null(t2);
    ck_assert_int_eq(tok_create(v, NULL, &t2, &err), BCT_OK); /* NULL = reference defaults */
    tok_free(t2);
    tok_free(t);
    vocab_free(v);
}
END_TEST

/* A smaller word limit is honoured (counted in code points). */
START_TEST(test_max_word_chars) {
    vocab *v = parse_vocab("[PAD]\n[UNK]\n[CLS]\n[SEP]\n\xc3\xa9\n##\xc3\xa9\n");
    tok_options opt = {.lowercase = 0, .max_word_chars = 3};
    tokenizer *t = NULL;
    bct_error err;
    ck_assert_int_eq(tok_create(v, &opt, &t, &err), BCT_OK);
    int32_t ids[8];
    ck_assert_int_eq(tok_tokenize(t, "\xc3\xa9\xc3\xa9\xc3\xa9", 6, ids, 8, &err), 3);
    ck_assert_int_eq(ids[2], 5);
    ck_assert_int_eq(tok_tokenize(t, "\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9", 8, ids, 8, &err), 1);
    ck_assert_int_eq(ids[0], 1);
    tok_free(t);
    vocab_free(v);
}
END_TEST

/* ------------------------------------------------------------ bad UTF-8 */

START_TEST(test_invalid_utf8) {
    static const struct {
        const char *s;
        size_t len;
        size_t off;
    } bad[] = {
        {"\x80", 1, 0},                 /* lone continuation byte */
        {"abc\xbf", 4, 3},              /* continuation after ASCII */
        {"ok \xc3", 4, 3},              /* truncated 2-byte sequence */
        {"\xe2\x82", 2, 0},             /* truncated 3-byte sequence */
        {"\xf0\x9f\x98", 3, 0},         /* truncated 4-byte sequence */
        {"x\xc0\x80", 3, 1},            /* overlong NUL */
        {"\xc1\xbf", 2, 0},             /* overlong ASCII */
        {"\xe0\x80\x80", 3, 0},         /* overlong 3-byte */
        {"\xf0\x80\x80\x80", 4, 0},     /* overlong 4-byte */
        {"\xed\xa0\x80", 3, 0},         /* surrogate U+D800 */
        {"a\xed\xbf\xbf", 4, 1},        /* surrogate U+DFFF */
        {"\xf4\x90\x80\x80", 4, 0},     /* U+110000 */
        {"\xf8\x88\x80\x80\x80", 5, 0}, /* 5-byte form */
        {"\xfe", 1, 0},
        {"\xff", 1, 0},
        {"caf\xc3\xa9 \xc3(", 8, 6}, /* valid é, then a bad lead */
    };
    vocab *v = parse_vocab(MINI_VOCAB);
    tokenizer *t = make_tok(v, 1);
    int32_t ids[8];
    uint8_t tt[8];
    tok_encoding enc = {.ids = ids, .type_ids = tt, .cap = 8};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        bct_error err = {{0}};
        char want[64];
        snprintf(want, sizeof(want), "byte offset %zu", bad[i].off);
        ck_assert_int_eq(tok_tokenize(t, bad[i].s, bad[i].len, ids, 8, &err), BCT_EINVAL);
        ck_assert_msg(strstr(err.msg, want) != NULL, "case %zu: message '%s' lacks '%s'", i, err.msg, want);
        ck_assert_int_eq(tok_encode(t, bad[i].s, bad[i].len, NULL, 0, 8, &enc, &err), BCT_EINVAL);
        ck_assert_int_eq(tok_encode(t, "hello", 5, bad[i].s, bad[i].len, 8, &enc, &err), BCT_EINVAL);
        ck_assert_msg(strstr(err.msg, "second text") != NULL, "pair message: %s", err.msg);
    }
    /* Valid edge values still pass: U+10FFFF, U+E000, U+FFFF, embedded NUL. */
    bct_error err;
    ck_assert_int_ge(tok_tokenize(t, "\xf4\x8f\xbf\xbf\xee\x80\x80\xef\xbf\xbf", 10, ids, 8, &err), 0);
    ck_assert_int_eq(tok_tokenize(t, "hel\0lo", 6, ids, 8, &err), 1);
    ck_assert_int_eq(ids[0], 4); /* NUL is dropped: "hello" */
    tok_free(t);
    vocab_free(v);
}
END_TEST

/* First offset where utf8proc_iterate() (what the tokenizer decodes with)
 * fails, or len. */
static size_t utf8proc_first_bad(const uint8_t *s, size_t len) {
    size_t pos = 0;
    while (pos < len) {
        utf8proc_int32_t c;
        utf8proc_ssize_t n = utf8proc_iterate(s + pos, (utf8proc_ssize_t)(len - pos), &c);
        if (n <= 0 || !utf8proc_codepoint_valid(c)) return pos;
        pos += (size_t)n;
    }
    return len;
}

/* The tokenizer validates with utf8_find_invalid() and then decodes with
 * utf8proc without error checks: both must accept exactly the same bytes
 * and stop at the same offset.  Every string of up to 3 bytes, and 4-byte
 * sequences over every lead and second byte. */
START_TEST(test_utf8_matches_utf8proc) {
    uint8_t b[4];
    /* A plain if per case: ck_assert costs a pipe write even when it holds. */
    for (size_t len = 1; len <= 3; len++) {
        for (uint32_t v = 0; v < (1u << (8 * len)); v++) {
            for (size_t i = 0; i < len; i++) b[i] = (uint8_t)(v >> (8 * i));
            if (utf8_find_invalid(b, len, 0, NULL) != utf8proc_first_bad(b, len))
                ck_abort_msg("len %zu bytes %06x", len, (unsigned)v);
        }
    }
    static const uint8_t tail[] = {0x00, 0x7F, 0x80, 0x8F, 0x90, 0xBF, 0xC0, 0xFF};
    for (uint32_t lead = 0xC0; lead <= 0xFF; lead++) {
        for (uint32_t second = 0; second <= 0xFF; second++) {
            for (size_t i = 0; i < sizeof(tail) * sizeof(tail); i++) {
                b[0] = (uint8_t)lead, b[1] = (uint8_t)second;
                b[2] = tail[i % sizeof(tail)], b[3] = tail[i / sizeof(tail)];
                if (utf8_find_invalid(b, 4, 0, NULL) != utf8proc_first_bad(b, 4))
                    ck_abort_msg("%02x %02x %02x %02x", b[0], b[1], b[2], b[3]);
            }
        }
    }
}
END_TEST

/* ------------------------------------------------------------ vocab edges */

START_TEST(test_vocab_duplicates) {
    vocab *v = parse_vocab("[PAD]\n[UNK]\n[CLS]\n[SEP]\nfoo\nbar\nfoo\n");
    ck_assert_int_eq(vocab_size(v), 7);
    ck_assert_int_eq(vocab_find(v, "foo", 3), 6); /* last line wins */
    ck_assert_int_eq(vocab_find(v, "bar", 3), 5);
    ck_assert_int_eq(vocab_find(v, "fo", 2), -1);
    size_t len = 0;
    ck_assert_str_eq(vocab_token(v, 4, &len), "foo"); /* the earlier id keeps its text */
    ck_assert_uint_eq(len, 3);
    ck_assert_ptr_null(vocab_token(v, 7, NULL));
    ck_assert_ptr_null(vocab_token(v, -1, NULL));
    tokenizer *t = make_tok(v, 1);
    int32_t ids[4];
    bct_error err;
    ck_assert_int_eq(tok_tokenize(t, "FOO", 3, ids, 4, &err), 1);
    ck_assert_int_eq(ids[0], 6);
    tok_free(t);
    vocab_free(v);
}
END_TEST

START_TEST(test_vocab_missing_special) {
    static const char *names[] = {"[CLS]", "[SEP]", "[UNK]", "[PAD]"};
    for (int miss = 0; miss < 4; miss++) {
        char text[128] = "";
        for (int i = 0; i < 4; i++) {
            if (i == miss) continue;
            strcat(text, names[i]);
            strcat(text, "\n");
        }
        strcat(text, "word\n");
        vocab *v = parse_vocab(text);
        tokenizer *t = NULL;
        bct_error err = {{0}};
        ck_assert_int_eq(tok_create(v, NULL, &t, &err), BCT_EFORMAT);
        ck_assert_ptr_null(t);
        ck_assert_msg(strstr(err.msg, names[miss]) != NULL, "message '%s' should name %s", err.msg,
                      names[miss]);
        vocab_free(v);
    }
}
END_TEST

START_TEST(test_vocab_line_endings) {
    /* No final newline: the last line still counts. */
    vocab *v = parse_vocab("[PAD]\n[UNK]\n[CLS]\n[SEP]\nlast");
    ck_assert_int_eq(vocab_size(v), 5);
    ck_assert_int_eq(vocab_find(v, "last", 4), 4);
    vocab_free(v);

    /* Python's text-mode open() (universal newlines) ends lines at \n,
     * \r\n and a lone \r; an empty line is the empty token. */
    v = parse_vocab("a\r\nb\rc\n\nd\r");
    ck_assert_int_eq(vocab_size(v), 5);
    ck_assert_int_eq(vocab_find(v, "a", 1), 0);
    ck_assert_int_eq(vocab_find(v, "b", 1), 1);
    ck_assert_int_eq(vocab_find(v, "c", 1), 2);
    ck_assert_int_eq(vocab_find(v, "", 0), 3);
    ck_assert_int_eq(vocab_find(v, "d", 1), 4);
    ck_assert_int_eq(vocab_find(v, "a\r", 2), -1);
    size_t len;
    ck_assert_str_eq(vocab_token(v, 0, &len), "a");
    vocab_free(v);

    /* The same through vocab_load. */
    static const char text[] = "[PAD]\n[UNK]\n[CLS]\n[SEP]\nx y\n##z";
    const char *path = test_write_temp(text, sizeof(text) - 1);
    ck_assert_ptr_nonnull(path);
    bct_error err;
    ck_assert_int_eq(vocab_load(path, &v, &err), BCT_OK);
    ck_assert_int_eq(vocab_size(v), 6);
    ck_assert_int_eq(vocab_find(v, "x y", 3), 4);
    ck_assert_int_eq(vocab_find(v, "##z", 3), 5);
    vocab_free(v);
    remove(path);
}
END_TEST

START_TEST(test_vocab_errors) {
    vocab *v = (vocab *)1;
    bct_error err = {{0}};
    ck_assert_int_eq(vocab_parse("", 0, &v, &err), BCT_EFORMAT);
    ck_assert_ptr_null(v);
    ck_assert_int_eq(vocab_parse("ok\n\xff\n", 5, &v, &err), BCT_EFORMAT);
    ck_assert_ptr_nonnull(strstr(err.msg, "line 2"));
    ck_assert_int_eq(vocab_load("/nonexistent/vocab.txt", &v, &err), BCT_EIO);
    ck_assert_ptr_nonnull(strstr(err.msg, "/nonexistent/vocab.txt"));
    const char *path = test_write_temp("", 0);
    ck_assert_int_eq(vocab_load(path, &v, &err), BCT_EFORMAT);
    ck_assert_ptr_nonnull(strstr(err.msg, path));
    remove(path);
}
END_TEST

static long max_rss_kb(void) {
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_maxrss;
}

/* Memory bound (issue 17): a vocab over VOCAB_MAX_BYTES is refused, the
 * limit named, before it is copied (a text) or read (a file: sparse, so
 * the test costs no disk). */
START_TEST(test_vocab_over_limit) {
    size_t n = (size_t)VOCAB_MAX_BYTES + 1;
    char *big = mmap(NULL, n, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    ck_assert(big != MAP_FAILED);
    long before = max_rss_kb();
    vocab *v = (vocab *)1;
    bct_error err = {{0}};
    ck_assert_int_eq(vocab_parse(big, n, &v, &err), BCT_ERANGE);
    ck_assert_ptr_null(v);
    ck_assert_msg(strstr(err.msg, "more than the limit of 67108864 (VOCAB_MAX_BYTES)"), "%s", err.msg);
    munmap(big, n);
    const char *path = test_write_temp("a\n", 2);
    ck_assert_int_eq(truncate(path, (off_t)n), 0);
    ck_assert_int_eq(vocab_load(path, &v, &err), BCT_ERANGE);
    ck_assert_msg(strstr(err.msg, path) && strstr(err.msg, "VOCAB_MAX_BYTES"), "%s", err.msg);
    ck_assert_int_eq(truncate(path, (off_t)n - 1), 0); /* at the limit: read */
    int rc = vocab_load(path, &v, &err);
    ck_assert_int_ne(rc, BCT_ERANGE);
    if (rc == BCT_OK) vocab_free(v);
    remove(path);
    long grown_mb = (max_rss_kb() - before) / 1024;
    ck_assert_msg(grown_mb < 200, "peak RSS grew by %ld MB", grown_mb);
}
END_TEST

START_TEST(test_vocab_reference_ids) {
    vocab *v = load_ref_vocab(REF_VOCAB);
    if (!v) return;
    ck_assert_int_eq(vocab_size(v), 30522);
    ck_assert_int_eq(vocab_find(v, "[PAD]", 5), 0);
    ck_assert_int_eq(vocab_find(v, "[UNK]", 5), 100);
    ck_assert_int_eq(vocab_find(v, "[CLS]", 5), 101);
    ck_assert_int_eq(vocab_find(v, "[SEP]", 5), 102);
    ck_assert_int_eq(vocab_find(v, "the", 3), 1996);
    /* Every token maps back to its own id (the file has no duplicates). */
    for (int32_t i = 0; i < vocab_size(v); i++) {
        size_t len;
        const char *s = vocab_token(v, i, &len);
        ck_assert_int_eq(vocab_find(v, s, len), i);
    }
    vocab_free(v);
}
END_TEST

/* -------------------------------------------------------------- dev sets */

typedef struct {
    char **a, **b; /* NUL-terminated texts (b NULL for single) */
    size_t *alen, *blen;
    int n;
    char *buf; /* owns the texts */
} dev_set;

/* Python's str.isspace() code points, for the reference's `if l.strip()`. */
static int py_isspace(int32_t c) {
    return (c >= 0x9 && c <= 0xD) || (c >= 0x1C && c <= 0x20) || c == 0x85 || c == 0xA0 || c == 0x1680 ||
           (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 || c == 0x202F || c == 0x205F ||
           c == 0x3000;
}

static int blank_line(const char *s, size_t len) {
    for (size_t i = 0; i < len;) {
        utf8proc_int32_t c;
        utf8proc_ssize_t n =
            utf8proc_iterate((const utf8proc_uint8_t *)s + i, (utf8proc_ssize_t)(len - i), &c);
        if (n <= 0) return 0;
        if (!py_isspace(c)) return 0;
        i += (size_t)n;
    }
    return 1;
}

/* Reads a GLUE dev TSV the way ref_bert.py's read_glue does: utf-8-sig,
 * split on "\n", strip trailing "\r"s, skip blank lines and the header,
 * split on tabs; columns ca (and cb, or -1) hold the texts. */
static void read_glue(const char *path, int ca, int cb, dev_set *d) {
    memset(d, 0, sizeof(*d));
    size_t len;
    char *buf = test_read_file(path, &len);
    ck_assert_msg(buf != NULL, "cannot read %s", path);
    d->buf = buf;
    if (len >= 3 && memcmp(buf, "\xef\xbb\xbf", 3) == 0) buf += 3;
    size_t cap = 1024;
    d->a = malloc(cap * sizeof(char *));
    d->b = malloc(cap * sizeof(char *));
    d->alen = malloc(cap * sizeof(size_t));
    d->blen = malloc(cap * sizeof(size_t));
    int header = 1;
    char *save = NULL;
    for (char *line = strtok_r(buf, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        size_t n = strlen(line);
        if (blank_line(line, n)) continue;
        while (n > 0 && line[n - 1] == '\r') line[--n] = '\0';
        if (header) {
            header = 0;
            continue;
        }
        char *f[64];
        int nf = split(line, '\t', f, 64);
        ck_assert_msg(nf > ca && nf > cb, "%s: row %d has %d fields", path, d->n + 1, nf);
        if ((size_t)d->n == cap) {
            cap *= 2;
            d->a = realloc(d->a, cap * sizeof(char *));
            d->b = realloc(d->b, cap * sizeof(char *));
            d->alen = realloc(d->alen, cap * sizeof(size_t));
            d->blen = realloc(d->blen, cap * sizeof(size_t));
        }
        d->a[d->n] = f[ca];
        d->alen[d->n] = strlen(f[ca]);
        d->b[d->n] = cb >= 0 ? f[cb] : NULL;
        d->blen[d->n] = cb >= 0 ? strlen(f[cb]) : 0;
        d->n++;
    }
}

static void dev_free(dev_set *d) {
    free(d->a);
    free(d->b);
    free(d->alen);
    free(d->blen);
    free(d->buf);
}

typedef struct {
    int32_t ids[DEV_MAX_LEN];
    uint8_t tt[DEV_MAX_LEN];
    int len;
} dev_enc;

static void encode_all(const tokenizer *t, const dev_set *d, dev_enc *out) {
    for (int i = 0; i < d->n; i++) {
        tok_encoding enc = {.ids = out[i].ids, .type_ids = out[i].tt, .cap = DEV_MAX_LEN};
        bct_error err;
        int rc = tok_encode(t, d->a[i], d->alen[i], d->b[i], d->blen[i], DEV_MAX_LEN, &enc, &err);
        ck_assert_msg(rc == BCT_OK, "example %d: %s", i, err.msg);
        out[i].len = enc.len;
    }
}

static const struct {
    const char *model, *tsv;
    int ca, cb;
} DEV[] = {
    {"sst2-bert-tiny-scratch", "data/glue/SST-2/dev.tsv", 0, -1},
    {"sst2-bert-mini-scratch", "data/glue/SST-2/dev.tsv", 0, -1},
    {"mrpc-bert-mini-scratch", "data/glue/MRPC/dev.tsv", 3, 4},
};

START_TEST(test_dev_sets) {
    if (!test_shared_path("")) return;
    char rel[256];
    snprintf(rel, sizeof(rel), "models/%s/vocab.txt", DEV[_i].model);
    vocab *v = load_ref_vocab(rel);
    tokenizer *t = make_tok(v, 1);
    dev_set d;
    read_glue(test_shared_path(DEV[_i].tsv), DEV[_i].ca, DEV[_i].cb, &d);
    dev_enc *enc = malloc((size_t)d.n * sizeof(*enc));
    encode_all(t, &d, enc);

    snprintf(rel, sizeof(rel), "models/%s/ref_dev_input_ids.txt", DEV[_i].model);
    char *ref = test_read_file(test_shared_path(rel), NULL);
    ck_assert_msg(ref != NULL, "cannot read %s", rel);
    int row = 0, match = 0;
    char *save = NULL;
    for (char *line = strtok_r(ref, "\n", &save); line; line = strtok_r(NULL, "\n", &save), row++) {
        ck_assert_msg(row < d.n, "%s has more rows than the dev set (%d)", rel, d.n);
        char *f[2];
        int nf = split(line, '\t', f, 2);
        int32_t want[DEV_MAX_LEN];
        int n = parse_ids(f[0], want, DEV_MAX_LEN);
        int ok = n == enc[row].len && memcmp(want, enc[row].ids, (size_t)n * sizeof(*want)) == 0;
        for (int k = 0; ok && k < n; k++) ok = enc[row].tt[k] == (nf == 2 ? f[1][k] - '0' : 0);
        if (nf == 2) ok = ok && (int)strlen(f[1]) == n;
        if (!ok)
            fprintf(stderr, "%s row %d:\n  want %s\n  got  %s\n", DEV[_i].model, row, fmt_ids(want, n),
                    fmt_ids(enc[row].ids, enc[row].len));
        match += ok;
    }
    ck_assert_int_eq(row, d.n);
    ck_assert_msg(match == d.n, "%s: %d of %d dev examples match the reference", DEV[_i].model, match, d.n);
    free(ref);
    free(enc);
    dev_free(&d);
    tok_free(t);
    vocab_free(v);
}
END_TEST

/* ------------------------------------------------------------ threading */

typedef struct {
    const tokenizer *t;
    const dev_set *d;
    dev_enc *out;
} job;

static void *encode_job(void *arg) {
    job *j = arg;
    for (int rep = 0; rep < 3; rep++) encode_all(j->t, j->d, j->out);
    return NULL;
}

START_TEST(test_threads) {
    if (!test_shared_path("")) return;
    vocab *v = load_ref_vocab("models/mrpc-bert-mini-scratch/vocab.txt");
    tokenizer *t = make_tok(v, 1);
    dev_set d;
    read_glue(test_shared_path("data/glue/MRPC/dev.tsv"), 3, 4, &d);
    dev_enc *single = malloc((size_t)d.n * sizeof(*single));
    encode_all(t, &d, single);

    enum { NT = 4 };
    pthread_t th[NT];
    job jobs[NT];
    for (int i = 0; i < NT; i++) {
        jobs[i] = (job){t, &d, calloc((size_t)d.n, sizeof(dev_enc))};
        ck_assert_int_eq(pthread_create(&th[i], NULL, encode_job, &jobs[i]), 0);
    }
    for (int i = 0; i < NT; i++) ck_assert_int_eq(pthread_join(th[i], NULL), 0);
    for (int i = 0; i < NT; i++) {
        for (int k = 0; k < d.n; k++) {
            ck_assert_int_eq(jobs[i].out[k].len, single[k].len);
            ck_assert_mem_eq(jobs[i].out[k].ids, single[k].ids, (size_t)single[k].len * sizeof(int32_t));
            ck_assert_mem_eq(jobs[i].out[k].tt, single[k].tt, (size_t)single[k].len);
        }
        free(jobs[i].out);
    }
    free(single);
    dev_free(&d);
    tok_free(t);
    vocab_free(v);
}
END_TEST

/* A huge word and a long text stay fast (linear work). */
START_TEST(test_long_inputs) {
    vocab *v = parse_vocab(MINI_VOCAB);
    tokenizer *t = make_tok(v, 1);
    size_t n = 1 << 20;
    char *s = malloc(n);
    for (size_t i = 0; i < n; i++) s[i] = 'x';
    int32_t ids[4];
    bct_error err;
    ck_assert_int_eq(tok_tokenize(t, s, n, ids, 4, &err), 1); /* one [UNK] */
    for (size_t i = 0; i + 6 <= n; i += 6) memcpy(s + i, "hello ", 6);
    ck_assert_int_eq(tok_tokenize(t, s, n, ids, 4, &err), (int)(n / 6) + (n % 6 != 0));
    /* Combining marks everywhere (stripped) and a long run of them. */
    for (size_t i = 0; i + 2 <= n; i += 2) memcpy(s + i, "\xcc\x81", 2);
    ck_assert_int_eq(tok_tokenize(t, s, n, ids, 4, &err), 0);
    free(s);
    tok_free(t);
    vocab_free(v);
}
END_TEST

static Suite *tokenizer_suite(void) {
    Suite *s = suite_create("tokenizer");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_golden_cases);
    tcase_add_test(tc, test_truncation_counts);
    tcase_add_test(tc, test_encode_bad_args);
    tcase_add_test(tc, test_max_word_chars);
    tcase_add_test(tc, test_invalid_utf8);
    tcase_add_test(tc, test_utf8_matches_utf8proc);
    tcase_add_test(tc, test_vocab_duplicates);
    tcase_add_test(tc, test_vocab_missing_special);
    tcase_add_test(tc, test_vocab_line_endings);
    tcase_add_test(tc, test_vocab_errors);
    tcase_add_test(tc, test_vocab_over_limit);
    tcase_add_test(tc, test_vocab_reference_ids);
    tcase_add_loop_test(tc, test_dev_sets, 0, (int)(sizeof(DEV) / sizeof(DEV[0])));
    tcase_add_test(tc, test_threads);
    tcase_add_test(tc, test_long_inputs);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) { return test_run_suite(tokenizer_suite()); }
