/* server.h - `bct serve`: wires the modules together and runs the server
 * from start to graceful stop.
 *
 *   start:  HTTP listener first (GET /health answers, /ready says 503
 *           "loading"), then models load, then ready.
 *   stop:   on SIGTERM or SIGINT, /ready turns 503 and new inference
 *           requests get 503 (Connection: close); every request that had
 *           arrived before finishes normally, queued batches run without
 *           waiting for max_wait_us; then the process exits 0.  After
 *           drain_timeout_s (or a second signal) what is still queued gets
 *           503 instead.
 */
#ifndef BCT_SERVER_H
#define BCT_SERVER_H

#include "config.h"

/* Returns the process exit code (0 after a graceful stop).  port_file,
 * if not NULL, receives the bound port once listening. */
int srv_run(const srv_config *cfg, const char *port_file);

#endif
