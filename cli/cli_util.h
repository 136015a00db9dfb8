/* cli_util.h - pieces shared by the bct subcommands: model loading with
 * user-facing errors, number parsing, progress bar, timing.  (Running a
 * list of texts through the engine: eval/evaluate.h.) */
#ifndef BCT_CLI_UTIL_H
#define BCT_CLI_UTIL_H

#include <stddef.h>

#include "model/bert_model.h"

/* Exit codes of every subcommand. */
enum { CLI_OK = 0, CLI_FAIL = 1, CLI_USAGE = 2 };

/* Loads a checkpoint directory or .bct file; on failure prints
 * "bct: <reason>" and returns NULL.  max_len <= 0 keeps the default; mode
 * NULL runs the model as its file says. */
bert_model *cli_load_model(const char *path, int max_len, const bert_mode *mode);

/* Run-mode overrides shared by eval and compare:
 *   --activations int8|fp32   --nonlinear int|fp32|LIST (LIST: comma list
 *   of gelu, softmax, layernorm run in integer arithmetic). */
typedef struct cli_mode {
    int set;        /* any override given */
    bert_mode mode;
} cli_mode;
/* Applies one option (name without dashes); CLI_USAGE on a bad value. */
int cli_mode_option(cli_mode *cm, const char *name, const char *value);
#define CLI_MODE_HELP                                                                        \
    "  --activations A      override: int8 or fp32 matmul inputs (int8 needs a .bct)\n"     \
    "  --nonlinear N        override: int, fp32, or a list of gelu,softmax,layernorm to\n"  \
    "                       run in integer arithmetic (the rest in fp32)\n"           \
    "  --nl-bits B          bits of the codes fed to integer non-linear ops (8..24)\n"

/* A command's --threads: sets OpenBLAS's thread count (fp32; n <= 0
 * leaves the library default) and returns an engine thread pool of n
 * threads (int8/int4; n <= 0: one per CPU) for bert_ws_set_pool, or NULL
 * when it cannot be created (the engine then runs single-threaded).
 * Free it with bct_pool_free. */
struct bct_pool *cli_threads(int n);

/* Parses a decimal integer in [lo, hi]; prints an error naming `what`. */
int cli_parse_int(const char *s, const char *what, int lo, int hi, int *out);
/* The same for a decimal number in [lo, hi]. */
int cli_parse_double(const char *s, const char *what, double lo, double hi, double *out);

double cli_now(void);

struct cJSON;
/* Prints o on one line to stdout and deletes it. */
void cli_print_json(struct cJSON *o);

/* Draws "\r[####    ] 45% 392/872" on stderr when it is a terminal. */
void cli_progress(size_t done, size_t total);

#endif
