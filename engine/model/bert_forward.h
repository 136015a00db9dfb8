/* bert_forward.h - the forward pass of a BERT classifier: fp32 (the
 * reference) or blockwise-quantized.
 *
 * A batch is a list of sequences of different lengths.  Tokens of all
 * sequences are packed back to back ([total_tokens][hidden], no padding),
 * so every Linear layer is one GEMM over the whole batch and no work is
 * spent on padding; attention runs per sequence and head.  In the last
 * layer only the first token of each sequence feeds the classifier head,
 * so only it goes through the attention output and FFN.  GEMMs use OpenBLAS cblas_sgemm.
 *
 * This path is the accuracy reference that compressed modes are measured
 * against; it reproduces ../shared/tools/ref_bert.py to ~1e-5.
 *
 * Quantized models (int8 activations) run the int8 block GEMM (qgemm.h)
 * and, when the bert_ws has a thread pool (bert_ws_set_pool), split each
 * step of a batch over its threads: GEMMs by row and output tiles,
 * attention by (sequence, head), LayerNorm / GELU / activation
 * quantization by rows.  Each output is computed by one thread in a fixed
 * order, so logits do not depend on the number of threads (nor on the
 * kernel ISA).  fp32 GEMMs are threaded by OpenBLAS itself; the pool is
 * not used for fp32 models.
 *
 * Memory: a batch runs in groups of whole sequences of at most
 * BERT_FORWARD_GROUP_TOKENS tokens (one longer sequence forms a group of
 * its own), so scratch memory stays bounded (~6 MB for bert-base) however
 * large the batch.  Sequences are independent: the logits are the same.
 * Smaller groups re-read the weights more often: 128 tokens run bert-base
 * int8 ~5-9% slower at batch 32 x 128 tokens for ~2.8 MB less
 * (docs/performance.md).
 */
#ifndef BCT_BERT_FORWARD_H
#define BCT_BERT_FORWARD_H

#include <stdint.h>

#include "bert_model.h"
#include "util/status.h"

typedef struct bert_seq {
    const int32_t *ids;
    const uint8_t *type_ids;
    int len; /* 1 .. cfg.max_pos */
} bert_seq;

/* Per-thread scratch memory; grows to the largest batch seen. */
typedef struct bert_ws bert_ws;

#define BERT_FORWARD_GROUP_TOKENS 256

struct bct_pool;

bert_ws *bert_ws_create(void);
void bert_ws_free(bert_ws *ws);

/* Runs the quantized path of later bert_forward calls on ws with `pool`'s
 * threads (threadpool.h; NULL: single-threaded, the default).  The pool is
 * not owned by ws and must outlive its use.  A pool runs one loop at a
 * time: concurrent bert_forward calls sharing one pool stay correct, the
 * later ones just run single-threaded while it is busy; for N concurrent
 * callers on C cores give each its own pool of max(1, C / N) threads. */
void bert_ws_set_pool(bert_ws *ws, struct bct_pool *pool);

/* Calls fn(ud, l, x, ldx, rows) with the input of every fp32 Linear
 * layer as it runs (calibration for the quantizer); fn NULL to stop. */
typedef void (*bert_observer)(void *ud, const bert_linear *l, const float *x, int ldx, int rows);
void bert_ws_observe(bert_ws *ws, bert_observer fn, void *ud);

/* Later bert_forward calls on ws run only the first `layers` encoder
 * layers (0: all, the default) and leave the logits unwritten: for
 * calibration passes that observe one layer's inputs (quantizer/prune.c). */
void bert_ws_stop_after(bert_ws *ws, int layers);

/* Runs n sequences; writes n x cfg.num_labels logits (row-major). */
int bert_forward(const bert_model *m, const bert_seq *seqs, int n, float *logits, bert_ws *ws,
                 bct_error *err);

#endif
