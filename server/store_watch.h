/* store_watch.h - every replica follows the model store while it runs:
 * models that appear, are replaced (a new version, or a new file under
 * the same name) or disappear are loaded, swapped or unloaded.
 *
 * A libuv loop on its own thread (nice 10, so serving keeps its latency)
 * watches the store folder and every model folder in it (uv_fs_event,
 * i.e. inotify) and rescans 200 ms after a change, and also every
 * rescan_s seconds, since network filesystems do not report other hosts'
 * changes.  Hidden entries and temp files (*.tmp.*) never trigger
 * anything.
 *
 * A scan compares each store entry (model_store.h) with the registry.  A
 * model whose current file differs (path, size, mtime, inode) from the
 * one loaded is loaded and probed (model_probe.h) without holding any
 * lock, then swapped in only if the registry entry is still the one it
 * was compared with (a publish by this replica's admin wins).  A file
 * that fails is logged once and tried again only when it changes.
 * Models gone from the store are unloaded, except the default model
 * (kept) and models not from the store (--model).  Swaps and unloads keep
 * in-flight requests on the model they hold (registry reference counts).
 */
#ifndef BCT_STORE_WATCH_H
#define BCT_STORE_WATCH_H

#include "log.h"
#include "model_store.h"
#include "registry.h"

typedef struct watch_opts {
    model_store *store;
    srv_registry *reg;
    const srv_log *log;
    int max_seq_len; /* as the server loads models */
    int rescan_s;    /* periodic rescan; >= 1 */
} watch_opts;

typedef struct store_watch store_watch;

int watch_start(const watch_opts *o, store_watch **out, bct_error *err);
/* Stops the thread (after the load in progress, if any) and frees. */
void watch_stop(store_watch *w);

#endif
