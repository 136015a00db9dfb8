/* load_bct.c - binds a compressed .bct file (see docs/bct-format.md and
 * quantizer/compress.c for what it holds) to a bert_model. */
#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "formats/bct_file.h"
#include "bert_model_priv.h"
#include "util/mapped_file.h"
#include "formats/qcodec.h"
#include "kernels/qgemm.h"
#include "tokenizer/tokenizer.h"


static const cJSON *field(const cJSON *o, const char *key) {
    return cJSON_GetObjectItemCaseSensitive(o, key);
}

static const cJSON *find_entry(const cJSON *entries, const char *name) {
    const cJSON *e;
    cJSON_ArrayForEach(e, entries) {
        const cJSON *n = field(e, "name");
        if (cJSON_IsString(n) && strcmp(n->valuestring, name) == 0) return e;
    }
    return NULL;
}

static int blob(const bctf_file *f, const char *name, size_t want, const void **data,
                bct_error *err) {
    size_t size;
    int rc = bctf_blob(f, name, data, &size, err);
    if (rc != BCT_OK) return rc;
    if (size != want)
        return bct_fail(err, BCT_EFORMAT, "blob \"%s\" has %zu bytes, its tensor needs %zu", name,
                        size, want);
    return BCT_OK;
}

static int get_int(const cJSON *e, const char *key, int *out) {
    const cJSON *v = field(e, key);
    if (!cJSON_IsNumber(v) || v->valuedouble != floor(v->valuedouble) || v->valuedouble < 0 ||
        v->valuedouble > 1e9)
        return BCT_EFORMAT;
    *out = (int)v->valuedouble;
    return BCT_OK;
}

/* Dequantizes q into an owned fp32 matrix of `cols` columns, without q's
 * padding (weights-only mode). */
static int dequantize_owned(struct bert_storage *s, const qmat *q, int cols, const float **out) {
    float *f = bert_alloc64((size_t)q->rows * (size_t)cols * sizeof(float));
    if (!f || bert_storage_keep(s, f) != BCT_OK) return BCT_ENOMEM;
    for (int r = 0; r < q->rows; r++) qmat_dequantize_prefix(q, r, f + (size_t)r * cols, cols);
    *out = f;
    return BCT_OK;
}

/* Codes per stored row: "padded_cols" (files before it have none: then
 * cols).  Any padding of less than one block is accepted, so a file padded
 * to its block (rather than to 32, as compress writes) loads too. */
static int padded_cols(const cJSON *e, int cols, int block, int *out) {
    if (!field(e, "padded_cols")) {
        *out = cols;
        return BCT_OK;
    }
    if (get_int(e, "padded_cols", out) || *out < cols || *out - cols >= block) return BCT_EFORMAT;
    return BCT_OK;
}

/* The optional "act_scale" of a Linear weight's entry: the name of a blob
 * of `cols` positive finite floats (see bert_linear). */
static int bind_act_scale(struct bert_storage *st, const bert_slot *s, const cJSON *e,
                          const float **out, bct_error *err) {
    const cJSON *name = field(e, "act_scale");
    if (!name) return BCT_OK;
    if (!cJSON_IsString(name))
        return bct_fail(err, BCT_EFORMAT, "tensor \"%s\": act_scale is not a blob name", s->name);
    const void *data;
    int rc = blob(st->bf, name->valuestring, (size_t)s->cols * sizeof(float), &data, err);
    if (rc != BCT_OK) return bct_fail_prefix(err, rc, "tensor \"%s\"", s->name);
    const float *a = data;
    for (int c = 0; c < s->cols; c++)
        if (!(a[c] > 0) || !isfinite(a[c]))
            return bct_fail(err, BCT_EFORMAT, "tensor \"%s\": act_scale[%d] is not a positive number",
                            s->name, c);
    /* A copy of our own: the loader discards parts of the image (any
     * blob name may be given here), and this one is small. */
    float *own = bert_alloc64((size_t)s->cols * sizeof(float));
    if (!own || bert_storage_keep(st, own) != BCT_OK)
        return bct_fail(err, BCT_ENOMEM, "out of memory loading \"%s\"", s->name);
    memcpy(own, a, (size_t)s->cols * sizeof(float));
    *out = own;
    return BCT_OK;
}

/* The rest of a quantized tensor's binding once q holds its codes and
 * scales: a Linear weight's act_scale, then its fp32 copy (weights-only
 * mode) or its pack for the GEMM kernel (qgemm.h). */
static int bind_weight(bert_model *m, const bert_slot *s, const cJSON *e, qmat *q, bct_error *err) {
    struct bert_storage *st = m->storage;
    const float *act_scale = NULL;
    int rc;
    if (s->role != BERT_ROLE_WEIGHT) return BCT_OK;
    if ((rc = bind_act_scale(st, s, e, &act_scale, err))) return rc;
    if (!m->mode.act_int8) {
        if (dequantize_owned(st, q, s->cols, s->f) != BCT_OK)
            return bct_fail(err, BCT_ENOMEM, "out of memory dequantizing \"%s\"", s->name);
        /* fp32 inputs: fold the factor back into the weights. */
        float *f = (float *)*s->f;
        for (int r = 0; act_scale && r < q->rows; r++)
            for (int c = 0; c < s->cols; c++) f[(size_t)r * s->cols + c] *= act_scale[c];
        return BCT_OK;
    }
    if (act_scale) *s->act_scale = act_scale;
    if (qgemm_prepare(q) != BCT_OK || (q->pack && bert_storage_keep(st, q->pack) != BCT_OK)) {
        q->pack = NULL;
        return bct_fail(err, BCT_ENOMEM, "out of memory packing \"%s\"", s->name);
    }
    return BCT_OK;
}

static int bind_quantized(bert_model *m, const bert_slot *s, const cJSON *e, bct_error *err) {
    struct bert_storage *st = m->storage;
    char name[128];
    int bits, block, cols, rc;
    const cJSON *scale = field(e, "scale"), *base = field(e, "base");
    int enc = cJSON_IsString(scale) ? qcodec_scale_parse(scale->valuestring) : -1;
    if (get_int(e, "bits", &bits) || get_int(e, "block", &block) || enc < 0 || !cJSON_IsNumber(base) ||
        !isfinite(base->valuedouble) || !qcodec_bits_ok(bits) || padded_cols(e, s->cols, block, &cols) ||
        !qmat_layout_ok(qcodec_mem_bits(bits), block, cols) || s->role == BERT_ROLE_PARAM)
        return bct_fail(err, BCT_EFORMAT, "tensor \"%s\": invalid quantization parameters", s->name);
    const void *codes, *scales;
    size_t nblocks = (size_t)s->rows * (size_t)(cols / block);
    size_t code_bytes = qcodec_codes_bytes(bits, s->rows, cols), zlen = 0;
    const cJSON *encoding = field(e, "codes_encoding");
    snprintf(name, sizeof(name), "%s.codes", s->name);
    if (encoding && (!cJSON_IsString(encoding) || strcmp(encoding->valuestring, QCODEC_CODES_ZLIB)))
        return bct_fail(err, BCT_EFORMAT, "tensor \"%s\": unknown codes_encoding", s->name);
    if ((rc = encoding ? bctf_blob(st->bf, name, &codes, &zlen, err) : blob(st->bf, name, code_bytes, &codes, err)))
        return rc;
    snprintf(name, sizeof(name), "%s.scales", s->name);
    if ((rc = blob(st->bf, name, qcodec_scales_bytes((qscale_enc)enc, nblocks), &scales, err)))
        return rc;

    qmat *q = bert_storage_qmat(st);
    float *d = bert_alloc64(nblocks * sizeof(float));
    if (!q || !d || bert_storage_keep(st, d) != BCT_OK)
        return bct_fail(err, BCT_ENOMEM, "out of memory loading \"%s\"", s->name);
    *q = (qmat){.bits = qcodec_mem_bits(bits), .rows = s->rows, .cols = cols, .block = block, .scales = d};
    for (size_t i = 0; i < nblocks; i++) {
        d[i] = qcodec_scale_decode((qscale_enc)enc, scales, i, (float)base->valuedouble);
        if (!isfinite(d[i])) return bct_fail(err, BCT_EFORMAT, "tensor \"%s\": non-finite scale", s->name);
    }
    /* The file image is resident (mapped_file.h): what is read once into
     * memory of our own is given back to the system. */
    mapped_file_discard(scales, qcodec_scales_bytes((qscale_enc)enc, nblocks));
    /* widened or inflated codes, kept with the model only while read */
    void *wide = NULL;
    if (bits == q->bits && !encoding) {
        q->codes = (void *)codes; /* in place: the mapping is read-only and so is every reader */
    } else {
        void *flat = NULL; /* deflated: inflated to exactly the layout's size, or refused */
        if (!(wide = bert_alloc64(qmat_row_bytes(q->bits, cols) * (size_t)s->rows)))
            return bct_fail(err, BCT_ENOMEM, "out of memory loading \"%s\"", s->name);
        if (encoding && (rc = bctf_inflate(codes, zlen, code_bytes, &flat, err))) {
            free(wide);
            return bct_fail_prefix(err, rc, "tensor \"%s\" codes", s->name);
        }
        q->codes = wide;
        if (bits == q->bits)
            memcpy(wide, flat, code_bytes);
        else
            qcodec_unpack_codes(bits, flat ? flat : codes, q);
        free(flat);
        /* only the owned copy is read from now on */
        mapped_file_discard(codes, encoding ? zlen : code_bytes);
    }
    rc = bind_weight(m, s, e, q, err);
    /* A weight in weights-only mode is read as its fp32 copy: q stays
     * unbound. */
    int fp32 = s->role == BERT_ROLE_WEIGHT && !m->mode.act_int8;
    if (rc == BCT_OK && (q->pack || fp32)) {
        /* Codes read no more (packed: qgemm reads the pack alone, qgemm.h;
         * or dequantized), so they go. */
        if (wide) free(wide);
        else mapped_file_discard(codes, code_bytes);
        wide = q->codes = NULL;
    }
    if (wide && (rc != BCT_OK || bert_storage_keep(st, wide) != BCT_OK)) {
        if (rc != BCT_OK) free(wide);
        q->codes = NULL;
        if (rc == BCT_OK) rc = bct_fail(err, BCT_ENOMEM, "out of memory loading \"%s\"", s->name);
    }
    if (rc == BCT_OK && !fp32) *s->q = q;
    return rc;
}

static int bind_slot(bert_model *m, const bert_slot *s, const cJSON *entries, bct_error *err) {
    const cJSON *e = find_entry(entries, s->name), *shape = e ? field(e, "shape") : NULL;
    if (!e) return bct_fail(err, BCT_EFORMAT, "missing tensor \"%s\"", s->name);
    int ndim = s->cols ? 2 : 1;
    if (!cJSON_IsArray(shape) || cJSON_GetArraySize(shape) != ndim ||
        cJSON_GetArrayItem(shape, 0)->valuedouble != s->rows ||
        (ndim == 2 && cJSON_GetArrayItem(shape, 1)->valuedouble != s->cols))
        return bct_fail(err, BCT_EFORMAT, "tensor \"%s\": shape disagrees with the config", s->name);
    const cJSON *type = field(e, "type");
    if (cJSON_IsString(type) && strcmp(type->valuestring, "q") == 0) return bind_quantized(m, s, e, err);
    if (!cJSON_IsString(type) || strcmp(type->valuestring, "f32") != 0)
        return bct_fail(err, BCT_EFORMAT, "tensor \"%s\": unknown type", s->name);
    const void *data;
    int rc = blob(m->storage->bf, s->name, (size_t)s->rows * (size_t)(s->cols ? s->cols : 1) * 4, &data, err);
    if (rc == BCT_OK) *s->f = data; /* blobs are 64-byte aligned */
    return rc;
}

static int load_config(bert_model *m, const cJSON *meta, bct_error *err) {
    char *json = cJSON_PrintUnformatted(field(meta, "config"));
    if (!json) return bct_fail(err, BCT_EFORMAT, "no \"config\" in the header");
    int rc = bert_config_parse(json, strlen(json), &m->cfg, err);
    free(json);
    return rc;
}

/* "pruning": {"heads": [per layer], "intermediate": [per layer]} (see
 * bert_config.layer_heads); absent in unpruned files. */
static int load_pruning(bert_config *c, const cJSON *p, bct_error *err) {
    if (!p) return BCT_OK;
    const char *keys[2] = {"heads", "intermediate"};
    int max[2] = {c->heads, c->intermediate}, *arr[2];
    if (!cJSON_IsObject(p)) return bct_fail(err, BCT_EFORMAT, "\"pruning\" is not an object");
    for (int k = 0; k < 2; k++) {
        const cJSON *a = field(p, keys[k]);
        if (!cJSON_IsArray(a) || cJSON_GetArraySize(a) != c->layers)
            return bct_fail(err, BCT_EFORMAT, "pruning.%s: not an array of %d layers", keys[k], c->layers);
        if (!(arr[k] = calloc((size_t)c->layers, sizeof(int)))) return bct_fail(err, BCT_ENOMEM, "out of memory");
        if (k == 0) c->layer_heads = arr[0];
        else c->layer_inter = arr[1];
        for (int l = 0; l < c->layers; l++) {
            const cJSON *v = cJSON_GetArrayItem(a, l);
            if (!cJSON_IsNumber(v) || v->valuedouble != floor(v->valuedouble) || v->valuedouble < 0 ||
                v->valuedouble > max[k])
                return bct_fail(err, BCT_EFORMAT, "pruning.%s[%d]: not an integer in 0..%d", keys[k], l, max[k]);
            arr[k][l] = (int)v->valuedouble;
        }
    }
    return BCT_OK;
}

/* tokenizer.json_blob / json_bytes: the tokenizer.json document the
 * checkpoint's tokenizer ran (zlib), stored instead of vocab.txt. */
static int load_tokenizer_json(bert_model *m, const cJSON *name, const cJSON *bytes, bct_error *err) {
    if (!cJSON_IsString(name) || !cJSON_IsNumber(bytes) || bytes->valuedouble < 1 ||
        bytes->valuedouble > TOK_JSON_MAX_BYTES || bytes->valuedouble != (double)(size_t)bytes->valuedouble)
        return bct_fail(err, BCT_EFORMAT, "tokenizer: json_blob / json_bytes missing or invalid");
    const void *z;
    size_t zlen;
    void *text = NULL;
    int rc = bctf_blob(m->storage->bf, name->valuestring, &z, &zlen, err);
    if (rc == BCT_OK) rc = bctf_inflate(z, zlen, (size_t)bytes->valuedouble, &text, err);
    if (rc == BCT_OK) rc = bert_model_init_tokenizer_json(m, text, (size_t)bytes->valuedouble, NULL, 0, 1, err);
    free(text);
    return rc;
}

static int load_vocab(bert_model *m, const cJSON *tok, bct_error *err) {
    const cJSON *jname = field(tok, "json_blob");
    if (jname) return load_tokenizer_json(m, jname, field(tok, "json_bytes"), err);
    const cJSON *name = field(tok, "vocab_blob"), *bytes = field(tok, "vocab_bytes");
    if (!cJSON_IsString(name) || !cJSON_IsNumber(bytes) || bytes->valuedouble < 1 ||
        bytes->valuedouble > VOCAB_MAX_BYTES)
        return bct_fail(err, BCT_EFORMAT, "tokenizer: vocab_blob / vocab_bytes missing or invalid");
    const void *z;
    size_t zlen;
    void *text = NULL;
    int rc = bctf_blob(m->storage->bf, name->valuestring, &z, &zlen, err);
    if (rc == BCT_OK) rc = bctf_inflate(z, zlen, (size_t)bytes->valuedouble, &text, err);
    if (rc == BCT_OK) rc = bert_model_init_tokenizer(m, text, (size_t)bytes->valuedouble, err);
    free(text);
    return rc;
}

static void mode_from_meta(bert_mode *mode, const cJSON *q) {
    const cJSON *act = field(q, "activations"), *nl = field(q, "nonlinear");
    mode->act_int8 = cJSON_IsString(act) && strcmp(act->valuestring, "int8") == 0;
    int ints = cJSON_IsString(nl) && strcmp(nl->valuestring, "int") == 0, bits;
    mode->int_gelu = mode->int_softmax = mode->int_layernorm = ints;
    if (get_int(q, "nl_bits", &bits) == BCT_OK && bits >= 8 && bits <= 24) mode->nl_bits = bits;
}

static void release_bf(struct bert_storage *s) { bctf_close(s->bf); }

int bert_model_load_bct_mode(const char *path, const bert_mode *mode, bert_model **out,
                             bct_error *err) {
    int rc;
    *out = NULL;
    bert_model *m = bert_model_alloc();
    if (!m) return bct_fail(err, BCT_ENOMEM, "out of memory");
    if ((rc = bctf_open(path, &m->storage->bf, err)) != BCT_OK) goto fail;
    m->storage->release = release_bf;
    const cJSON *meta = bctf_meta(m->storage->bf);
    const cJSON *tok = field(meta, "tokenizer"), *quant = field(meta, "quantization");
    const cJSON *entries = field(meta, "tensors"), *prov = field(meta, "provenance");
    if (!cJSON_IsObject(tok) || !cJSON_IsObject(quant) || !cJSON_IsArray(entries)) {
        rc = bct_fail(err, BCT_EFORMAT, "header lacks tokenizer, quantization or tensors");
        goto fail;
    }
    if ((rc = load_config(m, meta, err)) || (rc = load_pruning(&m->cfg, field(meta, "pruning"), err)) ||
        (rc = bert_model_init_layers(m, err)) ||
        (rc = load_vocab(m, tok, err)))
        goto fail;
    int max_len;
    if (get_int(tok, "max_len", &max_len) == BCT_OK && (rc = bert_model_set_max_len(m, max_len, err)))
        goto fail;
    mode_from_meta(&m->mode, quant);
    if (mode) bert_mode_apply(&m->mode, mode);

    int n = bert_slot_count(&m->cfg);
    bert_slot *slots = calloc((size_t)n, sizeof(bert_slot));
    if (!slots) {
        rc = bct_fail(err, BCT_ENOMEM, "out of memory");
        goto fail;
    }
    bert_slots(m, slots);
    for (int i = 0; i < n && rc == BCT_OK; i++) rc = bind_slot(m, &slots[i], entries, err);
    free(slots);
    if (rc != BCT_OK) goto fail;
    if (m->mode.int_layernorm && (rc = bert_model_init_int_norms(m, err))) goto fail;

    const cJSON *preset = field(quant, "preset"), *input = field(prov, "input_bytes");
    snprintf(m->format, sizeof(m->format), "%s", cJSON_IsString(preset) ? preset->valuestring : "custom");
    m->file_bytes = (long long)bctf_file_size(m->storage->bf);
    m->source_bytes = cJSON_IsNumber(input) ? (long long)input->valuedouble : m->file_bytes;
    *out = m;
    return BCT_OK;
fail:
    bct_fail_prefix(err, rc, "%s", path);
    bert_model_free(m);
    return rc;
}

int bert_model_load_bct(const char *path, bert_model **out, bct_error *err) {
    return bert_model_load_bct_mode(path, NULL, out, err);
}
