/* bct tokenize: stdin lines -> one {"ids": [...], "type_ids": [...]} per line. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli_util.h"
#include "commands.h"

static const char *usage_text =
    "usage: bct tokenize --model DIR [--max-len N] < lines\n"
    "\n"
    "Reads lines from stdin (a TAB separates a text pair) and prints one JSON\n"
    "object per line: {\"ids\": [...], \"type_ids\": [...]}, with the special tokens\n"
    "and truncation exactly as the model sees them.  A line that cannot be\n"
    "tokenized (invalid UTF-8) prints {\"error\": \"...\"} and the exit code is 1.\n"
    "\n"
    "  --model DIR      model directory (config.json and the tokenizer: vocab.txt,\n"
    "                   tokenizer.json or vocab.json + merges.txt) or .bct file\n"
    "  --max-len N      truncate to N tokens (default 128)\n"
    "  -h, --help       this text\n";

static void print_encoding(const tok_encoding *e) {
    fputs("{\"ids\":[", stdout);
    for (int i = 0; i < e->len; i++) printf(i ? ",%d" : "%d", e->ids[i]);
    fputs("],\"type_ids\":[", stdout);
    for (int i = 0; i < e->len; i++) printf(i ? ",%d" : "%d", e->type_ids[i]);
    fputs("]}\n", stdout);
}

/* Error text as a JSON string: escape quotes, backslashes and controls. */
static void print_error(const char *msg) {
    fputs("{\"error\":\"", stdout);
    for (const unsigned char *p = (const unsigned char *)msg; *p; p++) {
        if (*p == '"' || *p == '\\') printf("\\%c", *p);
        else if (*p < 0x20) printf("\\u%04x", *p);
        else putchar(*p);
    }
    fputs("\"}\n", stdout);
}

int cmd_tokenize(int argc, char **argv) {
    static const struct option opts[] = {{"model", required_argument, 0, 'm'},
                                         {"max-len", required_argument, 0, 'L'},
                                         {"help", no_argument, 0, 'h'},
                                         {0, 0, 0, 0}};
    const char *model = NULL;
    int max_len = 0, c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case 'm': model = optarg; break;
        case 'L': if (cli_parse_int(optarg, "--max-len", 3, 1 << 20, &max_len)) return CLI_USAGE; break;
        case 'h': fputs(usage_text, stdout); return CLI_OK;
        default: fputs(usage_text, stderr); return CLI_USAGE;
        }
    }
    if (!model || optind != argc) {
        fputs(usage_text, stderr);
        return CLI_USAGE;
    }
    bert_model *m = cli_load_model(model, max_len, NULL);
    if (!m) return CLI_FAIL;
    int cap = m->max_len, rc = CLI_OK, lineno = 0;
    tok_encoding e = {.ids = malloc((size_t)cap * sizeof(int32_t)), .type_ids = malloc((size_t)cap),
                      .cap = cap};
    char *line = NULL;
    size_t linecap = 0;
    ssize_t n;
    while (e.ids && e.type_ids && (n = getline(&line, &linecap, stdin)) >= 0) {
        lineno++;
        if (n && line[n - 1] == '\n') line[--n] = '\0';
        if (n && line[n - 1] == '\r') line[--n] = '\0';
        /* getline keeps NUL bytes; n, not strlen, is the line's length. */
        char *tab = memchr(line, '\t', (size_t)n);
        size_t alen = tab ? (size_t)(tab - line) : (size_t)n;
        const char *b = tab ? tab + 1 : NULL;
        size_t blen = tab ? (size_t)n - alen - 1 : 0;
        bct_error err = {{0}};
        if (bert_model_encode(m, line, alen, b, blen, &e, &err) == BCT_OK) {
            print_encoding(&e);
        } else {
            fprintf(stderr, "bct: line %d: %s\n", lineno, err.msg);
            print_error(err.msg);
            rc = CLI_FAIL;
        }
    }
    if (!e.ids || !e.type_ids) {
        fprintf(stderr, "bct: out of memory\n");
        rc = CLI_FAIL;
    }
    free(line);
    free(e.ids);
    free(e.type_ids);
    bert_model_free(m);
    return rc;
}
