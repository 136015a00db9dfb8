/* server.h - `bct serve`: wires the modules together and runs the server
 * from start to graceful stop.
 *
 *   start:  the model store is cleaned of what crashed writers left
 *           (model_store.h), the HTTP listener starts (GET /health
 *           answers, /ready says 503 "loading"), models load, the store
 *           watcher starts (store_rescan_s > 0), then ready.  With an
 *           admin_token the admin API and its job threads run too.
 *   stop:   on SIGTERM or SIGINT, /ready turns 503 and new inference
 *           requests get 503 (Connection: close); every request that had
 *           arrived before finishes normally, queued batches run without
 *           waiting for max_wait_us; then the process exits 0.  After
 *           drain_timeout_s (or a second signal) what is still queued gets
 *           503 instead.  Then the store watcher and the admin jobs stop
 *           (a running compression at its next tensor; its files are
 *           cleaned at the next start).
 */
#ifndef BCT_SERVER_H
#define BCT_SERVER_H

#include "config.h"

/* Returns the process exit code (0 after a graceful stop).  port_file,
 * if not NULL, receives the bound port once listening. */
int srv_run(const srv_config *cfg, const char *port_file);

#endif
