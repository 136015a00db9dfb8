/* prune.h - structured pruning of attention heads and FFN neurons, with
 * layer-wise least-squares reconstruction, before quantization.
 *
 * Layer by layer (layers before the current one already pruned), one pass
 * over the calibration text collects the Gram matrix of the inputs of the
 * attention output Linear (the heads' context vectors) and of the FFN
 * output Linear (the GELU outputs).  From it alone:
 *  - importance: a head's (a neuron's) share of the layer output's
 *    variance, E||(x_S - mean) W[:, S]^T||^2 over its columns S: the
 *    output-contribution score, a gradient-free stand-in for the Fisher
 *    mask score of Kwon et al. 2022 (the engine has no backward pass);
 *  - each layer keeps the round((1 - fraction) n) highest of its n heads
 *    (neurons); Q, K, V (FFN input) rows of the others are dropped;
 *  - the output Linear's weight and bias over the kept columns are refitted
 *    by least squares so that the layer output matches the unpruned one on
 *    the same inputs (Kwon et al. 2022, layer-wise reconstruction), with a
 *    1% ridge towards the original weights.  With nothing kept the bias
 *    alone absorbs the mean output.
 * The model is changed in place: cfg.layer_heads / layer_inter and the
 * layer weights (new buffers owned by the prune_result).
 * Memory: one layer's two Grams (bert-base: 2.4 + 38 MB) and the solve.
 */
#ifndef BCT_PRUNE_H
#define BCT_PRUNE_H

#include "model/bert_model.h"
#include "util/status.h"

struct cJSON;

typedef struct prune_layer {
    int heads, inter;          /* kept */
    int *kept_heads;           /* [heads] original head indices, ascending */
    /* Output error of each pruned sub-block on the calibration inputs,
     * relative to the output's variance: plain removal, then refitted. */
    double attn_removed, attn_refit, ffn_removed, ffn_refit;
} prune_layer;

typedef struct prune_result {
    int layers;
    prune_layer *layer;
    void **owned; /* new weight buffers */
    int n_owned;
    double seconds;
} prune_result;

/* Prunes m (an fp32 model from a checkpoint) in place: head_frac / ffn_frac
 * in [0, 1] of every layer's heads / FFN neurons, using up to
 * max_sentences lines of the calibration text at calib.  res must be freed
 * (prune_result_free) after m is no longer used. */
int prune_model(bert_model *m, const char *calib, int max_sentences, double head_frac, double ffn_frac,
                prune_result *res, bct_error *err);
void prune_result_free(prune_result *res);

/* The .bct "pruning" object: {"heads": [...], "intermediate": [...],
 * "kept_heads": [[...]...], "method", "error"}; NULL when out of memory. */
struct cJSON *prune_meta(const bert_model *m, const prune_result *res);

#endif
