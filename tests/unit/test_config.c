/* Config parsing, checkpoint binding (name variants, missing and misshaped
 * tensors) and forward-pass invariants on tiny synthetic checkpoints. */
#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "model/bert_config.h"
#include "model/bert_forward.h"
#include "model/bert_model.h"
#include "test_util.h"

#define BASE                                                                                   \
    "\"architectures\":[\"BertForSequenceClassification\"],\"model_type\":\"bert\","           \
    "\"hidden_size\":128,\"num_hidden_layers\":2,\"num_attention_heads\":2,"                 \
    "\"intermediate_size\":512,\"vocab_size\":30522"

static int parse(const char *json, bert_config *cfg, bct_error *err) {
    return bert_config_parse(json, strlen(json), cfg, err);
}

START_TEST(config_valid_defaults) {
    bert_config c;
    bct_error err = {{0}};
    ck_assert_int_eq(parse("{" BASE "}", &c, &err), BCT_OK);
    ck_assert_int_eq(c.hidden, 128);
    ck_assert_int_eq(c.layers, 2);
    ck_assert_int_eq(c.max_pos, 512);
    ck_assert_int_eq(c.type_vocab, 2);
    ck_assert_int_eq(c.act, BERT_ACT_GELU);
    ck_assert(fabsf(c.ln_eps - 1e-12f) < 1e-18f);
    ck_assert_int_eq(c.num_labels, 2);
    ck_assert_str_eq(c.labels[1], "LABEL_1");
    ck_assert_int_eq(c.lowercase, 1);
    ck_assert_int_eq(c.problem, BERT_SINGLE_LABEL);
    bert_config_free(&c);
}
END_TEST

START_TEST(config_labels_and_act) {
    bert_config c;
    bct_error err = {{0}};
    ck_assert_int_eq(parse("{" BASE ",\"hidden_act\":\"gelu_new\",\"layer_norm_eps\":1e-5,"
                           "\"id2label\":{\"1\":\"pos\",\"0\":\"neg\",\"2\":\"neutral\"}}",
                           &c, &err),
                     BCT_OK);
    ck_assert(fabsf(c.ln_eps - 1e-5f) < 1e-12f);
    ck_assert_int_eq(c.act, BERT_ACT_GELU_TANH);
    ck_assert_int_eq(c.num_labels, 3);
    ck_assert_str_eq(c.labels[0], "neg");
    ck_assert_str_eq(c.labels[2], "neutral");
    ck_assert_int_eq(bert_config_label_id(&c, "pos"), 1);
    ck_assert_int_eq(bert_config_label_id(&c, "nope"), -1);
    bert_config_free(&c);
    ck_assert_int_eq(parse("{" BASE ",\"hidden_act\":\"gelu_pytorch_tanh\",\"num_labels\":1}", &c, &err),
                     BCT_OK);
    ck_assert_int_eq(c.problem, BERT_REGRESSION);
    bert_config_free(&c);
}
END_TEST

static void expect_error(const char *json, int code, const char *needle) {
    bert_config c;
    bct_error err = {{0}};
    int rc = parse(json, &c, &err);
    ck_assert_msg(rc == code, "expected %d, got %d (%s) for %s", code, rc, err.msg, json);
    ck_assert_msg(strstr(err.msg, needle), "message \"%s\" lacks \"%s\"", err.msg, needle);
}

/* A valid config with field `key` set to the JSON text `value` (added when
 * absent from the base). */
static const char *with_field(const char *key, const char *value) {
    static char buf[1024];
    static const char *const base[][2] = {
        {"architectures", "[\"BertForSequenceClassification\"]"}, {"model_type", "\"bert\""},
        {"hidden_size", "128"}, {"num_hidden_layers", "2"}, {"num_attention_heads", "2"},
        {"intermediate_size", "512"}, {"vocab_size", "30522"}};
    int n = snprintf(buf, sizeof(buf), "{\"%s\":%s", key, value);
    for (size_t i = 0; i < sizeof(base) / sizeof(base[0]); i++)
        if (strcmp(base[i][0], key) != 0)
            n += snprintf(buf + n, sizeof(buf) - (size_t)n, ",\"%s\":%s", base[i][0], base[i][1]);
    snprintf(buf + n, sizeof(buf) - (size_t)n, "}");
    return buf;
}

START_TEST(config_errors) {
    expect_error("{\"hidden_size\": 12", BCT_EFORMAT, "not valid JSON");
    expect_error("[1,2]", BCT_EFORMAT, "not a JSON object");
    expect_error("{" BASE ",\"num_attention_heads\":3}", BCT_EFORMAT, "appears twice");
    expect_error(with_field("architectures", "[\"DebertaV2ForSequenceClassification\"]"),
                 BCT_EUNSUPPORTED, "DebertaV2ForSequenceClassification");
    expect_error(with_field("architectures", "[\"RobertaForSequenceClassification\"]"),
                 BCT_EFORMAT, "disagrees with model_type \"bert\"");
    expect_error(with_field("model_type", "\"deberta-v2\""), BCT_EUNSUPPORTED, "deberta-v2");
    expect_error("{\"hidden_size\":8}", BCT_EUNSUPPORTED, "BERT");
    expect_error("{\"architectures\":[\"BertForSequenceClassification\"],\"hidden_size\":128}",
                 BCT_EFORMAT, "vocab_size");
    expect_error(with_field("num_attention_heads", "3"), BCT_EFORMAT, "divisible");
    expect_error(with_field("hidden_act", "\"swish\""), BCT_EUNSUPPORTED, "swish");
    expect_error(with_field("hidden_size", "-4"), BCT_EFORMAT, "hidden_size");
    expect_error(with_field("hidden_size", "12.5"), BCT_EFORMAT, "integer");
    expect_error(with_field("hidden_size", "\"128\""), BCT_EFORMAT, "integer");
    expect_error(with_field("layer_norm_eps", "0"), BCT_EFORMAT, "layer_norm_eps");
    expect_error(with_field("id2label", "{\"0\":\"a\",\"2\":\"b\"}"), BCT_EFORMAT, "\"2\"");
    expect_error(with_field("id2label", "{\"0\":\"a\",\"x\":\"b\"}"), BCT_EFORMAT, "\"x\"");
    expect_error(with_field("id2label", "{\"0\":\"a\",\"1\":7}"), BCT_EFORMAT, "id2label[1]");
    expect_error(with_field("position_embedding_type", "\"relative_key\""), BCT_EUNSUPPORTED,
                 "relative_key");
    expect_error(with_field("problem_type", "\"ranking\""), BCT_EUNSUPPORTED, "ranking");
    expect_error(with_field("vocab_size", "0"), BCT_EFORMAT, "vocab_size");
}
END_TEST

/* Each architecture's own keys, parsed and written back unchanged. */
static void roundtrip(const bert_config *c) {
    bert_config back;
    bct_error err = {{0}};
    cJSON *j = bert_config_to_json(c);
    ck_assert_ptr_nonnull(j);
    char *text = cJSON_PrintUnformatted(j);
    ck_assert_int_eq(bert_config_parse(text, strlen(text), &back, &err), BCT_OK);
    ck_assert_int_eq(back.arch, c->arch);
    ck_assert_int_eq(back.hidden, c->hidden);
    ck_assert_int_eq(back.layers, c->layers);
    ck_assert_int_eq(back.heads, c->heads);
    ck_assert_int_eq(back.intermediate, c->intermediate);
    ck_assert_int_eq(back.emb_size, c->emb_size);
    ck_assert_int_eq(back.max_pos, c->max_pos);
    ck_assert_int_eq(back.pos_offset, c->pos_offset);
    ck_assert_int_eq(back.pad_id, c->pad_id);
    ck_assert_int_eq(back.type_vocab, c->type_vocab);
    ck_assert_int_eq(back.sinusoidal, c->sinusoidal);
    ck_assert_int_eq(back.act, c->act);
    ck_assert(back.ln_eps == c->ln_eps);
    ck_assert_int_eq(back.problem, c->problem);
    ck_assert_int_eq(back.num_labels, c->num_labels);
    for (int i = 0; i < c->num_labels; i++) ck_assert_str_eq(back.labels[i], c->labels[i]);
    bert_config_free(&back);
    free(text);
    cJSON_Delete(j);
}

START_TEST(config_architectures) {
    bert_config c;
    bct_error err = {{0}};
    ck_assert_int_eq(parse("{\"architectures\":[\"DistilBertForSequenceClassification\"],"
                           "\"model_type\":\"distilbert\",\"vocab_size\":100,\"dim\":64,\"n_layers\":3,"
                           "\"n_heads\":4,\"hidden_dim\":96,\"activation\":\"relu\",\"sinusoidal_pos_embds\":true,"
                           "\"seq_classif_dropout\":0.2,\"problem_type\":\"multi_label_classification\","
                           "\"id2label\":{\"0\":\"toxic\",\"1\":\"insult\",\"2\":\"threat\"}}",
                           &c, &err),
                     BCT_OK);
    ck_assert_int_eq(c.arch, BERT_ARCH_DISTILBERT);
    ck_assert_int_eq(c.hidden, 64);
    ck_assert_int_eq(c.layers, 3);
    ck_assert_int_eq(c.heads, 4);
    ck_assert_int_eq(c.intermediate, 96);
    ck_assert_int_eq(c.act, BERT_ACT_RELU);
    ck_assert_int_eq(c.type_vocab, 0);
    ck_assert_int_eq(c.sinusoidal, 1);
    ck_assert_int_eq(c.max_pos, 512);
    ck_assert_int_eq(c.problem, BERT_MULTI_LABEL);
    ck_assert_str_eq(c.labels[2], "threat");
    ck_assert_int_eq(bert_arch_head_act(c.arch), BERT_HEAD_RELU);
    roundtrip(&c);
    bert_config_free(&c);

    /* RoBERTa: 514 position rows, pad 1 -> 512 tokens from row 2. */
    ck_assert_int_eq(parse("{\"model_type\":\"roberta\",\"vocab_size\":100,\"hidden_size\":64,"
                           "\"num_hidden_layers\":1,\"num_attention_heads\":2,\"intermediate_size\":80,"
                           "\"max_position_embeddings\":514,\"type_vocab_size\":1,\"layer_norm_eps\":1e-5,"
                           "\"num_labels\":1}",
                           &c, &err),
                     BCT_OK);
    ck_assert_int_eq(c.arch, BERT_ARCH_ROBERTA);
    ck_assert_int_eq(c.pad_id, 1);
    ck_assert_int_eq(c.pos_offset, 2);
    ck_assert_int_eq(c.max_pos, 512);
    ck_assert_int_eq(c.problem, BERT_REGRESSION);
    ck_assert_str_eq(bert_arch_name(c.arch), "RobertaForSequenceClassification");
    roundtrip(&c);
    bert_config_free(&c);

    ck_assert_int_eq(parse("{\"architectures\":[\"XLMRobertaForSequenceClassification\"],"
                           "\"model_type\":\"xlm-roberta\",\"vocab_size\":100,\"hidden_size\":64,"
                           "\"num_hidden_layers\":1,\"num_attention_heads\":2,\"intermediate_size\":80,"
                           "\"max_position_embeddings\":20,\"pad_token_id\":3}",
                           &c, &err),
                     BCT_OK);
    ck_assert_int_eq(c.arch, BERT_ARCH_XLM_ROBERTA);
    ck_assert_int_eq(c.max_pos, 16);
    ck_assert_str_eq(bert_arch_prefix(c.arch), "roberta");
    roundtrip(&c);
    bert_config_free(&c);

    ck_assert_int_eq(parse("{\"architectures\":[\"ElectraForSequenceClassification\"],"
                           "\"vocab_size\":100,\"hidden_size\":64,\"embedding_size\":32,"
                           "\"num_hidden_layers\":1,\"num_attention_heads\":2,\"intermediate_size\":80}",
                           &c, &err),
                     BCT_OK);
    ck_assert_int_eq(c.arch, BERT_ARCH_ELECTRA);
    ck_assert_int_eq(c.emb_size, 32);
    ck_assert_int_eq(bert_arch_head_act(c.arch), BERT_HEAD_GELU);
    roundtrip(&c);
    bert_config_free(&c);

    expect_error("{\"model_type\":\"distilbert\",\"vocab_size\":100,\"hidden_size\":64}", BCT_EFORMAT,
                 "\"dim\"");
    expect_error("{\"model_type\":\"distilbert\",\"vocab_size\":100,\"dim\":64,\"n_layers\":1,"
                 "\"n_heads\":3,\"hidden_dim\":8}",
                 BCT_EFORMAT, "dim 64 is not divisible by n_heads 3");
    expect_error("{\"model_type\":\"distilbert\",\"vocab_size\":100,\"dim\":64,\"n_layers\":1,"
                 "\"n_heads\":2,\"hidden_dim\":8,\"activation\":\"silu\"}",
                 BCT_EUNSUPPORTED, "activation \"silu\"");
    expect_error("{\"model_type\":\"roberta\",\"vocab_size\":100,\"hidden_size\":64,"
                 "\"num_hidden_layers\":1,\"num_attention_heads\":2,\"intermediate_size\":80,"
                 "\"max_position_embeddings\":3}",
                 BCT_EFORMAT, "max_position_embeddings 3");
    expect_error("{\"model_type\":\"electra\",\"vocab_size\":100,\"hidden_size\":64,\"embedding_size\":128,"
                 "\"num_hidden_layers\":1,\"num_attention_heads\":2,\"intermediate_size\":80}",
                 BCT_EUNSUPPORTED, "embedding_size 128 > hidden_size 64");
}
END_TEST

/* Issue 17 (6): the duplicate-key check was pairwise, 25 s of CPU for
 * the 96k keys that fit in config.json's 1 MiB.  The test case runs under
 * an 8 s timeout (the sorted check takes milliseconds, even under ASan). */
START_TEST(config_many_keys_linear) {
    size_t cap = 1 << 20, n = 0;
    char *json = malloc(cap);
    ck_assert_ptr_nonnull(json);
    n += (size_t)snprintf(json, cap, "{" BASE);
    int keys = 0;
    while (n + 32 < cap - 64) n += (size_t)snprintf(json + n, cap - n, ",\"k%06d\":0", keys++);
    ck_assert_int_gt(keys, 80000);
    snprintf(json + n, cap - n, "}");
    bert_config c;
    bct_error err = {{0}};
    ck_assert_int_eq(parse(json, &c, &err), BCT_OK);
    bert_config_free(&c);
    /* The same size with one repeated key at the far end. */
    snprintf(json + n, cap - n, ",\"k%06d\":1}", keys / 2);
    expect_error(json, BCT_EFORMAT, "appears twice");
    free(json);
}
END_TEST

/* Memory bound (issue 17): a config.json over BERT_CONFIG_MAX_BYTES is
 * refused, with the limit named, before cJSON builds anything. */
START_TEST(config_over_limit) {
    size_t n = (size_t)BERT_CONFIG_MAX_BYTES + 1;
    char *json = malloc(n + 1);
    ck_assert_ptr_nonnull(json);
    memset(json, ' ', n);
    json[0] = '{';
    json[n - 1] = '}';
    json[n] = '\0';
    bert_config c;
    bct_error err = {{0}};
    ck_assert_int_eq(parse(json, &c, &err), BCT_EFORMAT);
    ck_assert_msg(strstr(err.msg, "more than the limit of 1048576 (BERT_CONFIG_MAX_BYTES)"), "%s", err.msg);
    json[n - 2] = '}'; /* one byte less: parsed (and refused for its content) */
    json[n - 1] = '\0';
    ck_assert_int_ne(parse(json, &c, &err), BCT_OK);
    ck_assert_msg(!strstr(err.msg, "BERT_CONFIG_MAX_BYTES"), "%s", err.msg);
    free(json);
}
END_TEST

static const char *const tiny_vocab[] = {"[PAD]", "[UNK]", "[CLS]", "[SEP]", "hello", "world",
                                         "##s", ",", "the", "cat", "sat"};
#define TINY_VOCAB (int)(sizeof(tiny_vocab) / sizeof(tiny_vocab[0]))

static char tmpdir[64];

static void make_tmpdir(void) {
    snprintf(tmpdir, sizeof(tmpdir), "/tmp/bct_cfg_XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(tmpdir));
}

static void remove_dir(const char *dir) {
    char cmd[256];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    ck_assert_int_eq(system(cmd), 0);
}

static void classify(const bert_model *m, const char *a, const char *b, float *logits) {
    int32_t ids[64];
    uint8_t types[64];
    tok_encoding e = {ids, types, 64, 0, 0};
    bct_error err = {{0}};
    ck_assert_int_eq(bert_model_encode(m, a, strlen(a), b, b ? strlen(b) : 0, &e, &err), BCT_OK);
    bert_ws *ws = bert_ws_create();
    ck_assert_int_eq(bert_forward(m, &(bert_seq){ids, types, e.len}, 1, logits, ws, &err), BCT_OK);
    bert_ws_free(ws);
}

START_TEST(model_name_variants_agree) {
    char a[128], b[128];
    bct_error err = {{0}};
    bert_model *m1, *m2;
    float l1[3], l2[3];
    make_tmpdir();
    snprintf(a, sizeof(a), "%s/hf", tmpdir);
    snprintf(b, sizeof(b), "%s/old", tmpdir);
    ck_assert_int_eq(test_write_tiny_bert(a, 2, 16, 4, 32, tiny_vocab, TINY_VOCAB, 0, 7), 0);
    ck_assert_int_eq(test_write_tiny_bert(b, 2, 16, 4, 32, tiny_vocab, TINY_VOCAB, 1, 7), 0);
    ck_assert_msg(bert_model_load_hf(a, &m1, &err) == BCT_OK, "%s", err.msg);
    ck_assert_msg(bert_model_load_hf(b, &m2, &err) == BCT_OK, "%s", err.msg);
    ck_assert_int_eq(m1->cfg.num_labels, 3);
    classify(m1, "Hello, worlds", "the cat sat", l1);
    classify(m2, "Hello, worlds", "the cat sat", l2);
    for (int i = 0; i < 3; i++) ck_assert_float_eq(l1[i], l2[i]);
    bert_model_free(m1);
    bert_model_free(m2);
    remove_dir(tmpdir);
}
END_TEST

/* Batching must not change results: each sequence alone == all together. */
START_TEST(forward_batch_equals_single) {
    char dir[128];
    bct_error err = {{0}};
    bert_model *m;
    make_tmpdir();
    snprintf(dir, sizeof(dir), "%s/m", tmpdir);
    ck_assert_int_eq(test_write_tiny_bert(dir, 3, 16, 2, 24, tiny_vocab, TINY_VOCAB, 0, 11), 0);
    ck_assert_msg(bert_model_load_hf(dir, &m, &err) == BCT_OK, "%s", err.msg);
    const char *texts[] = {"hello", "the cat sat , hello world", "", "cats cats cats the world"};
    int32_t ids[4][64];
    uint8_t types[4][64];
    bert_seq seqs[4];
    for (int i = 0; i < 4; i++) {
        tok_encoding e = {ids[i], types[i], 64, 0, 0};
        ck_assert_int_eq(bert_model_encode(m, texts[i], strlen(texts[i]), NULL, 0, &e, &err), BCT_OK);
        seqs[i] = (bert_seq){ids[i], types[i], e.len};
    }
    float all[12], one[3];
    bert_ws *ws = bert_ws_create();
    ck_assert_int_eq(bert_forward(m, seqs, 4, all, ws, &err), BCT_OK);
    for (int i = 0; i < 4; i++) {
        ck_assert_int_eq(bert_forward(m, &seqs[i], 1, one, ws, &err), BCT_OK);
        for (int j = 0; j < 3; j++) ck_assert_msg(fabsf(one[j] - all[i * 3 + j]) < 1e-5f, "seq %d", i);
    }
    /* Out-of-range ids are rejected, not read out of bounds. */
    int32_t bad_ids[2] = {2, 999};
    uint8_t bad_types[2] = {0, 0};
    ck_assert_int_eq(bert_forward(m, &(bert_seq){bad_ids, bad_types, 2}, 1, one, ws, &err), BCT_EINVAL);
    bad_ids[1] = 4;
    bad_types[1] = 5;
    ck_assert_int_eq(bert_forward(m, &(bert_seq){bad_ids, bad_types, 2}, 1, one, ws, &err), BCT_EINVAL);
    bert_ws_free(ws);
    bert_model_free(m);
    remove_dir(tmpdir);
}
END_TEST

/* Rewrites dir's checkpoint without tensor `drop` (and with `reshape`
 * given a wrong shape), then expects loading to fail naming it. */
static void expect_bind_error(const char *drop, const char *reshape, const char *needle) {
    char dir[128], path[256];
    bct_error err = {{0}};
    bert_model *m = NULL;
    make_tmpdir();
    snprintf(dir, sizeof(dir), "%s/m", tmpdir);
    ck_assert_int_eq(test_write_tiny_bert(dir, 1, 8, 2, 16, tiny_vocab, TINY_VOCAB, 0, 3), 0);
    /* Rebuild the file with the tensor set changed. */
    snprintf(path, sizeof(path), "%s/model.safetensors", dir);
    test_st_builder *b = test_st_new();
    float zeros[4096] = {0};
    const struct {
        const char *name;
        long d0, d1;
    } all[] = {
        {"bert.embeddings.word_embeddings.weight", TINY_VOCAB, 8},
        {"bert.embeddings.position_embeddings.weight", 64, 8},
        {"bert.embeddings.token_type_embeddings.weight", 2, 8},
        {"bert.embeddings.LayerNorm.weight", 8, 0},
        {"bert.embeddings.LayerNorm.bias", 8, 0},
        {"bert.encoder.layer.0.attention.self.query.weight", 8, 8},
        {"bert.encoder.layer.0.attention.self.query.bias", 8, 0},
        {"bert.encoder.layer.0.attention.self.key.weight", 8, 8},
        {"bert.encoder.layer.0.attention.self.key.bias", 8, 0},
        {"bert.encoder.layer.0.attention.self.value.weight", 8, 8},
        {"bert.encoder.layer.0.attention.self.value.bias", 8, 0},
        {"bert.encoder.layer.0.attention.output.dense.weight", 8, 8},
        {"bert.encoder.layer.0.attention.output.dense.bias", 8, 0},
        {"bert.encoder.layer.0.attention.output.LayerNorm.weight", 8, 0},
        {"bert.encoder.layer.0.attention.output.LayerNorm.bias", 8, 0},
        {"bert.encoder.layer.0.intermediate.dense.weight", 16, 8},
        {"bert.encoder.layer.0.intermediate.dense.bias", 16, 0},
        {"bert.encoder.layer.0.output.dense.weight", 8, 16},
        {"bert.encoder.layer.0.output.dense.bias", 8, 0},
        {"bert.encoder.layer.0.output.LayerNorm.weight", 8, 0},
        {"bert.encoder.layer.0.output.LayerNorm.bias", 8, 0},
        {"bert.pooler.dense.weight", 8, 8},
        {"bert.pooler.dense.bias", 8, 0},
        {"classifier.weight", 3, 8},
        {"classifier.bias", 3, 0},
    };
    for (size_t i = 0; i < sizeof(all) / sizeof(all[0]); i++) {
        if (drop && !strcmp(all[i].name, drop)) continue;
        long shape[2] = {all[i].d0, all[i].d1};
        if (reshape && !strcmp(all[i].name, reshape)) shape[0] += 1;
        test_st_add(b, all[i].name, all[i].d1 ? 2 : 1, shape, zeros);
    }
    ck_assert_int_eq(test_st_write(b, path), 0);
    int rc = bert_model_load_hf(dir, &m, &err);
    if (!needle) {
        ck_assert_msg(rc == BCT_OK, "%s", err.msg);
        bert_model_free(m);
        remove_dir(tmpdir);
        return;
    }
    ck_assert_int_eq(rc, BCT_EFORMAT);
    ck_assert_ptr_null(m);
    ck_assert_msg(strstr(err.msg, needle), "message \"%s\" lacks \"%s\"", err.msg, needle);
    remove_dir(tmpdir);
}

/* Positive control: the complete rebuilt tensor set loads. */
START_TEST(model_complete_set_loads) { expect_bind_error(NULL, NULL, NULL); }
END_TEST

START_TEST(model_missing_tensor) {
    expect_bind_error("bert.encoder.layer.0.output.dense.weight", NULL,
                      "missing tensor \"bert.encoder.layer.0.output.dense.weight\"");
    expect_bind_error("classifier.bias", NULL, "missing tensor \"classifier.bias\"");
}
END_TEST

START_TEST(model_wrong_shape) {
    expect_bind_error(NULL, "bert.encoder.layer.0.intermediate.dense.weight",
                      "\"bert.encoder.layer.0.intermediate.dense.weight\" has shape [17, 8], "
                      "config.json implies [16, 8]");
    expect_bind_error(NULL, "bert.embeddings.LayerNorm.bias", "LayerNorm.bias");
}
END_TEST

START_TEST(model_missing_files) {
    bct_error err = {{0}};
    bert_model *m = NULL;
    ck_assert_int_eq(bert_model_load_hf("/nonexistent/dir", &m, &err), BCT_EIO);
    ck_assert(strstr(err.msg, "/nonexistent/dir") != NULL);
    ck_assert_ptr_null(m);
}
END_TEST

static Suite *suite(void) {
    Suite *s = suite_create("config");
    TCase *tc = tcase_create("config");
    tcase_add_test(tc, config_valid_defaults);
    tcase_add_test(tc, config_labels_and_act);
    tcase_add_test(tc, config_errors);
    tcase_add_test(tc, config_architectures);
    tcase_add_test(tc, model_name_variants_agree);
    tcase_add_test(tc, forward_batch_equals_single);
    tcase_add_test(tc, model_missing_tensor);
    tcase_add_test(tc, model_wrong_shape);
    tcase_add_test(tc, model_missing_files);
    tcase_add_test(tc, model_complete_set_loads);
    suite_add_tcase(s, tc);
    TCase *big = tcase_create("many_keys");
    tcase_set_timeout(big, 8);
    tcase_add_test(big, config_many_keys_linear);
    tcase_add_test(big, config_over_limit);
    suite_add_tcase(s, big);
    return s;
}

int main(void) { return test_run_suite(suite()); }
