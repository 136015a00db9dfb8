/* bert_config.h - the parts of a Hugging Face config.json that define a BERT
 * sequence classifier.
 *
 * bert_config_parse() accepts BertForSequenceClassification configs (and
 * configs with no "architectures" but model_type "bert"); anything else is
 * BCT_EUNSUPPORTED naming what was found.  Every size is checked for range
 * and consistency (hidden_size divisible by num_attention_heads, ...).
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

typedef struct bert_config {
    int vocab_size;
    int hidden;       /* hidden_size */
    int layers;       /* num_hidden_layers */
    int heads;        /* num_attention_heads */
    int intermediate; /* intermediate_size */
    int max_pos;      /* max_position_embeddings */
    int type_vocab;   /* type_vocab_size */
    bert_act act;
    float ln_eps;
    int lowercase;    /* do_lower_case (default 1: uncased) */
    bert_problem problem;
    int num_labels;
    char **labels;    /* num_labels names in id order (id2label) */
} bert_config;

int bert_config_parse(const char *json, size_t len, bert_config *cfg, bct_error *err);
int bert_config_load(const char *path, bert_config *cfg, bct_error *err);
void bert_config_free(bert_config *cfg);

/* The config as Hugging Face config.json fields (what bert_config_parse
 * reads back); NULL when out of memory.  Caller frees with cJSON_Delete. */
struct cJSON *bert_config_to_json(const bert_config *cfg);

const char *bert_act_name(bert_act act);
/* Index of the label named `name`, or -1. */
int bert_config_label_id(const bert_config *cfg, const char *name);

#endif
