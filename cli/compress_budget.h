/* compress_budget.h - accuracy-budgeted compression (bct compress
 * --max-drop P --eval TSV --task T).
 *
 * Finds the smallest file whose accuracy on the evaluation set is at most
 * P points below the fp32 checkpoint's, choosing a format (q8, q4, q3 or
 * q2) per group of tensors: each encoder layer's attention, FFN-in and
 * FFN-out matrices, the word embeddings, the position/token-type tables,
 * and each other matrix (head, projections).
 *  1. sensitivity: every group alone at every lower format, the rest at
 *     the base preset; the mean squared logit difference from fp32 on (at
 *     most budget_n) evaluation examples;
 *  2. a greedy order of moves, each the one lowering a group a step that
 *     saves the most bytes per unit of added sensitivity (sensitivities
 *     assumed additive);
 *  3. a bisection over that order for the longest prefix whose measured
 *     drop on the whole evaluation set is within P (optionally with a
 *     margin of `confidence` standard errors of that drop: with a few
 *     hundred examples one example is a quarter point);
 *  4. that plan is written to the output and its measured drop reported.
 * It never writes a plan it has not measured within the budget: when even
 * the base preset loses more than P, it fails and writes nothing.
 * The evaluation set should not be the set the result is finally judged
 * on (use part of the training data); the report says which it was.
 */
#ifndef BCT_COMPRESS_BUDGET_H
#define BCT_COMPRESS_BUDGET_H

#include "compress.h"
#include "glue_data.h"

/* Most tensor groups a plan chooses formats for (a 48-layer model has
 * 3 x 48 + a few). */
#define BUDGET_MAX_GROUPS 192

typedef struct budget_opts {
    double max_drop;   /* accuracy points (0.5 = half a point) */
    double confidence; /* within the budget: drop + confidence x its standard error <= max_drop (0: the
                        * measured drop alone; 1.64: one-sided 95% if the eval set is a fair sample) */
    const char *eval;  /* TSV, read as `task` */
    glue_task task;
    int budget_n;      /* examples for the sensitivity pass (<= 0: 512) */
    int threads;       /* engine threads (<= 0: one per CPU) */
    int json;          /* report as JSON on stdout instead of text */
} budget_opts;

/* Compresses hf_dir into out_path with `base`'s specs and options, the
 * per-group formats chosen as above.  Prints the plan (as --tensor-format
 * rules that reproduce it), the measured accuracy of fp32 and of the
 * result, and the file's ratio.  BCT_OK, or an error in err (nothing
 * written to out_path). */
int compress_budget_run(const char *hf_dir, const char *out_path, const compress_opts *base,
                        const budget_opts *bo, bct_error *err);

#endif
