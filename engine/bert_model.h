/* bert_model.h - a BERT sequence classifier's weights, bound by name and
 * checked against its config.
 *
 * bert_model_load_hf() reads a Hugging Face checkpoint directory
 * (config.json, vocab.txt, model.safetensors).  Tensor names may carry the
 * "bert." prefix or not, and LayerNorm parameters may be called
 * weight/bias or gamma/beta.  Every tensor the forward pass needs must be
 * present with the shape the config implies; a missing or misshaped tensor
 * is an error naming it.  F32 tensors are used in place from the mapping
 * when aligned; F16/BF16 (or unaligned F32) are converted to fp32 once.
 *
 * A loaded model is immutable: any number of threads may run it at once,
 * each with its own bert_ws (see bert_forward.h).
 */
#ifndef BCT_BERT_MODEL_H
#define BCT_BERT_MODEL_H

#include "bert_config.h"
#include "status.h"
#include "tokenizer.h"
#include "vocab.h"

/* y = x W^T + b with W stored [out][in] row-major, as PyTorch's Linear. */
typedef struct bert_linear {
    const float *w;
    const float *b;
    int out, in;
} bert_linear;

typedef struct bert_norm {
    const float *gamma;
    const float *beta;
} bert_norm;

typedef struct bert_layer {
    bert_linear query, key, value, attn_out;
    bert_norm attn_norm;
    bert_linear ffn_in, ffn_out;
    bert_norm ffn_norm;
} bert_layer;

typedef struct bert_model bert_model;

struct bert_model {
    bert_config cfg;
    int max_len; /* tokens per sequence incl. specials; default min(128, max_pos) */
    char format[32];        /* "fp32" for checkpoints; the preset for .bct files */
    long long file_bytes;   /* bytes on disk of what was loaded */
    long long source_bytes; /* bytes of the fp32 checkpoint it came from */

    const float *word_emb; /* [vocab_size][hidden] */
    const float *pos_emb;  /* [max_pos][hidden] */
    const float *type_emb; /* [type_vocab][hidden] */
    bert_norm emb_norm;
    bert_layer *layer;     /* cfg.layers entries */
    bert_linear pooler;
    bert_linear classifier;

    vocab *vocab;
    tokenizer *tok;
    struct bert_storage *storage; /* mapping and converted buffers */
};

#define BERT_DEFAULT_MAX_LEN 128

/* Loads a Hugging Face checkpoint directory, or a compressed .bct file. */
int bert_model_load(const char *path, bert_model **out, bct_error *err);
int bert_model_load_hf(const char *dir, bert_model **out, bct_error *err);
void bert_model_free(bert_model *m);

/* Sets the truncation length (2 .. max_position_embeddings). */
int bert_model_set_max_len(bert_model *m, int max_len, bct_error *err);

/* Tokenizes a (and b, or NULL) with the model's tokenizer and max_len. */
int bert_model_encode(const bert_model *m, const char *a, size_t alen, const char *b, size_t blen,
                      tok_encoding *enc, bct_error *err);

/* Turns one row of logits into scores: softmax for single-label models,
 * sigmoid for multi-label, identity for regression. */
void bert_scores(const bert_config *cfg, const float *logits, float *scores);

#endif
