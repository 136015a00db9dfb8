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

int bert_slot_count(const bert_config *cfg) { return 5 + 16 * cfg->layers + 4; }

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

static bert_slot *norm_slots(bert_slot *s, bert_norm *nm, int n, const char *prefix) {
    s = add_slot(s, BERT_ROLE_PARAM, n, 0, &nm->gamma, NULL, "%s.LayerNorm.weight", prefix);
    return add_slot(s, BERT_ROLE_PARAM, n, 0, &nm->beta, NULL, "%s.LayerNorm.bias", prefix);
}

void bert_slots(bert_model *m, bert_slot *s) {
    const bert_config *c = &m->cfg;
    int H = c->hidden, I = c->intermediate;
    char p[96];
    s = add_slot(s, BERT_ROLE_TABLE, c->vocab_size, H, &m->word_emb.f, &m->word_emb.q,
                 "bert.embeddings.word_embeddings.weight");
    s = add_slot(s, BERT_ROLE_TABLE, c->max_pos, H, &m->pos_emb.f, &m->pos_emb.q,
                 "bert.embeddings.position_embeddings.weight");
    s = add_slot(s, BERT_ROLE_TABLE, c->type_vocab, H, &m->type_emb.f, &m->type_emb.q,
                 "bert.embeddings.token_type_embeddings.weight");
    s = norm_slots(s, &m->emb_norm, H, "bert.embeddings");
    for (int i = 0; i < c->layers; i++) {
        bert_layer *L = &m->layer[i];
#define LAYER(suffix) (snprintf(p, sizeof(p), "bert.encoder.layer.%d.%s", i, suffix), p)
        s = linear_slots(s, &L->query, H, H, LAYER("attention.self.query"));
        s = linear_slots(s, &L->key, H, H, LAYER("attention.self.key"));
        s = linear_slots(s, &L->value, H, H, LAYER("attention.self.value"));
        s = linear_slots(s, &L->attn_out, H, H, LAYER("attention.output.dense"));
        s = norm_slots(s, &L->attn_norm, H, LAYER("attention.output"));
        s = linear_slots(s, &L->ffn_in, I, H, LAYER("intermediate.dense"));
        s = linear_slots(s, &L->ffn_out, H, I, LAYER("output.dense"));
        s = norm_slots(s, &L->ffn_norm, H, LAYER("output"));
#undef LAYER
    }
    s = linear_slots(s, &m->pooler, H, H, "bert.pooler.dense");
    linear_slots(s, &m->classifier, c->num_labels, H, "classifier");
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
    int H = m->cfg.hidden, rc = init_norm(&m->emb_norm, H, m->cfg.ln_eps, err);
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
