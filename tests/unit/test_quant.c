/* Blockwise formats: code packing, scale encodings, quantizer error
 * bounds, the int8 block GEMM against an int32 reference, and .bct
 * models that must be rejected. */
#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "formats/bct_file.h"
#include "model/bert_forward.h"
#include "model/bert_model.h"
#include "blockquant.h"
#include "compress.h"
#include "util/half.h"
#include "formats/qcodec.h"
#include "kernels/qgemm.h"
#include "kernels/qmat.h"
#include "test_util.h"

static unsigned rng = 12345;
static float frand(void) { /* uniform in [-1, 1) */
    rng = rng * 1664525u + 1013904223u;
    return (float)(rng >> 8) / (float)(1u << 23) - 1.0f;
}
static float gauss(void) {
    float s = 0;
    for (int i = 0; i < 12; i++) s += frand() * 0.5f + 0.5f;
    return s - 6.0f;
}

START_TEST(pack_unpack_all_widths) {
    const int widths[] = {8, 4, 3, 2};
    for (size_t w = 0; w < 4; w++) {
        int bits = widths[w], rows = 3, cols = 96;
        int8_t codes[3 * 96];
        for (int i = 0; i < rows * cols; i++)
            codes[i] = (int8_t)(qcodec_code_min(bits) + (i * 7 + i / 5) % (qcodec_code_max(bits) - qcodec_code_min(bits) + 1));
        uint8_t packed[3 * 96];
        qcodec_pack_codes(bits, codes, rows, cols, packed);
        qmat m;
        ck_assert_int_eq(qmat_alloc(&m, qcodec_mem_bits(bits), rows, cols, 32), BCT_OK);
        qcodec_unpack_codes(bits, packed, &m);
        for (int r = 0; r < rows; r++)
            for (int i = 0; i < cols; i++)
                ck_assert_int_eq(qmat_code(&m, qmat_row_codes(&m, r), i), codes[r * cols + i]);
        qmat_free(&m);
    }
}
END_TEST

START_TEST(half_round_trip) {
    for (uint32_t h = 0; h < 0x10000; h++) {
        float f = half_to_f32((uint16_t)h);
        if (isnan(f)) continue;
        ck_assert_uint_eq(f32_to_half(f), h);
    }
    ck_assert_uint_eq(f32_to_half(1e6f), 0x7C00);       /* overflow -> inf */
    ck_assert_uint_eq(f32_to_half(1.0f + 1.0f / 4096), 0x3C00); /* ties to even */
}
END_TEST

START_TEST(log8_scales) {
    float base = 0.5f, d;
    for (uint32_t c = 0; c < QLOG8_ZERO; c++) {
        float want = base * exp2f(-(float)c / QLOG8_STEPS);
        ck_assert_uint_eq(qcodec_scale_encode(QSCALE_LOG8, want, base, &d), c);
        ck_assert(fabsf(d - want) <= 1e-6f * want);
    }
    ck_assert_uint_eq(qcodec_scale_encode(QSCALE_LOG8, 0, base, &d), QLOG8_ZERO);
    ck_assert(d == 0);
    uint8_t s[1] = {QLOG8_ZERO};
    ck_assert(qcodec_scale_decode(QSCALE_LOG8, s, 0, base) == 0);
}
END_TEST

/* Gaussian data with a few large outliers, as in pretrained BERT. */
static float *test_matrix(int rows, int cols, int outliers) {
    float *x = malloc((size_t)rows * cols * sizeof(float));
    for (int i = 0; i < rows * cols; i++) x[i] = 0.03f * gauss();
    for (int k = 0; k < outliers; k++) x[(k * 7919) % (rows * cols)] = (k & 1 ? -1 : 1) * 0.6f;
    return x;
}

static double plain_absmax_error(const float *x, int n, int bits, int block) {
    double err = 0;
    int hi = qcodec_code_max(bits), lo = qcodec_code_min(bits);
    for (int b = 0; b < n; b += block) {
        float amax = 0;
        for (int i = 0; i < block; i++) amax = fmaxf(amax, fabsf(x[b + i]));
        float d = amax / hi;
        for (int i = 0; i < block; i++) {
            long c = d > 0 ? lroundf(x[b + i] / d) : 0;
            c = c < lo ? lo : c > hi ? hi : c;
            double e = x[b + i] - d * (double)c;
            err += e * e;
        }
    }
    return err;
}

START_TEST(quantizer_error_bounds) {
    const struct {
        int bits, block;
        qscale_enc enc;
        double max_rel; /* relative Frobenius error on Gaussian + outliers */
    } cases[] = {
        /* Bounds: measured values (0.0084 0.0154 0.135 0.179 0.350 0.351) + ~12%. */
        {8, 32, QSCALE_F16, 0.0095}, {8, 128, QSCALE_LOG8, 0.0175}, {4, 32, QSCALE_F16, 0.152},
        {4, 64, QSCALE_LOG8, 0.20}, {3, 128, QSCALE_LOG8, 0.39}, {2, 32, QSCALE_F16, 0.39},
    };
    int rows = 64, cols = 256;
    float *x = test_matrix(rows, cols, 20);
    for (size_t k = 0; k < sizeof(cases) / sizeof(cases[0]); k++) {
        bq_spec spec = {cases[k].bits, cases[k].block, cases[k].enc};
        bq_result r;
        bct_error err = {{0}};
        ck_assert_int_eq(bq_quantize(x, rows, cols, &spec, NULL, &r, &err), BCT_OK);
        double rel = bq_rel_error(&r);
        /* The clipping search never does worse than plain absmax scaling
         * (with exact fp32 scales, so allow the scale encoding's slack). */
        double plain = plain_absmax_error(x, rows * cols, spec.bits, spec.block);
        printf("q%d block %d %s: rel error %.4f (absmax %.4f)\n", spec.bits, spec.block,
               qcodec_scale_name(spec.scale), rel, sqrt(plain / r.sq_sum));
        ck_assert_msg(rel <= cases[k].max_rel, "q%d/%d: %f", spec.bits, spec.block, rel);
        ck_assert(r.sq_err <= plain * 1.05);
        /* Codes in range; dequantized values match the error the quantizer reports. */
        double sq = 0;
        size_t nb = (size_t)(cols / spec.block);
        for (int i = 0; i < rows * cols; i++) {
            ck_assert(r.codes[i] >= qcodec_code_min(spec.bits) && r.codes[i] <= qcodec_code_max(spec.bits));
            float d = qcodec_scale_decode(spec.scale, r.scales, (size_t)(i / cols) * nb + (size_t)(i % cols) / spec.block, r.base);
            double e = x[i] - (double)d * r.codes[i];
            sq += e * e;
        }
        ck_assert(fabs(sq - r.sq_err) <= 1e-6 * r.sq_sum);
        bq_result_free(&r);
    }
    free(x);
}
END_TEST

START_TEST(quantizer_rejects_bad_specs) {
    float x[64] = {0};
    bq_result r;
    bct_error err = {{0}};
    ck_assert_int_eq(bq_quantize(x, 1, 64, &(bq_spec){5, 32, QSCALE_F16}, NULL, &r, &err), BCT_EINVAL);
    ck_assert_int_eq(bq_quantize(x, 1, 64, &(bq_spec){4, 48, QSCALE_F16}, NULL, &r, &err), BCT_EINVAL);
    ck_assert_int_eq(bq_quantize(x, 1, 64, &(bq_spec){4, 128, QSCALE_F16}, NULL, &r, &err), BCT_EINVAL);
    /* An all-zero tensor quantizes to zero codes. */
    ck_assert_int_eq(bq_quantize(x, 1, 64, &(bq_spec){4, 32, QSCALE_LOG8}, NULL, &r, &err), BCT_OK);
    for (int i = 0; i < 64; i++) ck_assert_int_eq(r.codes[i], 0);
    bq_result_free(&r);
}
END_TEST

/* qgemm == sum over blocks of d_w d_x * exact int32 dot of the codes. */
static void check_gemm(int wbits, int rows_w, int rows_x, int cols, int block, int edge) {
    qmat w, x;
    ck_assert_int_eq(qmat_alloc(&w, wbits, rows_w, cols, block), BCT_OK);
    ck_assert_int_eq(qmat_alloc(&x, 8, rows_x, cols, block), BCT_OK);
    int8_t *codes = malloc((size_t)cols);
    int lo = wbits == 8 ? -127 : -8, hi = wbits == 8 ? 127 : 7;
    for (int r = 0; r < rows_w; r++) {
        for (int i = 0; i < cols; i++)
            codes[i] = (int8_t)(edge == 1 ? lo : edge == 2 ? hi : lo + (int)((frand() * 0.5f + 0.5f) * (hi - lo + 1)) % (hi - lo + 1));
        qmat_pack_row(&w, r, codes);
    }
    for (int i = 0; i < rows_w * cols / block; i++) w.scales[i] = 0.01f * (1 + i % 5);
    for (int r = 0; r < rows_x; r++) {
        int8_t *xq = (int8_t *)x.codes + (size_t)r * cols;
        for (int i = 0; i < cols; i++) xq[i] = (int8_t)(edge == 1 ? -127 : edge == 2 ? 127 : (int)(frand() * 127.9f));
    }
    for (int i = 0; i < rows_x * cols / block; i++) x.scales[i] = 0.5f + 0.1f * (i % 3);
    float *y = malloc((size_t)rows_x * rows_w * sizeof(float));
    qgemm(&w, &x, NULL, y, rows_w);
    for (int r = 0; r < rows_x; r++)
        for (int o = 0; o < rows_w; o++) {
            double want = 0;
            for (int b = 0; b < cols / block; b++) {
                int64_t dot = 0;
                for (int i = b * block; i < (b + 1) * block; i++)
                    dot += (int64_t)qmat_code(&w, qmat_row_codes(&w, o), i) * ((int8_t *)x.codes)[(size_t)r * cols + i];
                ck_assert_int_eq(dot, wbits == 8 ? qdot_q8q8_scalar((const int8_t *)qmat_row_codes(&w, o) + b * block,
                                                                   (int8_t *)x.codes + (size_t)r * cols + b * block, block)
                                                 : qdot_q4q8_scalar(qmat_row_codes(&w, o) + b * block / 2,
                                                                    (int8_t *)x.codes + (size_t)r * cols + b * block, block));
                want += (double)qmat_row_scales(&w, o)[b] * qmat_row_scales(&x, r)[b] * (double)dot;
            }
            ck_assert_msg(fabs(y[(size_t)r * rows_w + o] - want) <= 1e-4 * fmax(1, fabs(want)), "%f vs %f",
                          y[(size_t)r * rows_w + o], want);
        }
    free(y);
    free(codes);
    qmat_free(&w);
    qmat_free(&x);
}

START_TEST(gemm_matches_int32_reference) {
    for (int edge = 0; edge < 3; edge++) {
        check_gemm(8, 7, 5, 256, 32, edge);
        check_gemm(4, 9, 3, 192, 64, edge);
        check_gemm(8, 1, 1, 4096, 4096, edge);
        check_gemm(4, 33, 17, 96, 32, edge);
    }
}
END_TEST

static const char *const tiny_vocab[] = {"[PAD]", "[UNK]", "[CLS]", "[SEP]", "hello", "world",
                                         "##s", ",", "the", "cat", "sat"};

/* A compressed tiny random model: the fixture of the rejection tests. */
static char model_dir[64], bct_path[96];

static void make_bct(void) {
    bct_error err = {{0}};
    snprintf(model_dir, sizeof(model_dir), "/tmp/bct_q_XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(model_dir));
    char hf[128];
    snprintf(hf, sizeof(hf), "%s/hf", model_dir);
    ck_assert_int_eq(test_write_tiny_bert(hf, 2, 64, 2, 128, tiny_vocab, 11, 0, 5), 0);
    snprintf(bct_path, sizeof(bct_path), "%s/m.bct", model_dir);
    compress_opts o;
    ck_assert_int_eq(compress_preset("w4a8", &o, &err), BCT_OK);
    o.embeddings.block = o.tables.block = 64;
    compress_report rep;
    ck_assert_msg(compress_checkpoint(hf, bct_path, &o, &rep, &err) == BCT_OK, "%s", err.msg);
    ck_assert(rep.ratio > 1);
    compress_report_free(&rep);
}

static void remove_fixture(void) {
    char cmd[160];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", model_dir);
    ck_assert_int_eq(system(cmd), 0);
}

/* The 3 logits of models a and b (same vocabulary) for one fixed text. */
static void forward_both(const bert_model *a, const bert_model *b, float la[3], float lb[3]) {
    bct_error err = {{0}};
    int32_t ids[64];
    uint8_t types[64];
    tok_encoding e = {ids, types, 64, 0, 0};
    ck_assert_int_eq(bert_model_encode(a, "hello, the cats sat", 19, NULL, 0, &e, &err), BCT_OK);
    bert_ws *ws = bert_ws_create();
    ck_assert_int_eq(bert_forward(a, &(bert_seq){ids, types, e.len}, 1, la, ws, &err), BCT_OK);
    ck_assert_int_eq(bert_forward(b, &(bert_seq){ids, types, e.len}, 1, lb, ws, &err), BCT_OK);
    bert_ws_free(ws);
}

/* fp32 checkpoint and its .bct give close logits for the same input. */
START_TEST(bct_round_trip_close_to_fp32) {
    make_bct();
    char hf[128];
    snprintf(hf, sizeof(hf), "%s/hf", model_dir);
    bct_error err = {{0}};
    bert_model *a, *b;
    ck_assert_int_eq(bert_model_load(hf, &a, &err), BCT_OK);
    ck_assert_msg(bert_model_load(bct_path, &b, &err) == BCT_OK, "%s", err.msg);
    ck_assert_str_eq(b->format, "w4a8");
    ck_assert_int_eq(b->mode.act_int8, 1);
    ck_assert_ptr_nonnull(b->layer[0].query.q);
    ck_assert_int_eq(b->cfg.num_labels, 3);
    ck_assert_str_eq(b->cfg.labels[2], "mixed");
    float la[3], lb[3];
    forward_both(a, b, la, lb);
    for (int i = 0; i < 3; i++) ck_assert_msg(fabsf(la[i] - lb[i]) < 0.35f * (1 + fabsf(la[i])), "%f %f", la[i], lb[i]);
    bert_model_free(a);
    bert_model_free(b);
    remove_fixture();
}
END_TEST

/* Rewrites the fixture's header through `edit` (blobs copied unchanged)
 * and expects loading to fail with `needle` in the message. */
static void expect_rejected(void (*edit)(cJSON *meta), const char *drop_blob, const char *needle) {
    make_bct();
    bct_error err = {{0}};
    bctf_file *f;
    ck_assert_int_eq(bctf_open(bct_path, &f, &err), BCT_OK);
    char out[128];
    snprintf(out, sizeof(out), "%s/bad.bct", model_dir);
    bctf_writer *w;
    ck_assert_int_eq(bctf_writer_open(out, &w, &err), BCT_OK);
    for (size_t i = 0; i < bctf_blob_count(f); i++) {
        const char *name;
        const void *data;
        size_t size;
        ck_assert_int_eq(bctf_blob_at(f, i, &name, &data, &size), BCT_OK);
        if (drop_blob && strcmp(name, drop_blob) == 0) continue;
        ck_assert_int_eq(bctf_writer_add(w, name, data, size, &err), BCT_OK);
    }
    cJSON *meta = cJSON_Duplicate(bctf_meta(f), 1);
    if (edit) edit(meta);
    ck_assert_int_eq(bctf_writer_commit(w, meta, &err), BCT_OK);
    cJSON_Delete(meta);
    bctf_close(f);
    bert_model *m = NULL;
    int rc = bert_model_load(out, &m, &err);
    ck_assert_msg(rc != BCT_OK, "loaded a bad model");
    ck_assert_ptr_null(m);
    ck_assert_msg(strstr(err.msg, needle), "message \"%s\" lacks \"%s\"", err.msg, needle);
    remove_fixture();
}

static cJSON *tensor_entry(cJSON *meta, const char *name) {
    cJSON *e;
    cJSON_ArrayForEach(e, cJSON_GetObjectItem(meta, "tensors"))
        if (!strcmp(cJSON_GetObjectItem(e, "name")->valuestring, name)) return e;
    return NULL;
}
static void edit_bits(cJSON *meta) {
    cJSON_SetNumberValue(cJSON_GetObjectItem(tensor_entry(meta, "bert.encoder.layer.1.output.dense.weight"), "bits"), 5);
}
static void edit_block(cJSON *meta) {
    cJSON_SetNumberValue(cJSON_GetObjectItem(tensor_entry(meta, "bert.pooler.dense.weight"), "block"), 32);
}
static void edit_shape(cJSON *meta) {
    cJSON *shape = cJSON_GetObjectItem(tensor_entry(meta, "classifier.weight"), "shape");
    cJSON_SetNumberValue(cJSON_GetArrayItem(shape, 0), 4);
}
static void edit_drop_entry(cJSON *meta) {
    cJSON *arr = cJSON_GetObjectItem(meta, "tensors");
    cJSON_DeleteItemFromArray(arr, 3);
}
static void edit_config(cJSON *meta) {
    cJSON_SetNumberValue(cJSON_GetObjectItem(cJSON_GetObjectItem(meta, "config"), "hidden_size"), 96);
}
static void edit_vocab_bytes(cJSON *meta) {
    cJSON_SetNumberValue(cJSON_GetObjectItem(cJSON_GetObjectItem(meta, "tokenizer"), "vocab_bytes"), 1e12);
}

/* act_scale (see bert_linear) naming a blob of the wrong size, or not a name. */
static void edit_act_scale_size(cJSON *meta) {
    cJSON_AddStringToObject(tensor_entry(meta, "bert.pooler.dense.weight"), "act_scale", "classifier.bias");
}
static void edit_act_scale_type(cJSON *meta) {
    cJSON_AddNumberToObject(tensor_entry(meta, "bert.encoder.layer.0.intermediate.dense.weight"), "act_scale", 1);
}

START_TEST(bct_bad_tensors_rejected) {
    expect_rejected(edit_act_scale_size, NULL, "classifier.bias");
    expect_rejected(edit_act_scale_type, NULL, "act_scale is not a blob name");
    expect_rejected(edit_bits, NULL, "output.dense.weight");
    expect_rejected(edit_block, NULL, "bert.pooler.dense.weight.scales");
    expect_rejected(edit_shape, NULL, "classifier.weight");
    expect_rejected(edit_drop_entry, NULL, "missing tensor");
    expect_rejected(edit_config, NULL, "word_embeddings");
    expect_rejected(edit_vocab_bytes, NULL, "vocab");
    expect_rejected(NULL, "bert.encoder.layer.0.attention.self.key.weight.codes", "key.weight.codes");
    expect_rejected(NULL, "bert.embeddings.LayerNorm.bias", "bert.embeddings.LayerNorm.bias");
}
END_TEST

START_TEST(bct_truncated_rejected) {
    make_bct();
    size_t len;
    char *img = test_read_file(bct_path, &len);
    ck_assert_ptr_nonnull(img);
    for (size_t cut = 0; cut < len; cut += len / 97 + 1) {
        char p[128];
        snprintf(p, sizeof(p), "%s/cut.bct", model_dir);
        FILE *f = fopen(p, "wb");
        fwrite(img, 1, cut, f);
        fclose(f);
        bert_model *m = NULL;
        bct_error err = {{0}};
        ck_assert_int_ne(bert_model_load(p, &m, &err), BCT_OK);
        ck_assert_ptr_null(m);
        ck_assert(err.msg[0] != '\0');
    }
    free(img);
    remove_fixture();
}
END_TEST

/* w8a8r: every Linear weight of a compressed model in one block per
 * (padded) row, the other kinds as w8a8; unknown presets still refused. */
START_TEST(preset_w8a8r_one_block_per_row) {
    bct_error err = {{0}};
    compress_opts o, o8;
    ck_assert_int_eq(compress_preset("w8a8r", &o, &err), BCT_OK);
    ck_assert_int_eq(compress_preset("w8a8", &o8, &err), BCT_OK);
    ck_assert(o.act_int8 && o.int_nonlinear && o.weights.bits == 8);
    ck_assert_int_eq(o.embeddings.block, o8.embeddings.block);
    const int widths[] = {32, 96, 312, 768, 1000, 3072, 4096};
    for (size_t i = 0; i < sizeof(widths) / sizeof(widths[0]); i++)
        ck_assert_int_eq(bq_fit(&o.weights, widths[i]).block, qmat_padded_cols(widths[i]));
    ck_assert_int_eq(compress_preset("w8a8x", &o, &err), BCT_EINVAL);
    ck_assert_ptr_nonnull(strstr(err.msg, "w8a8r"));

    char dir[64], hf[96], path[128];
    snprintf(dir, sizeof(dir), "/tmp/bct_r_XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(dir));
    snprintf(hf, sizeof(hf), "%s/hf", dir);
    snprintf(path, sizeof(path), "%s/r.bct", dir);
    ck_assert_int_eq(test_write_tiny_bert(hf, 2, 64, 2, 160, tiny_vocab, 11, 0, 5), 0);
    ck_assert_int_eq(compress_preset("w8a8r", &o, &err), BCT_OK);
    compress_report rep;
    ck_assert_msg(compress_checkpoint(hf, path, &o, &rep, &err) == BCT_OK, "%s", err.msg);
    int linear = 0;
    for (int i = 0; i < rep.n_tensors; i++) {
        const compress_tensor *c = &rep.tensors[i];
        if (strcmp(c->kind, "weights") != 0) continue;
        ck_assert_msg(c->block == c->padded_cols, "%s: block %d, row %d", c->name, c->block, c->padded_cols);
        linear++;
    }
    ck_assert_int_gt(linear, 0);
    compress_report_free(&rep);
    char cmd[160];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    ck_assert_int_eq(system(cmd), 0);
}
END_TEST

/* Rewrites src into dst: mode 0 inflates every deflated codes blob and
 * drops its codes_encoding (the raw layout), 1 renames the encoding, 2
 * cuts 4 bytes off each deflated blob.  Returns how many were deflated. */
static int rewrite_codes(const char *src, const char *dst, int mode) {
    bct_error err = {{0}};
    bctf_file *f;
    ck_assert_int_eq(bctf_open(src, &f, &err), BCT_OK);
    cJSON *meta = cJSON_Duplicate(bctf_meta(f), 1);
    cJSON *tensors = cJSON_GetObjectItemCaseSensitive(meta, "tensors"), *t;
    bctf_writer *w;
    ck_assert_int_eq(bctf_writer_open(dst, &w, &err), BCT_OK);
    int deflated = 0;
    for (size_t i = 0; i < bctf_blob_count(f); i++) {
        const char *name;
        const void *data;
        size_t size;
        ck_assert_int_eq(bctf_blob_at(f, i, &name, &data, &size), BCT_OK);
        cJSON *entry = NULL;
        cJSON_ArrayForEach(t, tensors) {
            char codes[160];
            snprintf(codes, sizeof(codes), "%s.codes", cJSON_GetObjectItemCaseSensitive(t, "name")->valuestring);
            if (strcmp(codes, name) == 0 && cJSON_GetObjectItemCaseSensitive(t, "codes_encoding")) entry = t;
        }
        if (!entry) {
            ck_assert_int_eq(bctf_writer_add(w, name, data, size, &err), BCT_OK);
            continue;
        }
        deflated++;
        if (mode == 0) {
            int bits = cJSON_GetObjectItemCaseSensitive(entry, "bits")->valueint;
            int rows = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(entry, "shape"), 0)->valueint;
            int cols = cJSON_GetObjectItemCaseSensitive(entry, "padded_cols")->valueint;
            void *raw;
            size_t n = qcodec_codes_bytes(bits, rows, cols);
            ck_assert_int_eq(bctf_inflate(data, size, n, &raw, &err), BCT_OK);
            ck_assert_int_eq(bctf_writer_add(w, name, raw, n, &err), BCT_OK);
            free(raw);
            cJSON_DeleteItemFromObjectCaseSensitive(entry, "codes_encoding");
        } else {
            if (mode == 1) cJSON_ReplaceItemInObject(entry, "codes_encoding", cJSON_CreateString("lz4"));
            ck_assert_int_eq(bctf_writer_add(w, name, data, mode == 2 ? size - 4 : size, &err), BCT_OK);
        }
    }
    ck_assert_int_eq(bctf_writer_commit(w, meta, &err), BCT_OK);
    cJSON_Delete(meta);
    bctf_close(f);
    return deflated;
}

/* Makes every Linear weight and embedding of a test checkpoint peaked, as
 * trained weights are (x -> 25 x^3 of a uniform draw: most values near 0),
 * rewriting the safetensors floats in place. */
static void peak_weights(const char *hf) {
    char p[160];
    snprintf(p, sizeof(p), "%s/model.safetensors", hf);
    size_t len;
    char *img = test_read_file(p, &len);
    ck_assert_ptr_nonnull(img);
    uint64_t hlen;
    memcpy(&hlen, img, 8);
    cJSON *h = cJSON_ParseWithLength(img + 8, (size_t)hlen), *t;
    ck_assert_ptr_nonnull(h);
    cJSON_ArrayForEach(t, h) {
        cJSON *shape = cJSON_GetObjectItemCaseSensitive(t, "shape");
        if (!shape || cJSON_GetArraySize(shape) != 2) continue;
        cJSON *off = cJSON_GetObjectItemCaseSensitive(t, "data_offsets");
        size_t a = (size_t)cJSON_GetArrayItem(off, 0)->valuedouble, b = (size_t)cJSON_GetArrayItem(off, 1)->valuedouble;
        for (size_t i = a; i + 4 <= b; i += 4) {
            float x;
            memcpy(&x, img + 8 + hlen + i, 4);
            x = 25 * x * x * x;
            memcpy(img + 8 + hlen + i, &x, 4);
        }
    }
    cJSON_Delete(h);
    FILE *f = fopen(p, "wb");
    ck_assert_ptr_nonnull(f);
    ck_assert_uint_eq(fwrite(img, 1, len, f), len);
    fclose(f);
    free(img);
}

/* 2-bit codes are stored deflated; the model they load into is the one
 * the raw layout gives, to the bit; a bad encoding or a cut stream is
 * refused naming the tensor. */
START_TEST(codes_deflate_lossless) {
    bct_error err = {{0}};
    char dir[64], hf[96], path[128], raw[128], bad[128];
    snprintf(dir, sizeof(dir), "/tmp/bct_z_XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(dir));
    snprintf(hf, sizeof(hf), "%s/hf", dir);
    snprintf(path, sizeof(path), "%s/q2.bct", dir);
    snprintf(raw, sizeof(raw), "%s/raw.bct", dir);
    snprintf(bad, sizeof(bad), "%s/bad.bct", dir);
    ck_assert_int_eq(test_write_tiny_bert(hf, 2, 64, 2, 128, tiny_vocab, 11, 0, 5), 0);
    peak_weights(hf);
    compress_opts o;
    ck_assert_int_eq(compress_preset("w8a8", &o, &err), BCT_OK);
    o.weights.bits = o.embeddings.bits = o.tables.bits = 2;
    compress_report rep;
    ck_assert_msg(compress_checkpoint(hf, path, &o, &rep, &err) == BCT_OK, "%s", err.msg);
    compress_report_free(&rep);
    ck_assert_int_gt(rewrite_codes(path, raw, 0), 0);

    bert_model *a, *b;
    ck_assert_msg(bert_model_load(path, &a, &err) == BCT_OK, "%s", err.msg);
    ck_assert_msg(bert_model_load(raw, &b, &err) == BCT_OK, "%s", err.msg);
    float la[3], lb[3];
    forward_both(a, b, la, lb);
    ck_assert_mem_eq(la, lb, sizeof(la));
    bert_model_free(a);
    bert_model_free(b);

    for (int mode = 1; mode <= 2; mode++) {
        rewrite_codes(path, bad, mode);
        bert_model *m = NULL;
        ck_assert_int_ne(bert_model_load(bad, &m, &err), BCT_OK);
        ck_assert_ptr_null(m);
        ck_assert_msg(strstr(err.msg, "tensor \"bert."), "%s", err.msg);
        ck_assert_msg(strstr(err.msg, mode == 1 ? "codes_encoding" : "codes"), "%s", err.msg);
    }
    char cmd[160];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    ck_assert_int_eq(system(cmd), 0);
}
END_TEST

int main(void) {
    Suite *s = suite_create("quant");
    TCase *tc = tcase_create("quant");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, pack_unpack_all_widths);
    tcase_add_test(tc, half_round_trip);
    tcase_add_test(tc, log8_scales);
    tcase_add_test(tc, quantizer_error_bounds);
    tcase_add_test(tc, quantizer_rejects_bad_specs);
    tcase_add_test(tc, gemm_matches_int32_reference);
    tcase_add_test(tc, bct_round_trip_close_to_fp32);
    tcase_add_test(tc, bct_bad_tensors_rejected);
    tcase_add_test(tc, bct_truncated_rejected);
    tcase_add_test(tc, preset_w8a8r_one_block_per_row);
    tcase_add_test(tc, codes_deflate_lossless);
    suite_add_tcase(s, tc);
    return test_run_suite(s);
}
