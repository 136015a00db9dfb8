#include "job.h"

#include <stdlib.h>
#include <string.h>

int job_create(srv_model *model, const srv_text *texts, int n, int flags, srv_job **out,
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
        return srv_err_set(err, BCT_ENOMEM, "out of memory");
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
        int rc = t->alen && (!t->b || t->blen) ? tok_encode_dir(m->tok, t->a, t->alen, t->b, t->blen, m->max_len,
                                                                (flags & JOB_TRUNCATE_LEFT) != 0, &enc, &e)
                                               : BCT_OK;
        if (rc != BCT_OK) {
            bct_fail_prefix(&e, rc, "inputs[%d]", i);
            srv_err_set(err, rc == BCT_ERANGE ? BCT_EINVAL : rc, "%s", e.msg);
            goto fail;
        }
        /* The tokenizer drops whitespace and control characters: a side
         * with no piece left is as empty as "". */
        int nb = 0;
        if (t->b && t->blen && (nb = tok_tokenize(m->tok, t->b, t->blen, NULL, 0, &e)) < 0) {
            bct_fail_prefix(&e, nb, "inputs[%d]", i);
            srv_err_set(err, nb == BCT_ERANGE ? BCT_EINVAL : nb, "%s", e.msg);
            goto fail;
        }
        int empty_a = t->alen == 0 || enc.untruncated - nb - (t->b ? 3 : 2) == 0;
        int empty_b = t->b && (t->blen == 0 || nb == 0);
        if (empty_a || empty_b) {
            srv_err_set(err, BCT_EINVAL, "inputs[%d]: %s is empty%s", i,
                        empty_a ? "text" : "text_pair",
                        (empty_a ? t->alen : t->blen) ? " (only whitespace or control characters)" : "");
            goto fail;
        }
        if (enc.untruncated > enc.len) {
            if (!(flags & JOB_TRUNCATE)) {
                srv_err_set(err, BCT_EINVAL,
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
    return BCT_OK;
fail:
    job_free(job);
    return err->code;
}

void job_free(srv_job *job) {
    if (!job) return;
    free(job->slot); /* set when the batcher never ran the job */
    free(job->ids_buf);
    free(job->types_buf);
    registry_release(job->model);
    free(job->in);
    free(job->logits);
    free(job);
}
