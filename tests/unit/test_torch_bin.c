/* test_torch_bin.c - PyTorch .bin checkpoints (torch_bin.h, pickle.h):
 * files written by torch.save open and give the same model as the same
 * weights in safetensors; every malicious or broken file of
 * tests/data/torch_bin/bad is refused with a message naming the problem;
 * truncations and byte flips never crash.  Fixtures: make_torch_bin.py. */
#include <check.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "formats/pickle.h"
#include "formats/safetensors.h"
#include "formats/torch_bin.h"
#include "model/bert_forward.h"
#include "model/bert_model.h"
#include "util/half.h"
#include "test_util.h"

TEST_READER(tb_reader, st_file, torch_bin_open_buffer, torch_bin_open, st_close);

static uint8_t *load(const char *rel, size_t *len) {
    char *buf = test_read_file(test_data_path(rel), len);
    ck_assert_msg(buf != NULL, "cannot read tests/data/%s", rel);
    return (uint8_t *)buf;
}

/* ------------------------------------------------------------------------ */
/* refused files                                                            */
/* ------------------------------------------------------------------------ */

static const struct {
    const char *file;
    int code;
    const char *needle;
} bad[] = {
    {"reduce_os_system", BCT_EUNSUPPORTED, "data.pkl: global posix.system is not allowed"},
    {"global_eval", BCT_EUNSUPPORTED, "data.pkl: global builtins.eval is not allowed"},
    {"stack_global_subprocess", BCT_EUNSUPPORTED, "global subprocess.Popen is not allowed"},
    {"inst", BCT_EUNSUPPORTED, "opcode INST (0x69) is not allowed"},
    {"obj", BCT_EUNSUPPORTED, "global os.system is not allowed"},
    {"newobj", BCT_EUNSUPPORTED, "opcode NEWOBJ (0x81) is not allowed"},
    {"ext1", BCT_EUNSUPPORTED, "opcode EXT1 (0x82) is not allowed"},
    {"reduce_storage", BCT_EUNSUPPORTED, "REDUCE of torch.FloatStorage is not allowed"},
    {"reduce_list", BCT_EUNSUPPORTED, "REDUCE of a list is not allowed"},
    {"build_list", BCT_EUNSUPPORTED, "BUILD on a list is not allowed"},
    {"complex_storage", BCT_EUNSUPPORTED, "storage type torch.ComplexFloatStorage is not supported"},
    {"mark_bomb", BCT_ERANGE, "MARKs nest deeper than 64 (limit PKL_MAX_MARKS)"},
    {"stack_bomb", BCT_ERANGE, "stack grows past 16384 values (limit PKL_MAX_STACK)"},
    {"nested_lists", BCT_EUNSUPPORTED, "the pickle holds a list, not a state dict"},
    {"deep_lists", BCT_EUNSUPPORTED, "the pickle holds a list, not a state dict"},
    {"huge_memo", BCT_ERANGE, "memo index 2147483647 is over the limit"},
    {"memo_unset", BCT_EFORMAT, "memo index 5 was never stored"},
    {"huge_unicode", BCT_EFORMAT, "BINUNICODE of 2147483647 bytes runs past the end"},
    {"no_stop", BCT_EFORMAT, "the pickle ends without STOP"},
    {"storage_too_small", BCT_EFORMAT, "size (4, 3) at storage offset 0 ends past the 6 elements"},
    {"offset_past_storage", BCT_EFORMAT, "size (2, 3) at storage offset 1 ends past the 6"},
    {"storage_record_short", BCT_EFORMAT, "storage archive/data/0 has 20 bytes but the pickle says 6"},
    {"storage_missing", BCT_EFORMAT, "tensor \"w\": its storage record archive/data/0 is missing"},
    {"strided", BCT_EUNSUPPORTED, "stride (1, 2) of size (2, 3) is not contiguous row-major"},
    {"deflated", BCT_EUNSUPPORTED, "\"archive/data.pkl\" is compressed (method 8)"},
    {"foreign_prefix", BCT_EFORMAT, "\"other/data/0\" is outside the archive's top folder"},
    {"lying_size", BCT_EFORMAT, "\"archive/data/0\": 2147483632 bytes at offset"},
    {"overlapping_entries", BCT_EFORMAT, "\"archive/data/0\" [216, 352) and \"archive/data/1\""},
    {"legacy", BCT_EUNSUPPORTED, "legacy (PyTorch < 1.6) checkpoint"},
    {"not_zip", BCT_EFORMAT, "no zip end-of-central-directory record"},
};

#define N_BAD (int)(sizeof(bad) / sizeof(bad[0]))

START_TEST(test_bad_file) {
    char rel[128];
    size_t len;
    snprintf(rel, sizeof(rel), "torch_bin/bad/%s.bin", bad[_i].file);
    uint8_t *img = load(rel, &len);
    test_expect_open_fail(&tb_reader, img, len, bad[_i].code, bad[_i].needle, NULL);
    free(img);
}
END_TEST

/* Every fixture in bad/ has a check above (the generator and this table
 * move together). */
START_TEST(test_bad_table_complete) {
    char cmd[512];
    snprintf(cmd, sizeof(cmd), "ls %s | wc -l", test_data_path("torch_bin/bad"));
    FILE *p = popen(cmd, "r");
    ck_assert_ptr_nonnull(p);
    int n = 0;
    ck_assert_int_eq(fscanf(p, "%d", &n), 1);
    pclose(p);
    ck_assert_int_eq(n, N_BAD);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* valid files                                                              */
/* ------------------------------------------------------------------------ */

static const st_tensor *must_find(const st_file *f, const char *name, st_dtype dt, int ndim,
                                  const int64_t *shape) {
    const st_tensor *t = st_find(f, name);
    ck_assert_msg(t != NULL, "missing %s", name);
    ck_assert_int_eq(t->dtype, dt);
    ck_assert_int_eq(t->ndim, ndim);
    for (int i = 0; i < ndim; i++) ck_assert_int_eq(t->shape[i], shape[i]);
    return t;
}

/* torch.save of Parameters, views and mixed dtypes, protocols 2 and 4. */
START_TEST(test_params_and_views) {
    char rel[64];
    snprintf(rel, sizeof(rel), "torch_bin/good/params_proto%d.bin", _i ? 4 : 2);
    size_t len;
    uint8_t *img = load(rel, &len);
    st_file *f;
    bct_error err = {{0}};
    ck_assert_msg(torch_bin_open_buffer(img, len, &f, &err) == BCT_OK, "%s", err.msg);
    ck_assert_uint_eq(st_count(f), 5);
    const int64_t s43[2] = {4, 3}, s23[2] = {2, 3}, s5[1] = {5};
    const st_tensor *w = must_find(f, "w", ST_F32, 2, s43);
    const st_tensor *p = must_find(f, "p", ST_F32, 2, s43);
    const st_tensor *v = must_find(f, "view", ST_F32, 2, s23);
    const st_tensor *h = must_find(f, "half", ST_F16, 2, s43);
    const st_tensor *ids = must_find(f, "ids", ST_I64, 1, s5);
    float wf[12], pf[12], vf[6], hf[12];
    ck_assert_int_eq(st_tensor_to_f32(w, wf, &err), BCT_OK);
    ck_assert_int_eq(st_tensor_to_f32(p, pf, &err), BCT_OK);
    ck_assert_int_eq(st_tensor_to_f32(v, vf, &err), BCT_OK);
    ck_assert_int_eq(st_tensor_to_f32(h, hf, &err), BCT_OK);
    ck_assert(!memcmp(wf, pf, sizeof(wf)));
    ck_assert(!memcmp(wf + 6, vf, sizeof(vf))); /* w[2:], a view at offset 6 */
    ck_assert_ptr_eq(v->data, w->data + 6 * sizeof(float));
    for (int i = 0; i < 12; i++) ck_assert_float_eq(hf[i], half_to_f32(f32_to_half(wf[i])));
    for (int64_t i = 0; i < 5; i++) {
        int64_t x;
        memcpy(&x, ids->data + 8 * i, 8);
        ck_assert_int_eq(x, i);
    }
    ck_assert_ptr_null(st_find(f, "_metadata"));
    st_close(f);
    free(img);
}
END_TEST

/* Hand-built archives: "archive/" prefix, and ZIP64 records with a
 * "pytorch_model/" prefix; the storage bytes are i % 251. */
START_TEST(test_hand_built) {
    const char *rel = _i ? "torch_bin/good/zip64.bin" : "torch_bin/good/hand_built.bin";
    size_t len;
    uint8_t *img = load(rel, &len);
    st_file *f;
    bct_error err = {{0}};
    ck_assert_msg(torch_bin_open_buffer(img, len, &f, &err) == BCT_OK, "%s", err.msg);
    const int64_t s23[2] = {2, 3};
    const st_tensor *w = must_find(f, "w", ST_F32, 2, s23);
    ck_assert_uint_eq(w->nbytes, 24);
    for (int i = 0; i < 24; i++) ck_assert_int_eq(w->data[i], i);
    st_close(f);
    /* Every proper prefix is refused as malformed. */
    test_expect_prefixes_fail(&tb_reader, img, len, 0, NULL);
    free(img);
}
END_TEST

/* Every byte set to 0x00, 0xff and +1 in turn: the reader answers (opens
 * or refuses with a message) and never reads outside the image. */
START_TEST(test_byte_flips) {
    size_t len;
    uint8_t *img = load(_i ? "torch_bin/good/params_proto4.bin" : "torch_bin/good/hand_built.bin",
                        &len);
    int opened = 0, refused = 0;
    for (size_t pos = 0; pos < len; pos++) {
        for (int k = 0; k < 3; k++) {
            uint8_t *c = test_copy(img, len);
            c[pos] = k == 0 ? 0 : k == 1 ? 0xff : (uint8_t)(c[pos] + 1);
            st_file *f = NULL;
            bct_error err = {{0}};
            if (torch_bin_open_buffer(c, len, &f, &err) == BCT_OK) {
                opened++;
                for (size_t i = 0; i < st_count(f); i++) {
                    const st_tensor *t = st_at(f, i);
                    ck_assert(t->data >= c && t->data + t->nbytes <= c + len);
                }
                st_close(f);
            } else {
                ck_assert_msg(err.msg[0] != '\0', "refused without a message at byte %zu", pos);
                refused++;
            }
            free(c);
        }
    }
    free(img);
    ck_assert_int_gt(refused, 0);
    ck_assert_int_gt(opened, 0); /* e.g. flips inside tensor data */
}
END_TEST

/* ------------------------------------------------------------------------ */
/* the model: .bin == safetensors                                           */
/* ------------------------------------------------------------------------ */

static const char *const texts[] = {"the movie was good fun", "bad plot , awful acting !",
                                    "a", "it is not very funny but the story is great"};

static void logits_of(const char *rel, float *out) {
    bert_model *m;
    bct_error err = {{0}};
    ck_assert_msg(bert_model_load(test_data_path(rel), &m, &err) == BCT_OK, "%s: %s", rel, err.msg);
    bert_ws *ws = bert_ws_create();
    for (int i = 0; i < 4; i++) {
        int32_t ids[16];
        uint8_t types[16];
        tok_encoding e = {ids, types, 16, 0, 0};
        ck_assert_int_eq(bert_model_encode(m, texts[i], strlen(texts[i]), NULL, 0, &e, &err), BCT_OK);
        bert_seq s = {ids, types, e.len};
        ck_assert_msg(bert_forward(m, &s, 1, out + 2 * i, ws, &err) == BCT_OK, "%s", err.msg);
    }
    bert_ws_free(ws);
    bert_model_free(m);
}

START_TEST(test_fp32_bit_identical) {
    float st[8], bin[8];
    logits_of("torch_bin/st", st);
    logits_of("torch_bin/f32", bin);
    ck_assert(!memcmp(st, bin, sizeof(st)));
    ck_assert(st[0] != st[1]); /* a model that computes something */
}
END_TEST

static float bf16_round(float x) {
    uint32_t b;
    memcpy(&b, &x, 4);
    b = (b + 0x7fffu + ((b >> 16) & 1u)) & 0xffff0000u; /* nearest even; no NaNs here */
    memcpy(&x, &b, 4);
    return x;
}

/* f16 and bf16 files hold torch's rounding of the fp32 weights: the same
 * values as rounding them here, and logits close to fp32. */
START_TEST(test_half_weights) {
    const char *rel = _i ? "torch_bin/bf16/pytorch_model.bin" : "torch_bin/f16/pytorch_model.bin";
    st_file *ref, *half;
    bct_error err = {{0}};
    ck_assert_msg(st_open(test_data_path("torch_bin/st/model.safetensors"), &ref, &err) == BCT_OK,
                  "%s", err.msg);
    ck_assert_msg(torch_bin_open(test_data_path(rel), &half, &err) == BCT_OK, "%s", err.msg);
    ck_assert_uint_eq(st_count(ref), st_count(half));
    for (size_t i = 0; i < st_count(ref); i++) {
        const st_tensor *a = st_at(ref, i), *b = st_find(half, a->name);
        ck_assert_msg(b != NULL, "%s missing", a->name);
        ck_assert_int_eq(b->dtype, _i ? ST_BF16 : ST_F16);
        ck_assert_int_eq(a->numel, b->numel);
        float *fa = malloc((size_t)a->numel * 4), *fb = malloc((size_t)a->numel * 4);
        ck_assert_int_eq(st_tensor_to_f32(a, fa, &err), BCT_OK);
        ck_assert_int_eq(st_tensor_to_f32(b, fb, &err), BCT_OK);
        for (int64_t k = 0; k < a->numel; k++) {
            float want = _i ? bf16_round(fa[k]) : half_to_f32(f32_to_half(fa[k]));
            ck_assert_msg(want == fb[k], "%s[%lld]: %g vs %g", a->name, (long long)k, want, fb[k]);
        }
        free(fa);
        free(fb);
    }
    st_close(ref);
    st_close(half);
    float l32[8], lh[8];
    logits_of("torch_bin/st", l32);
    logits_of(_i ? "torch_bin/bf16" : "torch_bin/f16", lh);
    for (int k = 0; k < 8; k++) ck_assert_float_eq_tol(l32[k], lh[k], 2e-2);
}
END_TEST

/* The two limits no small fixture reaches: values created (each "Na"
 * makes one) and container items (each "h\0a" appends the memoized list
 * to itself without creating a value).  Built in memory: 2 and 12 MB. */
/* head, then n copies of unit (lengths given: they hold NUL bytes), then
 * STOP. */
static uint8_t *repeat_pickle(const char *head, size_t hl, const char *unit, size_t ul, size_t n,
                              size_t *len) {
    *len = hl + n * ul + 1;
    uint8_t *p = malloc(*len);
    ck_assert_ptr_nonnull(p);
    memcpy(p, head, hl);
    for (size_t i = 0; i < n; i++) memcpy(p + hl + i * ul, unit, ul);
    p[*len - 1] = '.';
    return p;
}

START_TEST(test_value_limits) {
    size_t len;
    uint8_t *p = _i ? repeat_pickle("\x80\x02]q\0", 5, "h\0a", 3, (1u << 22) + 8, &len)
                    : repeat_pickle("\x80\x02]", 3, "Na", 2, (1u << 20) + 8, &len);
    pkl_state_dict sd;
    bct_error err = {{0}};
    ck_assert_int_eq(pkl_load_state_dict(p, len, &sd, &err), BCT_ERANGE);
    ck_assert_msg(strstr(err.msg, _i ? "(limit PKL_MAX_SLOTS)" : "(limit PKL_MAX_OBJECTS)"), "%s",
                  err.msg);
    ck_assert_ptr_null(sd.tensors);
    free(p);
}
END_TEST

/* Missing files and directories are I/O errors naming the path. */
START_TEST(test_io_errors) {
    test_expect_open_io_errors(&tb_reader, "/nonexistent/pytorch_model.bin");
}
END_TEST

START_TEST(test_sniff) {
    size_t len;
    uint8_t *img = load("torch_bin/f32/pytorch_model.bin", &len);
    ck_assert(torch_bin_sniff(img, len));
    ck_assert(!torch_bin_sniff(img, 3));
    free(img);
    img = load("torch_bin/bad/legacy.bin", &len);
    ck_assert(torch_bin_sniff(img, len));
    free(img);
    img = load("torch_bin/st/model.safetensors", &len);
    ck_assert(!torch_bin_sniff(img, len));
    free(img);
}
END_TEST

int main(void) {
    Suite *s = suite_create("torch_bin");
    TCase *tc = tcase_create("torch_bin");
    tcase_set_timeout(tc, 120);
    tcase_add_loop_test(tc, test_bad_file, 0, N_BAD);
    tcase_add_test(tc, test_bad_table_complete);
    tcase_add_loop_test(tc, test_params_and_views, 0, 2);
    tcase_add_loop_test(tc, test_hand_built, 0, 2);
    tcase_add_loop_test(tc, test_byte_flips, 0, 2);
    tcase_add_test(tc, test_fp32_bit_identical);
    tcase_add_loop_test(tc, test_half_weights, 0, 2);
    tcase_add_loop_test(tc, test_value_limits, 0, 2);
    tcase_add_test(tc, test_io_errors);
    tcase_add_test(tc, test_sniff);
    suite_add_tcase(s, tc);
    return test_run_suite(s);
}
