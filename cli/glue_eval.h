/* glue_eval.h - runs a model over a GLUE set and scores it (accuracy, F1
 * of label 1), for bct eval and bct compare. */
#ifndef BCT_GLUE_EVAL_H
#define BCT_GLUE_EVAL_H

#include "bert_model.h"
#include "glue_data.h"

struct cJSON;

typedef struct eval_result {
    int n, correct, tp, fp, fn;
    double seconds;
} eval_result;

/* logits: set->n x num_labels, filled in input order. */
int glue_eval_run(const bert_model *m, const glue_set *set, int batch, int progress, float *logits,
                  eval_result *r);
double eval_accuracy(const eval_result *r);
double eval_f1(const eval_result *r);
/* Adds n, correct, accuracy, f1, seconds, sentences_per_s to o. */
void eval_result_json(struct cJSON *o, const eval_result *r);

int argmax(const float *v, int n);

#endif
