/* bct classify: one text or text pair -> labels sorted by score. */
#include <cjson/cJSON.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model/bert_forward.h"
#include "cli_util.h"
#include "commands.h"
#include "kernels/threadpool.h"

static const char *usage_text =
    "usage: bct classify --model DIR [options] TEXT [TEXT_PAIR]\n"
    "\n"
    "Classifies TEXT (or the pair TEXT, TEXT_PAIR) and prints every label with\n"
    "its score, highest first.\n"
    "\n"
    "  --model DIR      Hugging Face checkpoint directory\n"
    "  --max-len N      truncate to N tokens (default 128)\n"
    "  --threads N      threads (OpenBLAS for fp32, the engine's pool for int8/int4;\n"
    "                   default: one per CPU)\n"
    "  --json           print one JSON object: {\"labels\": [{\"label\", \"score\"}...], \"logits\"}\n"
    "  -h, --help       this text\n";

static void print_result(const bert_model *m, const float *logits, int tokens, int json) {
    int n = m->cfg.num_labels;
    bert_label_score *order = malloc((size_t)n * sizeof(*order));
    if (!order) {
        fprintf(stderr, "bct: out of memory\n");
        return;
    }
    bert_rank_labels(&m->cfg, logits, 0, order);
    if (json) {
        cJSON *root = cJSON_CreateObject(), *labels = cJSON_AddArrayToObject(root, "labels");
        for (int i = 0; i < n; i++) {
            cJSON *o = cJSON_CreateObject();
            cJSON_AddStringToObject(o, "label", m->cfg.labels[order[i].id]);
            cJSON_AddNumberToObject(o, "score", order[i].score);
            cJSON_AddItemToArray(labels, o);
        }
        cJSON *lg = cJSON_AddArrayToObject(root, "logits");
        for (int i = 0; i < n; i++) cJSON_AddItemToArray(lg, cJSON_CreateNumber(logits[i]));
        cJSON_AddNumberToObject(root, "tokens", tokens);
        cli_print_json(root);
    } else {
        for (int i = 0; i < n; i++) printf("%-20s %.6f\n", m->cfg.labels[order[i].id], order[i].score);
    }
    free(order);
}

int cmd_classify(int argc, char **argv) {
    static const struct option opts[] = {
        {"model", required_argument, 0, 'm'}, {"max-len", required_argument, 0, 'L'},
        {"threads", required_argument, 0, 't'}, {"json", no_argument, 0, 'j'},
        {"help", no_argument, 0, 'h'}, {0, 0, 0, 0}};
    const char *model = NULL;
    int max_len = 0, threads = 0, json = 0, c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case 'm': model = optarg; break;
        case 'L': if (cli_parse_int(optarg, "--max-len", 3, 1 << 20, &max_len)) return CLI_USAGE; break;
        case 't': if (cli_parse_int(optarg, "--threads", 1, 1024, &threads)) return CLI_USAGE; break;
        case 'j': json = 1; break;
        case 'h': fputs(usage_text, stdout); return CLI_OK;
        default: fputs(usage_text, stderr); return CLI_USAGE;
        }
    }
    int nargs = argc - optind;
    if (!model || nargs < 1 || nargs > 2) {
        fputs(usage_text, stderr);
        return CLI_USAGE;
    }
    bert_model *m = cli_load_model(model, max_len, NULL);
    if (!m) return CLI_FAIL;

    int rc = CLI_FAIL;
    bct_error err = {{0}};
    int cap = m->max_len;
    tok_encoding e = {.ids = malloc((size_t)cap * sizeof(int32_t)), .type_ids = malloc((size_t)cap),
                      .cap = cap};
    float *logits = malloc((size_t)m->cfg.num_labels * sizeof(float));
    bert_ws *ws = bert_ws_create();
    bct_pool *pool = cli_threads(threads);
    if (ws) bert_ws_set_pool(ws, pool);
    const char *a = argv[optind], *b = nargs == 2 ? argv[optind + 1] : NULL;
    if (!e.ids || !e.type_ids || !logits || !ws) {
        fprintf(stderr, "bct: out of memory\n");
    } else if (bert_model_encode(m, a, strlen(a), b, b ? strlen(b) : 0, &e, &err) != BCT_OK ||
               bert_forward(m, &(bert_seq){e.ids, e.type_ids, e.len}, 1, logits, ws, &err) != BCT_OK) {
        fprintf(stderr, "bct: %s\n", err.msg);
    } else {
        print_result(m, logits, e.len, json);
        rc = CLI_OK;
    }
    free(e.ids);
    free(e.type_ids);
    free(logits);
    bert_ws_free(ws);
    bct_pool_free(pool);
    bert_model_free(m);
    return rc;
}
