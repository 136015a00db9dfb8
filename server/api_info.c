#include "api_info.h"

#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>

#include "lifecycle.h"
#include "model_store.h"

int api_ready_json(int phase, sbuf *out) {
    if (phase == PHASE_READY) {
        sbuf_puts(out, "{\"status\":\"ready\"}");
        return BCT_OK;
    }
    if (phase == PHASE_LOADING)
        sbuf_puts(out, "{\"error\":\"models are loading\",\"error_type\":\"Unavailable\","
                       "\"status\":\"loading\"}");
    else
        sbuf_puts(out, "{\"error\":\"the server is shutting down\",\"error_type\":\"Unavailable\","
                       "\"status\":\"draining\"}");
    return BCT_EUNAVAILABLE;
}

static const char *problem_name(bert_problem p) {
    switch (p) {
    case BERT_MULTI_LABEL: return "multi_label_classification";
    case BERT_REGRESSION: return "regression";
    default: return "single_label_classification";
    }
}

/* One model's fields, without the closing brace. */
static void model_fields(const srv_model *sm, sbuf *out) {
    const bert_model *m = sm->m;
    sbuf_puts(out, "{\"name\":");
    sbuf_json_str(out, sm->name, strlen(sm->name));
    sbuf_printf(out, ",\"version\":%d", sm->version);
    sbuf_puts(out, ",\"architecture\":");
    sbuf_json_str(out, registry_architecture(sm), strlen(registry_architecture(sm)));
    sbuf_printf(out, ",\"problem_type\":\"%s\",\"labels\":[", problem_name(m->cfg.problem));
    for (int j = 0; j < m->cfg.num_labels; j++) {
        if (j) sbuf_putc(out, ',');
        sbuf_json_str(out, m->cfg.labels[j], strlen(m->cfg.labels[j]));
    }
    sbuf_puts(out, "],\"format\":");
    sbuf_json_str(out, m->format, strnlen(m->format, sizeof(m->format)));
    double ratio = m->file_bytes > 0 ? (double)m->source_bytes / (double)m->file_bytes : 0;
    sbuf_printf(out,
                ",\"file_bytes\":%lld,\"source_bytes\":%lld,\"compression_ratio\":%.4f,"
                "\"max_len\":%d,\"layers\":%d,\"hidden\":%d",
                m->file_bytes, m->source_bytes, ratio, m->max_len, m->cfg.layers, m->cfg.hidden);
    /* The evaluation this version was published with (issue 16): the
     * store's sidecar, so every replica and restart shows it.  Re-printed,
     * so a damaged file cannot break this answer. */
    char *text = sm->from_store && sm->path ? store_report_read(sm->path) : NULL;
    cJSON *ev = text ? cJSON_Parse(text) : NULL;
    char *ev_text = cJSON_IsObject(ev) ? cJSON_PrintUnformatted(ev) : NULL;
    if (ev_text) {
        sbuf_puts(out, ",\"evaluation\":");
        sbuf_puts(out, ev_text);
    }
    free(ev_text);
    cJSON_Delete(ev);
    free(text);
}

int api_models_json(srv_registry *reg, sbuf *out) {
    srv_model **list;
    int n, def;
    if (registry_list(reg, &list, &n, &def) != 0) return BCT_ENOMEM;
    sbuf_printf(out, "{\"bct_version\":\"%s\",\"default\":", BCT_VERSION);
    if (def >= 0) sbuf_json_str(out, list[def]->name, strlen(list[def]->name));
    else sbuf_puts(out, "null");
    sbuf_puts(out, ",\"models\":[");
    for (int i = 0; i < n; i++) {
        if (i) sbuf_putc(out, ',');
        model_fields(list[i], out);
        sbuf_printf(out, ",\"default\":%s,\"status\":\"loaded\"}", i == def ? "true" : "false");
    }
    /* Store entries that did not load: the server runs without them. */
    registry_failure *f;
    int nf;
    sbuf_puts(out, "],\"unavailable\":[");
    if (registry_failures(reg, &f, &nf) == BCT_OK) {
        for (int i = 0; i < nf; i++) {
            sbuf_puts(out, i ? ",{\"name\":" : "{\"name\":");
            sbuf_json_str(out, f[i].name, strlen(f[i].name));
            sbuf_puts(out, ",\"status\":\"failed\",\"error\":");
            sbuf_json_str(out, f[i].error, strlen(f[i].error));
            sbuf_putc(out, '}');
        }
        free(f);
    }
    sbuf_puts(out, "]}");
    for (int i = 0; i < n; i++) registry_release(list[i]);
    free(list);
    return BCT_OK;
}

int api_model_json(srv_registry *reg, const char *name, int phase, int in_store, sbuf *out) {
    srv_model **list;
    int n, def, rc = BCT_ENOTFOUND;
    if (registry_list(reg, &list, &n, &def) != 0) return BCT_ENOMEM;
    for (int i = 0; i < n; i++) {
        if (strcmp(list[i]->name, name) != 0) continue;
        int ready = phase == PHASE_READY;
        model_fields(list[i], out);
        sbuf_printf(out, ",\"default\":%s,\"ready\":%s,\"state\":\"%s\"}", i == def ? "true" : "false",
                    ready ? "true" : "false", ready ? "ready" : phase == PHASE_LOADING ? "loading" : "draining");
        rc = ready ? BCT_OK : BCT_EUNAVAILABLE;
    }
    for (int i = 0; i < n; i++) registry_release(list[i]);
    free(list);
    if (rc == BCT_ENOTFOUND && in_store) {
        /* In the store, not loaded: unloaded by an admin, or failing to load. */
        sbuf_puts(out, "{\"name\":");
        sbuf_json_str(out, name, strlen(name));
        sbuf_puts(out, ",\"ready\":false,\"state\":\"not_loaded\",\"error\":\"the model is in the store "
                       "but not loaded\",\"error_type\":\"Unavailable\"}");
        rc = BCT_EUNAVAILABLE;
    }
    return rc;
}
