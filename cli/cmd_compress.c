/* bct compress: Hugging Face checkpoint -> blockwise-compressed .bct file. */
#include <cjson/cJSON.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli_util.h"
#include "commands.h"
#include "compress.h"
#include "compress_budget.h"

static const char *usage_text =
    "usage: bct compress --in HF_DIR --out MODEL.bct [--preset w8a8|w8a8r|w4a8] [options]\n"
    "\n"
    "Compresses every tensor of a fine-tuned checkpoint blockwise, without\n"
    "retraining, and prints a report (format, bits/weight and relative error\n"
    "per tensor; input bytes, output bytes, whole-file and weights-only ratio).\n"
    "The file is written to a temporary name and renamed when complete.\n"
    "\n"
    "  --preset P          w8a8 (default): int8 codes everywhere, int8 activations,\n"
    "                      integer GELU/Softmax/LayerNorm; w4a8: 4-bit weights,\n"
    "                      3-bit word embeddings, int8 activations; w8a8r: w8a8\n"
    "                      with one weight scale per row and one activation\n"
    "                      scale per token for the Linear layers (opt-in)\n"
    "  --weights F         Linear weights: q8, q4, q3, q2 or f32 (kept)\n"
    "  --embeddings F      word embeddings: q8, q4, q3, q2 or f32\n"
    "  --tables F          position/token-type embeddings: q8, q4, q3, q2 or f32\n"
    "  --block N           block size of all three (multiple of 32 in [32, 4096]; a\n"
    "                      tensor whose rows it does not divide gets the largest\n"
    "                      multiple of 32 below it that divides its rows padded to\n"
    "                      a multiple of 32)\n"
    "  --scales S          scale encoding: f16 (2 bytes/block) or log8 (1 byte/block)\n"
    "  --activations A     how the model runs: int8 or fp32 matmul inputs\n"
    "  --nonlinear N       int or fp32 GELU/Softmax/LayerNorm\n"
    "  --calib FILE        calibration text (one example per line, TAB for pairs):\n"
    "                      weights each input channel's error by its mean square\n"
    "  --calib-n N         examples read from --calib (default 256)\n"
    "  --smooth A          with --calib: move activation outliers into the weights\n"
    "                      (SmoothQuant-style, per input channel); A = auto searches\n"
    "                      the exponent per Linear, or a number in (0, 1]\n"
    "  --gptq              with --calib: quantize Linear weights by GPTQ (error\n"
    "                      compensation along each row from the inputs' Hessian)\n"
    "  --tensor-format M=F a matrix whose name contains M gets format F (q8, q4,\n"
    "                      q3, q2) instead of its kind's; repeatable, first match wins\n"
    "  --max-drop P        accuracy-budgeted: the smallest file, choosing q8/q4/q3/q2\n"
    "                      per tensor group, whose accuracy on --eval is at most P\n"
    "                      points below the checkpoint's (measured; never exceeded:\n"
    "                      fails when even the preset loses more); prints the plan\n"
    "  --eval FILE         with --max-drop: the TSV judged on (keep it apart from the\n"
    "                      set you finally evaluate on, e.g. part of the train set)\n"
    "  --task T            with --max-drop: sst2, mrpc or rte (the --eval columns)\n"
    "  --confidence Z      with --max-drop: also keep Z standard errors of the measured\n"
    "                      drop inside the budget (default 0; 1.64 ~ one-sided 95%)\n"
    "  --budget-n N        with --max-drop: examples for the per-group sensitivity\n"
    "                      pass (default 512)\n"
    "  --threads N         with --max-drop: engine threads (default one per CPU)\n"
    "  --prune-heads F     with --calib: remove the fraction F of every layer's\n"
    "                      attention heads (lowest output contribution on the\n"
    "                      calibration text), refit the attention output Linear\n"
    "                      by least squares; the engine then runs fewer heads\n"
    "  --prune-ffn F       with --calib: the same for FFN neurons (intermediate\n"
    "                      rows; the FFN output Linear is refitted)\n"
    "  --json              print the report as one JSON object\n"
    "  -h, --help          this text\n";

static void progress(void *ud, int i, int n, const char *tensor) {
    (void)ud;
    (void)tensor;
    cli_progress((size_t)i + 1, (size_t)n);
}

static void print_report(const compress_report *r) {
    printf("%-58s %-6s %5s %6s %9s\n", "tensor", "format", "block", "bits/w", "rel.error");
    for (int i = 0; i < r->n_tensors; i++) {
        const compress_tensor *t = &r->tensors[i];
        char fmt[8];
        snprintf(fmt, sizeof(fmt), t->bits == 32 ? "f32" : "q%d", t->bits);
        printf("%-58s %-6s %5d %6.3f %9.5f\n", t->name, fmt, t->bits == 32 ? 0 : t->block,
               t->bits_per_weight, t->rel_error);
    }
    printf("block sizes used (rows that fit no asked block get the largest multiple of 32\n"
           "below it that divides the row padded with zero codes to a multiple of 32):\n");
    for (int i = 0; i < r->n_blocks; i++) {
        const compress_block_use *b = &r->blocks[i];
        printf("  %-10s rows of %5d: asked %4d, block %4d, stored as %5d codes (%d tensors)\n", b->kind,
               b->cols, b->asked, b->block, b->padded_cols, b->tensors);
    }
    if (r->pruning) {
        const cJSON *h = cJSON_GetObjectItem(r->pruning, "heads"), *in = cJSON_GetObjectItem(r->pruning, "intermediate");
        const cJSON *e = cJSON_GetObjectItem(r->pruning, "error");
        printf("pruned (kept heads / FFN neurons; output error relative to its variance, removed -> refit):\n");
        for (int l = 0; l < cJSON_GetArraySize(h); l++) {
            const cJSON *le = cJSON_GetArrayItem(e, l);
            printf("  layer %2d: %3d heads (%.4f -> %.4f), %5d neurons (%.4f -> %.4f)\n", l,
                   cJSON_GetArrayItem(h, l)->valueint, cJSON_GetObjectItem(le, "attention_removed")->valuedouble,
                   cJSON_GetObjectItem(le, "attention_refit")->valuedouble, cJSON_GetArrayItem(in, l)->valueint,
                   cJSON_GetObjectItem(le, "ffn_removed")->valuedouble, cJSON_GetObjectItem(le, "ffn_refit")->valuedouble);
        }
    }
    printf("input  %lld bytes (config.json + tokenizer + weights)\n", r->input_bytes);
    printf("output %lld bytes\n", r->output_bytes);
    printf("ratio  %.3fx whole file, %.3fx weights only; %.2f s\n", r->ratio, r->weights_ratio,
           r->seconds);
}

/* compress_format_parse, and f32: tensors kept unquantized (what the
 * pruning tests compare with a float reference). */
static int format_parse(const char *s, bq_spec *spec) {
    if (strcmp(s, "f32") == 0) {
        spec->bits = 32;
        return BCT_OK;
    }
    return compress_format_parse(s, spec);
}

int cmd_compress(int argc, char **argv) {
    static const struct option opts[] = {
        {"in", required_argument, 0, 'i'}, {"out", required_argument, 0, 'o'},
        {"preset", required_argument, 0, 'p'}, {"weights", required_argument, 0, 'w'},
        {"embeddings", required_argument, 0, 'e'}, {"tables", required_argument, 0, 't'},
        {"block", required_argument, 0, 'b'}, {"scales", required_argument, 0, 's'},
        {"activations", required_argument, 0, 'A'}, {"nonlinear", required_argument, 0, 'N'},
        {"calib", required_argument, 0, 'c'}, {"calib-n", required_argument, 0, 'n'},
        {"smooth", required_argument, 0, 'S'}, {"gptq", no_argument, 0, 'G'},
        {"tensor-format", required_argument, 0, 'F'}, {"max-drop", required_argument, 0, 'D'},
        {"eval", required_argument, 0, 'E'}, {"task", required_argument, 0, 'T'},
        {"budget-n", required_argument, 0, 'B'}, {"confidence", required_argument, 0, 'Z'}, {"threads", required_argument, 0, 'P'},
        {"prune-heads", required_argument, 0, 'H'}, {"prune-ffn", required_argument, 0, 'U'},
        {"json", no_argument, 0, 'j'}, {"help", no_argument, 0, 'h'}, {0, 0, 0, 0}};
    static compress_rule rules[COMPRESS_MAX_RULES];
    int n_rules = 0;
    budget_opts bo = {.max_drop = -1};
    const char *task = NULL;
    const char *in = NULL, *out = NULL, *preset = "w8a8";
    const char *weights = NULL, *emb = NULL, *tables = NULL, *scales = NULL, *act = NULL, *nl = NULL;
    const char *calib = NULL, *smooth = NULL;
    int block = 0, json = 0, calib_n = 0, gptq = 0, c;
    double prune[2] = {0, 0};
    optind = 1;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case 'i': in = optarg; break;
        case 'o': out = optarg; break;
        case 'p': preset = optarg; break;
        case 'w': weights = optarg; break;
        case 'e': emb = optarg; break;
        case 't': tables = optarg; break;
        case 's': scales = optarg; break;
        case 'A': act = optarg; break;
        case 'N': nl = optarg; break;
        case 'c': calib = optarg; break;
        case 'S': smooth = optarg; break;
        case 'G': gptq = 1; break;
        case 'n': if (cli_parse_int(optarg, "--calib-n", 1, 1000000, &calib_n)) return CLI_USAGE; break;
        case 'b': if (cli_parse_int(optarg, "--block", QMAT_GROUP, BQ_MAX_BLOCK, &block)) return CLI_USAGE; break;
        case 'H':
        case 'U':
            if (cli_parse_double(optarg, c == 'H' ? "--prune-heads" : "--prune-ffn", 0, 1, &prune[c == 'U']))
                return CLI_USAGE;
            break;
        case 'j': json = 1; break;
        case 'F': {
            const char *eq = strrchr(optarg, '=');
            bq_spec fs = {0};
            if (!eq || eq == optarg || (size_t)(eq - optarg) >= sizeof(rules[0].match) ||
                compress_format_parse(eq + 1, &fs)) {
                fprintf(stderr, "bct: --tensor-format wants NAME=q8|q4|q3|q2 (NAME under %zu bytes), not '%s'\n",
                        sizeof(rules[0].match), optarg);
                return CLI_USAGE;
            }
            if (n_rules == COMPRESS_MAX_RULES) {
                fprintf(stderr, "bct: at most %d --tensor-format rules\n", COMPRESS_MAX_RULES);
                return CLI_USAGE;
            }
            snprintf(rules[n_rules].match, sizeof(rules[n_rules].match), "%.*s", (int)(eq - optarg), optarg);
            rules[n_rules++].spec.bits = fs.bits;
            break;
        }
        case 'D': if (cli_parse_double(optarg, "--max-drop (points)", 0, 100, &bo.max_drop)) return CLI_USAGE; break;
        case 'Z':
            if (cli_parse_double(optarg, "--confidence (standard errors)", 0, 10, &bo.confidence)) return CLI_USAGE;
            break;
        case 'E': bo.eval = optarg; break;
        case 'T': task = optarg; break;
        case 'B': if (cli_parse_int(optarg, "--budget-n", 1, 1000000, &bo.budget_n)) return CLI_USAGE; break;
        case 'P': if (cli_parse_int(optarg, "--threads", 1, 1024, &bo.threads)) return CLI_USAGE; break;
        case 'h': fputs(usage_text, stdout); return CLI_OK;
        default: fputs(usage_text, stderr); return CLI_USAGE;
        }
    }
    if (!in || !out || optind != argc) {
        fputs(usage_text, stderr);
        return CLI_USAGE;
    }
    bct_error err = {{0}};
    compress_opts o;
    if (compress_preset(preset, &o, &err) != BCT_OK) {
        fprintf(stderr, "bct: %s\n", err.msg);
        return CLI_USAGE;
    }
    int budgeted = bo.max_drop >= 0;
    if (budgeted != (bo.eval != NULL) || budgeted != (task != NULL) ||
        (!budgeted && (bo.confidence > 0 || bo.budget_n || bo.threads))) {
        fprintf(stderr, "bct: --max-drop, --eval and --task go together (--confidence, --budget-n and --threads "
                        "only with them)\n");
        return CLI_USAGE;
    }
    if (task && (int)(bo.task = (glue_task)glue_task_parse(task)) < 0) {
        fprintf(stderr, "bct: --task is sst2, mrpc or rte\n");
        return CLI_USAGE;
    }
    if (budgeted && n_rules) {
        fprintf(stderr, "bct: --max-drop chooses the per-tensor formats itself: no --tensor-format with it\n");
        return CLI_USAGE;
    }
    int custom = weights || emb || tables || block || scales || act || nl || n_rules;
    if ((weights && format_parse(weights, &o.weights)) || (emb && format_parse(emb, &o.embeddings)) ||
        (tables && format_parse(tables, &o.tables))) {
        fprintf(stderr, "bct: formats are q8, q4, q3, q2 or f32\n");
        return CLI_USAGE;
    }
    if (block) o.weights.block = o.embeddings.block = o.tables.block = block;
    if (scales) {
        int enc = qcodec_scale_parse(scales);
        if (enc < 0) {
            fprintf(stderr, "bct: --scales must be f16 or log8\n");
            return CLI_USAGE;
        }
        o.weights.scale = o.embeddings.scale = o.tables.scale = (qscale_enc)enc;
    }
    if ((act && strcmp(act, "int8") && strcmp(act, "fp32")) || (nl && strcmp(nl, "int") && strcmp(nl, "fp32"))) {
        fprintf(stderr, "bct: --activations is int8|fp32, --nonlinear is int|fp32\n");
        return CLI_USAGE;
    }
    if (act) o.act_int8 = strcmp(act, "int8") == 0;
    if (nl) o.int_nonlinear = strcmp(nl, "int") == 0;
    if (custom) snprintf(o.preset, sizeof(o.preset), "custom");
    o.progress = progress;
    o.calib = calib;
    o.calib_max = calib_n;
    if (gptq && !calib) {
        fprintf(stderr, "bct: --gptq needs --calib\n");
        return CLI_USAGE;
    }
    o.gptq = gptq;
    o.prune_heads = prune[0];
    o.prune_ffn = prune[1];
    if ((prune[0] > 0 || prune[1] > 0) && !calib) {
        fprintf(stderr, "bct: --prune-heads and --prune-ffn need --calib\n");
        return CLI_USAGE;
    }
    if (smooth) {
        char *end;
        o.smooth = 1;
        o.smooth_alpha = strcmp(smooth, "auto") == 0 ? 0 : strtof(smooth, &end);
        if (strcmp(smooth, "auto") && (*end || !(o.smooth_alpha > 0 && o.smooth_alpha <= 1))) {
            fprintf(stderr, "bct: --smooth is auto or a number in (0, 1]\n");
            return CLI_USAGE;
        }
        if (!calib) {
            fprintf(stderr, "bct: --smooth needs --calib\n");
            return CLI_USAGE;
        }
    }

    /* a rule keeps its kind's block and scales; only the bits differ */
    for (int i = 0; i < n_rules; i++) {
        int bits = rules[i].spec.bits;
        rules[i].spec = strstr(rules[i].match, "word_embeddings") ? o.embeddings
                        : strstr(rules[i].match, "embeddings")   ? o.tables
                                                                 : o.weights;
        rules[i].spec.bits = bits;
    }
    o.rules = rules;
    o.n_rules = n_rules;
    if (budgeted) {
        o.progress = NULL;
        bo.json = json;
        if (compress_budget_run(in, out, &o, &bo, &err) != BCT_OK) {
            fprintf(stderr, "bct: %s\n", err.msg);
            return CLI_FAIL;
        }
        return CLI_OK;
    }
    compress_report rep;
    if (compress_checkpoint(in, out, &o, &rep, &err) != BCT_OK) {
        fprintf(stderr, "bct: %s\n", err.msg);
        return CLI_FAIL;
    }
    if (json) {
        cJSON *j = compress_report_json(&rep);
        cJSON_AddStringToObject(j, "preset", o.preset);
        cli_print_json(j);
    } else {
        print_report(&rep);
    }
    compress_report_free(&rep);
    return CLI_OK;
}
