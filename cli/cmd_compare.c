/* bct compare: two models (checkpoint or .bct) on one GLUE set. */
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
    "usage: bct compare A B --task sst2|mrpc|rte|generic --data DEV.tsv [options]\n"
    "\n"
    "Runs models A and B (checkpoint directories or .bct files) on the same\n"
    "examples and reports the accuracy and F1 of each, how often their\n"
    "predictions agree, and the max and mean absolute logit difference.\n"
    "Overrides apply to B (A runs as its file says).\n"
    "\n"
    GLUE_RUN_HELP
    "  --json               one JSON object: a, b, agreement, max_logit_diff, mean_logit_diff\n"
    "  -h, --help           this text\n";

typedef struct side {
    const char *path;
    bert_model *m;
    float *logits;
    eval_result r;
} side;

static int run_side(side *s, const glue_set *set, int batch, bct_pool *pool, const bert_mode *mode) {
    if (!(s->m = cli_load_model(s->path, 0, mode))) return CLI_FAIL;
    s->logits = malloc((size_t)(set->n + 1) * s->m->cfg.num_labels * sizeof(float));
    if (!s->logits) return CLI_FAIL;
    bct_error err = {{0}};
    if (glue_eval_run(s->m, set, batch, pool, glue_progress_bar, NULL, s->logits, &s->r, &err) == BCT_OK)
        return CLI_OK;
    fprintf(stderr, "bct: %s: %s\n", s->path, err.msg);
    return CLI_FAIL;
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
    static const struct option opts[] = {GLUE_RUN_LONGOPTS, {"help", no_argument, 0, 'h'}, {0, 0, 0, 0}};
    glue_run_opts ro = GLUE_RUN_DEFAULTS;
    int c, r;
    optind = 1;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        if ((r = glue_run_option(&ro, c, optarg)) != 0) {
            if (r < 0) return CLI_USAGE;
            continue;
        }
        fputs(usage_text, c == 'h' ? stdout : stderr);
        return c == 'h' ? CLI_OK : CLI_USAGE;
    }
    int task = ro.task_name ? glue_task_parse(ro.task_name) : -1;
    if (argc - optind != 2 || task < 0 || !ro.data) {
        fputs(usage_text, stderr);
        return CLI_USAGE;
    }
    side a = {.path = argv[optind]}, b = {.path = argv[optind + 1]};
    glue_set set = {0};
    bct_error err = {{0}};
    int rc = CLI_FAIL;
    /* Labels are read through A's id2label; B must name them the same. */
    bert_model *probe = cli_load_model(a.path, 0, NULL);
    if (!probe) return CLI_FAIL;
    if (glue_load(ro.data, (glue_task)task, &probe->cfg, 0, &set, &err) != BCT_OK) {
        fprintf(stderr, "bct: %s\n", err.msg);
        bert_model_free(probe);
        return CLI_FAIL;
    }
    bert_model_free(probe);
    if (ro.limit && ro.limit < set.n) set.n = ro.limit;
    bct_pool *pool = cli_threads(ro.threads);
    rc = run_side(&a, &set, ro.batch, pool, NULL) ||
         run_side(&b, &set, ro.batch, pool, ro.mode.set ? &ro.mode.mode : NULL);
    bct_pool_free(pool);
    if (rc) {
        rc = CLI_FAIL;
        goto done;
    }
    int nl = a.m->cfg.num_labels;
    if (b.m->cfg.num_labels != nl) {
        fprintf(stderr, "bct: the models have %d and %d labels\n", nl, b.m->cfg.num_labels);
        goto done;
    }
    eval_diff d;
    eval_compare(a.logits, b.logits, set.n, nl, &d);
    double agreement = eval_agreement(&d), max_diff = d.max_abs, mean_diff = d.mean_abs;
    if (ro.json) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "task", glue_task_name((glue_task)task));
        cJSON_AddItemToObject(o, "a", side_json(&a));
        cJSON_AddItemToObject(o, "b", side_json(&b));
        cJSON_AddNumberToObject(o, "agreement", agreement);
        cJSON_AddNumberToObject(o, "max_logit_diff", max_diff);
        cJSON_AddNumberToObject(o, "mean_logit_diff", mean_diff);
        cli_print_json(o);
    } else {
        const side *sides[2] = {&a, &b};
        for (int i = 0; i < 2; i++)
            printf("%c: %-40s %-7s accuracy %.4f  f1 %.4f  %lld bytes\n", 'A' + i, sides[i]->path,
                   sides[i]->m->format, eval_accuracy(&sides[i]->r), eval_f1(&sides[i]->r),
                   sides[i]->m->file_bytes);
        printf("agreement %.4f (%d/%d)  max |logit diff| %.4f  mean %.4f\n", agreement, d.agree, set.n,
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
