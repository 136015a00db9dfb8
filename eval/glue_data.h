/* glue_data.h - GLUE dev/train TSV files, read exactly as the reference
 * evaluator does: UTF-8 with an optional BOM, one example per line
 * (trailing \r stripped, blank lines skipped), the first line a header
 * (except for generic),
 * fields split on TAB with no quote processing.
 *   sst2: sentence, label          mrpc: label, id1, id2, text_a, text_b
 *   rte:  index, text_a, text_b, label
 *   generic: text, label   or   text, text_pair, label   (no header line;
 *            the last field is the label; any other count is an error)
 * A label is mapped through the model's id2label names, else read as an
 * integer id.
 */
#ifndef BCT_GLUE_DATA_H
#define BCT_GLUE_DATA_H

#include "model/bert_config.h"
#include "util/status.h"

typedef enum glue_task { GLUE_SST2, GLUE_MRPC, GLUE_RTE, GLUE_GENERIC } glue_task;

typedef struct glue_example {
    const char *a;
    const char *b; /* NULL for single-sentence tasks */
    int label;
} glue_example;

typedef struct glue_set {
    glue_example *ex;
    int n;
    char *text; /* owns the strings */
} glue_set;

/* "sst2" | "mrpc" | "rte" | "generic" -> task; -1 if unknown. */
int glue_task_parse(const char *name);
const char *glue_task_name(glue_task task);

/* labels may be NULL: then labels must be integers (any id is kept: a
 * caller that needs them below num_labels checks).  max_rows > 0: a file with more
 * examples is refused (BCT_ERANGE); 0: no limit.  Errors name the file
 * and line. */
int glue_load(const char *path, glue_task task, const bert_config *labels, int max_rows,
              glue_set *out, bct_error *err);
void glue_free(glue_set *set);

#endif
