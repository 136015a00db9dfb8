/* test_tokenizer_json.c - tokenizer.json / vocab.json + merges.txt
 * tokenizers against the Python reference, and bad files.
 *
 * Golden ids: tests/data/tokenizers/<name>.ids, made by
 * tests/data/make_tokenizer_json_cases.py (reference: ref_tokenizers.py)
 * over the texts of cases.jsonl (GLUE dev sentences and pairs, hostile
 * inputs).  Runs without ../shared.
 */
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>
#include <sys/mman.h>

#include "test_util.h"
#include "tokenizer/tokenizer.h"

#define MAX_CASES 400
#define CAP 1024

typedef struct tcase {
    char *a, *b; /* b NULL: single text */
    size_t alen, blen;
    int max_len;
} tcase;

static tcase cases[MAX_CASES];
static int n_cases;

static char *unhex(const char *h, size_t *len) {
    size_t n = strlen(h) / 2;
    char *s = malloc(n + 1);
    ck_assert_ptr_nonnull(s);
    for (size_t i = 0; i < n; i++) {
        unsigned v;
        ck_assert_int_eq(sscanf(h + 2 * i, "%2x", &v), 1);
        s[i] = (char)v;
    }
    s[n] = '\0';
    *len = n;
    return s;
}

static void load_cases(void) {
    if (n_cases) return;
    size_t len;
    char *text = test_read_file(test_data_path("tokenizers/cases.jsonl"), &len);
    ck_assert_ptr_nonnull(text);
    for (char *save = NULL, *line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        ck_assert_int_lt(n_cases, MAX_CASES);
        cJSON *o = cJSON_Parse(line);
        ck_assert_ptr_nonnull(o);
        tcase *c = &cases[n_cases++];
        c->a = unhex(cJSON_GetObjectItem(o, "a")->valuestring, &c->alen);
        cJSON *b = cJSON_GetObjectItem(o, "b");
        c->b = cJSON_IsString(b) ? unhex(b->valuestring, &c->blen) : NULL;
        c->max_len = cJSON_GetObjectItem(o, "max_len")->valueint;
        cJSON_Delete(o);
    }
    free(text);
    ck_assert_int_gt(n_cases, 100);
}

/* TOK_GOLDEN_DIR / TOK_GOLDEN_NAME: a fixture generated at test time
 * (tests/cli/test_tokenizer_spm.sh) instead of the committed ones. */
static const char *fixture_path(const char *name, const char *ext, char path[4096]) {
    const char *dir = getenv("TOK_GOLDEN_DIR");
    if (dir)
        snprintf(path, 4096, "%s/%s.%s", dir, name, ext);
    else
        snprintf(path, 4096, "%s/tokenizers/%s.%s", BCT_TEST_DATA, name, ext);
    return path;
}

static tokenizer *load_json_tok(const char *name) {
    size_t len;
    char path[4096];
    char *doc = test_read_file(fixture_path(name, "json", path), &len);
    ck_assert_ptr_nonnull(doc);
    tokenizer *t = NULL;
    bct_error err = {{0}};
    int rc = tok_create_from_json(doc, len, &t, &err);
    free(doc);
    ck_assert_msg(rc == BCT_OK, "%s: %s", name, err.msg);
    return t;
}

/* Compares every case against <golden>.ids ("SKIP": not compared). */
static void check_golden_n(tokenizer *t, const char *golden, int min_checked, int min_errors) {
    load_cases();
    size_t len;
    char path[4096];
    char *text = test_read_file(fixture_path(golden, "ids", path), &len);
    ck_assert_ptr_nonnull(text);
    int32_t ids[CAP];
    uint8_t types[CAP];
    char *save = NULL, *line = strtok_r(text, "\n", &save);
    int checked = 0, errors = 0;
    for (int i = 0; i < n_cases; i++, line = strtok_r(NULL, "\n", &save)) {
        ck_assert_msg(line != NULL, "%s: fewer golden lines than cases", golden);
        tcase *c = &cases[i];
        tok_encoding e = {ids, types, CAP, 0, 0};
        bct_error err = {{0}};
        int rc = tok_encode(t, c->a, c->alen, c->b, c->blen, c->max_len, &e, &err);
        if (strcmp(line, "SKIP") == 0) continue;
        if (strcmp(line, "ERROR") == 0) {
            ck_assert_msg(rc != BCT_OK, "%s case %d: expected an error", golden, i);
            ck_assert_msg(strstr(err.msg, "UTF-8") || strstr(err.msg, "max_len"), "%s case %d: %s", golden, i,
                          err.msg);
            errors++;
            continue;
        }
        ck_assert_msg(rc == BCT_OK, "%s case %d: %s", golden, i, err.msg);
        /* "ids | types" */
        char *bar = strchr(line, '|');
        ck_assert_ptr_nonnull(bar);
        int n = 0;
        char *p = line;
        while (p < bar) {
            char *end;
            long v = strtol(p, &end, 10);
            if (end == p) break;
            ck_assert_msg(n < e.len && ids[n] == v, "%s case %d (\"%.60s\"): id %d is %d, expected %ld", golden, i,
                          c->a, n, n < e.len ? ids[n] : -1, v);
            n++;
            p = end;
            while (*p == ' ') p++;
        }
        ck_assert_msg(n == e.len, "%s case %d (\"%.60s\"): %d ids, expected %d", golden, i, c->a, e.len, n);
        p = bar + 1;
        for (int k = 0; k < n; k++) {
            char *end;
            long v = strtol(p, &end, 10);
            ck_assert_msg(end != p && types[k] == v, "%s case %d: type id %d", golden, i, k);
            p = end;
        }
        checked++;
    }
    ck_assert_int_ge(checked, min_checked);
    ck_assert_int_ge(errors, min_errors);
    free(text);
}

static void check_golden(tokenizer *t, const char *golden) { check_golden_n(t, golden, 100, 5); }

static void golden_of(const char *name) {
    tokenizer *t = load_json_tok(name);
    check_golden(t, name);
    tok_free(t);
}

START_TEST(test_bpe_golden) { golden_of("bpe"); }
END_TEST
START_TEST(test_unigram_golden) { golden_of("unigram"); }
END_TEST
START_TEST(test_unigram_byte_fallback_golden) { golden_of("unigram_bf"); }
END_TEST
START_TEST(test_wordpiece_uncased_golden) { golden_of("wp_uncased"); }
END_TEST
START_TEST(test_wordpiece_cased_golden) { golden_of("wp_cased"); }
END_TEST
START_TEST(test_sequences_golden) { golden_of("wp_seq"); }
END_TEST

/* Golden ids from SentencePiece itself (tests/data/make_spm_case.py). */
START_TEST(test_sentencepiece_golden) {
    tokenizer *t = load_json_tok("spm");
    check_golden_n(t, "spm", 90, 0);
    tok_free(t);
}
END_TEST

/* vocab.json + merges.txt gives the same ids as the tokenizer.json. */
START_TEST(test_bpe_files_golden) {
    size_t vl, ml;
    char *v = test_read_file(test_data_path("tokenizers/bpe_vocab.json"), &vl);
    char *m = test_read_file(test_data_path("tokenizers/bpe_merges.txt"), &ml);
    ck_assert_ptr_nonnull(v);
    ck_assert_ptr_nonnull(m);
    tokenizer *t = NULL;
    bct_error err = {{0}};
    int rc = tok_create_from_bpe(v, vl, m, ml, &t, &err);
    ck_assert_msg(rc == BCT_OK, "%s", err.msg);
    check_golden(t, "bpe");
    /* The document it built is a tokenizer.json that loads again. */
    size_t dl;
    const char *doc = tok_json_doc(t, &dl);
    ck_assert_ptr_nonnull(doc);
    tokenizer *t2 = NULL;
    ck_assert_int_eq(tok_create_from_json(doc, dl, &t2, &err), BCT_OK);
    check_golden(t2, "bpe");
    tok_free(t2);
    tok_free(t);
    free(v);
    free(m);
}
END_TEST

/* Worked cases of the GPT-2 split and specials from the notes (ids
 * through the fixture vocab: single byte-level tokens). */
START_TEST(test_bpe_specials) {
    tokenizer *t = load_json_tok("bpe");
    ck_assert_int_eq(tok_cls_id(t), 0);
    ck_assert_int_eq(tok_sep_id(t), 2);
    ck_assert_int_eq(tok_pad_id(t), 1);
    ck_assert_int_eq(tok_unk_id(t), -1); /* unk_token null, as in the file */
    int32_t ids[CAP];
    uint8_t types[CAP];
    tok_encoding e = {ids, types, CAP, 0, 0};
    bct_error err;
    ck_assert_int_eq(tok_encode(t, "x", 1, "y", 1, 16, &e, &err), BCT_OK);
    ck_assert_int_eq(e.len, 6); /* <s> x </s></s> y </s> */
    ck_assert_int_eq(ids[0], 0);
    ck_assert_int_eq(ids[2], 2);
    ck_assert_int_eq(ids[3], 2);
    ck_assert_int_eq(ids[5], 2);
    for (int i = 0; i < 6; i++) ck_assert_int_eq(types[i], 0);
    /* <mask> takes the spaces before it (lstrip). */
    int32_t a[8], b[8];
    ck_assert_int_eq(tok_tokenize(t, "x <mask>", 8, a, 8, &err), 2);
    ck_assert_int_eq(tok_tokenize(t, "x<mask>", 7, b, 8, &err), 2);
    ck_assert_int_eq(a[1], b[1]);
    ck_assert_int_eq(tok_id_count(t), 961);
    /* max_len below the template's specials */
    ck_assert_int_eq(tok_encode(t, "x", 1, "y", 1, 3, &e, &err), BCT_EINVAL);
    ck_assert_ptr_nonnull(strstr(err.msg, "special"));
    tok_free(t);
}
END_TEST

/* A very long word stays fast (heap merges, bounded Viterbi). */
START_TEST(test_long_inputs) {
    size_t n = 200000;
    char *s = malloc(n);
    ck_assert_ptr_nonnull(s);
    for (size_t i = 0; i < n; i++) s[i] = "ab"[i % 2];
    const char *names[] = {"bpe", "unigram", "wp_uncased"};
    for (int k = 0; k < 3; k++) {
        tokenizer *t = load_json_tok(names[k]);
        bct_error err;
        int rc = tok_tokenize(t, s, n, NULL, 0, &err);
        ck_assert_msg(rc > 0, "%s: %s", names[k], err.msg);
        tok_free(t);
    }
    free(s);
}
END_TEST

/* One tokenizer shared by threads: each thread's ids equal golden_of's
 * (every thread re-checks the whole golden file). */
static tokenizer *shared_tok;

static void *thread_check(void *arg) {
    check_golden(shared_tok, (const char *)arg);
    return NULL;
}

START_TEST(test_threads) {
    load_cases(); /* before the threads: it fills a global */
    const char *names[] = {"bpe", "unigram", "wp_seq"};
    for (int k = 0; k < 3; k++) {
        shared_tok = load_json_tok(names[k]);
        pthread_t th[4];
        for (int i = 0; i < 4; i++) ck_assert_int_eq(pthread_create(&th[i], NULL, thread_check, (void *)names[k]), 0);
        for (int i = 0; i < 4; i++) pthread_join(th[i], NULL);
        tok_free(shared_tok);
    }
}
END_TEST

/* ---------------------------------------------------------- bad files */

typedef struct bad_case {
    const char *json;
    int code;
    const char *needle;
} bad_case;

#define WP_MODEL "\"model\":{\"type\":\"WordPiece\",\"unk_token\":\"[UNK]\",\"vocab\":{\"[UNK]\":0,\"a\":1}}"

static const bad_case BAD[] = {
    {"", BCT_EFORMAT, "not valid JSON"},
    {"[]", BCT_EFORMAT, "not a JSON object"},
    {"{\"model\":1}", BCT_EFORMAT, "model"},
    {"{}", BCT_EFORMAT, "model: missing"},
    {"{" WP_MODEL "} trailing", BCT_EFORMAT, "unexpected data"},
    {"{\"model\":{\"type\":\"WordLevel\",\"vocab\":{}}}", BCT_EUNSUPPORTED, "model.type"},
    {"{\"model\":{\"type\":\"WordPiece\",\"unk_token\":\"[UNK]\",\"vocab\":{\"a\":1}}}", BCT_EFORMAT, "unk_token"},
    {"{\"model\":{\"type\":\"WordPiece\",\"vocab\":{\"a\":1}}}", BCT_EFORMAT, "model.unk_token: missing"},
    {"{\"model\":{\"type\":\"WordPiece\",\"unk_token\":\"a\",\"vocab\":{\"a\":-1}}}", BCT_EFORMAT, "bad id"},
    {"{\"model\":{\"type\":\"WordPiece\",\"unk_token\":\"a\",\"vocab\":{\"a\":1.5}}}", BCT_EFORMAT, "bad id"},
    {"{\"model\":{\"type\":\"WordPiece\",\"unk_token\":\"a\",\"vocab\":{\"a\":\"1\"}}}", BCT_EFORMAT, "not a number"},
    {"{\"model\":{\"type\":\"WordPiece\",\"unk_token\":\"a\",\"vocab\":{\"a\":1,\"a\":2}}}", BCT_EFORMAT, "twice"},
    {"{\"model\":{\"type\":\"WordPiece\",\"unk_token\":\"a\",\"vocab\":{}}}", BCT_EFORMAT, "model.vocab: empty"},
    {"{\"model\":{\"type\":\"WordPiece\",\"unk_token\":\"a\",\"vocab\":{\"a\":99999999}}}", BCT_EFORMAT, "bad id"},
    {"{\"model\":{\"type\":\"WordPiece\",\"unk_token\":\"a\",\"vocab\":{\"a\":0},\"max_input_chars_per_word\":0}}",
     BCT_EFORMAT, "max_input_chars_per_word"},
    {"{\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0,\"b\":1},\"merges\":[\"a b\"]}}", BCT_EFORMAT,
     "model.merges[0]: \"ab\" is not in the vocab"},
    {"{\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0,\"b\":1,\"ab\":2},\"merges\":[\"a b c\"]}}", BCT_EFORMAT,
     "model.merges[0]"},
    {"{\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0,\"b\":1,\"ab\":2},\"merges\":[[\"a\"]]}}", BCT_EFORMAT,
     "model.merges[0]"},
    {"{\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0},\"merges\":{}}}", BCT_EFORMAT, "model.merges"},
    {"{\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0},\"merges\":[],\"dropout\":0.1}}", BCT_EUNSUPPORTED,
     "dropout"},
    {"{\"model\":{\"type\":\"Unigram\",\"vocab\":[[\"a\"]]}}", BCT_EFORMAT, "model.vocab[0]"},
    {"{\"model\":{\"type\":\"Unigram\",\"vocab\":[]}}", BCT_EFORMAT, "model.vocab"},
    {"{\"model\":{\"type\":\"Unigram\",\"vocab\":[[\"a\",0]],\"unk_id\":5}}", BCT_EFORMAT, "model.unk_id"},
    {"{\"model\":{\"type\":\"Unigram\",\"vocab\":[[\"a\",\"x\"]]}}", BCT_EFORMAT, "model.vocab[0]"},
    {"{\"normalizer\":{\"type\":\"Fancy\"}," WP_MODEL "}", BCT_EUNSUPPORTED, "normalizer.type"},
    {"{\"normalizer\":{\"type\":\"Sequence\",\"normalizers\":[{\"type\":\"NFC\"},{}]}," WP_MODEL "}", BCT_EFORMAT,
     "normalizer.normalizers[1].type: missing"},
    {"{\"normalizer\":{\"type\":\"BertNormalizer\",\"lowercase\":\"yes\"}," WP_MODEL "}", BCT_EFORMAT,
     "normalizer.lowercase"},
    {"{\"normalizer\":{\"type\":\"Replace\",\"pattern\":{\"Regex\":\"a+b\"},\"content\":\"\"}," WP_MODEL "}",
     BCT_EUNSUPPORTED, "normalizer.pattern"},
    {"{\"normalizer\":{\"type\":\"Replace\",\"pattern\":\"x\",\"content\":\"\"}," WP_MODEL "}", BCT_EFORMAT,
     "normalizer.pattern"},
    {"{\"normalizer\":{\"type\":\"Replace\",\"pattern\":{\"String\":\"\"},\"content\":\"\"}," WP_MODEL "}",
     BCT_EFORMAT, "normalizer.pattern: empty"},
    {"{\"normalizer\":{\"type\":\"Replace\",\"pattern\":{\"String\":\"x\"},\"content\":\"\\ud800\"}," WP_MODEL "}",
     BCT_EFORMAT, "not valid JSON"}, /* cJSON refuses lone surrogates */
    {"{\"pre_tokenizer\":{\"type\":\"Split\",\"pattern\":{\"Regex\":\"\\\\w+\"}}," WP_MODEL "}", BCT_EUNSUPPORTED,
     "pre_tokenizer.pattern"},
    {"{\"pre_tokenizer\":{\"type\":\"Split\",\"pattern\":{\"String\":\"-\"},\"behavior\":\"Sideways\"}," WP_MODEL
     "}",
     BCT_EFORMAT, "pre_tokenizer.behavior"},
    {"{\"pre_tokenizer\":{\"type\":\"Metaspace\",\"replacement\":\"ab\"}," WP_MODEL "}", BCT_EFORMAT,
     "pre_tokenizer.replacement"},
    {"{\"pre_tokenizer\":{\"type\":\"Metaspace\",\"prepend_scheme\":\"sometimes\"}," WP_MODEL "}", BCT_EFORMAT,
     "prepend_scheme"},
    {"{\"pre_tokenizer\":{\"type\":\"Sequence\",\"pretokenizers\":7}," WP_MODEL "}", BCT_EFORMAT,
     "pre_tokenizer.pretokenizers"},
    {"{\"added_tokens\":[{\"content\":\"x\"}]," WP_MODEL "}", BCT_EFORMAT, "added_tokens[0].id: missing"},
    {"{\"added_tokens\":[{\"id\":3,\"content\":\"\"}]," WP_MODEL "}", BCT_EFORMAT, "added_tokens[0].content"},
    {"{\"added_tokens\":{}," WP_MODEL "}", BCT_EFORMAT, "added_tokens"},
    {"{\"post_processor\":{\"type\":\"BertProcessing\",\"sep\":[\"[SEP]\"],\"cls\":[\"[CLS]\",1]}," WP_MODEL "}",
     BCT_EFORMAT, "post_processor.sep"},
    {"{\"post_processor\":{\"type\":\"TemplateProcessing\",\"single\":[{\"SpecialToken\":{\"id\":\"X\"}},"
     "{\"Sequence\":{\"id\":\"A\"}}],\"pair\":[],\"special_tokens\":{}}," WP_MODEL "}",
     BCT_EFORMAT, "special_tokens: \"X\""},
    {"{\"post_processor\":{\"type\":\"TemplateProcessing\",\"single\":[],\"pair\":[],\"special_tokens\":{}},"
     WP_MODEL "}",
     BCT_EFORMAT, "post_processor.single: must hold sequence A"},
    {"{\"post_processor\":{\"type\":\"TemplateProcessing\",\"single\":[{\"Sequence\":{\"id\":\"C\"}}]}," WP_MODEL
     "}",
     BCT_EFORMAT, "post_processor.single[0].id"},
    {"{\"truncation\":{\"max_length\":0}," WP_MODEL "}", BCT_EFORMAT, "truncation.max_length"},
    {"{\"truncation\":{\"max_length\":8,\"direction\":\"Up\"}," WP_MODEL "}", BCT_EFORMAT, "truncation.direction"},
    {"{\"version\":\"2.0\"," WP_MODEL "}", BCT_EUNSUPPORTED, "version"},
    {"{\"normalizer\":{\"type\":\"Precompiled\",\"precompiled_charsmap\":\"!!!!\"}," WP_MODEL "}", BCT_EFORMAT,
     "normalizer.precompiled_charsmap: not valid base64"},
    {"{\"normalizer\":{\"type\":\"Precompiled\",\"precompiled_charsmap\":\"AAAAAA==\"}," WP_MODEL "}",
     BCT_EFORMAT, "bad trie size"},
    {"{\"normalizer\":{\"type\":\"Precompiled\",\"precompiled_charsmap\":\"CAAAAGFiY2Q=\"}," WP_MODEL "}",
     BCT_EFORMAT, "bad trie size"},
    {"{\"normalizer\":{\"type\":\"Precompiled\",\"precompiled_charsmap\":\"BAAAAAUAAIBhAA==\"}," WP_MODEL "}",
     BCT_EFORMAT, "points outside"},
    {"{\"normalizer\":{\"type\":\"Precompiled\",\"precompiled_charsmap\":\"BAAAAAAAAID/AA==\"}," WP_MODEL "}",
     BCT_EFORMAT, "not valid UTF-8"},
};

/* Memory bound (issue 17): a tokenizer.json over TOK_JSON_MAX_BYTES is
 * refused with the limit named before a byte of it is read. */
START_TEST(test_doc_over_limit) {
    size_t n = (size_t)TOK_JSON_MAX_BYTES + 1;
    char *big = mmap(NULL, n, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    ck_assert(big != MAP_FAILED);
    tokenizer *t = (tokenizer *)1;
    bct_error err = {{0}};
    ck_assert_int_eq(tok_create_from_json(big, n, &t, &err), BCT_ERANGE);
    ck_assert_ptr_null(t);
    ck_assert_msg(strstr(err.msg, "more than the limit of 67108864 (TOK_JSON_MAX_BYTES)"), "%s", err.msg);
    ck_assert_int_eq(tok_create_from_bpe(big, n, "", 0, &t, &err), BCT_ERANGE);
    ck_assert_msg(strstr(err.msg, "TOK_JSON_MAX_BYTES"), "%s", err.msg);
    munmap(big, n);
}
END_TEST

START_TEST(test_bad_files) {
    for (size_t i = 0; i < sizeof(BAD) / sizeof(BAD[0]); i++) {
        size_t n = strlen(BAD[i].json);
        char *copy = (char *)test_copy(BAD[i].json, n); /* exact size: ASan sees overreads */
        tokenizer *t = (tokenizer *)1;
        bct_error err = {{0}};
        int rc = tok_create_from_json(copy, n, &t, &err);
        ck_assert_msg(rc == BAD[i].code, "case %zu (%s): rc %d, expected %d (%s)", i, BAD[i].json, rc, BAD[i].code,
                      err.msg);
        ck_assert_ptr_null(t);
        ck_assert_msg(strstr(err.msg, BAD[i].needle), "case %zu: \"%s\" lacks \"%s\"", i, err.msg, BAD[i].needle);
        ck_assert_msg(strncmp(err.msg, "tokenizer.json", 14) == 0, "case %zu: \"%s\"", i, err.msg);
        free(copy);
    }
}
END_TEST

/* Deep nesting, invalid UTF-8, oversize, and every prefix of a real file. */
START_TEST(test_hostile_documents) {
    bct_error err;
    tokenizer *t = NULL;
    size_t depth = 100000;
    char *deep = malloc(2 * depth);
    ck_assert_ptr_nonnull(deep);
    memset(deep, '[', depth);
    memset(deep + depth, ']', depth);
    ck_assert_int_eq(tok_create_from_json(deep, 2 * depth, &t, &err), BCT_EFORMAT);
    ck_assert_ptr_nonnull(strstr(err.msg, "deeper"));
    free(deep);
    ck_assert_int_eq(tok_create_from_json("{\"a\":\"\xff\"}", 9, &t, &err), BCT_EFORMAT);
    ck_assert_ptr_nonnull(strstr(err.msg, "UTF-8"));
    ck_assert_int_eq(tok_create_from_json("{}", (size_t)1 << 30, &t, &err), BCT_ERANGE);

    size_t len;
    char *doc = test_read_file(test_data_path("tokenizers/wp_seq.json"), &len);
    ck_assert_ptr_nonnull(doc);
    for (size_t n = 0; n < len - 1; n += (n < 2000 ? 1 : 97)) {
        char *copy = (char *)test_copy(doc, n);
        int rc = tok_create_from_json(copy, n, &t, &err);
        ck_assert_msg(rc == BCT_EFORMAT, "prefix %zu: rc %d", n, rc);
        ck_assert_ptr_null(t);
        free(copy);
    }
    free(doc);

    /* vocab.json + merges.txt */
    ck_assert_int_eq(tok_create_from_bpe("{\"a\":0}", 7, "", 0, &t, &err), BCT_EFORMAT);
    ck_assert_ptr_nonnull(strstr(err.msg, "<s>"));
    ck_assert_int_eq(tok_create_from_bpe("[1]", 3, "", 0, &t, &err), BCT_EFORMAT);
    ck_assert_ptr_nonnull(strstr(err.msg, "vocab.json"));
    const char *v = "{\"<s>\":0,\"</s>\":1,\"a\":2,\"b\":3}";
    ck_assert_int_eq(tok_create_from_bpe(v, strlen(v), "#version: 0.2\na b\n", 18, &t, &err), BCT_EFORMAT);
    ck_assert_ptr_nonnull(strstr(err.msg, "merges[0]"));
    ck_assert_int_eq(tok_create_from_bpe(v, strlen(v), "a\xff b\n", 6, &t, &err), BCT_EFORMAT);
    ck_assert_ptr_nonnull(strstr(err.msg, "merges.txt"));
}
END_TEST

/* Random single-byte changes of every fixture: each must load or fail
 * cleanly (ASan/UBSan builds catch the rest), and what loads must encode
 * a few texts without error beyond BCT_EINVAL (e.g. no unk_id). */
START_TEST(test_mutated_documents) {
    const char *names[] = {"bpe", "unigram", "unigram_bf", "wp_uncased", "wp_seq", "spm"};
    const char *texts[] = {"Hello, world!", " a  b\n", "caf\xc3\xa9 \xe9\x87\x8e <mask> [CLS]", ""};
    uint32_t seed = 12345;
    int loaded = 0, refused = 0;
    for (int k = 0; k < 6; k++) {
        char path[4096];
        size_t len;
        char *doc = test_read_file(fixture_path(names[k], "json", path), &len);
        ck_assert_ptr_nonnull(doc);
        for (int round = 0; round < 150; round++) {
            char *copy = (char *)test_copy(doc, len);
            for (int m = 0; m < 1 + round % 3; m++) {
                seed = seed * 1664525u + 1013904223u;
                size_t at = (seed >> 8) % len;
                static const char pool[] = "{}[]\",:0123456789-e.ntfa \\u";
                seed = seed * 1664525u + 1013904223u;
                copy[at] = pool[(seed >> 8) % (sizeof(pool) - 1)];
            }
            tokenizer *t = NULL;
            bct_error err = {{0}};
            int rc = tok_create_from_json(copy, len, &t, &err);
            if (rc != BCT_OK) {
                ck_assert_msg(err.msg[0] && t == NULL, "%s round %d: no message", names[k], round);
                refused++;
            } else {
                loaded++;
                int32_t ids[CAP];
                uint8_t types[CAP];
                for (int x = 0; x < 4; x++) {
                    tok_encoding e = {ids, types, CAP, 0, 0};
                    rc = tok_encode(t, texts[x], strlen(texts[x]), texts[(x + 1) % 4], strlen(texts[(x + 1) % 4]), 64,
                                    &e, &err);
                    ck_assert_msg(rc == BCT_OK || rc == BCT_EINVAL, "%s round %d: %s", names[k], round, err.msg);
                    for (int i = 0; rc == BCT_OK && i < e.len; i++) ck_assert_int_ge(ids[i], 0);
                }
                tok_free(t);
            }
            free(copy);
        }
        free(doc);
    }
    ck_assert_int_gt(refused, 100);
    ck_assert_int_gt(loaded, 10);
}
END_TEST

/* The vocab.txt tokenizer reports no document. */
START_TEST(test_vocab_txt_has_no_doc) {
    vocab *v = NULL;
    bct_error err;
    const char *text = "[PAD]\n[UNK]\n[CLS]\n[SEP]\na\n";
    ck_assert_int_eq(vocab_parse(text, strlen(text), &v, &err), BCT_OK);
    tokenizer *t = NULL;
    ck_assert_int_eq(tok_create(v, NULL, &t, &err), BCT_OK);
    ck_assert_ptr_null(tok_json_doc(t, NULL));
    ck_assert_int_eq(tok_id_count(t), 5);
    tok_free(t);
    vocab_free(v);
}
END_TEST

/* Golden ids of a generated fixture: at least 80 compared cases. */
START_TEST(test_generated_golden) {
    const char *name = getenv("TOK_GOLDEN_NAME");
    ck_assert_ptr_nonnull(name);
    tokenizer *t = load_json_tok(name);
    check_golden_n(t, name, 80, 0);
    tok_free(t);
}
END_TEST

int main(void) {
    Suite *s = suite_create("tokenizer_json");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 600);
    if (getenv("TOK_GOLDEN_DIR")) {
        tcase_add_test(tc, test_generated_golden);
        suite_add_tcase(s, tc);
        return test_run_suite(s);
    }
    tcase_add_test(tc, test_bpe_golden);
    tcase_add_test(tc, test_bpe_files_golden);
    tcase_add_test(tc, test_unigram_golden);
    tcase_add_test(tc, test_unigram_byte_fallback_golden);
    tcase_add_test(tc, test_wordpiece_uncased_golden);
    tcase_add_test(tc, test_wordpiece_cased_golden);
    tcase_add_test(tc, test_sequences_golden);
    tcase_add_test(tc, test_sentencepiece_golden);
    tcase_add_test(tc, test_bpe_specials);
    tcase_add_test(tc, test_long_inputs);
    tcase_add_test(tc, test_threads);
    tcase_add_test(tc, test_bad_files);
    tcase_add_test(tc, test_doc_over_limit);
    tcase_add_test(tc, test_hostile_documents);
    tcase_add_test(tc, test_mutated_documents);
    tcase_add_test(tc, test_vocab_txt_has_no_doc);
    suite_add_tcase(s, tc);
    int rc = test_run_suite(s);
    for (int i = 0; i < n_cases; i++) {
        free(cases[i].a);
        free(cases[i].b);
    }
    return rc;
}
