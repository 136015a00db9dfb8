#include "test_util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

const char *test_shared_path(const char *rel) {
    static char buf[8][4096];
    static int next;
    struct stat st;
    if (stat(BCT_SHARED_DIR, &st) != 0) return NULL;
    char *p = buf[next++ & 7];
    snprintf(p, 4096, "%s/%s", BCT_SHARED_DIR, rel);
    return p;
}

const char *test_data_path(const char *rel) {
    static char buf[8][4096];
    static int next;
    char *p = buf[next++ & 7];
    snprintf(p, 4096, "%s/%s", BCT_TEST_DATA, rel);
    return p;
}

char *test_read_file(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = malloc((size_t)n + 1);
    if (buf && fread(buf, 1, (size_t)n, f) != (size_t)n) {
        free(buf);
        buf = NULL;
    }
    fclose(f);
    if (!buf) return NULL;
    buf[n] = '\0';
    if (len) *len = (size_t)n;
    return buf;
}

const char *test_write_temp(const void *data, size_t len) {
    static char paths[8][64];
    static int next;
    char *p = paths[next++ & 7];
    snprintf(p, 64, "/tmp/bct_test_XXXXXX");
    int fd = mkstemp(p);
    if (fd < 0) return NULL;
    if (len && write(fd, data, len) != (ssize_t)len) {
        close(fd);
        return NULL;
    }
    close(fd);
    return p;
}

int test_run_suite(Suite *s) {
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? 0 : 1;
}

uint8_t *test_copy(const void *src, size_t n) {
    uint8_t *p = malloc(n ? n : 1);
    ck_assert_ptr_nonnull(p);
    if (n) memcpy(p, src, n);
    return p;
}

void test_expect_open_fail(const test_reader *r, const uint8_t *img, size_t len, int code, const char *needle,
                           const char *needle2) {
    bct_error err = {{0}};
    void *f = (void *)1; /* must come back NULL */
    uint8_t *copy = test_copy(img, len);
    int rc = r->open_buffer(copy, len, &f, &err);
    free(copy);
    ck_assert_msg(rc == code, "open_buffer returned %d, want %d: %s", rc, code, err.msg);
    ck_assert_ptr_null(f);
    ck_assert_msg(strstr(err.msg, needle), "message lacks \"%s\": %s", needle, err.msg);
    if (needle2) ck_assert_msg(strstr(err.msg, needle2), "message lacks \"%s\": %s", needle2, err.msg);

    const char *path = test_write_temp(img, len);
    ck_assert_ptr_nonnull(path);
    memset(&err, 0, sizeof(err));
    f = (void *)1;
    rc = r->open_path(path, &f, &err);
    unlink(path);
    ck_assert_msg(rc == code, "open returned %d, want %d: %s", rc, code, err.msg);
    ck_assert_ptr_null(f);
    ck_assert_msg(strstr(err.msg, needle), "message lacks \"%s\": %s", needle, err.msg);
    ck_assert_msg(strstr(err.msg, path), "message lacks the path: %s", err.msg);
}

void test_expect_prefixes_fail(const test_reader *r, const uint8_t *img, size_t len, size_t from, const char *needle) {
    for (size_t n = 0; n < len; n++) {
        uint8_t *copy = test_copy(img, n);
        bct_error err = {{0}};
        void *f = (void *)1;
        int rc = r->open_buffer(copy, n, &f, &err);
        free(copy);
        ck_assert_msg(rc == BCT_EFORMAT, "prefix %zu: rc %d (%s)", n, rc, err.msg);
        ck_assert_ptr_null(f);
        ck_assert(err.msg[0] != '\0');
        if (needle && n >= from) ck_assert_msg(strstr(err.msg, needle), "prefix %zu: %s", n, err.msg);
    }
    bct_error err = {{0}};
    void *f = NULL;
    ck_assert_msg(r->open_buffer(img, len, &f, &err) == BCT_OK, "whole image: %s", err.msg);
    r->close(f);
}

void test_expect_open_io_errors(const test_reader *r, const char *missing_path) {
    bct_error err = {{0}};
    void *f = (void *)1;
    ck_assert_int_eq(r->open_path(missing_path, &f, &err), BCT_EIO);
    ck_assert_ptr_null(f);
    ck_assert_ptr_nonnull(strstr(err.msg, missing_path));

    f = (void *)1;
    ck_assert_int_eq(r->open_path("/tmp", &f, &err), BCT_EIO);
    ck_assert_ptr_null(f);
    ck_assert_ptr_nonnull(strstr(err.msg, "regular file"));
}

struct st_entry {
    char name[256];
    int ndim;
    long shape[8];
    float *data;
    long numel;
};

struct test_st_builder {
    struct st_entry e[512];
    int n;
};

test_st_builder *test_st_new(void) { return calloc(1, sizeof(test_st_builder)); }

void test_st_add(test_st_builder *b, const char *name, int ndim, const long *shape, const float *data) {
    struct st_entry *e = &b->e[b->n++];
    snprintf(e->name, sizeof(e->name), "%s", name);
    e->ndim = ndim;
    e->numel = 1;
    for (int i = 0; i < ndim; i++) {
        e->shape[i] = shape[i];
        e->numel *= shape[i];
    }
    e->data = malloc((size_t)e->numel * sizeof(float) + 1);
    memcpy(e->data, data, (size_t)e->numel * sizeof(float));
}

int test_st_write(test_st_builder *b, const char *path) {
    size_t cap = 1 << 16, len = 0;
    char *hdr = malloc(cap);
    long off = 0;
    len += (size_t)snprintf(hdr + len, cap - len, "{\"__metadata__\":{\"format\":\"pt\"}");
    for (int i = 0; i < b->n; i++) {
        struct st_entry *e = &b->e[i];
        if (cap - len < 1024) hdr = realloc(hdr, cap *= 2);
        len += (size_t)snprintf(hdr + len, cap - len, ",\"%s\":{\"dtype\":\"F32\",\"shape\":[", e->name);
        for (int d = 0; d < e->ndim; d++)
            len += (size_t)snprintf(hdr + len, cap - len, d ? ",%ld" : "%ld", e->shape[d]);
        len += (size_t)snprintf(hdr + len, cap - len, "],\"data_offsets\":[%ld,%ld]}", off,
                                off + e->numel * 4);
        off += e->numel * 4;
    }
    hdr[len++] = '}';
    while (len % 8) hdr[len++] = ' '; /* keep tensor data aligned, as HF does */
    FILE *f = fopen(path, "wb");
    int rc = f ? 0 : -1;
    if (f) {
        unsigned char n8[8];
        for (int i = 0; i < 8; i++) n8[i] = (unsigned char)((unsigned long long)len >> (8 * i));
        fwrite(n8, 1, 8, f);
        fwrite(hdr, 1, len, f);
        for (int i = 0; i < b->n; i++) fwrite(b->e[i].data, 4, (size_t)b->e[i].numel, f);
        rc = fclose(f);
    }
    for (int i = 0; i < b->n; i++) free(b->e[i].data);
    free(hdr);
    free(b);
    return rc;
}

static float rnd(unsigned *s) {
    *s = *s * 1103515245u + 12345u;
    return (float)((*s >> 8) & 0xFFFF) / 65536.0f - 0.5f;
}

static void add_random(test_st_builder *b, const char *name, long d0, long d1, float scale,
                       float offset, unsigned *seed) {
    long shape[2] = {d0, d1};
    long n = d0 * (d1 ? d1 : 1);
    float *v = malloc((size_t)n * sizeof(float));
    for (long i = 0; i < n; i++) v[i] = offset + scale * rnd(seed);
    test_st_add(b, name, d1 ? 2 : 1, shape, v);
    free(v);
}

int test_write_tiny_bert(const char *dir, int L, int H, int A, int I, const char *const *vocab_lines,
                         int nvocab, int name_style, unsigned seed) {
    char path[4096], name[256];
    const char *pre = name_style ? "" : "bert.";
    const char *g = name_style ? "gamma" : "weight", *be = name_style ? "beta" : "bias";
    mkdir(dir, 0755);
    snprintf(path, sizeof(path), "%s/vocab.txt", dir);
    FILE *f = fopen(path, "w");
    if (!f) return -1;
    for (int i = 0; i < nvocab; i++) fprintf(f, "%s\n", vocab_lines[i]);
    fclose(f);
    snprintf(path, sizeof(path), "%s/config.json", dir);
    if (!(f = fopen(path, "w"))) return -1;
    fprintf(f,
            "{\"architectures\":[\"BertForSequenceClassification\"],\"model_type\":\"bert\","
            "\"hidden_size\":%d,\"num_hidden_layers\":%d,\"num_attention_heads\":%d,"
            "\"intermediate_size\":%d,\"vocab_size\":%d,\"max_position_embeddings\":64,"
            "\"type_vocab_size\":2,\"hidden_act\":\"gelu\",\"layer_norm_eps\":1e-12,"
            "\"id2label\":{\"0\":\"neg\",\"1\":\"pos\",\"2\":\"mixed\"}}",
            H, L, A, I, nvocab);
    fclose(f);
    test_st_builder *b = test_st_new();
#define NM(...) (snprintf(name, sizeof(name), __VA_ARGS__), name)
    add_random(b, NM("%sembeddings.word_embeddings.weight", pre), nvocab, H, 0.2f, 0, &seed);
    add_random(b, NM("%sembeddings.position_embeddings.weight", pre), 64, H, 0.2f, 0, &seed);
    add_random(b, NM("%sembeddings.token_type_embeddings.weight", pre), 2, H, 0.2f, 0, &seed);
    add_random(b, NM("%sembeddings.LayerNorm.%s", pre, g), H, 0, 0.2f, 1, &seed);
    add_random(b, NM("%sembeddings.LayerNorm.%s", pre, be), H, 0, 0.2f, 0, &seed);
    for (int l = 0; l < L; l++) {
        static const char *lin[] = {"attention.self.query", "attention.self.key",
                                    "attention.self.value", "attention.output.dense"};
        for (int k = 0; k < 4; k++) {
            add_random(b, NM("%sencoder.layer.%d.%s.weight", pre, l, lin[k]), H, H, 0.5f, 0, &seed);
            add_random(b, NM("%sencoder.layer.%d.%s.bias", pre, l, lin[k]), H, 0, 0.1f, 0, &seed);
        }
        add_random(b, NM("%sencoder.layer.%d.attention.output.LayerNorm.%s", pre, l, g), H, 0, 0.2f, 1, &seed);
        add_random(b, NM("%sencoder.layer.%d.attention.output.LayerNorm.%s", pre, l, be), H, 0, 0.2f, 0, &seed);
        add_random(b, NM("%sencoder.layer.%d.intermediate.dense.weight", pre, l), I, H, 0.5f, 0, &seed);
        add_random(b, NM("%sencoder.layer.%d.intermediate.dense.bias", pre, l), I, 0, 0.1f, 0, &seed);
        add_random(b, NM("%sencoder.layer.%d.output.dense.weight", pre, l), H, I, 0.5f, 0, &seed);
        add_random(b, NM("%sencoder.layer.%d.output.dense.bias", pre, l), H, 0, 0.1f, 0, &seed);
        add_random(b, NM("%sencoder.layer.%d.output.LayerNorm.%s", pre, l, g), H, 0, 0.2f, 1, &seed);
        add_random(b, NM("%sencoder.layer.%d.output.LayerNorm.%s", pre, l, be), H, 0, 0.2f, 0, &seed);
    }
    add_random(b, NM("%spooler.dense.weight", pre), H, H, 0.5f, 0, &seed);
    add_random(b, NM("%spooler.dense.bias", pre), H, 0, 0.1f, 0, &seed);
    add_random(b, "classifier.weight", 3, H, 0.5f, 0, &seed);
    add_random(b, "classifier.bias", 3, 0, 0.1f, 0, &seed);
#undef NM
    snprintf(path, sizeof(path), "%s/model.safetensors", dir);
    return test_st_write(b, path);
}
