/* bct eval: accuracy (and F1 of label 1) on a GLUE dev set. */
#include <cjson/cJSON.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli_util.h"
#include "commands.h"
#include "kernels/threadpool.h"
#include "glue_eval.h"

static const char *usage_text =
    "usage: bct eval --model DIR --task sst2|mrpc|rte|generic --data DEV.tsv [options]\n"
    "\n"
    "Runs every example of a GLUE TSV file and prints accuracy and F1 (label 1\n"
    "as the positive class), with a progress bar on a terminal.\n"
    "\n"
    "  --model PATH         checkpoint directory or .bct file\n"
    GLUE_RUN_HELP
    "  --max-len N          truncate to N tokens (default 128)\n"
    "  --dump-logits FILE   write one TAB-separated logits row per example\n"
    "  --json               one JSON object: task, n, accuracy, f1, correct, seconds\n"
    "  -h, --help           this text\n";

static int dump_logits(const char *path, const float *logits, int n, int nl) {
    FILE *f = fopen(path, "w");
    if (!f) {
        perror(path);
        return CLI_FAIL;
    }
    for (int i = 0; i < n; i++)
        for (int j = 0; j < nl; j++) fprintf(f, "%.6f%c", logits[(size_t)i * nl + j], j + 1 < nl ? '\t' : '\n');
    return fclose(f) == 0 ? CLI_OK : CLI_FAIL;
}

static void report(const char *task, const eval_result *r, int json) {
    if (json) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "task", task);
        eval_result_json(o, r);
        cli_print_json(o);
    } else {
        printf("task %s  n %d  accuracy %.6f (%d/%d)  f1 %.6f  %.2f s (%.1f sentences/s)\n", task,
               r->n, eval_accuracy(r), r->correct, r->n, eval_f1(r), r->seconds,
               r->seconds > 0 ? r->n / r->seconds : 0);
    }
}

int cmd_eval(int argc, char **argv) {
    static const struct option opts[] = {
        GLUE_RUN_LONGOPTS,
        {"model", required_argument, 0, 'm'}, {"max-len", required_argument, 0, 'L'},
        {"dump-logits", required_argument, 0, 'D'}, {"help", no_argument, 0, 'h'}, {0, 0, 0, 0}};
    glue_run_opts ro = GLUE_RUN_DEFAULTS;
    const char *model = NULL, *dump = NULL;
    int max_len = 0, c, r;
    optind = 1;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        if ((r = glue_run_option(&ro, c, optarg)) != 0) {
            if (r < 0) return CLI_USAGE;
            continue;
        }
        switch (c) {
        case 'm': model = optarg; break;
        case 'D': dump = optarg; break;
        case 'L': if (cli_parse_int(optarg, "--max-len", 3, 1 << 20, &max_len)) return CLI_USAGE; break;
        case 'h': fputs(usage_text, stdout); return CLI_OK;
        default: fputs(usage_text, stderr); return CLI_USAGE;
        }
    }
    if (!model || !ro.task_name || !ro.data || optind != argc) {
        fputs(usage_text, stderr);
        return CLI_USAGE;
    }
    int task = glue_task_parse(ro.task_name);
    if (task < 0) {
        fprintf(stderr, "bct: unknown task \"%s\" (sst2, mrpc, rte, generic)\n", ro.task_name);
        return CLI_USAGE;
    }
    bert_model *m = cli_load_model(model, max_len, ro.mode.set ? &ro.mode.mode : NULL);
    if (!m) return CLI_FAIL;
    bct_pool *pool = cli_threads(ro.threads);

    int rc = CLI_FAIL;
    bct_error err = {{0}};
    glue_set set;
    float *logits = NULL;
    if (glue_load(ro.data, (glue_task)task, &m->cfg, 0, &set, &err) != BCT_OK) {
        fprintf(stderr, "bct: %s\n", err.msg);
        bct_pool_free(pool);
        bert_model_free(m);
        return CLI_FAIL;
    }
    if (ro.limit && ro.limit < set.n) set.n = ro.limit;
    logits = malloc((size_t)(set.n + 1) * m->cfg.num_labels * sizeof(float));
    if (!logits) {
        fprintf(stderr, "bct: out of memory\n");
        goto done;
    }
    eval_result res;
    if (glue_eval_run(m, &set, ro.batch, pool, glue_progress_bar, NULL, logits, &res, &err) != BCT_OK) {
        fprintf(stderr, "bct: %s\n", err.msg);
        goto done;
    }
    if (dump && dump_logits(dump, logits, set.n, m->cfg.num_labels) != CLI_OK) goto done;
    report(glue_task_name((glue_task)task), &res, ro.json);
    rc = CLI_OK;
done:
    free(logits);
    glue_free(&set);
    bct_pool_free(pool);
    bert_model_free(m);
    return rc;
}
