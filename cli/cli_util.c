#include "cli_util.h"

#include <cblas.h>
#include <cjson/cJSON.h>
#include <errno.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "model/bert_forward.h"
#include "kernels/threadpool.h"

bert_model *cli_load_model(const char *path, int max_len, const bert_mode *mode) {
    bct_error err = {{0}};
    bert_model *m = NULL;
    if (bert_model_load_mode(path, mode, &m, &err) != BCT_OK) {
        fprintf(stderr, "bct: cannot load model: %s\n", err.msg);
        return NULL;
    }
    if (max_len > 0 && bert_model_set_max_len(m, max_len, &err) != BCT_OK) {
        fprintf(stderr, "bct: %s\n", err.msg);
        bert_model_free(m);
        return NULL;
    }
    return m;
}

int cli_mode_option(cli_mode *cm, const char *name, const char *value) {
    if (!cm->set) {
        cm->set = 1;
        cm->mode = BERT_MODE_KEEP;
    }
    if (strcmp(name, "activations") == 0) {
        if (strcmp(value, "int8") && strcmp(value, "fp32")) {
            fprintf(stderr, "bct: --activations must be int8 or fp32\n");
            return CLI_USAGE;
        }
        cm->mode.act_int8 = strcmp(value, "int8") == 0;
        return CLI_OK;
    }
    if (strcmp(name, "nl-bits") == 0)
        return cli_parse_int(value, "--nl-bits", 8, 24, &cm->mode.nl_bits);
    bert_mode *m = &cm->mode;
    m->int_gelu = m->int_softmax = m->int_layernorm = strcmp(value, "int") == 0;
    if (!strcmp(value, "int") || !strcmp(value, "fp32")) return CLI_OK;
    char buf[128];
    snprintf(buf, sizeof(buf), "%s", value);
    for (char *save = NULL, *tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        if (!strcmp(tok, "gelu")) m->int_gelu = 1;
        else if (!strcmp(tok, "softmax")) m->int_softmax = 1;
        else if (!strcmp(tok, "layernorm")) m->int_layernorm = 1;
        else {
            fprintf(stderr, "bct: --nonlinear: unknown op \"%s\" (gelu, softmax, layernorm)\n", tok);
            return CLI_USAGE;
        }
    }
    return CLI_OK;
}

bct_pool *cli_threads(int n) {
    if (n > 0) openblas_set_num_threads(n);
    return bct_pool_create(n);
}

int cli_parse_int(const char *s, const char *what, int lo, int hi, int *out) {
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < lo || v > hi) {
        fprintf(stderr, "bct: %s must be an integer in [%d, %d], got \"%s\"\n", what, lo, hi, s);
        return CLI_USAGE;
    }
    *out = (int)v;
    return CLI_OK;
}

double cli_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

void cli_print_json(cJSON *o) {
    char *s = o ? cJSON_PrintUnformatted(o) : NULL;
    if (s) puts(s);
    else fprintf(stderr, "bct: out of memory printing JSON\n");
    free(s);
    cJSON_Delete(o);
}

void cli_progress(size_t done, size_t total) {
    static const int width = 40;
    if (!isatty(STDERR_FILENO) || total == 0) return;
    int fill = (int)(done * (size_t)width / total);
    fprintf(stderr, "\r[%.*s%*s] %3d%% %zu/%zu", fill, "########################################",
            width - fill, "", (int)(done * 100 / total), done, total);
    if (done == total) fputc('\n', stderr);
    fflush(stderr);
}

typedef struct encoded {
    int32_t *ids;
    uint8_t *types;
    int len;
    int index;
} encoded;

static int by_length(const void *a, const void *b) {
    const encoded *x = a, *y = b;
    return x->len != y->len ? x->len - y->len : x->index - y->index;
}

static int encode_all(const bert_model *m, const cli_text *texts, int n, encoded *enc) {
    int cap = m->max_len;
    for (int i = 0; i < n; i++) {
        bct_error err = {{0}};
        tok_encoding e = {.ids = malloc((size_t)cap * sizeof(int32_t)), .type_ids = malloc((size_t)cap),
                          .cap = cap};
        enc[i].ids = e.ids;
        enc[i].types = e.type_ids;
        enc[i].index = i;
        if (!e.ids || !e.type_ids) {
            fprintf(stderr, "bct: out of memory\n");
            return BCT_ENOMEM;
        }
        const char *b = texts[i].b;
        int rc = bert_model_encode(m, texts[i].a, strlen(texts[i].a), b, b ? strlen(b) : 0, &e, &err);
        if (rc != BCT_OK) {
            fprintf(stderr, "bct: example %d: %s\n", i + 1, err.msg);
            return rc;
        }
        enc[i].len = e.len;
    }
    return BCT_OK;
}

int cli_run_texts(const bert_model *m, const cli_text *texts, int n, int batch_size, bct_pool *pool,
                  int progress, float *logits) {
    int nl = m->cfg.num_labels, rc = BCT_OK;
    encoded *enc = calloc((size_t)n + 1, sizeof(encoded));
    bert_seq *seqs = calloc((size_t)batch_size, sizeof(bert_seq));
    float *out = malloc((size_t)batch_size * nl * sizeof(float));
    bert_ws *ws = bert_ws_create();
    if (!enc || !seqs || !out || !ws) {
        fprintf(stderr, "bct: out of memory\n");
        rc = BCT_ENOMEM;
        goto done;
    }
    bert_ws_set_pool(ws, pool);
    if ((rc = encode_all(m, texts, n, enc)) != BCT_OK) goto done;
    /* Similar lengths in a batch: less padding-free work imbalance and
     * better cache use in attention. */
    qsort(enc, (size_t)n, sizeof(encoded), by_length);
    for (int start = 0; start < n; start += batch_size) {
        int cnt = n - start < batch_size ? n - start : batch_size;
        bct_error err = {{0}};
        for (int j = 0; j < cnt; j++)
            seqs[j] = (bert_seq){enc[start + j].ids, enc[start + j].types, enc[start + j].len};
        if ((rc = bert_forward(m, seqs, cnt, out, ws, &err)) != BCT_OK) {
            fprintf(stderr, "bct: %s\n", err.msg);
            goto done;
        }
        for (int j = 0; j < cnt; j++)
            memcpy(logits + (size_t)enc[start + j].index * nl, out + (size_t)j * nl,
                   (size_t)nl * sizeof(float));
        if (progress) cli_progress((size_t)(start + cnt), (size_t)n);
    }
done:
    if (enc)
        for (int i = 0; i < n; i++) {
            free(enc[i].ids);
            free(enc[i].types);
        }
    free(enc);
    free(seqs);
    free(out);
    bert_ws_free(ws);
    return rc;
}
