/* metrics.h - counters and histograms for GET /metrics (Prometheus text
 * format 0.0.4).
 *
 * Updates are lock-free atomics, callable from any thread.  Gauges that
 * belong to other modules (queue depth, in-flight jobs, models) are
 * passed in at render time instead of being mirrored here.
 *
 * Series (all prefixed bct_):
 *   http_requests_total{route,code}           counter
 *   http_request_duration_seconds{route}      histogram, arrival -> response queued
 *   queue_wait_seconds                        histogram, per inference request
 *   inference_seconds                         histogram, per inference request
 *   batch_size, batch_tokens                  histograms, per forward pass
 *   batch_duration_seconds                    histogram, per forward pass
 *   inputs_total, tokens_total                counters, sequences/tokens run
 *   inputs_truncated_total                    counter
 *   requests_dropped_total                    counter, client left while queued
 *   queue_depth, queue_capacity               gauges, inputs
 *   requests_in_flight                        gauge, requests in the batcher
 *   http_requests_active                      gauge, requests being received or
 *                                             answered (shutdown waits for them)
 *   workers, ready                            gauges
 *   model_info{model,format,default}          gauge (1)
 */
#ifndef BCT_METRICS_H
#define BCT_METRICS_H

#include "registry.h"
#include "sbuf.h"

typedef struct srv_metrics srv_metrics;

/* Request series are kept per route of routes/table.c (index
 * routes_count() for requests that matched none). */
int metrics_create(srv_metrics **out);
void metrics_free(srv_metrics *m);

/* ri: an index into the route table, or routes_count(). */
void metrics_request(srv_metrics *m, int ri, int status, double seconds);
void metrics_job(srv_metrics *m, double queue_s, double inference_s, int truncated);
void metrics_batch(srv_metrics *m, int inputs, long long tokens, double seconds);
void metrics_dropped(srv_metrics *m);

typedef struct metrics_gauges {
    int queue_depth, queue_capacity;
    int in_flight;
    int active;
    int workers;
    int ready;
    srv_model **models; /* may be NULL */
    int n_models, default_index;
    int store_failed; /* model store entries that did not load */
} metrics_gauges;

void metrics_render(srv_metrics *m, const metrics_gauges *g, sbuf *out);

#endif
