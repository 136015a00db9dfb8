/* cli_util.h - pieces shared by the bct subcommands: model loading with
 * user-facing errors, number parsing, progress bar, timing, and running
 * a whole list of text examples through the engine in length-sorted
 * batches. */
#ifndef BCT_CLI_UTIL_H
#define BCT_CLI_UTIL_H

#include <stddef.h>

#include "bert_model.h"

/* Exit codes of every subcommand. */
enum { CLI_OK = 0, CLI_FAIL = 1, CLI_USAGE = 2 };

/* Loads a model directory; on failure prints "bct: <reason>" and returns
 * NULL.  max_len <= 0 keeps the default. */
bert_model *cli_load_model(const char *path, int max_len);

/* Sets the number of BLAS threads (n <= 0: leave the library default). */
void cli_set_threads(int n);

/* Parses a decimal integer in [lo, hi]; prints an error naming `what`. */
int cli_parse_int(const char *s, const char *what, int lo, int hi, int *out);

double cli_now(void);

/* Draws "\r[####    ] 45% 392/872" on stderr when it is a terminal. */
void cli_progress(size_t done, size_t total);

/* A text example: a alone or the pair (a, b). */
typedef struct cli_text {
    const char *a;
    const char *b;
} cli_text;

/* Tokenizes and runs every example, batch_size sequences at a time after
 * sorting by length; logits: n x num_labels in input order.  progress: draw
 * a progress bar.  Returns BCT_OK or prints the error and returns it. */
int cli_run_texts(const bert_model *m, const cli_text *texts, int n, int batch_size, int progress,
                  float *logits);

#endif
