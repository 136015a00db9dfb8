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

int cli_parse_double(const char *s, const char *what, double lo, double hi, double *out) {
    char *end;
    double v = strtod(s, &end);
    if (end == s || *end || !(v >= lo && v <= hi)) { /* (NaN fails the range) */
        fprintf(stderr, "bct: %s must be a number in [%g, %g], got \"%s\"\n", what, lo, hi, s);
        return CLI_USAGE;
    }
    *out = v;
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
