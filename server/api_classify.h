/* api_classify.h - the JSON of POST /classify and POST /predict: request
 * body -> texts and options, logits -> response body.
 *
 * /classify  {"inputs": X, "truncate": bool, "top_k": int, "raw_scores":
 *            bool, "model": "name"} where X is "text", {"text": "a",
 *            "text_pair": "b"}, or a list mixing both.  A single X gets a
 *            list of {"label", "score"}; a list gets a list of such lists,
 *            in input order.  Unknown fields are a 422 (typos surface).
 * /predict   text-embeddings-inference's shape: "inputs" is "text",
 *            ["a", "b"] (ONE pair), or [["a"], ["q", "d"], ...] (a batch);
 *            "truncate", "truncation_direction" ("right" or "left"), and
 *            "raw_scores"; "top_k" and "model" are accepted as extensions.
 *            Responses hold {"score", "label"} like TEI's.  Unknown fields
 *            are ignored, as TEI does.
 * POST /     /predict's request, plus the Inference API's "parameters":
 *            {"top_k", "function_to_apply"}; the answer is always one list
 *            per input (what Hugging Face's clients read as response[0]).
 *
 * Scores are probabilities (softmax, or sigmoid for multi-label models)
 * unless raw_scores; lists are sorted by score, highest first, and cut to
 * top_k.  Failures return the code of srv_err (SRV_EBADREQ malformed JSON,
 * BCT_ERANGE too many inputs, BCT_EINVAL anything else).
 */
#ifndef BCT_API_CLASSIFY_H
#define BCT_API_CLASSIFY_H

#include <stddef.h>

#include "model/bert_config.h"
#include "errors.h"
#include "job.h"
#include "sbuf.h"

typedef enum { API_CLASSIFY, API_PREDICT, API_ROOT } api_kind;

typedef struct api_request {
    api_kind kind;
    void *root;         /* the parsed cJSON tree; texts point into it */
    srv_text *texts;
    int n;
    int single;         /* answer with one list instead of a list of lists */
    int truncate;       /* default 1 */
    int trunc_left;     /* truncation_direction "left" */
    int top_k;          /* 0: every label */
    int raw_scores;
    const char *model;  /* NULL: the default model */
} api_request;

/* "truncation_direction" of a cJSON object: *left = 1 for "left". */
int api_truncation_direction(const void *json, int *left, srv_err *err);

/* body must be NUL-terminated at body[len]. */
int api_parse(api_kind kind, const char *body, size_t len, int max_inputs, api_request *out,
              srv_err *err);
void api_request_free(api_request *r);

/* Appends the response for logits (n x cfg->num_labels, input order). */
void api_format(const api_request *r, const bert_config *cfg, const float *logits, sbuf *out);

#endif
