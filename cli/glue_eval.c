#include "glue_eval.h"

#include <cjson/cJSON.h>
#include <stdlib.h>

#include "cli_util.h"

int argmax(const float *v, int n) {
    int best = 0;
    for (int i = 1; i < n; i++)
        if (v[i] > v[best]) best = i;
    return best;
}

int glue_eval_run(const bert_model *m, const glue_set *set, int batch, struct bct_pool *pool, int progress,
                  float *logits, eval_result *r) {
    int nl = m->cfg.num_labels;
    *r = (eval_result){.n = set->n};
    cli_text *texts = malloc((size_t)(set->n + 1) * sizeof(cli_text));
    if (!texts) return BCT_ENOMEM;
    for (int i = 0; i < set->n; i++) texts[i] = (cli_text){set->ex[i].a, set->ex[i].b};
    double t0 = cli_now();
    int rc = cli_run_texts(m, texts, set->n, batch, pool, progress, logits);
    r->seconds = cli_now() - t0;
    free(texts);
    if (rc != BCT_OK) return rc;
    for (int i = 0; i < set->n; i++) {
        int pred = argmax(logits + (size_t)i * nl, nl), gold = set->ex[i].label;
        r->correct += pred == gold;
        r->tp += pred == 1 && gold == 1;
        r->fp += pred == 1 && gold != 1;
        r->fn += pred != 1 && gold == 1;
    }
    return BCT_OK;
}

double eval_accuracy(const eval_result *r) { return r->n ? (double)r->correct / r->n : 0; }

double eval_f1(const eval_result *r) {
    int denom = 2 * r->tp + r->fp + r->fn;
    return denom ? 2.0 * r->tp / denom : 0;
}

void eval_result_json(cJSON *o, const eval_result *r) {
    cJSON_AddNumberToObject(o, "n", r->n);
    cJSON_AddNumberToObject(o, "correct", r->correct);
    cJSON_AddNumberToObject(o, "accuracy", eval_accuracy(r));
    cJSON_AddNumberToObject(o, "f1", eval_f1(r));
    cJSON_AddNumberToObject(o, "seconds", r->seconds);
    cJSON_AddNumberToObject(o, "sentences_per_s", r->seconds > 0 ? r->n / r->seconds : 0);
}

int glue_run_option(glue_run_opts *o, int c, const char *arg) {
    switch (c) {
    case 'T': o->task_name = arg; return 1;
    case 'd': o->data = arg; return 1;
    case 'j': o->json = 1; return 1;
    case 'b': return cli_parse_int(arg, "--batch", 1, 4096, &o->batch) ? -1 : 1;
    case 't': return cli_parse_int(arg, "--threads", 1, 1024, &o->threads) ? -1 : 1;
    case 'n': return cli_parse_int(arg, "--limit", 1, 1 << 30, &o->limit) ? -1 : 1;
    case 'A': return cli_mode_option(&o->mode, "activations", arg) ? -1 : 1;
    case 'N': return cli_mode_option(&o->mode, "nonlinear", arg) ? -1 : 1;
    case 'B': return cli_mode_option(&o->mode, "nl-bits", arg) ? -1 : 1;
    }
    return 0;
}
