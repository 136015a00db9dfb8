#include "compress_budget.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli_util.h"
#include "evaluate.h"
#include "kernels/threadpool.h"

/* Groups holding less than this share of the matrix bytes stay at the
 * base format: each costs a compression per format to measure and can
 * save almost nothing (bert-mini: the token-type table and the 2-label
 * classifier). */
#define BUDGET_MIN_GROUP_SHARE 0.005
#define BUDGET_DEFAULT_N 512
/* Formats a group may take, from the base's bits down. */
static const int budget_bits[] = {8, 4, 3, 2};
#define N_BITS ((int)(sizeof(budget_bits) / sizeof(budget_bits[0])))

typedef struct group {
    char match[96];
    const char *kind;
    bq_spec spec;      /* the base spec of its kind; bits varied */
    int tensors;
    long long params;
    double bytes[N_BITS]; /* codes + scales at each format */
    double sens[N_BITS];  /* mean squared logit difference from fp32, this group alone at that format */
    int base_fmt;           /* index into budget_bits of the base format (nothing above it is tried) */
    int fixed;            /* too small to matter: stays at the base format */
} group;

typedef struct budget {
    const char *hf_dir, *out_path;
    const compress_opts *base;
    const budget_opts *bo;
    glue_set set;
    int n_sens;
    int nl;
    float *ref;      /* fp32 logits, set.n x nl */
    float *logits;   /* scratch */
    double ref_acc;
    bct_pool *pool;
    group g[BUDGET_MAX_GROUPS];
    int ng;
    compress_rule rules[COMPRESS_MAX_RULES];
    int probes;      /* compressions made */
} budget;

/* The group of a matrix: "layer.N.<component>." inside an encoder layer
 * (attention, intermediate, output, ffn, ...), else its whole name. */
static void group_key(const char *name, char *key, size_t size) {
    const char *p = name;
    while ((p = strstr(p, "layer.")) != NULL) {
        const char *q = p + 6;
        if (*q >= '0' && *q <= '9') {
            while (*q >= '0' && *q <= '9') q++;
            const char *dot = *q == '.' ? strchr(q + 1, '.') : NULL;
            if (dot) {
                snprintf(key, size, "%.*s", (int)(dot + 1 - p), p);
                return;
            }
        }
        p += 6;
    }
    snprintf(key, size, "%s", name);
}

static const bq_spec *kind_spec(const compress_opts *o, const char *kind) {
    if (strcmp(kind, "embeddings") == 0) return &o->embeddings;
    if (strcmp(kind, "tables") == 0) return &o->tables;
    return &o->weights;
}

static int bits_index(int bits) {
    for (int i = 0; i < N_BITS; i++)
        if (budget_bits[i] == bits) return i;
    return -1;
}

/* Rules for the groups not at their base format (fmt[i] per group). */
static int plan_rules(budget *b, const int *fmt) {
    int n = 0;
    for (int i = 0; i < b->ng; i++) {
        if (fmt[i] == b->g[i].base_fmt) continue;
        compress_rule *r = &b->rules[n++];
        snprintf(r->match, sizeof(r->match), "%s", b->g[i].match);
        r->spec = b->g[i].spec;
        r->spec.bits = budget_bits[fmt[i]];
    }
    return n;
}

static void probe_path(const budget *b, int k, char *path, size_t size) {
    snprintf(path, size, "%s.budget-%d.tmp", b->out_path, k);
}

/* Compresses with plan fmt into path and runs the first n examples:
 * BCT_OK with their logits in b->logits, or an error and no file. */
static int run_plan(budget *b, const int *fmt, const char *path, int n, bct_error *err) {
    compress_opts o = *b->base;
    o.progress = NULL;
    o.rules = b->rules;
    o.n_rules = plan_rules(b, fmt);
    if (o.n_rules) snprintf(o.preset, sizeof(o.preset), "custom");
    compress_report rep;
    int rc = compress_checkpoint(b->hf_dir, path, &o, &rep, err);
    b->probes++;
    if (rc != BCT_OK) return rc;
    compress_report_free(&rep);
    bert_model *m = NULL;
    glue_set sub = b->set;
    sub.n = n;
    eval_result r;
    if ((rc = bert_model_load(path, &m, err)) == BCT_OK)
        rc = glue_eval_run(m, &sub, 32, b->pool, NULL, NULL, b->logits, &r, err);
    bert_model_free(m);
    if (rc != BCT_OK) {
        unlink(path); /* a probe is kept only when measured */
        return bct_fail_prefix(err, rc, "%s", path);
    }
    return BCT_OK;
}

/* The drop of b->logits from fp32 on the whole set, in points, and its
 * standard error as a paired difference (only the examples where exactly
 * one of the two is right count: McNemar's view). */
typedef struct drop_est {
    double drop, se;
} drop_est;

static drop_est drop_of(const budget *b) {
    int n = b->set.n, lost = 0, won = 0;
    for (int i = 0; i < n; i++) {
        int gold = b->set.ex[i].label;
        int r = eval_argmax(b->ref + (size_t)i * b->nl, b->nl) == gold;
        int c = eval_argmax(b->logits + (size_t)i * b->nl, b->nl) == gold;
        lost += r && !c;
        won += c && !r;
    }
    double d = (double)(lost - won);
    double var = (double)(lost + won) - d * d / n;
    return (drop_est){100 * d / n, 100 * sqrt(var > 0 ? var : 0) / n};
}

/* Within the budget: the drop plus `confidence` standard errors. */
static int within(const budget *b, drop_est e) { return e.drop + b->bo->confidence * e.se <= b->bo->max_drop + 1e-9; }

static double mse_of(const budget *b, int n) {
    double s = 0;
    for (size_t i = 0; i < (size_t)n * b->nl; i++) {
        double d = (double)b->logits[i] - b->ref[i];
        s += d * d;
    }
    return n ? s / ((double)n * b->nl) : 0;
}

/* The groups of the matrices in a base compression's report. */
static int make_groups(budget *b, const compress_report *rep, bct_error *err) {
    double total = 0;
    for (int i = 0; i < rep->n_tensors; i++) {
        const compress_tensor *t = &rep->tensors[i];
        if (t->bits == 32 || !t->cols) continue;
        char key[96];
        if (strcmp(t->kind, "weights") == 0)
            group_key(t->name, key, sizeof(key));
        else
            snprintf(key, sizeof(key), "%s", t->name);
        int j = 0;
        while (j < b->ng && strcmp(b->g[j].match, key)) j++;
        if (j == b->ng) {
            if (b->ng == BUDGET_MAX_GROUPS)
                return bct_fail(err, BCT_EINVAL, "more than %d tensor groups", BUDGET_MAX_GROUPS);
            group *g = &b->g[b->ng++];
            memset(g, 0, sizeof(*g));
            snprintf(g->match, sizeof(g->match), "%s", key);
            g->kind = t->kind;
            g->spec = *kind_spec(b->base, t->kind);
            g->base_fmt = bits_index(g->spec.bits);
            if (g->base_fmt < 0)
                return bct_fail(err, BCT_EINVAL, "%s: base format q%d is not one of q8, q4, q3, q2", key,
                                g->spec.bits);
        }
        group *g = &b->g[j];
        g->tensors++;
        g->params += (long long)t->rows * t->cols;
        for (int k = 0; k < N_BITS; k++) {
            bq_spec s = g->spec;
            s.bits = budget_bits[k];
            g->bytes[k] += (double)t->rows * t->cols * bq_bits_per_weight(&s, t->cols) / 8;
        }
        total += g->bytes[g->base_fmt];
    }
    for (int i = 0; i < b->ng; i++) b->g[i].fixed = b->g[i].bytes[b->g[i].base_fmt] < BUDGET_MIN_GROUP_SHARE * total;
    return BCT_OK;
}

static void print_plan(const budget *b, const int *fmt, FILE *f) {
    fprintf(f, "%-44s %-10s %7s %10s  %-6s %s\n", "group (tensor names containing)", "kind", "tensors", "params",
            "format", "sensitivity (mean sq. logit diff) q8 / q4 / q3 / q2");
    for (int i = 0; i < b->ng; i++) {
        const group *g = &b->g[i];
        fprintf(f, "%-44s %-10s %7d %10lld  q%-5d", g->match, g->kind, g->tensors, g->params, budget_bits[fmt[i]]);
        if (g->fixed) {
            fprintf(f, " (small: kept at the base format)\n");
            continue;
        }
        for (int k = 0; k < N_BITS; k++)
            k < g->base_fmt ? fprintf(f, "       -") : fprintf(f, " %.5f", g->sens[k]);
        fputc('\n', f);
    }
}

int compress_budget_run(const char *hf_dir, const char *out_path, const compress_opts *base,
                        const budget_opts *bo, bct_error *err) {
    budget *b = calloc(1, sizeof(*b));
    int *plans = NULL, *fmt = NULL;
    bert_model *fp = NULL;
    char path[4200], best_path[4200] = "";
    int rc;
    if (!b) return bct_fail(err, BCT_ENOMEM, "out of memory");
    b->hf_dir = hf_dir;
    b->out_path = out_path;
    b->base = base;
    b->bo = bo;
    if (!(bo->max_drop >= 0 && bo->max_drop <= 100)) {
        rc = bct_fail(err, BCT_EINVAL, "--max-drop must be in [0, 100] points");
        goto done;
    }
    if ((rc = bert_model_load(hf_dir, &fp, err)) != BCT_OK) goto done;
    if ((rc = glue_load(bo->eval, bo->task, &fp->cfg, 0, &b->set, err)) != BCT_OK) goto done;
    if (b->set.n == 0) {
        rc = bct_fail(err, BCT_EINVAL, "%s: no examples", bo->eval);
        goto done;
    }
    b->nl = fp->cfg.num_labels;
    b->n_sens = bo->budget_n > 0 ? bo->budget_n : BUDGET_DEFAULT_N;
    if (b->n_sens > b->set.n) b->n_sens = b->set.n;
    b->ref = malloc((size_t)b->set.n * b->nl * sizeof(float));
    b->logits = malloc((size_t)b->set.n * b->nl * sizeof(float));
    if (!b->ref || !b->logits) {
        rc = bct_fail(err, BCT_ENOMEM, "out of memory for %d examples' logits", b->set.n);
        goto done;
    }
    b->pool = cli_threads(bo->threads);
    eval_result r;
    if ((rc = glue_eval_run(fp, &b->set, 32, b->pool, NULL, NULL, b->ref, &r, err)) != BCT_OK) {
        rc = bct_fail_prefix(err, rc, "%s", hf_dir);
        goto done;
    }
    bert_model_free(fp);
    fp = NULL;
    b->ref_acc = eval_accuracy(&r);
    fprintf(stderr, "budget: fp32 accuracy %.4f on %d examples of %s; sensitivity on the first %d\n",
            b->ref_acc, b->set.n, bo->eval, b->n_sens);

    /* the base plan: its groups, and the drop it starts from */
    {
        compress_opts o = *base;
        o.progress = NULL;
        compress_report rep;
        probe_path(b, 0, path, sizeof(path));
        if ((rc = compress_checkpoint(hf_dir, path, &o, &rep, err)) != BCT_OK) goto done;
        b->probes++;
        rc = make_groups(b, &rep, err);
        compress_report_free(&rep);
        unlink(path);
        if (rc != BCT_OK) goto done;
    }
    fmt = malloc(sizeof(int) * (size_t)b->ng);
    plans = malloc(sizeof(int) * (size_t)b->ng * (size_t)(b->ng * N_BITS + 1));
    if (!fmt || !plans) {
        rc = bct_fail(err, BCT_ENOMEM, "out of memory");
        goto done;
    }
    for (int i = 0; i < b->ng; i++) fmt[i] = b->g[i].base_fmt;
    probe_path(b, 0, path, sizeof(path));
    if ((rc = run_plan(b, fmt, path, b->set.n, err)) != BCT_OK) goto done;
    double base_mse = mse_of(b, b->n_sens);
    drop_est base_drop = drop_of(b);
    fprintf(stderr, "budget: base preset %s: drop %.2f points (standard error %.2f; budget %.2f)\n", base->preset,
            base_drop.drop, base_drop.se, bo->max_drop);
    if (!within(b, base_drop)) {
        unlink(path);
        rc = bct_fail(err, BCT_EINVAL,
                      "even the base preset %s loses %.2f points (standard error %.2f, confidence %.2f) on %s "
                      "(budget %.2f): nothing written; try a larger budget or a higher-precision base",
                      base->preset, base_drop.drop, base_drop.se, bo->confidence, bo->eval, bo->max_drop);
        goto done;
    }
    snprintf(best_path, sizeof(best_path), "%s", path);

    /* 1. sensitivity of every group alone at every lower format */
    for (int i = 0; i < b->ng; i++) {
        group *g = &b->g[i];
        for (int k = 0; k < N_BITS; k++) g->sens[k] = k <= g->base_fmt ? base_mse : DBL_MAX;
        if (g->fixed) continue;
        for (int k = g->base_fmt + 1; k < N_BITS; k++) {
            fmt[i] = k;
            probe_path(b, 1, path, sizeof(path));
            if ((rc = run_plan(b, fmt, path, b->n_sens, err)) != BCT_OK) goto done;
            unlink(path);
            g->sens[k] = mse_of(b, b->n_sens);
            fprintf(stderr, "budget: %-44s q%d: %.5f\n", g->match, budget_bits[k], g->sens[k]);
        }
        fmt[i] = g->base_fmt;
    }

    /* 2. the greedy order: plans[p] is the plan after p moves */
    int np = 0;
    memcpy(plans, fmt, sizeof(int) * (size_t)b->ng);
    for (;;) {
        int bi = -1, bk = -1;
        double best = -1;
        for (int i = 0; i < b->ng; i++) {
            const group *g = &b->g[i];
            if (g->fixed) continue;
            for (int k = fmt[i] + 1; k < N_BITS; k++) {
                double saved = g->bytes[fmt[i]] - g->bytes[k];
                double cost = g->sens[k] - g->sens[fmt[i]];
                /* free (no worse within noise): the biggest saving first */
                double eff = cost > 0 ? saved / cost : DBL_MAX / 2 + saved;
                if (eff > best) best = eff, bi = i, bk = k;
            }
        }
        if (bi < 0) break;
        fmt[bi] = bk;
        np++;
        memcpy(plans + (size_t)np * b->ng, fmt, sizeof(int) * (size_t)b->ng);
    }

    /* 3. the longest prefix within the budget (plan 0 is) */
    int lo = 0, hi = np + 1, first = 1;
    drop_est lo_drop = base_drop;
    while (hi - lo > 1) {
        int mid = first ? np : (lo + hi) / 2; /* everything lowered first: often within a loose budget */
        first = 0;
        probe_path(b, 2 + mid, path, sizeof(path));
        if ((rc = run_plan(b, plans + (size_t)mid * b->ng, path, b->set.n, err)) != BCT_OK) goto done;
        drop_est drop = drop_of(b);
        fprintf(stderr, "budget: plan %d of %d: drop %.2f (standard error %.2f)\n", mid, np, drop.drop, drop.se);
        if (within(b, drop)) {
            unlink(best_path);
            snprintf(best_path, sizeof(best_path), "%s", path);
            lo = mid;
            lo_drop = drop;
        } else {
            unlink(path);
            hi = mid;
        }
    }

    /* 4. the measured file becomes the output */
    if (rename(best_path, out_path) != 0) {
        rc = bct_fail(err, BCT_EIO, "%s: cannot rename to %s: %s", best_path, out_path, strerror(errno));
        goto done;
    }
    best_path[0] = 0;
    bert_model *m = NULL;
    if ((rc = bert_model_load(out_path, &m, err)) != BCT_OK) goto done;
    long long out_bytes = m->file_bytes;
    bert_model_free(m);
    const int *chosen = plans + (size_t)lo * b->ng;
    int nr = plan_rules(b, chosen);
    if (bo->json) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "eval", bo->eval);
        cJSON_AddNumberToObject(o, "eval_examples", b->set.n);
        cJSON_AddNumberToObject(o, "max_drop", bo->max_drop);
        cJSON_AddNumberToObject(o, "fp32_accuracy", b->ref_acc);
        cJSON_AddNumberToObject(o, "confidence", bo->confidence);
        cJSON_AddNumberToObject(o, "accuracy", b->ref_acc - lo_drop.drop / 100);
        cJSON_AddNumberToObject(o, "drop", lo_drop.drop);
        cJSON_AddNumberToObject(o, "drop_standard_error", lo_drop.se);
        cJSON_AddNumberToObject(o, "output_bytes", (double)out_bytes);
        cJSON_AddStringToObject(o, "base", base->preset);
        cJSON_AddNumberToObject(o, "compressions", b->probes);
        cJSON *groups = cJSON_AddArrayToObject(o, "groups");
        for (int i = 0; i < b->ng; i++) {
            cJSON *g = cJSON_CreateObject();
            cJSON_AddStringToObject(g, "match", b->g[i].match);
            cJSON_AddStringToObject(g, "kind", b->g[i].kind);
            cJSON_AddNumberToObject(g, "tensors", b->g[i].tensors);
            cJSON_AddNumberToObject(g, "params", (double)b->g[i].params);
            cJSON_AddNumberToObject(g, "bits", budget_bits[chosen[i]]);
            cJSON_AddItemToArray(groups, g);
        }
        cJSON *rules = cJSON_AddArrayToObject(o, "rules");
        for (int i = 0; i < nr; i++) {
            char s[128];
            snprintf(s, sizeof(s), "%s=q%d", b->rules[i].match, b->rules[i].spec.bits);
            cJSON_AddItemToArray(rules, cJSON_CreateString(s));
        }
        cli_print_json(o);
    } else {
        print_plan(b, chosen, stdout);
        printf("fp32 accuracy %.4f, compressed %.4f: drop %.2f points (standard error %.2f; budget %.2f at "
               "%.2f standard errors) on %d examples of %s\n",
               b->ref_acc, b->ref_acc - lo_drop.drop / 100, lo_drop.drop, lo_drop.se, bo->max_drop, bo->confidence,
               b->set.n, bo->eval);
        printf("plan %d of %d moves; %d compressions measured; output %lld bytes\n", lo, np, b->probes,
               out_bytes);
        printf("the same file again (with the same other options): bct compress --in %s --out %s --preset %s",
               hf_dir, out_path, base->preset);
        for (int i = 0; i < nr; i++) printf(" --tensor-format %s=q%d", b->rules[i].match, b->rules[i].spec.bits);
        printf("\n");
    }
    rc = BCT_OK;
done:
    if (best_path[0]) unlink(best_path);
    bert_model_free(fp);
    if (b->pool) bct_pool_free(b->pool);
    glue_free(&b->set);
    free(b->ref);
    free(b->logits);
    free(plans);
    free(fmt);
    free(b);
    return rc;
}
