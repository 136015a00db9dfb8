#include "lifecycle.h"

#include "log.h"
#include "util/status.h"

#include <errno.h>
#include <time.h>

void lifecycle_init(srv_lifecycle *lc) {
    pthread_mutex_init(&lc->mu, NULL);
    pthread_cond_init(&lc->cv, NULL);
    lc->phase = PHASE_LOADING;
    lc->busy = 0;
}

void lifecycle_destroy(srv_lifecycle *lc) {
    pthread_cond_destroy(&lc->cv);
    pthread_mutex_destroy(&lc->mu);
}

int lifecycle_phase(srv_lifecycle *lc) {
    pthread_mutex_lock(&lc->mu);
    int p = lc->phase;
    pthread_mutex_unlock(&lc->mu);
    return p;
}

int lifecycle_busy(srv_lifecycle *lc) {
    pthread_mutex_lock(&lc->mu);
    int n = lc->busy;
    pthread_mutex_unlock(&lc->mu);
    return n;
}

void lifecycle_set_ready(srv_lifecycle *lc) {
    pthread_mutex_lock(&lc->mu);
    if (lc->phase == PHASE_LOADING) lc->phase = PHASE_READY;
    pthread_mutex_unlock(&lc->mu);
}

int lifecycle_enter(srv_lifecycle *lc) {
    pthread_mutex_lock(&lc->mu);
    int counted = lc->phase != PHASE_DRAINING;
    if (counted) lc->busy++;
    pthread_mutex_unlock(&lc->mu);
    return counted;
}

void lifecycle_leave(srv_lifecycle *lc) {
    pthread_mutex_lock(&lc->mu);
    if (--lc->busy == 0) pthread_cond_broadcast(&lc->cv);
    pthread_mutex_unlock(&lc->mu);
}

int lifecycle_drain(srv_lifecycle *lc, int timeout_ms) {
    struct timespec until = srv_deadline(timeout_ms);
    int rc = BCT_OK;
    pthread_mutex_lock(&lc->mu);
    lc->phase = PHASE_DRAINING;
    while (lc->busy > 0)
        if (pthread_cond_timedwait(&lc->cv, &lc->mu, &until) == ETIMEDOUT) {
            rc = lc->busy > 0 ? BCT_EBUSY : BCT_OK;
            break;
        }
    pthread_mutex_unlock(&lc->mu);
    return rc;
}
