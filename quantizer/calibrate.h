/* calibrate.h - what the weights of each Linear layer are multiplied by.
 *
 * Runs the fp32 model over calibration text and records, for every Linear
 * weight, the mean square of each input channel.  The quantizer weights a
 * block's squared error by these, which is the expected output error when
 * inputs are uncorrelated: a channel that carries large activations (the
 * outlier dimensions of pretrained BERTs) gets its weights kept closer.
 *
 * Calibration text: UTF-8, one example per line, a TAB separating a text
 * pair; empty lines are skipped.
 */
#ifndef BCT_CALIBRATE_H
#define BCT_CALIBRATE_H

#include "model/bert_forward.h"
#include "model/bert_model.h"
#include "util/status.h"

typedef struct calib_stats {
    int n_slots;
    float **col_weight; /* per slot: [cols] mean squares, or NULL (not a Linear weight) */
    float **col_absmax; /* per slot: [cols] max |x| over every token, or NULL */
    /* Per slot: up to keep_rows input rows [n_rows][cols], a uniform sample
     * of all tokens (reservoir sampling, fixed seed), or NULL. */
    float **rows;
    int *n_rows;
    int sentences;
    long long tokens;
} calib_stats;

/* slots: bert_slots(m, ...) of the same model.  keep_rows: input rows to
 * sample per Linear weight (0: none). */
int calib_collect(const bert_model *m, const bert_slot *slots, int n_slots, const char *path,
                  int max_sentences, int keep_rows, calib_stats *out, bct_error *err);
void calib_free(calib_stats *s);

/* One more pass over the calibration text: for every slot with want[i]
 * (a Linear weight), h[i] = sum over its input rows of x^T x
 * ([cols][cols], malloc'd, both triangles); other h[i] = NULL.  On error
 * nothing is left allocated. */
int calib_hessians(const bert_model *m, const bert_slot *slots, int n_slots, const char *path,
                   int max_sentences, const int *want, float **h, bct_error *err);

/* One pass of the fp32 model m over up to max_sentences lines of the
 * calibration text at path, through its first `layers` encoder layers
 * (0: all; bert_ws_stop_after), calling fn(ud, ...) with the input of
 * every Linear (bert_ws_observe).  What other passes (pruning) build on. */
int calib_run(const bert_model *m, const char *path, int max_sentences, int layers, bert_observer fn, void *ud,
              bct_error *err);

#endif
