/* bert_model_priv.h - what the model loaders (load_hf.c, load_bct.c) share
 * with bert_model.c; not for other modules.  bert_model.c knows no file
 * format: a loader that maps a file leaves a release hook in the storage. */
#ifndef BCT_BERT_MODEL_PRIV_H
#define BCT_BERT_MODEL_PRIV_H

#include "bert_model.h"

struct st_file;
struct bctf_file;

/* What the model owns besides the bert_model struct itself. */
struct bert_storage {
    struct st_file *st;   /* checkpoint mapping, or NULL */
    struct bctf_file *bf; /* .bct mapping, or NULL */
    /* Closes st / bf: set by the loader that opened them. */
    void (*release)(struct bert_storage *s);
    void **owned;         /* malloc'd buffers (converted tensors, scales) */
    int n_owned, cap_owned;
    qmat **qmats;         /* quantized matrices (their codes may be owned) */
    int n_qmats, cap_qmats;
};

/* Allocates an empty model (storage and nothing else). */
bert_model *bert_model_alloc(void);
/* Allocates m->layer for m->cfg and sets max_len; call after cfg is set. */
int bert_model_init_layers(bert_model *m, bct_error *err);
/* Loads vocab.txt contents and builds the tokenizer. */
int bert_model_init_tokenizer(bert_model *m, const char *vocab_text, size_t len, bct_error *err);
/* Builds the tokenizer from a tokenizer.json document (its own normalizer
 * decides casing: config.json's do_lower_case is not applied on top), or
 * from vocab.json + merges.txt (mlen may be 0 with merges NULL only when
 * vocab_json is a tokenizer.json: pass is_json 1). */
int bert_model_init_tokenizer_json(bert_model *m, const char *json, size_t len, const char *merges, size_t mlen,
                                   int is_json, bct_error *err);

/* Keeps buf (freed with the model).  Returns BCT_OK or BCT_ENOMEM (then
 * buf is freed too). */
int bert_storage_keep(struct bert_storage *s, void *buf);
/* A new zeroed qmat owned by the model, or NULL. */
qmat *bert_storage_qmat(struct bert_storage *s);
void *bert_alloc64(size_t bytes);

/* Prepares integer LayerNorm parameters for every norm (mode.int_layernorm). */
int bert_model_init_int_norms(bert_model *m, bct_error *err);


#endif
