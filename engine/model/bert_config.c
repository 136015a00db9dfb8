#include "bert_config.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/json_util.h"


/* Reads an integer field in [lo, hi]; absent -> def (or error if def < 0). */
static int get_int(const cJSON *root, const char *key, int def, int lo, int hi, int *out,
                   bct_error *err) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(root, key);
    if (!v || cJSON_IsNull(v)) {
        if (def < 0) return bct_fail(err, BCT_EFORMAT, "config.json: missing field \"%s\"", key);
        *out = def;
        return BCT_OK;
    }
    if (!cJSON_IsNumber(v) || v->valuedouble != floor(v->valuedouble))
        return bct_fail(err, BCT_EFORMAT, "config.json: \"%s\" must be an integer", key);
    if (v->valuedouble < lo || v->valuedouble > hi)
        return bct_fail(err, BCT_EFORMAT, "config.json: \"%s\" = %.0f is outside [%d, %d]", key,
                        v->valuedouble, lo, hi);
    *out = (int)v->valuedouble;
    return BCT_OK;
}

static const char *get_str(const cJSON *root, const char *key) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(root, key);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

/* Per architecture: its names and the config keys it spells its own way. */
typedef struct arch_info {
    const char *name;       /* "architectures"[0] */
    const char *model_type;
    const char *prefix;     /* base-model prefix of tensor names */
    bert_head_act head;
    int pad_default;        /* pad_token_id when absent (Hugging Face's defaults) */
} arch_info;

static const arch_info archs[BERT_ARCH_COUNT] = {
    [BERT_ARCH_BERT] = {"BertForSequenceClassification", "bert", "bert", BERT_HEAD_TANH, 0},
    [BERT_ARCH_DISTILBERT] = {"DistilBertForSequenceClassification", "distilbert", "distilbert",
                              BERT_HEAD_RELU, 0},
    [BERT_ARCH_ROBERTA] = {"RobertaForSequenceClassification", "roberta", "roberta", BERT_HEAD_TANH, 1},
    [BERT_ARCH_XLM_ROBERTA] = {"XLMRobertaForSequenceClassification", "xlm-roberta", "roberta",
                               BERT_HEAD_TANH, 1},
    [BERT_ARCH_ELECTRA] = {"ElectraForSequenceClassification", "electra", "electra", BERT_HEAD_GELU, 0},
};

const char *bert_arch_name(bert_arch arch) { return archs[arch].name; }
const char *bert_arch_prefix(bert_arch arch) { return archs[arch].prefix; }
bert_head_act bert_arch_head_act(bert_arch arch) { return archs[arch].head; }

static void list_archs(char *buf, size_t cap) {
    size_t o = 0;
    for (int i = 0; i < BERT_ARCH_COUNT && o < cap; i++)
        o += (size_t)snprintf(buf + o, cap - o, "%s%s", i ? ", " : "", archs[i].name);
}

/* "architectures"[0] names the class; model_type alone names the family.
 * When both are present they must agree. */
static int parse_arch(const cJSON *root, bert_arch *out, bct_error *err) {
    char known[256];
    list_archs(known, sizeof(known));
    const char *type = get_str(root, "model_type");
    int by_type = -1, by_name = -1;
    for (int i = 0; type && i < BERT_ARCH_COUNT; i++)
        if (strcmp(type, archs[i].model_type) == 0) by_type = i;
    if (type && by_type < 0)
        return bct_fail(err, BCT_EUNSUPPORTED,
                        "config.json: model_type \"%s\" is not supported (bert, distilbert, roberta, "
                        "xlm-roberta, electra)", type);
    const cJSON *arch = cJSON_GetObjectItemCaseSensitive(root, "architectures");
    if (arch && !cJSON_IsNull(arch)) {
        if (!cJSON_IsArray(arch) || cJSON_GetArraySize(arch) < 1)
            return bct_fail(err, BCT_EFORMAT, "config.json: \"architectures\" must be a list");
        const cJSON *a0 = cJSON_GetArrayItem(arch, 0);
        for (int i = 0; cJSON_IsString(a0) && i < BERT_ARCH_COUNT; i++)
            if (strcmp(a0->valuestring, archs[i].name) == 0) by_name = i;
        if (by_name < 0)
            return bct_fail(err, BCT_EUNSUPPORTED,
                            "config.json: architecture \"%s\" is not supported (%s)",
                            cJSON_IsString(a0) ? a0->valuestring : "?", known);
        if (by_type >= 0 && by_type != by_name)
            return bct_fail(err, BCT_EFORMAT,
                            "config.json: architecture \"%s\" disagrees with model_type \"%s\"",
                            a0->valuestring, type);
    } else if (by_type < 0) {
        return bct_fail(err, BCT_EUNSUPPORTED,
                        "config.json: neither \"architectures\" nor \"model_type\" names a supported "
                        "BERT-family classifier (%s)", known);
    }
    *out = (bert_arch)(by_name >= 0 ? by_name : by_type);
    const char *pos = get_str(root, "position_embedding_type");
    if (pos && strcmp(pos, "absolute") != 0)
        return bct_fail(err, BCT_EUNSUPPORTED,
                        "config.json: position_embedding_type \"%s\" is not supported (only absolute)",
                        pos);
    return BCT_OK;
}

/* key: "hidden_act", or DistilBERT's "activation". */
static int parse_act(const cJSON *root, const char *key, bert_act *act, bct_error *err) {
    const char *s = get_str(root, key);
    if (!s || strcmp(s, "gelu") == 0) *act = BERT_ACT_GELU;
    else if (strcmp(s, "gelu_new") == 0 || strcmp(s, "gelu_pytorch_tanh") == 0)
        *act = BERT_ACT_GELU_TANH;
    else if (strcmp(s, "relu") == 0) *act = BERT_ACT_RELU;
    else
        return bct_fail(err, BCT_EUNSUPPORTED,
                        "config.json: %s \"%s\" is not supported "
                        "(gelu, gelu_new, gelu_pytorch_tanh, relu)", key, s);
    return BCT_OK;
}

/* id2label {"0": "neg", "1": "pos"} -> labels[] in id order; keys must be
 * exactly 0..n-1.  Without id2label, num_labels (default 2) LABEL_i names. */
static int parse_labels(const cJSON *root, bert_config *cfg, bct_error *err) {
    const cJSON *map = cJSON_GetObjectItemCaseSensitive(root, "id2label");
    int n = 0;
    int rc;
    if (map && !cJSON_IsNull(map)) {
        if (!cJSON_IsObject(map))
            return bct_fail(err, BCT_EFORMAT, "config.json: \"id2label\" must be an object");
        n = cJSON_GetArraySize(map);
        if (n < 1 || n > 4096)
            return bct_fail(err, BCT_EFORMAT, "config.json: id2label has %d entries (1..4096)", n);
    } else if ((rc = get_int(root, "num_labels", 2, 1, 4096, &n, err)) != BCT_OK) {
        return rc;
    }
    cfg->labels = calloc((size_t)n, sizeof(char *));
    if (!cfg->labels) return bct_fail(err, BCT_ENOMEM, "out of memory");
    cfg->num_labels = n;
    if (!map || cJSON_IsNull(map)) {
        for (int i = 0; i < n; i++) {
            char name[32];
            snprintf(name, sizeof(name), "LABEL_%d", i);
            if (!(cfg->labels[i] = strdup(name))) return bct_fail(err, BCT_ENOMEM, "out of memory");
        }
        return BCT_OK;
    }
    const cJSON *it;
    cJSON_ArrayForEach(it, map) {
        char *end;
        errno = 0;
        long id = strtol(it->string, &end, 10);
        if (errno || end == it->string || *end || id < 0 || id >= n)
            return bct_fail(err, BCT_EFORMAT,
                            "config.json: id2label key \"%s\" is not an id in 0..%d", it->string,
                            n - 1);
        if (!cJSON_IsString(it) || !it->valuestring[0])
            return bct_fail(err, BCT_EFORMAT, "config.json: id2label[%ld] must be a non-empty string",
                            id);
        if (cfg->labels[id])
            return bct_fail(err, BCT_EFORMAT, "config.json: id2label has id %ld twice", id);
        if (!(cfg->labels[id] = strdup(it->valuestring)))
            return bct_fail(err, BCT_ENOMEM, "out of memory");
    }
    return BCT_OK;
}

static int parse_problem(const cJSON *root, bert_config *cfg, bct_error *err) {
    const char *p = get_str(root, "problem_type");
    cfg->problem = BERT_SINGLE_LABEL;
    if (p && strcmp(p, "multi_label_classification") == 0) cfg->problem = BERT_MULTI_LABEL;
    else if (p && strcmp(p, "regression") == 0) cfg->problem = BERT_REGRESSION;
    else if (p && strcmp(p, "single_label_classification") != 0)
        return bct_fail(err, BCT_EUNSUPPORTED, "config.json: problem_type \"%s\" is not supported", p);
    /* Hugging Face treats an unset problem_type with one label as regression. */
    if (!p && cfg->num_labels == 1) cfg->problem = BERT_REGRESSION;
    return BCT_OK;
}

/* cJSON keeps duplicate keys and returns the first, Python's json the last:
 * a config with duplicates means different things to different readers. */
static int check_duplicates(const cJSON *obj, bct_error *err) {
    int oom;
    const char *dup = json_duplicate_key(obj, &oom);
    if (oom) return bct_fail(err, BCT_ENOMEM, "config.json: out of memory");
    if (dup) return bct_fail(err, BCT_EFORMAT, "config.json: field \"%s\" appears twice", dup);
    return BCT_OK;
}

static int parse_root(const cJSON *root, bert_config *cfg, bct_error *err) {
    int rc;
    if (!cJSON_IsObject(root)) return bct_fail(err, BCT_EFORMAT, "config.json: not a JSON object");
    if ((rc = check_duplicates(root, err)) != BCT_OK) return rc;
    if ((rc = parse_arch(root, &cfg->arch, err)) != BCT_OK) return rc;
    int distil = cfg->arch == BERT_ARCH_DISTILBERT, max_pos_rows;
    if ((rc = get_int(root, "vocab_size", -1, 1, 10000000, &cfg->vocab_size, err)) ||
        (rc = get_int(root, distil ? "dim" : "hidden_size", -1, 1, 65536, &cfg->hidden, err)) ||
        (rc = get_int(root, distil ? "n_layers" : "num_hidden_layers", -1, 1, 256, &cfg->layers, err)) ||
        (rc = get_int(root, distil ? "n_heads" : "num_attention_heads", -1, 1, 1024, &cfg->heads, err)) ||
        (rc = get_int(root, distil ? "hidden_dim" : "intermediate_size", -1, 1, 262144, &cfg->intermediate,
                      err)) ||
        (rc = get_int(root, "max_position_embeddings", 512, 2, 1 << 20, &max_pos_rows, err)) ||
        (rc = get_int(root, "pad_token_id", archs[cfg->arch].pad_default, 0, 10000000, &cfg->pad_id, err)))
        return rc;
    if (cfg->hidden % cfg->heads != 0)
        return bct_fail(err, BCT_EFORMAT,
                        "config.json: %s %d is not divisible by %s %d", distil ? "dim" : "hidden_size",
                        cfg->hidden, distil ? "n_heads" : "num_attention_heads", cfg->heads);
    if ((rc = parse_act(root, distil ? "activation" : "hidden_act", &cfg->act, err)) != BCT_OK) return rc;
    cfg->emb_size = cfg->hidden;
    if (cfg->arch == BERT_ARCH_ELECTRA &&
        (rc = get_int(root, "embedding_size", 128, 1, 65536, &cfg->emb_size, err)))
        return rc;
    /* Projected embeddings are at most as wide as the hidden state (ELECTRA
     * small: 128 -> 256), so they fit the forward pass's hidden-sized scratch. */
    if (cfg->emb_size > cfg->hidden)
        return bct_fail(err, BCT_EUNSUPPORTED, "config.json: embedding_size %d > hidden_size %d is not supported",
                        cfg->emb_size, cfg->hidden);
    if (distil) {
        /* No token types; DistilBERT's LayerNorm eps is fixed, not configured. */
        cfg->type_vocab = 0;
        const cJSON *sin = cJSON_GetObjectItemCaseSensitive(root, "sinusoidal_pos_embds");
        if (sin && !cJSON_IsNull(sin) && !cJSON_IsBool(sin))
            return bct_fail(err, BCT_EFORMAT, "config.json: \"sinusoidal_pos_embds\" must be true or false");
        cfg->sinusoidal = cJSON_IsTrue(sin);
    } else if ((rc = get_int(root, "type_vocab_size", 2, 1, 1024, &cfg->type_vocab, err))) {
        return rc;
    }
    if (cfg->arch == BERT_ARCH_ROBERTA || cfg->arch == BERT_ARCH_XLM_ROBERTA) {
        cfg->pos_offset = cfg->pad_id + 1;
        if (cfg->pad_id >= cfg->vocab_size || max_pos_rows < cfg->pos_offset + 2)
            return bct_fail(err, BCT_EFORMAT,
                            "config.json: max_position_embeddings %d leaves no room for positions "
                            "after pad_token_id %d (or pad_token_id >= vocab_size)",
                            max_pos_rows, cfg->pad_id);
    }
    cfg->max_pos = max_pos_rows - cfg->pos_offset;

    const cJSON *eps = cJSON_GetObjectItemCaseSensitive(root, "layer_norm_eps");
    cfg->ln_eps = 1e-12f;
    if (!distil && eps && !cJSON_IsNull(eps)) {
        if (!cJSON_IsNumber(eps) || !(eps->valuedouble > 0) || eps->valuedouble > 1)
            return bct_fail(err, BCT_EFORMAT, "config.json: layer_norm_eps must be in (0, 1]");
        cfg->ln_eps = (float)eps->valuedouble;
    }
    const cJSON *lower = cJSON_GetObjectItemCaseSensitive(root, "do_lower_case");
    cfg->lowercase = lower && cJSON_IsBool(lower) ? cJSON_IsTrue(lower) : 1;
    if ((rc = parse_labels(root, cfg, err)) != BCT_OK) return rc;
    return parse_problem(root, cfg, err);
}

int bert_config_parse(const char *json, size_t len, bert_config *cfg, bct_error *err) {
    memset(cfg, 0, sizeof(*cfg));
    if (len > BERT_CONFIG_MAX_BYTES)
        return bct_fail(err, BCT_EFORMAT,
                        "config.json: %zu bytes, more than the limit of %d (BERT_CONFIG_MAX_BYTES)", len,
                        BERT_CONFIG_MAX_BYTES);
    cJSON *root = cJSON_ParseWithLength(json, len);
    if (!root) return bct_fail(err, BCT_EFORMAT, "config.json: not valid JSON");
    int rc = parse_root(root, cfg, err);
    cJSON_Delete(root);
    if (rc != BCT_OK) bert_config_free(cfg);
    return rc;
}

int bert_config_load(const char *path, bert_config *cfg, bct_error *err) {
    memset(cfg, 0, sizeof(*cfg));
    FILE *f = fopen(path, "rb");
    if (!f) return bct_fail(err, BCT_EIO, "%s: %s", path, strerror(errno));
    char *buf = malloc(BERT_CONFIG_MAX_BYTES + 1);
    size_t n = buf ? fread(buf, 1, BERT_CONFIG_MAX_BYTES + 1, f) : 0;
    int rd_err = ferror(f);
    fclose(f);
    if (!buf) return bct_fail(err, BCT_ENOMEM, "out of memory");
    if (rd_err) {
        free(buf);
        return bct_fail(err, BCT_EIO, "%s: read error", path);
    }
    int rc = bert_config_parse(buf, n, cfg, err);
    free(buf);
    return rc;
}

void bert_config_free(bert_config *cfg) {
    if (cfg->labels)
        for (int i = 0; i < cfg->num_labels; i++) free(cfg->labels[i]);
    free(cfg->labels);
    free(cfg->layer_heads);
    free(cfg->layer_inter);
    cfg->labels = NULL;
    cfg->layer_heads = cfg->layer_inter = NULL;
    cfg->num_labels = 0;
}

int bert_config_layer_heads(const bert_config *cfg, int l) {
    return cfg->layer_heads ? cfg->layer_heads[l] : cfg->heads;
}

int bert_config_layer_inter(const bert_config *cfg, int l) {
    return cfg->layer_inter ? cfg->layer_inter[l] : cfg->intermediate;
}

const char *bert_act_name(bert_act act) {
    switch (act) {
    case BERT_ACT_GELU: return "gelu";
    case BERT_ACT_GELU_TANH: return "gelu_new";
    case BERT_ACT_RELU: return "relu";
    }
    return "?";
}

int bert_config_label_id(const bert_config *cfg, const char *name) {
    for (int i = 0; i < cfg->num_labels; i++)
        if (strcmp(cfg->labels[i], name) == 0) return i;
    return -1;
}

cJSON *bert_config_to_json(const bert_config *cfg) {
    static const char *const problems[] = {"single_label_classification",
                                           "multi_label_classification", "regression"};
    int distil = cfg->arch == BERT_ARCH_DISTILBERT;
    cJSON *o = cJSON_CreateObject(), *arch = cJSON_AddArrayToObject(o, "architectures");
    cJSON_AddItemToArray(arch, cJSON_CreateString(archs[cfg->arch].name));
    cJSON_AddStringToObject(o, "model_type", archs[cfg->arch].model_type);
    cJSON_AddNumberToObject(o, "vocab_size", cfg->vocab_size);
    cJSON_AddNumberToObject(o, distil ? "dim" : "hidden_size", cfg->hidden);
    cJSON_AddNumberToObject(o, distil ? "n_layers" : "num_hidden_layers", cfg->layers);
    cJSON_AddNumberToObject(o, distil ? "n_heads" : "num_attention_heads", cfg->heads);
    cJSON_AddNumberToObject(o, distil ? "hidden_dim" : "intermediate_size", cfg->intermediate);
    cJSON_AddNumberToObject(o, "max_position_embeddings", cfg->max_pos + cfg->pos_offset);
    cJSON_AddNumberToObject(o, "pad_token_id", cfg->pad_id);
    cJSON_AddStringToObject(o, distil ? "activation" : "hidden_act", bert_act_name(cfg->act));
    int fields = 14; /* the 10 above, do_lower_case, problem_type, id2label, and one of the next */
    if (distil) {
        cJSON_AddBoolToObject(o, "sinusoidal_pos_embds", cfg->sinusoidal);
    } else {
        cJSON_AddNumberToObject(o, "type_vocab_size", cfg->type_vocab);
        cJSON_AddNumberToObject(o, "layer_norm_eps", cfg->ln_eps);
        fields++;
    }
    if (cfg->arch == BERT_ARCH_ELECTRA) {
        cJSON_AddNumberToObject(o, "embedding_size", cfg->emb_size);
        fields++;
    }
    cJSON_AddBoolToObject(o, "do_lower_case", cfg->lowercase);
    cJSON_AddStringToObject(o, "problem_type", problems[cfg->problem]);
    cJSON *labels = cJSON_AddObjectToObject(o, "id2label");
    for (int i = 0; i < cfg->num_labels; i++) {
        char key[16];
        snprintf(key, sizeof(key), "%d", i);
        cJSON_AddStringToObject(labels, key, cfg->labels[i]);
    }
    /* cJSON returns NULL from every Add on allocation failure; check the
     * last one and the object's completeness in one go. */
    if (cJSON_GetArraySize(labels) != cfg->num_labels || cJSON_GetArraySize(o) != fields) {
        cJSON_Delete(o);
        return NULL;
    }
    return o;
}
