/* bct eval: accuracy (and F1 of label 1) on a GLUE dev set. */
#include <cjson/cJSON.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli_util.h"
#include "commands.h"
#include "glue_eval.h"

static const char *usage_text =
    "usage: bct eval --model DIR --task sst2|mrpc|rte --data DEV.tsv [options]\n"
    "\n"
    "Runs every example of a GLUE TSV file and prints accuracy and F1 (label 1\n"
    "as the positive class), with a progress bar on a terminal.\n"
    "\n"
    "  --model DIR          Hugging Face checkpoint directory\n"
    "  --task T             sst2, mrpc or rte (which columns hold text and label)\n"
    "  --data FILE          the TSV file (header line first)\n"
    "  --batch N            sequences per forward pass (default 32)\n"
    "  --max-len N          truncate to N tokens (default 128)\n"
    "  --threads N          BLAS threads\n"
    "  --limit N            only the first N examples\n"
    "  --dump-logits FILE   write one TAB-separated logits row per example\n"
    "  --json               one JSON object: task, n, accuracy, f1, correct, seconds\n"
    CLI_MODE_HELP
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
        char *s = cJSON_PrintUnformatted(o);
        if (s) puts(s);
        free(s);
        cJSON_Delete(o);
    } else {
        printf("task %s  n %d  accuracy %.6f (%d/%d)  f1 %.6f  %.2f s (%.1f sentences/s)\n", task,
               r->n, eval_accuracy(r), r->correct, r->n, eval_f1(r), r->seconds,
               r->seconds > 0 ? r->n / r->seconds : 0);
    }
}

int cmd_eval(int argc, char **argv) {
    static const struct option opts[] = {
        {"model", required_argument, 0, 'm'}, {"task", required_argument, 0, 'T'},
        {"data", required_argument, 0, 'd'}, {"batch", required_argument, 0, 'b'},
        {"max-len", required_argument, 0, 'L'}, {"threads", required_argument, 0, 't'},
        {"limit", required_argument, 0, 'n'}, {"dump-logits", required_argument, 0, 'D'},
        {"json", no_argument, 0, 'j'}, {"help", no_argument, 0, 'h'},
        {"activations", required_argument, 0, 'A'}, {"nonlinear", required_argument, 0, 'N'},
        {"nl-bits", required_argument, 0, 'B'},
        {0, 0, 0, 0}};
    cli_mode cm = {0};
    const char *model = NULL, *task_name = NULL, *data = NULL, *dump = NULL;
    int batch = 32, max_len = 0, threads = 0, limit = 0, json = 0, c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case 'm': model = optarg; break;
        case 'T': task_name = optarg; break;
        case 'd': data = optarg; break;
        case 'D': dump = optarg; break;
        case 'b': if (cli_parse_int(optarg, "--batch", 1, 4096, &batch)) return CLI_USAGE; break;
        case 'L': if (cli_parse_int(optarg, "--max-len", 3, 1 << 20, &max_len)) return CLI_USAGE; break;
        case 't': if (cli_parse_int(optarg, "--threads", 1, 1024, &threads)) return CLI_USAGE; break;
        case 'n': if (cli_parse_int(optarg, "--limit", 1, 1 << 30, &limit)) return CLI_USAGE; break;
        case 'j': json = 1; break;
        case 'A': if (cli_mode_option(&cm, "activations", optarg)) return CLI_USAGE; break;
        case 'N': if (cli_mode_option(&cm, "nonlinear", optarg)) return CLI_USAGE; break;
        case 'B': if (cli_mode_option(&cm, "nl-bits", optarg)) return CLI_USAGE; break;
        case 'h': fputs(usage_text, stdout); return CLI_OK;
        default: fputs(usage_text, stderr); return CLI_USAGE;
        }
    }
    if (!model || !task_name || !data || optind != argc) {
        fputs(usage_text, stderr);
        return CLI_USAGE;
    }
    int task = glue_task_parse(task_name);
    if (task < 0) {
        fprintf(stderr, "bct: unknown task \"%s\" (sst2, mrpc, rte)\n", task_name);
        return CLI_USAGE;
    }
    cli_set_threads(threads);
    bert_model *m = cli_load_model(model, max_len, cm.set ? &cm.mode : NULL);
    if (!m) return CLI_FAIL;

    int rc = CLI_FAIL;
    bct_error err = {{0}};
    glue_set set;
    float *logits = NULL;
    eval_result r;
    if (glue_load(data, (glue_task)task, &m->cfg, &set, &err) != BCT_OK) {
        fprintf(stderr, "bct: %s\n", err.msg);
        bert_model_free(m);
        return CLI_FAIL;
    }
    if (limit && limit < set.n) set.n = limit;
    logits = malloc((size_t)(set.n + 1) * m->cfg.num_labels * sizeof(float));
    if (!logits) {
        fprintf(stderr, "bct: out of memory\n");
        goto done;
    }
    if (glue_eval_run(m, &set, batch, 1, logits, &r) != BCT_OK) goto done;
    if (dump && dump_logits(dump, logits, set.n, m->cfg.num_labels) != CLI_OK) goto done;
    report(glue_task_name((glue_task)task), &r, json);
    rc = CLI_OK;
done:
    free(logits);
    glue_free(&set);
    bert_model_free(m);
    return rc;
}
