/* load_hf.c - binds a Hugging Face checkpoint directory to a bert_model. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bert_model_priv.h"
#include "formats/safetensors.h"
#include "formats/torch_bin.h"
#include "tokenizer/tokenizer.h"

/* st_find(name), else name without the base-model prefix "pre.". */
static const st_tensor *find_prefixed(const st_file *st, const char *name, const char *pre) {
    const st_tensor *t = st_find(st, name);
    size_t n = strlen(pre);
    if (!t && strncmp(name, pre, n) == 0 && name[n] == '.') t = st_find(st, name + n + 1);
    return t;
}

/* Finds `name` under the naming variants real checkpoints use: with or
 * without the base-model prefix, LayerNorm weight/bias or gamma/beta. */
static const st_tensor *find_variant(const st_file *st, const char *name, const char *pre) {
    char buf[512];
    const st_tensor *t = find_prefixed(st, name, pre);
    if (t) return t;
    const char *ln = strstr(name, "LayerNorm.");
    if (!ln) return NULL;
    const char *suffix = ln + strlen("LayerNorm.");
    const char *alt = strcmp(suffix, "weight") == 0 ? "gamma" : strcmp(suffix, "bias") == 0 ? "beta" : NULL;
    if (!alt) return NULL;
    snprintf(buf, sizeof(buf), "%.*s%s", (int)(suffix - name), name, alt);
    return find_prefixed(st, buf, pre);
}

static int shape_error(const st_tensor *t, const bert_slot *s, bct_error *err) {
    char got[128] = "";
    for (int i = 0, o = 0; i < t->ndim && o < (int)sizeof(got) - 24; i++)
        o += snprintf(got + o, sizeof(got) - (size_t)o, "%s%lld", i ? ", " : "", (long long)t->shape[i]);
    if (s->cols)
        return bct_fail(err, BCT_EFORMAT, "tensor \"%s\" has shape [%s], config.json implies [%d, %d]",
                        t->name, got, s->rows, s->cols);
    return bct_fail(err, BCT_EFORMAT, "tensor \"%s\" has shape [%s], config.json implies [%d]",
                    t->name, got, s->rows);
}

/* Binds one slot as fp32: in place from the mapping when F32 and aligned,
 * else converted once into an owned buffer. */
static int bind(struct bert_storage *s, const bert_slot *slot, const char *pre, bct_error *err) {
    const st_tensor *t = find_variant(s->st, slot->name, pre);
    if (!t && slot->sinusoid) {
        float *tab = bert_alloc64((size_t)slot->rows * (size_t)slot->cols * sizeof(float));
        if (!tab || bert_storage_keep(s, tab) != BCT_OK)
            return bct_fail(err, BCT_ENOMEM, "out of memory computing \"%s\"", slot->name);
        bert_sinusoid_table(tab, slot->rows, slot->cols);
        *slot->f = tab;
        return BCT_OK;
    }
    if (!t) return bct_fail(err, BCT_EFORMAT, "model.safetensors: missing tensor \"%s\"", slot->name);
    int ndim = slot->cols ? 2 : 1;
    if (t->ndim != ndim || t->shape[0] != slot->rows || (slot->cols && t->shape[1] != slot->cols))
        return shape_error(t, slot, err);
    if (!st_dtype_is_float(t->dtype))
        return bct_fail(err, BCT_EUNSUPPORTED, "tensor \"%s\" has dtype %s (need F32, F16 or BF16)",
                        t->name, st_dtype_name(t->dtype));
    if (t->dtype == ST_F32 && ((uintptr_t)t->data % sizeof(float)) == 0) {
        *slot->f = (const float *)(const void *)t->data;
        return BCT_OK;
    }
    float *buf = malloc((size_t)t->numel * sizeof(float) + 1);
    if (!buf || bert_storage_keep(s, buf) != BCT_OK)
        return bct_fail(err, BCT_ENOMEM, "out of memory converting \"%s\"", t->name);
    int rc = st_tensor_to_f32(t, buf, err);
    if (rc != BCT_OK) return rc;
    *slot->f = buf;
    return BCT_OK;
}

static int bind_all(bert_model *m, bct_error *err) {
    int n = bert_slot_count(&m->cfg), rc = BCT_OK;
    bert_slot *slots = calloc((size_t)n, sizeof(bert_slot));
    if (!slots) return bct_fail(err, BCT_ENOMEM, "out of memory");
    bert_slots(m, slots);
    const char *pre = bert_arch_prefix(m->cfg.arch);
    for (int i = 0; i < n && rc == BCT_OK; i++) rc = bind(m->storage, &slots[i], pre, err);
    free(slots);
    return rc;
}

static char *read_text(const char *path, size_t *len, bct_error *err) {
    FILE *f = fopen(path, "rb");
    if (!f) {
        bct_fail(err, BCT_EIO, "%s: cannot open", path);
        return NULL;
    }
    struct stat st;
    char *buf = NULL;
    if (fstat(fileno(f), &st) == 0 && st.st_size > (off_t)TOK_JSON_MAX_BYTES) {
        /* Refused before it is read: the parser would refuse it anyway. */
        bct_fail(err, BCT_ERANGE, "%s: %lld bytes, more than the limit of %u (TOK_JSON_MAX_BYTES)", path,
                 (long long)st.st_size, TOK_JSON_MAX_BYTES);
        fclose(f);
        return NULL;
    }
    if (fstat(fileno(f), &st) == 0 && st.st_size >= 0 &&
        (buf = malloc((size_t)st.st_size + 1)) &&
        fread(buf, 1, (size_t)st.st_size, f) == (size_t)st.st_size) {
        buf[st.st_size] = '\0';
        *len = (size_t)st.st_size;
    } else {
        free(buf);
        buf = NULL;
        bct_fail(err, BCT_EIO, "%s: cannot read", path);
    }
    fclose(f);
    return buf;
}

static long long file_size(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 ? (long long)st.st_size : 0;
}

const char *bert_hf_weights_file(const char *dir) {
    char path[4096];
    snprintf(path, sizeof(path), "%s/model.safetensors", dir);
    if (access(path, F_OK) == 0) return "model.safetensors";
    snprintf(path, sizeof(path), "%s/pytorch_model.bin", dir);
    return access(path, F_OK) == 0 ? "pytorch_model.bin" : "model.safetensors";
}

static int open_weights(const char *dir, st_file **st, const char **file, bct_error *err) {
    char path[4096];
    *file = bert_hf_weights_file(dir);
    snprintf(path, sizeof(path), "%s/%s", dir, *file);
    return strcmp(*file, "pytorch_model.bin") ? st_open(path, st, err) : torch_bin_open(path, st, err);
}

static void release_st(struct bert_storage *s) { st_close(s->st); }

static int file_exists(const char *dir, const char *name) {
    char path[4096];
    struct stat st;
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    return stat(path, &st) == 0;
}

int bert_hf_tokenizer_files(const char *dir, const char *files[2]) {
    files[0] = files[1] = NULL;
    if (file_exists(dir, "vocab.txt")) files[0] = "vocab.txt";
    else if (file_exists(dir, "tokenizer.json")) files[0] = "tokenizer.json";
    else if (file_exists(dir, "vocab.json")) files[0] = "vocab.json", files[1] = "merges.txt";
    return files[0] ? BCT_OK : BCT_EIO;
}

/* The tokenizer from the files bert_hf_tokenizer_files names; used gets
 * them, for the byte count. */
static int load_tokenizer(bert_model *m, const char *dir, const char *used[2], bct_error *err) {
    char path[4096];
    size_t len, mlen = 0;
    if (bert_hf_tokenizer_files(dir, used) != BCT_OK)
        return bct_fail(err, BCT_EIO, "%s: no vocab.txt, tokenizer.json or vocab.json + merges.txt", dir);
    snprintf(path, sizeof(path), "%s/%s", dir, used[0]);
    char *text = read_text(path, &len, err), *merges = NULL;
    if (!text) return BCT_EIO;
    if (used[1]) {
        snprintf(path, sizeof(path), "%s/%s", dir, used[1]);
        if (!(merges = read_text(path, &mlen, err))) {
            free(text);
            return BCT_EIO;
        }
    }
    int json = strcmp(used[0], "tokenizer.json") == 0;
    int rc = !strcmp(used[0], "vocab.txt") ? bert_model_init_tokenizer(m, text, len, err)
             : bert_model_init_tokenizer_json(m, text, len, merges, mlen, json, err);
    free(text);
    free(merges);
    return rc;
}

int bert_model_load_hf(const char *dir, bert_model **out, bct_error *err) {
    char path[4096];
    int rc;
    *out = NULL;
    bert_model *m = bert_model_alloc();
    if (!m) return bct_fail(err, BCT_ENOMEM, "out of memory");
    snprintf(path, sizeof(path), "%s/config.json", dir);
    if ((rc = bert_config_load(path, &m->cfg, err)) != BCT_OK) goto fail;
    if ((rc = bert_model_init_layers(m, err)) != BCT_OK) goto fail;
    const char *tok_files[2];
    if ((rc = load_tokenizer(m, dir, tok_files, err)) != BCT_OK) goto fail;
    const char *weights;
    rc = open_weights(dir, &m->storage->st, &weights, err);
    if (rc != BCT_OK) goto fail;
    m->storage->release = release_st;
    if ((rc = bind_all(m, err)) != BCT_OK) goto fail;
    snprintf(m->format, sizeof(m->format), "fp32");
    const char *const files[] = {"config.json", weights, tok_files[0], tok_files[1]};
    for (int i = 0; i < 4 && files[i]; i++) {
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
