/* bct - the command-line entry point: dispatches to one subcommand. */
#include <stdio.h>
#include <string.h>

#include "cli_util.h"
#include "commands.h"

static const struct {
    const char *name;
    int (*run)(int argc, char **argv);
    const char *summary;
} commands[] = {
    {"classify", cmd_classify, "classify a text (or a text pair) and print labels and scores"},
    {"tokenize", cmd_tokenize, "print WordPiece ids of stdin lines as JSON (TAB separates a pair)"},
    {"eval", cmd_eval, "accuracy (and F1) of a model on a GLUE dev set"},
    {"serve", cmd_serve, "HTTP inference server with dynamic batching (see serve --help)"},
    {"admin", cmd_admin, "upload a checkpoint to a server to compress and serve; jobs; delete"},
    {"compress", cmd_compress, "compress a checkpoint blockwise into a .bct file"},
    {"compare", cmd_compare, "accuracy, agreement and logit differences of two models"},
    {"bench", cmd_bench, "speed and memory of fp32 / int8 / int4 models and the int8 GEMM kernels"},
};

static void usage(FILE *out) {
    fprintf(out, "usage: bct <command> [options]\n\ncommands:\n");
    for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
        fprintf(out, "  %-10s %s\n", commands[i].name, commands[i].summary);
    fprintf(out, "\n'bct <command> --help' describes a command's options; 'bct --version' prints %s.\n",
            BCT_VERSION);
}

int main(int argc, char **argv) {
    if (argc < 2) {
        usage(stderr);
        return CLI_USAGE;
    }
    if (!strcmp(argv[1], "--version") || !strcmp(argv[1], "version")) {
        printf("bct %s\n", BCT_VERSION);
        return 0;
    }
    if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
        usage(stdout);
        return CLI_OK;
    }
    for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
        if (!strcmp(argv[1], commands[i].name)) return commands[i].run(argc - 1, argv + 1);
    fprintf(stderr, "bct: unknown command \"%s\"\n\n", argv[1]);
    usage(stderr);
    return CLI_USAGE;
}
