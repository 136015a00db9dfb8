/* Parity with the independent reference (../shared/tools/ref_bert.py) on
 * every shared model: token ids for 100% of dev examples, logits within
 * 1e-4, and the dev accuracy that SOURCE.md reports. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model/bert_forward.h"
#include "model/bert_model.h"
#include "glue_data.h"
#include "test_util.h"

typedef struct golden_case {
    const char *model;
    const char *data;
    glue_task task;
    int correct; /* SOURCE.md: dev examples the reference gets right */
} golden_case;

static const golden_case cases[] = {
    {"models/sst2-bert-tiny-scratch", "data/glue/SST-2/dev.tsv", GLUE_SST2, 693},
    {"models/sst2-bert-mini-scratch", "data/glue/SST-2/dev.tsv", GLUE_SST2, 690},
    {"models/mrpc-bert-mini-scratch", "data/glue/MRPC/dev.tsv", GLUE_MRPC, 255},
};

typedef struct ref_seq {
    int32_t ids[512];
    uint8_t types[512];
    int len;
} ref_seq;

/* ref_dev_input_ids.txt: "id id id[\tTYPEDIGITS]" per line. */
static ref_seq *read_ref_ids(const char *path, int *n) {
    size_t len;
    char *text = test_read_file(path, &len);
    ck_assert_msg(text != NULL, "cannot read %s", path);
    int lines = 0;
    for (size_t i = 0; i < len; i++) lines += text[i] == '\n';
    ref_seq *out = calloc((size_t)lines + 1, sizeof(ref_seq));
    int k = 0;
    for (char *line = strtok(text, "\n"); line; line = strtok(NULL, "\n"), k++) {
        char *tab = strchr(line, '\t');
        if (tab) *tab = '\0';
        char *p = line, *end;
        while (*p) {
            out[k].ids[out[k].len++] = (int32_t)strtol(p, &end, 10);
            ck_assert(end != p);
            p = end;
            while (*p == ' ') p++;
        }
        for (int t = 0; t < out[k].len; t++) out[k].types[t] = tab ? (uint8_t)(tab[1 + t] - '0') : 0;
    }
    free(text);
    *n = k;
    return out;
}

static float *read_ref_logits(const char *path, int n, int nl) {
    FILE *f = fopen(path, "r");
    ck_assert_ptr_nonnull(f);
    float *v = malloc((size_t)n * nl * sizeof(float));
    for (int i = 0; i < n * nl; i++) ck_assert_int_eq(fscanf(f, "%f", &v[i]), 1);
    fclose(f);
    return v;
}

static void run_case(const golden_case *gc) {
    char rel[256];
    const char *dir = test_shared_path(gc->model);
    bct_error err = {{0}};
    bert_model *m;
    ck_assert_msg(bert_model_load_hf(dir, &m, &err) == BCT_OK, "%s", err.msg);
    int nl = m->cfg.num_labels, n;
    snprintf(rel, sizeof(rel), "%s/ref_dev_input_ids.txt", gc->model);
    ref_seq *ref = read_ref_ids(test_shared_path(rel), &n);
    snprintf(rel, sizeof(rel), "%s/ref_dev_logits.tsv", gc->model);
    float *want = read_ref_logits(test_shared_path(rel), n, nl);

    /* Tokenizer: every dev example, exactly. */
    glue_set set;
    ck_assert_msg(glue_load(test_shared_path(gc->data), gc->task, &m->cfg, 0, &set, &err) == BCT_OK, "%s",
                  err.msg);
    ck_assert_int_eq(set.n, n);
    int token_matches = 0;
    for (int i = 0; i < n; i++) {
        int32_t ids[128];
        uint8_t types[128];
        tok_encoding e = {ids, types, 128, 0, 0};
        const glue_example *ex = &set.ex[i];
        ck_assert_int_eq(bert_model_encode(m, ex->a, strlen(ex->a), ex->b, ex->b ? strlen(ex->b) : 0,
                                           &e, &err),
                         BCT_OK);
        token_matches += e.len == ref[i].len && !memcmp(ids, ref[i].ids, (size_t)e.len * 4) &&
                         !memcmp(types, ref[i].types, (size_t)e.len);
    }
    ck_assert_int_eq(token_matches, n);

    /* Forward pass on the reference ids, in batches of 32. */
    float *got = malloc((size_t)n * nl * sizeof(float));
    bert_ws *ws = bert_ws_create();
    bert_seq seqs[32];
    for (int s = 0; s < n; s += 32) {
        int cnt = n - s < 32 ? n - s : 32;
        for (int j = 0; j < cnt; j++) seqs[j] = (bert_seq){ref[s + j].ids, ref[s + j].types, ref[s + j].len};
        ck_assert_msg(bert_forward(m, seqs, cnt, got + (size_t)s * nl, ws, &err) == BCT_OK, "%s", err.msg);
    }
    double max_diff = 0;
    int correct = 0;
    for (int i = 0; i < n; i++) {
        int pred = 0;
        for (int j = 0; j < nl; j++) {
            double d = fabs(got[i * nl + j] - want[i * nl + j]);
            max_diff = d > max_diff ? d : max_diff;
            if (got[i * nl + j] > got[i * nl + pred]) pred = j;
        }
        correct += pred == set.ex[i].label;
    }
    printf("%s: %d/%d token matches, max |logit diff| %.2e, accuracy %d/%d\n", gc->model,
           token_matches, n, max_diff, correct, n);
    ck_assert_msg(max_diff <= 1e-4, "%s: max logit diff %g", gc->model, max_diff);
    ck_assert_int_eq(correct, gc->correct);

    bert_ws_free(ws);
    free(got);
    free(want);
    free(ref);
    glue_free(&set);
    bert_model_free(m);
}

START_TEST(golden_model) { run_case(&cases[_i]); }
END_TEST

int main(void) {
    if (!test_shared_path("models")) {
        fprintf(stderr, "skipped: ../shared is not present\n");
        return 77;
    }
    Suite *s = suite_create("golden");
    TCase *tc = tcase_create("golden");
    tcase_set_timeout(tc, 300);
    tcase_add_loop_test(tc, golden_model, 0, (int)(sizeof(cases) / sizeof(cases[0])));
    suite_add_tcase(s, tc);
    return test_run_suite(s);
}
