#include "bench_model.h"

#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "model/bert_model.h"

/* splitmix64: fast, deterministic, good enough for weights. */
static uint64_t next(uint64_t *s) {
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/* Sum of 4 uniforms in [-1, 1), scaled to unit variance: bell-shaped. */
static float bell(uint64_t *s) {
    uint64_t r = next(s);
    float acc = 0;
    for (int i = 0; i < 4; i++, r >>= 16) acc += (float)(r & 0xFFFF) * (2.0f / 65536.0f) - 1.0f;
    return acc * 0.8660254f; /* std 1 */
}

static int write_text(const char *dir, const char *file, const char *text, bct_error *err) {
    char path[4096];
    snprintf(path, sizeof(path), "%s/%s", dir, file);
    FILE *f = fopen(path, "w");
    if (!f || fputs(text, f) < 0) {
        if (f) fclose(f);
        return bct_fail(err, BCT_EIO, "%s: %s", path, strerror(errno));
    }
    return fclose(f) == 0 ? BCT_OK : bct_fail(err, BCT_EIO, "%s: %s", path, strerror(errno));
}

static int write_vocab(const char *dir, int n, bct_error *err) {
    static const char *special[] = {"[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"};
    char path[4096];
    snprintf(path, sizeof(path), "%s/vocab.txt", dir);
    FILE *f = fopen(path, "w");
    if (!f) return bct_fail(err, BCT_EIO, "%s: %s", path, strerror(errno));
    for (int i = 0; i < n; i++) {
        if (i < 5) fprintf(f, "%s\n", special[i]);
        else fprintf(f, "tok%d\n", i);
    }
    return fclose(f) == 0 ? BCT_OK : bct_fail(err, BCT_EIO, "%s: %s", path, strerror(errno));
}

/* How a tensor's values are drawn. */
static void fill(const bert_slot *s, float *v, size_t n, uint64_t *rng) {
    int gamma = s->role == BERT_ROLE_PARAM && strstr(s->name, "LayerNorm.weight");
    int param = s->role == BERT_ROLE_PARAM;
    for (size_t i = 0; i < n; i++) {
        float g = bell(rng);
        v[i] = gamma ? 1.0f + 0.05f * g : param ? 0.01f * g : 0.02f * g;
    }
}

int bench_write_random_bert(const char *dir, const bench_shape *sh, unsigned seed, bct_error *err) {
    if (sh->hidden % sh->heads || sh->layers < 1 || sh->hidden < 1 || sh->intermediate < 1 ||
        sh->vocab < 5 || sh->labels < 2 || sh->labels > BENCH_MAX_LABELS)
        return bct_fail(err, BCT_EINVAL, "bad model shape");
    if (mkdir(dir, 0755) != 0 && errno != EEXIST)
        return bct_fail(err, BCT_EIO, "%s: %s", dir, strerror(errno));
    /* Labels "negative", "positive", then "label2", "label3", ... */
    char labels[32 * BENCH_MAX_LABELS], cfg[1024 + sizeof(labels)];
    size_t ll = 0;
    ll += (size_t)snprintf(labels, sizeof(labels), "\"0\":\"negative\",\"1\":\"positive\"");
    for (int i = 2; i < sh->labels; i++)
        ll += (size_t)snprintf(labels + ll, sizeof(labels) - ll, ",\"%d\":\"label%d\"", i, i);
    snprintf(cfg, sizeof(cfg),
             "{\"architectures\":[\"BertForSequenceClassification\"],\"model_type\":\"bert\","
             "\"hidden_size\":%d,\"num_hidden_layers\":%d,\"num_attention_heads\":%d,"
             "\"intermediate_size\":%d,\"vocab_size\":%d,\"max_position_embeddings\":%d,"
             "\"type_vocab_size\":2,\"hidden_act\":\"gelu\",\"layer_norm_eps\":1e-12,"
             "\"id2label\":{%s}}\n",
             sh->hidden, sh->layers, sh->heads, sh->intermediate, sh->vocab, sh->max_pos, labels);
    int rc;
    if ((rc = write_text(dir, "config.json", cfg, err)) || (rc = write_vocab(dir, sh->vocab, err)))
        return rc;

    /* The canonical tensor list, from the engine's own slot table for the
     * config just written (parsed, so every derived field is set). */
    bert_model m;
    memset(&m, 0, sizeof(m));
    if ((rc = bert_config_parse(cfg, strlen(cfg), &m.cfg, err)) != BCT_OK) return rc;
    int n = bert_slot_count(&m.cfg);
    bert_slot *slots = calloc((size_t)n, sizeof(bert_slot));
    m.layer = calloc((size_t)sh->layers, sizeof(bert_layer));
    size_t cap = 1 << 20, len = 0;
    char *hdr = malloc(cap);
    float *buf = NULL;
    FILE *f = NULL;
    if (!slots || !m.layer || !hdr) {
        rc = bct_fail(err, BCT_ENOMEM, "out of memory");
        goto done;
    }
    bert_slots(&m, slots);
    size_t off = 0, most = 0;
    len += (size_t)snprintf(hdr + len, cap - len, "{\"__metadata__\":{\"format\":\"pt\"}");
    for (int i = 0; i < n; i++) {
        size_t numel = (size_t)slots[i].rows * (size_t)(slots[i].cols ? slots[i].cols : 1);
        if (slots[i].cols)
            len += (size_t)snprintf(hdr + len, cap - len,
                                    ",\"%s\":{\"dtype\":\"F32\",\"shape\":[%d,%d],\"data_offsets\":[%zu,%zu]}",
                                    slots[i].name, slots[i].rows, slots[i].cols, off, off + numel * 4);
        else
            len += (size_t)snprintf(hdr + len, cap - len,
                                    ",\"%s\":{\"dtype\":\"F32\",\"shape\":[%d],\"data_offsets\":[%zu,%zu]}",
                                    slots[i].name, slots[i].rows, off, off + numel * 4);
        if (len + 512 > cap) {
            rc = bct_fail(err, BCT_EINVAL, "too many tensors");
            goto done;
        }
        off += numel * 4;
        most = numel > most ? numel : most;
    }
    hdr[len++] = '}';
    while (len % 8) hdr[len++] = ' ';
    char path[4096];
    snprintf(path, sizeof(path), "%s/model.safetensors", dir);
    if (!(buf = malloc(most * sizeof(float))) || !(f = fopen(path, "wb"))) {
        rc = buf ? bct_fail(err, BCT_EIO, "%s: %s", path, strerror(errno))
                 : bct_fail(err, BCT_ENOMEM, "out of memory");
        goto done;
    }
    unsigned char n8[8];
    for (int i = 0; i < 8; i++) n8[i] = (unsigned char)((uint64_t)len >> (8 * i));
    int ok = fwrite(n8, 1, 8, f) == 8 && fwrite(hdr, 1, len, f) == len;
    uint64_t rng = 0x5EED0000ull + seed;
    for (int i = 0; i < n && ok; i++) {
        size_t numel = (size_t)slots[i].rows * (size_t)(slots[i].cols ? slots[i].cols : 1);
        fill(&slots[i], buf, numel, &rng);
        ok = fwrite(buf, sizeof(float), numel, f) == numel;
    }
    if (fclose(f) != 0) ok = 0;
    f = NULL;
    rc = ok ? BCT_OK : bct_fail(err, BCT_EIO, "%s: write failed", path);
done:
    if (f) fclose(f);
    free(buf);
    free(hdr);
    free(slots);
    free(m.layer);
    bert_config_free(&m.cfg);
    return rc;
}
