/* glue_eval.h - runs a model over a GLUE set and scores it (accuracy, F1
 * of label 1), for bct eval and bct compare. */
#ifndef BCT_GLUE_EVAL_H
#define BCT_GLUE_EVAL_H

#include <getopt.h>

#include "model/bert_model.h"
#include "cli_util.h"
#include "glue_data.h"

struct cJSON;

typedef struct eval_result {
    int n, correct, tp, fp, fn;
    double seconds;
} eval_result;

/* logits: set->n x num_labels, filled in input order; pool: the engine's
 * threads (cli_threads; NULL: this one). */
int glue_eval_run(const bert_model *m, const glue_set *set, int batch, struct bct_pool *pool, int progress,
                  float *logits, eval_result *r);
double eval_accuracy(const eval_result *r);
double eval_f1(const eval_result *r);
/* Adds n, correct, accuracy, f1, seconds, sentences_per_s to o. */
void eval_result_json(struct cJSON *o, const eval_result *r);

int argmax(const float *v, int n);

/* Options shared by eval and compare. */
typedef struct glue_run_opts {
    const char *task_name, *data;
    int batch, threads, limit, json;
    cli_mode mode;
} glue_run_opts;

#define GLUE_RUN_DEFAULTS {.batch = 32}
#define GLUE_RUN_LONGOPTS                                                                        \
    {"task", required_argument, 0, 'T'}, {"data", required_argument, 0, 'd'},                   \
        {"batch", required_argument, 0, 'b'}, {"threads", required_argument, 0, 't'},            \
        {"limit", required_argument, 0, 'n'}, {"json", no_argument, 0, 'j'},                     \
        {"activations", required_argument, 0, 'A'}, {"nonlinear", required_argument, 0, 'N'},   \
        {"nl-bits", required_argument, 0, 'B'}
#define GLUE_RUN_HELP                                                                          \
    "  --task T             sst2, mrpc or rte (which columns hold text and label)\n"           \
    "  --data FILE          the TSV file (header line first)\n"                                \
    "  --batch N            sequences per forward pass (default 32)\n"                         \
    "  --threads N          threads: OpenBLAS (fp32), engine pool (int8/int4); default all\n" \
    "  --limit N            only the first N examples\n" CLI_MODE_HELP

/* Handles option c of GLUE_RUN_LONGOPTS: 1 handled, 0 not one of them,
 * -1 bad value (message printed). */
int glue_run_option(glue_run_opts *o, int c, const char *arg);

#endif
