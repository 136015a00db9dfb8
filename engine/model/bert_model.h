/* bert_model.h - a BERT-family sequence classifier's weights, bound by
 * name and checked against its config.
 *
 * One struct serves every architecture of bert_config.h: the encoder
 * layers are BERT's (post-LayerNorm), and the architectures differ in
 * their tensor names (bert_slots), their embeddings (token types or not,
 * RoBERTa's position offset, ELECTRA's projection) and their head (a
 * dense layer on the first token, an activation, the classifier).
 *
 * bert_model_load_hf() reads a Hugging Face checkpoint directory
 * (config.json, vocab.txt, model.safetensors).  Tensor names may carry the
 * base-model prefix ("bert.", "distilbert.", "roberta.", "electra.") or
 * not, and LayerNorm parameters may be called weight/bias or gamma/beta.
 * DistilBERT's sinusoidal position table is computed when the checkpoint
 * leaves it out.  Every tensor the forward pass needs must be
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
#include "kernels/qmat.h"
#include "util/status.h"
#include "tokenizer/tokenizer.h"
#include "tokenizer/vocab.h"

/* y = x W^T + b with W stored [out][in] row-major, as PyTorch's Linear.
 * Exactly one of w (fp32) and q (blockwise quantized) is set. */
typedef struct bert_linear {
    const float *w;
    const qmat *q;
    const float *b;
    /* Optional per-input-channel factor (SmoothQuant-style): int8 inputs
     * are quantized from x * act_scale, and the stored weights are
     * W diag(1 / act_scale), so outlier channels stop setting the scale of
     * their activation blocks.  NULL when the file has none. */
    const float *act_scale;
    int out, in;
} bert_linear;

/* An embedding table [rows][hidden]: fp32 or blockwise quantized. */
typedef struct bert_table {
    const float *f;
    const qmat *q;
} bert_table;

/* How a quantized model runs; each switch can be measured on its own. */
typedef struct bert_mode {
    int act_int8;      /* matmul inputs (incl. Q, K, V, P in attention) as int8 blocks */
    int int_gelu;      /* I-BERT integer GELU */
    int int_softmax;   /* integer softmax (i-exp) */
    int int_layernorm; /* integer LayerNorm (integer mean, variance, sqrt) */
    int nl_bits;       /* bits of the blockwise codes fed to integer non-linear ops */
} bert_mode;

/* A bert_mode whose every field says "as the file says". */
#define BERT_MODE_KEEP ((bert_mode){-1, -1, -1, -1, 0})
/* Applies the set fields of `over` to m. */
void bert_mode_apply(bert_mode *m, const bert_mode *over);

typedef struct bert_norm {
    const float *gamma;
    const float *beta;
    struct iop_ln_params *ints; /* fixed-point γ/β for integer LayerNorm, or NULL */
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

    bert_mode mode;
    bert_table word_emb; /* [vocab_size][emb_size] */
    bert_table pos_emb;  /* [max_pos + pos_offset][emb_size] */
    bert_table type_emb; /* [type_vocab][emb_size]; unset when type_vocab is 0 */
    bert_norm emb_norm;  /* over emb_size */
    bert_linear emb_proj; /* emb_size -> hidden (ELECTRA); unset when they are equal */
    bert_layer *layer;     /* cfg.layers entries */
    /* Head on the first token: head_dense, then bert_arch_head_act(), then
     * classifier.  BERT: pooler.dense / classifier; DistilBERT:
     * pre_classifier / classifier; RoBERTa, ELECTRA: classifier.dense /
     * classifier.out_proj. */
    bert_linear head_dense;
    bert_linear classifier;

    vocab *vocab;
    tokenizer *tok;
    struct bert_storage *storage; /* mapping and converted buffers */
};

#define BERT_DEFAULT_MAX_LEN 128

/* Every tensor of the model, in canonical (Hugging Face) naming and order:
 * what the checkpoint loader, the .bct loader and the compressor iterate. */
typedef enum bert_role {
    BERT_ROLE_TABLE,  /* embedding table [rows][hidden] */
    BERT_ROLE_WEIGHT, /* Linear weight [out][in] */
    BERT_ROLE_PARAM,  /* bias or LayerNorm vector [rows] */
} bert_role;

typedef struct bert_slot {
    char name[96]; /* e.g. "bert.encoder.layer.0.attention.self.query.weight" */
    int rows, cols; /* cols == 0 for vectors */
    bert_role role;
    int sinusoid;   /* a fixed sinusoidal table a checkpoint may leave out (DistilBERT) */
    const float **f; /* where the fp32 data pointer goes */
    const qmat **q;  /* where a quantized matrix goes (NULL for vectors) */
    const float **act_scale; /* Linear weights: where the input factor goes; else NULL */
} bert_slot;

int bert_slot_count(const bert_config *cfg);
/* DistilBERT's fixed position table: row p, column j holds sin (j even)
 * or cos (j odd) of p / 10000^(2 floor(j/2) / cols), computed in double. */
void bert_sinusoid_table(float *out, int rows, int cols);
/* Fills slots[bert_slot_count(&m->cfg)] for m (m->layer must be allocated). */
void bert_slots(bert_model *m, bert_slot *slots);

/* Loads a Hugging Face checkpoint directory, or a compressed .bct file. */
int bert_model_load(const char *path, bert_model **out, bct_error *err);
int bert_model_load_hf(const char *dir, bert_model **out, bct_error *err);
/* The weights file bert_model_load_hf reads in dir: model.safetensors, or
 * pytorch_model.bin (torch_bin.h) when only that one exists. */
const char *bert_hf_weights_file(const char *dir);
/* The tokenizer files bert_model_load_hf reads in dir, by preference:
 * vocab.txt (WordPiece), tokenizer.json, or vocab.json + merges.txt
 * (files[1], else NULL).  BCT_EIO when there is none. */
int bert_hf_tokenizer_files(const char *dir, const char *files[2]);
int bert_model_load_bct(const char *path, bert_model **out, bct_error *err);
/* As bert_model_load, but fields of `mode` that are >= 0 (nl_bits: > 0)
 * override what the file says, to measure each approximation alone.
 * int8 activations need a .bct. */
int bert_model_load_mode(const char *path, const bert_mode *mode, bert_model **out, bct_error *err);
int bert_model_load_bct_mode(const char *path, const bert_mode *mode, bert_model **out,
                             bct_error *err);
void bert_model_free(bert_model *m);

/* Sets the truncation length (2 .. max_position_embeddings). */
int bert_model_set_max_len(bert_model *m, int max_len, bct_error *err);

/* Tokenizes a (and b, or NULL) with the model's tokenizer and max_len. */
int bert_model_encode(const bert_model *m, const char *a, size_t alen, const char *b, size_t blen,
                      tok_encoding *enc, bct_error *err);

/* Turns one row of logits into scores: softmax for single-label models,
 * sigmoid for multi-label, identity for regression. */
void bert_scores(const bert_config *cfg, const float *logits, float *scores);

typedef struct bert_label_score {
    int id;
    float score;
} bert_label_score;

/* Every label with its score (or its logit when raw), highest first, ties
 * by label id; out has cfg->num_labels entries. */
void bert_rank_labels(const bert_config *cfg, const float *logits, int raw, bert_label_score *out);

#endif
