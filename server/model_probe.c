#include "model_probe.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "model/bert_forward.h"

int model_probe(const bert_model *m, bct_error *err) {
    static const char a[] = "a short check of the model", b[] = "before it serves";
    int cap = m->max_len, nl = m->cfg.num_labels;
    int32_t *ids = malloc((size_t)cap * sizeof(*ids));
    uint8_t *types = malloc((size_t)cap);
    float *logits = malloc((size_t)nl * sizeof(*logits));
    bert_ws *ws = bert_ws_create();
    int rc;
    if (!ids || !types || !logits || !ws) {
        rc = bct_fail(err, BCT_ENOMEM, "out of memory");
        goto done;
    }
    tok_encoding enc = {.ids = ids, .type_ids = types, .cap = cap};
    if ((rc = bert_model_encode(m, a, strlen(a), b, strlen(b), &enc, err)) != BCT_OK) goto done;
    bert_seq seq = {.ids = ids, .type_ids = types, .len = enc.len};
    if ((rc = bert_forward(m, &seq, 1, logits, ws, err)) != BCT_OK) goto done;
    for (int i = 0; i < nl; i++)
        if (!isfinite(logits[i])) {
            rc = bct_fail(err, BCT_EFORMAT, "a test forward pass gave a non-finite logit (label %d)", i);
            goto done;
        }
done:
    bert_ws_free(ws);
    free(ids);
    free(types);
    free(logits);
    return rc;
}
