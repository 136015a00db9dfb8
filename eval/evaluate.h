/* evaluate.h - runs a model over a list of texts, scores its predictions
 * against labels (accuracy, F1 of label 1) and compares two models' logits
 * (agreement of the argmax, |logit difference|).  Shared by `bct eval`,
 * `bct compare` and the server's accuracy-guarded publishing. */
#ifndef BCT_EVALUATE_H
#define BCT_EVALUATE_H

#include <stddef.h>

#include "glue_data.h"
#include "model/bert_model.h"

struct bct_pool;
struct cJSON;

/* A text example: a alone or the pair (a, b). */
typedef struct eval_text {
    const char *a;
    const char *b;
} eval_text;

/* Called after every batch; a nonzero return stops the run (BCT_EINVAL,
 * "cancelled"). */
typedef int (*eval_progress_fn)(void *ud, size_t done, size_t total);

/* Tokenizes and runs every example (truncated to m->max_len), batch
 * sequences at a time after sorting by length, on pool's threads (NULL:
 * this one); logits: n x num_labels, in input order.  progress may be
 * NULL.  Errors name the example (1-based). */
int eval_run_texts(const bert_model *m, const eval_text *texts, int n, int batch, struct bct_pool *pool,
                   eval_progress_fn progress, void *ud, float *logits, bct_error *err);

typedef struct eval_result {
    int n, correct, tp, fp, fn;
    double seconds;
} eval_result;

/* eval_run_texts over a labelled set, then scored into r. */
int glue_eval_run(const bert_model *m, const glue_set *set, int batch, struct bct_pool *pool,
                  eval_progress_fn progress, void *ud, float *logits, eval_result *r, bct_error *err);
double eval_accuracy(const eval_result *r);
double eval_f1(const eval_result *r);
/* Adds n, correct, accuracy, f1, seconds, sentences_per_s to o. */
void eval_result_json(struct cJSON *o, const eval_result *r);

/* The index of the largest of v[0..n) (the first of equals): a prediction. */
int eval_argmax(const float *v, int n);

/* Two models' logits on the same n examples (n x nl each). */
typedef struct eval_diff {
    int n, agree;    /* examples; how many have the same argmax */
    double mean_abs; /* mean |a - b| over every logit */
    double max_abs;  /* max |a - b| */
} eval_diff;
void eval_compare(const float *a, const float *b, int n, int nl, eval_diff *out);
double eval_agreement(const eval_diff *d);

#endif
