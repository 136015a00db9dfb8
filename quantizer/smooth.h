/* smooth.h - moves activation outliers into the weights (SmoothQuant-style).
 *
 * Pretrained BERTs have a few input channels whose activations are 10-50x
 * the rest; with int8 activations in blocks, such a channel sets the scale
 * of its whole block.  For a Linear y = x W^T and a positive per-channel
 * factor s, y = (x / s) (W diag(s))^T: the input is divided by s, the
 * weight's columns multiplied.  s_j = max|x_j|^a / max|W_:,j|^(1-a)
 * (Xiao et al. 2022, arXiv 2211.10438), with a chosen per Linear among a
 * few values (and "no smoothing") by the output error of the quantized
 * Linear on calibration rows: the weight quantized as it will be stored,
 * the input quantized to int8 blocks as the engine does.
 *
 * Where the division goes:
 *   Q, K, V (one s: they share their quantized input), FFN in, FFN out,
 *   pooler: into the file, as the Linear's act_scale = 1/s (see
 *   bert_linear); the engine multiplies the input by it before
 *   quantizing.  BERT is post-LN, so folding 1/s into the previous
 *   LayerNorm would also scale the residual stream; this costs one
 *   multiply per input element instead.
 *   attention output: into the value projection's rows and bias (the
 *   context is a mix of value rows over tokens), so it costs nothing.
 * And per head dimension j, query row j x t_j and key row j / t_j with
 * t_j = sqrt(max|k_j| / max|q_j|) leave q.k unchanged and give both int8
 * score inputs the same range.
 */
#ifndef BCT_SMOOTH_H
#define BCT_SMOOTH_H

#include "blockquant.h"
#include "calibrate.h"
#include "model/bert_model.h"
#include "util/status.h"

/* What to do to one tensor before it is quantized; any pointer may be NULL. */
typedef struct smooth_slot {
    float *col_mul;         /* weight column j *= col_mul[j] */
    float *row_mul;         /* weight row i (or vector element i) *= row_mul[i] */
    const float *act_scale; /* the Linear's act_scale to store (= 1 / col_mul) */
    int act_owner;          /* this slot writes the act_scale blob; others refer to it */
    char act_blob[112];     /* blob name of act_scale */
    float alpha;            /* chosen a; < 0: not smoothed */
    double err_before, err_after; /* relative output error on calibration rows */
} smooth_slot;

typedef struct smooth_plan {
    int n_slots;
    smooth_slot *slot;
} smooth_plan;

/* alpha <= 0: search a in {0.3 .. 0.8} and "none" per Linear; else use it
 * everywhere.  weights: the spec Linear weights will be stored with.
 * calib must hold col_absmax and sampled rows (calib_collect keep_rows). */
int smooth_plan_make(const bert_model *m, const bert_slot *slots, int n_slots, const calib_stats *calib,
                     const bq_spec *weights, float alpha, smooth_plan *out, bct_error *err);
void smooth_plan_free(smooth_plan *p);

/* Copy of slot i's data with the plan applied (malloc'd; NULL on no
 * memory), or *out = the slot's own data when the plan leaves it alone. */
int smooth_apply(const smooth_plan *p, const bert_slot *slots, int i, const float **out, float **owned);

/* Relative squared output error sum |XW^T - Q(X)Q(W)^T|^2 / sum |XW^T|^2
 * of x (n x cols) through w (rows x cols) divided/multiplied by s (NULL:
 * 1), the weight quantized with spec and col_weight, the input to int8
 * blocks of spec->block as the engine does.  Exposed for tests. */
double smooth_linear_error(const float *x, int n, const float *w, int rows, int cols, const float *s,
                           const bq_spec *spec, const float *col_weight, const float *y_ref);

#endif
