/* bct eval: accuracy (and F1 of label 1) on a GLUE dev set. */
#include <cjson/cJSON.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli_util.h"
#include "commands.h"
#include "glue_data.h"

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
    "  -h, --help           this text\n";

typedef struct eval_result {
    int n, correct, tp, fp, fn;
    double seconds;
} eval_result;

static int argmax(const float *v, int n) {
    int best = 0;
    for (int i = 1; i < n; i++)
        if (v[i] > v[best]) best = i;
    return best;
}

static eval_result score(const glue_set *set, const float *logits, int nl) {
    eval_result r = {.n = set->n};
    for (int i = 0; i < set->n; i++) {
        int pred = argmax(logits + (size_t)i * nl, nl), gold = set->ex[i].label;
        r.correct += pred == gold;
        r.tp += pred == 1 && gold == 1;
        r.fp += pred == 1 && gold != 1;
        r.fn += pred != 1 && gold == 1;
    }
    return r;
}

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
    double acc = r->n ? (double)r->correct / r->n : 0;
    int denom = 2 * r->tp + r->fp + r->fn;
    double f1 = denom ? 2.0 * r->tp / denom : 0;
    if (json) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "task", task);
        cJSON_AddNumberToObject(o, "n", r->n);
        cJSON_AddNumberToObject(o, "correct", r->correct);
        cJSON_AddNumberToObject(o, "accuracy", acc);
        cJSON_AddNumberToObject(o, "f1", f1);
        cJSON_AddNumberToObject(o, "seconds", r->seconds);
        cJSON_AddNumberToObject(o, "sentences_per_s", r->seconds > 0 ? r->n / r->seconds : 0);
        char *s = cJSON_PrintUnformatted(o);
        if (s) puts(s);
        free(s);
        cJSON_Delete(o);
    } else {
        printf("task %s  n %d  accuracy %.6f (%d/%d)  f1 %.6f  %.2f s (%.1f sentences/s)\n", task,
               r->n, acc, r->correct, r->n, f1, r->seconds, r->seconds > 0 ? r->n / r->seconds : 0);
    }
}

int cmd_eval(int argc, char **argv) {
    static const struct option opts[] = {
        {"model", required_argument, 0, 'm'}, {"task", required_argument, 0, 'T'},
        {"data", required_argument, 0, 'd'}, {"batch", required_argument, 0, 'b'},
        {"max-len", required_argument, 0, 'L'}, {"threads", required_argument, 0, 't'},
        {"limit", required_argument, 0, 'n'}, {"dump-logits", required_argument, 0, 'D'},
        {"json", no_argument, 0, 'j'}, {"help", no_argument, 0, 'h'}, {0, 0, 0, 0}};
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
    bert_model *m = cli_load_model(model, max_len);
    if (!m) return CLI_FAIL;

    int rc = CLI_FAIL;
    bct_error err = {{0}};
    glue_set set;
    cli_text *texts = NULL;
    float *logits = NULL;
    if (glue_load(data, (glue_task)task, &m->cfg, &set, &err) != BCT_OK) {
        fprintf(stderr, "bct: %s\n", err.msg);
        bert_model_free(m);
        return CLI_FAIL;
    }
    if (limit && limit < set.n) set.n = limit;
    texts = malloc((size_t)(set.n + 1) * sizeof(cli_text));
    logits = malloc((size_t)(set.n + 1) * m->cfg.num_labels * sizeof(float));
    if (!texts || !logits) {
        fprintf(stderr, "bct: out of memory\n");
        goto done;
    }
    for (int i = 0; i < set.n; i++) texts[i] = (cli_text){set.ex[i].a, set.ex[i].b};
    double t0 = cli_now();
    if (cli_run_texts(m, texts, set.n, batch, 1, logits) != BCT_OK) goto done;
    eval_result r = score(&set, logits, m->cfg.num_labels);
    r.seconds = cli_now() - t0;
    if (dump && dump_logits(dump, logits, set.n, m->cfg.num_labels) != CLI_OK) goto done;
    report(glue_task_name((glue_task)task), &r, json);
    rc = CLI_OK;
done:
    free(texts);
    free(logits);
    glue_free(&set);
    bert_model_free(m);
    return rc;
}
