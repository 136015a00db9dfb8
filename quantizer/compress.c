#include "compress.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <zlib.h>

#include "formats/bct_file.h"
#include "model/bert_model.h"
#include "calibrate.h"
#include "formats/qcodec.h"
#include "gptq.h"
#include "prune.h"
#include "smooth.h"

#define BCT_TOOL_VERSION "bct 0.1"
/* Non-linear ops take 16-bit block codes: int8 would do for GELU's
 * 32-element blocks, but LayerNorm and softmax see whole rows, where an
 * outlier dimension of a pretrained BERT would eat an 8-bit range. */
#define BCT_NL_BITS 16
/* Calibration input rows kept per Linear for the smoothing search: 256
 * rows x 3072 floats is 3 MB for a bert-base FFN output. */
#define CALIB_KEEP_ROWS 256
/* Hessians held at once for GPTQ: one calibration pass per group of
 * Linears that fits (bert-base: 47 MB per layer, so 2 layers a pass);
 * with the mapped checkpoint and GPTQ's own cols^2 doubles this keeps
 * the peak near 1.5x the checkpoint. */
#define GPTQ_HESSIAN_BYTES (64u << 20)

int compress_preset(const char *name, compress_opts *o, bct_error *err) {
    memset(o, 0, sizeof(*o));
    snprintf(o->preset, sizeof(o->preset), "%s", name);
    if (strcmp(name, "w8a8") == 0) {
        /* int8 everything: 8-bit codes with log8 scales, on 64-blocks for
         * Linear weights (8.13 bits/weight) and 128-blocks for tables,
         * int8 activations, integer non-linear ops. */
        o->weights = (bq_spec){8, 64, QSCALE_LOG8};
        o->embeddings = (bq_spec){8, 128, QSCALE_LOG8};
        o->tables = (bq_spec){8, 128, QSCALE_LOG8};
        o->act_int8 = 1;
        o->int_nonlinear = 1;
        return BCT_OK;
    }
    if (strcmp(name, "w8a8r") == 0) {
        /* w8a8 with one scale per Linear weight row (the asked block is
         * the largest, which bq_fit turns into the whole padded row up to
         * BQ_MAX_BLOCK columns) and hence, the activation block being the
         * weight's, one scale per token: a GEMM sums in int32 over all of
         * K and rescales once per output.  f16 scales: one per row costs
         * nothing, and log8's 9% steps would scale a whole row. */
        o->weights = (bq_spec){8, BQ_MAX_BLOCK, QSCALE_F16};
        o->embeddings = (bq_spec){8, 128, QSCALE_LOG8};
        o->tables = (bq_spec){8, 128, QSCALE_LOG8};
        o->act_int8 = 1;
        o->int_nonlinear = 1;
        return BCT_OK;
    }
    if (strcmp(name, "w4a8") == 0) {
        /* 4-bit Linear weights; word embeddings at 3 bits, which the
         * embedding LayerNorm tolerates, pay for the vocabulary and the
         * scales so the whole file stays >= 7.9x smaller. */
        o->weights = (bq_spec){4, 64, QSCALE_LOG8};
        o->embeddings = (bq_spec){3, 128, QSCALE_LOG8};
        o->tables = (bq_spec){4, 128, QSCALE_LOG8};
        o->act_int8 = 1;
        o->int_nonlinear = 1;
        return BCT_OK;
    }
    return bct_fail(err, BCT_EINVAL, "unknown preset \"%s\" (w8a8, w8a8r, w4a8)", name);
}

static long long file_size(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 ? (long long)st.st_size : -1;
}

/* Size and CRC-32 of a source file, for provenance. */
static int describe_source(const char *dir, const char *file, cJSON *into, long long *total,
                           bct_error *err) {
    char path[4096];
    snprintf(path, sizeof(path), "%s/%s", dir, file);
    FILE *f = fopen(path, "rb");
    if (!f) return bct_fail(err, BCT_EIO, "%s: %s", path, strerror(errno));
    unsigned long crc = crc32(0L, Z_NULL, 0);
    unsigned char buf[1 << 16];
    size_t n;
    long long bytes = 0;
    while ((n = fread(buf, 1, sizeof(buf), f)) > 0) {
        crc = crc32(crc, buf, (uInt)n);
        bytes += (long long)n;
    }
    int bad = ferror(f);
    fclose(f);
    if (bad) return bct_fail(err, BCT_EIO, "%s: read error", path);
    cJSON *o = cJSON_AddObjectToObject(into, file);
    cJSON_AddNumberToObject(o, "bytes", (double)bytes);
    char hex[16];
    snprintf(hex, sizeof(hex), "%08lx", crc);
    cJSON_AddStringToObject(o, "crc32", hex);
    *total += bytes;
    return BCT_OK;
}

static const char *kind_of(const bert_slot *s) {
    if (s->role == BERT_ROLE_PARAM) return "params";
    if (s->role == BERT_ROLE_WEIGHT) return "weights";
    return strstr(s->name, "word_embeddings") ? "embeddings" : "tables";
}

/* The spec asked for a slot (not yet fitted to its width): its first
 * matching rule's, else its kind's. */
static const bq_spec *spec_for(const compress_opts *o, const bert_slot *s) {
    static const bq_spec keep = {32, 0, QSCALE_F16};
    if (s->role == BERT_ROLE_PARAM) return &keep;
    for (int i = 0; i < o->n_rules; i++)
        if (strstr(s->name, o->rules[i].match)) return &o->rules[i].spec;
    if (s->role == BERT_ROLE_WEIGHT) return &o->weights;
    return strstr(s->name, "word_embeddings") ? &o->embeddings : &o->tables;
}

int compress_opts_check(const compress_opts *o, bct_error *err) {
    const struct {
        const char *kind;
        const bq_spec *s;
    } roles[] = {{"weights", &o->weights}, {"embeddings", &o->embeddings}, {"tables", &o->tables}};
    for (size_t i = 0; i < sizeof(roles) / sizeof(roles[0]); i++) {
        int rc = roles[i].s->bits == 32 ? BCT_OK : bq_spec_ok(roles[i].s, err);
        if (rc != BCT_OK) return bct_fail_prefix(err, rc, "%s", roles[i].kind);
    }
    if (o->n_rules < 0 || o->n_rules > COMPRESS_MAX_RULES || (o->n_rules && !o->rules))
        return bct_fail(err, BCT_EINVAL, "%d tensor rules (at most %d)", o->n_rules, COMPRESS_MAX_RULES);
    for (int i = 0; i < o->n_rules; i++) {
        const compress_rule *r = &o->rules[i];
        if (!r->match[0] || !memchr(r->match, 0, sizeof(r->match)))
            return bct_fail(err, BCT_EINVAL, "tensor rule %d: empty or unterminated name", i + 1);
        int rc = bq_spec_ok(&r->spec, err);
        if (rc != BCT_OK) return bct_fail_prefix(err, rc, "tensor rule '%s'", r->match);
    }
    return BCT_OK;
}

/* Counts tensor t in the report's block summary (rep->blocks has room for
 * one entry per tensor). */
static void note_block(compress_report *rep, const compress_tensor *t, int asked) {
    for (int i = 0; i < rep->n_blocks; i++) {
        compress_block_use *b = &rep->blocks[i];
        if (strcmp(b->kind, t->kind) == 0 && b->cols == t->cols) {
            b->tensors++;
            return;
        }
    }
    rep->blocks[rep->n_blocks++] = (compress_block_use){t->kind, asked, t->cols, t->padded_cols, t->block, 1};
}

int compress_format_parse(const char *s, bq_spec *spec) {
    if (strlen(s) != 2 || s[0] != 'q' || !qcodec_bits_ok(s[1] - '0')) return BCT_EINVAL;
    spec->bits = s[1] - '0';
    return BCT_OK;
}

/* Writes one tensor's blobs and its meta entry; fills the report row. */
static int write_tensor_data(bctf_writer *w, const bert_slot *s, const float *data, const bq_spec *spec,
                             const float *col_weight, double *hess, const smooth_slot *sm,
                             cJSON *entries, compress_tensor *row, compress_report *rep, bct_error *err);

/* H of the smoothed weight: the input is divided by col_mul, so
 * H'_ab = H_ab / (col_mul_a col_mul_b).  Double, for gptq_quantize. */
static double *hessian_for(const float *h, int n, const smooth_slot *sm) {
    double *d = malloc((size_t)n * n * sizeof(double) + 1);
    for (size_t a = 0; d && a < (size_t)n; a++)
        for (size_t b = 0; b < (size_t)n; b++) {
            double v = h[a * n + b];
            if (sm && sm->col_mul) v /= (double)sm->col_mul[a] * sm->col_mul[b];
            d[a * n + b] = v;
        }
    return d;
}

/* Applies the smoothing plan (if any) to slot i, then writes it (by GPTQ
 * when *hess, slot i's Hessian, is set: it is freed, and set to NULL,
 * once its double copy is made, so the two never coexist at the peak). */
static int write_tensor(bctf_writer *w, const bert_slot *slots, int i, const bq_spec *spec,
                        const float *col_weight, float **hess, const smooth_plan *plan, cJSON *entries,
                        compress_tensor *row, compress_report *rep, bct_error *err) {
    const float *data;
    float *owned, *cw = NULL;
    const smooth_slot *sm = plan && plan->slot ? &plan->slot[i] : NULL;
    if (smooth_apply(plan, slots, i, &data, &owned) != BCT_OK)
        return bct_fail(err, BCT_ENOMEM, "out of memory smoothing %s", slots[i].name);
    if (sm && sm->col_mul && col_weight) {
        /* The weight's column j now meets inputs divided by col_mul[j]. */
        if (!(cw = malloc((size_t)slots[i].cols * sizeof(float)))) {
            free(owned);
            return bct_fail(err, BCT_ENOMEM, "out of memory smoothing %s", slots[i].name);
        }
        for (int j = 0; j < slots[i].cols; j++) cw[j] = col_weight[j] / (sm->col_mul[j] * sm->col_mul[j]);
        col_weight = cw;
    }
    int gptq = hess && *hess && spec->bits != 32;
    double *hd = gptq ? hessian_for(*hess, slots[i].cols, sm) : NULL;
    if (hd) {
        free(*hess);
        *hess = NULL;
    }
    int rc = gptq && !hd
                 ? bct_fail(err, BCT_ENOMEM, "out of memory for the Hessian of %s", slots[i].name)
                 : write_tensor_data(w, &slots[i], data, spec, col_weight, hd, sm, entries, row, rep, err);
    free(hd);
    free(cw);
    free(owned);
    return rc;
}

static int write_tensor_data(bctf_writer *w, const bert_slot *s, const float *data, const bq_spec *spec,
                             const float *col_weight, double *hess, const smooth_slot *sm,
                             cJSON *entries, compress_tensor *row, compress_report *rep, bct_error *err) {
    char blob[128];
    int rc;
    size_t n = (size_t)s->rows * (size_t)(s->cols ? s->cols : 1);
    cJSON *e = cJSON_CreateObject();
    cJSON_AddItemToArray(entries, e);
    cJSON_AddStringToObject(e, "name", s->name);
    cJSON *shape = cJSON_AddArrayToObject(e, "shape");
    cJSON_AddItemToArray(shape, cJSON_CreateNumber(s->rows));
    if (s->cols) cJSON_AddItemToArray(shape, cJSON_CreateNumber(s->cols));
    snprintf(row->name, sizeof(row->name), "%s", s->name);
    row->kind = kind_of(s);
    row->rows = s->rows;
    row->cols = s->cols;
    row->bits = spec->bits;
    row->block = spec->block;
    row->padded_cols = s->cols ? qmat_padded_cols(s->cols) : 0;
    row->bits_per_weight = bq_bits_per_weight(spec, s->cols);
    row->smooth_alpha = sm ? sm->alpha : -1;

    if (spec->bits == 32) {
        cJSON_AddStringToObject(e, "type", "f32");
        return bctf_writer_add(w, s->name, data, n * sizeof(float), err);
    }
    if (sm && sm->act_scale) {
        /* Q, K and V share one blob: the engine quantizes their input once. */
        cJSON_AddStringToObject(e, "act_scale", sm->act_blob);
        if (sm->act_owner &&
            (rc = bctf_writer_add(w, sm->act_blob, sm->act_scale, (size_t)s->cols * sizeof(float), err)) != BCT_OK)
            return rc;
    }
    bq_result q;
    if ((rc = hess ? gptq_quantize(data, s->rows, s->cols, hess, spec, &q, err)
                   : bq_quantize(data, s->rows, s->cols, spec, col_weight, &q, err)) != BCT_OK)
        return bct_fail_prefix(err, rc, "%s", s->name);
    size_t code_bytes = qcodec_codes_bytes(spec->bits, s->rows, q.row_len);
    size_t scale_bytes = qcodec_scales_bytes(spec->scale, (size_t)s->rows * (size_t)(q.row_len / spec->block));
    uint8_t *packed = malloc(code_bytes + 1);
    if (!packed) {
        bq_result_free(&q);
        return bct_fail(err, BCT_ENOMEM, "out of memory packing %s", s->name);
    }
    qcodec_pack_codes(spec->bits, q.codes, s->rows, q.row_len, packed);
    void *z = NULL;
    size_t zlen = 0, stored = code_bytes;
    if (spec->bits <= QCODEC_ZLIB_MAX_BITS && bctf_deflate(packed, code_bytes, &z, &zlen, err) == BCT_OK &&
        zlen <= (size_t)((double)code_bytes * (1 - QCODEC_ZLIB_MIN_GAIN))) {
        cJSON_AddStringToObject(e, "codes_encoding", QCODEC_CODES_ZLIB);
        stored = zlen;
    }
    snprintf(blob, sizeof(blob), "%s.codes", s->name);
    rc = bctf_writer_add(w, blob, stored == code_bytes ? (const void *)packed : z, stored, err);
    free(z);
    snprintf(blob, sizeof(blob), "%s.scales", s->name);
    if (rc == BCT_OK) rc = bctf_writer_add(w, blob, q.scales, scale_bytes, err);
    free(packed);
    code_bytes = stored;
    cJSON_AddStringToObject(e, "type", "q");
    cJSON_AddNumberToObject(e, "bits", spec->bits);
    cJSON_AddNumberToObject(e, "block", spec->block);
    cJSON_AddNumberToObject(e, "padded_cols", q.row_len);
    cJSON_AddStringToObject(e, "scale", qcodec_scale_name(spec->scale));
    cJSON_AddNumberToObject(e, "base", q.base);
    row->rel_error = bq_rel_error(&q);
    cJSON_AddNumberToObject(e, "rel_error", row->rel_error);
    rep->matrix_params += (long long)n;
    rep->matrix_bytes += (long long)(code_bytes + scale_bytes);
    bq_result_free(&q);
    return rc;
}

static cJSON *quant_meta(const compress_opts *o) {
    cJSON *q = cJSON_CreateObject();
    cJSON_AddStringToObject(q, "preset", o->preset);
    const struct {
        const char *key;
        const bq_spec *s;
    } roles[] = {{"weights", &o->weights}, {"embeddings", &o->embeddings}, {"tables", &o->tables}};
    for (size_t i = 0; i < sizeof(roles) / sizeof(roles[0]); i++) {
        cJSON *r = cJSON_AddObjectToObject(q, roles[i].key);
        cJSON_AddNumberToObject(r, "bits", roles[i].s->bits);
        cJSON_AddNumberToObject(r, "block", roles[i].s->block);
        cJSON_AddStringToObject(r, "scale", qcodec_scale_name(roles[i].s->scale));
    }
    cJSON_AddStringToObject(q, "activations", o->act_int8 ? "int8" : "fp32");
    cJSON_AddStringToObject(q, "nonlinear", o->int_nonlinear ? "int" : "fp32");
    cJSON_AddNumberToObject(q, "nl_bits", BCT_NL_BITS);
    return q;
}

/* A tokenizer.json tokenizer is stored as its document, so the .bct runs
 * the same normalizer, pre-tokenizer, model and template. */
static int write_tokenizer_json(bctf_writer *w, const char *doc, size_t len, cJSON *tok, bct_error *err) {
    void *z = NULL;
    size_t zlen = 0;
    int rc = bctf_deflate(doc, len, &z, &zlen, err);
    if (rc == BCT_OK) rc = bctf_writer_add(w, "tokenizer.json.z", z, zlen, err);
    free(z);
    cJSON_AddStringToObject(tok, "json_blob", "tokenizer.json.z");
    cJSON_AddNumberToObject(tok, "json_bytes", (double)len);
    return rc;
}

static int write_vocab(bctf_writer *w, const bert_model *m, cJSON *tok, bct_error *err) {
    size_t doc_len;
    const char *doc = tok_json_doc(m->tok, &doc_len);
    if (doc) return write_tokenizer_json(w, doc, doc_len, tok, err);
    /* Rebuild vocab.txt from the loaded vocabulary (one token per line). */
    size_t cap = 1 << 20, len = 0;
    char *text = malloc(cap);
    for (int32_t id = 0; text && id < vocab_size(m->vocab); id++) {
        size_t tl;
        const char *t = vocab_token(m->vocab, id, &tl);
        if (len + tl + 2 > cap) {
            char *p = realloc(text, cap = cap * 2 + tl);
            if (!p) {
                free(text);
                text = NULL;
                break;
            }
            text = p;
        }
        memcpy(text + len, t, tl);
        len += tl;
        text[len++] = '\n';
    }
    if (!text) return bct_fail(err, BCT_ENOMEM, "out of memory");
    void *z = NULL;
    size_t zlen = 0;
    int rc = bctf_deflate(text, len, &z, &zlen, err);
    free(text);
    if (rc == BCT_OK) rc = bctf_writer_add(w, "vocab.txt.z", z, zlen, err);
    free(z);
    cJSON_AddStringToObject(tok, "vocab_blob", "vocab.txt.z");
    cJSON_AddNumberToObject(tok, "vocab_bytes", (double)len);
    return rc;
}

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* The embedding tables' rows are summed and go through the embedding
 * LayerNorm: an error in hidden dimension j comes out times gamma_j.  In
 * a model with outlier dimensions (gamma_j 20-50x the rest) those columns
 * must be kept closer, so a column's squared error counts gamma_j^2 (with
 * a floor, as calibrate.c's, for dimensions LayerNorm nearly drops).
 * The tables and that LayerNorm are emb_size wide (ELECTRA: < hidden). */
static float *embedding_weights(const bert_model *m) {
    int H = m->cfg.emb_size;
    float *w = malloc((size_t)H * sizeof(float));
    double mean = 0;
    for (int j = 0; w && j < H; j++) mean += (double)m->emb_norm.gamma[j] * m->emb_norm.gamma[j] / H;
    for (int j = 0; w && j < H; j++) {
        double v = (double)m->emb_norm.gamma[j] * m->emb_norm.gamma[j];
        w[j] = (float)(v > 1e-2 * mean ? v : 1e-2 * mean);
    }
    return w;
}

static int n_slots_of(const bert_model *m) { return m ? bert_slot_count(&m->cfg) : 0; }

/* Frees the Hessians held and collects those of the Linear weights from
 * slot `from` on that fit GPTQ_HESSIAN_BYTES (at least one). */
static int next_hessians(const bert_model *m, const bert_slot *slots, int n, const compress_opts *o, int from,
                         int *want, float **hess, bct_error *err) {
    size_t bytes = 0;
    for (int i = 0; i < n; i++) {
        free(hess[i]);
        hess[i] = NULL;
        want[i] = 0;
    }
    for (int i = from; i < n; i++) {
        if (slots[i].role != BERT_ROLE_WEIGHT || spec_for(o, &slots[i])->bits == 32) continue;
        size_t b = (size_t)slots[i].cols * (size_t)slots[i].cols * sizeof(float);
        if (bytes && bytes + b > GPTQ_HESSIAN_BYTES) break;
        bytes += b;
        want[i] = 1;
    }
    return calib_hessians(m, slots, n, o->calib, o->calib_max > 0 ? o->calib_max : COMPRESS_CALIB_DEFAULT, want, hess, err);
}

int compress_checkpoint(const char *hf_dir, const char *out_path, const compress_opts *o,
                        compress_report *rep, bct_error *err) {
    double t0 = now();
    memset(rep, 0, sizeof(*rep));
    bert_model *m = NULL;
    bctf_writer *w = NULL;
    bert_slot *slots = NULL;
    calib_stats calib = {0};
    smooth_plan plan = {0};
    float **hess = NULL; /* GPTQ: per slot, the Hessians of the current group */
    int *want = NULL;
    float *emb_weight = NULL; /* the embedding tables' column importance */
    prune_result pruned = {0};
    cJSON *meta = cJSON_CreateObject();
    int rc = bert_model_load_hf(hf_dir, &m, err);
    if (rc != BCT_OK) goto done;
    if (o->prune_heads > 0 || o->prune_ffn > 0) {
        /* Smoothing groups Q, K, V by the config's shapes, which pruning changes. */
        if (!o->calib || o->smooth) {
            rc = bct_fail(err, BCT_EINVAL, o->smooth ? "pruning does not combine with smoothing"
                                                     : "pruning needs calibration text (--calib)");
            goto done;
        }
        if ((rc = prune_model(m, o->calib, o->calib_max > 0 ? o->calib_max : 256, o->prune_heads, o->prune_ffn,
                              &pruned, err)) != BCT_OK)
            goto done;
        cJSON *pm = prune_meta(m, &pruned);
        if (!pm || !(rep->pruning = cJSON_Duplicate(pm, 1))) {
            cJSON_Delete(pm);
            rc = bct_fail(err, BCT_ENOMEM, "out of memory");
            goto done;
        }
        cJSON_AddNumberToObject(rep->pruning, "seconds", pruned.seconds);
        cJSON_AddItemToObject(meta, "pruning", pm);
    }

    int n = bert_slot_count(&m->cfg);
    slots = calloc((size_t)n, sizeof(bert_slot));
    rep->tensors = calloc((size_t)n, sizeof(compress_tensor));
    if (!slots || !rep->tensors || !meta) {
        rc = bct_fail(err, BCT_ENOMEM, "out of memory");
        goto done;
    }
    bert_slots(m, slots);
    if ((rc = compress_opts_check(o, err)) != BCT_OK) goto done;
    rep->blocks = calloc((size_t)n, sizeof(compress_block_use));
    if (!rep->blocks) {
        rc = bct_fail(err, BCT_ENOMEM, "out of memory");
        goto done;
    }

    cJSON *prov = cJSON_AddObjectToObject(meta, "provenance");
    cJSON_AddStringToObject(prov, "tool", BCT_TOOL_VERSION);
    cJSON_AddNumberToObject(prov, "created_unix", (double)time(NULL));
    cJSON *src = cJSON_AddObjectToObject(prov, "source");
    const char *files[4] = {"config.json", bert_hf_weights_file(hf_dir), NULL, NULL};
    bert_hf_tokenizer_files(hf_dir, files + 2);
    for (int i = 0; i < 4 && files[i] && rc == BCT_OK; i++)
        rc = describe_source(hf_dir, files[i], src, &rep->input_bytes, err);
    if (rc != BCT_OK) goto done;
    cJSON_AddNumberToObject(prov, "input_bytes", (double)rep->input_bytes);

    cJSON *cfg = bert_config_to_json(&m->cfg);
    if (!cfg) {
        rc = bct_fail(err, BCT_ENOMEM, "out of memory");
        goto done;
    }
    cJSON_AddItemToObject(meta, "config", cfg);
    cJSON_AddStringToObject(meta, "architecture", bert_arch_name(m->cfg.arch));
    cJSON *tok = cJSON_AddObjectToObject(meta, "tokenizer");
    cJSON_AddBoolToObject(tok, "lowercase", m->cfg.lowercase);
    cJSON_AddNumberToObject(tok, "max_len", m->max_len);
    cJSON_AddItemToObject(meta, "quantization", quant_meta(o));
    cJSON *entries = cJSON_AddArrayToObject(meta, "tensors");
    if (o->calib) {
        if ((rc = calib_collect(m, slots, n, o->calib, o->calib_max > 0 ? o->calib_max : COMPRESS_CALIB_DEFAULT,
                                o->smooth ? CALIB_KEEP_ROWS : 0, &calib, err)) != BCT_OK)
            goto done;
        cJSON *c = cJSON_AddObjectToObject(cJSON_GetObjectItem(meta, "quantization"), "calibration");
        cJSON_AddNumberToObject(c, "sentences", calib.sentences);
        cJSON_AddNumberToObject(c, "tokens", (double)calib.tokens);
        cJSON_AddStringToObject(c, "method", "input-channel weighted block MSE");
        if (o->smooth) {
            if ((rc = smooth_plan_make(m, slots, n, &calib, &o->weights, o->smooth_alpha, &plan, err)) != BCT_OK)
                goto done;
            cJSON *sm = cJSON_AddObjectToObject(c, "smoothing");
            if (o->smooth_alpha > 0) cJSON_AddNumberToObject(sm, "alpha", o->smooth_alpha);
            else cJSON_AddStringToObject(sm, "alpha", "searched per Linear");
        }
    } else if (o->smooth) {
        rc = bct_fail(err, BCT_EINVAL, "smoothing needs calibration text (--calib)");
        goto done;
    }

    if (o->gptq && !o->calib) {
        rc = bct_fail(err, BCT_EINVAL, "GPTQ needs calibration text (--calib)");
        goto done;
    }
    if (o->gptq) {
        cJSON *c = cJSON_GetObjectItem(cJSON_GetObjectItem(meta, "quantization"), "calibration");
        cJSON_ReplaceItemInObject(c, "method", cJSON_CreateString("GPTQ (per-block scales) on calibration Hessians"));
        if (!(hess = calloc((size_t)n, sizeof(float *))) || !(want = calloc((size_t)n, sizeof(int)))) {
            rc = bct_fail(err, BCT_ENOMEM, "out of memory");
            goto done;
        }
    }
    if (!(emb_weight = embedding_weights(m))) {
        rc = bct_fail(err, BCT_ENOMEM, "out of memory");
        goto done;
    }
    if ((rc = bctf_writer_open(out_path, &w, err)) != BCT_OK) goto done;
    if ((rc = write_vocab(w, m, tok, err)) != BCT_OK) goto done;
    for (int i = 0; i < n && rc == BCT_OK; i++) {
        if (o->cancel && atomic_load(o->cancel)) {
            rc = bct_fail(err, BCT_EINVAL, "compression cancelled");
            break;
        }
        if (o->progress) o->progress(o->progress_ud, i, n, slots[i].name);
        const bq_spec *asked = spec_for(o, &slots[i]);
        bq_spec spec = asked->bits == 32 ? *asked : bq_fit(asked, slots[i].cols);
        if (hess && slots[i].role == BERT_ROLE_WEIGHT && spec.bits != 32 && !hess[i] &&
            (rc = next_hessians(m, slots, n, o, i, want, hess, err)) != BCT_OK)
            break;
        const float *cw = calib.col_weight ? calib.col_weight[i] : NULL;
        if (slots[i].role == BERT_ROLE_TABLE) cw = emb_weight;
        rc = write_tensor(w, slots, i, &spec, cw, hess ? &hess[i] : NULL, &plan, entries, &rep->tensors[i], rep,
                          err);
        if (hess) { /* done with it: memory for the next group */
            free(hess[i]);
            hess[i] = NULL;
        }
        rep->n_tensors = i + 1;
        if (rc == BCT_OK && spec.bits != 32) note_block(rep, &rep->tensors[i], asked->block);
    }
    if (rc != BCT_OK) goto done;
    if (o->committing) o->committing(o->progress_ud);
    rc = bctf_writer_commit(w, meta, err);
    w = NULL; /* commit frees the writer, whatever the outcome */
    if (rc != BCT_OK) goto done;

    rep->output_bytes = file_size(out_path);
    rep->ratio = rep->output_bytes > 0 ? (double)rep->input_bytes / (double)rep->output_bytes : 0;
    rep->weights_ratio = rep->matrix_bytes > 0 ? 4.0 * (double)rep->matrix_params / (double)rep->matrix_bytes : 0;
    rep->seconds = now() - t0;
done:
    if (w) bctf_writer_abort(w);
    for (int i = 0; hess && i < n_slots_of(m); i++) free(hess[i]);
    free(hess);
    free(want);
    free(emb_weight);
    smooth_plan_free(&plan);
    calib_free(&calib);
    cJSON_Delete(meta);
    free(slots);
    bert_model_free(m);
    prune_result_free(&pruned);
    if (rc != BCT_OK) compress_report_free(rep);
    return rc;
}

void compress_report_free(compress_report *rep) {
    free(rep->tensors);
    free(rep->blocks);
    cJSON_Delete(rep->pruning);
    rep->pruning = NULL;
    rep->tensors = NULL;
    rep->blocks = NULL;
    rep->n_tensors = rep->n_blocks = 0;
}

cJSON *compress_report_json(const compress_report *rep) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "input_bytes", (double)rep->input_bytes);
    cJSON_AddNumberToObject(o, "output_bytes", (double)rep->output_bytes);
    cJSON_AddNumberToObject(o, "ratio", rep->ratio);
    cJSON_AddNumberToObject(o, "weights_ratio", rep->weights_ratio);
    cJSON_AddNumberToObject(o, "seconds", rep->seconds);
    cJSON *arr = cJSON_AddArrayToObject(o, "tensors");
    for (int i = 0; i < rep->n_tensors; i++) {
        const compress_tensor *t = &rep->tensors[i];
        cJSON *e = cJSON_CreateObject();
        cJSON_AddStringToObject(e, "name", t->name);
        cJSON *shape = cJSON_AddArrayToObject(e, "shape");
        cJSON_AddItemToArray(shape, cJSON_CreateNumber(t->rows));
        if (t->cols) cJSON_AddItemToArray(shape, cJSON_CreateNumber(t->cols));
        cJSON_AddStringToObject(e, "format", t->bits == 32 ? "f32" : t->bits == 8 ? "q8" : t->bits == 4 ? "q4" : t->bits == 3 ? "q3" : "q2");
        if (t->bits != 32) {
            cJSON_AddNumberToObject(e, "block", t->block);
            cJSON_AddNumberToObject(e, "padded_cols", t->padded_cols);
        }
        cJSON_AddNumberToObject(e, "bits_per_weight", t->bits_per_weight);
        cJSON_AddNumberToObject(e, "rel_error", t->rel_error);
        if (t->smooth_alpha >= 0) cJSON_AddNumberToObject(e, "smooth_alpha", t->smooth_alpha);
        cJSON_AddItemToArray(arr, e);
    }
    if (rep->pruning) cJSON_AddItemToObject(o, "pruning", cJSON_Duplicate(rep->pruning, 1));
    cJSON *blocks = cJSON_AddArrayToObject(o, "block_sizes");
    for (int i = 0; i < rep->n_blocks; i++) {
        const compress_block_use *b = &rep->blocks[i];
        cJSON *e = cJSON_CreateObject();
        cJSON_AddStringToObject(e, "kind", b->kind);
        cJSON_AddNumberToObject(e, "cols", b->cols);
        cJSON_AddNumberToObject(e, "asked", b->asked);
        cJSON_AddNumberToObject(e, "block", b->block);
        cJSON_AddNumberToObject(e, "padded_cols", b->padded_cols);
        cJSON_AddNumberToObject(e, "tensors", b->tensors);
        cJSON_AddItemToArray(blocks, e);
    }
    return o;
}
