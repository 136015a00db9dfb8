/* bct serve: the HTTP inference server (server/, config/). */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli_util.h"
#include "commands.h"
#include "config.h"
#include "server.h"

static void usage(FILE *out) {
    fputs("usage: bct serve [--config FILE] [--model PATH | --model-store DIR] [options]\n"
          "\n"
          "Serves BERT classifiers over HTTP with dynamic batching:\n"
          "  POST /classify  {\"inputs\": \"text\" | {\"text\", \"text_pair\"} | [...], \"top_k\",\n"
          "                  \"truncate\", \"raw_scores\", \"model\"}\n"
          "  POST /predict   text-embeddings-inference's /predict shape\n"
          "  POST /          /predict, answered in the Inference API's shape (one list per input)\n"
          "  POST /rerank, /tokenize  text-embeddings-inference's shapes\n"
          "  GET /health, /ready, /models, /models/{name}, /metrics (Prometheus), /openapi.json\n"
          "  /admin/...      model upload, compression jobs, delete, load, unload (with\n"
          "                  admin_token; `bct admin` is the client)\n"
          "\n"
          "Settings come from, in increasing precedence: built-in defaults (the same as\n"
          "config/default.json), --config FILE (or BCT_CONFIG), BCT_* environment\n"
          "variables, then these flags:\n"
          "\n"
          "  --config FILE                  BCT_CONFIG\n"
          "        JSON file of settings (keys as listed below; unknown keys are errors)\n"
          "  --port-file FILE\n"
          "        write the bound port here once listening (useful with --port 0)\n"
          "  -h, --help\n"
          "        this text\n",
          out);
    config_print_help(out);
    fputs("\nSIGTERM or SIGINT drains: in-flight requests finish, then the exit code is 0.\n"
          "See config/README.md for every setting and the README's Server section.\n",
          out);
}

int cmd_serve(int argc, char **argv) {
    int nf;
    const config_field *fields = config_fields(&nf);
    enum { OPT_CONFIG = 1000, OPT_PORT_FILE, OPT_HELP, OPT_FIELD0 };
    struct option *opts = calloc((size_t)nf + 4, sizeof(*opts));
    char (*names)[64] = calloc((size_t)nf, sizeof(*names));
    if (!opts || !names) {
        free(opts);
        free(names);
        fprintf(stderr, "bct: out of memory\n");
        return CLI_FAIL;
    }
    for (int i = 0; i < nf; i++) {
        config_flag_name(&fields[i], names[i], sizeof(names[i]));
        opts[i] = (struct option){names[i] + 2, required_argument, 0, OPT_FIELD0 + i};
    }
    opts[nf] = (struct option){"config", required_argument, 0, OPT_CONFIG};
    opts[nf + 1] = (struct option){"port-file", required_argument, 0, OPT_PORT_FILE};
    opts[nf + 2] = (struct option){"help", no_argument, 0, OPT_HELP};

    srv_config cfg;
    config_defaults(&cfg);
    bct_error err = {{0}};
    const char *config_file = getenv("BCT_CONFIG"), *port_file = NULL;
    int rc = CLI_OK, c;

    /* Pass 1: --config and --help, so the file applies before env and
     * flags whatever the order on the command line. */
    optind = 1;
    opterr = 1;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        if (c == OPT_CONFIG) config_file = optarg;
        else if (c == OPT_HELP || c == 'h') {
            usage(stdout);
            goto done;
        } else if (c == '?') {
            usage(stderr);
            rc = CLI_USAGE;
            goto done;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "bct: unexpected argument \"%s\"\n\n", argv[optind]);
        usage(stderr);
        rc = CLI_USAGE;
        goto done;
    }
    if (config_file && *config_file && config_load_file(&cfg, config_file, &err) != BCT_OK) {
        fprintf(stderr, "bct: %s\n", err.msg);
        rc = CLI_USAGE;
        goto done;
    }
    if (config_apply_env(&cfg, &err) != BCT_OK) {
        fprintf(stderr, "bct: %s\n", err.msg);
        rc = CLI_USAGE;
        goto done;
    }
    /* Pass 2: every other flag. */
    optind = 1;
    opterr = 0;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        if (c == OPT_PORT_FILE) {
            port_file = optarg;
        } else if (c >= OPT_FIELD0 && c < OPT_FIELD0 + nf) {
            if (config_set(&cfg, &fields[c - OPT_FIELD0], optarg, names[c - OPT_FIELD0], &err) !=
                BCT_OK) {
                fprintf(stderr, "bct: %s\n", err.msg);
                rc = CLI_USAGE;
                goto done;
            }
        }
    }
    if (config_validate(&cfg, &err) != BCT_OK) {
        fprintf(stderr, "bct: %s\n", err.msg);
        rc = CLI_USAGE;
        goto done;
    }
    rc = srv_run(&cfg, port_file) == 0 ? CLI_OK : CLI_FAIL;
done:
    free(opts);
    free(names);
    return rc;
}
