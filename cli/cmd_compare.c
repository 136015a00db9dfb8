/* bct compare: two models (checkpoint or .bct) on one GLUE set. */
#include <cjson/cJSON.h>
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli_util.h"
#include "commands.h"
#include "glue_eval.h"

static const char *usage_text =
    "usage: bct compare A B --task sst2|mrpc|rte --data DEV.tsv [options]\n"
    "\n"
    "Runs models A and B (checkpoint directories or .bct files) on the same\n"
    "examples and reports the accuracy and F1 of each, how often their\n"
    "predictions agree, and the max and mean absolute logit difference.\n"
    "Overrides apply to B (A runs as its file says).\n"
    "\n"
    "  --task T             sst2, mrpc or rte\n"
    "  --data FILE          the TSV file\n"
    "  --batch N            sequences per forward pass (default 32)\n"
    "  --threads N          BLAS threads\n"
    "  --limit N            only the first N examples\n"
    "  --json               one JSON object: a, b, agreement, max_logit_diff, mean_logit_diff\n"
    CLI_MODE_HELP
    "  -h, --help           this text\n";

typedef struct side {
    const char *path;
    bert_model *m;
    float *logits;
    eval_result r;
} side;

static int run_side(side *s, const glue_set *set, int batch, const bert_mode *mode) {
    if (!(s->m = cli_load_model(s->path, 0, mode))) return CLI_FAIL;
    s->logits = malloc((size_t)(set->n + 1) * s->m->cfg.num_labels * sizeof(float));
    if (!s->logits) return CLI_FAIL;
    return glue_eval_run(s->m, set, batch, 1, s->logits, &s->r) == BCT_OK ? CLI_OK : CLI_FAIL;
}

static cJSON *side_json(const side *s) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "model", s->path);
    cJSON_AddStringToObject(o, "format", s->m->format);
    cJSON_AddNumberToObject(o, "file_bytes", (double)s->m->file_bytes);
    eval_result_json(o, &s->r);
    return o;
}

int cmd_compare(int argc, char **argv) {
    static const struct option opts[] = {
        {"task", required_argument, 0, 'T'}, {"data", required_argument, 0, 'd'},
        {"batch", required_argument, 0, 'b'}, {"threads", required_argument, 0, 't'},
        {"limit", required_argument, 0, 'n'}, {"json", no_argument, 0, 'j'},
        {"activations", required_argument, 0, 'A'}, {"nonlinear", required_argument, 0, 'N'},
        {"nl-bits", required_argument, 0, 'B'}, {"help", no_argument, 0, 'h'}, {0, 0, 0, 0}};
    const char *task_name = NULL, *data = NULL;
    int batch = 32, threads = 0, limit = 0, json = 0, c;
    cli_mode cm = {0};
    optind = 1;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case 'T': task_name = optarg; break;
        case 'd': data = optarg; break;
        case 'b': if (cli_parse_int(optarg, "--batch", 1, 4096, &batch)) return CLI_USAGE; break;
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
    int task = task_name ? glue_task_parse(task_name) : -1;
    if (argc - optind != 2 || task < 0 || !data) {
        fputs(usage_text, stderr);
        return CLI_USAGE;
    }
    cli_set_threads(threads);
    side a = {.path = argv[optind]}, b = {.path = argv[optind + 1]};
    glue_set set = {0};
    bct_error err = {{0}};
    int rc = CLI_FAIL;
    /* Labels are read through A's id2label; B must name them the same. */
    bert_model *probe = cli_load_model(a.path, 0, NULL);
    if (!probe) return CLI_FAIL;
    if (glue_load(data, (glue_task)task, &probe->cfg, &set, &err) != BCT_OK) {
        fprintf(stderr, "bct: %s\n", err.msg);
        bert_model_free(probe);
        return CLI_FAIL;
    }
    bert_model_free(probe);
    if (limit && limit < set.n) set.n = limit;
    if (run_side(&a, &set, batch, NULL) || run_side(&b, &set, batch, cm.set ? &cm.mode : NULL))
        goto done;
    int nl = a.m->cfg.num_labels;
    if (b.m->cfg.num_labels != nl) {
        fprintf(stderr, "bct: the models have %d and %d labels\n", nl, b.m->cfg.num_labels);
        goto done;
    }
    int agree = 0;
    double max_diff = 0, sum_diff = 0;
    for (int i = 0; i < set.n; i++) {
        const float *la = a.logits + (size_t)i * nl, *lb = b.logits + (size_t)i * nl;
        agree += argmax(la, nl) == argmax(lb, nl);
        for (int j = 0; j < nl; j++) {
            double d = fabs((double)la[j] - lb[j]);
            max_diff = d > max_diff ? d : max_diff;
            sum_diff += d;
        }
    }
    double agreement = set.n ? (double)agree / set.n : 0;
    double mean_diff = set.n ? sum_diff / ((double)set.n * nl) : 0;
    if (json) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "task", glue_task_name((glue_task)task));
        cJSON_AddItemToObject(o, "a", side_json(&a));
        cJSON_AddItemToObject(o, "b", side_json(&b));
        cJSON_AddNumberToObject(o, "agreement", agreement);
        cJSON_AddNumberToObject(o, "max_logit_diff", max_diff);
        cJSON_AddNumberToObject(o, "mean_logit_diff", mean_diff);
        char *s = cJSON_PrintUnformatted(o);
        if (s) puts(s);
        free(s);
        cJSON_Delete(o);
    } else {
        const side *sides[2] = {&a, &b};
        for (int i = 0; i < 2; i++)
            printf("%c: %-40s %-7s accuracy %.4f  f1 %.4f  %lld bytes\n", 'A' + i, sides[i]->path,
                   sides[i]->m->format, eval_accuracy(&sides[i]->r), eval_f1(&sides[i]->r),
                   sides[i]->m->file_bytes);
        printf("agreement %.4f (%d/%d)  max |logit diff| %.4f  mean %.4f\n", agreement, agree, set.n,
               max_diff, mean_diff);
    }
    rc = CLI_OK;
done:
    bert_model_free(a.m);
    bert_model_free(b.m);
    free(a.logits);
    free(b.logits);
    glue_free(&set);
    return rc;
}
