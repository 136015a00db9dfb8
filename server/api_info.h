/* api_info.h - bodies of the informational routes:
 *   GET /health  {"status":"ok"}                         (always 200)
 *   GET /ready   {"status":"ready"} 200, or 503 with the error shape and
 *                "status": "loading" | "draining"
 *   GET /models  {"default": NAME, "models": [{name, version, architecture,
 *                problem_type, labels, format, file_bytes, source_bytes,
 *                compression_ratio, max_len, layers, hidden, default}]}
 */
#ifndef BCT_API_INFO_H
#define BCT_API_INFO_H

#include "registry.h"
#include "sbuf.h"

/* Returns the HTTP status for phase (PHASE_*). */
int api_ready_json(int phase, sbuf *out);
int api_models_json(srv_registry *reg, sbuf *out);

#endif
