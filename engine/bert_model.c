#include "bert_model.h"

#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <sys/stat.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "safetensors.h"

/* What the model owns besides the bert_model struct itself. */
struct bert_storage {
    st_file *st;
    float **owned; /* converted tensors */
    int n_owned, cap_owned;
};

static int storage_keep(struct bert_storage *s, float *buf) {
    if (s->n_owned == s->cap_owned) {
        int cap = s->cap_owned ? s->cap_owned * 2 : 64;
        float **p = realloc(s->owned, (size_t)cap * sizeof(*p));
        if (!p) return BCT_ENOMEM;
        s->owned = p;
        s->cap_owned = cap;
    }
    s->owned[s->n_owned++] = buf;
    return BCT_OK;
}

/* Finds `name` under the naming variants real checkpoints use: with or
 * without the "bert." prefix, LayerNorm weight/bias or gamma/beta. */
static const st_tensor *find_variant(const st_file *st, const char *name) {
    char buf[512];
    const st_tensor *t = st_find(st, name);
    if (t) return t;
    if (strncmp(name, "bert.", 5) == 0 && (t = st_find(st, name + 5))) return t;
    const char *ln = strstr(name, "LayerNorm.");
    if (!ln) return NULL;
    const char *suffix = ln + strlen("LayerNorm.");
    const char *alt = strcmp(suffix, "weight") == 0 ? "gamma" : strcmp(suffix, "bias") == 0 ? "beta" : NULL;
    if (!alt) return NULL;
    snprintf(buf, sizeof(buf), "%.*s%s", (int)(suffix - name), name, alt);
    if ((t = st_find(st, buf))) return t;
    if (strncmp(buf, "bert.", 5) == 0) return st_find(st, buf + 5);
    return NULL;
}

/* Binds tensor `name` of shape [d0] (d1 == 0) or [d0, d1] as fp32. */
static int bind(struct bert_storage *s, const char *name, int64_t d0, int64_t d1, const float **out,
                bct_error *err) {
    const st_tensor *t = find_variant(s->st, name);
    if (!t) return bct_fail(err, BCT_EFORMAT, "model.safetensors: missing tensor \"%s\"", name);
    int ndim = d1 ? 2 : 1;
    if (t->ndim != ndim || t->shape[0] != d0 || (d1 && t->shape[1] != d1)) {
        char got[128] = "";
        for (int i = 0, o = 0; i < t->ndim && o < (int)sizeof(got) - 24; i++)
            o += snprintf(got + o, sizeof(got) - (size_t)o, "%s%lld", i ? ", " : "",
                          (long long)t->shape[i]);
        if (d1)
            return bct_fail(err, BCT_EFORMAT,
                            "tensor \"%s\" has shape [%s], config.json implies [%lld, %lld]", t->name,
                            got, (long long)d0, (long long)d1);
        return bct_fail(err, BCT_EFORMAT, "tensor \"%s\" has shape [%s], config.json implies [%lld]",
                        t->name, got, (long long)d0);
    }
    if (!st_dtype_is_float(t->dtype))
        return bct_fail(err, BCT_EUNSUPPORTED, "tensor \"%s\" has dtype %s (need F32, F16 or BF16)",
                        t->name, st_dtype_name(t->dtype));
    if (t->dtype == ST_F32 && ((uintptr_t)t->data % sizeof(float)) == 0) {
        *out = (const float *)(const void *)t->data;
        return BCT_OK;
    }
    float *buf = malloc((size_t)t->numel * sizeof(float));
    if (!buf || storage_keep(s, buf) != BCT_OK) {
        free(buf);
        return bct_fail(err, BCT_ENOMEM, "out of memory converting \"%s\"", t->name);
    }
    int rc = st_tensor_to_f32(t, buf, err);
    if (rc != BCT_OK) return rc;
    *out = buf;
    return BCT_OK;
}

static int bind_linear(struct bert_storage *s, const char *prefix, int out, int in, bert_linear *l,
                       bct_error *err) {
    char name[256];
    int rc;
    l->out = out;
    l->in = in;
    snprintf(name, sizeof(name), "%s.weight", prefix);
    if ((rc = bind(s, name, out, in, &l->w, err)) != BCT_OK) return rc;
    snprintf(name, sizeof(name), "%s.bias", prefix);
    return bind(s, name, out, 0, &l->b, err);
}

static int bind_norm(struct bert_storage *s, const char *prefix, int n, bert_norm *nm,
                     bct_error *err) {
    char name[256];
    int rc;
    snprintf(name, sizeof(name), "%s.LayerNorm.weight", prefix);
    if ((rc = bind(s, name, n, 0, &nm->gamma, err)) != BCT_OK) return rc;
    snprintf(name, sizeof(name), "%s.LayerNorm.bias", prefix);
    return bind(s, name, n, 0, &nm->beta, err);
}

static int bind_all(bert_model *m, bct_error *err) {
    const bert_config *c = &m->cfg;
    struct bert_storage *s = m->storage;
    int H = c->hidden, I = c->intermediate, rc;
    char p[160];

    if ((rc = bind(s, "bert.embeddings.word_embeddings.weight", c->vocab_size, H, &m->word_emb, err)) ||
        (rc = bind(s, "bert.embeddings.position_embeddings.weight", c->max_pos, H, &m->pos_emb, err)) ||
        (rc = bind(s, "bert.embeddings.token_type_embeddings.weight", c->type_vocab, H, &m->type_emb,
                   err)) ||
        (rc = bind_norm(s, "bert.embeddings", H, &m->emb_norm, err)))
        return rc;
    for (int i = 0; i < c->layers; i++) {
        bert_layer *L = &m->layer[i];
#define LAYER_NAME(suffix) (snprintf(p, sizeof(p), "bert.encoder.layer.%d.%s", i, suffix), p)
        if ((rc = bind_linear(s, LAYER_NAME("attention.self.query"), H, H, &L->query, err)) ||
            (rc = bind_linear(s, LAYER_NAME("attention.self.key"), H, H, &L->key, err)) ||
            (rc = bind_linear(s, LAYER_NAME("attention.self.value"), H, H, &L->value, err)) ||
            (rc = bind_linear(s, LAYER_NAME("attention.output.dense"), H, H, &L->attn_out, err)) ||
            (rc = bind_norm(s, LAYER_NAME("attention.output"), H, &L->attn_norm, err)) ||
            (rc = bind_linear(s, LAYER_NAME("intermediate.dense"), I, H, &L->ffn_in, err)) ||
            (rc = bind_linear(s, LAYER_NAME("output.dense"), H, I, &L->ffn_out, err)) ||
            (rc = bind_norm(s, LAYER_NAME("output"), H, &L->ffn_norm, err)))
            return rc;
#undef LAYER_NAME
    }
    if ((rc = bind_linear(s, "bert.pooler.dense", H, H, &m->pooler, err))) return rc;
    return bind_linear(s, "classifier", c->num_labels, H, &m->classifier, err);
}

static int load_tokenizer(bert_model *m, const char *vocab_path, bct_error *err) {
    int rc = vocab_load(vocab_path, &m->vocab, err);
    if (rc != BCT_OK) return rc;
    if (vocab_size(m->vocab) > m->cfg.vocab_size)
        return bct_fail(err, BCT_EFORMAT, "vocab.txt has %d tokens but config.json vocab_size is %d",
                        vocab_size(m->vocab), m->cfg.vocab_size);
    tok_options opt = {.lowercase = m->cfg.lowercase, .max_word_chars = 100};
    return tok_create(m->vocab, &opt, &m->tok, err);
}

static long long file_size(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 ? (long long)st.st_size : 0;
}

int bert_model_load(const char *path, bert_model **out, bct_error *err) {
    struct stat st;
    *out = NULL;
    if (stat(path, &st) != 0) return bct_fail(err, BCT_EIO, "%s: %s", path, strerror(errno));
    if (S_ISDIR(st.st_mode)) return bert_model_load_hf(path, out, err);
    return bct_fail(err, BCT_EUNSUPPORTED, "%s: not a checkpoint directory", path);
}

int bert_model_load_hf(const char *dir, bert_model **out, bct_error *err) {
    char path[4096];
    int rc;
    *out = NULL;
    bert_model *m = calloc(1, sizeof(*m));
    if (!m || !(m->storage = calloc(1, sizeof(*m->storage)))) {
        free(m);
        return bct_fail(err, BCT_ENOMEM, "out of memory");
    }
    snprintf(path, sizeof(path), "%s/config.json", dir);
    if ((rc = bert_config_load(path, &m->cfg, err)) != BCT_OK) goto fail;
    m->max_len = m->cfg.max_pos < BERT_DEFAULT_MAX_LEN ? m->cfg.max_pos : BERT_DEFAULT_MAX_LEN;
    snprintf(path, sizeof(path), "%s/vocab.txt", dir);
    if ((rc = load_tokenizer(m, path, err)) != BCT_OK) goto fail;
    snprintf(path, sizeof(path), "%s/model.safetensors", dir);
    if ((rc = st_open(path, &m->storage->st, err)) != BCT_OK) goto fail;
    if (!(m->layer = calloc((size_t)m->cfg.layers, sizeof(bert_layer)))) {
        rc = bct_fail(err, BCT_ENOMEM, "out of memory");
        goto fail;
    }
    if ((rc = bind_all(m, err)) != BCT_OK) goto fail;
    snprintf(m->format, sizeof(m->format), "fp32");
    static const char *const files[] = {"config.json", "vocab.txt", "model.safetensors"};
    for (int i = 0; i < 3; i++) {
        snprintf(path, sizeof(path), "%s/%s", dir, files[i]);
        m->file_bytes += file_size(path);
    }
    m->source_bytes = m->file_bytes;
    *out = m;
    return BCT_OK;
fail:
    bct_fail_prefix(err, rc, "%s", dir);
    bert_model_free(m);
    return rc;
}

void bert_model_free(bert_model *m) {
    if (!m) return;
    if (m->storage) {
        for (int i = 0; i < m->storage->n_owned; i++) free(m->storage->owned[i]);
        free(m->storage->owned);
        if (m->storage->st) st_close(m->storage->st);
        free(m->storage);
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
