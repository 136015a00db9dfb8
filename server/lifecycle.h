/* lifecycle.h - the server's phase (loading -> ready -> draining) and the
 * count of requests that shutdown must wait for.
 *
 * A request "enters" when its headers arrive.  Requests that arrive before
 * draining starts are counted and shutdown waits for them (their bodies
 * may still be uploading); requests that arrive while draining are not
 * counted: they get 503 at once.  Thread-safe.
 */
#ifndef BCT_LIFECYCLE_H
#define BCT_LIFECYCLE_H

#include <pthread.h>

enum { PHASE_LOADING, PHASE_READY, PHASE_DRAINING };

typedef struct srv_lifecycle {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int phase;
    int busy;
} srv_lifecycle;

void lifecycle_init(srv_lifecycle *lc);
void lifecycle_destroy(srv_lifecycle *lc);
int lifecycle_phase(srv_lifecycle *lc);
/* Counted requests not yet complete. */
int lifecycle_busy(srv_lifecycle *lc);
void lifecycle_set_ready(srv_lifecycle *lc);

/* Returns 1 if the request is counted (arrived before draining). */
int lifecycle_enter(srv_lifecycle *lc);
void lifecycle_leave(srv_lifecycle *lc);

/* Switches to draining and waits until every counted request has left.
 * BCT_OK, or BCT_EBUSY when timeout_ms passed first. */
int lifecycle_drain(srv_lifecycle *lc, int timeout_ms);

#endif
