/* api_info.h - bodies of the informational routes:
 *   GET /health  {"status":"ok"}                         (always 200)
 *   GET /ready   {"status":"ready"} 200, or 503 with the error shape and
 *                "status": "loading" | "draining"
 *   GET /models  {"default": NAME, "models": [{name, version, architecture,
 *                problem_type, labels, format, file_bytes, source_bytes,
 *                compression_ratio, max_len, layers, hidden, default}],
 *                "bct_version": "x.y.z"}
 *   GET /models/{name}  one model's fields plus "ready" and "state":
 *                200 when it serves; 503 while loading or draining, or when
 *                it is in the store but not loaded ("state": "not_loaded");
 *                404 when unknown
 */
#ifndef BCT_API_INFO_H
#define BCT_API_INFO_H

#include "registry.h"
#include "sbuf.h"

/* Writes the /ready body for phase (PHASE_*): BCT_OK when ready, else
 * BCT_EUNAVAILABLE (the body then says why). */
int api_ready_json(int phase, sbuf *out);
/* BCT_OK, or BCT_ENOMEM. */
int api_models_json(srv_registry *reg, sbuf *out);
/* phase: PHASE_*; in_store: the name is an entry of the model store.
 * BCT_OK (ready), BCT_EUNAVAILABLE (a body saying why: loading, draining,
 * in the store but not loaded), BCT_ENOTFOUND (out left empty) or
 * BCT_ENOMEM. */
int api_model_json(srv_registry *reg, const char *name, int phase, int in_store, sbuf *out);

#endif
