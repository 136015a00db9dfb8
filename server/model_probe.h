/* model_probe.h - the smoke test a model passes before it serves: one
 * forward pass over a short text pair, whose logits must be finite.
 *
 * Loading already validates a file's structure (sizes, CRCs, shapes); the
 * probe also runs the code paths the file selects (quantized kernels,
 * integer non-linear ops), so a file that loads but cannot run is never
 * published.  Runs on the calling thread with its own scratch memory.
 */
#ifndef BCT_MODEL_PROBE_H
#define BCT_MODEL_PROBE_H

#include "model/bert_model.h"
#include "util/status.h"

int model_probe(const bert_model *m, bct_error *err);

#endif
