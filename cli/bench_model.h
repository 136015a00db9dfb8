/* bench_model.h - deterministic random-weight BERT checkpoints for `bct bench`.
 *
 * Writes a Hugging Face BertForSequenceClassification directory
 * (config.json, vocab.txt, model.safetensors with F32 tensors in the
 * canonical names of bert_slots()) of any shape, streaming one tensor at
 * a time (memory use does not grow with the model).  Weights are
 * N(0, 0.02)-like as BERT's initialiser, LayerNorm gamma ~1 and beta ~0,
 * biases small: speed does not depend on the values, but the quantizer
 * and the integer ops see realistic ranges.
 */
#ifndef BCT_BENCH_MODEL_H
#define BCT_BENCH_MODEL_H

#include "util/status.h"

typedef struct bench_shape {
    int layers, hidden, heads, intermediate, vocab;
    int max_pos; /* max_position_embeddings */
    int labels; /* 2 .. BENCH_MAX_LABELS */
} bench_shape;

#define BENCH_MAX_LABELS 64

/* bert-base: 12 layers, hidden 768, 12 heads, FFN 3072, vocab 30522. */
#define BENCH_SHAPE_BASE ((bench_shape){12, 768, 12, 3072, 30522, 512, 2})

/* Writes the checkpoint into dir (created if missing). */
int bench_write_random_bert(const char *dir, const bench_shape *s, unsigned seed, bct_error *err);

#endif
