#include "bert_model.h"

#include <errno.h>
#include <stdarg.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "bert_model_priv.h"
#include "kernels/intops.h"

void *bert_alloc64(size_t bytes) {
    void *p = NULL;
    return posix_memalign(&p, 64, bytes ? bytes : 1) == 0 ? p : NULL;
}

int bert_storage_keep(struct bert_storage *s, void *buf) {
    if (s->n_owned == s->cap_owned) {
        int cap = s->cap_owned ? s->cap_owned * 2 : 64;
        void **p = realloc(s->owned, (size_t)cap * sizeof(*p));
        if (!p) {
            free(buf);
            return BCT_ENOMEM;
        }
        s->owned = p;
        s->cap_owned = cap;
    }
    s->owned[s->n_owned++] = buf;
    return BCT_OK;
}

qmat *bert_storage_qmat(struct bert_storage *s) {
    if (s->n_qmats == s->cap_qmats) {
        int cap = s->cap_qmats ? s->cap_qmats * 2 : 64;
        qmat **p = realloc(s->qmats, (size_t)cap * sizeof(*p));
        if (!p) return NULL;
        s->qmats = p;
        s->cap_qmats = cap;
    }
    qmat *q = calloc(1, sizeof(qmat));
    if (q) s->qmats[s->n_qmats++] = q;
    return q;
}

bert_model *bert_model_alloc(void) {
    bert_model *m = calloc(1, sizeof(*m));
    if (m && !(m->storage = calloc(1, sizeof(*m->storage)))) {
        free(m);
        return NULL;
    }
    return m;
}

int bert_model_init_layers(bert_model *m, bct_error *err) {
    m->max_len = m->cfg.max_pos < BERT_DEFAULT_MAX_LEN ? m->cfg.max_pos : BERT_DEFAULT_MAX_LEN;
    m->mode.nl_bits = 16;
    if (!(m->layer = calloc((size_t)m->cfg.layers, sizeof(bert_layer))))
        return bct_fail(err, BCT_ENOMEM, "out of memory");
    return BCT_OK;
}

int bert_model_init_tokenizer(bert_model *m, const char *vocab_text, size_t len, bct_error *err) {
    int rc = vocab_parse(vocab_text, len, &m->vocab, err);
    if (rc != BCT_OK) return bct_fail_prefix(err, rc, "vocab.txt");
    if (vocab_size(m->vocab) > m->cfg.vocab_size)
        return bct_fail(err, BCT_EFORMAT, "vocab.txt has %d tokens but config.json vocab_size is %d",
                        vocab_size(m->vocab), m->cfg.vocab_size);
    tok_options opt = {.lowercase = m->cfg.lowercase, .max_word_chars = 100};
    return tok_create(m->vocab, &opt, &m->tok, err);
}

int bert_model_init_tokenizer_json(bert_model *m, const char *json, size_t len, const char *merges, size_t mlen,
                                   int is_json, bct_error *err) {
    int rc = is_json ? tok_create_from_json(json, len, &m->tok, err)
                     : tok_create_from_bpe(json, len, merges, mlen, &m->tok, err);
    if (rc != BCT_OK) return rc;
    if (tok_id_count(m->tok) > m->cfg.vocab_size)
        return bct_fail(err, BCT_EFORMAT, "%s produces ids up to %d but config.json vocab_size is %d",
                        is_json ? "tokenizer.json" : "vocab.json", tok_id_count(m->tok) - 1, m->cfg.vocab_size);
    return BCT_OK;
}

/* Slots of the embeddings: word, position, token-type tables (as the
 * architecture has them), their LayerNorm, ELECTRA's projection. */
static int embedding_slots(const bert_config *c) {
    return 4 + (c->type_vocab > 0) + 2 * (c->emb_size != c->hidden);
}

/* A pruned-away sub-block keeps only its output bias and LayerNorm: no
 * heads drops Q, K, V and the attention output weight (7 slots), no FFN
 * neurons the FFN input Linear and output weight (3). */
int bert_slot_count(const bert_config *cfg) {
    int n = embedding_slots(cfg) + 16 * cfg->layers + 4;
    for (int l = 0; l < cfg->layers; l++)
        n -= 7 * (bert_config_layer_heads(cfg, l) == 0) + 3 * (bert_config_layer_inter(cfg, l) == 0);
    return n;
}

void bert_sinusoid_table(float *out, int rows, int cols) {
    for (int p = 0; p < rows; p++)
        for (int j = 0; j < cols; j++) {
            double a = p / pow(10000.0, 2.0 * (j / 2) / cols);
            out[(size_t)p * cols + j] = (float)(j % 2 ? cos(a) : sin(a));
        }
}

static bert_slot *add_slot(bert_slot *s, bert_role role, int rows, int cols, const float **f,
                           const qmat **q, const char *fmt, ...) __attribute__((format(printf, 7, 8)));

static bert_slot *add_slot(bert_slot *s, bert_role role, int rows, int cols, const float **f,
                           const qmat **q, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(s->name, sizeof(s->name), fmt, ap);
    va_end(ap);
    s->role = role;
    s->rows = rows;
    s->cols = cols;
    s->sinusoid = 0;
    s->f = f;
    s->q = q;
    s->act_scale = NULL;
    return s + 1;
}

static bert_slot *linear_slots(bert_slot *s, bert_linear *l, int out, int in, const char *prefix) {
    l->out = out;
    l->in = in;
    s = add_slot(s, BERT_ROLE_WEIGHT, out, in, &l->w, &l->q, "%s.weight", prefix);
    s[-1].act_scale = &l->act_scale;
    return add_slot(s, BERT_ROLE_PARAM, out, 0, &l->b, NULL, "%s.bias", prefix);
}

/* A Linear of no inputs (every head or neuron pruned): its bias alone. */
static bert_slot *bias_slot(bert_slot *s, bert_linear *l, int out, const char *prefix) {
    l->out = out;
    l->in = 0;
    return add_slot(s, BERT_ROLE_PARAM, out, 0, &l->b, NULL, "%s.bias", prefix);
}

/* name: the LayerNorm module, e.g. "bert.embeddings.LayerNorm". */
static bert_slot *norm_slots(bert_slot *s, bert_norm *nm, int n, const char *name) {
    s = add_slot(s, BERT_ROLE_PARAM, n, 0, &nm->gamma, NULL, "%s.weight", name);
    return add_slot(s, BERT_ROLE_PARAM, n, 0, &nm->beta, NULL, "%s.bias", name);
}

/* Module names inside encoder layer i, per architecture: BERT's (shared by
 * RoBERTa, XLM-R, ELECTRA) and DistilBERT's. */
enum { LN_Q, LN_K, LN_V, LN_ATT_OUT, LN_ATT_NORM, LN_FFN_IN, LN_FFN_OUT, LN_FFN_NORM, LN_COUNT };
static const char *const bert_layer_names[LN_COUNT] = {
    "attention.self.query", "attention.self.key", "attention.self.value", "attention.output.dense",
    "attention.output.LayerNorm", "intermediate.dense", "output.dense", "output.LayerNorm"};
static const char *const distil_layer_names[LN_COUNT] = {
    "attention.q_lin", "attention.k_lin", "attention.v_lin", "attention.out_lin",
    "sa_layer_norm", "ffn.lin1", "ffn.lin2", "output_layer_norm"};

void bert_slots(bert_model *m, bert_slot *s) {
    const bert_config *c = &m->cfg;
    int H = c->hidden, E = c->emb_size, distil = c->arch == BERT_ARCH_DISTILBERT;
    const char *pre = bert_arch_prefix(c->arch);
    const char *const *ln = distil ? distil_layer_names : bert_layer_names;
    char p[96];
    s = add_slot(s, BERT_ROLE_TABLE, c->vocab_size, E, &m->word_emb.f, &m->word_emb.q,
                 "%s.embeddings.word_embeddings.weight", pre);
    s = add_slot(s, BERT_ROLE_TABLE, c->max_pos + c->pos_offset, E, &m->pos_emb.f, &m->pos_emb.q,
                 "%s.embeddings.position_embeddings.weight", pre);
    s[-1].sinusoid = c->sinusoidal;
    if (c->type_vocab > 0)
        s = add_slot(s, BERT_ROLE_TABLE, c->type_vocab, E, &m->type_emb.f, &m->type_emb.q,
                     "%s.embeddings.token_type_embeddings.weight", pre);
    snprintf(p, sizeof(p), "%s.embeddings.LayerNorm", pre);
    s = norm_slots(s, &m->emb_norm, E, p);
    if (E != H) {
        snprintf(p, sizeof(p), "%s.embeddings_project", pre);
        s = linear_slots(s, &m->emb_proj, H, E, p);
    }
    for (int i = 0; i < c->layers; i++) {
        bert_layer *L = &m->layer[i];
        int A = bert_config_layer_heads(c, i) * (H / c->heads), I = bert_config_layer_inter(c, i);
#define LAYER(k) (snprintf(p, sizeof(p), "%s.%s.layer.%d.%s", pre, distil ? "transformer" : "encoder", i, \
                           ln[k]),                                                                   \
                  p)
        if (A) {
            s = linear_slots(s, &L->query, A, H, LAYER(LN_Q));
            s = linear_slots(s, &L->key, A, H, LAYER(LN_K));
            s = linear_slots(s, &L->value, A, H, LAYER(LN_V));
            s = linear_slots(s, &L->attn_out, H, A, LAYER(LN_ATT_OUT));
        } else {
            s = bias_slot(s, &L->attn_out, H, LAYER(LN_ATT_OUT));
        }
        s = norm_slots(s, &L->attn_norm, H, LAYER(LN_ATT_NORM));
        if (I) {
            s = linear_slots(s, &L->ffn_in, I, H, LAYER(LN_FFN_IN));
            s = linear_slots(s, &L->ffn_out, H, I, LAYER(LN_FFN_OUT));
        } else {
            s = bias_slot(s, &L->ffn_out, H, LAYER(LN_FFN_OUT));
        }
        s = norm_slots(s, &L->ffn_norm, H, LAYER(LN_FFN_NORM));
#undef LAYER
    }
    switch (c->arch) {
    case BERT_ARCH_BERT:
        s = linear_slots(s, &m->head_dense, H, H, "bert.pooler.dense");
        linear_slots(s, &m->classifier, c->num_labels, H, "classifier");
        break;
    case BERT_ARCH_DISTILBERT:
        s = linear_slots(s, &m->head_dense, H, H, "pre_classifier");
        linear_slots(s, &m->classifier, c->num_labels, H, "classifier");
        break;
    case BERT_ARCH_ROBERTA:
    case BERT_ARCH_XLM_ROBERTA:
    case BERT_ARCH_ELECTRA:
        s = linear_slots(s, &m->head_dense, H, H, "classifier.dense");
        linear_slots(s, &m->classifier, c->num_labels, H, "classifier.out_proj");
        break;
    }
}

static int init_norm(bert_norm *nm, int n, float eps, bct_error *err) {
    if (nm->ints) return BCT_OK;
    if (!(nm->ints = calloc(1, sizeof(iop_ln_params))) ||
        iop_ln_init(nm->ints, nm->gamma, nm->beta, n, eps) != 0) {
        free(nm->ints);
        nm->ints = NULL;
        return bct_fail(err, BCT_ENOMEM, "out of memory preparing integer LayerNorm");
    }
    return BCT_OK;
}

static void free_norm(bert_norm *nm) {
    if (!nm->ints) return;
    iop_ln_free(nm->ints);
    free(nm->ints);
    nm->ints = NULL;
}

int bert_model_init_int_norms(bert_model *m, bct_error *err) {
    int H = m->cfg.hidden, rc = init_norm(&m->emb_norm, m->cfg.emb_size, m->cfg.ln_eps, err);
    for (int i = 0; i < m->cfg.layers && rc == BCT_OK; i++)
        if ((rc = init_norm(&m->layer[i].attn_norm, H, m->cfg.ln_eps, err)) == BCT_OK)
            rc = init_norm(&m->layer[i].ffn_norm, H, m->cfg.ln_eps, err);
    return rc;
}

void bert_mode_apply(bert_mode *m, const bert_mode *over) {
    if (over->act_int8 >= 0) m->act_int8 = over->act_int8;
    if (over->int_gelu >= 0) m->int_gelu = over->int_gelu;
    if (over->int_softmax >= 0) m->int_softmax = over->int_softmax;
    if (over->int_layernorm >= 0) m->int_layernorm = over->int_layernorm;
    if (over->nl_bits > 0) m->nl_bits = over->nl_bits;
}

void bert_model_free(bert_model *m) {
    if (!m) return;
    free_norm(&m->emb_norm);
    for (int i = 0; m->layer && i < m->cfg.layers; i++) {
        free_norm(&m->layer[i].attn_norm);
        free_norm(&m->layer[i].ffn_norm);
    }
    if (m->storage) {
        struct bert_storage *s = m->storage;
        for (int i = 0; i < s->n_owned; i++) free(s->owned[i]);
        for (int i = 0; i < s->n_qmats; i++) free(s->qmats[i]);
        free(s->owned);
        free(s->qmats);
        if (s->release) s->release(s);
        free(s);
    }
    tok_free(m->tok);
    vocab_free(m->vocab);
    free(m->layer);
    bert_config_free(&m->cfg);
    free(m);
}

int bert_model_set_max_len(bert_model *m, int max_len, bct_error *err) {
    if (max_len < 3 || max_len > m->cfg.max_pos)
        return bct_fail(err, BCT_EINVAL, "max length %d is outside [3, %d] (max_position_embeddings)",
                        max_len, m->cfg.max_pos);
    m->max_len = max_len;
    return BCT_OK;
}

int bert_model_encode(const bert_model *m, const char *a, size_t alen, const char *b, size_t blen,
                      tok_encoding *enc, bct_error *err) {
    return tok_encode(m->tok, a, alen, b, blen, m->max_len, enc, err);
}

void bert_scores(const bert_config *cfg, const float *logits, float *scores) {
    int n = cfg->num_labels;
    if (cfg->problem == BERT_REGRESSION) {
        memcpy(scores, logits, (size_t)n * sizeof(float));
    } else if (cfg->problem == BERT_MULTI_LABEL) {
        for (int i = 0; i < n; i++) scores[i] = 1.0f / (1.0f + expf(-logits[i]));
    } else {
        float mx = logits[0], sum = 0;
        for (int i = 1; i < n; i++) mx = logits[i] > mx ? logits[i] : mx;
        for (int i = 0; i < n; i++) sum += scores[i] = expf(logits[i] - mx);
        for (int i = 0; i < n; i++) scores[i] /= sum;
    }
}

static int by_score_desc(const void *a, const void *b) {
    const bert_label_score *x = a, *y = b;
    if (x->score != y->score) return (x->score < y->score) - (x->score > y->score);
    return x->id - y->id;
}

void bert_rank_labels(const bert_config *cfg, const float *logits, int raw, bert_label_score *out) {
    int n = cfg->num_labels;
    float scores[n];
    if (raw) memcpy(scores, logits, (size_t)n * sizeof(float));
    else bert_scores(cfg, logits, scores);
    for (int i = 0; i < n; i++) out[i] = (bert_label_score){i, scores[i]};
    qsort(out, (size_t)n, sizeof(*out), by_score_desc);
}
