/* bert_forward.h - fp32 reference forward pass of a BERT classifier.
 *
 * A batch is a list of sequences of different lengths.  Tokens of all
 * sequences are packed back to back ([total_tokens][hidden], no padding),
 * so every Linear layer is one GEMM over the whole batch and no work is
 * spent on padding; attention runs per sequence and head.  In the last
 * layer only the [CLS] rows feed the pooler, so only they go through the
 * attention output and FFN.  GEMMs use OpenBLAS cblas_sgemm.
 *
 * This path is the accuracy reference that compressed modes are measured
 * against; it reproduces ../shared/tools/ref_bert.py to ~1e-5.
 */
#ifndef BCT_BERT_FORWARD_H
#define BCT_BERT_FORWARD_H

#include <stdint.h>

#include "bert_model.h"
#include "status.h"

typedef struct bert_seq {
    const int32_t *ids;
    const uint8_t *type_ids;
    int len; /* 1 .. cfg.max_pos */
} bert_seq;

/* Per-thread scratch memory; grows to the largest batch seen. */
typedef struct bert_ws bert_ws;

bert_ws *bert_ws_create(void);
void bert_ws_free(bert_ws *ws);

/* Calls fn(ud, l, x, ldx, rows) with the input of every fp32 Linear
 * layer as it runs (calibration for the quantizer); fn NULL to stop. */
typedef void (*bert_observer)(void *ud, const bert_linear *l, const float *x, int ldx, int rows);
void bert_ws_observe(bert_ws *ws, bert_observer fn, void *ud);

/* Runs n sequences; writes n x cfg.num_labels logits (row-major). */
int bert_forward(const bert_model *m, const bert_seq *seqs, int n, float *logits, bert_ws *ws,
                 bct_error *err);

#endif
