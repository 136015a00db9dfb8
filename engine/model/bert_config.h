/* bert_config.h - the parts of a Hugging Face config.json that define a
 * BERT-family sequence classifier.
 *
 * bert_config_parse() accepts the *ForSequenceClassification configs of
 * BERT, DistilBERT, RoBERTa, XLM-RoBERTa and ELECTRA, told apart by
 * "architectures"[0] or, without it, by "model_type" (both, when present,
 * must agree); anything else is BCT_EUNSUPPORTED naming what was found.
 * DistilBERT's own keys (dim, n_layers, n_heads, hidden_dim, activation,
 * sinusoidal_pos_embds) are read into the same fields as BERT's.  Every
 * size is checked for range and consistency (hidden_size divisible by
 * num_attention_heads, ...).
 */
#ifndef BCT_BERT_CONFIG_H
#define BCT_BERT_CONFIG_H

#include <stddef.h>

#include "util/status.h"

typedef enum bert_act {
    BERT_ACT_GELU,      /* exact: 0.5 x (1 + erf(x / sqrt 2)) ("gelu") */
    BERT_ACT_GELU_TANH, /* tanh approximation ("gelu_new", "gelu_pytorch_tanh") */
    BERT_ACT_RELU,
} bert_act;

typedef enum bert_problem {
    BERT_SINGLE_LABEL, /* softmax over labels (default) */
    BERT_MULTI_LABEL,  /* independent sigmoid per label */
    BERT_REGRESSION,   /* one raw score */
} bert_problem;

/* Which network a config describes: tensor names, embeddings and head. */
typedef enum bert_arch {
    BERT_ARCH_BERT,        /* BertForSequenceClassification: pooler (tanh) + classifier */
    BERT_ARCH_DISTILBERT,  /* no token types; pre_classifier + ReLU head */
    BERT_ARCH_ROBERTA,     /* positions from padding_idx + 1; dense + tanh + out_proj head */
    BERT_ARCH_XLM_ROBERTA, /* RoBERTa's network under its own name */
    BERT_ARCH_ELECTRA,     /* embedding_size + embeddings_project; dense + GELU + out_proj head */
} bert_arch;
#define BERT_ARCH_COUNT 5

/* What the head applies between its dense layer and the classifier. */
typedef enum bert_head_act {
    BERT_HEAD_TANH, /* BERT pooler, RoBERTa classifier.dense */
    BERT_HEAD_RELU, /* DistilBERT pre_classifier */
    BERT_HEAD_GELU, /* ELECTRA classifier.dense (exact erf GELU) */
} bert_head_act;

typedef struct bert_config {
    bert_arch arch;
    int vocab_size;
    int hidden;       /* hidden_size (DistilBERT: dim) */
    int layers;       /* num_hidden_layers (n_layers) */
    int heads;        /* num_attention_heads (n_heads) */
    int intermediate; /* intermediate_size (hidden_dim) */
    int emb_size;     /* width of the embedding tables: embedding_size (ELECTRA), else hidden */
    /* Longest sequence in tokens: max_position_embeddings less pos_offset.
     * The position table has max_pos + pos_offset rows. */
    int max_pos;
    /* RoBERTa / XLM-R: pad_token_id + 1.  Token t of a sequence takes
     * position row pos_offset + (non-pad tokens before t), a pad token row
     * pad_id.  0 elsewhere: token t takes row t. */
    int pos_offset;
    int pad_id;       /* pad_token_id */
    int type_vocab;   /* type_vocab_size; 0: no token-type table (DistilBERT); <= 1: type ids ignored */
    int sinusoidal;   /* DistilBERT sinusoidal_pos_embds: fixed table, computed if absent */
    bert_act act;
    float ln_eps;
    int lowercase;    /* do_lower_case (default 1: uncased) */
    bert_problem problem;
    int num_labels;
    char **labels;    /* num_labels names in id order (id2label) */
    /* Structured pruning (a .bct's "pruning", quantizer/prune.h): attention
     * heads and FFN width of each layer (0 allowed: that sub-block adds its
     * output bias only), or NULL: every layer has `heads` / `intermediate`.
     * A head keeps its width hidden / heads.  Owned (bert_config_free). */
    int *layer_heads, *layer_inter;
} bert_config;

/* "BertForSequenceClassification", ... */
const char *bert_arch_name(bert_arch arch);
/* Base-model prefix of the tensor names ("bert", "distilbert", "roberta",
 * "electra"), which checkpoints may omit. */
const char *bert_arch_prefix(bert_arch arch);
bert_head_act bert_arch_head_act(bert_arch arch);

/* The largest config.json read (real ones are < 2 KB): bounds the cJSON
 * tree built from it. */
#define BERT_CONFIG_MAX_BYTES (1 << 20)

int bert_config_parse(const char *json, size_t len, bert_config *cfg, bct_error *err);
int bert_config_load(const char *path, bert_config *cfg, bct_error *err);
void bert_config_free(bert_config *cfg);

/* The config as Hugging Face config.json fields (what bert_config_parse
 * reads back); NULL when out of memory.  Caller frees with cJSON_Delete. */
struct cJSON *bert_config_to_json(const bert_config *cfg);

/* Attention heads and FFN width of layer l (see layer_heads). */
int bert_config_layer_heads(const bert_config *cfg, int l);
int bert_config_layer_inter(const bert_config *cfg, int l);

const char *bert_act_name(bert_act act);
/* Index of the label named `name`, or -1. */
int bert_config_label_id(const bert_config *cfg, const char *name);

#endif
