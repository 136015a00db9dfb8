#include "metrics.h"

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/qgemm.h"
#include "routes/route.h"

#define MAX_BUCKETS 20

static const double dur_le[] = {0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025,
                                0.05,   0.1,     0.25,   0.5,   1,      2.5,   5,    10};
static const double size_le[] = {1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096};
static const double tok_le[] = {16,   32,   64,    128,   256,   512,   1024,
                                2048, 4096, 8192, 16384, 32768, 65536};

#define NB(a) ((int)(sizeof(a) / sizeof((a)[0])))

typedef struct hist {
    const double *le;
    int n;
    double unit; /* sum is kept as an integer count of this unit */
    atomic_ullong bucket[MAX_BUCKETS + 1]; /* non-cumulative; last = +Inf */
    atomic_ullong count, sum;
} hist;

static const int codes[] = {200, 202, 400, 401, 403, 404, 405, 409, 413, 415, 422, 429, 500, 503};
#define N_CODES ((int)(sizeof(codes) / sizeof(codes[0])))

struct srv_metrics {
    int n_routes; /* the table's, plus "other" */
    atomic_ullong (*requests)[N_CODES + 1]; /* [n_routes]; last: any other code */
    hist *req_dur;                           /* [n_routes] */
    hist queue_wait, inference, batch_size, batch_tokens, batch_dur;
    atomic_ullong inputs, tokens, truncated, dropped;
};

static void hist_init(hist *h, const double *le, int n, double unit) {
    h->le = le;
    h->n = n;
    h->unit = unit;
}

static void hist_observe(hist *h, double v) {
    int i = 0;
    while (i < h->n && v > h->le[i]) i++;
    atomic_fetch_add_explicit(&h->bucket[i], 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&h->count, 1, memory_order_relaxed);
    if (v > 0) atomic_fetch_add_explicit(&h->sum, (unsigned long long)(v / h->unit + 0.5),
                                         memory_order_relaxed);
}

int metrics_create(srv_metrics **out) {
    srv_metrics *m = calloc(1, sizeof(*m));
    if (!m) return BCT_ENOMEM;
    m->n_routes = routes_count() + 1;
    m->requests = calloc((size_t)m->n_routes, sizeof(*m->requests));
    m->req_dur = calloc((size_t)m->n_routes, sizeof(*m->req_dur));
    if (!m->requests || !m->req_dur) {
        metrics_free(m);
        return BCT_ENOMEM;
    }
    for (int r = 0; r < m->n_routes; r++) hist_init(&m->req_dur[r], dur_le, NB(dur_le), 1e-9);
    hist_init(&m->queue_wait, dur_le, NB(dur_le), 1e-9);
    hist_init(&m->inference, dur_le, NB(dur_le), 1e-9);
    hist_init(&m->batch_dur, dur_le, NB(dur_le), 1e-9);
    hist_init(&m->batch_size, size_le, NB(size_le), 1);
    hist_init(&m->batch_tokens, tok_le, NB(tok_le), 1);
    *out = m;
    return 0;
}

void metrics_free(srv_metrics *m) {
    if (!m) return;
    free(m->requests);
    free(m->req_dur);
    free(m);
}

void metrics_request(srv_metrics *m, int ri, int status, double seconds) {
    if (ri < 0 || ri >= m->n_routes) ri = m->n_routes - 1;
    int c = 0;
    while (c < N_CODES && codes[c] != status) c++;
    atomic_fetch_add_explicit(&m->requests[ri][c], 1, memory_order_relaxed);
    hist_observe(&m->req_dur[ri], seconds);
}

void metrics_job(srv_metrics *m, double queue_s, double inference_s, int truncated) {
    hist_observe(&m->queue_wait, queue_s);
    hist_observe(&m->inference, inference_s);
    if (truncated) atomic_fetch_add_explicit(&m->truncated, (unsigned)truncated, memory_order_relaxed);
}

void metrics_batch(srv_metrics *m, int inputs, long long tokens, double seconds) {
    hist_observe(&m->batch_size, inputs);
    hist_observe(&m->batch_tokens, (double)tokens);
    hist_observe(&m->batch_dur, seconds);
    atomic_fetch_add_explicit(&m->inputs, (unsigned)inputs, memory_order_relaxed);
    atomic_fetch_add_explicit(&m->tokens, (unsigned long long)tokens, memory_order_relaxed);
}

void metrics_dropped(srv_metrics *m) {
    atomic_fetch_add_explicit(&m->dropped, 1, memory_order_relaxed);
}

static unsigned long long get(atomic_ullong *a) {
    return atomic_load_explicit(a, memory_order_relaxed);
}

static void header(sbuf *o, const char *name, const char *type, const char *help) {
    sbuf_printf(o, "# HELP bct_%s %s\n# TYPE bct_%s %s\n", name, help, name, type);
}

/* Label values need \\, \" and \n escaped. */
static void label_value(sbuf *o, const char *v) {
    for (; *v; v++) {
        if (*v == '\\' || *v == '"') sbuf_putc(o, '\\');
        if (*v == '\n') {
            sbuf_puts(o, "\\n");
            continue;
        }
        sbuf_putc(o, *v);
    }
}

static void hist_render(sbuf *o, const char *name, const char *labels, hist *h) {
    unsigned long long cum = 0;
    const char *sep = labels[0] ? "," : "";
    for (int i = 0; i <= h->n; i++) {
        cum += get(&h->bucket[i]);
        if (i < h->n)
            sbuf_printf(o, "bct_%s_bucket{%s%sle=\"%g\"} %llu\n", name, labels, sep, h->le[i], cum);
        else
            sbuf_printf(o, "bct_%s_bucket{%s%sle=\"+Inf\"} %llu\n", name, labels, sep, cum);
    }
    const char *lb = labels[0] ? "{" : "", *rb = labels[0] ? "}" : "";
    sbuf_printf(o, "bct_%s_sum%s%s%s %.9g\n", name, lb, labels, rb, (double)get(&h->sum) * h->unit);
    sbuf_printf(o, "bct_%s_count%s%s%s %llu\n", name, lb, labels, rb, get(&h->count));
}

void metrics_render(srv_metrics *m, const metrics_gauges *g, sbuf *o) {
    header(o, "http_requests_total", "counter", "HTTP requests by route and status code.");
    for (int r = 0; r < m->n_routes; r++)
        for (int c = 0; c <= N_CODES; c++) {
            unsigned long long v = get(&m->requests[r][c]);
            if (!v) continue;
            if (c < N_CODES)
                sbuf_printf(o, "bct_http_requests_total{route=\"%s\",code=\"%d\"} %llu\n",
                            routes_label(r), codes[c], v);
            else
                sbuf_printf(o, "bct_http_requests_total{route=\"%s\",code=\"other\"} %llu\n",
                            routes_label(r), v);
        }
    header(o, "http_request_duration_seconds", "histogram",
           "Time from request arrival to response, by route.");
    for (int r = 0; r < m->n_routes; r++) {
        if (!get(&m->req_dur[r].count)) continue;
        char lb[128];
        snprintf(lb, sizeof(lb), "route=\"%s\"", routes_label(r));
        hist_render(o, "http_request_duration_seconds", lb, &m->req_dur[r]);
    }
    header(o, "queue_wait_seconds", "histogram",
           "Per inference request: admission until its first input entered the engine.");
    hist_render(o, "queue_wait_seconds", "", &m->queue_wait);
    header(o, "inference_seconds", "histogram",
           "Per inference request: its first input entering the engine until its last left.");
    hist_render(o, "inference_seconds", "", &m->inference);
    header(o, "batch_size", "histogram", "Inputs per forward pass.");
    hist_render(o, "batch_size", "", &m->batch_size);
    header(o, "batch_tokens", "histogram", "Tokens per forward pass.");
    hist_render(o, "batch_tokens", "", &m->batch_tokens);
    header(o, "batch_duration_seconds", "histogram", "Duration of one forward pass.");
    hist_render(o, "batch_duration_seconds", "", &m->batch_dur);
    header(o, "inputs_total", "counter", "Sequences run through the engine.");
    sbuf_printf(o, "bct_inputs_total %llu\n", get(&m->inputs));
    header(o, "tokens_total", "counter", "Tokens run through the engine.");
    sbuf_printf(o, "bct_tokens_total %llu\n", get(&m->tokens));
    header(o, "inputs_truncated_total", "counter", "Inputs cut to the maximum length.");
    sbuf_printf(o, "bct_inputs_truncated_total %llu\n", get(&m->truncated));
    header(o, "requests_dropped_total", "counter",
           "Requests dropped from the queue because their client disconnected.");
    sbuf_printf(o, "bct_requests_dropped_total %llu\n", get(&m->dropped));
    header(o, "queue_depth", "gauge", "Inputs waiting for a worker.");
    sbuf_printf(o, "bct_queue_depth %d\n", g->queue_depth);
    header(o, "queue_capacity", "gauge", "Inputs the queue holds before answering 429.");
    sbuf_printf(o, "bct_queue_capacity %d\n", g->queue_capacity);
    header(o, "requests_in_flight", "gauge", "Inference requests admitted and not yet answered.");
    sbuf_printf(o, "bct_requests_in_flight %d\n", g->in_flight);
    header(o, "http_requests_active", "gauge",
           "Requests being received or answered, this one included; shutdown waits for them.");
    sbuf_printf(o, "bct_http_requests_active %d\n", g->active);
    header(o, "workers", "gauge", "Inference worker threads.");
    sbuf_printf(o, "bct_workers %d\n", g->workers);
    header(o, "ready", "gauge", "1 when serving, 0 while loading or draining.");
    sbuf_printf(o, "bct_ready %d\n", g->ready);
    header(o, "build_info", "gauge", "The version of bct serving.");
    sbuf_printf(o, "bct_build_info{version=\"%s\"} 1\n", BCT_VERSION);
    header(o, "kernel_info", "gauge", "The int8 GEMM kernel level in use (cpuid's best, or BCT_ISA).");
    sbuf_printf(o, "bct_kernel_info{isa=\"%s\"} 1\n", bct_isa_name(qgemm_isa()));
    header(o, "store_entries_failed", "gauge",
           "Model store entries that failed to load and are not served (see /models).");
    sbuf_printf(o, "bct_store_entries_failed %d\n", g->store_failed);
    header(o, "model_info", "gauge", "One series per loaded model.");
    for (int i = 0; i < g->n_models; i++) {
        sbuf_puts(o, "bct_model_info{model=\"");
        label_value(o, g->models[i]->name);
        sbuf_puts(o, "\",format=\"");
        label_value(o, g->models[i]->m->format);
        sbuf_printf(o, "\",default=\"%s\"} 1\n", i == g->default_index ? "true" : "false");
    }
}
