#include "job.h"

#include <stdlib.h>
#include <string.h>

int job_create(srv_model *model, const srv_text *texts, int n, int truncate, srv_job **out,
               srv_err *err) {
    const bert_model *m = model->m;
    int cap = m->max_len, nl = m->cfg.num_labels;
    *out = NULL;
    /* One allocation each for the job's arrays: n inputs, n x cap token
     * ids and types, n x nl logits. */
    srv_job *job = calloc(1, sizeof(*job));
    srv_input *in = calloc((size_t)n, sizeof(*in));
    int32_t *ids = malloc((size_t)n * (size_t)cap * sizeof(int32_t));
    uint8_t *types = malloc((size_t)n * (size_t)cap);
    float *logits = calloc((size_t)n * (size_t)nl, sizeof(float));
    if (!job || !in || !ids || !types || !logits) {
        free(job);
        free(in);
        free(ids);
        free(types);
        free(logits);
        registry_release(model);
        return srv_err_set(err, 500, ERR_INTERNAL, "out of memory");
    }
    job->model = model;
    job->n = n;
    job->num_labels = nl;
    job->in = in;
    job->logits = logits;
    job->ids_buf = ids;
    job->types_buf = types;
    job->fd = -1;
    for (int i = 0; i < n; i++) {
        const srv_text *t = &texts[i];
        tok_encoding enc = {.ids = ids + (size_t)i * cap, .type_ids = types + (size_t)i * cap,
                            .cap = cap};
        bct_error e = {{0}};
        if (t->alen == 0 || (t->b && t->blen == 0)) {
            srv_err_set(err, 422, ERR_VALIDATION, "inputs[%d]: %s is empty", i,
                        t->alen == 0 ? "text" : "text_pair");
            goto fail;
        }
        if (bert_model_encode(m, t->a, t->alen, t->b, t->blen, &enc, &e) != BCT_OK) {
            srv_err_set(err, 422, ERR_VALIDATION, "inputs[%d]: %s", i, e.msg);
            goto fail;
        }
        if (enc.untruncated > enc.len) {
            if (!truncate) {
                srv_err_set(err, 422, ERR_VALIDATION,
                            "inputs[%d] is %d tokens long, more than the maximum of %d; send "
                            "\"truncate\": true to cut it",
                            i, enc.untruncated, cap);
                goto fail;
            }
            job->truncated++;
        }
        in[i] = (srv_input){.ids = enc.ids, .types = enc.type_ids, .len = enc.len,
                            .logits = logits + (size_t)i * nl, .job = job};
        job->tokens += enc.len;
        job->chars += (long long)(t->alen + t->blen);
    }
    *out = job;
    return 0;
fail:
    job_free(job);
    return -1;
}

void job_free(srv_job *job) {
    if (!job) return;
    free(job->ids_buf);
    free(job->types_buf);
    registry_release(job->model);
    free(job->in);
    free(job->logits);
    free(job);
}
