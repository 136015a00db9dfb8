/* glue_eval.h - the options bct eval and bct compare share; the running
 * and scoring are eval/evaluate.h's. */
#ifndef BCT_GLUE_EVAL_H
#define BCT_GLUE_EVAL_H

#include <getopt.h>

#include "model/bert_model.h"
#include "cli_util.h"
#include "evaluate.h"

/* A cli_progress bar as evaluate.h's progress callback (ud unused). */
int glue_progress_bar(void *ud, size_t done, size_t total);

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
    "  --task T             sst2, mrpc, rte or generic (which columns hold text and label)\n"           \
    "  --data FILE          the TSV file (header line first)\n"                                \
    "  --batch N            sequences per forward pass (default 32)\n"                         \
    "  --threads N          threads: OpenBLAS (fp32), engine pool (int8/int4); default all\n" \
    "  --limit N            only the first N examples\n" CLI_MODE_HELP

/* Handles option c of GLUE_RUN_LONGOPTS: 1 handled, 0 not one of them,
 * -1 bad value (message printed). */
int glue_run_option(glue_run_opts *o, int c, const char *arg);

#endif
